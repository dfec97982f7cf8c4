//! `vigil mcp` driven by a real MCP client (rmcp's) — over the real binary's
//! stdio for the contract (tools, schemas, read-only calls, protocol errors,
//! the audit log), and in-process over a pipe with a test-registered mutating
//! tool for the gate (refused by default, confirmed / declined through
//! elicitation when the root-owned config opts in). Runs as root in CI, so the
//! config files these tests write are root-owned.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    ElicitationAction, Implementation, RequestMetaObject, Tool as McpTool,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceError, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use vigil::mcp::{McpServer, MutatingPolicy};
use vigil_tools::compared::Compared;
use vigil_tools::{Change, Ctx, Host, Outcome, Plan, Registry, ToolError};

const SECRET: &str = "Company2024!";
const WAIT: Duration = Duration::from_secs(60);

fn web1() -> PathBuf {
    vigil_testkit::fixture_hosts().join("web1")
}

/// How the test client answers an elicitation.
#[derive(Clone, Debug)]
enum Reply {
    Type(&'static str),
    Decline,
    Cancel,
}

/// An MCP client that may or may not support elicitation, and records what it was asked.
#[derive(Clone)]
struct Client {
    elicitation: bool,
    reply: Reply,
    asked: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Client {
    fn new(elicitation: bool, reply: Reply) -> Self {
        Client { elicitation, reply, asked: Arc::default() }
    }
    fn asked(&self) -> Vec<(String, Value)> {
        self.asked.lock().unwrap().clone()
    }
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let caps = if self.elicitation {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("vigil-test-client", "0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let ElicitRequestParams::FormElicitationParams { message, requested_schema, .. } = request else {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        self.asked.lock().unwrap().push((message, serde_json::to_value(&requested_schema).unwrap()));
        Ok(match self.reply {
            Reply::Type(word) => {
                let mut r = ElicitResult::new(ElicitationAction::Accept);
                r.content = Some(json!({ "confirm": word }));
                r
            }
            Reply::Decline => ElicitResult::new(ElicitationAction::Decline),
            Reply::Cancel => ElicitResult::new(ElicitationAction::Cancel),
        })
    }
}

type Session = RunningService<RoleClient, Client>;

/// Start the real binary as `vigil --root web1 --state-dir STATE [extra…] mcp` and connect.
async fn spawn(state: &Path, extra: &[&str], client: Client) -> Session {
    spawn_on(&web1(), state, extra, client).await
}

/// `vigil mcp` auditing `root` (the live `/` for mutating tools, which refuse to plan elsewhere).
async fn spawn_on(root: &Path, state: &Path, extra: &[&str], client: Client) -> Session {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("--root").arg(root).arg("--state-dir").arg(state).args(extra).arg("mcp");
    cmd.env("VIGIL_NOW", "2026-11-27T00:00:00Z");
    let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::inherit()).spawn().expect("spawn vigil mcp");
    tokio::time::timeout(WAIT, client.serve(transport)).await.expect("initialize in time").expect("initialize")
}

async fn call(s: &Session, name: &str, args: Value) -> Result<CallToolResult, ServiceError> {
    let Value::Object(args) = args else { panic!("arguments must be an object") };
    let p = CallToolRequestParams::new(name.to_string()).with_arguments(args);
    tokio::time::timeout(WAIT, s.call_tool(p)).await.expect("answer in time")
}

fn text_of(r: &CallToolResult) -> String {
    r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("\n")
}

fn audit(state: &Path) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--root")
        .arg(web1())
        .arg("--state-dir")
        .arg(state)
        .args(["log", "show", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .collect()
}

fn validate(schema: &Value, instance: &Value, what: &str) {
    let v = jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{what}: bad outputSchema: {e}"));
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{}: {e}", e.instance_path())).take(5).collect();
    assert!(errors.is_empty(), "{what}: structuredContent does not match outputSchema: {errors:?}");
}

fn schema(t: &McpTool) -> Value {
    Value::Object(t.output_schema.as_deref().cloned().expect("every tool has an outputSchema"))
}

#[tokio::test]
async fn lists_tools_runs_read_only_tools_and_keeps_serving_after_errors() {
    let state = tempfile::tempdir().unwrap();
    let s = spawn(state.path(), &[], Client::new(false, Reply::Decline)).await;
    let info = s.peer_info().expect("initialized");
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("vigil"));
    assert!(info.protocol_version.as_str() <= "2025-11-25", "a session with initialize: {}", info.protocol_version);

    let tools = tokio::time::timeout(WAIT, s.list_all_tools()).await.unwrap().unwrap();
    let registry = Registry::builtin();
    assert_eq!(tools.len(), registry.list().len(), "every registry tool is listed");
    for t in &tools {
        let reg = registry.get(&t.name).unwrap_or_else(|| panic!("{} is not in the registry", t.name));
        let mut portable = reg.input_schema.clone();
        vigil::mcp::portable_schema(&mut portable);
        assert_eq!(
            Value::Object((*t.input_schema).clone()),
            portable,
            "{}: inputSchema is the schemars schema with standard formats only",
            t.name
        );
        assert!(t.description.as_deref().unwrap_or("").starts_with(reg.description), "{}", t.name);
        assert!(t.title.as_deref().is_some_and(|s| !s.is_empty()), "{} has a title", t.name);
        let out = schema(t);
        assert_eq!(out["type"], "object");
        assert_eq!(out["required"], json!(["facts", "findings"]), "{}", t.name);
        let a = t.annotations.as_ref().expect("annotations");
        let read_only = reg.effect == vigil_tools::Effect::ReadOnly;
        assert_eq!(a.read_only_hint, Some(read_only), "{}", t.name);
        assert_eq!(a.destructive_hint, Some(!read_only), "{}", t.name);
    }
    let ports = tools.iter().find(|t| t.name == "list_open_ports").expect("list_open_ports is listed");
    assert_eq!(ports.annotations.as_ref().unwrap().read_only_hint, Some(true));
    assert!(ports.input_schema["properties"]["port"]["description"].is_string(), "field docs reach the client");

    // list_open_ports on the fixture: the open Elasticsearch, and no planted secret anywhere.
    let r = call(&s, "list_open_ports", json!({})).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let sc = r.structured_content.clone().expect("structured content");
    validate(&schema(ports), &sc, "list_open_ports");
    let es = sc["findings"].as_array().unwrap().iter().find(|f| f["subject"] == "tcp:9200").expect("9200 finding");
    assert_eq!(es["id"], "ports.exposed-datastore");
    assert_eq!(es["severity"], "critical");
    assert!(sc["facts"]["listeners"].as_array().unwrap().iter().any(|l| l["port"] == 9200));
    let text = text_of(&r);
    assert!(text.starts_with("list_open_ports: "), "{text}");
    assert!(text.contains("[critical] Elasticsearch"), "the summary names the finding: {text}");
    assert!(!serde_json::to_string(&r).unwrap().contains(SECRET), "the planted Redis password leaked");

    // Every read-only tool that needs no argument runs and matches its advertised schema.
    for t in tools.iter().filter(|t| t.annotations.as_ref().unwrap().read_only_hint == Some(true)) {
        if t.input_schema.get("required").is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty())) {
            continue;
        }
        let r = call(&s, &t.name, json!({})).await.unwrap();
        if let Some(sc) = &r.structured_content {
            validate(&schema(t), sc, &t.name);
        }
        assert!(!serde_json::to_string(&r).unwrap().contains(SECRET), "{} leaked the planted password", t.name);
    }

    // A bad argument is a tool error the model can read and correct.
    let r = call(&s, "list_open_ports", json!({"port": "elastic"})).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("invalid input"), "{}", text_of(&r));
    let r = call(&s, "list_open_ports", json!({"path": "/etc/shadow"})).await.unwrap();
    assert_eq!(r.is_error, Some(true), "unknown fields are refused");

    // An unknown tool is a protocol error (-32602), and the server keeps serving.
    match call(&s, "rm_rf_everything", json!({})).await {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32602, "{e:?}");
            assert!(e.message.contains("rm_rf_everything"), "{e:?}");
        }
        other => panic!("an unknown tool must be a protocol error, got {other:?}"),
    }
    let r = call(&s, "list_open_ports", json!({"port": 9200})).await.unwrap();
    assert_eq!(r.structured_content.unwrap()["facts"]["listeners"].as_array().unwrap().len(), 1);
    let r = call(&s, "check_ssh", json!({})).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    s.cancel().await.unwrap();

    let events = audit(state.path());
    let mcp: Vec<&Value> = events.iter().filter(|e| e["kind"] == "tool_call").collect();
    assert!(!mcp.is_empty());
    assert!(mcp.iter().all(|e| e["origin"] == "mcp"), "every call is marked as coming over MCP: {mcp:?}");
    assert!(mcp.iter().any(|e| e["tool"] == "list_open_ports" && e["decision"] == "ran"));
    assert!(
        mcp.iter().any(|e| e["tool"] == "check_ssh" && e["ran_in"] == "worker"),
        "MCP's read-only calls run in the confined worker: {mcp:?}"
    );
    assert!(
        mcp.iter().any(|e| e["tool"] == "rm_rf_everything" && e["decision"] == "refused"),
        "unknown tools are audited too"
    );
    assert!(!serde_json::to_string(&events).unwrap().contains(SECRET));
}

/// The pid of the confined worker whose parent's command line names `state` (this test's server).
#[expect(clippy::disallowed_methods, reason = "the kernel's /proc, read to find the test's own worker")]
fn worker_of(state: &Path) -> Option<i32> {
    let state = state.display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        if !String::from_utf8_lossy(&cmdline).contains("__worker") {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
        let parent = std::fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
        String::from_utf8_lossy(&parent).contains(&state).then_some(pid)
    })
}

#[tokio::test]
async fn a_worker_killed_mid_session_is_an_error_per_call_and_the_server_keeps_serving() {
    let state = tempfile::tempdir().unwrap();
    let s = spawn(state.path(), &[], Client::new(false, Reply::Decline)).await;
    let r = call(&s, "check_ssh", json!({})).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let worker = worker_of(state.path()).expect("the read-only call started a worker");
    // SAFETY: kill with a pid and a signal number.
    assert_eq!(unsafe { libc::kill(worker, libc::SIGKILL) }, 0);
    let r = call(&s, "audit_accounts", json!({})).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = text_of(&r);
    assert!(text.contains("the confined worker stopped (killed by signal 9 (SIGKILL)) before answering"), "{text}");
    // Every later read-only call (docker_containers too: it runs in the worker now) gets the
    // same clear error at once, never a hang; the session is not lost: it still lists its tools.
    let r = tokio::time::timeout(WAIT, call(&s, "docker_containers", json!({}))).await.unwrap().unwrap();
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    let text = text_of(&r);
    assert!(text.contains("not checked: the confined worker stopped (killed by signal 9 (SIGKILL))"), "{text}");
    let tools = tokio::time::timeout(WAIT, s.list_all_tools()).await.unwrap().unwrap();
    assert!(tools.iter().any(|t| t.name == "docker_containers"));
    s.cancel().await.unwrap();
}

#[tokio::test]
async fn malformed_json_rpc_gets_an_error_response_and_the_server_keeps_serving() {
    let state = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--root")
        .arg(web1())
        .arg("--state-dir")
        .arg(state.path())
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line =
            tokio::time::timeout(WAIT, lines.next_line()).await.expect("a reply in time").unwrap().expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout carries only JSON-RPC ({e}): {line}"))
    };
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    stdin
        .write_all(format!("{init}\n{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}}\n").as_bytes())
        .await
        .unwrap();
    let r = next().await;
    assert_eq!(r["id"], 1);
    assert_eq!(r["result"]["protocolVersion"], "2025-06-18", "the client's version is honoured");

    stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"\n").await.unwrap();
    let r = next().await;
    assert_eq!(r["error"]["code"], -32700, "{r}");
    assert_eq!(r["id"], Value::Null);

    stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":42}\n").await.unwrap();
    let r = next().await;
    assert_eq!((r["id"].as_i64(), r["error"]["code"].as_i64()), (Some(3), Some(-32600)), "{r}");

    stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}\n").await.unwrap();
    let r = next().await;
    assert_eq!(r["id"], 4);
    assert!(r["result"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "list_open_ports"));

    let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}"#;
    stdin.write_all(format!("{call}\n").as_bytes()).await.unwrap();
    let r = next().await;
    assert_eq!((r["id"].as_i64(), r["error"]["code"].as_i64()), (Some(5), Some(-32602)), "{r}");

    drop(stdin);
    let status = tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "EOF on stdin ends the server cleanly: {status:?}");
}

// ---- The policy gate over MCP, with a test-registered mutating tool ----------------------------

/// A stand-in for `firewall_deny_port` that counts its runs and changes nothing.
struct FakeDeny(Arc<AtomicUsize>);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DenyIn {
    /// The port to close.
    port: u16,
}

#[derive(Serialize, JsonSchema)]
struct DenyOut {
    /// The port now closed.
    denied: u16,
}

#[async_trait]
impl Change for FakeDeny {
    type Input = DenyIn;
    type Output = DenyOut;
    type Prepared = ();
    fn name(&self) -> &'static str {
        "firewall_deny_port"
    }
    fn description(&self) -> &'static str {
        "Close a port in the firewall (test stand-in)."
    }
    async fn prepare(&self, _ctx: &Ctx, i: &DenyIn) -> Result<(Plan, ()), ToolError> {
        let plan = Plan::new("firewall_deny_port", format!("deny inbound tcp/{}", i.port)).step(
            format!("drop inbound tcp/{}", i.port),
            Some(format!("nft add rule inet filter input tcp dport {} drop", i.port)),
            Some(format!("nft delete rule inet filter input handle <h> # tcp/{}", i.port)),
        );
        Ok((plan, ()))
    }
    async fn execute(&self, _ctx: &Ctx, i: DenyIn, _p: (), _proof: Compared) -> Result<Outcome<DenyOut>, ToolError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Outcome::new(DenyOut { denied: i.port }, vec![]))
    }
}

fn registry(runs: &Arc<AtomicUsize>) -> Arc<Registry> {
    let mut r = Registry::builtin();
    assert!(r.remove("firewall_deny_port"));
    r.add_change(FakeDeny(runs.clone())).unwrap();
    Arc::new(r)
}

/// Serve `server` in-process over a pipe and connect `client` to it.
async fn in_process(server: McpServer, client: Client) -> (Session, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let (c, s) = tokio::io::duplex(1 << 20);
    let (sr, sw) = tokio::io::split(s);
    let served = tokio::spawn(vigil::mcp::serve(server, sr, sw));
    let (cr, cw) = tokio::io::split(c);
    let session = tokio::time::timeout(WAIT, client.serve((cr, cw))).await.unwrap().unwrap();
    (session, served)
}

/// A server built the way `vigil mcp` builds it — `App` from the global options, so the
/// config's trust and opt-in are the real ones — plus the test tool.
fn server_from_app(state: &Path, config: Option<&Path>, runs: &Arc<AtomicUsize>) -> McpServer {
    let global = vigil::cli::Global {
        root: Some(web1()),
        config: config.map(Path::to_path_buf),
        state_dir: Some(state.to_path_buf()),
        vuln_feed: None,
        model: None,
        no_color: true,
        // In-process: this test binary is no vigil to re-execute as the worker.
        no_sandbox: true,
        verbose: 0,
    };
    let mut app = vigil::app::App::new(global).unwrap();
    app.registry = registry(runs);
    McpServer::from_app(&app).unwrap()
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn with_meta_approved(args: Value) -> CallToolRequestParams {
    let Value::Object(args) = args else { unreachable!() };
    let mut p = CallToolRequestParams::new("firewall_deny_port").with_arguments(args);
    let Value::Object(meta) =
        json!({"approved": true, "vigil/approved": "firewall_deny_port", "confirm": "firewall_deny_port"})
    else {
        unreachable!()
    };
    p.meta = Some(RequestMetaObject::from(meta));
    p
}

fn decisions(state: &Path, tool: &str) -> Vec<String> {
    vigil::audit::AuditLog::in_dir(state)
        .entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.event["tool"] == tool)
        .inspect(|e| assert_eq!(e.event["origin"], "mcp"))
        .map(|e| e.event["decision"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn mutating_tools_are_refused_by_default_and_client_hints_do_not_open_the_gate() {
    let state = tempfile::tempdir().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    // The fixture's own root-owned config does not opt in; a client that *could* answer is not asked.
    let client = Client::new(true, Reply::Type("firewall_deny_port"));
    let (s, served) = in_process(server_from_app(state.path(), None, &runs), client.clone()).await;

    let tools = s.list_all_tools().await.unwrap();
    let deny = tools.iter().find(|t| t.name == "firewall_deny_port").unwrap();
    let a = deny.annotations.as_ref().unwrap();
    assert_eq!((a.read_only_hint, a.destructive_hint), (Some(false), Some(true)));

    let r = tokio::time::timeout(WAIT, s.call_tool(with_meta_approved(json!({"port": 9200})))).await.unwrap().unwrap();
    println!("refused call result: {}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!(r.is_error, Some(true));
    let text = text_of(&r);
    assert!(text.contains("refuses changes by default"), "{text}");
    assert!(text.contains("[mcp] mutating = \"elicit\""), "says how to opt in: {text}");
    assert!(text.contains("nft add rule inet filter input tcp dport 9200 drop"), "shows the plan not run: {text}");
    assert!(r.structured_content.is_none());
    assert_eq!(runs.load(Ordering::SeqCst), 0, "nothing ran");
    assert!(client.asked().is_empty(), "no elicitation without the opt-in");

    // Read-only tools still run on the same session.
    let r = call(&s, "list_open_ports", json!({"port": 9200})).await.unwrap();
    assert_ne!(r.is_error, Some(true));
    s.cancel().await.unwrap();
    served.await.unwrap().unwrap();
    assert_eq!(decisions(state.path(), "firewall_deny_port"), vec!["refused"]);
}

#[tokio::test]
#[cfg_attr(vigil_missing = "root", ignore = "needs root (chown the config to another user)")]
async fn an_opt_in_in_a_config_not_owned_by_root_is_ignored() {
    vigil_testkit::require(&["root"]);
    let state = tempfile::tempdir().unwrap();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = write_config(cfg_dir.path(), "[mcp]\nmutating = \"elicit\"\n");
    // SAFETY: chown on a path we own, to `nobody`.
    let c = std::ffi::CString::new(cfg.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0, "chown the config to nobody");
    let runs = Arc::new(AtomicUsize::new(0));
    let client = Client::new(true, Reply::Type("firewall_deny_port"));
    let (s, _served) = in_process(server_from_app(state.path(), Some(&cfg), &runs), client.clone()).await;
    let r = call(&s, "firewall_deny_port", json!({"port": 9200})).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("not owned by root"), "{}", text_of(&r));
    assert!(client.asked().is_empty());
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn opted_in_elicitation_confirms_with_the_tool_name_and_declines_otherwise() {
    let state = tempfile::tempdir().unwrap();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = write_config(cfg_dir.path(), "[mcp]\nmutating = \"elicit\"\n");
    let runs = Arc::new(AtomicUsize::new(0));

    // Confirmed: the client's user typed the tool name.
    let client = Client::new(true, Reply::Type("firewall_deny_port"));
    let (s, _served) = in_process(server_from_app(state.path(), Some(&cfg), &runs), client.clone()).await;
    let r = call(&s, "firewall_deny_port", json!({"port": 9200})).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(r.structured_content.as_ref().unwrap()["facts"]["denied"], 9200);
    assert!(text_of(&r).contains("confirmed `firewall_deny_port`"), "{}", text_of(&r));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let asked = client.asked();
    assert_eq!(asked.len(), 1);
    let (message, schema) = &asked[0];
    assert!(message.contains("nft add rule inet filter input tcp dport 9200 drop"), "the plan is shown: {message}");
    assert!(message.contains("\"port\": 9200"), "the exact arguments are shown: {message}");
    assert_eq!(schema["properties"]["confirm"]["type"], "string");
    assert_eq!(schema["required"], json!(["confirm"]));
    s.cancel().await.unwrap();

    // Declined, cancelled, or accepted with the wrong word: nothing runs.
    for reply in [Reply::Decline, Reply::Cancel, Reply::Type("yes"), Reply::Type("firewall_deny_port_x")] {
        let client = Client::new(true, reply.clone());
        let (s, _served) = in_process(server_from_app(state.path(), Some(&cfg), &runs), client.clone()).await;
        let r =
            tokio::time::timeout(WAIT, s.call_tool(with_meta_approved(json!({"port": 9200})))).await.unwrap().unwrap();
        assert_eq!(r.is_error, Some(true), "{reply:?}");
        assert!(text_of(&r).contains("declined"), "{reply:?}: {}", text_of(&r));
        assert_eq!(client.asked().len(), 1, "{reply:?}");
        s.cancel().await.unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "only the confirmed call ran");

    // Opted in, but the client cannot ask anyone: refused, with the reason.
    let client = Client::new(false, Reply::Type("firewall_deny_port"));
    let (s, _served) = in_process(server_from_app(state.path(), Some(&cfg), &runs), client).await;
    let r = call(&s, "firewall_deny_port", json!({"port": 9200})).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("did not declare the `elicitation` capability"), "{}", text_of(&r));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    s.cancel().await.unwrap();

    let d = decisions(state.path(), "firewall_deny_port");
    assert_eq!(d, vec!["confirmed", "declined", "declined", "declined", "declined", "refused"]);
}

#[tokio::test]
async fn in_process_policy_refuse_without_app() {
    // `serve` with a hand-built server: the library entry point the tests above rely on.
    let runs = Arc::new(AtomicUsize::new(0));
    let ctx = Ctx::new(Host::at(web1()));
    let server = McpServer::new(registry(&runs), ctx, None, MutatingPolicy::Refuse("testing".into()));
    let (s, served) = in_process(server, Client::new(true, Reply::Type("firewall_deny_port"))).await;
    let r = call(&s, "firewall_deny_port", json!({"port": 22})).await.unwrap();
    assert!(text_of(&r).contains("testing"), "{}", text_of(&r));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    s.cancel().await.unwrap();
    served.await.unwrap().unwrap();
}

// ---- MERGE CHECK: the real `firewall_deny_port` through the real binary ------------------------
// Until the branch that adds `firewall_deny_port` is merged, the registry has no mutating tool and
// this test checks that the name is an unknown tool (a protocol error). Once merged it checks the
// refusal by default and a declined elicitation when opted in. If the real tool's input differs
// from `{"port": 9200}`, adjust ARGS below.

#[tokio::test]
async fn merge_check_real_firewall_deny_port_over_the_binary() {
    const ARGS: fn() -> Value = || json!({"port": 9200, "reason": "forgotten Elasticsearch debug port"});
    let state = tempfile::tempdir().unwrap();
    // Planning reads the live firewall (nothing changes): mutating tools refuse to plan on a fixture root.
    let s = spawn_on(Path::new("/"), state.path(), &[], Client::new(true, Reply::Type("firewall_deny_port"))).await;
    let listed = s.list_all_tools().await.unwrap().iter().any(|t| t.name == "firewall_deny_port");
    if !listed {
        println!("NOTE: firewall_deny_port is not in this build's registry yet; checking it is an unknown tool");
        match call(&s, "firewall_deny_port", ARGS()).await {
            Err(ServiceError::McpError(e)) => assert_eq!(e.code.0, -32602),
            other => panic!("expected a protocol error, got {other:?}"),
        }
        s.cancel().await.unwrap();
        return;
    }
    let r = call(&s, "firewall_deny_port", ARGS()).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = text_of(&r);
    assert!(!text.contains("invalid input"), "adjust ARGS to the real tool's input schema: {text}");
    assert!(text.contains("refuses changes by default"), "{text}");
    s.cancel().await.unwrap();

    // Opted in through a root-owned config: asked, declined, nothing changed.
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = write_config(cfg_dir.path(), "[mcp]\nmutating = \"elicit\"\n");
    let client = Client::new(true, Reply::Decline);
    let s = spawn_on(Path::new("/"), state.path(), &["--config", cfg.to_str().unwrap()], client.clone()).await;
    let r = call(&s, "firewall_deny_port", ARGS()).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("declined"), "{}", text_of(&r));
    assert_eq!(client.asked().len(), 1, "the client's user was asked");
    s.cancel().await.unwrap();
    let events = audit(state.path());
    let d: Vec<&Value> = events.iter().filter(|e| e["tool"] == "firewall_deny_port").map(|e| &e["decision"]).collect();
    assert_eq!(d, vec!["refused", "declined"]);
    assert!(events.iter().all(|e| e["kind"] != "tool_call" || e["origin"] == "mcp"));
}
