//! What a scheduled fleet review trusts: its inventory, checked at `schedule install --fleet`.
//!
//! The timer runs `vigil fleet review -i INVENTORY --scheduled` as root, unattended, every
//! month. Whoever can change the inventory — or the `host_vars/` and `group_vars/` beside it —
//! decides which commands that root run hands to ssh (`ansible_ssh_common_args` can name a
//! `ProxyCommand`), so the schedule is installed only for an inventory that parses and that
//! no other user can change, named by its absolute path.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The inventory a scheduled fleet review will read as root, unattended: its absolute path,
/// once it parses and nobody else can change what it says. The inventory, the directory
/// it is in and the `host_vars/` and `group_vars/` beside it decide which commands ssh
/// runs (`ansible_ssh_common_args` can name a `ProxyCommand`), so each must belong to
/// root (or to the user installing) and be writable by no group or other user.
pub fn check_inventory(path: &Path) -> Result<PathBuf> {
    let abs = std::fs::canonicalize(path).with_context(|| format!("cannot read the inventory {}", path.display()))?;
    let meta = std::fs::metadata(&abs).with_context(|| format!("cannot read the inventory {}", abs.display()))?;
    if !meta.is_file() {
        bail!("the inventory {} is not a regular file", abs.display());
    }
    let mut checked = vec![abs.clone()];
    if let Some(dir) = abs.parent() {
        checked.push(dir.to_path_buf());
        for vars in ["host_vars", "group_vars"] {
            let d = dir.join(vars);
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            checked.push(d);
            checked.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for p in &checked {
        // Followed, as the inventory reader follows links; a sticky world-writable directory
        // (`/tmp`) still lets anyone add a `host_vars/` beside the inventory.
        let m = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        use std::os::unix::fs::MetadataExt;
        if m.mode() & 0o022 != 0 {
            bail!(
                "{} can be changed by other users (mode {:o}), and a scheduled fleet review would run as root \
                 what it says: `chmod go-w {}`",
                p.display(),
                m.mode() & 0o7777,
                p.display()
            );
        }
        if m.uid() != 0 && m.uid() != me {
            bail!(
                "{} belongs to uid {}, not to root or you: refusing it for a scheduled fleet review (`chown root {}`)",
                p.display(),
                m.uid(),
                p.display()
            );
        }
    }
    super::Inventory::load(&abs).with_context(|| format!("the inventory {} cannot be used", abs.display()))?;
    Ok(abs)
}
