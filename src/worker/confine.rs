//! The worker's confinement, as the parent asked for it: the policy and the uid it runs as.
//!
//! Applied by [`vigil_tools::sandbox::confine`] on the worker's only thread, before its
//! runtime starts and before it reads anything. Each layer is best effort and reported:
//! the review says exactly what held (see [`super::status`]).

use std::path::PathBuf;

use vigil_tools::sandbox::{self, creds};

use super::SandboxStatus;

/// The uid and gid the worker runs as (`_vigil`, else `nobody`), when vigil runs as root.
pub fn worker_ids() -> Option<(u32, u32)> {
    creds::is_root().then(creds::Target::lookup).and_then(Result::ok).map(|t| (t.uid, t.gid))
}

/// Confine this (single-threaded) process: write only in `scratch`, no network, the Landlock
/// ABI capped by [`sandbox::MAX_ABI_ENV`] when set. What held, or why nothing did.
pub fn apply(scratch: PathBuf) -> SandboxStatus {
    match sandbox::confine(&sandbox::Policy::worker(Some(scratch))) {
        Ok(status) => status.into(),
        Err(e) => sandbox::Status::not_enforced(&e.to_string()).into(),
    }
}
