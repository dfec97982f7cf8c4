//! The `Registry`: every tool, type-erased, in one place.
//!
//! A reader finds any tool by its name in [`Registry::builtin`]. Input JSON is
//! validated against the tool's generated JSON Schema before it is
//! deserialized, so a malformed argument becomes an error the model can read
//! and correct, never a panic. Every output passes the [`Redactor`] before it
//! leaves this crate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::finding::Finding;
use crate::redact::Redactor;
use crate::tool::{Ctx, Effect, Plan, Tool, ToolError};

/// A tool's result after erasure and redaction.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ToolResult {
    /// The facts, as JSON, redacted.
    pub facts: Value,
    /// The findings, redacted.
    pub findings: Vec<Finding>,
}

/// Longest evidence line, title and remediation the model is sent (characters).
const MODEL_TEXT_MAX: usize = 140;
/// Evidence lines per finding the model is sent.
const MODEL_EVIDENCE_MAX: usize = 1;

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

impl ToolResult {
    /// `{facts, findings}` as one JSON value: everything, as reviews and `tools run` show it.
    pub fn to_value(&self) -> Value {
        serde_json::json!({ "facts": self.facts, "findings": self.findings })
    }

    /// The compact form the model reads, so a whole review fits a small token budget:
    /// findings as `[severity, id, subject, title, evidence…, "fix: …"]` with evidence capped
    /// at one line and long texts clipped (the full text stays in the review), facts whole.
    pub fn to_model_value(&self) -> Value {
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut row = vec![
                    Value::from(f.severity.as_str()),
                    Value::from(f.id.as_str()),
                    Value::from(f.subject.as_str()),
                    Value::from(clip(&f.title, MODEL_TEXT_MAX)),
                ];
                row.extend(f.evidence.iter().take(MODEL_EVIDENCE_MAX).map(|e| Value::from(clip(e, MODEL_TEXT_MAX))));
                if f.evidence.len() > MODEL_EVIDENCE_MAX {
                    row.push(Value::from(format!("(+{} more)", f.evidence.len() - MODEL_EVIDENCE_MAX)));
                }
                if !f.remediation.is_empty() {
                    row.push(Value::from(format!("fix: {}", clip(&f.remediation, MODEL_TEXT_MAX))));
                }
                Value::Array(row)
            })
            .collect();
        serde_json::json!({
            "findings_format": "[severity, id, subject, title, evidence..., fix]",
            "findings": findings,
            "facts": self.facts,
        })
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
    fn validate(&self, input: &Value) -> Result<(), ToolError>;
    async fn plan(&self, ctx: &Ctx, input: Value) -> Result<Plan, ToolError>;
    async fn call(&self, ctx: &Ctx, input: Value) -> Result<ToolResult, ToolError>;
}

struct Holder<T: Tool> {
    tool: T,
    info: ToolInfo,
    /// Compiled on the first call: a command runs one tool, not all fourteen.
    validator: std::sync::OnceLock<Option<jsonschema::Validator>>,
}

fn decode<I: serde::de::DeserializeOwned>(input: Value) -> Result<I, ToolError> {
    serde_json::from_value(input).map_err(|e| ToolError::InvalidInput(e.to_string()))
}

#[async_trait]
impl<T: Tool> Erased for Holder<T> {
    fn info(&self) -> &ToolInfo {
        &self.info
    }

    fn validate(&self, input: &Value) -> Result<(), ToolError> {
        let Some(v) = self.validator.get_or_init(|| jsonschema::validator_for(&self.info.input_schema).ok()) else {
            return Ok(());
        };
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

    async fn plan(&self, ctx: &Ctx, input: Value) -> Result<Plan, ToolError> {
        self.validate(&input)?;
        let input: T::Input = decode(input)?;
        let plan = self.tool.plan(ctx, &input).await?;
        Ok(Redactor::global().plan(plan))
    }

    async fn call(&self, ctx: &Ctx, input: Value) -> Result<ToolResult, ToolError> {
        self.validate(&input)?;
        let input: T::Input = decode(input)?;
        let out = self.tool.run(ctx, input).await?;
        let facts = serde_json::to_value(&out.facts).map_err(|e| ToolError::Failed(e.to_string()))?;
        let r = Redactor::global();
        Ok(ToolResult { facts: r.value(facts), findings: out.findings.into_iter().map(|f| r.finding(f)).collect() })
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
        let mut r = Registry::empty();
        r.add(crate::ports::ListOpenPorts);
        r.add(crate::fixes::FirewallDenyPort);
        r.add(crate::fixes::LockAccount);
        r.add(crate::fixes::VerifyBackupRestore);
        r.add(crate::accounts::AuditAccounts);
        r.add(crate::ssh::CheckSsh);
        r.add(crate::services::CheckServices);
        r.add(crate::backups::CheckBackups);
        r.add(crate::updates::CheckOsUpdates);
        r.add(crate::firewall::CheckFirewall);
        r.add(crate::tls::CheckTls);
        r.add(crate::docker::DockerContainers);
        r.add(crate::wordpress::WordpressInventory);
        r.add(crate::wpupdate::WordpressStageUpdate);
        r.add(crate::wpupdate::WordpressApplyUpdate);
        r
    }

    /// Register a tool.
    pub fn add<T: Tool>(&mut self, tool: T) {
        let input_schema = schema_of::<T::Input>();
        let output_schema = output_schema_of::<T::Output>();
        let info = ToolInfo {
            name: tool.name(),
            description: tool.description(),
            effect: tool.effect(),
            input_schema,
            output_schema,
        };
        self.tools.insert(info.name, Arc::new(Holder { tool, info, validator: std::sync::OnceLock::new() }));
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

    /// Check an input against a tool's schema without running it.
    pub fn validate(&self, name: &str, input: &Value) -> Result<(), ToolError> {
        self.tools.get(name).ok_or_else(|| ToolError::Unknown(name.to_string()))?.validate(input)
    }

    /// The plan of a mutating tool for this input.
    pub async fn plan(&self, ctx: &Ctx, name: &str, input: Value) -> Result<Plan, ToolError> {
        let t = self.tools.get(name).ok_or_else(|| ToolError::Unknown(name.to_string()))?;
        t.plan(ctx, input).await
    }

    /// Run a tool. The caller (the policy gate) has already decided it may run.
    /// A read-only tool gets `[review] tool_timeout_seconds` (see [`Registry::call_within`]);
    /// a mutating one is never cut off half-way through its change.
    pub async fn call(&self, ctx: &Ctx, name: &str, input: Value) -> Result<ToolResult, ToolError> {
        let t = self.tools.get(name).ok_or_else(|| ToolError::Unknown(name.to_string()))?;
        if t.info().effect != Effect::ReadOnly {
            return t.call(ctx, input).await;
        }
        let limit = Duration::from_secs(ctx.config.review.tool_timeout_seconds.max(1));
        call_within(t.clone(), ctx.clone(), input, limit).await
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
        call_within(t.clone(), ctx.clone(), input, limit).await
    }
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
async fn call_within(t: Arc<dyn Erased>, ctx: Ctx, input: Value, limit: Duration) -> Result<ToolResult, ToolError> {
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
                    r = t.call(&ctx, input) => Some(r),
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
    use crate::tool::Outcome;
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
        async fn run(&self, _ctx: &Ctx, i: EchoIn) -> Result<Outcome<EchoOut>, ToolError> {
            Ok(Outcome::new(EchoOut { port: i.port, cmd: "redis-server --requirepass hunter2".into() }, vec![]))
        }
    }

    fn reg() -> Registry {
        let mut r = Registry::empty();
        r.add(Echo);
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
        let r = reg();
        let out = r.call(&ctx, "echo", serde_json::json!({"port": 6379})).await.unwrap();
        assert_eq!(out.facts["port"], 6379);
        assert!(!out.facts.to_string().contains("hunter2"));
        assert_eq!(r.effect("echo"), Effect::Mutating, "a tool that does not say read-only is mutating");
        assert_eq!(r.effect("unknown"), Effect::Mutating);
        assert_eq!(r.get("echo").unwrap().input_schema["properties"]["port"]["description"], "Port to echo.");
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
        r.add(Hang { child_pid: pid.clone() });
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
            r.call_within(&ctx, "echo", serde_json::json!({"port": 1}), Duration::from_secs(1)).await,
            Err(ToolError::Refused(_))
        ));
    }
}

#[cfg(test)]
mod model_view_tests {
    use super::*;
    use crate::finding::{Category, Severity};

    #[test]
    fn the_model_view_is_compact_and_keeps_what_matters() {
        let long = "x".repeat(500);
        let f = Finding::new(
            "ports.exposed-datastore",
            Severity::Critical,
            Category::Ports,
            "tcp:9200",
            "Elasticsearch is public",
        )
        .evidence("0.0.0.0:9200/tcp by java (pid 800)")
        .evidence("second line")
        .fix(long.clone());
        let r = ToolResult { facts: serde_json::json!({"n": 1}), findings: vec![f] };
        let v = r.to_model_value();
        let row = v["findings"][0].as_array().unwrap();
        assert_eq!(row[0], "critical");
        assert_eq!(row[2], "tcp:9200");
        assert_eq!(row[4], "0.0.0.0:9200/tcp by java (pid 800)", "the first evidence line is kept whole");
        assert_eq!(row[5], "(+1 more)");
        assert!(row[6].as_str().unwrap().starts_with("fix: ") && row[6].as_str().unwrap().chars().count() < 150);
        assert_eq!(v["facts"]["n"], 1);
        assert!(serde_json::to_string(&v).unwrap().len() < serde_json::to_string(&r.to_value()).unwrap().len());
    }
}
