//! The worker's identity: a non-root user that keeps only `CAP_DAC_READ_SEARCH`.
//!
//! With that one capability the worker can open and list every file (reading
//! is its job), while the ordinary permission checks still apply to everything
//! else: it can write no root-owned file, signal no root process and connect to
//! no root-only socket. The user is a dedicated `_vigil` system user when the
//! administrator made one, else `nobody`: a uid of its own means the worker
//! shares no processes or files with any other service (`nobody` may be used by
//! NFS or an old daemon, whose processes the worker could then signal).
//!
//! The switch keeps the capability across `setresuid` with securebits
//! (`SECBIT_NO_SETUID_FIXUP`), then locks them so the process can never regain
//! root: `SECBIT_NOROOT` (uid 0 gains nothing at `exec`), no ambient raise, the
//! bounding set emptied but for the one capability, no supplementary groups.
//! Every step is a plain system call, so it can run in a `pre_exec` hook.

use std::io;

use super::Identity;

/// `CAP_DAC_READ_SEARCH`: bypass read and search permission checks.
pub const CAP_DAC_READ_SEARCH: u32 = 2;
/// `CAP_SETPCAP`: needed to change securebits and the bounding set.
const CAP_SETPCAP: u32 = 8;

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// The securebits set before the user changes.
const SECUREBITS: libc::c_ulong = SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED;
/// ... and added once the ambient set is final.
const SECUREBITS_FINAL: libc::c_ulong = SECUREBITS | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// True when this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The user the worker becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// User id.
    pub uid: u32,
    /// The user's primary group id.
    pub gid: u32,
    /// The user's name.
    pub name: String,
}

/// The users the worker may run as, best first.
pub const USERS: [&str; 2] = ["_vigil", "nobody"];

impl Target {
    /// `_vigil` when it exists, else `nobody`, from the live `/etc/passwd`.
    pub fn lookup() -> Result<Target, String> {
        let passwd = live_passwd().map_err(|e| format!("cannot read /etc/passwd to find the worker's user: {e}"))?;
        Self::from_passwd(&passwd).ok_or_else(|| {
            "neither `_vigil` nor `nobody` is in /etc/passwd: create a system user for vigil's worker \
             (`adduser --system --no-create-home --group _vigil`)"
                .into()
        })
    }

    /// The first of [`USERS`] in a passwd file's text, if it is not uid 0.
    pub fn from_passwd(passwd: &str) -> Option<Target> {
        USERS.iter().find_map(|want| {
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() < 4 || f[0] != *want {
                    return None;
                }
                let (uid, gid) = (f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?);
                (uid != 0 && gid != 0).then(|| Target { uid, gid, name: f[0].to_string() })
            })
        })
    }

    /// What [`Target::switch`] leaves, for the status.
    pub fn identity(&self, read_cap_on_exec: bool) -> Identity {
        let mut caps = vec!["CAP_DAC_READ_SEARCH".to_string()];
        if read_cap_on_exec {
            caps.push("CAP_DAC_READ_SEARCH (ambient: kept across exec)".into());
        }
        Identity { uid: self.uid, gid: self.gid, user: self.name.clone(), caps }
    }

    /// Become this user, keeping only `CAP_DAC_READ_SEARCH`; the errno of the first step that failed.
    /// Only system calls (no allocation): safe after `fork`.
    pub fn switch(&self, read_cap_on_exec: bool) -> Result<(), i32> {
        // SAFETY: each call below is a plain system call changing only this
        // thread's (or process's) credentials; pointers are to locals.
        unsafe {
            check(libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0))?;
            for cap in 0..64 {
                if cap != CAP_DAC_READ_SEARCH
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                    && errno() != libc::EINVAL
                {
                    return Err(errno());
                }
            }
            check(libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0))?;
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(self.gid, self.gid, self.gid))?;
            check(libc::setresuid(self.uid, self.uid, self.uid))?;
            let inheritable = if read_cap_on_exec { 1 << CAP_DAC_READ_SEARCH } else { 0 };
            // Keep CAP_SETPCAP a moment longer: it is needed to lock the securebits.
            let keep = (1 << CAP_DAC_READ_SEARCH) | (1 << CAP_SETPCAP);
            capset(keep, inheritable)?;
            if read_cap_on_exec {
                check(libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    CAP_DAC_READ_SEARCH as libc::c_ulong,
                    0,
                    0,
                ))?;
            }
            check(libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS_FINAL, 0, 0, 0))?;
            capset(1 << CAP_DAC_READ_SEARCH, inheritable)?;
        }
        Ok(())
    }
}

/// Set this thread's permitted and effective capabilities to `keep` (the low 32 only).
fn capset(keep: u32, inheritable: u32) -> Result<(), i32> {
    let hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData { effective: keep, permitted: keep, inheritable }, CapData::default()];
    // SAFETY: capset reads the header and two data structs we own.
    check(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) } as libc::c_int)
}

/// This thread's effective capabilities (the low 64), or `None` when they cannot be read.
pub fn effective_caps() -> Option<u64> {
    let mut hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes into the header and two data structs we own.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut CapHeader, data.as_mut_ptr()) };
    (r == 0).then(|| u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// Enter a new, empty network namespace (its loopback is down: nothing is reachable).
pub fn unshare_net() -> Result<(), i32> {
    // SAFETY: unshare only changes this thread's namespaces.
    check(unsafe { libc::unshare(libc::CLONE_NEWNET) })
}

/// Who this (non-root) process already is, for the status when there is nothing to drop.
pub fn current() -> Option<Identity> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 {
        return None;
    }
    let user = live_passwd()
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"));
    let caps = effective_caps().unwrap_or(0);
    let names = (0..64).filter(|c| caps & (1 << c) != 0).map(|c| format!("capability {c}")).collect();
    Some(Identity { uid, gid, user, caps: names })
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EPERM)
}

fn check(r: libc::c_int) -> Result<(), i32> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// This machine's own account database (not an audited root's), read before the worker is
/// confined. Read directly rather than through `Host`, which runs programs through `spawn`,
/// which confines site code with this module: the leaf stays a leaf.
#[expect(clippy::disallowed_methods, reason = "the live machine's /etc/passwd (root-owned), not a tenant file")]
fn live_passwd() -> std::io::Result<String> {
    std::fs::read_to_string("/etc/passwd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dedicated_user_is_preferred_to_nobody() {
        let both = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n\
                    _vigil:x:996:996::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(Target::from_passwd(both).unwrap().name, "_vigil");
        let only_nobody = "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(Target::from_passwd(only_nobody), Some(Target { uid: 65534, gid: 65534, name: "nobody".into() }));
        // A `_vigil` that is root in disguise is never chosen.
        let disguised = "_vigil:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
        assert_eq!(Target::from_passwd(disguised).unwrap().name, "nobody");
        assert_eq!(Target::from_passwd("root:x:0:0::/root:/bin/sh\n"), None);
        assert_eq!(Target::from_passwd("nobody:x:notanumber:1::/:/bin/false\n"), None);
    }
}
