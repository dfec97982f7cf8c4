//! What confinement held, and the one line every review and report shows.
//!
//! An administrator reading a report must know whether the kernel enforced the
//! read-only promise for the run that produced it: `sandbox: enforced (Landlock ABI
//! 7, seccomp, no network)`, or `not enforced` and why. Said once, plainly, in every
//! format; the JSON carries each layer ([`vigil_tools::sandbox::Status`]).

use serde::{Deserialize, Serialize};
use vigil_tools::sandbox::Status;

/// What held for a review's read-only tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStatus {
    /// True when the worker ran confined (non-root, `no_new_privs`, Landlock and seccomp held).
    pub enforced: bool,
    /// `enforced (Landlock ABI 7, seccomp, no network)` or `not enforced (why)`.
    pub summary: String,
    /// Each layer: held (with what) or not and why.
    pub layers: Status,
}

impl From<Status> for SandboxStatus {
    fn from(layers: Status) -> Self {
        SandboxStatus { enforced: layers.enforced(), summary: layers.to_string(), layers }
    }
}

impl SandboxStatus {
    /// `--no-sandbox`.
    pub fn disabled() -> Self {
        Status::not_enforced("--no-sandbox was given (diagnosis only)").into()
    }

    /// The worker could not start or confine itself.
    pub fn failed(why: &str) -> Self {
        Status::not_enforced(&format!("the confined worker could not start: {why}")).into()
    }

    /// The line as reports print it: `sandbox: …`.
    pub fn line(&self) -> String {
        format!("sandbox: {}", self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_why_not_once() {
        assert_eq!(SandboxStatus::disabled().line(), "sandbox: not enforced (--no-sandbox was given (diagnosis only))");
        let failed = SandboxStatus::failed("no such file");
        assert!(!failed.enforced);
        assert_eq!(failed.line(), "sandbox: not enforced (the confined worker could not start: no such file)");
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["enforced"], false);
        assert_eq!(serde_json::from_value::<SandboxStatus>(json).unwrap(), failed);
    }
}
