//! The policy gate: the only way any tool runs, outside the model's reach.
//!
//! Read-only tools run. A mutating tool — and an unknown one — first shows its
//! plan and its exact arguments and waits for the human to type the word shown
//! (the tool's name, not a reflexive `y`) at the controlling terminal, read from
//! `/dev/tty` after flushing pending input, never from stdin, so a piped prompt
//! cannot confirm. With no terminal it is refused and the model is told so.
//! The config's deny-list blocks tools outright (deny wins). No flag or
//! environment variable pre-approves anything; the single exception is the
//! scratch-only `verify_backup_restore` named in the root-owned config for
//! scheduled runs. Every call and decision lands in the audit log.
//!
//! The gate holds the process's one [`Approver`]: a confirmed plan becomes an
//! [`vigil_tools::Approval`] of exactly that plan's digest, and the registry runs
//! the change only if the plan it computes again right then hashes the same
//! (`docs/architecture.md`, "Where approval happens"). Errors come back typed
//! ([`GateError`]), so every command maps the same failure to the same exit code.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Value, json};
use vigil_tools::{Approver, Ctx, Effect, Plan, Redactor, Registry, ToolError, ToolResult};

use crate::audit::{AuditLog, Origin};
use crate::term::strip_controls;

/// Tools a scheduled run may run unattended when the root-owned config names them:
/// they write only to a scratch directory they create and remove.
pub const SCRATCH_ONLY: &[&str] = &["verify_backup_restore"];

/// The process's one approver, claimed when the first gate is built. If other code
/// claimed it first, every change is refused (fail closed).
static APPROVER: LazyLock<Option<Approver>> = LazyLock::new(Approver::claim);

/// Why a gated call did not give a result: typed, so every command maps it the same way.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The gate did not run the tool: blocked by configuration, unknown, declined, or
    /// nobody could confirm. Nothing was changed.
    #[error("{0}")]
    Stopped(String),
    /// The change could not be planned (a refusal, or the host could not be read). Nothing was changed.
    #[error("could not plan `{tool}`: {error}")]
    Plan {
        /// The tool.
        tool: String,
        /// Why, as the tool said it.
        error: ToolError,
    },
    /// The tool's own error, intact: its input was wrong, it refused, it failed, or the
    /// plan changed between approval and run.
    #[error("{0}")]
    Tool(#[from] ToolError),
}

impl GateError {
    /// The exit code of a command whose call ended so (README, "Exit codes"): 2 when a tool
    /// ran and failed, 1 when nothing ran or changed (refused, declined, blocked, invalid
    /// input, a plan that changed since it was approved).
    pub fn exit_code(&self) -> u8 {
        match self {
            GateError::Tool(ToolError::Failed(_) | ToolError::TimedOut { .. } | ToolError::Host(_)) => 2,
            GateError::Tool(_) | GateError::Stopped(_) | GateError::Plan { .. } => 1,
        }
    }
}

/// A confirmation request shown to the human.
#[derive(Debug, Clone)]
pub struct ConfirmRequest {
    /// The tool.
    pub tool: String,
    /// Its exact arguments (redacted).
    pub args: Value,
    /// What it will do.
    pub plan: Plan,
    /// The digest the approval will bind to (the registry's, of `plan`).
    pub digest: String,
    /// The word the human must type.
    pub word: String,
    /// The fleet host the change is for, with its sshd key fingerprint (`None`: this host).
    pub on: Option<String>,
}

impl ConfirmRequest {
    /// The text shown before asking.
    pub fn render(&self) -> String {
        let args = serde_json::to_string_pretty(&self.args).unwrap_or_default();
        let on = self.on.as_deref().map(|h| format!("  on host: {h}\n")).unwrap_or_default();
        strip_controls(&format!(
            "\n{}\n{on}  arguments: {}\n",
            self.plan.render().trim_end(),
            args.replace('\n', "\n  ")
        ))
    }
}

/// The human's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Typed the word: run it.
    Confirmed,
    /// Typed anything else.
    Declined,
    /// Nobody could be asked (no terminal, non-interactive); the reason.
    Unavailable(String),
}

/// Asks a human. Implementations must never take an answer from the model or from stdin.
#[async_trait]
pub trait Confirmer: Send + Sync {
    /// Ask about one request.
    async fn confirm(&self, req: &ConfirmRequest) -> Answer;

    /// Why every change is refused without asking anyone, when that is so (no human can
    /// answer here). The gate then says so first, even when the call could not be planned,
    /// so a planning error never hides that the change would have been refused anyway.
    fn refuses_all(&self) -> Option<String> {
        None
    }
}

/// No human: every mutating call is refused.
pub struct NoHuman(pub String);

#[async_trait]
impl Confirmer for NoHuman {
    async fn confirm(&self, _req: &ConfirmRequest) -> Answer {
        Answer::Unavailable(self.0.clone())
    }

    fn refuses_all(&self) -> Option<String> {
        Some(self.0.clone())
    }
}

/// A scheduled run: only scratch-only tools the root-owned config names.
pub struct Scheduled {
    /// Tools allowed (already filtered by the caller to root-owned config).
    pub allow: Vec<String>,
}

#[async_trait]
impl Confirmer for Scheduled {
    async fn confirm(&self, req: &ConfirmRequest) -> Answer {
        if SCRATCH_ONLY.contains(&req.tool.as_str()) && self.allow.iter().any(|a| a == &req.tool) {
            Answer::Confirmed
        } else {
            Answer::Unavailable("a scheduled run has no human to confirm changes".into())
        }
    }
}

/// The controlling terminal (`/dev/tty`).
pub struct Terminal;

impl Terminal {
    fn ask_blocking(req: &ConfirmRequest, abandoned: &AtomicBool) -> Answer {
        let tty = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") {
            Ok(t) => t,
            Err(_) => return Answer::Unavailable("no terminal to ask on (not run interactively)".into()),
        };
        // Drop anything typed or pasted before the question was shown.
        // SAFETY: tcflush on a valid descriptor.
        unsafe { libc::tcflush(tty.as_raw_fd(), libc::TCIFLUSH) };
        let mut w = &tty;
        let prompt = format!(
            "{}\n{} wants to change {}. Type `{}` to run it, anything else declines: ",
            req.render(),
            req.tool,
            strip_controls(req.on.as_deref().unwrap_or("this host")),
            req.word
        );
        if w.write_all(prompt.as_bytes()).and_then(|_| w.flush()).is_err() {
            return Answer::Unavailable("cannot write to the terminal".into());
        }
        // Wait for a line, but give up when the caller went away (a cancelled
        // turn), so no forgotten thread keeps reading the terminal.
        loop {
            if abandoned.load(Ordering::SeqCst) {
                return Answer::Declined;
            }
            let mut pfd = libc::pollfd { fd: tty.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: poll on one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, 200) };
            if rc > 0 {
                break;
            }
            if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Answer::Declined;
            }
        }
        let mut line = String::new();
        match BufReader::new(&tty).read_line(&mut line) {
            Ok(0) | Err(_) => Answer::Declined,
            Ok(_) if line.trim() == req.word => Answer::Confirmed,
            Ok(_) => Answer::Declined,
        }
    }
}

/// Sets the flag when dropped: the confirmation's future was abandoned.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Confirmer for Terminal {
    async fn confirm(&self, req: &ConfirmRequest) -> Answer {
        let req = req.clone();
        let abandoned = Arc::new(AtomicBool::new(false));
        let guard = AbandonOnDrop(abandoned.clone());
        let answer = tokio::task::spawn_blocking(move || Terminal::ask_blocking(&req, &abandoned))
            .await
            .unwrap_or_else(|_| Answer::Unavailable("the confirmation prompt failed".into()));
        drop(guard);
        answer
    }
}

/// How a call was decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A read-only tool ran.
    Ran,
    /// A human confirmed a mutating tool, which then ran.
    Confirmed,
    /// A human declined.
    Declined,
    /// Refused without asking (deny-list, no terminal, unknown tool, bad input).
    Refused,
}

/// The result of a gated call.
#[derive(Debug)]
pub struct Gated {
    /// How it was decided.
    pub decision: Decision,
    /// The tool's result, or why there is none (its `Display` is what the model reads).
    pub result: Result<ToolResult, GateError>,
    /// Wall time in milliseconds.
    pub millis: u128,
}

/// The gate.
#[derive(Clone)]
pub struct Gate {
    registry: Arc<Registry>,
    ctx: Ctx,
    confirmer: Arc<dyn Confirmer>,
    audit: Option<AuditLog>,
    origin: Origin,
    /// Where read-only tools run: the confined worker (`None`: in this process, as in unit tests).
    sandbox: Option<Arc<crate::worker::Sandbox>>,
    /// The tools the configuration's `[gate] deny` names: refused, never run.
    deny: Vec<String>,
}

impl Gate {
    /// A gate over `registry` on `ctx`, asking `confirmer`, logging to `audit`.
    pub fn new(
        registry: Arc<Registry>,
        ctx: Ctx,
        confirmer: Arc<dyn Confirmer>,
        audit: Option<AuditLog>,
        origin: Origin,
    ) -> Self {
        LazyLock::force(&APPROVER);
        Gate { registry, ctx, confirmer, audit, origin, sandbox: None, deny: Vec::new() }
    }

    /// Run read-only tools in `sandbox`'s confined worker.
    pub fn with_sandbox(mut self, sandbox: Arc<crate::worker::Sandbox>) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// What confined this gate's read-only tools (`None`: no sandbox was asked for).
    pub fn sandbox_status(&self) -> Option<crate::worker::SandboxStatus> {
        self.sandbox.as_ref().map(|s| s.status())
    }

    /// The same gate refusing the tools the configuration's `[gate] deny` names.
    pub fn with_deny(mut self, deny: Vec<String>) -> Self {
        self.deny = deny;
        self
    }

    /// The registry behind the gate.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The tool context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The audit log's chain head now (reports and notifications carry it off the host).
    pub fn audit_head(&self) -> Option<crate::audit::Head> {
        self.audit.as_ref().and_then(|a| a.head())
    }

    /// The effect the gate assumes: unknown tools are mutating.
    pub fn effect(&self, name: &str) -> Effect {
        self.registry.effect(name)
    }

    fn log(&self, event: Value) {
        if let Some(a) = &self.audit {
            if let Err(e) = a.append(event) {
                tracing::warn!("audit log: {e:#}");
                eprintln!("vigil: warning: could not write the audit log: {e:#}");
            }
        }
    }

    fn finish(
        &self,
        name: &str,
        input: &Value,
        decision: Decision,
        started: Instant,
        result: Result<ToolResult, GateError>,
        extra: Value,
    ) -> Gated {
        let millis = started.elapsed().as_millis();
        let summary = match &result {
            Ok(r) => {
                let mut counts = std::collections::BTreeMap::new();
                for f in &r.findings {
                    *counts.entry(f.severity.as_str()).or_insert(0u32) += 1;
                }
                json!({"ok": true, "findings": counts})
            }
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        };
        let mut event = json!({
            "kind": "tool_call",
            "origin": self.origin,
            "tool": name,
            "input": input,
            "decision": decision,
            "duration_ms": millis as u64,
            "result": summary,
        });
        if let (Value::Object(m), Value::Object(x)) = (&mut event, extra) {
            m.extend(x);
        }
        self.log(event);
        Gated { decision, result, millis }
    }

    /// Decide and, if allowed, run one tool call.
    pub async fn call(&self, name: &str, input: Value) -> Gated {
        let started = Instant::now();
        let input = if input.is_null() { json!({}) } else { input };
        let shown_input = Redactor::global().value(input.clone());
        // Every way the gate stops a call: refused, with its reason (and the plan when there was one).
        let refuse =
            |err: GateError, extra: Value| self.finish(name, &shown_input, Decision::Refused, started, Err(err), extra);
        if self.deny.iter().any(|d| d == name) {
            let msg =
                format!("`{name}` is blocked by the administrator's configuration ([gate] deny); it was not run.");
            return refuse(GateError::Stopped(msg), json!({}));
        }
        let Some(tool) = self.registry.lookup(name) else {
            let msg = format!("There is no tool named `{name}`; nothing was run.");
            return refuse(GateError::Stopped(msg), json!({}));
        };
        let effect = tool.info().effect;
        let refused_anyway = |why: String, problem: String| {
            GateError::Stopped(format!(
                "{} Besides, the call itself could not be planned: {problem}",
                refused_message(name, &why)
            ))
        };
        // The worker gets the input as sent; it is validated here first, once.
        let sandboxed = (effect == Effect::ReadOnly && self.sandbox.is_some()).then(|| input.clone());
        let call = match tool.check(input) {
            Ok(c) => c,
            Err(e) => {
                let err = match (effect, self.confirmer.refuses_all()) {
                    (Effect::Mutating, Some(why)) => refused_anyway(why, e.to_string()),
                    _ => GateError::Tool(e),
                };
                return refuse(err, json!({}));
            }
        };
        if effect == Effect::ReadOnly {
            let limit = std::time::Duration::from_secs(self.ctx.config.review.tool_timeout_seconds.max(1));
            let confined = match (&self.sandbox, sandboxed) {
                (Some(s), Some(input)) => s.call(name, input, limit).await,
                _ => None,
            };
            let (r, ran_in) = match confined {
                // The worker reports a tool's failure as text: it ran and failed.
                Some(r) => (r.map_err(|e| GateError::Tool(ToolError::Failed(e))), "worker"),
                None => (call.run(&self.ctx).await.map_err(GateError::Tool), "parent"),
            };
            return self.finish(name, &shown_input, Decision::Ran, started, r, json!({"ran_in": ran_in}));
        }
        let planned = match call.plan(&self.ctx).await {
            Ok(p) => p,
            Err(e) => {
                let err = match self.confirmer.refuses_all() {
                    Some(why) => refused_anyway(why, e.to_string()),
                    None => GateError::Plan { tool: name.to_string(), error: e },
                };
                return refuse(err, json!({}));
            }
        };
        let req = ConfirmRequest {
            tool: name.to_string(),
            args: shown_input.clone(),
            plan: planned.plan.clone(),
            digest: planned.digest.clone(),
            word: name.to_string(),
            on: None,
        };
        let plan_json = json!({"plan": planned.plan, "plan_digest": planned.digest, "undo": planned.plan.undo_lines()});
        match self.confirmer.confirm(&req).await {
            Answer::Confirmed => {
                let Some(approver) = APPROVER.as_ref() else {
                    let msg = format!(
                        "`{name}` was confirmed, but this process's approval capability is held by other code, so \
                         no change can run; nothing was changed."
                    );
                    return refuse(GateError::Stopped(msg), plan_json);
                };
                // The registry computes the plan again and runs it only if it is the one confirmed.
                let r = call.run_approved(&self.ctx, approver.approve(&planned)).await.map_err(GateError::Tool);
                let mut extra = plan_json;
                // The undo as it really is (e.g. the nft rule handle) once the change is made; the plan's
                // version, with placeholders, stays in `plan`.
                if let Some(undo) = r.as_ref().ok().and_then(|r| applied_undo(&r.facts)) {
                    extra["undo"] = undo;
                }
                self.finish(name, &shown_input, Decision::Confirmed, started, r, extra)
            }
            Answer::Declined => {
                let msg = format!("The administrator declined `{name}`; nothing was changed.{TO_MODEL_DECLINED}");
                self.finish(name, &shown_input, Decision::Declined, started, Err(GateError::Stopped(msg)), plan_json)
            }
            Answer::Unavailable(why) => {
                let msg = refused_message(name, &why);
                refuse(GateError::Stopped(msg), plan_json)
            }
        }
    }
}

/// Said to the model after a decline; a person does not need to read it.
const TO_MODEL_DECLINED: &str = " Do not retry it unless they ask.";
/// Said to the model after a refusal.
const TO_MODEL_REFUSED: &str = " Tell the administrator the plan and how to run it interactively (`vigil chat`).";
/// What a person reads instead.
const TO_PERSON_REFUSED: &str = " To make this change, run it at a terminal (`vigil chat`, or `vigil tools run` / `vigil wp` in an interactive shell).";

/// A gate message as a person should read it: the sentences addressed to the model
/// ("Do not retry it…", "Tell the administrator…") dropped or put in the person's terms.
pub fn for_person(msg: &str) -> String {
    msg.replace(TO_MODEL_DECLINED, "").replace(TO_MODEL_REFUSED, TO_PERSON_REFUSED)
}

/// What a person reads when a call they made on the command line gave no result
/// (`vigil tools run`, `vigil wp`): the tool's own failure, or the gate's reason in their terms.
pub fn failure_line(tool: &str, decision: &Decision, e: &GateError) -> String {
    let text = match (decision, e) {
        (Decision::Ran | Decision::Confirmed, GateError::Tool(_)) => format!("{tool} failed: {e}"),
        _ => for_person(&e.to_string()),
    };
    strip_controls(&text)
}

/// What the caller reads when a change is refused because nobody can confirm it.
fn refused_message(name: &str, why: &str) -> String {
    format!(
        "`{name}` changes the host and needs a human to confirm it at the terminal, but {why}; it was refused and nothing was changed.{TO_MODEL_REFUSED}"
    )
}

/// The undo commands a mutating tool reports in its facts (`"undo": ["cmd", …]`), if any.
fn applied_undo(facts: &Value) -> Option<Value> {
    let list = facts.get("undo")?.as_array()?;
    (!list.is_empty() && list.iter().all(Value::is_string)).then(|| Value::Array(list.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_reads_their_own_wording_not_the_models() {
        let declined = format!("The administrator declined `x`; nothing was changed.{TO_MODEL_DECLINED}");
        assert_eq!(for_person(&declined), "The administrator declined `x`; nothing was changed.");
        let refused = refused_message("x", "there is no terminal");
        assert!(refused.contains("Tell the administrator"));
        let shown = for_person(&refused);
        assert!(!shown.contains("Tell the administrator") && shown.contains("run it at a terminal"), "{shown}");
    }
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use vigil_tools::compared::Compared;
    use vigil_tools::{Change as ChangeTool, Host, Outcome};

    static RUNS: AtomicUsize = AtomicUsize::new(0);

    struct Change;
    #[derive(Deserialize, JsonSchema)]
    struct In {
        port: u16,
    }
    #[derive(Serialize, JsonSchema)]
    struct Out {
        done: bool,
    }
    #[async_trait]
    impl ChangeTool for Change {
        type Input = In;
        type Output = Out;
        type Prepared = ();
        fn name(&self) -> &'static str {
            "firewall_deny_port"
        }
        fn description(&self) -> &'static str {
            "test"
        }
        async fn prepare(&self, _c: &Ctx, i: &In) -> Result<(Plan, ()), ToolError> {
            let plan = Plan::new("firewall_deny_port", format!("deny {}", i.port)).step(
                "deny",
                Some(format!("ufw deny {}", i.port)),
                Some(format!("ufw delete deny {}", i.port)),
            );
            Ok((plan, ()))
        }
        async fn execute(&self, _c: &Ctx, _i: In, _p: (), _proof: Compared) -> Result<Outcome<Out>, ToolError> {
            RUNS.fetch_add(1, Ordering::SeqCst);
            Ok(Outcome::new(Out { done: true }, vec![]))
        }
    }

    /// A change whose plan depends on the host (`generation`), counting its runs and
    /// the generation each run was prepared from.
    struct Drift {
        generation: Arc<AtomicU16>,
        ran_with: Arc<std::sync::Mutex<Vec<u16>>>,
    }
    #[async_trait]
    impl ChangeTool for Drift {
        type Input = In;
        type Output = Out;
        type Prepared = u16;
        fn name(&self) -> &'static str {
            "drift"
        }
        fn description(&self) -> &'static str {
            "test"
        }
        async fn prepare(&self, _c: &Ctx, i: &In) -> Result<(Plan, u16), ToolError> {
            let g = self.generation.load(Ordering::SeqCst);
            let plan = Plan::new("drift", format!("deny {} on ruleset generation {g}", i.port)).step(
                "deny",
                Some(format!("nft insert rule … # generation {g}")),
                None,
            );
            Ok((plan, g))
        }
        async fn execute(&self, _c: &Ctx, _i: In, g: u16, _proof: Compared) -> Result<Outcome<Out>, ToolError> {
            if let Ok(mut v) = self.ran_with.lock() {
                v.push(g);
            }
            Ok(Outcome::new(Out { done: true }, vec![]))
        }
    }

    /// Confirms, but first changes the host, as another administrator (or an attacker)
    /// would while the plan is on screen.
    struct ChangesTheHostThenConfirms(Arc<AtomicU16>);
    #[async_trait]
    impl Confirmer for ChangesTheHostThenConfirms {
        async fn confirm(&self, _r: &ConfirmRequest) -> Answer {
            self.0.fetch_add(1, Ordering::SeqCst);
            Answer::Confirmed
        }
    }

    struct Fixed(Answer);
    #[async_trait]
    impl Confirmer for Fixed {
        async fn confirm(&self, _r: &ConfirmRequest) -> Answer {
            self.0.clone()
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::builtin();
        assert!(r.remove("firewall_deny_port"));
        r.add_change(Change).unwrap();
        r
    }

    fn gate(answer: Answer, deny: &[&str], audit: Option<AuditLog>) -> Gate {
        let ctx = Ctx::new(Host::at("/nonexistent"));
        Gate::new(Arc::new(registry()), ctx, Arc::new(Fixed(answer)), audit, Origin::Chat)
            .with_deny(deny.iter().map(|s| s.to_string()).collect())
    }

    /// A gate over [`Drift`]; `confirmer` gets the host's generation (to change it, or not).
    fn drift_gate(
        confirmer: impl FnOnce(Arc<AtomicU16>) -> Arc<dyn Confirmer>,
    ) -> (Gate, Arc<AtomicU16>, Arc<std::sync::Mutex<Vec<u16>>>) {
        let generation = Arc::new(AtomicU16::new(1));
        let ran_with = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut r = Registry::empty();
        r.add_change(Drift { generation: generation.clone(), ran_with: ran_with.clone() }).unwrap();
        let ctx = Ctx::new(Host::at("/nonexistent"));
        (Gate::new(Arc::new(r), ctx, confirmer(generation.clone()), None, Origin::Chat), generation, ran_with)
    }

    #[tokio::test]
    async fn a_host_that_changed_between_the_plan_and_the_run_is_refused_and_nothing_runs() {
        let (g, _host, ran_with) = drift_gate(|host| Arc::new(ChangesTheHostThenConfirms(host)));
        let r = g.call("drift", json!({"port": 9200})).await;
        assert_eq!(r.decision, Decision::Confirmed);
        let e = r.result.unwrap_err();
        assert!(matches!(e, GateError::Tool(ToolError::Refused(_))), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("host changed") && msg.contains("nothing was done"), "{msg}");
        assert!(msg.contains("generation 2"), "the message shows the plan as it is now: {msg}");
        assert!(ran_with.lock().unwrap().is_empty(), "the changed plan never ran");
        assert_eq!(e.exit_code(), 1, "nothing was changed");
    }

    #[tokio::test]
    async fn each_confirmation_runs_the_plan_it_approved_exactly_once() {
        let (g, host, ran_with) = drift_gate(|_| Arc::new(Fixed(Answer::Confirmed)));
        assert!(g.call("drift", json!({"port": 9200})).await.result.is_ok());
        assert_eq!(*ran_with.lock().unwrap(), vec![1], "one approval, one run, of the state it was planned from");
        host.store(5, Ordering::SeqCst);
        assert!(g.call("drift", json!({"port": 9200})).await.result.is_ok());
        assert_eq!(*ran_with.lock().unwrap(), vec![1, 5], "a second run needs (and got) a second approval");
    }

    #[tokio::test]
    async fn the_gate_holds_the_only_approver() {
        let _ = gate(Answer::Declined, &[], None);
        assert!(APPROVER.is_some(), "the gate claimed the approver");
        assert!(Approver::claim().is_none(), "nobody else can get one");
    }

    #[tokio::test]
    async fn mutating_tools_need_a_confirmation_and_deny_wins() {
        let before = RUNS.load(Ordering::SeqCst);
        let g = gate(Answer::Unavailable("no terminal".into()), &[], None);
        let r = g.call("firewall_deny_port", json!({"port": 9200})).await;
        assert_eq!(r.decision, Decision::Refused);
        assert!(r.result.unwrap_err().to_string().contains("needs a human"));
        let r = gate(Answer::Declined, &[], None).call("firewall_deny_port", json!({"port": 9200})).await;
        assert_eq!(r.decision, Decision::Declined);
        assert_eq!(RUNS.load(Ordering::SeqCst), before, "nothing ran without a yes");
        let r = gate(Answer::Confirmed, &["firewall_deny_port"], None)
            .call("firewall_deny_port", json!({"port": 9200}))
            .await;
        assert_eq!(r.decision, Decision::Refused, "deny wins over a yes");
        assert_eq!(RUNS.load(Ordering::SeqCst), before);
        let t = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(t.path());
        let r = gate(Answer::Confirmed, &[], Some(log.clone())).call("firewall_deny_port", json!({"port": 9200})).await;
        assert_eq!(r.decision, Decision::Confirmed);
        assert!(RUNS.load(Ordering::SeqCst) > before);
        let entries = log.entries().unwrap();
        assert_eq!(entries[0].event["decision"], "confirmed");
        assert_eq!(entries[0].event["undo"][0], "ufw delete deny 9200", "the undo is recorded with the change");
    }

    #[tokio::test]
    async fn unknown_tools_and_bad_input_are_refused() {
        let g = gate(Answer::Confirmed, &[], None);
        let r = g.call("rm_rf", json!({})).await;
        assert_eq!(r.decision, Decision::Refused);
        let r = g.call("firewall_deny_port", json!({"port": "all"})).await;
        assert_eq!(r.decision, Decision::Refused);
        assert!(r.result.unwrap_err().to_string().contains("invalid input"));
    }

    #[tokio::test]
    async fn a_caller_that_refuses_every_change_says_so_before_any_input_or_planning_error() {
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let g = Gate::new(
            Arc::new(registry()),
            ctx,
            Arc::new(NoHuman("nobody is at a terminal".into())),
            None,
            Origin::Mcp,
        );
        let r = g.call("firewall_deny_port", json!({"port": "all"})).await;
        assert_eq!(r.decision, Decision::Refused);
        let msg = r.result.unwrap_err().to_string();
        assert!(msg.starts_with("`firewall_deny_port` changes the host"), "{msg}");
        assert!(msg.contains("nobody is at a terminal") && msg.contains("invalid input"), "{msg}");
        // A caller that could ask someone still gets the input error alone.
        let r = gate(Answer::Confirmed, &[], None).call("firewall_deny_port", json!({"port": "all"})).await;
        assert!(!r.result.unwrap_err().to_string().contains("changes the host"));
    }

    #[tokio::test]
    async fn scheduled_runs_allow_only_scratch_tools() {
        let s = Scheduled { allow: vec!["verify_backup_restore".into(), "firewall_deny_port".into()] };
        let mk = |tool: &str| ConfirmRequest {
            tool: tool.into(),
            args: json!({}),
            plan: Plan::new(tool, "x"),
            digest: String::new(),
            word: tool.into(),
            on: None,
        };
        assert_eq!(s.confirm(&mk("verify_backup_restore")).await, Answer::Confirmed);
        assert!(matches!(s.confirm(&mk("firewall_deny_port")).await, Answer::Unavailable(_)));
    }

    /// The scheduled-run exception goes through the same approval: the real
    /// `verify_backup_restore` runs on a real tar.gz; a change not scratch-only is refused.
    #[tokio::test]
    async fn a_scheduled_run_restores_through_the_same_approval_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("site")).unwrap();
        std::fs::write(t.path().join("site/index.php"), "<?php echo 1;").unwrap();
        std::fs::create_dir_all(t.path().join("b")).unwrap();
        let tar = std::process::Command::new("tar")
            .args(["-czf", "b/site.tar.gz", "site"])
            .current_dir(t.path())
            .status()
            .expect("tar is part of every Debian system");
        assert!(tar.success());
        let toml = format!("[[backups]]\nname = \"site\"\npath = \"{}/b/*.tar.gz\"\n", t.path().display());
        let cfg = vigil_tools::Config::parse(&toml, std::path::Path::new("test.toml")).unwrap();
        let ctx = Ctx::new(Host::live()).with_config(cfg).with_state_dir(t.path().join("state"));
        let confirmer =
            Arc::new(Scheduled { allow: vec!["verify_backup_restore".into(), "firewall_deny_port".into()] });
        let g = Gate::new(Arc::new(Registry::builtin()), ctx, confirmer, None, Origin::Schedule);
        let r = g.call("verify_backup_restore", json!({"job": "site"})).await;
        assert_eq!(r.decision, Decision::Confirmed);
        let facts = r.result.unwrap().facts;
        assert_eq!(facts["ok"], true, "{facts}");
        assert!(t.path().join("state/restore-tests.json").is_file(), "the result is recorded");
        let r = g.call("firewall_deny_port", json!({"port": 9200, "reason": "x"})).await;
        assert_ne!(r.decision, Decision::Confirmed, "only scratch-only tools run unattended");
        assert!(r.result.is_err());
    }

    #[test]
    fn the_undo_a_tool_reports_is_what_the_log_records() {
        let real = json!({"undo": ["nft delete rule inet vigil input handle 7", "nft delete table inet vigil"]});
        assert_eq!(applied_undo(&real), Some(real["undo"].clone()));
        assert_eq!(applied_undo(&json!({"undo": []})), None, "an empty list keeps the plan's undo");
        assert_eq!(applied_undo(&json!({"undo": [1]})), None);
        assert_eq!(applied_undo(&json!({"done": true})), None);
    }
}
