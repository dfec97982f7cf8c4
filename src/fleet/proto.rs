//! What the controller and the remote vigil say to each other over ssh.
//!
//! A fleet run never opens a port and never installs an agent: the controller
//! runs `vigil __remote` on each host through the system `ssh` client, writes
//! one [`Request`] on its stdin and reads one [`Response`] from its stdout.
//! Secrets given to the remote (the run's digest key) travel on stdin, never
//! in argv; what comes back is already redacted by the remote's own
//! [`vigil_tools::Redactor`] and is size-capped by the controller.
//! [`Exchange`] is the one way the rest of the fleet code reaches a host, so
//! tests can put a local process in place of ssh.
//!
//! On the wire: the request as one line of JSON, then (for a review) the
//! controller's vulnerability feed, `feed_bytes` long; the answer is one JSON
//! document on stdout. Diagnostics go to stderr, which ssh passes through.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::inventory::Target;
use super::outcome::{Failure, SecretDigest};
use crate::review::Review;

/// The protocol's version: a remote that answers another one is refused.
pub const VERSION: u32 = 1;

/// One request to the remote vigil.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// The deterministic, confined, read-only review of the host (or of `root` on it).
    Review {
        /// The remote `--root` (`vigil_root`).
        root: Option<String>,
        /// This run's random key for the keyed digests of secrets (hex), or none.
        key: Option<String>,
        /// The controller's vulnerability feed follows the request line: this many bytes (0: none).
        #[serde(default)]
        feed_bytes: u64,
    },
    /// One read-only tool, through the remote's gate and confined worker.
    Tool {
        /// The remote `--root`.
        root: Option<String>,
        /// The tool.
        name: String,
        /// Its input.
        input: Value,
    },
    /// Plan a change on the host; nothing is changed.
    Plan {
        /// The remote `--root`.
        root: Option<String>,
        /// The mutating tool.
        name: String,
        /// Its input.
        input: Value,
    },
    /// Carry out exactly the plan the administrator approved at the controller.
    Apply {
        /// The remote `--root`.
        root: Option<String>,
        /// The mutating tool.
        name: String,
        /// Its input.
        input: Value,
        /// The digest of the approved plan (the remote recomputes and compares).
        digest: String,
        /// The host key fingerprint the plan was shown with (`SHA256:…`).
        host_key: String,
        /// Single use: the remote refuses a nonce it has seen.
        nonce: String,
        /// When the host made the plan (its own clock, Unix seconds, from [`Response::Plan`]):
        /// the remote refuses an approval older than its lifetime, so a used nonce need only be
        /// remembered that long. Absent (0) reads as expired.
        #[serde(default)]
        planned_at: i64,
    },
}

/// The remote's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Response {
    /// The review, judged by the host's own clock.
    Review {
        /// The review, as `vigil review --format json` would print it.
        review: Box<Review>,
        /// Keyed digests of the secrets found (empty without a key).
        #[serde(default)]
        digests: Vec<SecretDigest>,
    },
    /// A read-only tool's result, redacted as the model would see it.
    Tool {
        /// The result.
        output: Value,
    },
    /// A plan to show at the controller's gate.
    Plan {
        /// The redacted plan, as the gate shows it: the JSON of a [`vigil_tools::Plan`], so
        /// the controller checks it hashes like `digest` before showing it.
        plan: String,
        /// Its digest.
        digest: String,
        /// The host's key fingerprint (`SHA256:…`), to bind the approval to.
        host_key: String,
        /// When the host made this plan (its own clock, Unix seconds), sent back with the approval.
        #[serde(default)]
        planned_at: i64,
    },
    /// The approved plan ran.
    Applied {
        /// The tool's result.
        output: Value,
    },
    /// The request could not be carried out; nothing was changed.
    Error {
        /// What kind of failure (`refused`, `changed`, `invalid`, `failed`).
        kind: String,
        /// Why, for the administrator.
        message: String,
    },
}

/// Reach one host: send a request, get its answer, by `deadline`.
pub trait Exchange: Send + Sync {
    /// One request to `target`; a transport, login, sudo or deadline problem is a [`Failure`].
    fn exchange(&self, target: &Target, request: &Request, deadline: Instant) -> Result<Response, Failure>;
}
