//! Who holds each socket: the `socket:[inode]` links under `ROOT/proc/*/fd`.
//!
//! The kernel's socket table names an inode, not a process, so owners are
//! found the way `ss -p` finds them: by reading every process's descriptor
//! links. Only listening inodes are looked for and the walk stops once each is
//! found; processes that may not be read (even root gets EACCES on some) are
//! counted, never fatal. A socket shared by a fork is held by several pids:
//! the lowest one is its owner.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use crate::host::{Host, Process};

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
/// descriptor instead of a whole path. On the kernel's procfs (`proc`, from
/// [`Host::kernel_proc`]) each process's directory is opened once and its files
/// relative to it ([`Host::process`]).
pub(super) fn walk_proc(host: &Host, proc: Option<&OwnedFd>, wanted: &OnceLock<HashSet<u64>>) -> Found {
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
            vec![walk_fds(host, proc, batch, known)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .chunks(batch.len().div_ceil(threads))
                    .map(|part| s.spawn(move || walk_fds(host, proc, part, known)))
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
fn walk_fds(host: &Host, proc: Option<&OwnedFd>, pids: &[u32], wanted: Option<&HashSet<u64>>) -> Walked {
    let mut hits = Vec::new();
    let mut owners = HashMap::new();
    let mut unreadable = 0;
    for &pid in pids {
        let Some(process) = host.process(proc, pid) else { continue };
        let readable = each_socket(&process, |inode| match wanted {
            Some(w) if w.contains(&inode) => {
                hits.push((inode, pid));
                owners.entry(pid).or_insert_with(|| owner_of(&process, pid));
            }
            Some(_) => {}
            None => hits.push((inode, pid)),
        });
        if readable == Some(false) {
            unreadable += 1;
        }
    }
    (hits, unreadable, owners)
}

/// Every socket inode process `pid` holds; empty when its descriptors cannot be read.
pub(super) fn socket_inodes(host: &Host, pid: u32) -> HashSet<u64> {
    let mut out = HashSet::new();
    if let Some(process) = host.process(host.kernel_proc().as_ref(), pid) {
        each_socket(&process, |inode| {
            out.insert(inode);
        });
    }
    out
}

/// Call `found` with the inode of each socket the process holds. `Some(false)` when
/// its `fd` directory exists but cannot be read, `None` when the process is gone.
///
/// `ROOT/proc/PID/fd` is opened once, listed, and each link is read relative
/// to it (`readlinkat`) by the name the listing gave: no path is built or
/// resolved per descriptor, and nothing is allocated per link.
fn each_socket(process: &Process<'_>, mut found: impl FnMut(u64)) -> Option<bool> {
    use rustix::fs as rfs;
    let listing = match process.fd_dir() {
        Ok(fd) => fd,
        Err(e) if e.is_not_found() => return None,
        Err(_) => return Some(false),
    };
    let Ok(mut dir) = rfs::Dir::new(listing) else {
        return Some(false);
    };
    let mut buf = [0u8; 64];
    while let Some(entry) = dir.read() {
        let (Ok(entry), Ok(at)) = (entry, dir.fd()) else {
            return Some(false);
        };
        // The listing also has `.` and `..`, which are no links: readlinkat fails on them.
        let Ok(n) = rfs::readlinkat_raw(at, entry.file_name(), &mut buf[..]) else {
            continue;
        };
        // A target that fills the buffer may be cut short; a socket's never does.
        if let Some(inode) = buf.get(..n).filter(|_| n < buf.len()).and_then(socket_inode) {
            found(inode);
        }
    }
    Some(true)
}

/// `socket:[INODE]` → INODE.
fn socket_inode(link: &[u8]) -> Option<u64> {
    std::str::from_utf8(link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?).ok()?.parse().ok()
}

/// Process `pid`'s name and command line ([`owner_of`]); `proc` is [`Host::kernel_proc`].
pub(super) fn read_owner(host: &Host, proc: Option<&OwnedFd>, pid: u32) -> Owner {
    match host.process(proc, pid) {
        Some(process) => owner_of(&process, pid),
        None => Owner { pid, name: String::new(), cmdline: String::new() },
    }
}

/// A process's name and command line (arguments with spaces quoted, secrets redacted, cut at 300 characters).
fn owner_of(process: &Process<'_>, pid: u32) -> Owner {
    let name = process.read("comm").map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let raw = process.read("cmdline").unwrap_or_default();
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
