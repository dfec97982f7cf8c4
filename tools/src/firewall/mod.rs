//! `check_firewall`: is anything filtering incoming traffic, what does it let
//! in, and which rules changed or went unreviewed since the last review.
//!
//! Pattern 3 of the seven mistakes (`docs/architecture.md`) is the staging box whose firewall
//! was switched off "for debugging" and which then became production; pattern
//! 5 is the port someone opened through the firewall and nobody reviewed. On
//! the live host the runtime rules are read (`ufw status verbose`,
//! `firewall-cmd`, `nft -j list ruleset`, `iptables-save` in its nf_tables and
//! legacy variants, each started only when it can print something: the nf_tables
//! one when `nft` lists a table, the legacy one when the kernel lists a legacy
//! table); on any other root, the files loaded at boot (ufw's
//! `ufw.conf`, `/etc/default/ufw`, `user.rules`; `/etc/nftables.conf`;
//! `/etc/iptables/rules.v4`). Every backend is parsed into one model
//! ([`model`]) whose canonical rule lines are kept across reviews with a
//! first-seen date in `STATE/firewall-rules.json`, and whose evaluator answers
//! [`port_allowed`] for other tools (`list_open_ports`).

pub mod model;
pub mod parse;

mod history;

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::host::{Host, HostError};
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};
pub use history::{RuleHistory, rule_hash};
use model::{Family, Table, Target, Verdict};

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct CheckFirewall;

/// Transport protocol of a port (a question to the firewall, or a port to close).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Input of `check_firewall`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallInput {
    /// Also answer whether new connections from any internet address reach this port through the firewall.
    #[serde(default)]
    pub port: Option<u16>,
    /// Protocol of `port` (default tcp).
    #[serde(default)]
    pub proto: Option<Proto>,
}

/// One backend as seen on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackendStatus {
    /// `ufw`, `firewalld`, `nftables`, `iptables`, `iptables-legacy`.
    pub name: String,
    /// Where it was read: a command or a file.
    pub source: String,
    /// True when it is running (live) or loaded at boot (config files).
    pub enabled: bool,
    /// Policy for incoming traffic when it has one (`drop`, `accept`, `reject`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_policy: Option<String>,
    /// Rules on the incoming path.
    pub rules: usize,
    /// Why it counts or does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Everything known about the firewall, for this tool and others.
#[derive(Debug, Clone, Default)]
pub struct FirewallState {
    /// The backend an administrator manages (`ufw`, `firewalld`, `nftables`,
    /// `iptables`, `iptables-legacy`) or `none`.
    pub backend: String,
    /// True when something blocks new incoming connections to ports nobody opened.
    pub active: bool,
    /// The incoming policy of that backend.
    pub input_policy: Option<String>,
    /// Every backend looked at.
    pub backends: Vec<BackendStatus>,
    /// The loaded tables (enabled backends only), ufw's own as `ufw` tables.
    pub tables: Vec<Table>,
    /// True when at least one source of rules could be read (else nothing is known).
    pub known: bool,
    /// Checks that could not run: (what, why).
    pub problems: Vec<(String, String)>,
}

/// One rule of the reviewed ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleFact {
    /// The canonical rule line: `WHERE: VERB PROTO port P from SRC …`.
    pub rule: String,
    /// Short stable id of the rule (the finding subject; `vigil ack … --subject` takes it).
    pub id: String,
    /// Where it was read.
    pub source: String,
    /// When a review first saw it (`YYYY-MM-DD`), when history is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
}

/// Whether one port is reachable through the firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortCheck {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The port.
    pub port: u16,
    /// `allowed from anywhere`, `blocked`, `no firewall` or `unknown`, over IPv4.
    pub ipv4: String,
    /// The same over IPv6.
    pub ipv6: String,
}

/// Facts of `check_firewall`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct FirewallFacts {
    /// The backend in charge, or `none`.
    pub backend: String,
    /// True when something blocks new incoming connections to ports nobody opened.
    pub active: bool,
    /// Its policy for incoming traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_policy: Option<String>,
    /// The incoming-path rules, sorted, in canonical form.
    pub rules: Vec<RuleFact>,
    /// Ports that rules open to any source (`tcp:22`, `tcp:1000-2000`, `tcp:all`).
    pub open_to_anywhere: Vec<String>,
    /// Each backend looked at.
    pub backends: Vec<BackendStatus>,
    /// Rules present at the last review and gone now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_since_last_review: Vec<String>,
    /// Date of the previous review whose ruleset was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_review: Option<String>,
    /// The answer for `port`, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_check: Option<PortCheck>,
}

const CMD_TIMEOUT: Duration = Duration::from_secs(5);

/// Marks a ufw status inferred from iptables (no ufw chain loaded) rather than asked.
const UFW_INFERRED: &str = "# inferred: no ufw chain is loaded in iptables";

#[async_trait]
impl Tool for CheckFirewall {
    type Input = FirewallInput;
    type Output = FirewallFacts;

    fn name(&self) -> &'static str {
        "check_firewall"
    }

    fn description(&self) -> &'static str {
        "Check the host firewall (ufw, firewalld, nftables, iptables nf_tables and legacy): whether it is \
         on, its policy for incoming traffic, and every rule on the incoming path in one normalised form \
         with the date a review first saw it. Findings: no active firewall, a policy that accepts \
         everything, datastore ports (Elasticsearch, Redis, MySQL...) opened to any source, rules added \
         since the last review and rules nobody has reviewed for months. Give `port` (and `proto`) to \
         ask whether that port is reachable from the internet through the firewall."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, input: FirewallInput) -> Result<Outcome<FirewallFacts>, ToolError> {
        let state = active_rules(&ctx.host).await;
        let mut findings: Vec<Finding> = state
            .problems
            .iter()
            .map(|(what, why)| Finding::could_not_check(Category::Hardening, "check_firewall", what, why))
            .collect();
        findings.extend(judge(&state));

        let mut rules = ruleset(&state);
        let mut facts = FirewallFacts {
            backend: state.backend.clone(),
            active: state.active,
            input_policy: state.input_policy.clone(),
            open_to_anywhere: open_to_anywhere(&state),
            backends: state.backends.clone(),
            ..Default::default()
        };
        if let Some(dir) = &ctx.state_dir {
            let today = crate::format::format_date(crate::format::date_of_unix(ctx.host.now_unix()));
            match history::review(dir, &today, &mut rules, ctx.config.review.rule_review_days, state.known) {
                Ok(h) => {
                    facts.removed_since_last_review = h.removed;
                    facts.last_review = h.last_review;
                    findings.extend(h.findings);
                }
                Err(e) => findings.push(Finding::could_not_check(
                    Category::Ports,
                    "check_firewall",
                    "the firewall rule history",
                    e,
                )),
            }
        }
        facts.rules = rules;
        if let Some(port) = input.port {
            let proto = input.proto.unwrap_or_default().as_str();
            facts.port_check = Some(PortCheck {
                proto: proto.to_string(),
                port,
                ipv4: describe_reach(&state, port_allowed_on(&state, Family::V4, proto, port)),
                ipv6: describe_reach(&state, port_allowed_on(&state, Family::V6, proto, port)),
            });
        }
        Ok(Outcome::new(facts, findings))
    }
}

/// `allowed from anywhere` / `blocked` / `no firewall` / `unknown`.
pub fn describe_reach(state: &FirewallState, allowed: Option<bool>) -> String {
    match allowed {
        None => "unknown (the firewall rules could not be read)".into(),
        Some(true) if !state.active => "no firewall".into(),
        Some(true) => "allowed from anywhere".into(),
        Some(false) => "blocked".into(),
    }
}

// ---------------------------------------------------------------- gathering

/// Read the firewall of `host`: the runtime rules on the live host (falling
/// back to the boot-time files when no firewall program is installed), the
/// boot-time files on any other root.
pub async fn active_rules(host: &Host) -> FirewallState {
    // Several tools ask within one review: the live host's firewall is read
    // once (callers arriving meanwhile wait for it) and reused for a few seconds.
    static LIVE: tokio::sync::Mutex<Option<(std::time::Instant, FirewallState)>> = tokio::sync::Mutex::const_new(None);
    if host.is_live() {
        let mut cache = LIVE.lock().await;
        if let Some((at, st)) = cache.as_ref() {
            if at.elapsed() < Duration::from_secs(5) {
                return st.clone();
            }
        }
        let st = read_rules(host).await;
        *cache = Some((std::time::Instant::now(), st.clone()));
        return st;
    }
    read_rules(host).await
}

async fn read_rules(host: &Host) -> FirewallState {
    let mut st = FirewallState::default();
    let mut runtime = false;
    if host.is_live() {
        runtime = live_rules(host, &mut st).await;
    }
    if !runtime {
        config_rules(host, &mut st);
    }
    finish(&mut st);
    st
}

async fn run_cmd(host: &Host, program: &str, args: &[&str]) -> Result<Option<String>, String> {
    match host.run(program, args, CMD_TIMEOUT).await {
        Ok(out) if out.success() => Ok(Some(out.stdout)),
        Ok(out) => {
            let msg = if out.stderr.trim().is_empty() { out.stdout } else { out.stderr };
            Err(format!("`{program} {}` exited {}: {}", args.join(" "), out.status, msg.trim()))
        }
        Err(HostError::NoProgram { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// One `iptables-save` variant: (backend, command, family, output).
pub type IptablesOutput = (String, String, Family, Option<Result<String, String>>);

/// What the firewall programs printed on a live host. `None`: the program is
/// not installed; `Some(Err)`: it failed (not root, timed out…).
#[derive(Debug, Clone, Default)]
pub struct RuntimeOutputs {
    /// `ufw status verbose`.
    pub ufw_status: Option<Result<String, String>>,
    /// `firewall-cmd --state` (`running` / `not running`).
    pub firewalld_state: Option<Result<String, String>>,
    /// `firewall-cmd --list-all`, when firewalld runs.
    pub firewalld_list: Option<Result<String, String>>,
    /// `nft -j list ruleset`.
    pub nft_json: Option<Result<String, String>>,
    /// `iptables-save` variants: (backend, command, family, output).
    pub iptables: Vec<IptablesOutput>,
}

fn opt(r: Result<Option<String>, String>) -> Option<Result<String, String>> {
    match r {
        Ok(None) => None,
        Ok(Some(s)) => Some(Ok(s)),
        Err(e) => Some(Err(e)),
    }
}

/// The firewall's read commands a live host is always asked, at once: `firewall-cmd --state`,
/// `nft -j list ruleset`, then `iptables-save` for IPv4 and IPv6 in the nf_tables variant (the
/// plain one where the variant is not installed) and in the legacy one. The parent starts them
/// before a confined worker asks (see `crate::parent::ahead`), so they are named once, here.
pub fn first_commands(host: &Host) -> [(&'static str, &'static [&'static str]); 6] {
    let ipt_nft = if host.which("iptables-nft-save").is_some() { "iptables-nft-save" } else { "iptables-save" };
    let ip6t_nft = if host.which("ip6tables-nft-save").is_some() { "ip6tables-nft-save" } else { "ip6tables-save" };
    [
        ("firewall-cmd", &["--state"]),
        ("nft", &["-j", "list", "ruleset"]),
        (ipt_nft, &[]),
        (ip6t_nft, &[]),
        ("iptables-legacy-save", &[]),
        ("ip6tables-legacy-save", &[]),
    ]
}

/// The `iptables-save` variants that print nftables' `ip` and `ip6` tables in iptables' words
/// (not the plain `iptables-save`, which may be the legacy one).
pub const NFT_SAVES: [&str; 2] = ["iptables-nft-save", "ip6tables-nft-save"];

/// True when `nft -j list ruleset` printed a ruleset without a single table: nftables then
/// holds nothing, so the [`NFT_SAVES`], which print its tables, would print nothing either and
/// are not started (each start is a program that loads libnftnl and dumps the same kernel state).
/// Any table at all, or output that is not a ruleset, and they run.
pub fn nft_holds_no_table(nft_json: &str) -> bool {
    nft_json.trim_start().starts_with("{\"nftables\"") && !nft_json.contains("\"table\"")
}

/// Run the firewall programs of the live host (concurrently, each with a time limit; the
/// [`NFT_SAVES`] once `nft` has said whether it holds any table).
pub async fn runtime_outputs(host: &Host) -> RuntimeOutputs {
    let [fwd, nft, ipt4, ipt6, leg4, leg6] = first_commands(host);
    let (ipt_nft, ip6t_nft) = (ipt4.0, ipt6.0);
    let nft_then_saves = async {
        let nft = run_cmd(host, nft.0, nft.1).await;
        let empty = matches!(&nft, Ok(Some(out)) if nft_holds_no_table(out));
        let save = |(program, args): (&'static str, &'static [&'static str])| async move {
            match empty && NFT_SAVES.contains(&program) {
                true => Ok(Some(String::new())),
                false => run_cmd(host, program, args).await,
            }
        };
        let (ipt4, ipt6) = futures::join!(save(ipt4), save(ipt6));
        (nft, ipt4, ipt6)
    };
    let (fwd, (nft, ipt4, ipt6), leg4, leg6) = futures::join!(
        host.run(fwd.0, fwd.1, CMD_TIMEOUT),
        nft_then_saves,
        run_cmd(host, leg4.0, leg4.1),
        run_cmd(host, leg6.0, leg6.1),
    );
    // ufw is a Python program (~200 ms to start): when iptables was read and
    // holds no ufw chain, ufw is not running and need not be asked.
    let ipt_read = [&ipt4, &ipt6, &leg4, &leg6].iter().all(|r| r.is_ok());
    let ufw_chains = [&ipt4, &ipt6, &leg4, &leg6]
        .iter()
        .any(|r| matches!(r, Ok(Some(out)) if out.contains(":ufw-user-input") || out.contains(":ufw6-user-input")));
    let ufw = if host.which("ufw").is_none() {
        Ok(None)
    } else if ipt_read && !ufw_chains {
        Ok(Some(format!("Status: inactive\n{UFW_INFERRED}\n")))
    } else {
        run_cmd(host, "ufw", &["status", "verbose"]).await
    };
    let firewalld_state = match fwd {
        // `firewall-cmd --state` exits non-zero when not running: that is an answer.
        Ok(out) => Some(Ok(if out.stdout.trim().is_empty() { out.stderr } else { out.stdout })),
        Err(HostError::NoProgram { .. }) => None,
        Err(e) => Some(Err(e.to_string())),
    };
    let firewalld_list = match &firewalld_state {
        Some(Ok(s)) if s.trim() == "running" => opt(run_cmd(host, "firewall-cmd", &["--list-all"]).await),
        _ => None,
    };
    RuntimeOutputs {
        ufw_status: opt(ufw),
        firewalld_state,
        firewalld_list,
        nft_json: opt(nft),
        iptables: vec![
            ("iptables".into(), ipt_nft.into(), Family::V4, opt(ipt4)),
            ("iptables".into(), ip6t_nft.into(), Family::V6, opt(ipt6)),
            ("iptables-legacy".into(), "iptables-legacy-save".into(), Family::V4, opt(leg4)),
            ("iptables-legacy".into(), "ip6tables-legacy-save".into(), Family::V6, opt(leg6)),
        ],
    }
}

/// The state described by what the firewall programs printed (the parsing
/// half of the live check, usable on output captured elsewhere, e.g. in a
/// network namespace).
pub fn from_runtime(host: &Host, o: RuntimeOutputs) -> FirewallState {
    let mut st = FirewallState::default();
    add_runtime(host, &mut st, o);
    finish(&mut st);
    st
}

/// A state made of tables already parsed (tests, other tools).
pub fn from_tables(tables: Vec<Table>) -> FirewallState {
    let mut st = FirewallState { known: true, ..Default::default() };
    for t in tables {
        push_table_status(&mut st, &t, true, None);
        st.tables.push(t);
    }
    finish(&mut st);
    st
}

async fn live_rules(host: &Host, st: &mut FirewallState) -> bool {
    let o = runtime_outputs(host).await;
    add_runtime(host, st, o)
}

/// Add the runtime rules. Returns false when no firewall program is installed.
fn add_runtime(host: &Host, st: &mut FirewallState, o: RuntimeOutputs) -> bool {
    let mut any_program = false;
    let mut ufw_active = false;

    // ufw
    match o.ufw_status {
        Some(Ok(out)) => {
            any_program = true;
            st.known = true;
            let s = parse::ufw_status(&out);
            ufw_active = s.active;
            let source =
                if out.contains(UFW_INFERRED) { "iptables-save (no ufw chain loaded)" } else { "ufw status verbose" };
            push_ufw(st, source, s.active, s.default_incoming.as_deref().unwrap_or("deny"), s.v4, s.v6, None);
        }
        None => {}
        Some(Err(e)) => {
            any_program = true;
            st.problems.push(("ufw status".into(), e));
        }
    }

    // firewalld
    let mut firewalld = false;
    match o.firewalld_state {
        Some(Ok(state)) => {
            any_program = true;
            st.known = true;
            firewalld = state.trim() == "running";
            if firewalld {
                match o.firewalld_list {
                    Some(Ok(list)) => {
                        let services = |name: &str| firewalld_service(host, name);
                        let t = parse::firewalld_list_all(&list, "firewall-cmd --list-all", &services);
                        push_table_status(st, &t, true, None);
                        st.tables.push(t);
                    }
                    Some(Err(e)) => st.problems.push(("firewall-cmd --list-all".into(), e)),
                    None => {}
                }
            } else {
                st.backends.push(BackendStatus {
                    name: "firewalld".into(),
                    source: "firewall-cmd --state".into(),
                    note: Some(format!("firewalld is {}", state.trim().if_empty("not running"))),
                    ..Default::default()
                });
            }
        }
        None => {}
        Some(Err(e)) => {
            any_program = true;
            st.problems.push(("firewall-cmd --state".into(), e));
        }
    }

    // iptables, nf_tables and legacy
    let mut ipt_tables: Vec<Table> = Vec::new();
    for (backend, cmd, fam, res) in o.iptables {
        match res {
            Some(Ok(out)) => {
                any_program = true;
                st.known = true;
                if let Some(mut t) = parse::iptables_save(&out, &backend, &cmd, fam) {
                    if ufw_active {
                        parse::delegate_to_ufw(&mut t);
                    }
                    ipt_tables.push(t);
                }
            }
            None => {}
            Some(Err(e)) => {
                any_program = true;
                st.problems.push((cmd, e));
            }
        }
    }

    // nftables (native tables only: those iptables-nft and firewalld manage are read from them)
    match o.nft_json {
        Some(Ok(out)) => {
            any_program = true;
            st.known = true;
            match parse::nft_json(&out, "nft -j list ruleset") {
                Ok(tables) => {
                    for t in tables {
                        let managed_by_iptables = ipt_tables.iter().any(|i| {
                            i.backend == "iptables"
                                && t.name == format!("{} filter", if i.family == Family::V4 { "ip" } else { "ip6" })
                        });
                        let managed_by_firewalld = firewalld && t.name.ends_with(" firewalld");
                        if !managed_by_iptables && !managed_by_firewalld && t.has_input() {
                            push_table_status(st, &t, true, None);
                            st.tables.push(t);
                        }
                    }
                }
                Err(e) => st.problems.push(("nft -j list ruleset".into(), e)),
            }
        }
        None => {}
        Some(Err(e)) => {
            any_program = true;
            st.problems.push(("nft list ruleset".into(), e));
        }
    }
    for t in ipt_tables {
        // An empty ACCEPT table is what every iptables install shows: not a firewall.
        let empty = t.chains.values().all(|c| c.rules.is_empty())
            && t.chains.values().filter(|c| c.input_hook).all(|c| c.policy != Some(Target::Drop));
        if !empty {
            push_table_status(st, &t, true, None);
            st.tables.push(t);
        }
    }
    any_program
}

trait IfEmpty {
    fn if_empty(&self, other: &str) -> String;
}

impl IfEmpty for str {
    fn if_empty(&self, other: &str) -> String {
        if self.is_empty() { other.to_string() } else { self.to_string() }
    }
}

fn firewalld_service(host: &Host, name: &str) -> Vec<(String, (u16, u16))> {
    for dir in ["/etc/firewalld/services", "/usr/lib/firewalld/services"] {
        if let Ok(Some(xml)) = host.read_optional(&format!("{dir}/{name}.xml")) {
            return parse::firewalld_service_xml(&xml);
        }
    }
    match name {
        "ssh" => vec![("tcp".into(), (22, 22))],
        "http" => vec![("tcp".into(), (80, 80))],
        "https" => vec![("tcp".into(), (443, 443))],
        "dhcpv6-client" => vec![("udp".into(), (546, 546))],
        "mysql" => vec![("tcp".into(), (3306, 3306))],
        "elasticsearch" => vec![("tcp".into(), (9200, 9200)), ("tcp".into(), (9300, 9300))],
        "redis" => vec![("tcp".into(), (6379, 6379))],
        "cockpit" => vec![("tcp".into(), (9090, 9090))],
        _ => Vec::new(),
    }
}

fn push_ufw(
    st: &mut FirewallState,
    source: &str,
    enabled: bool,
    default_incoming: &str,
    v4: Vec<model::Rule>,
    v6: Vec<model::Rule>,
    note: Option<String>,
) {
    let policy = match default_incoming.to_ascii_lowercase().as_str() {
        "allow" | "accept" => "accept",
        "reject" => "reject",
        _ => "drop",
    };
    st.backends.push(BackendStatus {
        name: "ufw".into(),
        source: source.into(),
        enabled,
        input_policy: Some(policy.into()),
        rules: v4.len() + v6.len(),
        note,
    });
    if enabled {
        st.tables.push(parse::ufw_table(source, Family::V4, v4, policy));
        let source6 = source.replace("/user.rules", "/user6.rules");
        st.tables.push(parse::ufw_table(&source6, Family::V6, v6, policy));
    }
}

fn push_table_status(st: &mut FirewallState, t: &Table, enabled: bool, note: Option<String>) {
    let pols = t.input_policies();
    let policy = if pols.iter().any(|p| p == "drop" || p == "reject") {
        Some("drop".to_string())
    } else {
        pols.first().cloned()
    };
    let rules = t.render().len();
    let name = match (t.backend.as_str(), t.family) {
        ("iptables", Family::V6) => "ip6tables".to_string(),
        ("iptables-legacy", Family::V6) => "ip6tables-legacy".to_string(),
        ("nftables", _) => format!("nftables ({})", t.name),
        (b, _) => b.to_string(),
    };
    st.backends.push(BackendStatus { name, source: t.source.clone(), enabled, input_policy: policy, rules, note });
}

/// Is a boot-time unit enabled? On a root with no service manager layout we
/// cannot tell, and assume the file is loaded.
fn service_enabled(host: &Host, unit: &str) -> bool {
    let systemd = host.exists("/etc/systemd/system");
    let openrc = host.exists("/etc/runlevels");
    if !systemd && !openrc {
        return true;
    }
    !host.glob(&format!("/etc/systemd/system/*.wants/{unit}.service")).is_empty()
        || !host.glob(&format!("/etc/runlevels/*/{unit}")).is_empty()
}

/// The files loaded at boot.
fn config_rules(host: &Host, st: &mut FirewallState) {
    let problem =
        |st: &mut FirewallState, what: &str, e: HostError| st.problems.push((what.to_string(), e.to_string()));

    // ufw
    match host.read_optional("/etc/ufw/ufw.conf") {
        Ok(Some(conf)) => {
            st.known = true;
            let enabled = parse::shell_vars(&conf).get("ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("yes"));
            let defaults = match host.read_optional("/etc/default/ufw") {
                Ok(d) => parse::shell_vars(&d.unwrap_or_default()),
                Err(e) => {
                    problem(st, "/etc/default/ufw", e);
                    Default::default()
                }
            };
            let policy = defaults.get("DEFAULT_INPUT_POLICY").cloned().unwrap_or_else(|| "DROP".into());
            let mut v = [Vec::new(), Vec::new()];
            for (i, f) in ["/etc/ufw/user.rules", "/etc/ufw/user6.rules"].iter().enumerate() {
                match host.read_optional(f) {
                    Ok(t) => v[i] = parse::ufw_tuples(&t.unwrap_or_default()),
                    Err(e) => problem(st, f, e),
                }
            }
            if defaults.get("IPV6").is_some_and(|x| x.eq_ignore_ascii_case("no")) {
                v[1].clear();
            }
            let [v4, v6] = v;
            let note =
                if enabled { None } else { Some("ENABLED=no in /etc/ufw/ufw.conf: ufw is not started at boot".into()) };
            push_ufw(st, "/etc/ufw/user.rules", enabled, &policy, v4, v6, note);
        }
        Ok(None) => {}
        Err(e) => problem(st, "/etc/ufw/ufw.conf", e),
    }

    // nftables
    match host.read_optional("/etc/nftables.conf") {
        Ok(Some(text)) => {
            st.known = true;
            let include = |pattern: &str| -> Vec<String> {
                let pat = if pattern.starts_with('/') { pattern.to_string() } else { format!("/etc/{pattern}") };
                host.glob(&pat).iter().filter_map(|p| host.read_to_string(p).ok()).collect()
            };
            let tables = parse::nft_text(&text, "/etc/nftables.conf", &include);
            let enabled = service_enabled(host, "nftables");
            let note = (!enabled)
                .then(|| "nftables.service is not enabled: /etc/nftables.conf is not loaded at boot".to_string());
            let mut any = false;
            for t in tables.into_iter().filter(Table::has_input) {
                any = true;
                push_table_status(st, &t, enabled, note.clone());
                if enabled {
                    st.tables.push(t);
                }
            }
            if !any {
                st.backends.push(BackendStatus {
                    name: "nftables".into(),
                    source: "/etc/nftables.conf".into(),
                    enabled,
                    note: Some("no chain on the input hook".into()),
                    ..Default::default()
                });
            }
        }
        Ok(None) => {}
        Err(e) => problem(st, "/etc/nftables.conf", e),
    }

    // iptables-persistent
    for (file, fam) in [("/etc/iptables/rules.v4", Family::V4), ("/etc/iptables/rules.v6", Family::V6)] {
        match host.read_optional(file) {
            Ok(Some(text)) => {
                st.known = true;
                let enabled = service_enabled(host, "netfilter-persistent");
                if let Some(t) = parse::iptables_save(&text, "iptables", file, fam) {
                    let note =
                        (!enabled).then(|| "netfilter-persistent is not enabled: not loaded at boot".to_string());
                    push_table_status(st, &t, enabled, note);
                    if enabled {
                        st.tables.push(t);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => problem(st, file, e),
        }
    }
    // A root we could read at all tells us "no firewall files" as a fact.
    if host.exists("/etc") {
        st.known = true;
    }
}

const PROBES: &[(&str, u16)] = &[
    ("tcp", 23),
    ("tcp", 2375),
    ("tcp", 3306),
    ("tcp", 5432),
    ("tcp", 6379),
    ("tcp", 9200),
    ("tcp", 27017),
    ("tcp", 31337),
    ("udp", 11211),
    ("udp", 31337),
];

fn finish(st: &mut FirewallState) {
    let primary = st
        .tables
        .iter()
        .map(|t| t.backend.as_str())
        .min_by_key(|b| match *b {
            "ufw" => 0,
            "firewalld" => 1,
            "nftables" => 2,
            "iptables" => 3,
            _ => 4,
        })
        .or_else(|| st.backends.iter().find(|b| b.name == "ufw").map(|_| "ufw"))
        .unwrap_or("none")
        .to_string();
    st.input_policy = if primary == "none" {
        None
    } else {
        let pols: Vec<String> =
            st.tables.iter().filter(|t| t.backend == primary).flat_map(|t| t.input_policies()).collect();
        if pols.iter().any(|p| p == "drop" || p == "reject") { Some("drop".into()) } else { pols.first().cloned() }
    };
    st.backend = primary;
    st.active = st.known
        && PROBES.iter().any(|(proto, port)| {
            port_allowed_on(st, Family::V4, proto, *port) == Some(false)
                || port_allowed_on(st, Family::V6, proto, *port) == Some(false)
        });
}

// ---------------------------------------------------------------- questions other tools ask

/// Is `proto`/`port` reachable from any IPv4 internet address through the
/// firewall? `Some(true)` also when there is no firewall; `None` when the
/// rules could not be read.
pub fn port_allowed(state: &FirewallState, proto: &str, port: u16) -> Option<bool> {
    port_allowed_on(state, Family::V4, proto, port)
}

/// [`port_allowed`] for one address family.
pub fn port_allowed_on(state: &FirewallState, family: Family, proto: &str, port: u16) -> Option<bool> {
    if !state.known {
        return None;
    }
    let ufw = state
        .tables
        .iter()
        .find(|t| t.backend == "ufw" && t.family == family)
        .and_then(|t| t.evaluate(proto, port, None));
    let mut delegated = false;
    for t in state.tables.iter().filter(|t| t.backend != "ufw" && t.family.covers(family)) {
        delegated |= t.chains.values().any(|c| c.rules.iter().any(|r| r.target == Target::Ufw));
        if t.evaluate(proto, port, ufw) == Some(Verdict::Block) {
            return Some(false);
        }
    }
    if !delegated && ufw == Some(Verdict::Block) {
        return Some(false);
    }
    Some(true)
}

/// Every rule on the incoming path, canonical and sorted.
pub fn ruleset(state: &FirewallState) -> Vec<RuleFact> {
    let mut out: Vec<RuleFact> = state
        .tables
        .iter()
        .flat_map(|t| {
            t.render().into_iter().map(|rule| RuleFact {
                id: rule_hash(&rule),
                rule,
                source: format!("{} ({})", t.source, t.backend),
                first_seen: None,
            })
        })
        .collect();
    out.sort_by(|a, b| a.rule.cmp(&b.rule));
    out.dedup_by(|a, b| a.rule == b.rule);
    out
}

/// (proto, port ranges or all, table, rule line) of a rule opening ports to any source.
type Opening<'a> = (String, Option<Vec<(u16, u16)>>, &'a Table, String);

/// Every rule that opens ports to any source.
fn opening_rules(state: &FirewallState) -> Vec<Opening<'_>> {
    let mut out = Vec::new();
    for t in &state.tables {
        let reachable: std::collections::HashSet<String> = t.render().into_iter().collect();
        for (name, chain) in &t.chains {
            for r in &chain.rules {
                let line = format!("{}: {}", t.location(name), r.render());
                if r.opens_to_anywhere() && reachable.contains(&line) {
                    for proto in match r.proto.as_deref() {
                        None | Some("all" | "any") => vec!["tcp", "udp"],
                        Some(p @ ("tcp" | "udp")) => vec![p],
                        Some(_) => vec![],
                    } {
                        out.push((proto.to_string(), r.dports.clone(), t, line.clone()));
                    }
                }
            }
        }
    }
    out
}

fn open_to_anywhere(state: &FirewallState) -> Vec<String> {
    let mut out: Vec<String> = opening_rules(state)
        .into_iter()
        .map(|(proto, ports, _, _)| match ports {
            Some(p) => format!("{proto}:{}", model::render_ports(&p).replace(':', "-")),
            None => format!("{proto}:all"),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

// ---------------------------------------------------------------- findings

/// The findings the state itself gives (no history): firewall off or accepting
/// everything, datastores opened to any source.
pub fn judge(st: &FirewallState) -> Vec<Finding> {
    let mut out = Vec::new();
    if !st.known {
        return out;
    }
    let evidence: Vec<String> = st
        .backends
        .iter()
        .map(|b| {
            let mut s = format!("{}: {} ({})", b.name, if b.enabled { "enabled" } else { "not enabled" }, b.source);
            if let Some(p) = &b.input_policy {
                s.push_str(&format!(", incoming policy {p}"));
            }
            s.push_str(&format!(", {} rule(s)", b.rules));
            if let Some(n) = &b.note {
                s.push_str(&format!("; {n}"));
            }
            s
        })
        .collect();
    if !st.active {
        let loaded = st.tables.iter().any(Table::has_input);
        let mut f = if loaded {
            Finding::new(
                "hardening.firewall-accept-all",
                Severity::High,
                Category::Hardening,
                "firewall",
                "The firewall is loaded but accepts every incoming connection",
            )
            .fix(
                "Make the incoming policy deny and allow only what the server serves, e.g. with ufw: \
                 `ufw default deny incoming && ufw allow OpenSSH && ufw allow 80,443/tcp && ufw enable` \
                 (allow SSH first so the session survives).",
            )
        } else {
            Finding::new(
                "hardening.firewall-off",
                Severity::High,
                Category::Hardening,
                "firewall",
                "No firewall filters incoming connections",
            )
            .fix(
                "Turn a firewall on with a deny-incoming default, allowing SSH first: \
                 `ufw allow OpenSSH && ufw allow 80,443/tcp && ufw default deny incoming && ufw enable`.",
            )
        };
        if evidence.is_empty() {
            f = f.evidence("no ufw, firewalld, nftables or iptables rules found");
        }
        for e in &evidence {
            f = f.evidence(e.clone());
        }
        out.push(f);
        return out;
    }

    // Datastores opened to any source.
    let mut seen = std::collections::BTreeSet::new();
    for (proto, ports, table, line) in opening_rules(st) {
        let Some(ranges) = ports else { continue };
        for (a, b) in ranges {
            for port in a..=b {
                let Some(ds) = crate::known_ports::datastore(&proto, port) else { continue };
                let fam = if table.family == Family::V6 { Family::V6 } else { Family::V4 };
                if port_allowed_on(st, fam, &proto, port) != Some(true) || !seen.insert((proto.clone(), port)) {
                    continue;
                }
                out.push(
                    Finding::new(
                        "ports.firewall-allows-datastore",
                        ds.severity.min(Severity::High),
                        Category::Ports,
                        format!("{proto}:{port}"),
                        format!("The firewall lets anyone reach {} ({}) on port {port}", ds.name, ds.kind),
                    )
                    .evidence(format!("rule: {line}"))
                    .evidence(format!("source: {} ({})", table.source, table.backend))
                    .fix(format!(
                        "Remove the rule or restrict it to known addresses, e.g. `ufw delete allow {port}/{proto}` \
                         then `ufw allow from 203.0.113.10 to any port {port} proto {proto}`; reach {} over an \
                         SSH tunnel instead.",
                        ds.name
                    )),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
