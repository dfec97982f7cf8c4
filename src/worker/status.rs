//! What confinement held, and the one line every review and report shows.
//!
//! An administrator reading a report must know whether the kernel enforced the
//! read-only promise for the run that produced it: `sandbox: enforced (Landlock ABI
//! 7, seccomp, no network)`, or `not enforced` and why. Said once, plainly, in every
//! format; the JSON carries the parts.

use serde::{Deserialize, Serialize};

/// What held in the worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStatus {
    /// True when every layer held (the read-only tools ran confined).
    pub enforced: bool,
    /// The Landlock ABI in force, when Landlock held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u32>,
    /// The seccomp filter is loaded.
    #[serde(default)]
    pub seccomp: bool,
    /// The worker has its own empty network namespace.
    #[serde(default)]
    pub no_network: bool,
    /// The worker runs as a non-root uid with only `CAP_DAC_READ_SEARCH`.
    #[serde(default)]
    pub non_root: bool,
    /// Why a layer did not hold (or why there is no worker), in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why_not: Vec<String>,
}

impl SandboxStatus {
    /// `--no-sandbox`.
    pub fn disabled() -> Self {
        SandboxStatus { why_not: vec!["--no-sandbox was given (diagnosis only)".into()], ..Default::default() }
    }

    /// The worker could not start.
    pub fn failed(why: &str) -> Self {
        SandboxStatus { why_not: vec![format!("the confined worker could not start: {why}")], ..Default::default() }
    }

    /// Settle `enforced` from the layers: all of them, and nothing said against.
    pub fn settle(mut self) -> Self {
        self.enforced =
            self.landlock_abi.is_some() && self.seccomp && self.no_network && self.non_root && self.why_not.is_empty();
        self
    }

    /// `enforced (Landlock ABI 7, seccomp, no network)` or `not enforced (why; held: …)`.
    pub fn describe(&self) -> String {
        let mut held = Vec::new();
        if let Some(abi) = self.landlock_abi {
            held.push(format!("Landlock ABI {abi}"));
        }
        if self.seccomp {
            held.push("seccomp".into());
        }
        if self.no_network {
            held.push("no network".into());
        }
        if self.enforced {
            return format!("enforced ({})", held.join(", "));
        }
        if self.non_root {
            held.push("non-root uid".into());
        }
        let mut why = self.why_not.join("; ");
        if why.is_empty() {
            why = "a layer did not hold".into();
        }
        if held.is_empty() {
            format!("not enforced ({why})")
        } else {
            format!("not enforced ({why}; held: {})", held.join(", "))
        }
    }

    /// The line as reports print it: `sandbox: …`.
    pub fn line(&self) -> String {
        format!("sandbox: {}", self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_held_or_why_not() {
        let full = SandboxStatus {
            landlock_abi: Some(7),
            seccomp: true,
            no_network: true,
            non_root: true,
            ..Default::default()
        }
        .settle();
        assert_eq!(full.line(), "sandbox: enforced (Landlock ABI 7, seccomp, no network)");
        assert_eq!(SandboxStatus::disabled().line(), "sandbox: not enforced (--no-sandbox was given (diagnosis only))");
        let old = SandboxStatus {
            seccomp: true,
            no_network: true,
            non_root: true,
            why_not: vec!["this kernel has no Landlock".into()],
            ..Default::default()
        }
        .settle();
        assert!(!old.enforced);
        assert_eq!(
            old.line(),
            "sandbox: not enforced (this kernel has no Landlock; held: seccomp, no network, non-root uid)"
        );
    }
}
