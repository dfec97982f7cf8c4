//! Who holds each socket: the `socket:[inode]` links under `ROOT/proc/*/fd`.
//!
//! The kernel's socket table names an inode, not a process, so owners are
//! found the way `ss -p` finds them: by reading every process's descriptor
//! links. Only listening inodes are looked for and the walk stops once each is
//! found; processes that may not be read (even root gets EACCES on some) are
//! counted, never fatal. A socket shared by a fork is held by several pids:
//! the lowest one is its owner.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use crate::host::Host;

/// A socket's owning process.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub pid: u32,
    pub name: String,
    pub cmdline: String,
}

/// What the walk found: the lowest pid holding each inode, the owners read so
/// far (name, command line), and how many pids were unreadable.
pub(super) type Found = (HashMap<u64, u32>, HashMap<u32, Owner>, usize);

/// Walk `/proc/*/fd` for socket owners. Until `wanted` is known every socket is
/// recorded; once it is, only wanted ones, and the walk stops when each has
/// been found. Pids are walked in ascending batches spread over a few threads
/// (the work is syscalls into `/proc`), and each link is read relative to its
/// open `fd` directory (`readlinkat`), so the kernel resolves one name per
/// descriptor instead of a whole path.
pub(super) fn walk_proc(host: &Host, wanted: &OnceLock<HashSet<u64>>) -> Found {
    const BATCH: usize = 256;
    let mut lowest: HashMap<u64, u32> = HashMap::new();
    let mut owners: HashMap<u32, Owner> = HashMap::new();
    let mut unreadable = 0;
    let Ok(entries) = host.read_dir("/proc") else {
        return (lowest, owners, 0);
    };
    let mut pids: Vec<u32> = entries.iter().filter_map(|n| n.parse().ok()).collect();
    pids.sort_unstable();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    for batch in pids.chunks(BATCH) {
        let known = wanted.get();
        if known.is_some_and(|w| w.iter().all(|i| lowest.contains_key(i))) {
            break;
        }
        let parts: Vec<Walked> = if threads == 1 || batch.len() < 32 {
            vec![walk_fds(host, batch, known)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .chunks(batch.len().div_ceil(threads))
                    .map(|part| s.spawn(move || walk_fds(host, part, known)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
            })
        };
        for (hits, n, read) in parts {
            unreadable += n;
            owners.extend(read);
            for (inode, pid) in hits {
                lowest.entry(inode).and_modify(|p| *p = (*p).min(pid)).or_insert(pid);
            }
        }
    }
    (lowest, owners, unreadable)
}

/// `(inode, pid)` hits, unreadable pids, the owners' names and command lines.
type Walked = (Vec<(u64, u32)>, usize, HashMap<u32, Owner>);

/// The socket inodes each of `pids` holds (only wanted ones once `wanted` is
/// known), how many pids could not be read, and the name and command line of
/// every pid holding a wanted one.
#[expect(
    clippy::disallowed_methods,
    reason = "/proc/PID/fd is a kernel directory (resolved in the root by Host::path), opened only to readlinkat its entries"
)]
fn walk_fds(host: &Host, pids: &[u32], wanted: Option<&HashSet<u64>>) -> Walked {
    let mut hits = Vec::new();
    let mut owners = HashMap::new();
    let mut unreadable = 0;
    for &pid in pids {
        let Ok(real) = host.path(&format!("/proc/{pid}/fd")) else {
            continue;
        };
        let (dir, rd) = match (std::fs::File::open(&real), std::fs::read_dir(&real)) {
            (Ok(dir), Ok(rd)) => (dir, rd),
            _ => {
                unreadable += 1;
                continue;
            }
        };
        for entry in rd.flatten() {
            if let Some(inode) = link_inode(&dir, &entry.file_name()) {
                match wanted {
                    Some(w) if w.contains(&inode) => {
                        hits.push((inode, pid));
                        owners.entry(pid).or_insert_with(|| read_owner(host, pid));
                    }
                    Some(_) => {}
                    None => hits.push((inode, pid)),
                }
            }
        }
    }
    (hits, unreadable, owners)
}

/// The socket inode a `fd` link in `dir` points to (`socket:[INODE]`), if it is a socket.
fn link_inode(dir: &std::fs::File, name: &std::ffi::OsStr) -> Option<u64> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(name.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: `dir` is an open directory for the whole call, `c` is NUL-terminated and
    // `buf` is writable for the length passed; readlinkat never writes past it.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).ok().filter(|n| *n > 0 && *n < buf.len())?;
    socket_inode(std::str::from_utf8(&buf[..n]).ok()?)
}

fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// A process's name and command line (arguments with spaces quoted, secrets redacted, cut at 300 characters).
pub(super) fn read_owner(host: &Host, pid: u32) -> Owner {
    let name = host.read_to_string(&format!("/proc/{pid}/comm")).map(|s| s.trim().to_string()).unwrap_or_default();
    let raw = host.read(&format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // An argument with a space is quoted, so `--password=two words` stays one word for the
    // redactor; it is redacted before it is cut, so a cut never splits a secret from its flag.
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let a = String::from_utf8_lossy(p);
            match (a.contains(char::is_whitespace), a.contains('\''), a.contains('"')) {
                (true, false, _) => format!("'{a}'"),
                (true, true, false) => format!("\"{a}\""),
                _ => a.into_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let cmdline: String = crate::redact::Redactor::global().text(&cmdline).chars().take(300).collect();
    Owner { pid, name, cmdline }
}
