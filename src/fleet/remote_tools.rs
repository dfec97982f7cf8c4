//! The remote side of `ask -i`/`chat -i`: one tool, a plan, or an approved change.
//!
//! A fleet question runs each tool on the host it is about, through that
//! host's own gate: a read-only [`Request::Tool`] runs like a local call (in
//! the confined worker, redacted to the model's view before it leaves), and a
//! change never runs on the controller's say-so alone. [`Request::Plan`]
//! computes the plan (nothing changes) and returns it with its digest and the
//! host's sshd key fingerprint; the controller shows it at its own terminal.
//! [`Request::Apply`] then carries that digest, that fingerprint and a fresh
//! single-use nonce: this side refuses a different host key, spends the nonce
//! (refusing one it has seen: a replayed approval runs nothing), and passes the
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
        Request::Apply { name, input, digest, host_key, nonce, .. } => {
            apply(app, &name, input, &digest, &host_key, &nonce).await
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
    Response::Plan { plan, digest: planned.digest, host_key: key }
}

async fn apply(app: &App, name: &str, input: Value, digest: &str, approved_key: &str, nonce: &str) -> Response {
    if let Err(r) = change_named(app, name) {
        return r;
    }
    if !(32..=128).contains(&nonce.len()) || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(
            "invalid",
            "the approval's nonce is malformed (expected 32 to 128 hex digits); nothing was changed",
        );
    }
    match host_key(&app.host) {
        Some(k) if k == approved_key => {}
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
        Arc::new(FleetApproval { digest: digest.into(), nonce: nonce.into(), dir, refusal: Mutex::new(None) });
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
/// nonce exactly one gets through, even at the same instant.
fn spend_nonce(dir: &Path, nonce: &str) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join(nonce))?;
    f.sync_all()
}
