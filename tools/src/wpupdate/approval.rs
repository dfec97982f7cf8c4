//! Single-use approvals for deferred applies. When an administrator confirms
//! `wordpress_apply_update` with `at`, the confirmed plan's apply steps are
//! hashed and a random token is issued for exactly that hash, kept 0600 in
//! `STATE/wp-approvals/` (under the hash of the token). The job scheduled for
//! later runs `vigil wp apply SITE ID --approval TOKEN`; the gate recomputes
//! the plan then, and the token opens it only when the plan hashes the same.
//! Redeeming deletes it, whatever the outcome: nothing else pre-approves.
//!
//! The digest is the registry's own ([`crate::approval::plan_digest`]: SHA-256 of the
//! redacted plan), the one the gate turns into an approval when the token holds, so a
//! token and an interactive confirmation bind to the same thing. Tokens issued before
//! approval moved into the registry hashed the same redacted plan the same way, so they
//! stay valid unchanged; one whose plan no longer matches is refused ("the plan changed
//! since it was approved … stage and confirm again").

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{APPROVAL_DIR, failed, mkdir_private, write_atomic};
use crate::tool::ToolError;

/// What a token approves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The tool (`wordpress_apply_update`).
    pub tool: String,
    /// The site.
    pub site: String,
    /// The staged update.
    pub staged_id: String,
    /// SHA-256 of the apply plan the administrator confirmed.
    pub plan_digest: String,
    /// When it was issued (unix seconds).
    pub issued_at: i64,
    /// When the job is due (as given).
    pub at: String,
}

fn file_for(state: &Path, token: &str) -> PathBuf {
    let h = hex::encode(Sha256::digest(token.as_bytes()));
    state.join(APPROVAL_DIR).join(format!("{}.json", &h[..32]))
}

/// Issue a token for `a`; the token (shown only in the scheduled job).
pub fn issue(state: &Path, a: &Approval) -> Result<String, ToolError> {
    mkdir_private(&state.join(APPROVAL_DIR), 0o700)?;
    let token = hex::encode(rand::random::<[u8; 24]>());
    let p = file_for(state, &token);
    write_atomic(&p, &serde_json::to_vec_pretty(a).map_err(failed)?)
        .map_err(|e| failed(format!("cannot write the approval {}: {e}", p.display())))?;
    Ok(token)
}

/// Remove an approval that will not be used (the job could not be scheduled).
pub fn revoke(state: &Path, token: &str) {
    let _ = std::fs::remove_file(file_for(state, token));
}

/// Redeem a token for a call of `tool` on `site`/`staged_id` whose plan hashes to `plan_digest`.
/// The token is consumed first, so it never opens anything twice.
#[expect(
    clippy::disallowed_methods,
    reason = "vigil's own approval token file in its state directory, not a tenant file"
)]
pub fn redeem(
    state: &Path,
    token: &str,
    tool: &str,
    site: &str,
    staged_id: &str,
    plan_digest: &str,
) -> Result<Approval, String> {
    if token.len() != 48 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("the approval token is malformed".into());
    }
    let p = file_for(state, token);
    let bytes = std::fs::read(&p).map_err(|_| "the approval token is unknown or was already used".to_string())?;
    std::fs::remove_file(&p).map_err(|e| format!("cannot consume the approval: {e}"))?;
    let a: Approval = serde_json::from_slice(&bytes).map_err(|e| format!("the approval is unreadable: {e}"))?;
    if a.tool != tool || a.site.trim_end_matches('/') != site.trim_end_matches('/') || a.staged_id != staged_id {
        return Err(format!("the approval was for {} on {} ({}), not this call", a.tool, a.site, a.staged_id));
    }
    if a.plan_digest != plan_digest {
        return Err(format!(
            "the plan changed since it was approved (approved {}, now {}): refused; stage and confirm again",
            &a.plan_digest[..12.min(a.plan_digest.len())],
            &plan_digest[..12.min(plan_digest.len())]
        ));
    }
    Ok(a)
}
