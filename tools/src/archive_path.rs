//! The one rule for where an archive member may land: its path made
//! relative, with absolute paths and `..` refused, so nothing unpacked from a
//! backup, a plugin package or a staging copy is written outside the
//! directory it is unpacked into. A leaf module shared by the restore test
//! and the WordPress updater.

use std::path::{Component, Path, PathBuf};

/// A member's path, made relative; absolute paths and `..` are refused.
pub fn safe_rel(name: &str) -> Result<PathBuf, String> {
    let p = Path::new(name);
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => rel.push(s),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "member `{name}` has an absolute path: refused (nothing is written outside the scratch directory)"
                ));
            }
            Component::ParentDir => {
                return Err(format!(
                    "member `{name}` contains `..`: refused (nothing is written outside the scratch directory)"
                ));
            }
        }
    }
    Ok(rel)
}
