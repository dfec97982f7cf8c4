//! Kernel confinement for read-only work: the promise that a read-only tool
//! changes nothing, kept by the kernel rather than by code review.
//!
//! [`confine`] turns the calling process into a worker that can read every file
//! and change nothing: it drops to a non-root user keeping only
//! `CAP_DAC_READ_SEARCH` ([`creds`]), enters an empty network namespace, puts
//! itself in a Landlock domain that allows reading and executing everywhere and
//! writing only below one scratch directory ([`landlock`]), and installs a
//! seccomp filter that refuses the system calls no reader needs ([`seccomp`]).
//! Each layer is applied best effort and reported in a [`Status`]: what held,
//! and for what did not, why. The caller decides whether a partial status is
//! good enough to go on.
//!
//! Landlock and seccomp confine only the calling *thread* (and what it starts):
//! call [`confine`] in a freshly executed, single-threaded process (it refuses
//! otherwise), or in a `pre_exec` hook of a child that is about to run a
//! program. Everything that needs to allocate is done by [`Prepared::new`];
//! [`Prepared::apply`] then only makes system calls.

pub mod creds;
pub mod landlock;
pub mod seccomp;

use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The environment variable that caps the Landlock ABI vigil asks for (`1`..),
/// so tests can show what each kernel generation enforces on a newer kernel.
pub const MAX_ABI_ENV: &str = "VIGIL_LANDLOCK_MAX_ABI";

/// The Landlock ABI cap from [`MAX_ABI_ENV`], if set to a number from 1 up.
pub fn max_abi_from_env() -> Option<u8> {
    std::env::var(MAX_ABI_ENV).ok()?.trim().parse::<u8>().ok().filter(|n| *n >= 1)
}

/// What a confined worker may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The one directory the worker may write in (create, write, remove files).
    /// `None`: it writes nowhere.
    pub scratch: Option<PathBuf>,
    /// The highest Landlock ABI to ask for (`None`: the kernel's).
    pub max_abi: Option<u8>,
    /// Enter a new, empty network namespace (no interface but a down loopback).
    pub no_network: bool,
    /// Keep `CAP_DAC_READ_SEARCH` across `exec` (inheritable + ambient), so a program
    /// the worker runs can read root-only files too. Off by default: a program the
    /// worker starts then runs with no capability at all.
    pub read_cap_on_exec: bool,
}

impl Policy {
    /// The worker's policy: write only in `scratch`, no network, the Landlock ABI
    /// capped by [`MAX_ABI_ENV`] when set.
    pub fn worker(scratch: Option<PathBuf>) -> Policy {
        Policy { scratch, max_abi: max_abi_from_env(), no_network: true, read_cap_on_exec: false }
    }
}

/// One layer of the confinement: held (with what), or not held and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer<T> {
    /// The layer is in force.
    Held(T),
    /// The layer is not in force, and why (in words an administrator can act on).
    NotHeld(String),
}

impl<T> Layer<T> {
    /// True when the layer is in force.
    pub fn held(&self) -> bool {
        matches!(self, Layer::Held(_))
    }

    /// Why the layer is not in force (`None` when it is).
    pub fn why_not(&self) -> Option<&str> {
        match self {
            Layer::Held(_) => None,
            Layer::NotHeld(w) => Some(w),
        }
    }
}

/// Who the worker runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The user id (real, effective, saved).
    pub uid: u32,
    /// The group id (real, effective, saved); no supplementary groups.
    pub gid: u32,
    /// The user's name (`_vigil`, `nobody`, ...).
    pub user: String,
    /// The capabilities left (permitted and effective), e.g. `["CAP_DAC_READ_SEARCH"]`.
    pub caps: Vec<String>,
}

/// The Landlock domain in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockHeld {
    /// The ABI the domain was built for (the kernel's, or lower when capped).
    pub abi: u8,
    /// The kernel's own ABI.
    pub kernel_abi: u8,
    /// What the domain denies, in words (`"write outside the scratch directory"`, ...).
    pub denies: Vec<String>,
}

/// The seccomp filter in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompHeld {
    /// The system calls refused with `EPERM` (some only for some arguments).
    pub denied: Vec<String>,
}

/// What held when a process was confined: every layer, with why for each that did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The non-root user and the one capability kept.
    pub identity: Layer<Identity>,
    /// `no_new_privs`: no `exec` can gain privileges (setuid files, file capabilities).
    pub no_new_privs: bool,
    /// The Landlock domain.
    pub landlock: Layer<LandlockHeld>,
    /// The seccomp filter.
    pub seccomp: Layer<SeccompHeld>,
    /// The empty network namespace.
    pub network: Layer<()>,
}

impl Status {
    /// Nothing confined, for the reason given (`--no-sandbox`, a failure before confining).
    pub fn not_enforced(why: &str) -> Status {
        Status {
            identity: Layer::NotHeld(why.into()),
            no_new_privs: false,
            landlock: Layer::NotHeld(why.into()),
            seccomp: Layer::NotHeld(why.into()),
            network: Layer::NotHeld(why.into()),
        }
    }

    /// The worker counts as confined: it runs as a non-root user, `no_new_privs`
    /// is set, and both a Landlock domain and the seccomp filter are in force.
    pub fn enforced(&self) -> bool {
        self.identity.held() && self.no_new_privs && self.landlock.held() && self.seccomp.held()
    }

    /// Every reason a layer did not hold, each once, in order.
    pub fn reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let layers: Vec<(&str, &str)> = [
            ("user", self.identity.why_not()),
            ("Landlock", self.landlock.why_not()),
            ("seccomp", self.seccomp.why_not()),
            ("network", self.network.why_not()),
        ]
        .into_iter()
        .filter_map(|(n, w)| w.map(|w| (n, w)))
        .collect();
        // One reason for every layer (`--no-sandbox`): say it once.
        if layers.len() == 4 && layers.iter().all(|(_, w)| *w == layers[0].1) {
            return vec![layers[0].1.to_string()];
        }
        for (name, w) in layers {
            {
                let line = format!("{name}: {w}");
                if !out.contains(&line) {
                    out.push(line);
                }
            }
        }
        if !self.no_new_privs && out.is_empty() {
            out.push("no_new_privs could not be set".into());
        }
        out
    }
}

impl fmt::Display for Status {
    /// One line: `enforced (Landlock ABI 7, seccomp, no network)`, or
    /// `not enforced (why; why)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enforced() {
            return write!(f, "not enforced ({})", self.reasons().join("; "));
        }
        let mut parts: Vec<String> = Vec::new();
        if let Layer::Held(l) = &self.landlock {
            if l.abi < l.kernel_abi {
                parts.push(format!("Landlock ABI {} of the kernel's {}", l.abi, l.kernel_abi));
            } else {
                parts.push(format!("Landlock ABI {}", l.abi));
            }
        }
        parts.push("seccomp".into());
        match &self.network {
            Layer::Held(()) => parts.push("no network".into()),
            Layer::NotHeld(w) => parts.push(format!("network not isolated: {w}")),
        }
        write!(f, "enforced ({})", parts.join(", "))
    }
}

/// Why confinement could not even be attempted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Landlock and seccomp would confine only one of several threads.
    #[error(
        "the process has {0} threads; confinement applies to the calling thread only, so it must run \
         in a freshly started single-threaded process (before any runtime starts)"
    )]
    Threaded(usize),
    /// The scratch directory cannot be opened.
    #[error("the scratch directory {path} cannot be opened: {source}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The user to run as cannot be found.
    #[error("{0}")]
    User(String),
}

/// Everything confinement needs, gathered before any layer is applied (this
/// allocates and opens files; [`Prepared::apply`] does neither).
#[derive(Debug)]
pub struct Prepared {
    user: Option<creds::Target>,
    domain: landlock::Domain,
    filter: seccomp::Filter,
    no_network: bool,
    read_cap_on_exec: bool,
}

impl Prepared {
    /// Look up the user, build the Landlock ruleset and compile the seccomp filter for `policy`.
    /// The user is only looked up (and changed to) when this process runs as root.
    pub fn new(policy: &Policy) -> Result<Prepared, Error> {
        let user = if creds::is_root() { Some(creds::Target::lookup().map_err(Error::User)?) } else { None };
        let domain = landlock::Domain::worker(policy.scratch.as_deref(), policy.max_abi)?;
        Ok(Prepared {
            user,
            domain,
            filter: seccomp::Filter::worker(),
            no_network: policy.no_network,
            read_cap_on_exec: policy.read_cap_on_exec,
        })
    }

    /// Apply every layer to the calling thread, in the one order that works:
    /// the network namespace and the user change while still root, then
    /// `no_new_privs`, the Landlock domain and last the seccomp filter (which
    /// refuses `unshare`). Only system calls: safe in a `pre_exec` hook. The
    /// [`Status`] is built afterwards by [`Prepared::status`].
    pub fn apply(&self) -> Applied {
        let network = if self.no_network { creds::unshare_net() } else { Err(libc::EPERM) };
        let identity = match &self.user {
            Some(t) => t.switch(self.read_cap_on_exec),
            None => Ok(()),
        };
        // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) only sets a flag on this thread.
        let nnp = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0;
        let landlock = self.domain.enter();
        let seccomp = self.filter.install();
        Applied { network, identity, nnp, landlock, seccomp }
    }

    /// What held, from what [`Prepared::apply`] returned.
    pub fn status(&self, a: &Applied) -> Status {
        let identity = match (&self.user, a.identity) {
            (Some(t), Ok(())) => Layer::Held(t.identity(self.read_cap_on_exec)),
            (Some(t), Err(e)) => Layer::NotHeld(format!(
                "could not switch to {} (uid {}): {}",
                t.name,
                t.uid,
                io::Error::from_raw_os_error(e)
            )),
            (None, _) => match creds::current() {
                Some(id) => Layer::Held(id),
                None => Layer::NotHeld("cannot tell which user this process runs as".into()),
            },
        };
        let network = match a.network {
            Ok(()) => Layer::Held(()),
            Err(_) if !self.no_network => Layer::NotHeld("not asked for".into()),
            Err(e) => Layer::NotHeld(format!(
                "no network namespace could be created ({}; needs root or user namespaces)",
                io::Error::from_raw_os_error(e)
            )),
        };
        Status {
            identity,
            no_new_privs: a.nnp,
            landlock: self.domain.status(a.landlock),
            seccomp: self.filter.status(a.seccomp),
            network,
        }
    }
}

/// The raw outcome of each layer of [`Prepared::apply`] (an errno for each that failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    network: Result<(), i32>,
    identity: Result<(), i32>,
    nnp: bool,
    landlock: Result<(), i32>,
    seccomp: Result<(), i32>,
}

/// Confine the calling process by `policy` and say what held. Refuses (before
/// changing anything) when the process has more than one thread.
pub fn confine(policy: &Policy) -> Result<Status, Error> {
    let threads = thread_count();
    if threads > 1 {
        return Err(Error::Threaded(threads));
    }
    let p = Prepared::new(policy)?;
    let applied = p.apply();
    Ok(p.status(&applied))
}

/// The number of threads of this process (`/proc/self/task` entries; 1 when unknown).
fn thread_count() -> usize {
    #[expect(clippy::disallowed_methods, reason = "the kernel's view of this very process, not a tenant file")]
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> Status {
        Status {
            identity: Layer::Held(Identity {
                uid: 65534,
                gid: 65534,
                user: "nobody".into(),
                caps: vec!["CAP_DAC_READ_SEARCH".into()],
            }),
            no_new_privs: true,
            landlock: Layer::Held(LandlockHeld { abi: 7, kernel_abi: 7, denies: vec![] }),
            seccomp: Layer::Held(SeccompHeld { denied: vec!["ptrace".into()] }),
            network: Layer::Held(()),
        }
    }

    #[test]
    fn the_one_line_says_what_held() {
        let s = held();
        assert_eq!(s.to_string(), "enforced (Landlock ABI 7, seccomp, no network)");
        let mut capped = held();
        capped.landlock = Layer::Held(LandlockHeld { abi: 2, kernel_abi: 7, denies: vec![] });
        capped.network = Layer::NotHeld("no user namespaces".into());
        assert_eq!(
            capped.to_string(),
            "enforced (Landlock ABI 2 of the kernel's 7, seccomp, network not isolated: no user namespaces)"
        );
        let mut old = held();
        old.landlock = Layer::NotHeld("this kernel has no Landlock".into());
        assert_eq!(old.to_string(), "not enforced (Landlock: this kernel has no Landlock)");
        assert_eq!(Status::not_enforced("--no-sandbox was given").to_string(), "not enforced (--no-sandbox was given)");
    }

    #[test]
    fn the_abi_cap_comes_from_the_environment_only_as_a_positive_number() {
        // SAFETY: only this test reads or writes this variable.
        unsafe { std::env::set_var(MAX_ABI_ENV, "3") };
        assert_eq!(max_abi_from_env(), Some(3));
        unsafe { std::env::set_var(MAX_ABI_ENV, "0") };
        assert_eq!(max_abi_from_env(), None);
        unsafe { std::env::set_var(MAX_ABI_ENV, "seven") };
        assert_eq!(max_abi_from_env(), None);
        unsafe { std::env::remove_var(MAX_ABI_ENV) };
    }

    #[test]
    fn a_threaded_process_is_refused_before_anything_changes() {
        // The test harness runs this on a thread of its own: at least two threads.
        let e = confine(&Policy::default()).unwrap_err();
        assert!(matches!(e, Error::Threaded(n) if n >= 2), "{e}");
        assert!(e.to_string().contains("single-threaded"), "{e}");
    }
}
