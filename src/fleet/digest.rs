//! Cross-server password reuse, found without a password leaving its host.

use super::outcome::{HostOutcome, SecretDigest};

/// One secret found on two or more hosts: where, by host, without the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reuse {
    /// `(host, place)` pairs sharing one secret.
    pub places: Vec<(String, String)>,
}

/// The keyed digests of the secrets on this host (run on the remote).
pub fn collect(_host: &vigil_tools::Host, _key: &[u8]) -> Vec<SecretDigest> {
    Vec::new()
}

/// Secrets shared between hosts of one run (run on the controller).
pub fn reused(_hosts: &[HostOutcome]) -> Vec<Reuse> {
    Vec::new()
}
