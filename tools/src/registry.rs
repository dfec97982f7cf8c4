//! The `Registry`: every tool, type-erased, in one place.
//!
//! A reader finds any tool by its name in [`Registry::builtin`]. Input JSON is
//! validated against the tool's generated JSON Schema before it is
//! deserialized, so a malformed argument becomes an error the model can read
//! and correct, never a panic (a schema that does not compile fails the call).
//! Every output passes the [`Redactor`] before it leaves this crate, with one
//! exception: the confined worker's [`Call::run_unredacted`], whose parent redacts
//! everything the worker sends (it trusts none of it to be redacted already).
//!
//! The registry is also where the approval rule lives, once for every tool that
//! changes the host: [`Registry::call`] runs read-only tools only; a change runs
//! only through [`Registry::run_approved`], which recomputes its plan, compares it
//! with the approved one and hands exactly that state to the tool
//! (`docs/architecture.md`, "Where approval happens").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::approval::{Approval, Planned};
use crate::compared::Compared;
use crate::finding::Finding;
use crate::redact::Redactor;
use crate::tool::{Change, Ctx, Effect, Outcome, Tool, ToolError};

/// A tool's result after erasure and redaction.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ToolResult {
    /// The facts, as JSON, redacted.
    pub facts: Value,
    /// The findings, redacted.
    pub findings: Vec<Finding>,
}

/// A read-only tool's result as the confined worker hands it to its parent
/// ([`Call::run_unredacted`]): the facts as JSON text written straight from the tool's
/// types, nothing redacted. Its JSON reads back as a [`ToolResult`], which the parent then
/// redacts: it redacts all the worker sends anyway, so redacting here too only spent the
/// time twice (and building a tree of JSON values to redact, once more).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unredacted {
    /// The facts, as JSON.
    pub facts: Box<serde_json::value::RawValue>,
    /// The findings.
    pub findings: Vec<Finding>,
}

impl ToolResult {
    /// `{facts, findings}` as one JSON value: everything, as reviews and `tools run` show it.
    pub fn to_value(&self) -> Value {
        serde_json::json!({ "facts": self.facts, "findings": self.findings })
    }
}

/// What the registry knows of a tool without calling it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ToolInfo {
    /// Name the model calls.
    pub name: &'static str,
    /// Description for the model.
    pub description: &'static str,
    /// Read-only or mutating.
    pub effect: Effect,
    /// JSON Schema of the input.
    pub input_schema: Value,
    /// JSON Schema of the facts.
    pub output_schema: Value,
}

#[async_trait]
trait Erased: Send + Sync {
    fn info(&self) -> &ToolInfo;
    fn checker(&self) -> &Checker;
    /// A read-only tool's run; a change refuses.
    async fn run(&self, ctx: &Ctx, input: Value) -> Result<ToolResult, ToolError>;
    /// [`Erased::run`] for the worker's parent, which redacts it ([`Unredacted`]).
    async fn run_unredacted(&self, ctx: &Ctx, input: Value) -> Result<Unredacted, ToolError>;
    /// A change's plan; a read-only tool has none.
    async fn plan(&self, ctx: &Ctx, input: &Value) -> Result<Planned, ToolError>;
    /// A change, run after the plan recomputed now hashed like the approved one.
    async fn run_approved(&self, ctx: &Ctx, input: Value, approval: Approval) -> Result<ToolResult, ToolError>;
}

/// A tool's input schema, compiled on first use (a command runs one tool, not all fourteen).
/// A schema that does not compile fails every call: no tool runs unvalidated.
struct Checker {
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

impl Checker {
    fn new() -> Self {
        Checker { validator: OnceLock::new() }
    }

    fn compiled(&self, info: &ToolInfo) -> Result<&jsonschema::Validator, ToolError> {
        self.validator
            .get_or_init(|| jsonschema::validator_for(&info.input_schema).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| {
                ToolError::Failed(format!(
                    "the input schema of `{}` does not compile ({e}); it is not run unvalidated",
                    info.name
                ))
            })
    }

    fn validate(&self, info: &ToolInfo, input: &Value) -> Result<(), ToolError> {
        let v = self.compiled(info)?;
        let errors: Vec<String> = v
            .iter_errors(input)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
            })
            .take(5)
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(ToolError::InvalidInput(errors.join("; "))) }
    }
}

/// A read-only tool.
struct Holder<T: Tool> {
    tool: T,
    info: ToolInfo,
    checker: Checker,
}

/// A tool that changes the host.
struct ChangeHolder<T: Change> {
    tool: T,
    info: ToolInfo,
    checker: Checker,
}

impl<T: Change> ChangeHolder<T> {
    /// Why a change does not run without an approval.
    fn unapproved(&self) -> ToolError {
        ToolError::Refused(format!(
            "`{}` changes the host: it runs only with an approval of its plan (through the policy gate); nothing was done",
            self.info.name
        ))
    }
}

fn decode<I: serde::de::DeserializeOwned>(input: Value) -> Result<I, ToolError> {
    serde_json::from_value(input).map_err(|e| ToolError::InvalidInput(e.to_string()))
}

/// A tool's outcome as it leaves this crate: facts as JSON, everything redacted.
fn redacted<O: serde::Serialize>(out: Outcome<O>) -> Result<ToolResult, ToolError> {
    let facts = serde_json::to_value(&out.facts).map_err(|e| ToolError::Failed(e.to_string()))?;
    let r = Redactor::global();
    Ok(ToolResult { facts: r.value(facts), findings: out.findings.into_iter().map(|f| r.finding(f)).collect() })
}

#[async_trait]
impl<T: Tool> Erased for Holder<T> {
    fn info(&self) -> &ToolInfo {
        &self.info
    }

    fn checker(&self) -> &Checker {
        &self.checker
    }

    async fn run(&self, ctx: &Ctx, input: Value) -> Result<ToolResult, ToolError> {
        let input: T::Input = decode(input)?;
        redacted(self.tool.run(ctx, input).await?)
    }

    async fn run_unredacted(&self, ctx: &Ctx, input: Value) -> Result<Unredacted, ToolError> {
        let out = self.tool.run(ctx, decode(input)?).await?;
        let facts = serde_json::value::to_raw_value(&out.facts).map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(Unredacted { facts, findings: out.findings })
    }

    async fn plan(&self, _ctx: &Ctx, _input: &Value) -> Result<Planned, ToolError> {
        Err(ToolError::Failed(format!("`{}` has no plan: it does not change the host", self.info.name)))
    }

    async fn run_approved(&self, _ctx: &Ctx, _input: Value, _approval: Approval) -> Result<ToolResult, ToolError> {
        Err(ToolError::Refused(format!("`{}` does not change the host: it needs no approval", self.info.name)))
    }
}

#[async_trait]
impl<T: Change> Erased for ChangeHolder<T> {
    fn info(&self) -> &ToolInfo {
        &self.info
    }

    fn checker(&self) -> &Checker {
        &self.checker
    }

    async fn run(&self, _ctx: &Ctx, _input: Value) -> Result<ToolResult, ToolError> {
        Err(self.unapproved())
    }

    async fn run_unredacted(&self, _ctx: &Ctx, _input: Value) -> Result<Unredacted, ToolError> {
        Err(self.unapproved())
    }

    async fn plan(&self, ctx: &Ctx, input: &Value) -> Result<Planned, ToolError> {
        let decoded: T::Input = decode(input.clone())?;
        let (plan, _) = self.tool.prepare(ctx, &decoded).await?;
        Ok(Planned::new(self.info.name, plan, input))
    }

    async fn run_approved(&self, ctx: &Ctx, input: Value, approval: Approval) -> Result<ToolResult, ToolError> {
        let name = self.info.name;
        if !approval.is_for(name, &input) {
            return Err(ToolError::Refused(format!(
                "the approval was for another call ({}), not this `{name}` call; nothing was done",
                approval.tool()
            )));
        }
        let decoded: T::Input = decode(input.clone())?;
        let (plan, prepared) = self.tool.prepare(ctx, &decoded).await?;
        let now = Planned::new(name, plan, &input);
        if now.digest != approval.plan_digest() {
            return Err(ToolError::Refused(format!(
                "the host changed since the plan was approved; nothing was done. The plan now is:\n{}",
                now.plan.render()
            )));
        }
        redacted(self.tool.execute(ctx, decoded, prepared, Compared::by_the_registry()).await?)
    }
}

/// Why a tool could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two tools by one name: the model could not tell which it calls.
    #[error("a tool named `{0}` is already registered")]
    Duplicate(&'static str),
    /// A `Tool` that does not say it is read-only: a change must implement `Change`.
    #[error("`{0}` is a Tool that does not say it is read-only; a tool that changes the host implements Change")]
    NotReadOnly(&'static str),
}

/// A tool found by name, before its input is checked.
#[derive(Clone)]
pub struct Found {
    tool: Arc<dyn Erased>,
}

impl Found {
    /// What the registry knows of it.
    pub fn info(&self) -> &ToolInfo {
        self.tool.info()
    }

    /// Check an input against the tool's schema (a schema that does not compile fails closed).
    pub fn check(self, input: Value) -> Result<Call, ToolError> {
        self.tool.checker().validate(self.tool.info(), &input)?;
        Ok(Call { tool: self.tool, input })
    }
}

/// One call, its tool looked up and its input checked against the tool's schema once:
/// what [`Call::run`], [`Call::plan`] and [`Call::run_approved`] take.
#[derive(Clone)]
pub struct Call {
    tool: Arc<dyn Erased>,
    input: Value,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("tool", &self.tool.info().name).finish_non_exhaustive()
    }
}

impl Call {
    /// The tool called.
    pub fn info(&self) -> &ToolInfo {
        self.tool.info()
    }

    /// The checked input.
    pub fn input(&self) -> &Value {
        &self.input
    }

    /// Run a read-only tool within `[review] tool_timeout_seconds` (see [`Registry::call_within`]).
    /// A change is refused: it runs only through [`Call::run_approved`].
    pub async fn run(self, ctx: &Ctx) -> Result<ToolResult, ToolError> {
        self.run_as(ctx, redacted_run).await
    }

    /// [`Call::run`] for the confined worker: nothing redacted, the facts as JSON text
    /// ([`Unredacted`]). Only the worker calls this; its parent redacts what it sends.
    pub async fn run_unredacted(self, ctx: &Ctx) -> Result<Unredacted, ToolError> {
        self.run_as(ctx, |t, ctx, input| Box::pin(async move { t.run_unredacted(&ctx, input).await })).await
    }

    /// `run` on this call's tool: a read-only one on its own thread within its time limit,
    /// a change (which refuses) directly.
    async fn run_as<R: Send + 'static>(
        self,
        ctx: &Ctx,
        run: fn(Arc<dyn Erased>, Ctx, Value) -> ToolRun<R>,
    ) -> Result<R, ToolError> {
        if self.info().effect != Effect::ReadOnly {
            return run(self.tool, ctx.clone(), self.input).await;
        }
        let limit = Duration::from_secs(ctx.config.review.tool_timeout_seconds.max(1));
        call_within(self.tool, ctx.clone(), self.input, limit, run).await
    }

    /// The plan of a change, redacted, with the digest an approval binds to.
    pub async fn plan(&self, ctx: &Ctx) -> Result<Planned, ToolError> {
        self.tool.plan(ctx, &self.input).await
    }

    /// Run a change: compute its plan again, refuse when it differs from the approved one
    /// (nothing is done), else execute exactly what was just compared.
    pub async fn run_approved(self, ctx: &Ctx, approval: Approval) -> Result<ToolResult, ToolError> {
        self.tool.run_approved(ctx, self.input, approval).await
    }
}

/// All tools, by name.
#[derive(Clone, Default)]
pub struct Registry {
    tools: BTreeMap<&'static str, Arc<dyn Erased>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

/// The JSON Schema of an input `T`, as the model and MCP clients read it.
pub fn schema_of<T: schemars::JsonSchema>() -> Value {
    schema_with::<T>(schemars::generate::SchemaSettings::draft2020_12().for_deserialize())
}

/// The JSON Schema of an output `T` as it is serialized (fields skipped when empty are optional).
pub fn output_schema_of<T: schemars::JsonSchema>() -> Value {
    schema_with::<T>(schemars::generate::SchemaSettings::draft2020_12().for_serialize())
}

fn schema_with<T: schemars::JsonSchema>(settings: schemars::generate::SchemaSettings) -> Value {
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut v = serde_json::to_value(schema).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("$schema");
        m.remove("title");
        // The Messages API wants an object schema even for tools without arguments.
        if !m.contains_key("type") {
            m.insert("type".into(), "object".into());
        }
        if m.get("type") == Some(&Value::String("object".into())) && !m.contains_key("properties") {
            m.insert("properties".into(), serde_json::json!({}));
        }
    }
    v
}

impl Registry {
    /// An empty registry (tests add their own tools).
    pub fn empty() -> Self {
        Registry::default()
    }

    /// Every built-in tool. The one place tools are registered.
    pub fn builtin() -> Self {
        let (r, problems) = Registry::builtin_checked();
        // The registry self-test keeps this list empty; a slip is logged, never a panic.
        for p in problems {
            tracing::error!("tool registry: {p}");
        }
        r
    }

    /// Every built-in tool, and what could not be registered.
    fn builtin_checked() -> (Self, Vec<RegistryError>) {
        let mut r = Registry::empty();
        let added = [
            r.add(crate::ports::ListOpenPorts),
            r.add_change(crate::fixes::FirewallDenyPort),
            r.add_change(crate::fixes::LockAccount),
            r.add_change(crate::fixes::VerifyBackupRestore),
            r.add(crate::accounts::AuditAccounts),
            r.add(crate::ssh::CheckSsh),
            r.add(crate::services::CheckServices),
            r.add(crate::backups::CheckBackups),
            r.add(crate::updates::CheckOsUpdates),
            r.add(crate::firewall::CheckFirewall),
            r.add(crate::tls::CheckTls),
            r.add(crate::web::CheckWeb),
            r.add(crate::docker::DockerContainers),
            r.add(crate::wordpress::WordpressInventory),
            r.add_change(crate::wpupdate::WordpressStageUpdate),
            r.add_change(crate::wpupdate::WordpressApplyUpdate),
        ];
        let problems = added.into_iter().filter_map(Result::err).collect();
        (r, problems)
    }

    fn info_of(name: &'static str, description: &'static str, effect: Effect, input: Value, output: Value) -> ToolInfo {
        ToolInfo { name, description, effect, input_schema: input, output_schema: output }
    }

    fn insert(&mut self, t: Arc<dyn Erased>) -> Result<(), RegistryError> {
        let name = t.info().name;
        if self.tools.contains_key(name) {
            return Err(RegistryError::Duplicate(name));
        }
        self.tools.insert(name, t);
        Ok(())
    }

    /// Register a read-only tool. A `Tool` that does not say it is read-only is refused
    /// (a change implements [`Change`]), and so is a second tool by one name.
    pub fn add<T: Tool>(&mut self, tool: T) -> Result<(), RegistryError> {
        let info = Registry::info_of(
            tool.name(),
            tool.description(),
            tool.effect(),
            schema_of::<T::Input>(),
            output_schema_of::<T::Output>(),
        );
        if info.effect != Effect::ReadOnly {
            return Err(RegistryError::NotReadOnly(info.name));
        }
        self.insert(Arc::new(Holder { tool, info, checker: Checker::new() }))
    }

    /// Register a tool that changes the host; a second tool by one name is refused.
    pub fn add_change<T: Change>(&mut self, tool: T) -> Result<(), RegistryError> {
        let info = Registry::info_of(
            tool.name(),
            tool.description(),
            Effect::Mutating,
            schema_of::<T::Input>(),
            output_schema_of::<T::Output>(),
        );
        self.insert(Arc::new(ChangeHolder { tool, info, checker: Checker::new() }))
    }

    /// Take a tool out (a test replaces a built-in with a stand-in). Whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.tools.remove(name).is_some()
    }

    /// Every tool's info, sorted by name.
    pub fn list(&self) -> Vec<&ToolInfo> {
        self.tools.values().map(|t| t.info()).collect()
    }

    /// One tool's info.
    pub fn get(&self, name: &str) -> Option<&ToolInfo> {
        self.tools.get(name).map(|t| t.info())
    }

    /// The effect of a tool; an unknown tool counts as mutating.
    pub fn effect(&self, name: &str) -> Effect {
        self.get(name).map(|i| i.effect).unwrap_or(Effect::Mutating)
    }

    /// Names of the read-only tools.
    pub fn read_only(&self) -> Vec<&'static str> {
        self.list().into_iter().filter(|i| i.effect == Effect::ReadOnly).map(|i| i.name).collect()
    }

    /// A tool, looked up once for the calls that follow.
    pub fn lookup(&self, name: &str) -> Option<Found> {
        self.tools.get(name).map(|t| Found { tool: t.clone() })
    }

    /// Look a tool up and check an input against its schema, once, for the calls that follow.
    pub fn check(&self, name: &str, input: Value) -> Result<Call, ToolError> {
        self.lookup(name).ok_or_else(|| ToolError::Unknown(name.to_string()))?.check(input)
    }

    /// The plan of a change for this input, redacted, with its digest.
    pub async fn plan(&self, ctx: &Ctx, name: &str, input: Value) -> Result<Planned, ToolError> {
        self.check(name, input)?.plan(ctx).await
    }

    /// Run a change that a human approved: its plan is computed again and must hash like
    /// the approved one, else nothing is done; then exactly that plan runs. The approval
    /// is used up.
    pub async fn run_approved(
        &self,
        ctx: &Ctx,
        name: &str,
        input: Value,
        approval: Approval,
    ) -> Result<ToolResult, ToolError> {
        self.check(name, input)?.run_approved(ctx, approval).await
    }

    /// Run a read-only tool within `[review] tool_timeout_seconds` (see [`Registry::call_within`]).
    /// A tool that changes the host is refused here: it runs only through [`Registry::run_approved`].
    pub async fn call(&self, ctx: &Ctx, name: &str, input: Value) -> Result<ToolResult, ToolError> {
        self.check(name, input)?.run(ctx).await
    }

    /// Run a read-only tool with a time limit of `limit`.
    pub async fn call_within(
        &self,
        ctx: &Ctx,
        name: &str,
        input: Value,
        limit: Duration,
    ) -> Result<ToolResult, ToolError> {
        let t = self.tools.get(name).ok_or_else(|| ToolError::Unknown(name.to_string()))?;
        if t.info().effect != Effect::ReadOnly {
            return Err(ToolError::Refused(format!("`{name}` changes the host: it is never run under a time limit")));
        }
        t.checker().validate(t.info(), &input)?;
        call_within(t.clone(), ctx.clone(), input, limit, redacted_run).await
    }
}

/// One tool run under way, as [`call_within`] drives it on the tool's thread.
type ToolRun<R> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<R, ToolError>> + Send>>;

/// [`Erased::run`] as [`call_within`] drives it: the result redacted.
fn redacted_run(t: Arc<dyn Erased>, ctx: Ctx, input: Value) -> ToolRun<ToolResult> {
    Box::pin(async move { t.run(&ctx, input).await })
}

/// Tool threads still running (a cancelled one is cleaning up: killing its children,
/// removing its scratch directory).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Counts one tool thread for [`settle`] while it lives.
struct Running;

impl Running {
    fn start() -> Running {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Wait (at most `max`) for the tool threads to finish: after a run is cancelled (a
/// signal), so their child processes are killed and scratch directories removed
/// before the process exits. A thread stuck in the kernel is not waited for past `max`.
pub async fn settle(max: Duration) {
    let until = std::time::Instant::now() + max;
    while RUNNING.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run `t` on a thread of its own, driven by the current runtime, for at most `limit`.
///
/// Its own thread, so a tool stuck in a blocking call (a slow NFS read, a hung
/// syscall) cannot hold the timer that ends it: the caller always gets
/// "timed out" on time. On time-out the tool's future is cancelled (dropping it
/// kills its `kill_on_drop` children) as soon as it next yields; a thread stuck
/// in the kernel is left behind, and the process does not wait for it at exit.
/// `run` is what the thread does with the tool ([`Erased::run`] or [`Erased::run_unredacted`]).
async fn call_within<R: Send + 'static>(
    t: Arc<dyn Erased>,
    ctx: Ctx,
    input: Value,
    limit: Duration,
    run: fn(Arc<dyn Erased>, Ctx, Value) -> ToolRun<R>,
) -> Result<R, ToolError> {
    let name = t.info().name;
    let handle = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let running = Running::start();
    std::thread::Builder::new()
        .name(format!("tool {name}"))
        .spawn(move || {
            let _running = running;
            let r = handle.block_on(async move {
                tokio::select! {
                    r = run(t, ctx, input) => Some(r),
                    _ = cancel_rx => None,
                }
            });
            if let Some(r) = r {
                let _ = done_tx.send(r);
            }
        })
        .map_err(|e| ToolError::Failed(format!("cannot start `{name}`: {e}")))?;
    match tokio::time::timeout(limit, done_rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(ToolError::Failed(format!("`{name}` stopped without an answer (it crashed)"))),
        Err(_) => {
            drop(cancel_tx);
            Err(ToolError::TimedOut { secs: limit.as_secs() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;
    use crate::tool::{Outcome, Plan};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    struct Echo;
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct EchoIn {
        /// Port to echo.
        port: u16,
    }
    #[derive(Serialize, JsonSchema)]
    struct EchoOut {
        port: u16,
        cmd: String,
    }
    #[async_trait]
    impl Tool for Echo {
        type Input = EchoIn;
        type Output = EchoOut;
        fn name(&self) -> &'static str {
            "echo"
        }
        fn description(&self) -> &'static str {
            "echo"
        }
        fn effect(&self) -> Effect {
            Effect::ReadOnly
        }
        async fn run(&self, _ctx: &Ctx, i: EchoIn) -> Result<Outcome<EchoOut>, ToolError> {
            Ok(Outcome::new(EchoOut { port: i.port, cmd: "redis-server --requirepass hunter2".into() }, vec![]))
        }
    }

    /// A `Tool` that forgot to say it is read-only.
    struct Forgot;
    #[async_trait]
    impl Tool for Forgot {
        type Input = EchoIn;
        type Output = EchoOut;
        fn name(&self) -> &'static str {
            "forgot"
        }
        fn description(&self) -> &'static str {
            "forgot to say"
        }
        async fn run(&self, _ctx: &Ctx, i: EchoIn) -> Result<Outcome<EchoOut>, ToolError> {
            Ok(Outcome::new(EchoOut { port: i.port, cmd: String::new() }, vec![]))
        }
    }

    /// A change that counts its runs.
    struct Bump(Arc<AtomicUsize>);
    #[async_trait]
    impl Change for Bump {
        type Input = EchoIn;
        type Output = EchoOut;
        type Prepared = u16;
        fn name(&self) -> &'static str {
            "bump"
        }
        fn description(&self) -> &'static str {
            "bump"
        }
        async fn prepare(&self, _ctx: &Ctx, i: &EchoIn) -> Result<(Plan, u16), ToolError> {
            Ok((
                Plan::new("bump", format!("bump {}", i.port)).step("bump", Some(format!("bump {}", i.port)), None),
                i.port,
            ))
        }
        async fn execute(&self, _c: &Ctx, _i: EchoIn, p: u16, _: Compared) -> Result<Outcome<EchoOut>, ToolError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Outcome::new(EchoOut { port: p, cmd: String::new() }, vec![]))
        }
    }

    /// An input whose schema does not compile.
    #[derive(Deserialize)]
    struct BadIn {}
    impl JsonSchema for BadIn {
        fn schema_name() -> std::borrow::Cow<'static, str> {
            "BadIn".into()
        }
        fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
            schemars::json_schema!({"type": "object", "properties": {"x": {"type": "no-such-type"}}})
        }
    }
    struct Unchecked(Arc<AtomicUsize>);
    #[async_trait]
    impl Tool for Unchecked {
        type Input = BadIn;
        type Output = EchoOut;
        fn name(&self) -> &'static str {
            "unchecked"
        }
        fn description(&self) -> &'static str {
            "its schema does not compile"
        }
        fn effect(&self) -> Effect {
            Effect::ReadOnly
        }
        async fn run(&self, _ctx: &Ctx, _i: BadIn) -> Result<Outcome<EchoOut>, ToolError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Outcome::new(EchoOut { port: 0, cmd: String::new() }, vec![]))
        }
    }

    fn reg() -> Registry {
        let mut r = Registry::empty();
        r.add(Echo).unwrap();
        r
    }

    #[tokio::test]
    async fn bad_input_is_an_error_the_model_reads() {
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let r = reg();
        let err = r.call(&ctx, "echo", serde_json::json!({"port": "http"})).await.err().unwrap();
        assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
        let err = r.call(&ctx, "echo", serde_json::json!({"port": 70000})).await.err().unwrap();
        assert!(err.to_string().contains("/port"), "{err}");
        let err = r.call(&ctx, "echo", serde_json::json!({"port": 1, "path": "/etc/shadow"})).await.err().unwrap();
        assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
        assert!(matches!(r.call(&ctx, "nope", serde_json::json!({})).await, Err(ToolError::Unknown(_))));
    }

    #[tokio::test]
    async fn outputs_are_redacted_and_unknown_tools_count_as_mutating() {
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let mut r = reg();
        let out = r.call(&ctx, "echo", serde_json::json!({"port": 6379})).await.unwrap();
        assert_eq!(out.facts["port"], 6379);
        assert!(!out.facts.to_string().contains("hunter2"));
        assert_eq!(r.add(Forgot), Err(RegistryError::NotReadOnly("forgot")), "a tool must say it is read-only");
        assert!(r.get("forgot").is_none());
        assert_eq!(r.effect("unknown"), Effect::Mutating);
        assert_eq!(r.get("echo").unwrap().input_schema["properties"]["port"]["description"], "Port to echo.");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_workers_form_is_the_same_json_unredacted_and_a_change_still_refuses() {
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let mut r = reg();
        let raw = r.check("echo", serde_json::json!({"port": 6379})).unwrap().run_unredacted(&ctx).await.unwrap();
        // Unredacted (its parent redacts it), and read back as a ToolResult it is the same result.
        let read: ToolResult = serde_json::from_str(&serde_json::to_string(&raw).unwrap()).unwrap();
        assert_eq!(read.facts["cmd"], "redis-server --requirepass hunter2");
        let redacted = r.call(&ctx, "echo", serde_json::json!({"port": 6379})).await.unwrap();
        assert_eq!(Redactor::global().value(read.facts), redacted.facts);
        r.add_change(Bump(Arc::new(AtomicUsize::new(0)))).unwrap();
        let refused = r.check("bump", serde_json::json!({"port": 1})).unwrap().run_unredacted(&ctx).await.unwrap_err();
        assert!(refused.to_string().contains("runs only with an approval"), "{refused}");
    }

    #[test]
    fn a_second_tool_by_one_name_is_refused_and_the_first_stays() {
        let mut r = reg();
        assert_eq!(r.add(Echo), Err(RegistryError::Duplicate("echo")));
        let runs = Arc::new(AtomicUsize::new(0));
        r.add_change(Bump(runs.clone())).unwrap();
        assert_eq!(r.add_change(Bump(runs)), Err(RegistryError::Duplicate("bump")));
        assert_eq!(r.effect("echo"), Effect::ReadOnly);
        assert_eq!(r.effect("bump"), Effect::Mutating);
    }

    #[tokio::test]
    async fn a_change_runs_only_with_an_approval_of_that_call() {
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut r = reg();
        r.add_change(Bump(runs.clone())).unwrap();
        let input = serde_json::json!({"port": 7});
        // Not through `call`, not under a time limit.
        let e = r.call(&ctx, "bump", input.clone()).await.unwrap_err();
        assert!(matches!(e, ToolError::Refused(ref m) if m.contains("only with an approval")), "{e}");
        let e = r.call_within(&ctx, "bump", input.clone(), Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, ToolError::Refused(_)), "{e}");
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        let approver = crate::approval::Approver::for_tests();
        // An approval of another input, or of another tool's plan, opens nothing.
        let other = r.plan(&ctx, "bump", serde_json::json!({"port": 8})).await.unwrap();
        let e = r.run_approved(&ctx, "bump", input.clone(), approver.approve(&other)).await.unwrap_err();
        assert!(e.to_string().contains("another call"), "{e}");
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        // The approved plan runs, with the state it was planned from.
        let planned = r.plan(&ctx, "bump", input.clone()).await.unwrap();
        assert_eq!(planned.digest, crate::approval::plan_digest(&planned.plan), "the token's digest is the registry's");
        let out = r.run_approved(&ctx, "bump", input, approver.approve(&planned)).await.unwrap();
        assert_eq!(out.facts["port"], 7);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // A read-only tool has no plan.
        assert!(r.plan(&ctx, "echo", serde_json::json!({"port": 1})).await.is_err());
    }

    #[tokio::test]
    async fn a_schema_that_does_not_compile_fails_closed() {
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut r = Registry::empty();
        r.add(Unchecked(runs.clone())).unwrap();
        let e = r.call(&ctx, "unchecked", serde_json::json!({"x": 1})).await.unwrap_err();
        assert!(e.to_string().contains("does not compile"), "{e}");
        assert_eq!(runs.load(Ordering::SeqCst), 0, "the tool never ran unvalidated");
    }

    /// The registry self-test: every built-in tool has a unique name, a description, an input
    /// schema that compiles, and a plan when it changes the host.
    #[tokio::test]
    async fn every_builtin_tool_is_registered_whole() {
        let (r, problems) = Registry::builtin_checked();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(r.list().len(), 16, "every built-in tool is registered under its own name");
        let ctx = Ctx::new(Host::at("/nonexistent"));
        for info in r.list() {
            assert!(!info.description.trim().is_empty(), "{} has no description", info.name);
            let found = r.lookup(info.name).unwrap();
            found.tool.checker().compiled(info).unwrap_or_else(|e| panic!("{}: {e}", info.name));
            // A change answers `plan` (here: refuses off the live root or for a bad input); a read-only
            // tool says it has none.
            let plan = r.plan(&ctx, info.name, serde_json::json!({})).await;
            let has_no_plan = matches!(&plan, Err(ToolError::Failed(m)) if m.contains("has no plan"));
            assert_eq!(has_no_plan, info.effect == Effect::ReadOnly, "{}: {plan:?}", info.name);
        }
    }

    /// A read-only tool that hangs: in a blocking call (`Block`) or awaiting a child (`Child`).
    struct Hang {
        child_pid: Arc<std::sync::Mutex<Option<u32>>>,
    }
    #[derive(Deserialize, JsonSchema)]
    struct HangIn {
        /// Block the thread (true) or await a child process (false).
        block: bool,
    }
    #[async_trait]
    impl Tool for Hang {
        type Input = HangIn;
        type Output = EchoOut;
        fn name(&self) -> &'static str {
            "hang"
        }
        fn description(&self) -> &'static str {
            "hangs"
        }
        fn effect(&self) -> Effect {
            Effect::ReadOnly
        }
        async fn run(&self, _ctx: &Ctx, i: HangIn) -> Result<Outcome<EchoOut>, ToolError> {
            if i.block {
                // What a blocking read of a FIFO used to do to a worker thread.
                std::thread::sleep(Duration::from_secs(30));
            } else {
                let child = tokio::process::Command::new("sleep").arg("30").kill_on_drop(true).spawn().unwrap();
                *self.child_pid.lock().unwrap() = child.id();
                let _ = child.wait_with_output().await;
            }
            Ok(Outcome::new(EchoOut { port: 0, cmd: String::new() }, vec![]))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_stuck_tool_times_out_on_time_and_its_child_dies() {
        let pid = Arc::new(std::sync::Mutex::new(None));
        let mut r = reg();
        r.add(Hang { child_pid: pid.clone() }).unwrap();
        r.add_change(Bump(Arc::new(AtomicUsize::new(0)))).unwrap();
        let mut cfg = crate::config::Config::default();
        cfg.review.tool_timeout_seconds = 1;
        let ctx = Ctx::new(Host::at("/nonexistent")).with_config(cfg);
        // Two blocked tools at once on a one-worker runtime: both still answer on time.
        let started = std::time::Instant::now();
        let (a, b) = tokio::join!(
            r.call(&ctx, "hang", serde_json::json!({"block": true})),
            r.call(&ctx, "hang", serde_json::json!({"block": true}))
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        for e in [a.err().unwrap(), b.err().unwrap()] {
            assert_eq!(e.to_string(), "not checked (timed out after 1 s)");
        }
        // A tool awaiting a child: cancelled, and the child is killed with it.
        let e = r.call(&ctx, "hang", serde_json::json!({"block": false})).await.err().unwrap();
        assert!(matches!(e, ToolError::TimedOut { secs: 1 }), "{e}");
        let child = pid.lock().unwrap().expect("the child started");
        let gone = || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
                .unwrap_or(true)
        };
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !gone() && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone(), "the timed-out tool's child {child} is still running");
        // Mutating tools are never run under a limit.
        assert!(matches!(
            r.call_within(&ctx, "bump", serde_json::json!({"port": 1}), Duration::from_secs(1)).await,
            Err(ToolError::Refused(_))
        ));
    }
}
