//! The remote side of `ask -i`/`chat -i`: one tool, a plan, or an approved change.
//!
//! A fleet question runs each tool on the host it is about, through that
//! host's own gate: a read-only [`Request::Tool`] runs like a local call (in
//! the confined worker, redacted to the model's view before it leaves), and a
//! change never runs on the controller's say-so alone. [`Request::Plan`]
//! computes the plan (nothing changes) and returns it with its digest and the
//! host's sshd key fingerprint; the controller shows it at its own terminal.
//! [`Request::Apply`] then carries that digest, that fingerprint, the time this
//! host made the plan (its own clock) and a fresh single-use nonce: this side
//! refuses a different host key and an approval older than
//! [`APPROVAL_LIFETIME`], spends the nonce (refusing one it has seen: a
//! replayed approval runs nothing; a spent nonce is kept one lifetime and a
//! minute, then pruned at the next apply, when any replay of it is refused as
//! expired anyway), and passes the
//! call to its gate with a [`Confirmer`] that says yes only to the plan that
//! hashes like the approved one — the same way a deferred `wp apply` token
//! opens the gate, so the gate's single [`vigil_tools::Approver`] is still the
//! only thing that makes an approval, and the registry still computes the plan
//! again right before it runs. Both sides write the change to their audit log.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use vigil_tools::{Effect, Host, Redactor, ToolError};

use super::proto::{Request, Response};
use crate::app::App;
use crate::audit::Origin;
use crate::gate::{Answer, ConfirmRequest, Confirmer, GateError, NoHuman};
use crate::model_view::ModelView;

/// The sshd host keys looked for, in order: the fingerprint binds an approval to this host.
const HOST_KEYS: &[&str] =
    &["/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_ecdsa_key.pub", "/etc/ssh/ssh_host_rsa_key.pub"];

/// How long an approval holds after the host made its plan: an older one is refused,
/// and a spent nonce older than this (and a margin) is forgotten.
pub const APPROVAL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);
/// Spent nonces are kept this much longer than [`APPROVAL_LIFETIME`].
const NONCE_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a fleet host refuses to change except through an approved plan.
const NOT_HERE: &str = "changes on a fleet host run only as a plan approved at the controller's terminal";

/// The `SHA256:` fingerprint of the host's sshd key (ed25519, else ECDSA, else RSA), read
/// inside the audited root through the safe reader; `None` when it has none.
pub fn host_key(host: &Host) -> Option<String> {
    HOST_KEYS.iter().find_map(|p| {
        let text = host.read_head(p, 16 * 1024).ok()?;
        text.lines().find_map(|l| vigil_tools::accounts::parse_key_line(l)?.fingerprint)
    })
}

fn error(kind: &str, message: impl Into<String>) -> Response {
    Response::Error { kind: kind.into(), message: message.into() }
}

/// The wire's error kind for a gate's refusal or a tool's failure.
fn kind_of(e: &GateError) -> &'static str {
    match e {
        GateError::Stopped(_) => "refused",
        GateError::Plan { error: ToolError::InvalidInput(_) | ToolError::Unknown(_), .. } => "invalid",
        GateError::Plan { .. } => "refused",
        GateError::Tool(ToolError::InvalidInput(_) | ToolError::Unknown(_)) => "invalid",
        GateError::Tool(ToolError::Refused(_)) => "refused",
        GateError::Tool(_) => "failed",
    }
}

/// Answer a `Tool`, `Plan` or `Apply` request on `app`, which the caller
/// ([`super::remote::serve`]) made for the request's `root` (a `Review` is not for this module).
pub async fn answer(app: &App, request: Request) -> Response {
    match request {
        Request::Tool { name, input, .. } => tool(app, &name, input).await,
        Request::Plan { name, input, .. } => plan(app, &name, input).await,
        Request::Apply { name, input, digest, host_key, nonce, planned_at, .. } => {
            apply(app, &name, input, &Approved { digest, host_key, nonce, planned_at }).await
        }
        Request::Review { .. } => error("invalid", "a review is not a tool request"),
    }
}

/// A known tool that changes the host, or why not.
fn change_named(app: &App, name: &str) -> Result<(), Response> {
    match app.registry.get(name) {
        None => Err(error("invalid", format!("There is no tool named `{name}` on this host; nothing was run."))),
        Some(i) if i.effect == Effect::ReadOnly => {
            Err(error("invalid", format!("`{name}` is read-only: ask for it as a tool, not a plan")))
        }
        Some(_) if app.config.gate.deny.iter().any(|d| d == name) => Err(error(
            "refused",
            format!("`{name}` is blocked by this host's configuration ([gate] deny); it was not run."),
        )),
        Some(_) => Ok(()),
    }
}

async fn tool(app: &App, name: &str, input: Value) -> Response {
    if app.registry.get(name).is_some() && app.registry.effect(name) != Effect::ReadOnly {
        return error("invalid", format!("`{name}` changes the host: it is planned and applied with an approval"));
    }
    let gate = match app.gate(Origin::Fleet, Arc::new(NoHuman(NOT_HERE.into()))) {
        Ok(g) => g,
        Err(e) => return error("failed", format!("{e:#}")),
    };
    match gate.call(name, input).await.result {
        Ok(r) => Response::Tool { output: Redactor::global().value(r.to_model_value()) },
        Err(e) => error(kind_of(&e), e.to_string()),
    }
}

async fn plan(app: &App, name: &str, input: Value) -> Response {
    if let Err(r) = change_named(app, name) {
        return r;
    }
    let Some(key) = host_key(&app.host) else {
        return error(
            "refused",
            format!(
                "this host has no sshd host key under {}/etc/ssh, so an approval could not be bound to it; nothing was planned",
                app.host.root().display()
            ),
        );
    };
    let ctx = match app.ctx() {
        Ok(c) => c,
        Err(e) => return error("failed", format!("{e:#}")),
    };
    let shown = Redactor::global().value(input.clone());
    let planned = match app.registry.plan(&ctx, name, input).await {
        Ok(p) => p,
        Err(e) => {
            let kind =
                if matches!(e, ToolError::InvalidInput(_) | ToolError::Unknown(_)) { "invalid" } else { "refused" };
            return error(kind, format!("could not plan `{name}`: {e}; nothing was changed"));
        }
    };
    let plan = match serde_json::to_string(&planned.plan) {
        Ok(p) => p,
        Err(e) => return error("failed", format!("the plan could not be written: {e}")),
    };
    let event = json!({"kind": "fleet_plan", "origin": Origin::Fleet, "tool": name, "input": shown,
        "plan_digest": planned.digest, "host_key": key});
    if let Err(e) = app.audit().append(event) {
        eprintln!("vigil: warning: could not write the audit log: {e:#}");
    }
    Response::Plan { plan, digest: planned.digest, host_key: key, planned_at: unix_now() }
}

/// This host's clock, in Unix seconds (0 before 1970: every approval then reads as expired).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What the controller's administrator approved.
struct Approved {
    digest: String,
    host_key: String,
    nonce: String,
    planned_at: i64,
}

/// Why an approval made at `planned_at` no longer holds at `now` (both this host's clock).
fn expired(planned_at: i64, now: i64) -> Option<String> {
    let life = APPROVAL_LIFETIME.as_secs() as i64;
    if planned_at <= 0 {
        return Some("the approval does not say when its plan was made".into());
    }
    if planned_at > now {
        return Some(format!(
            "the plan is dated {} s in this host's future (was the clock set back?)",
            planned_at - now
        ));
    }
    (now - planned_at > life)
        .then(|| format!("the plan was made {} s ago and an approval holds {} minutes", now - planned_at, life / 60))
}

async fn apply(app: &App, name: &str, input: Value, approved: &Approved) -> Response {
    let Approved { digest, host_key: approved_key, nonce, planned_at } = approved;
    if let Err(r) = change_named(app, name) {
        return r;
    }
    if let Some(why) = expired(*planned_at, unix_now()) {
        return error("refused", format!("{why}: refused, nothing was changed; plan and confirm again"));
    }
    if !(32..=128).contains(&nonce.len()) || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(
            "invalid",
            "the approval's nonce is malformed (expected 32 to 128 hex digits); nothing was changed",
        );
    }
    match host_key(&app.host) {
        Some(k) if k == *approved_key => {}
        found => {
            return error(
                "refused",
                format!(
                    "this host's key is {}, but the plan was approved for the host with key {approved_key}: refused, \
                     nothing was changed (an approval holds only on the host it was shown for)",
                    found.as_deref().unwrap_or("missing")
                ),
            );
        }
    }
    let dir = match app.host_dir() {
        Ok(d) => d.join("fleet-nonces"),
        Err(e) => return error("failed", format!("{e:#}")),
    };
    let approval =
        Arc::new(FleetApproval { digest: digest.clone(), nonce: nonce.clone(), dir, refusal: Mutex::new(None) });
    let gate = match app.gate(Origin::Fleet, approval.clone()) {
        Ok(g) => g,
        Err(e) => return error("failed", format!("{e:#}")),
    };
    let g = gate.call(name, input).await;
    if let Some(r) = approval.refusal.lock().ok().and_then(|mut r| r.take()) {
        return r;
    }
    match g.result {
        Ok(r) => Response::Applied { output: Redactor::global().value(r.to_model_value()) },
        Err(e) => error(kind_of(&e), e.to_string()),
    }
}

/// Opens this host's gate for the one plan the controller's administrator approved: the
/// nonce is spent first (whatever follows), then the plan computed now must hash like the
/// approved one.
struct FleetApproval {
    digest: String,
    nonce: String,
    dir: PathBuf,
    /// Why it said no, as the answer to send back.
    refusal: Mutex<Option<Response>>,
}

impl FleetApproval {
    fn refuse(&self, kind: &str, message: String) -> Answer {
        if let Ok(mut r) = self.refusal.lock() {
            *r = Some(error(kind, message.clone()));
        }
        Answer::Unavailable(message)
    }
}

#[async_trait]
impl Confirmer for FleetApproval {
    async fn confirm(&self, req: &ConfirmRequest) -> Answer {
        if let Err(e) = spend_nonce(&self.dir, &self.nonce) {
            return match e.kind() {
                ErrorKind::AlreadyExists => self.refuse(
                    "refused",
                    "this approval was already used: an approval runs its plan once; nothing was changed (plan and confirm again)".into(),
                ),
                _ => self.refuse("failed", format!("cannot record the approval's nonce in {}: {e}; nothing was changed", self.dir.display())),
            };
        }
        if req.digest != self.digest {
            let short = |d: &str| d.chars().take(12).collect::<String>();
            return self.refuse(
                "changed",
                format!(
                    "the host changed since the plan was approved (approved {}, now {}): refused, nothing was changed; plan and confirm again",
                    short(&self.digest),
                    short(&req.digest)
                ),
            );
        }
        Answer::Confirmed
    }
}

/// Record `nonce` as used: created exclusively (`O_EXCL`), so of two requests with one
/// nonce exactly one gets through, even at the same instant. Nonces spent more than
/// [`APPROVAL_LIFETIME`] and [`NONCE_MARGIN`] ago are removed first: a replay of one
/// is refused as expired before its nonce is looked at (its plan is older than the
/// nonce file, and the file is older than the lifetime).
fn spend_nonce(dir: &Path, nonce: &str) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    prune_nonces(dir, std::time::SystemTime::now() - (APPROVAL_LIFETIME + NONCE_MARGIN));
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join(nonce))?;
    f.sync_all()
}

/// Remove the nonce files in `dir` last modified before `before` (only regular files
/// named like a nonce; anything else is left as it is).
fn prune_nonces(dir: &Path, before: std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let is_nonce = name.to_str().is_some_and(|n| n.len() >= 32 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        // DirEntry::metadata does not follow a symlink.
        let old = e.metadata().is_ok_and(|m| m.is_file() && m.modified().is_ok_and(|t| t < before));
        if is_nonce && old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn old_approvals_and_plans_from_the_future_are_refused() {
        let now = 1_800_000_000;
        assert_eq!(expired(now - 30, now), None);
        assert_eq!(expired(now - 600, now), None);
        assert!(expired(now - 601, now).unwrap().contains("601 s ago"));
        assert!(expired(0, now).unwrap().contains("does not say when"));
        assert!(expired(now + 5, now).unwrap().contains("future"));
    }

    #[test]
    fn spent_nonces_are_pruned_after_the_lifetime_and_a_live_one_is_never_accepted_twice() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("fleet-nonces");
        let (old, live) = ("a".repeat(32), "b".repeat(32));
        spend_nonce(&dir, &old).unwrap();
        spend_nonce(&dir, &live).unwrap();
        // `old` was spent past the lifetime and margin; `live` within it.
        let long_ago = SystemTime::now() - APPROVAL_LIFETIME - NONCE_MARGIN - Duration::from_secs(5);
        std::fs::File::options().write(true).open(dir.join(&old)).unwrap().set_modified(long_ago).unwrap();
        let nearly = SystemTime::now() - APPROVAL_LIFETIME;
        std::fs::File::options().write(true).open(dir.join(&live)).unwrap().set_modified(nearly).unwrap();
        // Not a nonce: left alone, however old.
        std::fs::write(dir.join("README"), b"x").unwrap();
        std::fs::File::options().write(true).open(dir.join("README")).unwrap().set_modified(long_ago).unwrap();
        // The next apply prunes, and still refuses the live one's replay.
        let e = spend_nonce(&dir, &live).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert!(!dir.join(&old).exists(), "a nonce spent long ago was kept");
        assert!(dir.join(&live).exists() && dir.join("README").exists());
        // A fresh one is recorded.
        spend_nonce(&dir, &"c".repeat(32)).unwrap();
        assert_eq!(spend_nonce(&dir, &"c".repeat(32)).unwrap_err().kind(), ErrorKind::AlreadyExists);
    }
}
