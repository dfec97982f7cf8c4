//! How a fleet run went on each host: the data between the runner and the report.

use serde::{Deserialize, Serialize};

use crate::review::Review;

/// A secret judged on its host, returned only as a slow keyed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretDigest {
    /// Where the secret is, without the secret (`/var/www/shop/wp-config.php DB_PASSWORD`).
    pub place: String,
    /// Hex keyed-KDF output under this run's key.
    pub digest: String,
}

/// Why a host has no review this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// No connection (refused, no route, name not resolved, connect timeout).
    Unreachable,
    /// The connection was made but the login was refused (key, host key).
    AuthFailed,
    /// `ansible_become` is set and `sudo -n` asks for a password or is denied.
    NoSudo,
    /// The host did not finish by its deadline.
    Timeout,
    /// The host's architecture has no vigil build (nothing was attempted), or its push
    /// directory is `noexec` and it has neither python3 nor perl to run vigil from a memfd.
    Unsupported,
    /// Anything else (the remote died, answered nonsense, too much output).
    Error,
}

impl Reason {
    /// The name reports and JSON use (`auth-failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unreachable => "unreachable",
            Reason::AuthFailed => "auth-failed",
            Reason::NoSudo => "no-sudo",
            Reason::Timeout => "timeout",
            Reason::Unsupported => "unsupported",
            Reason::Error => "error",
        }
    }
}

/// A host that could not be reviewed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The kind.
    pub reason: Reason,
    /// ssh's or the remote's own words (controls stripped), for the administrator.
    pub detail: String,
}

/// One host's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Reviewed: its review and the keyed digests of its secrets.
    Reviewed {
        /// The review.
        review: Box<Review>,
        /// Keyed digests (held in memory for this run only; never saved).
        #[serde(skip)]
        digests: Vec<SecretDigest>,
    },
    /// Not reviewed.
    Failed(Failure),
}

/// One host of the fleet run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostOutcome {
    /// The inventory's name for the host.
    pub name: String,
    /// What ssh connected to.
    pub address: String,
    /// Wall time spent on the host, connection included.
    pub ms: u64,
    /// Reviewed or failed.
    #[serde(flatten)]
    pub status: Status,
}

/// A whole fleet run, in inventory order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetRun {
    /// The inventory file, as named.
    pub inventory: String,
    /// The `--limit` pattern, if any.
    pub limit: Option<String>,
    /// When the run started (the controller's clock, RFC 3339).
    pub started: String,
    /// Every selected host.
    pub hosts: Vec<HostOutcome>,
}
