//! The one reader: how every file of an audited root is found and opened.
//!
//! A tenant can put anything where vigil reads — a FIFO that blocks the first
//! `open`, a symlink to `/dev/zero` that never ends, a 4 GB sparse file, an
//! absolute symlink that means one file inside a mounted image and another on
//! the machine running vigil. So nothing here joins paths as text and opens
//! them: every path is resolved *inside* the root by the kernel (`openat2`
//! with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, retried on `EAGAIN`), or by
//! a component-by-component walk with the same meaning where the kernel has no
//! `openat2`. A file is first opened with `O_PATH` (which never blocks and
//! never has a device's side effects), checked with `fstat` to be a regular
//! file, and only then reopened for reading through its own descriptor, with a
//! size cap. [`crate::host::Host`] is the only user; `clippy.toml` bans the
//! `std::fs` readers everywhere else.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How often `openat2` is retried when the kernel answers `EAGAIN` (a rename or
/// mount raced the lookup) before the userspace walk takes over.
const EAGAIN_TRIES: usize = 8;
/// Symlinks followed in one lookup before it is an `ELOOP`, as the kernel does.
const MAX_LINKS: usize = 40;
/// `statfs.f_type` of a FUSE file system.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
/// `statfs.f_type` of the kernel's procfs.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Set once the kernel said it has no `openat2` (`ENOSYS`); every later lookup walks.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The audited root, opened as a directory to resolve paths beneath.
pub(crate) fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// `path` (absolute inside the root) opened with `O_PATH`, every symlink resolved
/// inside the root; a final symlink is followed only when `follow`.
pub(crate) fn resolve(root: BorrowedFd<'_>, path: &str, follow: bool) -> io::Result<OwnedFd> {
    let flags = if follow { OFlags::PATH | OFlags::CLOEXEC } else { OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC };
    resolve_with(root, path, follow, |p| {
        rfs::openat2(root, p, flags, Mode::empty(), ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS)
    })
}

/// [`resolve`] with the `openat2` call given, so the `EAGAIN` and `ENOSYS`
/// fallbacks can be driven by a test.
pub(crate) fn resolve_with(
    root: BorrowedFd<'_>,
    path: &str,
    follow: bool,
    openat2: impl Fn(&str) -> Result<OwnedFd, Errno>,
) -> io::Result<OwnedFd> {
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        for _ in 0..EAGAIN_TRIES {
            match openat2(path) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                // A seccomp filter (older container runtimes) answers EPERM for a syscall it does not know.
                Err(Errno::PERM) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    walk(root, path, follow)
}

/// The userspace lookup: one `openat(O_PATH|O_NOFOLLOW)` per component, symlinks
/// read and resolved against the root (absolute ones restart at the root, `..`
/// never climbs above it) — what `RESOLVE_IN_ROOT` does in the kernel.
pub(crate) fn walk(root: BorrowedFd<'_>, path: &str, follow: bool) -> io::Result<OwnedFd> {
    let mut todo: VecDeque<Vec<u8>> = path.as_bytes().split(|b| *b == b'/').map(<[u8]>::to_vec).collect();
    // The directories from the root down to the current one (the root itself is not in it).
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut last: Option<OwnedFd> = None;
    let mut links = 0usize;
    while let Some(name) = todo.pop_front() {
        if let Some(fd) = last.take() {
            stack.push(fd);
        }
        match name.as_slice() {
            b"" | b"." => continue,
            b".." => {
                stack.pop();
                continue;
            }
            _ => {}
        }
        let is_final = todo.iter().all(|c| c.is_empty() || c == b".");
        let cur = stack.last().map(|f| f.as_fd()).unwrap_or(root);
        let fd = rfs::openat(
            cur,
            OsStr::from_bytes(&name),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rfs::fstat(&fd)?;
        let kind = rfs::FileType::from_raw_mode(st.st_mode);
        if kind == rfs::FileType::Symlink && (!is_final || follow) {
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::LOOP.into());
            }
            let target = rfs::readlinkat(&fd, "", Vec::new())?.into_bytes();
            if target.starts_with(b"/") {
                stack.clear();
            }
            for c in target.split(|b| *b == b'/').rev() {
                todo.push_front(c.to_vec());
            }
            continue;
        }
        if !is_final && kind != rfs::FileType::Directory {
            return Err(Errno::NOTDIR.into());
        }
        last = Some(fd);
    }
    match last.or_else(|| stack.pop()) {
        Some(fd) => Ok(fd),
        None => Ok(rfs::openat(root, ".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?),
    }
}

/// Metadata of an `O_PATH` descriptor (`fstat` works on one).
pub(crate) fn metadata_of(fd: OwnedFd) -> io::Result<Metadata> {
    File::from(fd).metadata()
}

/// What a path turned out to be when it is not a regular file, in words.
pub(crate) fn kind_of(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("FIFO (named pipe)")
    } else if t.is_socket() {
        Some("socket")
    } else if t.is_char_device() {
        Some("character device")
    } else if t.is_block_device() {
        Some("block device")
    } else if t.is_dir() {
        Some("directory")
    } else {
        Some("special file")
    }
}

/// True when the descriptor is on a FUSE file system (its answers come from a
/// process, which may be the tenant's: it can block or lie).
pub(crate) fn on_fuse(fd: BorrowedFd<'_>) -> bool {
    rfs::fstatfs(fd).map(|s| s.f_type == FUSE_SUPER_MAGIC).unwrap_or(false)
}

/// True when the descriptor is on the kernel's procfs, whose every file the kernel makes:
/// a process's `comm` or `cmdline` there is never a FIFO, a device or a symlink.
pub(crate) fn on_procfs(fd: BorrowedFd<'_>) -> bool {
    rfs::fstatfs(fd).map(|s| s.f_type == PROC_SUPER_MAGIC).unwrap_or(false)
}

/// How [`open_in_procfs`] opens a name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProcOpen {
    /// A directory, `O_PATH`, to open names under.
    Dir,
    /// A directory, for listing (and `readlinkat` of what it lists).
    List,
    /// A file, for reading.
    Read,
}

/// `name` (one component, never a symlink followed) under `dir`, a directory of the
/// kernel's procfs ([`on_procfs`]), opened as `how` says.
pub(crate) fn open_in_procfs(dir: BorrowedFd<'_>, name: &str, how: ProcOpen) -> io::Result<OwnedFd> {
    if name.is_empty() || name.contains('/') || name == ".." {
        return Err(Errno::INVAL.into());
    }
    let how = match how {
        ProcOpen::Dir => OFlags::PATH | OFlags::DIRECTORY,
        ProcOpen::List => OFlags::RDONLY | OFlags::DIRECTORY,
        ProcOpen::Read => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    };
    Ok(rfs::openat(dir, name, how | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?)
}

/// Reopen a checked `O_PATH` descriptor for reading. Through `/proc/self/fd`
/// the very inode that was checked is opened; without `/proc` the path is
/// resolved again (non-blocking) and must still be the same inode.
pub(crate) fn reopen_for_read(
    root: BorrowedFd<'_>,
    path: &str,
    pathfd: &OwnedFd,
    checked: &Metadata,
) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rfs::open(format!("/proc/self/fd/{}", pathfd.as_raw_fd()), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
            let fd = resolve_with(root, path, true, |p| {
                rfs::openat2(root, p, flags, Mode::empty(), ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS)
            })?;
            // The walk hands back an O_PATH descriptor; a plain one is needed to read.
            if rfs::fcntl_getfl(&fd)?.contains(OFlags::PATH) {
                return Err(io::Error::other("cannot reopen the file for reading without /proc"));
            }
            fd
        }
        Err(e) => return Err(e.into()),
    };
    let file = File::from(fd);
    let now = file.metadata()?;
    if now.dev() != checked.dev() || now.ino() != checked.ino() || !now.is_file() {
        return Err(io::Error::other("the file changed while it was being opened"));
    }
    Ok(file)
}

/// A directory (an `O_PATH` descriptor) opened again for listing.
pub(crate) fn open_listing(dirfd: &OwnedFd) -> io::Result<OwnedFd> {
    Ok(rfs::openat(dirfd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// The names in a directory (an `O_PATH` descriptor), as raw bytes.
pub(crate) fn list(dirfd: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for e in rfs::Dir::new(open_listing(dirfd)?)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(name.to_vec());
        }
    }
    Ok(out)
}

/// The target of the symlink `fd` (opened `O_PATH|O_NOFOLLOW`).
pub(crate) fn link_target(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    Ok(rfs::readlinkat(fd, "", Vec::new())?.into_bytes())
}

/// A name or path made safe to show: control characters (a terminal's escape
/// sequences), bidi overrides and zero-width characters become visible
/// `\u{…}`/`\x..` escapes, so a file name can neither repaint the screen nor
/// read differently from what it is.
pub fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || is_invisible(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Raw bytes of a name shown as [`shown`] does, invalid UTF-8 as `\xNN`.
pub fn shown_bytes(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(&shown(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Bidi controls and zero-width characters: text that changes how the rest reads.
fn is_invisible(c: char) -> bool {
    matches!(c as u32, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2069 | 0xfeff | 0x061c | 0x00ad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::fs::symlink;

    fn ino(fd: &OwnedFd) -> u64 {
        metadata_of(fd.try_clone().unwrap()).unwrap().ino()
    }

    /// A root with the shapes lookups get wrong: absolute and relative links, `..` past the top, a loop.
    fn tricky_root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc/nginx/sites-available")).unwrap();
        std::fs::create_dir_all(r.join("etc/nginx/sites-enabled")).unwrap();
        std::fs::write(r.join("etc/nginx/sites-available/default"), "inside").unwrap();
        std::fs::write(r.join("etc/hostname"), "image").unwrap();
        symlink("/etc/nginx/sites-available/default", r.join("etc/nginx/sites-enabled/default")).unwrap();
        symlink("../../../../../../etc/hostname", r.join("etc/nginx/up")).unwrap();
        symlink("/etc/nginx", r.join("nginx")).unwrap();
        symlink("loop-b", r.join("loop-a")).unwrap();
        symlink("loop-a", r.join("loop-b")).unwrap();
        d
    }

    #[test]
    fn the_walk_resolves_like_the_kernel() {
        let d = tricky_root();
        let root = open_root(d.path()).unwrap();
        let kernel_has_openat2 = resolve_with(root.as_fd(), "/etc/hostname", true, |p| {
            rfs::openat2(root.as_fd(), p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT)
        })
        .is_ok();
        for (path, want) in [
            ("/etc/nginx/sites-enabled/default", "etc/nginx/sites-available/default"),
            ("/etc/nginx/up", "etc/hostname"),
            ("/nginx/sites-enabled/default", "etc/nginx/sites-available/default"),
            ("/nginx/../hostname", "etc/hostname"),
            ("/", "."),
        ] {
            let expect = std::fs::metadata(d.path().join(want)).unwrap().ino();
            let walked = walk(root.as_fd(), path, true).unwrap();
            assert_eq!(ino(&walked), expect, "walk {path}");
            if kernel_has_openat2 {
                assert_eq!(ino(&resolve(root.as_fd(), path, true).unwrap()), expect, "openat2 {path}");
            }
        }
        // Without following, the final link itself.
        let link = walk(root.as_fd(), "/etc/nginx/sites-enabled/default", false).unwrap();
        assert_eq!(link_target(&link).unwrap(), b"/etc/nginx/sites-available/default");
        // A loop ends in ELOOP, not a hang; a missing file is ENOENT.
        assert_eq!(walk(root.as_fd(), "/loop-a", true).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        assert_eq!(walk(root.as_fd(), "/etc/none", true).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(walk(root.as_fd(), "/etc/hostname/x", true).unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn eagain_is_retried_then_the_walk_answers() {
        let d = tricky_root();
        let root = open_root(d.path()).unwrap();
        let calls = Cell::new(0);
        let fd = resolve_with(root.as_fd(), "/etc/nginx/sites-enabled/default", true, |_| {
            calls.set(calls.get() + 1);
            Err(Errno::AGAIN)
        })
        .unwrap();
        assert_eq!(calls.get(), EAGAIN_TRIES);
        assert_eq!(ino(&fd), std::fs::metadata(d.path().join("etc/nginx/sites-available/default")).unwrap().ino());
        // A transient EAGAIN then success: the kernel's answer is used.
        let calls = Cell::new(0);
        let fd = resolve_with(root.as_fd(), "/etc/hostname", true, |p| {
            calls.set(calls.get() + 1);
            if calls.get() < 3 { Err(Errno::AGAIN) } else { walk(root.as_fd(), p, true).map_err(|_| Errno::IO) }
        })
        .unwrap();
        assert_eq!(calls.get(), 3);
        assert_eq!(ino(&fd), std::fs::metadata(d.path().join("etc/hostname")).unwrap().ino());
    }

    #[test]
    fn names_are_shown_escaped() {
        assert_eq!(shown("a\x1b[2Jb\n"), "a\\x1b[2Jb\\x0a");
        assert_eq!(shown("evil\u{202e}gpj.php\u{200b}"), "evil\\u{202e}gpj.php\\u{200b}");
        assert_eq!(shown("plain/päth"), "plain/päth");
        assert_eq!(shown_bytes(b"x\xffy\x07"), "x\\xffy\\x07");
    }
}
