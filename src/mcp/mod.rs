//! `vigil mcp`: the tool registry as a Model Context Protocol server on stdio,
//! behind the same policy gate as every other caller.
//!
//! Administrators who already work inside an AI client (Claude Code, Claude
//! Desktop, an IDE) get vigil's typed tools there without giving up the gate.
//! Every tool is listed with its input schema, its description, an output
//! schema (`{facts, findings}`) and annotations (`readOnlyHint` /
//! `destructiveHint`). Read-only tools run through the [`Gate`] and answer with
//! structured content plus a short text rendering. Mutating tools are refused
//! by default: over MCP a confirmation would be answered by a client
//! application, not by a human at this host's terminal. An administrator may
//! opt in with `[mcp] mutating = "elicit"` in the root-owned config; then the
//! gate asks through MCP elicitation, showing the plan and requiring the
//! client's user to type the tool's name. Nothing the client sends with the
//! call (arguments, `_meta` "approved" hints) can open the gate, and every call
//! lands in the audit log marked `origin: mcp`. There is no network listener.
//!
//! Protocol: sessions with the `initialize` handshake, up to revision
//! 2025-11-25, because asking the user mid-call needs a server-to-client
//! request, which the stateless 2026-07-28 revision no longer has.

pub mod transport;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitRequestParams, ElicitationAction,
    ElicitationSchema, Implementation, ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{ElicitationMode, RequestContext, ServiceError};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use vigil_tools::registry::output_schema_of;
use vigil_tools::{Ctx, Effect, Finding, Registry, Severity, ToolInfo, ToolResult};

use crate::app::App;
use crate::audit::{AuditLog, Origin};
use crate::config::McpMutating;
use crate::gate::{Answer, ConfirmRequest, Confirmer, Decision, Gate, Gated};
use crate::term::strip_controls;

/// The newest protocol revision served (the last with a session and server-to-client requests).
pub const PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// How long the client's user has to answer a confirmation.
pub const ELICIT_TIMEOUT: Duration = Duration::from_secs(600);

/// What `vigil mcp` does with a mutating tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutatingPolicy {
    /// Refuse it; the reason is shown to the client.
    Refuse(String),
    /// Ask the client's user through MCP elicitation.
    Elicit,
}

impl MutatingPolicy {
    /// The policy the config asks for: elicitation only when opted in *and* the config is root-owned.
    pub fn from_config(mode: McpMutating, trusted: bool, config_path: &std::path::Path) -> Self {
        match (mode, trusted) {
            (McpMutating::Elicit, true) => MutatingPolicy::Elicit,
            (McpMutating::Elicit, false) => MutatingPolicy::Refuse(format!(
                "`[mcp] mutating = \"elicit\"` is set in {}, but that file is not owned by root (or is writable by others), so the opt-in is ignored",
                config_path.display()
            )),
            (McpMutating::Refuse, _) => MutatingPolicy::Refuse(
                "vigil mcp refuses changes by default: over MCP the confirmation would be answered by a client application, not by a human at this host's terminal (an administrator can opt in with `[mcp] mutating = \"elicit\"` in the root-owned config)".into(),
            ),
        }
    }
}

/// Asks for one MCP call: refuses, or asks the client's user through elicitation.
/// Remembers the plan it was shown so a refusal can say what was not done.
struct McpConfirmer {
    policy: MutatingPolicy,
    peer: Peer<RoleServer>,
    shown: Mutex<Option<String>>,
}

impl McpConfirmer {
    fn shown(&self) -> Option<String> {
        self.shown.lock().ok().and_then(|s| s.clone())
    }

    async fn elicit(&self, req: &ConfirmRequest) -> Answer {
        if !self.peer.supported_elicitation_modes().contains(&ElicitationMode::Form) {
            return Answer::Unavailable(
                "this MCP client did not declare the `elicitation` capability, so nobody can be asked".into(),
            );
        }
        let word = req.word.clone();
        let schema = ElicitationSchema::builder()
            .required_string_with("confirm", |s| {
                s.title(format!("Type {word} to run it")).description(format!(
                    "Type exactly `{word}` to make this change; anything else leaves the host unchanged."
                ))
            })
            .description("Confirm a change to the host")
            .build();
        let schema = match schema {
            Ok(s) => s,
            Err(e) => return Answer::Unavailable(format!("could not build the confirmation form: {e}")),
        };
        let message = format!(
            "vigil: `{}` wants to change this host.\n{}\nType `{}` and accept to run it; decline or cancel to leave the host unchanged.",
            req.tool,
            req.render().trim_end(),
            req.word
        );
        let params = ElicitRequestParams::FormElicitationParams { meta: None, message, requested_schema: schema };
        match self.peer.create_elicitation_with_timeout(params, Some(ELICIT_TIMEOUT)).await {
            Ok(r) => match r.action {
                ElicitationAction::Accept => {
                    let typed = r.content.as_ref().and_then(|c| c.get("confirm")).and_then(Value::as_str);
                    if typed.map(str::trim) == Some(req.word.as_str()) { Answer::Confirmed } else { Answer::Declined }
                }
                _ => Answer::Declined,
            },
            Err(ServiceError::Timeout { .. }) => Answer::Declined,
            Err(e) => Answer::Unavailable(format!("the confirmation request to the MCP client failed ({e})")),
        }
    }
}

#[async_trait]
impl Confirmer for McpConfirmer {
    async fn confirm(&self, req: &ConfirmRequest) -> Answer {
        if let Ok(mut s) = self.shown.lock() {
            *s = Some(req.render());
        }
        match &self.policy {
            MutatingPolicy::Refuse(why) => Answer::Unavailable(why.clone()),
            MutatingPolicy::Elicit => self.elicit(req).await,
        }
    }

    fn refuses_all(&self) -> Option<String> {
        match &self.policy {
            MutatingPolicy::Refuse(why) => Some(why.clone()),
            MutatingPolicy::Elicit => None,
        }
    }
}

/// The MCP server: the registry, the tool context, the audit log and the policy.
#[derive(Clone)]
pub struct McpServer {
    registry: Arc<Registry>,
    ctx: Ctx,
    audit: Option<AuditLog>,
    policy: MutatingPolicy,
    tools: Arc<Vec<Tool>>,
    /// The confined worker read-only calls run in (`None`: in this process).
    sandbox: Option<Arc<crate::worker::Sandbox>>,
    /// The tools the configuration's `[gate] deny` names.
    deny: Vec<String>,
}

impl McpServer {
    /// A server over `registry` on `ctx`, logging to `audit`.
    pub fn new(registry: Arc<Registry>, ctx: Ctx, audit: Option<AuditLog>, policy: MutatingPolicy) -> Self {
        let tools = Arc::new(registry.list().into_iter().map(mcp_tool).collect());
        McpServer { registry, ctx, audit, policy, tools, sandbox: None, deny: Vec::new() }
    }

    /// The same server refusing the tools the configuration's `[gate] deny` names.
    pub fn with_deny(mut self, deny: Vec<String>) -> Self {
        self.deny = deny;
        self
    }

    /// The server for this invocation's host, config and state directory.
    pub fn from_app(app: &App) -> Result<Self> {
        let policy = MutatingPolicy::from_config(app.config.mcp.mutating, app.config_trusted, &app.config_path);
        let ctx = app.ctx()?;
        let mut server = McpServer::new(app.registry.clone(), ctx.clone(), Some(app.audit()), policy)
            .with_deny(app.config.gate.deny.clone());
        server.sandbox = Some(app.sandbox(Origin::Mcp, &ctx));
        Ok(server)
    }

    /// The tools as MCP lists them.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The policy for mutating tools.
    pub fn policy(&self) -> &MutatingPolicy {
        &self.policy
    }

    async fn call(&self, req: CallToolRequestParams, peer: Peer<RoleServer>) -> Result<CallToolResult, McpError> {
        let name = req.name.to_string();
        // Only the arguments are read: `_meta` and any other hint a client sends is ignored.
        let input = req.arguments.map(Value::Object).unwrap_or_else(|| json!({}));
        let known = self.registry.get(&name).is_some();
        let confirmer = Arc::new(McpConfirmer { policy: self.policy.clone(), peer, shown: Mutex::new(None) });
        let mut gate =
            Gate::new(self.registry.clone(), self.ctx.clone(), confirmer.clone(), self.audit.clone(), Origin::Mcp)
                .with_deny(self.deny.clone());
        if let Some(s) = &self.sandbox {
            gate = gate.with_sandbox(s.clone());
        }
        // Unknown tools pass the gate too, so the attempt is in the audit log.
        let gated = gate.call(&name, input).await;
        if !known {
            let shown: String = strip_controls(&name).chars().take(80).collect();
            return Err(McpError::invalid_params(format!("Unknown tool `{shown}` (see tools/list)"), None));
        }
        Ok(tool_result(&name, gated, confirmer.shown()))
    }
}

/// `list_open_ports` → `List open ports`, `check_os_updates` → `Check OS updates`,
/// `wordpress_inventory` → `WordPress inventory`: sentence case with names spelled properly.
pub fn title_of(name: &str) -> String {
    let words: Vec<String> =
        name.split('_')
            .filter(|w| !w.is_empty())
            .enumerate()
            .map(|(i, w)| match w {
                "os" | "ssh" | "tls" | "php" | "db" | "sql" | "url" | "http" | "https" | "mcp" | "cpu" | "tcp"
                | "udp" => w.to_uppercase(),
                "wordpress" => "WordPress".into(),
                "mariadb" => "MariaDB".into(),
                "mysql" => "MySQL".into(),
                _ if i == 0 => {
                    let mut c = w.chars();
                    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
                }
                _ => w.to_string(),
            })
            .collect();
    words.join(" ")
}

/// JSON Schema's own `format` names: the only ones MCP clients (the Inspector, the SDKs) know.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Rewrite a schema so it uses only standard formats: schemars writes Rust's integer types as
/// `"format": "uint16"` and the like, which clients warn about; the range they mean becomes
/// `minimum`/`maximum` (an existing bound is kept), and any other unknown format is dropped.
pub fn portable_schema(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::String(f)) = m.get("format")
                && !STANDARD_FORMATS.contains(&f.as_str())
            {
                let range: Option<(i128, i128)> = match f.as_str() {
                    "uint8" => Some((0, u8::MAX.into())),
                    "uint16" => Some((0, u16::MAX.into())),
                    "uint32" | "uint" => Some((0, u32::MAX.into())),
                    "uint64" => Some((0, u64::MAX.into())),
                    "int8" => Some((i8::MIN.into(), i8::MAX.into())),
                    "int16" => Some((i16::MIN.into(), i16::MAX.into())),
                    "int32" | "int" => Some((i32::MIN.into(), i32::MAX.into())),
                    "int64" => Some((i64::MIN.into(), i64::MAX.into())),
                    _ => None,
                };
                let is_integer = m
                    .get("type")
                    .is_some_and(|t| t == "integer" || t.as_array().is_some_and(|a| a.iter().any(|x| x == "integer")));
                if let (Some((lo, hi)), true) = (range, is_integer) {
                    // Bounds past 2^53 are not exact in every client's number type: leave those out.
                    let exact = |n: i128| (n.abs() <= (1i128 << 53)).then(|| json!(n as i64));
                    if let Some(lo) = exact(lo) {
                        m.entry("minimum").or_insert(lo);
                    }
                    if let Some(hi) = exact(hi) {
                        m.entry("maximum").or_insert(hi);
                    }
                }
                m.remove("format");
            }
            m.values_mut().for_each(portable_schema);
        }
        Value::Array(a) => a.iter_mut().for_each(portable_schema),
        _ => {}
    }
}

fn take_defs(schema: &mut Value) -> Map<String, Value> {
    match schema.as_object_mut().and_then(|m| m.remove("$defs")) {
        Some(Value::Object(d)) => d,
        _ => Map::new(),
    }
}

/// Every `format` a schema uses, anywhere in it (to check it uses only [`STANDARD_FORMATS`]).
pub fn schema_formats(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::String(f)) = m.get("format") {
                out.push(f.clone());
            }
            m.values().for_each(|x| schema_formats(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| schema_formats(x, out)),
        _ => {}
    }
}

/// The output schema: the tool's facts schema and the findings, as `{facts, findings}`
/// — exactly the shape of the structured content. Definitions are hoisted to the
/// root so `#/$defs/…` references still resolve.
pub fn output_schema(facts: &Value) -> Value {
    let mut facts = facts.clone();
    let mut defs = take_defs(&mut facts);
    let mut finding = output_schema_of::<Finding>();
    let finding_defs = take_defs(&mut finding);
    let clash = finding_defs.iter().any(|(k, v)| defs.get(k).is_some_and(|d| d != v));
    let findings = if clash {
        // A facts type shares a definition name with Finding's: keep the facts exact, loosen findings.
        json!({"type": "array", "items": {"type": "object"}})
    } else {
        defs.extend(finding_defs);
        json!({"type": "array", "items": finding})
    };
    let mut root = json!({
        "type": "object",
        "properties": {"facts": facts, "findings": findings},
        "required": ["facts", "findings"],
    });
    if !defs.is_empty() {
        root["$defs"] = Value::Object(defs);
    }
    root
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::from_iter([("type".to_string(), json!("object"))]),
    }
}

/// One registry tool as MCP describes it.
pub fn mcp_tool(info: &ToolInfo) -> Tool {
    let read_only = info.effect == Effect::ReadOnly;
    let title = title_of(info.name);
    let description: Cow<'static, str> = if read_only {
        Cow::Borrowed(info.description)
    } else {
        Cow::Owned(format!(
            "{}\n\nChanges the host. Over MCP it is refused unless the administrator opted in; then the user is asked to confirm the plan.",
            info.description
        ))
    };
    let annotations =
        ToolAnnotations::with_title(title.clone()).read_only(read_only).destructive(!read_only).open_world(false);
    let mut input = info.input_schema.clone();
    portable_schema(&mut input);
    let mut output = output_schema(&info.output_schema);
    portable_schema(&mut output);
    Tool::new(info.name, description, Arc::new(object(input)))
        .with_title(title)
        .with_raw_output_schema(Arc::new(object(output)))
        .with_annotations(annotations)
}

/// A short human summary of a result: the findings by severity with their titles.
pub fn summary(name: &str, r: &ToolResult) -> String {
    if r.findings.is_empty() {
        return format!("{name}: no findings.\n");
    }
    let counts: Vec<String> = Severity::ALL
        .iter()
        .filter_map(|s| {
            let n = r.findings.iter().filter(|f| f.severity == *s).count();
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect();
    let n = r.findings.len();
    let mut out = format!("{name}: {n} finding{} ({})\n", if n == 1 { "" } else { "s" }, counts.join(", "));
    for s in Severity::ALL {
        for f in r.findings.iter().filter(|f| f.severity == s) {
            out.push_str(&strip_controls(&format!("- [{s}] {} ({})\n", f.title, f.subject)));
        }
    }
    out
}

fn text(s: String) -> Vec<ContentBlock> {
    vec![ContentBlock::text(s)]
}

/// The MCP result of a gated call.
fn tool_result(name: &str, g: Gated, plan: Option<String>) -> CallToolResult {
    match (g.decision, g.result) {
        (decision, Ok(r)) => {
            let value = r.to_value();
            let mut s = String::new();
            if decision == Decision::Confirmed {
                s.push_str(&format!("The MCP client's user confirmed `{name}`; it ran.\n"));
            }
            s.push_str(&summary(name, &r));
            s.push('\n');
            s.push_str(&value.to_string());
            let mut out = CallToolResult::success(text(s));
            out.structured_content = Some(value);
            out
        }
        (Decision::Ran, Err(e)) => CallToolResult::error(text(format!("`{name}` failed: {e}"))),
        (_, Err(e)) => {
            let mut s = e.to_string();
            if let Some(plan) = plan {
                s.push_str("\n\nThe plan that was not run:");
                s.push_str(&plan);
            }
            CallToolResult::error(text(s))
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.protocol_version = PROTOCOL;
        info.server_info = Implementation::new("vigil", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "vigil: security review and operations tools for this Linux web-hosting server. Read-only tools \
             (readOnlyHint) return {facts, findings}; findings have a stable id, a severity and a remediation. \
             Tools that change the host are refused unless the administrator opted in, and then need the \
             user's typed confirmation. Secrets are judged on the host and never returned."
                .into(),
        );
        info
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&PROTOCOL))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(request, context.peer).await.map(CallToolResponse::Complete)
    }
}

/// Serve MCP on `reader`/`writer` (stdio in `vigil mcp`; a duplex pipe in tests) until EOF.
pub async fn serve<R, W>(server: McpServer, reader: R, writer: W) -> Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    let writer = tokio::spawn(transport::write_lines(rx, writer));
    let t = transport::LineTransport::new(BufReader::new(reader), tx);
    match rmcp::serve_server(server, t).await {
        Ok(running) => {
            let reason = running.waiting().await.context("the MCP service stopped")?;
            tracing::info!("mcp: session ended: {reason:?}");
        }
        // EOF before `initialize` (a probe, a closed client) is not an error worth a failure.
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => {}
        Err(e) => return Err(anyhow::anyhow!("the MCP session could not start: {e}")),
    }
    match writer.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Ok(Err(e)) => Err(e).context("writing to stdout"),
        Err(e) => Err(anyhow::anyhow!("the stdout writer failed: {e}")),
    }
}

/// Run `vigil mcp`: serve this host's registry on stdin/stdout.
pub async fn run(app: &App) -> Result<u8> {
    let server = McpServer::from_app(app)?;
    tracing::info!(
        "mcp: serving {} tools on stdio; mutating tools: {}",
        server.tools().len(),
        match server.policy() {
            MutatingPolicy::Elicit => "asked through elicitation",
            MutatingPolicy::Refuse(_) => "refused",
        }
    );
    serve(server, tokio::io::stdin(), tokio::io::stdout()).await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_policy() {
        assert_eq!(title_of("list_open_ports"), "List open ports");
        assert_eq!(title_of("check_os_updates"), "Check OS updates");
        assert_eq!(title_of("wordpress_inventory"), "WordPress inventory");
        assert_eq!(title_of("check_ssh"), "Check SSH");
        assert_eq!(title_of("wordpress_stage_update"), "WordPress stage update");
        let p = std::path::Path::new("/etc/vigil/config.toml");
        assert_eq!(MutatingPolicy::from_config(McpMutating::Elicit, true, p), MutatingPolicy::Elicit);
        let MutatingPolicy::Refuse(why) = MutatingPolicy::from_config(McpMutating::Elicit, false, p) else {
            panic!("an untrusted opt-in must not open elicitation")
        };
        assert!(why.contains("not owned by root"), "{why}");
        assert!(matches!(MutatingPolicy::from_config(McpMutating::Refuse, true, p), MutatingPolicy::Refuse(_)));
    }

    #[test]
    fn listed_schemas_use_only_standard_formats_with_ranges_for_integers() {
        let reg = Registry::builtin();
        let mut seen = Vec::new();
        for info in reg.list() {
            schema_formats(&info.input_schema, &mut seen);
            let tool = mcp_tool(info);
            let mut left = Vec::new();
            schema_formats(&Value::Object((*tool.input_schema).clone()), &mut left);
            if let Some(o) = &tool.output_schema {
                schema_formats(&Value::Object((**o).clone()), &mut left);
            }
            let odd: Vec<&String> = left.iter().filter(|f| !STANDARD_FORMATS.contains(&f.as_str())).collect();
            assert!(odd.is_empty(), "{}: non-standard formats {odd:?}", info.name);
        }
        assert!(seen.iter().any(|f| f.starts_with("uint")), "the registry has integer inputs to rewrite: {seen:?}");
        let mut port = json!({"type": "integer", "format": "uint16", "minimum": 1});
        portable_schema(&mut port);
        assert_eq!(port, json!({"type": "integer", "minimum": 1, "maximum": 65535}));
        let mut big = json!({"type": ["integer", "null"], "format": "uint64"});
        portable_schema(&mut big);
        assert_eq!(big, json!({"type": ["integer", "null"], "minimum": 0}));
    }

    #[test]
    fn output_schema_wraps_facts_and_resolves_refs() {
        let reg = Registry::builtin();
        for info in reg.list() {
            let schema = output_schema(&info.output_schema);
            let v = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", info.name));
            assert!(!v.is_valid(&json!({"facts": info.output_schema.clone()})), "findings are required");
            let tool = mcp_tool(info);
            assert_eq!(tool.output_schema.as_ref().unwrap()["type"], "object");
        }
    }
}
