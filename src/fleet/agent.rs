//! The controller side of `ask -i`/`chat -i`: the agent's tools, aimed at fleet hosts.
//!
//! With an inventory, every tool the model sees takes a required `host`: an
//! enum of the selected hosts, plus `all` for read-only tools (never for a
//! change). A read-only call becomes a [`Request::Tool`] on its host, or on
//! every host at once for `all` (results keyed by host), through the one
//! [`Exchange`]; what comes back was redacted by the host, and is redacted
//! again here, stripped of terminal controls and size-capped before the model
//! reads it. A host that cannot be reached is that host's error with its
//! reason (`unreachable`, `auth-failed`…), never a failed turn.
//!
//! A change is one host at a time: [`Request::Plan`] on that host, the plan
//! shown at this terminal with the host's name and sshd key fingerprint, the
//! administrator types the confirmation (`TOOL@HOST`), then [`Request::Apply`]
//! with the plan's digest, that fingerprint, the time the host made the plan
//! and a fresh random nonce. The host recomputes the plan and runs it only if
//! all of them hold (the approval expires 10 minutes after the plan)
//! ([`super::remote_tools`]). Every call is in this controller's audit log, with
//! its host.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Map, Value, json};
use vigil_tools::{Effect, Plan, Redactor, Registry};

use super::inventory::{Inventory, Target};
use super::proto::{Exchange, Request, Response};
use crate::agent::{Agent, Called, Dispatch, MAX_TOOL_RESULT, Viewed};
use crate::app::App;
use crate::audit::{AuditLog, Origin};
use crate::claude::types::{CacheControl, ToolDef};
use crate::cli::FleetTarget;
use crate::gate::{Answer, ConfirmRequest, Confirmer, Decision};
use crate::term::strip_controls;

/// Hosts asked at once by a read-only call on `all`.
const FORKS: usize = 16;
/// The smallest share of the result size a host gets, however many hosts there are (bytes).
const MIN_SHARE: usize = 1024;
/// The most one `all` result may hold before further hosts are left out (bytes): half the
/// result budget, the other half for the notes of the hosts left out.
const FLEET_RESULT_MAX: usize = MAX_TOOL_RESULT / 2;

/// The longest a change may take on its host (planning is bounded by the tool deadline).
const APPLY_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// The agent's tools on the hosts of a fleet.
pub struct FleetTools {
    exchange: Arc<dyn Exchange>,
    hosts: Vec<Target>,
    registry: Arc<Registry>,
    confirmer: Arc<dyn Confirmer>,
    audit: Option<AuditLog>,
    origin: Origin,
    deny: Vec<String>,
    tool_deadline: Duration,
}

impl FleetTools {
    /// Tools of `registry` on `hosts` (in inventory order) through `exchange`; changes ask `confirmer`.
    pub fn new(
        exchange: Arc<dyn Exchange>,
        hosts: Vec<Target>,
        registry: Arc<Registry>,
        confirmer: Arc<dyn Confirmer>,
        audit: Option<AuditLog>,
        origin: Origin,
    ) -> Self {
        FleetTools {
            exchange,
            hosts,
            registry,
            confirmer,
            audit,
            origin,
            deny: Vec::new(),
            tool_deadline: Duration::from_secs(120),
        }
    }

    /// Refuse the tools the configuration's `[gate] deny` names, as the local gate does.
    pub fn with_deny(mut self, deny: Vec<String>) -> Self {
        self.deny = deny;
        self
    }

    /// How long one read-only call or plan may take on a host (connection included).
    pub fn with_tool_deadline(mut self, d: Duration) -> Self {
        self.tool_deadline = d;
        self
    }

    /// The selected hosts' names.
    pub fn host_names(&self) -> Vec<&str> {
        self.hosts.iter().map(|t| t.name.as_str()).collect()
    }

    /// The tool definitions the model sees: each with a required `host`.
    pub fn tool_defs(&self) -> Vec<ToolDef> {
        let names = self.host_names();
        let list = self.registry.list();
        let n = list.len();
        list.into_iter()
            .enumerate()
            .map(|(i, t)| ToolDef {
                name: t.name.to_string(),
                description: t.description.to_string(),
                input_schema: with_host(&t.input_schema, &names, t.effect == Effect::ReadOnly),
                cache_control: (i + 1 == n).then_some(CacheControl::EPHEMERAL),
            })
            .collect()
    }

    /// The system prompt's context: which servers (names only), and how `host` works.
    pub fn context_note(&self, inventory: &str, today: &str) -> String {
        let names = self.host_names();
        format!(
            "Context: you are asked about a fleet of {} server(s) from the Ansible inventory `{inventory}`: {}. \
             Every tool takes `host`: one of these names, or `all` (read-only tools only) to run it on every \
             server at once, with results keyed by host. A server that cannot be reached gives its reason \
             instead of a result; say which servers could not be checked. A change is planned on one server \
             and confirmed by the administrator for that server only; never ask for `all` with a change. \
             Today is {today} (the controller's clock; each server is judged by its own).",
            names.len(),
            names.join(", ")
        )
    }

    fn log(&self, event: Value) {
        if let Some(a) = &self.audit {
            if let Err(e) = a.append(event) {
                eprintln!("vigil: warning: could not write the audit log: {e:#}");
            }
        }
    }

    fn event(&self, name: &str, host: &str, input: &Value, decision: &Decision, ok: Result<(), &str>) -> Value {
        let result = match ok {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"ok": false, "error": e}),
        };
        json!({"kind": "tool_call", "origin": self.origin, "tool": name, "host": host, "input": input,
            "decision": decision, "result": result})
    }

    /// One request to one host, off the async runtime (the exchange blocks), by `deadline`.
    async fn send(&self, t: Target, request: Request, within: Duration) -> Result<Response, String> {
        let ex = self.exchange.clone();
        let deadline = Instant::now() + within;
        match tokio::task::spawn_blocking(move || ex.exchange(&t, &request, deadline)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(f)) => Err(format!("{}: {}", f.reason.as_str(), strip_controls(&f.detail))),
            Err(e) => Err(format!("error: the request to the host failed: {e}")),
        }
    }

    /// Decide and, if allowed, run one call the model made.
    async fn decide(&self, name: &str, input: Value) -> Called {
        let started = Instant::now();
        let mut input = if input.is_null() { json!({}) } else { input };
        let shown = Redactor::global().value(input.clone());
        let host = input.as_object_mut().and_then(|m| m.remove("host"));
        let host = host.as_ref().and_then(Value::as_str).unwrap_or("").to_string();
        let done =
            |decision: Decision, result: Viewed| Called { decision, result, millis: started.elapsed().as_millis() };
        let refuse = |msg: String| {
            self.log(self.event(name, &host, &shown, &Decision::Refused, Err(&msg)));
            done(Decision::Refused, Err(msg))
        };
        if self.deny.iter().any(|d| d == name) {
            return refuse(format!(
                "`{name}` is blocked by the administrator's configuration ([gate] deny); it was not run."
            ));
        }
        let Some(info) = self.registry.get(name) else {
            return refuse(format!("There is no tool named `{name}`; nothing was run."));
        };
        let read_only = info.effect == Effect::ReadOnly;
        let names = self.host_names();
        if host == "all" && !read_only {
            return refuse(format!(
                "`{name}` changes a server, so it is planned and confirmed on one server at a time: call it once \
                 per server (one of {}), never with `all`; nothing was changed.",
                names.join(", ")
            ));
        }
        if host != "all" && !names.contains(&host.as_str()) {
            let all = if read_only { ", or `all`" } else { "" };
            return refuse(format!(
                "`host` must be one of the fleet's servers: {}{all} (got `{}`); nothing was run.",
                names.join(", "),
                strip_controls(&host)
            ));
        }
        // The input is checked here once, so a mistake is the model's to fix before any host is asked.
        if let Err(e) = self.registry.check(name, input.clone()) {
            return refuse(e.to_string());
        }
        if read_only {
            return self.read(name, &host, input, &shown, started).await;
        }
        let Some(target) = self.hosts.iter().find(|t| t.name == host) else {
            return refuse(format!("no server named `{host}`"));
        };
        self.change(name, target, input, shown, started).await
    }

    async fn read(&self, name: &str, host: &str, input: Value, shown: &Value, started: Instant) -> Called {
        let targets: Vec<&Target> = self.hosts.iter().filter(|t| host == "all" || t.name == host).collect();
        let share = (FLEET_RESULT_MAX / targets.len().max(1)).max(MIN_SHARE);
        // At most FORKS hosts at once (like `fleet review`'s default), results in inventory order.
        let asks: Vec<(Target, Request)> = targets
            .iter()
            .map(|t| {
                let req = Request::Tool { root: t.root.clone(), name: name.to_string(), input: input.clone() };
                ((*t).clone(), req)
            })
            .collect();
        let results: Vec<_> =
            futures::stream::iter(asks.into_iter().map(|(t, req)| self.send(t, req, self.tool_deadline)))
                .buffered(FORKS)
                .collect()
                .await;
        let mut per_host: Vec<(String, Viewed)> = Vec::new();
        for (t, r) in targets.iter().zip(results) {
            let r = match r {
                Ok(Response::Tool { output }) => Ok(view(output, share)),
                Ok(Response::Error { kind, message }) => Err(format!("{kind}: {}", strip_controls(&message))),
                Ok(_) => Err("error: the host answered something other than a tool result".to_string()),
                Err(e) => Err(e),
            };
            let r = r.map_err(|e| Redactor::global().text(&e).into_owned());
            self.log(self.event(name, &t.name, shown, &Decision::Ran, r.as_ref().map(|_| ()).map_err(|e| e.as_str())));
            per_host.push((t.name.clone(), r));
        }
        let millis = started.elapsed().as_millis();
        if host != "all" {
            let r = per_host.pop().map(|(_, r)| r).unwrap_or_else(|| Err("no such server".into()));
            return Called { decision: Decision::Ran, result: r, millis };
        }
        let mut hosts = Map::new();
        let mut findings = 0;
        let mut bytes = 0;
        let mut left_out = 0;
        for (h, r) in per_host {
            let v = match r {
                Ok((v, n)) => {
                    findings += n;
                    v
                }
                Err(e) => json!({"error": e}),
            };
            bytes += v.to_string().len();
            // Past the fleet's budget, a host's result is replaced by a note: the model asks that host alone.
            let v = if bytes > FLEET_RESULT_MAX {
                left_out += 1;
                json!("omitted")
            } else {
                v
            };
            hosts.insert(h, v);
        }
        let mut all = json!({"hosts": hosts});
        if left_out > 0 {
            all["omitted"] = json!(format!(
                "{left_out} host(s) marked \"omitted\" did not fit in one answer for the whole fleet: call the tool for them one host at a time"
            ));
        }
        Called { decision: Decision::Ran, result: Ok((all, findings)), millis }
    }

    async fn change(&self, name: &str, target: &Target, input: Value, shown: Value, started: Instant) -> Called {
        let host = target.name.as_str();
        let done = |decision: Decision, result: Viewed, extra: Value| {
            let mut ev = self.event(name, host, &shown, &decision, result.as_ref().map(|_| ()).map_err(|e| e.as_str()));
            if let (Value::Object(m), Value::Object(x)) = (&mut ev, extra) {
                m.extend(x);
            }
            self.log(ev);
            Called { decision, result, millis: started.elapsed().as_millis() }
        };
        let req = Request::Plan { root: target.root.clone(), name: name.to_string(), input: input.clone() };
        let (plan, digest, host_key, planned_at) = match self.send(target.clone(), req, self.tool_deadline).await {
            Ok(Response::Plan { plan, digest, host_key, planned_at }) => (plan, digest, host_key, planned_at),
            Ok(Response::Error { kind, message }) => {
                let msg = format!("{host} could not plan `{name}` ({kind}): {}", strip_controls(&message));
                return done(Decision::Refused, Err(msg), json!({}));
            }
            Ok(_) => {
                return done(Decision::Refused, Err(format!("{host} answered something other than a plan")), json!({}));
            }
            Err(e) => return done(Decision::Refused, Err(format!("{host}: {e}; nothing was changed")), json!({})),
        };
        // What is shown must be what the digest binds: a plan that does not hash like its digest is refused.
        let plan: Plan = match serde_json::from_str::<Plan>(&plan) {
            Ok(p) if p.digest() == digest && p.tool == name => p,
            _ => {
                let msg = format!("{host} sent a plan that does not match its digest; refused, nothing was changed");
                return done(Decision::Refused, Err(msg), json!({}));
            }
        };
        let host_key = strip_controls(&host_key);
        let plan_json = json!({"plan": plan, "plan_digest": digest, "host_key": host_key});
        let req = ConfirmRequest {
            tool: name.to_string(),
            args: shown.clone(),
            plan: Redactor::global().plan(plan.clone()),
            digest: digest.clone(),
            word: format!("{name}@{host}"),
            on: Some(format!("{host} (host key {host_key})")),
        };
        match self.confirmer.confirm(&req).await {
            Answer::Confirmed => {}
            Answer::Declined => {
                let msg = format!(
                    "The administrator declined `{name}` on {host}; nothing was changed. Do not retry it unless they ask."
                );
                return done(Decision::Declined, Err(msg), plan_json);
            }
            Answer::Unavailable(why) => {
                let msg = format!(
                    "`{name}` changes {host} and needs a human to confirm it at the terminal, but {why}; it was \
                     refused and nothing was changed. Tell the administrator the plan and how to run it \
                     interactively (`vigil chat -i`)."
                );
                return done(Decision::Refused, Err(msg), plan_json);
            }
        }
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let req = Request::Apply {
            root: target.root.clone(),
            name: name.to_string(),
            input,
            digest: digest.clone(),
            host_key: host_key.clone(),
            nonce: nonce.clone(),
            planned_at,
        };
        let mut extra = plan_json;
        extra["nonce"] = json!(nonce);
        let r = match self.send(target.clone(), req, APPLY_DEADLINE).await {
            Ok(Response::Applied { output }) => Ok(view(output, MAX_TOOL_RESULT)),
            Ok(Response::Error { kind, message }) => {
                Err(format!("{host} refused `{name}` ({kind}): {}", strip_controls(&message)))
            }
            Ok(_) => Err(format!("{host} answered something other than the change's result")),
            Err(e) => Err(format!("{host}: {e}; whether the change ran is unknown: check the host's audit log")),
        };
        if let Ok((v, _)) = &r {
            if let Some(undo) = v.pointer("/facts/undo").filter(|u| u.is_array()) {
                extra["undo"] = undo.clone();
            }
        }
        done(Decision::Confirmed, r.map_err(|e| Redactor::global().text(&e).into_owned()), extra)
    }
}

#[async_trait::async_trait]
impl Dispatch for FleetTools {
    fn effect(&self, name: &str) -> Effect {
        self.registry.effect(name)
    }

    async fn call(&self, name: &str, input: Value) -> Called {
        self.decide(name, input).await
    }
}

/// A conversation about the servers of a fleet (`ask -i`, `chat -i`): every tool takes `host`.
pub fn agent(app: &App, client: crate::claude::Client, fleet: FleetTools, inventory: &str) -> Agent {
    let tools = fleet.tool_defs();
    let note = fleet.context_note(inventory, &vigil_tools::format::unix_date(app.host.now_unix()));
    Agent::with_tools(app, client, Box::new(fleet), tools, note)
}

/// The hosts `ask -i`/`chat -i` are about: the inventory's, or those `--limit` selects, in
/// inventory order; an empty selection is an error, not a question about no servers.
pub fn targets(inventory: &Path, limit: Option<&str>) -> anyhow::Result<Vec<Target>> {
    let inv = Inventory::load(inventory)?;
    let names = match limit {
        Some(p) => super::pattern::select(&inv, p)?,
        None => inv.hosts().to_vec(),
    };
    if names.is_empty() {
        anyhow::bail!("{}: no hosts selected (check the inventory and --limit)", inventory.display());
    }
    Ok(names.iter().map(|h| inv.target(h)).collect::<Result<_, _>>()?)
}

/// The agent's tools on the fleet `-i INVENTORY [--limit P]` names, asking `confirmer` for
/// changes, over `exchange`; the inventory's name for the system prompt.
pub fn open(
    app: &App,
    fleet: &FleetTarget,
    exchange: Arc<dyn Exchange>,
    confirmer: Arc<dyn Confirmer>,
    origin: Origin,
) -> anyhow::Result<(FleetTools, String)> {
    let Some(inventory) = &fleet.inventory else { anyhow::bail!("no inventory (-i INVENTORY)") };
    let hosts = targets(inventory, fleet.limit.as_deref())?;
    let limit = Duration::from_secs(app.config.review.tool_timeout_seconds.max(1) + 60);
    let tools = FleetTools::new(exchange, hosts, app.registry.clone(), confirmer, Some(app.audit()), origin)
        .with_deny(app.config.gate.deny.clone())
        .with_tool_deadline(limit);
    Ok((tools, inventory.display().to_string()))
}

/// How long ssh may take to connect to one host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The production transport for `-i INVENTORY`: the system `ssh` client ([`super::ssh::Ssh`]),
/// its shared connections under the state directory.
pub fn ssh_exchange(app: &App, fleet: &FleetTarget) -> anyhow::Result<Arc<dyn Exchange>> {
    let Some(inventory) = &fleet.inventory else { anyhow::bail!("no inventory (-i INVENTORY)") };
    let name = inventory.display().to_string();
    Ok(Arc::new(super::ssh::Ssh::new(&name, app.state.path(), CONNECT_TIMEOUT)?))
}

/// `schema` with a required `host`: one of `hosts`, or `all` too when `all` is true.
fn with_host(schema: &Value, hosts: &[&str], all: bool) -> Value {
    let mut s = match schema {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({"type": "object"}),
    };
    let mut choices: Vec<Value> = hosts.iter().map(|h| Value::from(*h)).collect();
    let description = if all {
        choices.push(Value::from("all"));
        "The server to run this on, or `all` to run it on every server at once (results keyed by server)."
    } else {
        "The one server to change: a change is planned and confirmed on one server at a time."
    };
    s["type"] = json!("object");
    if !s["properties"].is_object() {
        s["properties"] = json!({});
    }
    s["properties"]["host"] = json!({"type": "string", "enum": choices, "description": description});
    let mut required: Vec<Value> = s["required"].as_array().cloned().unwrap_or_default();
    if !required.iter().any(|r| r == "host") {
        required.insert(0, Value::from("host"));
    }
    s["required"] = Value::Array(required);
    s
}

/// A host's result as the model reads it: redacted again here, terminal controls stripped
/// from every string, capped to `limit` bytes; with its number of findings.
fn view(v: Value, limit: usize) -> (Value, usize) {
    let v = strip_all(Redactor::global().value(v));
    let findings = v.get("findings").and_then(Value::as_array).map_or(0, Vec::len);
    let capped = crate::agent::cap_result(v, limit);
    (serde_json::from_str(&capped).unwrap_or(Value::String(capped)), findings)
}

fn strip_all(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(strip_controls(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_all).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (strip_controls(&k), strip_all(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_required_and_all_only_for_read_only_tools() {
        let schema = json!({"type": "object", "properties": {"port": {"type": "integer"}}, "required": ["port"],
            "additionalProperties": false});
        let ro = with_host(&schema, &["web1", "web2"], true);
        assert_eq!(ro["properties"]["host"]["enum"], json!(["web1", "web2", "all"]));
        assert_eq!(ro["required"], json!(["host", "port"]));
        assert_eq!(ro["properties"]["port"], schema["properties"]["port"], "the tool's own input is kept");
        let rw = with_host(&schema, &["web1", "web2"], false);
        assert_eq!(rw["properties"]["host"]["enum"], json!(["web1", "web2"]));
        let bare = with_host(&json!(true), &["a"], true);
        assert_eq!(bare["required"], json!(["host"]));
    }

    /// Every host answers a big result.
    struct Chatty;
    impl Exchange for Chatty {
        fn exchange(&self, _t: &Target, _r: &Request, _d: Instant) -> Result<Response, super::super::outcome::Failure> {
            let ports: Vec<Value> = (0..400).map(|i| json!({"port": i, "process": "java -jar x.jar"})).collect();
            Ok(Response::Tool { output: json!({"facts": {"ports": ports}, "findings": [["high", "a", "b", "c"]]}) })
        }
    }

    fn target(name: String) -> Target {
        Target {
            address: name.clone(),
            name,
            port: None,
            user: None,
            key_file: None,
            ssh_args: Vec::new(),
            become_root: false,
            root: None,
            vigil_path: None,
        }
    }

    #[tokio::test]
    async fn a_question_to_a_big_fleet_stays_within_one_results_budget() {
        let hosts: Vec<Target> = (0..200).map(|i| target(format!("web{i:03}"))).collect();
        let no = Arc::new(crate::gate::NoHuman("test".into()));
        let f = FleetTools::new(Arc::new(Chatty), hosts, Arc::new(Registry::builtin()), no, None, Origin::Ask);
        let c = f.call("list_open_ports", json!({"host": "all"})).await;
        let (v, findings) = c.result.unwrap();
        let text = crate::agent::cap_result(v.clone(), MAX_TOOL_RESULT);
        assert!(text.len() <= MAX_TOOL_RESULT, "{} bytes", text.len());
        assert_eq!(v["hosts"].as_object().unwrap().len(), 200, "every host is named");
        assert_eq!(v["hosts"]["web000"]["findings"][0][1], "a", "the first hosts are whole: {v}");
        assert_eq!(v["hosts"]["web199"], "omitted");
        let left_out = v["omitted"].as_str().unwrap();
        assert!(left_out.contains("one host at a time"), "{left_out}");
        assert_eq!(findings, 200, "findings of every host are counted");
        let c = f.call("list_open_ports", json!({"host": "db1"})).await;
        assert_eq!(c.decision, Decision::Refused);
        assert!(c.result.unwrap_err().contains("web000, web001"));
    }

    #[test]
    fn a_hosts_result_loses_its_terminal_controls_and_secrets() {
        let (v, n) = view(
            json!({"facts": {"banner": "\u{1b}]0;pwned\u{7}\u{1b}[2Jhello", "url": "mysql://app:hunter2secret@db/shop"},
                "findings": [["high", "x", "y", "z"]]}),
            MAX_TOOL_RESULT,
        );
        assert_eq!(n, 1);
        let text = v.to_string();
        assert!(!text.contains('\u{1b}') && text.contains("hello"), "{text}");
        assert!(!text.contains("hunter2secret"), "{text}");
    }
}
