//! Descriptor-relative, no-follow file operations for trees a site owner controls.
//!
//! vigil runs as root, and a staged update copies, archives, unpacks into and
//! renames inside a site's directory — a tree its owner can change while vigil
//! works in it. Path-based calls resolve every component again on each call
//! and follow symlinks, so an owner who swaps a file or directory for a
//! symlink to `/etc/shadow` or `/etc` between vigil's check and its act makes
//! root read, chown or overwrite things outside the site. Here every tree is
//! entered once through a directory descriptor ([`Dir`]); each step opens one
//! component relative to the previous one with `O_NOFOLLOW`, inspects the
//! inode it got (`fstat` on an `O_PATH` descriptor, so a FIFO or a device is
//! never opened) and acts on that descriptor: contents are read from it, new
//! entries are created with `O_EXCL` (never through an existing name), owners
//! and modes are set with `fchown`/`fchmod` on descriptors vigil created, links
//! are changed with `AT_SYMLINK_NOFOLLOW`, renames and removals are relative
//! to directory descriptors. A symlink is only ever read as a link.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Uid};

/// How deep a tree vigil walks before it gives up (a copy holds two descriptors per level).
pub const MAX_DEPTH: usize = 128;

/// Most symlinks followed while opening a root path (only root-placed ones are followed at all).
const MAX_LINKS: usize = 40;

/// An open directory, reached without following a symlink an untrusted user could have placed.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What a name in a directory is, inspected without opening it for reading.
#[derive(Debug)]
pub struct Entry {
    fd: OwnedFd,
    /// Its metadata, from `fstat` on the `O_PATH` descriptor.
    pub stat: Stat,
    /// Its kind.
    pub kind: Kind,
}

/// The kinds of entries a tree walk distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device: never opened, never copied.
    Special(&'static str),
}

fn kind_of(st: &Stat) -> Kind {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink,
        FileType::Fifo => Kind::Special("FIFO"),
        FileType::Socket => Kind::Special("socket"),
        FileType::CharacterDevice => Kind::Special("character device"),
        FileType::BlockDevice => Kind::Special("block device"),
        FileType::Unknown => Kind::Special("file of unknown type"),
    }
}

/// `uid`/`gid` as rustix wants them (`-1` means "leave it").
pub fn ids(uid: u32, gid: u32) -> (Option<Uid>, Option<Gid>) {
    ((uid != u32::MAX).then(|| Uid::from_raw(uid)), (gid != u32::MAX).then(|| Gid::from_raw(gid)))
}

fn mode(m: u32) -> Mode {
    Mode::from_raw_mode(m & 0o7777)
}

/// One plain name: no `/`, not `.` or `..`, not empty.
fn check_name(name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a plain file name", name.to_string_lossy()),
        ));
    }
    Ok(())
}

/// The components of a relative path that must stay inside its root.
fn plain_components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` leaves the directory it is relative to", rel.display()),
                ));
            }
        }
    }
    Ok(out)
}

fn errno_msg(e: rustix::io::Errno, what: &str, p: &Path) -> io::Error {
    let kind = io::Error::from(e).kind();
    let why = if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
        "is a symbolic link or not a directory (not followed)".to_string()
    } else {
        io::Error::from(e).to_string()
    };
    io::Error::new(kind, format!("{what} {}: {why}", p.display()))
}

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC).union(OFlags::NOCTTY);

/// Open the `O_PATH` descriptor as a real one for reading (same inode, whatever the name points at now).
fn reopen(fd: &OwnedFd, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

impl Dir {
    /// Open an absolute path as the root of a tree. A symlink on the way is followed only
    /// where nobody but root could have placed it (in a root-owned directory no one else
    /// may write); any other symlink, including the last component, is refused.
    pub fn open(path: &Path) -> io::Result<Dir> {
        if !path.is_absolute() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not absolute", path.display())));
        }
        let root = rustix::fs::open("/", DIR_FLAGS, Mode::empty()).map_err(|e| errno_msg(e, "opening", path))?;
        // Pending components, last first; a followed link pushes its target's components.
        let mut todo: Vec<OsString> = Vec::new();
        push_components(&mut todo, path);
        let mut stack: Vec<OwnedFd> = vec![root];
        let mut links = 0;
        while let Some(name) = todo.pop() {
            let cur = stack.last().ok_or_else(|| io::Error::other("empty directory stack"))?;
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            match rustix::fs::openat(cur, &name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => stack.push(fd),
                Err(e) if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR => {
                    // A symlink (or not a directory): follow it only when only root could have put it there.
                    let st = rustix::fs::statat(cur, &name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| errno_msg(e, "opening", path))?;
                    let parent = rustix::fs::fstat(cur).map_err(|e| errno_msg(e, "opening", path))?;
                    let trusted = parent.st_uid == 0 && parent.st_mode & 0o022 == 0 && st.st_uid == 0;
                    if kind_of(&st) != Kind::Symlink || !trusted || links >= MAX_LINKS {
                        return Err(errno_msg(e, "opening", path));
                    }
                    links += 1;
                    let target = rustix::fs::readlinkat(cur, &name, Vec::new())
                        .map_err(|e| errno_msg(e, "reading the link in", path))?;
                    let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                    if target.is_absolute() {
                        stack.truncate(1);
                    }
                    push_components(&mut todo, &target);
                }
                Err(e) => return Err(errno_msg(e, "opening", path)),
            }
        }
        let fd = stack.pop().ok_or_else(|| io::Error::other("empty directory stack"))?;
        Ok(Dir { fd, path: path.to_path_buf() })
    }

    /// The path this directory was reached by (for messages; never re-resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its metadata.
    pub fn stat(&self) -> io::Result<Stat> {
        rustix::fs::fstat(&self.fd).map_err(|e| errno_msg(e, "stat", &self.path))
    }

    /// The directory `rel` below this one, each component opened with `O_NOFOLLOW`.
    pub fn open_dir(&self, rel: &Path) -> io::Result<Dir> {
        let mut fd = self.fd.try_clone()?;
        let mut path = self.path.clone();
        for c in plain_components(rel)? {
            path.push(c);
            fd = rustix::fs::openat(&fd, c, DIR_FLAGS, Mode::empty()).map_err(|e| errno_msg(e, "opening", &path))?;
        }
        Ok(Dir { fd, path })
    }

    /// The directory holding `rel` (relative to this one) and `rel`'s last component.
    pub fn parent_of(&self, rel: &Path) -> io::Result<(Dir, OsString)> {
        let comps = plain_components(rel)?;
        let Some((last, dirs)) = comps.split_last() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty path has no parent"));
        };
        let parent: PathBuf = dirs.iter().collect();
        Ok((self.open_dir(&parent)?, (*last).to_os_string()))
    }

    /// What `name` is now, without following it; `None` when absent.
    pub fn lstat(&self, name: &OsStr) -> io::Result<Option<Stat>> {
        check_name(name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => Ok(Some(s)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(errno_msg(e, "stat", &self.path.join(name))),
        }
    }

    /// Pin what `name` is now (`O_PATH|O_NOFOLLOW`: nothing is opened for reading) and say what it is.
    pub fn entry(&self, name: &OsStr) -> io::Result<Entry> {
        check_name(name)?;
        let p = self.path.join(name);
        let fd = rustix::fs::openat(&self.fd, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| errno_msg(e, "opening", &p))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| errno_msg(e, "stat", &p))?;
        Ok(Entry { fd, kind: kind_of(&stat), stat })
    }

    /// The names in this directory, sorted (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut d = rustix::fs::Dir::read_from(&self.fd).map_err(|e| errno_msg(e, "listing", &self.path))?;
        let mut out = Vec::new();
        while let Some(e) = d.read() {
            let e = e.map_err(|e| errno_msg(e, "listing", &self.path))?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Create the directory `name` (it must not exist) and open it. Until its owner and mode are
    /// set it is root's, so its owner cannot reach into it while vigil fills it.
    pub fn mkdir(&self, name: &OsStr, m: u32) -> io::Result<Dir> {
        check_name(name)?;
        let p = self.path.join(name);
        rustix::fs::mkdirat(&self.fd, name, mode(m)).map_err(|e| errno_msg(e, "creating", &p))?;
        let fd =
            rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()).map_err(|e| errno_msg(e, "opening", &p))?;
        let d = Dir { fd, path: p };
        // The name may have been swapped between mkdirat and openat: it must still be ours and empty.
        let st = d.stat()?;
        if st.st_uid != rustix::process::geteuid().as_raw() || !d.names()?.is_empty() {
            return Err(io::Error::other(format!("{} was replaced while vigil created it", d.path.display())));
        }
        Ok(d)
    }

    /// The directory `name`, created when absent (mode `m`, owner `owner` when given), opened
    /// with `O_NOFOLLOW`; an existing one must be a real directory.
    pub fn ensure_dir(&self, name: &OsStr, m: u32, owner: Option<(u32, u32)>) -> io::Result<Dir> {
        check_name(name)?;
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Dir { fd, path: self.path.join(name) }),
            Err(rustix::io::Errno::NOENT) => {
                let d = self.mkdir(name, m)?;
                if let Some((uid, gid)) = owner {
                    d.set_owner_mode(uid, gid, m)?;
                }
                Ok(d)
            }
            Err(e) => Err(errno_msg(e, "opening", &self.path.join(name))),
        }
    }

    /// Create the file `name` for writing: `O_CREAT|O_EXCL|O_NOFOLLOW`, so never through an existing
    /// name (a planted symlink or hard link fails here).
    pub fn create(&self, name: &OsStr, m: u32) -> io::Result<File> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            mode(m),
        )
        .map_err(|e| errno_msg(e, "creating", &self.path.join(name)))?;
        Ok(File::from(fd))
    }

    /// Create the symlink `name` → `target`, owned by `owner` when given (set without following it).
    pub fn symlink(&self, target: &OsStr, name: &OsStr, owner: Option<(u32, u32)>) -> io::Result<()> {
        check_name(name)?;
        let p = self.path.join(name);
        rustix::fs::symlinkat(target, &self.fd, name).map_err(|e| errno_msg(e, "creating", &p))?;
        if let Some((uid, gid)) = owner {
            let (u, g) = ids(uid, gid);
            rustix::fs::chownat(&self.fd, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| errno_msg(e, "chown", &p))?;
        }
        Ok(())
    }

    /// Set this directory's owner, then its mode (a chown clears set-id bits, so the mode goes last).
    pub fn set_owner_mode(&self, uid: u32, gid: u32, m: u32) -> io::Result<()> {
        set_owner_mode(&self.fd, uid, gid, m)
            .map_err(|e| io::Error::new(e.kind(), format!("chown/chmod {}: {e}", self.path.display())))
    }

    /// Rename `from` here to `to` in `dest` (relative to both descriptors; a symlink is moved, not followed).
    pub fn rename(&self, from: &OsStr, dest: &Dir, to: &OsStr) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        rustix::fs::renameat(&self.fd, from, &dest.fd, to).map_err(|e| {
            let p = self.path.join(from);
            errno_msg(e, &format!("renaming to {} from", dest.path.join(to).display()), &p)
        })
    }

    /// Remove `name` whatever it is (a directory with everything in it; a symlink itself, never
    /// what it points at); absent is fine.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        self.remove_at(name, 0)
    }

    fn remove_at(&self, name: &OsStr, depth: usize) -> io::Result<()> {
        check_name(name)?;
        let p = self.path.join(name);
        if depth >= MAX_DEPTH {
            return Err(io::Error::other(format!("{} is nested more than {MAX_DEPTH} deep", p.display())));
        }
        // The owner may swap a directory for a link (or back) meanwhile: whatever the name is
        // when we look again is removed as what it is then.
        let mut last = rustix::io::Errno::AGAIN;
        for _ in 0..20 {
            match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(()),
                Err(rustix::io::Errno::ISDIR) => {}
                Err(e) => return Err(errno_msg(e, "removing", &p)),
            }
            let fd = match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => return Ok(()),
                Err(e @ (rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)) => {
                    last = e;
                    continue;
                }
                Err(e) => return Err(errno_msg(e, "opening", &p)),
            };
            let d = Dir { fd, path: p.clone() };
            for n in d.names()? {
                d.remove_at(&n, depth + 1)?;
            }
            match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(()),
                Err(e @ (rustix::io::Errno::NOTDIR | rustix::io::Errno::NOTEMPTY)) => last = e,
                Err(e) => return Err(errno_msg(e, "removing", &p)),
            }
        }
        Err(errno_msg(last, "removing (it kept changing)", &p))
    }

    /// Read the regular file `name` whole. A symlink, a FIFO or a file with other hard links is refused.
    pub fn read_regular(&self, name: &OsStr, cap: u64) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let e = self.entry(name)?;
        let p = self.path.join(name);
        if e.kind != Kind::File || e.stat.st_nlink != 1 {
            return Err(io::Error::other(format!(
                "{} is not a plain file (a symbolic link, a special file or a file with other hard links): refused",
                p.display()
            )));
        }
        let mut out = Vec::new();
        e.open_file()?.take(cap).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Replace the regular file `name` by `bytes`, keeping its owner and mode: written to a new
    /// file (`O_EXCL`) beside it and renamed over it, so nothing is written through the old name.
    pub fn replace_file(&self, name: &OsStr, bytes: &[u8], tmp_tag: &str) -> io::Result<()> {
        use std::io::Write;
        let p = self.path.join(name);
        let e = self.entry(name)?;
        if e.kind != Kind::File {
            return Err(io::Error::other(format!("{} is not a plain file: refused", p.display())));
        }
        let tmp = OsString::from(format!(".{}.vigil-{tmp_tag}", name.to_string_lossy()));
        self.remove(&tmp)?;
        let mut f = self.create(&tmp, 0o600)?;
        let r = (|| {
            f.write_all(bytes)?;
            set_owner_mode(&f, e.stat.st_uid, e.stat.st_gid, e.stat.st_mode)?;
            f.sync_all()?;
            self.rename(&tmp, self, name)
        })();
        if r.is_err() {
            let _ = self.remove(&tmp);
        }
        r
    }
}

fn push_components(todo: &mut Vec<OsString>, p: &Path) {
    let mut v: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => v.push(n.to_os_string()),
            Component::ParentDir => v.push(OsString::from("..")),
            _ => {}
        }
    }
    todo.extend(v.into_iter().rev());
}

/// `fchown` then `fchmod` on a descriptor vigil holds.
pub fn set_owner_mode(fd: impl AsFd, uid: u32, gid: u32, m: u32) -> io::Result<()> {
    let (u, g) = ids(uid, gid);
    rustix::fs::fchown(&fd, u, g)?;
    rustix::fs::fchmod(&fd, mode(m))?;
    Ok(())
}

impl Entry {
    /// Open the pinned directory for listing (the same inode, never a symlink's target).
    pub fn open_dir(&self, path: PathBuf) -> io::Result<Dir> {
        if self.kind != Kind::Dir {
            return Err(io::Error::other(format!("{} is not a directory", path.display())));
        }
        let fd = reopen(&self.fd, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| errno_msg(e, "opening", &path))?;
        Ok(Dir { fd, path })
    }

    /// Open the pinned regular file for reading (the same inode: a swap after the check changes nothing).
    pub fn open_file(&self) -> io::Result<File> {
        if self.kind != Kind::File {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(File::from(reopen(&self.fd, OFlags::RDONLY)?))
    }

    /// The pinned symlink's target, read from the link itself.
    pub fn read_link(&self) -> io::Result<OsString> {
        if self.kind != Kind::Symlink {
            return Err(io::Error::other("not a symbolic link"));
        }
        let t = rustix::fs::readlinkat(&self.fd, c"", Vec::new())?;
        Ok(OsStr::from_bytes(t.as_bytes()).to_os_string())
    }
}
