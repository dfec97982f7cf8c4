//! The Landlock domain: read and execute everywhere, write only where named.
//!
//! A domain is built with the `landlock` crate for the highest ABI both the
//! kernel and the caller's cap allow, then entered with two plain system calls
//! (`no_new_privs`, `landlock_restrict_self`), so entering works in a `pre_exec`
//! hook. Every right of the ABI is handled (denied unless a rule grants it):
//! - ABI 1: writing, removing, making files, directories, symlinks, devices,
//!   FIFOs and sockets; only `/dev/null` and the writable directories are exempt,
//!   and nowhere may devices, FIFOs or sockets be made;
//! - ABI 2: moving or linking files between directories (`refer`);
//! - ABI 3: truncating (`truncate`, `O_TRUNC`);
//! - ABI 4: TCP bind and connect (worker only; site code serves HTTP);
//! - ABI 5: `ioctl` on devices opened after the domain starts;
//! - ABI 6: signals to processes outside the domain, abstract unix sockets outside it.
//!
//! On a kernel without Landlock the domain is empty and [`Domain::status`] says why.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use ::landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};

use super::{LandlockHeld, Layer};

/// The kernel's Landlock ABI, or why there is none.
pub fn kernel_abi() -> Result<u8, String> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute and the VERSION flag the call only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v >= 1 {
        return Ok(u8::try_from(v).unwrap_or(u8::MAX));
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP) => Err("Landlock is built into this kernel but not enabled \
                                        (add `landlock` to the `lsm=` boot parameter)"
            .into()),
        _ => {
            Err("this kernel has no Landlock (it needs Linux 5.13 or later built with CONFIG_SECURITY_LANDLOCK)".into())
        }
    }
}

/// What the domain is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// vigil's read-only worker: no TCP either.
    Worker,
    /// A site's PHP in a staging copy: it serves HTTP, so TCP stays open.
    SiteCode,
}

/// A Landlock ruleset, built and ready to be entered.
#[derive(Debug)]
pub struct Domain {
    fd: Option<OwnedFd>,
    abi: u8,
    kernel_abi: u8,
    kind: Kind,
    writable: Vec<PathBuf>,
    why_not: Option<String>,
}

impl Domain {
    /// The worker's domain: writes only below `scratch`, no TCP, ABI capped at `max_abi`.
    pub fn worker(scratch: Option<&Path>, max_abi: Option<u8>) -> Result<Domain, super::Error> {
        let writable: Vec<&Path> = scratch.into_iter().collect();
        Self::build(Kind::Worker, &writable, max_abi).map_err(|(path, source)| super::Error::Scratch { path, source })
    }

    /// Site code's domain: writes only below the `writable` directories (the staging
    /// copy, its temporary and log directories); TCP stays open (it serves HTTP and
    /// reaches its database).
    pub fn site_code(writable: &[&Path], max_abi: Option<u8>) -> Result<Domain, String> {
        Self::build(Kind::SiteCode, writable, max_abi)
            .map_err(|(p, e)| format!("cannot confine site code to {}: {e}", p.display()))
    }

    fn build(kind: Kind, writable: &[&Path], max_abi: Option<u8>) -> Result<Domain, (PathBuf, std::io::Error)> {
        let writable_owned: Vec<PathBuf> = writable.iter().map(|p| p.to_path_buf()).collect();
        let kernel = match kernel_abi() {
            Ok(k) => k,
            Err(why) => {
                return Ok(Domain {
                    fd: None,
                    abi: 0,
                    kernel_abi: 0,
                    kind,
                    writable: writable_owned,
                    why_not: Some(why),
                });
            }
        };
        let abi_n = max_abi.map_or(kernel, |m| m.min(kernel)).max(1);
        let abi = ABI::from(i32::from(abi_n));
        // A missing directory is the caller's mistake, not a kernel limit: say so.
        for w in writable {
            if let Err(e) = PathFd::new(w) {
                return Err((w.to_path_buf(), std::io::Error::other(e.to_string())));
            }
        }
        match ruleset(kind, abi, abi_n, writable) {
            Ok(fd) => Ok(Domain { fd, abi: abi_n, kernel_abi: kernel, kind, writable: writable_owned, why_not: None }),
            Err(e) => Ok(Domain {
                fd: None,
                abi: abi_n,
                kernel_abi: kernel,
                kind,
                writable: writable_owned,
                why_not: Some(format!("the Landlock ruleset could not be built: {e}")),
            }),
        }
    }

    /// The ABI the domain was built for (0: none).
    pub fn abi(&self) -> u8 {
        if self.fd.is_some() { self.abi } else { 0 }
    }

    /// Enter the domain: `no_new_privs`, then `landlock_restrict_self`. Only system
    /// calls (no allocation): safe after `fork`. The errno when it failed
    /// (`ENOSYS` when there is no domain to enter).
    pub fn enter(&self) -> Result<(), i32> {
        let Some(fd) = &self.fd else { return Err(libc::ENOSYS) };
        // SAFETY: prctl and landlock_restrict_self take integers; the descriptor is ours and open.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(errno());
            }
            if libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) != 0 {
                return Err(errno());
            }
        }
        Ok(())
    }

    /// What the domain holds once [`Domain::enter`] returned `entered`.
    pub fn status(&self, entered: Result<(), i32>) -> Layer<LandlockHeld> {
        if let Some(why) = &self.why_not {
            return Layer::NotHeld(why.clone());
        }
        if let Err(e) = entered {
            return Layer::NotHeld(format!("landlock_restrict_self failed: {}", std::io::Error::from_raw_os_error(e)));
        }
        Layer::Held(LandlockHeld { abi: self.abi, kernel_abi: self.kernel_abi, denies: self.denies() })
    }

    /// What the domain denies, in words, for its ABI.
    pub fn denies(&self) -> Vec<String> {
        let places = if self.writable.is_empty() {
            "anywhere".to_string()
        } else {
            let w: Vec<String> = self.writable.iter().map(|p| p.display().to_string()).collect();
            format!("outside {}", w.join(", "))
        };
        let mut d = vec![
            format!("writing, creating or removing files {places}"),
            "making devices, FIFOs or sockets".to_string(),
        ];
        if self.abi >= 2 {
            d.push("moving or linking files between directories (except within the writable ones)".into());
        }
        if self.abi >= 3 {
            d.push(format!("truncating files {places}"));
        }
        if self.abi >= 4 && self.kind == Kind::Worker {
            d.push("TCP bind and connect".into());
        }
        if self.abi >= 5 {
            d.push("ioctl on devices it opens".into());
        }
        if self.abi >= 6 {
            d.push("signals to processes outside the sandbox".into());
            d.push("abstract unix sockets outside the sandbox".into());
        }
        if self.abi >= 9 && self.kind == Kind::Worker {
            d.push("connecting to unix sockets by path".into());
        }
        d
    }
}

/// The rights a writable directory gets: all of the ABI's but making devices, FIFOs and sockets.
fn write_rights(abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::from_all(abi) & !(AccessFs::MakeChar | AccessFs::MakeBlock | AccessFs::MakeFifo | AccessFs::MakeSock)
}

/// Build the ruleset; its descriptor (`None` if the kernel took none of it).
fn ruleset(kind: Kind, abi: ABI, abi_n: u8, writable: &[&Path]) -> Result<Option<OwnedFd>, String> {
    let e = |e: ::landlock::RulesetError| e.to_string();
    let p = |e: ::landlock::PathFdError| e.to_string();
    let mut rs = Ruleset::default().handle_access(AccessFs::from_all(abi)).map_err(e)?;
    if kind == Kind::Worker && abi_n >= 4 {
        rs = rs.handle_access(AccessNet::from_all(abi)).map_err(e)?;
    }
    if abi_n >= 6 {
        rs = rs.scope(Scope::from_all(abi)).map_err(e)?;
    }
    let mut created = rs
        .create()
        .map_err(e)?
        .add_rule(PathBeneath::new(PathFd::new("/").map_err(p)?, AccessFs::from_read(abi)))
        .map_err(e)?
        .add_rule(PathBeneath::new(PathFd::new("/dev/null").map_err(p)?, AccessFs::ReadFile | AccessFs::WriteFile))
        .map_err(e)?;
    for w in writable {
        created = created.add_rule(PathBeneath::new(PathFd::new(w).map_err(p)?, write_rights(abi))).map_err(e)?;
    }
    Ok(created.into())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EPERM)
}
