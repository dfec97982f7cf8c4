//! Files: the site's backup (tar.gz of its directory, symlinks kept as links,
//! owners and modes kept, read back to the end), the staging copy, and the
//! swap that replaces one directory with another by two renames on the same
//! filesystem, so every moment is either the old tree or the new one. A site
//! belongs to its owner, who can change it while vigil works in it: every
//! operation inside one goes through [`tree`]'s descriptors, never a path.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::failed;
use super::tree::{self, Dir, Kind, MAX_DEPTH};
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
    /// What the file backup left out (FIFOs, sockets, devices; names removed while it ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// Archive the site `dir` into `out` (tar.gz, 0600), then read it back to the end: the member
/// count and what was left out. The tree is walked through descriptors ([`tree`]): a symlink is
/// archived as a link, a file is read from the inode that was checked, a FIFO, socket or device
/// is noted and never opened.
pub fn backup_dir(dir: &Path, out: &Path) -> Result<(u64, Vec<String>), ToolError> {
    let ctx = |e: io::Error| failed(format!("archiving {}: {e}", dir.display()));
    let root = Dir::open(dir).map_err(ctx)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(out)
        .map_err(|e| failed(format!("cannot write {}: {e}", out.display())))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    let gz = flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut skipped = Vec::new();
    archive_rec(&mut b, &root, Path::new(""), 0, &mut skipped).map_err(ctx)?;
    let gz = b.into_inner().map_err(ctx)?;
    let w = gz.finish().map_err(ctx)?;
    let f = w.into_inner().map_err(|e| failed(format!("archiving {}: {}", dir.display(), e.error())))?;
    f.sync_all().map_err(failed)?;
    Ok((verify_archive(out)?, cap_notes(skipped)))
}

/// At most [`MAX_NOTES`] notes (a busy cache directory can lose thousands of files mid-walk).
fn cap_notes(mut v: Vec<String>) -> Vec<String> {
    if v.len() > MAX_NOTES {
        let more = v.len() - MAX_NOTES;
        v.truncate(MAX_NOTES);
        v.push(format!("… and {more} more"));
    }
    v
}

/// Notes kept about what a walk left out.
pub const MAX_NOTES: usize = 50;

fn archive_rec<W: Write>(
    b: &mut tar::Builder<W>,
    d: &Dir,
    rel: &Path,
    depth: usize,
    skipped: &mut Vec<String>,
) -> io::Result<()> {
    if depth >= MAX_DEPTH {
        return Err(io::Error::other(format!("{} is nested more than {MAX_DEPTH} deep", d.path().display())));
    }
    for name in d.names()? {
        let rp = rel.join(&name);
        let Some(e) = pinned(d, &name, &rp, skipped)? else { continue };
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.stat.st_mode & 0o7777);
        h.set_uid(u64::from(e.stat.st_uid));
        h.set_gid(u64::from(e.stat.st_gid));
        h.set_mtime(e.stat.st_mtime.max(0) as u64);
        h.set_size(0);
        match e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, &rp, io::empty())?;
                let sub = e.open_dir(d.path().join(&name))?;
                drop(e); // one descriptor per level, not two
                archive_rec(b, &sub, &rp, depth + 1, skipped)?;
            }
            Kind::File => {
                // Exactly the size checked: a file growing or shrinking meanwhile cannot break the archive.
                let size = e.stat.st_size.max(0) as u64;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                let f = e.open_file()?;
                b.append_data(&mut h, &rp, f.take(size).chain(io::repeat(0)).take(size))?;
            }
            Kind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                let t = e.read_link()?;
                b.append_link(&mut h, &rp, Path::new(&t))?;
            }
            Kind::Special(what) => skipped.push(format!("{}: a {what}, not archived (never opened)", rp.display())),
        }
    }
    Ok(())
}

/// `name` in `d`, pinned; `None` (noted) when it vanished meanwhile.
fn pinned(d: &Dir, name: &OsStr, rp: &Path, skipped: &mut Vec<String>) -> io::Result<Option<tree::Entry>> {
    match d.entry(name) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            skipped.push(format!("{}: removed while being read", rp.display()));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Read a tar.gz to its end (every member, the gzip trailer); its member count.
#[expect(
    clippy::disallowed_methods,
    reason = "a backup archive vigil itself wrote to its state directory, not a tenant file"
)]
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
/// of a site backup as `name` in `parent` (a directory of the site, opened without following
/// links), keeping modes and owners. Everything is created relative to descriptors with
/// `O_EXCL`, inside a directory that stays root's (0700) until it is complete, so a symlink
/// planted by the site's owner — or one earlier in the archive — is never written through.
#[expect(
    clippy::disallowed_methods,
    reason = "the site backup vigil itself wrote to its state directory; members are written through descriptors"
)]
pub fn extract_sub(archive: &Path, sub: &str, parent: &Dir, name: &OsStr) -> Result<u64, ToolError> {
    let f = File::open(archive).map_err(|e| failed(format!("cannot read {}: {e}", archive.display())))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(f)));
    let want = Path::new(sub);
    let shown = parent.path().join(name);
    let ctx = |e: io::Error| failed(format!("restoring {sub} into {}: {e}", shown.display()));
    let mut top: Option<Dir> = None;
    let mut top_meta: Option<(u32, u32, u32)> = None;
    let mut file_top = false;
    let mut n = 0;
    for e in ar.entries().map_err(failed)? {
        let mut e = e.map_err(|e| failed(format!("{}: {e}", archive.display())))?;
        let ename = e.path().map_err(failed)?.to_string_lossy().into_owned();
        let rel = crate::archive_path::safe_rel(&ename).map_err(failed)?;
        let Ok(inner) = rel.strip_prefix(want) else { continue };
        let h = e.header();
        let (m, uid, gid) = (
            h.mode().unwrap_or(0o600),
            h.uid().ok().and_then(|u| u32::try_from(u).ok()).unwrap_or(u32::MAX),
            h.gid().ok().and_then(|g| u32::try_from(g).ok()).unwrap_or(u32::MAX),
        );
        let et = h.entry_type();
        if inner.as_os_str().is_empty() {
            if et.is_file() && top.is_none() && !file_top {
                // `sub` is a single file (a core file such as index.php).
                let mut w = parent.create(name, 0o600).map_err(ctx)?;
                io::copy(&mut e, &mut w).map_err(ctx)?;
                tree::set_owner_mode(&w, uid, gid, m).map_err(ctx)?;
                file_top = true;
                n += 1;
            } else if et.is_dir() && !file_top {
                top_meta = Some((uid, gid, m));
                if top.is_none() {
                    top = Some(parent.mkdir(name, 0o700).map_err(ctx)?);
                }
            }
            continue;
        }
        if file_top {
            return Err(failed(format!("{}: {sub} is both a file and a directory", archive.display())));
        }
        if top.is_none() {
            top = Some(parent.mkdir(name, 0o700).map_err(ctx)?);
        }
        let Some(t) = top.as_ref() else { continue };
        let (dir, last) = walk_create(t, inner).map_err(ctx)?;
        if et.is_dir() {
            dir.ensure_dir(&last, 0o700, None).and_then(|d| d.set_owner_mode(uid, gid, m)).map_err(ctx)?;
        } else if et.is_file() {
            let mut w = dir.create(&last, 0o600).map_err(ctx)?;
            io::copy(&mut e, &mut w).map_err(ctx)?;
            tree::set_owner_mode(&w, uid, gid, m).map_err(ctx)?;
        } else if et.is_symlink() {
            let target = e.link_name_bytes().ok_or_else(|| failed(format!("{ename}: a link without a target")))?;
            dir.symlink(OsStr::from_bytes(&target), &last, Some((uid, gid))).map_err(ctx)?;
        } else {
            continue; // hard links, devices: a site backup has none
        }
        n += 1;
    }
    if let Some(t) = &top {
        let (uid, gid, m) = top_meta.unwrap_or((0, 0, 0o755));
        t.set_owner_mode(uid, gid, m).map_err(ctx)?;
    }
    if n == 0 {
        return Err(failed(format!("{} holds nothing under {sub}", archive.display())));
    }
    Ok(n)
}

/// The directory holding `inner` below `top` (intermediate directories created 0755 root when
/// missing, existing ones opened without following links) and `inner`'s last name.
fn walk_create(top: &Dir, inner: &Path) -> io::Result<(Dir, OsString)> {
    let comps: Vec<&OsStr> = inner.iter().collect();
    let Some((last, dirs)) = comps.split_last() else {
        return Err(io::Error::other("an empty path"));
    };
    let mut d = top.open_dir(Path::new(""))?;
    for c in dirs {
        d = d.ensure_dir(c, 0o755, None)?;
    }
    Ok((d, last.to_os_string()))
}

/// Copy the site `src` to `dst` (created here; its parent must be a directory only root can
/// change): directories, files, symlinks as links, modes and owners kept. Read through
/// descriptors: a symlink is copied as a link, never followed; a file's contents come from the
/// inode that was checked; a FIFO, socket or device is noted and never opened.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<Copied, ToolError> {
    let ctx = |e: io::Error| failed(format!("copying {} to {}: {e}", src.display(), dst.display()));
    let s = Dir::open(src).map_err(ctx)?;
    let st = s.stat().map_err(ctx)?;
    let (Some(pp), Some(name)) = (dst.parent(), dst.file_name()) else {
        return Err(failed(format!("{} has no parent directory", dst.display())));
    };
    let d = Dir::open(pp).and_then(|p| p.mkdir(name, 0o700)).map_err(ctx)?;
    let mut out = Copied::default();
    copy_rec(&s, &d, Path::new(""), 0, &mut out).map_err(ctx)?;
    d.set_owner_mode(st.st_uid, st.st_gid, st.st_mode).map_err(ctx)?;
    out.skipped = cap_notes(out.skipped);
    Ok(out)
}

/// What [`copy_tree`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// Regular files copied.
    pub files: u64,
    /// What was left out, and why.
    pub skipped: Vec<String>,
}

fn copy_rec(s: &Dir, d: &Dir, rel: &Path, depth: usize, out: &mut Copied) -> io::Result<()> {
    if depth >= MAX_DEPTH {
        return Err(io::Error::other(format!("{} is nested more than {MAX_DEPTH} deep", s.path().display())));
    }
    for name in s.names()? {
        let rp = rel.join(&name);
        let Some(e) = pinned(s, &name, &rp, &mut out.skipped)? else { continue };
        let (uid, gid, m) = (e.stat.st_uid, e.stat.st_gid, e.stat.st_mode);
        match e.kind {
            Kind::Dir => {
                let sub = e.open_dir(s.path().join(&name))?;
                drop(e); // one descriptor per level, not two
                // Root's (0700) while it is filled; its owner and mode once complete.
                let dd = d.mkdir(&name, 0o700)?;
                copy_rec(&sub, &dd, &rp, depth + 1, out)?;
                dd.set_owner_mode(uid, gid, m)?;
            }
            Kind::File => {
                let mut r = e.open_file()?;
                let mut w = d.create(&name, 0o600)?;
                io::copy(&mut r, &mut w)?;
                tree::set_owner_mode(&w, uid, gid, m)?;
                out.files += 1;
            }
            Kind::Symlink => d.symlink(&e.read_link()?, &name, Some((uid, gid)))?,
            Kind::Special(what) => out.skipped.push(format!("{}: a {what}, not copied (never opened)", rp.display())),
        }
    }
    Ok(())
}

/// The directory holding `path` (which must be inside `root`), reached from `root` with every
/// component opened without following symlinks, and `path`'s last name.
pub fn open_parent(root: &Path, path: &Path) -> io::Result<(Dir, OsString)> {
    let rel = path.strip_prefix(root).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not inside {}", path.display(), root.display()))
    })?;
    Dir::open(root)?.parent_of(rel)
}

/// Remove a file or a tree, absent is fine. Only for paths whose directories nobody but root
/// can change (the state directory, the staging root); inside a site use [`Dir::remove`].
pub fn remove_any(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        // std's remove_dir_all does not follow symlinks inside the tree.
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
    /// A unit replacing `target` (inside the site `root`) by what will be written at its `new` sibling.
    pub fn new(root: &Path, target: &Path, id: &str) -> io::Result<Unit> {
        let (d, name) = open_parent(root, target)?;
        Ok(Unit {
            target: target.to_path_buf(),
            new: sibling(target, "new", id),
            old: sibling(target, "old", id),
            existed: d.lstat(&name)?.is_some(),
            state: UnitState::Prepared,
        })
    }

    /// The directory the three names live in (reached from `root` without following links) and the names.
    fn names(&self, root: &Path) -> io::Result<(Dir, OsString, OsString, OsString)> {
        let (d, t) = open_parent(root, &self.target)?;
        let name = |p: &Path| -> io::Result<OsString> {
            match (p.parent() == self.target.parent(), p.file_name()) {
                (true, Some(n)) => Ok(n.to_os_string()),
                _ => Err(io::Error::other(format!("{} is not beside {}", p.display(), self.target.display()))),
            }
        };
        Ok((d, t, name(&self.new)?, name(&self.old)?))
    }

    /// Before preparing: remove whatever sits at the `new` and `old` names (leftovers, or names
    /// the site's owner planted), as names — a planted symlink is unlinked, never followed.
    pub fn clear(&self, root: &Path) -> io::Result<()> {
        let (d, _, new, old) = self.names(root)?;
        d.remove(&new)?;
        d.remove(&old)
    }

    /// Move the old content aside. (Journal the state after each call.)
    pub fn move_old(&mut self, root: &Path) -> io::Result<()> {
        if self.existed {
            let (d, t, _, old) = self.names(root)?;
            d.rename(&t, &d, &old)?;
        }
        self.state = UnitState::OldMoved;
        Ok(())
    }

    /// Put the new content in place.
    pub fn put_new(&mut self, root: &Path) -> io::Result<()> {
        let (d, t, new, _) = self.names(root)?;
        d.rename(&new, &d, &t)?;
        self.state = UnitState::Swapped;
        Ok(())
    }

    /// Undo the swap whatever point it reached (judged from the filesystem, since an
    /// interruption can leave it one step ahead of the journal): `target` is the old content again.
    pub fn undo(&mut self, root: &Path) -> io::Result<()> {
        let (d, t, new, old) = self.names(root)?;
        if d.lstat(&old)?.is_some() {
            // The old content is intact aside: whatever is at `target` is new (or nothing).
            d.remove(&t)?;
            d.rename(&old, &d, &t)?;
        } else if !self.existed {
            // Nothing was there before the update.
            d.remove(&t)?;
        }
        d.remove(&new)?;
        self.state = UnitState::Prepared;
        Ok(())
    }

    /// The update is kept: drop the old content.
    pub fn finish(&self, root: &Path) -> io::Result<()> {
        let (d, _, new, old) = self.names(root)?;
        d.remove(&old)?;
        d.remove(&new)
    }
}

/// SHA-256 of a file.
#[expect(
    clippy::disallowed_methods,
    reason = "hashes packages vigil itself downloaded and kept in its state directory, not tenant files"
)]
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
