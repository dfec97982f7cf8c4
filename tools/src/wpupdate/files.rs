//! Files: the site's backup (tar.gz of its directory, symlinks kept as links,
//! owners and modes kept, read back to the end), the staging copy, and the
//! swap that replaces one directory with another by two renames on the same
//! filesystem, so every moment is either the old tree or the new one.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::failed;
use crate::tool::ToolError;

/// A backup of a site: its files and its database tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackupRef {
    /// When it was taken (unix seconds).
    pub at: i64,
    /// tar.gz of the site directory.
    pub files: String,
    /// Members in it.
    pub file_count: u64,
    /// SQL dump of the site's tables.
    pub db: String,
    /// Tables in it.
    pub tables: usize,
}

/// Archive `dir` into `out` (tar.gz, 0600), then read it back to the end; the member count.
pub fn backup_dir(dir: &Path, out: &Path) -> Result<u64, ToolError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(out)
        .map_err(|e| failed(format!("cannot write {}: {e}", out.display())))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    let gz = flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", dir).map_err(|e| failed(format!("archiving {}: {e}", dir.display())))?;
    let gz = b.into_inner().map_err(|e| failed(format!("archiving {}: {e}", dir.display())))?;
    let w = gz.finish().map_err(|e| failed(format!("archiving {}: {e}", dir.display())))?;
    let f = w.into_inner().map_err(|e| failed(format!("archiving {}: {}", dir.display(), e.error())))?;
    f.sync_all().map_err(failed)?;
    verify_archive(out)
}

/// Read a tar.gz to its end (every member, the gzip trailer); its member count.
pub fn verify_archive(path: &Path) -> Result<u64, ToolError> {
    let f = File::open(path).map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
    let mut gz = flate2::read::GzDecoder::new(BufReader::new(f));
    let mut n = 0u64;
    {
        let mut ar = tar::Archive::new(&mut gz);
        for e in ar.entries().map_err(|e| failed(format!("{}: {e}", path.display())))? {
            let mut e = e.map_err(|e| failed(format!("{} unreadable after {n} members: {e}", path.display())))?;
            io::copy(&mut e, &mut io::sink()).map_err(|e| failed(format!("{}: {e}", path.display())))?;
            n += 1;
        }
    }
    io::copy(&mut gz, &mut io::sink()).map_err(|e| failed(format!("{}: gzip stream: {e}", path.display())))?;
    if n == 0 {
        return Err(failed(format!("{} is empty", path.display())));
    }
    Ok(n)
}

/// Extract the members under `sub` (relative to the site, e.g. `wp-content/plugins/akismet`)
/// of a site backup into `dest` (which becomes that directory), keeping modes and owners.
pub fn extract_sub(archive: &Path, sub: &str, dest: &Path) -> Result<u64, ToolError> {
    let f = File::open(archive).map_err(|e| failed(format!("cannot read {}: {e}", archive.display())))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(f)));
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    let want = Path::new(sub);
    let mut n = 0;
    std::fs::create_dir_all(dest).map_err(|e| failed(format!("cannot create {}: {e}", dest.display())))?;
    for e in ar.entries().map_err(failed)? {
        let mut e = e.map_err(|e| failed(format!("{}: {e}", archive.display())))?;
        let name = e.path().map_err(failed)?.to_string_lossy().into_owned();
        let rel = crate::fixes::restore::safe_rel(&name).map_err(failed)?;
        let Ok(inner) = rel.strip_prefix(want) else { continue };
        let to = dest.join(inner);
        if inner.as_os_str().is_empty() {
            // The directory itself: its mode and owner.
            let h = e.header();
            if let (Ok(mode), Ok(uid), Ok(gid)) = (h.mode(), h.uid(), h.gid()) {
                let _ = std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode & 0o7777));
                let _ = std::os::unix::fs::chown(dest, Some(uid as u32), Some(gid as u32));
            }
            continue;
        }
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).map_err(|e| failed(format!("cannot create {}: {e}", p.display())))?;
        }
        e.unpack(&to).map_err(|err| failed(format!("restoring {name}: {err}")))?;
        n += 1;
    }
    if n == 0 {
        return Err(failed(format!("{} holds nothing under {sub}", archive.display())));
    }
    Ok(n)
}

/// Copy a tree: directories, files, symlinks as links; modes and owners kept.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<u64, ToolError> {
    let mut n = 0;
    copy_rec(src, dst, &mut n).map_err(|e| failed(format!("copying {} to {}: {e}", src.display(), dst.display())))?;
    Ok(n)
}

fn copy_rec(src: &Path, dst: &Path, n: &mut u64) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
        let _ = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
        return Ok(());
    }
    if ft.is_dir() {
        std::fs::create_dir(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_rec(&e.path(), &dst.join(e.file_name()), n)?;
        }
    } else if ft.is_file() {
        std::fs::copy(src, dst)?;
        *n += 1;
    } else {
        return Ok(()); // sockets, fifos, devices: not part of a site
    }
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
}

/// Give a tree to `uid:gid`, directories 0755 and files 0644 (a package's own modes are not trusted).
pub fn own_tree(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if meta.is_dir() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        for e in std::fs::read_dir(dir)? {
            own_tree(&e?.path(), uid, gid)?;
        }
    } else {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// Remove a file or a tree, absent is fine.
pub fn remove_any(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
    }
}

/// One replacement: `target` becomes `new`; the old one waits at `old` until the update is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Unit {
    /// The production path replaced.
    pub target: PathBuf,
    /// The new content, beside it (same filesystem).
    pub new: PathBuf,
    /// Where the old content is kept meanwhile.
    pub old: PathBuf,
    /// `target` existed before (false: the update adds it).
    pub existed: bool,
    /// How far the swap got.
    pub state: UnitState,
}

/// Progress of one [`Unit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnitState {
    /// `new` is written; production untouched.
    Prepared,
    /// `target` moved to `old`; `target` is absent.
    OldMoved,
    /// `new` is at `target`.
    Swapped,
}

/// The sibling path `dir/.NAME.vigil-TAG-ID` (hidden: WordPress skips dot-entries).
pub fn sibling(target: &Path, tag: &str, id: &str) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.vigil-{tag}-{id}"))
}

impl Unit {
    /// A unit replacing `target` by what will be written at its `new` sibling.
    pub fn new(target: &Path, id: &str) -> Unit {
        Unit {
            target: target.to_path_buf(),
            new: sibling(target, "new", id),
            old: sibling(target, "old", id),
            existed: std::fs::symlink_metadata(target).is_ok(),
            state: UnitState::Prepared,
        }
    }

    /// Move the old content aside. (Journal the state after each call.)
    pub fn move_old(&mut self) -> io::Result<()> {
        if self.existed {
            std::fs::rename(&self.target, &self.old)?;
        }
        self.state = UnitState::OldMoved;
        Ok(())
    }

    /// Put the new content in place.
    pub fn put_new(&mut self) -> io::Result<()> {
        std::fs::rename(&self.new, &self.target)?;
        self.state = UnitState::Swapped;
        Ok(())
    }

    /// Undo the swap whatever point it reached (judged from the filesystem, since an
    /// interruption can leave it one step ahead of the journal): `target` is the old content again.
    pub fn undo(&mut self) -> io::Result<()> {
        if std::fs::symlink_metadata(&self.old).is_ok() {
            // The old content is intact aside: whatever is at `target` is new (or nothing).
            remove_any(&self.target)?;
            std::fs::rename(&self.old, &self.target)?;
        } else if !self.existed {
            // Nothing was there before the update.
            remove_any(&self.target)?;
        }
        remove_any(&self.new)?;
        self.state = UnitState::Prepared;
        Ok(())
    }

    /// The update is kept: drop the old content.
    pub fn finish(&self) -> io::Result<()> {
        remove_any(&self.old)?;
        remove_any(&self.new)
    }
}

/// Every regular file under `dir`, relative, sorted.
pub fn list_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fn rec(base: &Path, d: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        for e in std::fs::read_dir(d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                rec(base, &e.path(), out)?;
            } else if ft.is_file() {
                out.push(e.path().strip_prefix(base).map(Path::to_path_buf).unwrap_or_default());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if std::fs::symlink_metadata(dir)?.is_dir() {
        rec(dir, dir, &mut out)?;
    } else {
        out.push(PathBuf::new());
    }
    out.sort();
    Ok(out)
}

/// SHA-256 of a file.
pub fn sha256_file(p: &Path) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
