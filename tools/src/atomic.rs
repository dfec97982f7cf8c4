//! The one way vigil replaces a file of its own (state, records, approvals,
//! journals, reports): all of the new content or none of it, never through a
//! link someone planted.
//!
//! The new content goes to a fresh temporary file in the same directory,
//! created exclusively (`O_EXCL`) without following a symlink (`O_NOFOLLOW`),
//! mode 0600, flushed to disk; it is then renamed over the target (a rename
//! replaces a symlink at the target, never writes through it) and the
//! directory is flushed so the rename survives a crash. A leaf module: either
//! crate, read-only or mutating, may use it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Replace `path` by `bytes` atomically, mode 0600. The directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// [`write_atomic`] with another mode, set on the temporary file before the rename (whatever
/// the umask): for a file another program must read, like a node_exporter textfile.
#[expect(
    clippy::disallowed_methods,
    reason = "opens, to fsync it, the directory vigil has just renamed its own file into (its state or scratch directory)"
)]
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        Some(_) => Path::new("."),
        None => return Err(std::io::Error::other(format!("{}: no parent directory", path.display()))),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{}: no file name", path.display())))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        if mode != 0o600 {
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_content_0600_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
        assert!(write_atomic(&dir.path().join("missing/x"), b"y").is_err(), "a missing directory is an error");
    }

    #[test]
    fn a_planted_symlink_is_replaced_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("shadow");
        std::fs::write(&victim, "root:x:0:0").unwrap();
        let p = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write_atomic(&p, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0", "the link's target is untouched");
        assert!(!std::fs::symlink_metadata(&p).unwrap().file_type().is_symlink(), "the link itself was replaced");
    }
}
