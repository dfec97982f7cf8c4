//! The state directory: audit log, reviews, transcripts, reports, tool history.
//!
//! `--state-dir` if given; else `/var/lib/vigil` when running as root — never
//! the invoking user's XDG directory under sudo, so an unprivileged user cannot
//! plant or edit what a root review trusts — else `$XDG_STATE_HOME/vigil`
//! (`~/.local/state/vigil`). Directories are 0700 and must belong to us;
//! files are 0600 and opened without following symlinks. History is kept per
//! audited host (`hosts/<hostname>-<hash of root>/`), so auditing a mounted
//! image never mixes with this machine's reviews.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use vigil_tools::Host;

/// The resolved state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// True when running with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Where state lives when `--state-dir` is not given.
pub fn default_state_dir() -> Result<PathBuf> {
    if is_root() {
        return Ok(PathBuf::from("/var/lib/vigil"));
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("vigil"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("cannot find a state directory: HOME and XDG_STATE_HOME are unset (pass --state-dir DIR)")?;
    Ok(PathBuf::from(home).join(".local/state/vigil"))
}

/// Create `dir` (and parents) 0700, refusing a symlink or a directory owned by someone else.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    }
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if meta.file_type().is_symlink() {
        bail!("{} is a symlink: refusing to keep vigil's state there", dir.display());
    }
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!("{} belongs to uid {}, not to us (uid {me}): refusing to use it", dir.display(), meta.uid());
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(())
}

/// Open a file for appending: 0600, created if absent, never through a symlink.
pub fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Read a file without following a symlink.
pub fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut buf)?;
    Ok(buf)
}

/// Write a file atomically, 0600: [`vigil_tools::atomic::write_atomic`] (no-follow temporary
/// file in the same directory, fsync, rename), with the file named in the error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    vigil_tools::atomic::write_atomic(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Write a report the user asked for with `--out`: 0600 and atomic for a regular file (a
/// report names accounts and weaknesses), a plain write for anything else the user named on
/// purpose (`/dev/stdout`, a FIFO, a symlink they made), which must not be replaced.
pub fn write_report(path: &Path, bytes: &[u8]) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => {
            std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        _ => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = path.file_name().context("--out names no file")?;
            write_atomic(&dir.join(name), bytes).with_context(|| format!("cannot write {}", path.display()))
        }
    }
}

/// Retention of scheduled reports: keep the newest `keep` files of each extension in `dir`
/// (names sort by their timestamp).
pub fn prune_reports(dir: &Path, exts: &[&str], keep: usize) -> Result<()> {
    let keep = keep.max(1);
    let mut all: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    all.sort();
    for ext in exts {
        let of: Vec<_> = all.iter().filter(|p| p.extension().is_some_and(|x| x == *ext)).collect();
        for old in of.iter().take(of.len().saturating_sub(keep)) {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(())
}

impl StateDir {
    /// Resolve and create the state directory.
    pub fn open(explicit: Option<&Path>) -> Result<StateDir> {
        let root = match explicit {
            Some(p) => p.to_path_buf(),
            None => default_state_dir()?,
        };
        ensure_private_dir(&root)?;
        Ok(StateDir { root })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A private subdirectory, created on demand.
    pub fn sub(&self, name: &str) -> Result<PathBuf> {
        let p = self.root.join(name);
        ensure_private_dir(&p)?;
        Ok(p)
    }

    /// The per-audited-host directory: `hosts/<hostname>-<hash of the root path>`.
    pub fn host_dir(&self, host: &Host) -> Result<PathBuf> {
        let p = self.root.join("hosts").join(host_slug(host));
        ensure_private_dir(&self.root.join("hosts"))?;
        ensure_private_dir(&p)?;
        Ok(p)
    }
}

/// Where `vigil vulndb update` keeps the vulnerability feed: the top of the state
/// directory, shared by every audited root (it describes software, not a host).
pub fn feed_file(state: &Path) -> PathBuf {
    state.join(vigil_tools::wordpress::feed::FEED_FILE)
}

/// The audited host's name: `ROOT/etc/hostname`, else the kernel's for the live root.
pub fn host_name(host: &Host) -> String {
    let from_file = host.read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let name = from_file.or_else(|| {
        if host.is_live() {
            host.read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string())
        } else {
            None
        }
    });
    name.unwrap_or_else(|| "unknown-host".to_string())
}

fn host_slug(host: &Host) -> String {
    let canon = std::fs::canonicalize(host.root()).unwrap_or_else(|_| host.root().to_path_buf());
    let digest = hex::encode(Sha256::digest(canon.to_string_lossy().as_bytes()));
    let name: String = host_name(host)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    format!("{name}-{}", &digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_and_files() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(Some(&t.path().join("state"))).unwrap();
        let mode = std::fs::metadata(s.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let f = s.path().join("x.json");
        write_atomic(&f, b"{}").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        // A symlinked state dir is refused.
        std::os::unix::fs::symlink(s.path(), t.path().join("link")).unwrap();
        assert!(StateDir::open(Some(&t.path().join("link"))).is_err());
        // Appending through a symlink is refused.
        std::os::unix::fs::symlink(&f, s.path().join("evil")).unwrap();
        assert!(open_append(&s.path().join("evil")).is_err());
    }

    #[test]
    fn hosts_get_separate_directories() {
        let t = tempfile::tempdir().unwrap();
        let s = StateDir::open(Some(t.path())).unwrap();
        let a = s.host_dir(&Host::at("/")).unwrap();
        let b = s.host_dir(&Host::at(t.path())).unwrap();
        assert_ne!(a, b);
    }
}
