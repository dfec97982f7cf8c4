//! The worker's own steps before it reads anything: leave the network, then confine.
//!
//! Run on the worker's only thread, before its runtime starts: a network namespace of
//! its own (as root directly; otherwise inside a new user namespace), then the
//! confinement primitives. Each layer is best effort and reported: the review says
//! exactly what held (see [`super::status`]).

use super::SandboxStatus;

/// What the parent asked for.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The only directory the worker may write.
    pub scratch: std::path::PathBuf,
    /// Highest Landlock ABI to use (tests); `None`: the kernel's.
    pub abi_cap: Option<u32>,
    /// The uid and gid to run as.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
}

/// The uid and gid the worker drops to: `nobody`'s, else 65534.
pub fn worker_ids() -> (u32, u32) {
    let passwd = vigil_tools::Host::live().read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == "nobody").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?))).flatten()
        })
        .unwrap_or((65534, 65534))
}

/// Leave the host's network: a new, empty network namespace (loopback down, no routes).
pub fn leave_network() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        enter_user_namespace()?;
    }
    // SAFETY: unshare with a flag set has no memory effects; we are single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("no network namespace ({e}): this kernel or container does not allow one"));
    }
    Ok(())
}

/// As a non-root user: a user namespace mapping only ourselves, so a network namespace is allowed.
fn enter_user_namespace() -> Result<(), String> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: as above; single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("no user namespace ({e}), so no network namespace as a non-root user"));
    }
    let w = |p: &str, s: String| std::fs::write(p, s).map_err(|e| format!("{p}: {e}"));
    w("/proc/self/setgroups", "deny".into())?;
    w("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    w("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// Leave the network, then apply the confinement primitives; what held.
pub fn apply(policy: &Policy) -> SandboxStatus {
    let mut status = SandboxStatus::default();
    match leave_network() {
        Ok(()) => status.no_network = true,
        Err(e) => status.why_not.push(e),
    }
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) has no memory effects.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        status.why_not.push(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    let _ = policy;
    status.why_not.push("Landlock, seccomp and the uid drop are not in this build".into());
    status.settle()
}
