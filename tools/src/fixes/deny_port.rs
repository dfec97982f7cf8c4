//! `firewall_deny_port`: close a forgotten open port (pattern 5) in whatever
//! firewall the host actually runs, with an exact undo.
//!
//! The backend is detected on the live host, in this order: ufw when it is
//! active (a `deny` rule inserted first, so an older `allow` cannot win), else
//! nftables when it has an `inet` table (a drop rule in vigil's own
//! `table inet vigil`, chain `input` hooked at priority -10, so it runs before
//! the host's own filter chains), else iptables + ip6tables (a DROP rule
//! inserted first in INPUT). Every rule carries the comment `vigil: REASON`.
//! It refuses to block the SSH port of the session it runs in and any port
//! sshd listens on (from `sshd_config` and from the live listeners): closing
//! those would lock the administrator out. Off the live root it refuses,
//! because no command can run there. A step that fails is rolled back.

use std::collections::BTreeSet;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::change::{Cmd, check_reason, first_line};
use crate::compared::Compared;
use crate::host::Host;
use crate::tool::{Change, Ctx, Outcome, Plan, ToolError};

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct FirewallDenyPort;

pub use crate::firewall::Proto;

/// Input of `firewall_deny_port`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyPortInput {
    /// The port to block for incoming traffic (1-65535).
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub proto: Proto,
    /// Why it is being closed, recorded in the rule's comment (`vigil: REASON`); at most 100
    /// characters, letters, digits, spaces and - _ . , : / ( ) # @ + = %.
    pub reason: String,
}

/// Which firewall the rule goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// ufw, when `ufw status` says active.
    Ufw,
    /// nftables (`table inet vigil`).
    Nft,
    /// iptables and ip6tables.
    Iptables,
}

/// Facts of `firewall_deny_port`: what was changed and how to undo it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DenyPortFacts {
    /// The port now blocked.
    pub port: u16,
    /// Its protocol.
    pub proto: Proto,
    /// The firewall the rule went into.
    pub backend: Backend,
    /// The rule's comment.
    pub comment: String,
    /// The commands that ran, in order.
    pub commands: Vec<String>,
    /// The commands that undo the change, in the order to run them (for the audit log).
    pub undo: Vec<String>,
    /// How the rule shows in the firewall after the change.
    pub rule: String,
}

/// One step of the change.
#[derive(Debug, Clone)]
struct Step {
    action: String,
    cmd: Cmd,
    /// The undo command, when known before running (nft rules learn their handle after).
    undo: Option<Cmd>,
    /// The undo as shown in the plan.
    undo_shown: Option<String>,
    /// This step adds the nft rule: its undo is made from the handle it prints.
    nft_rule: bool,
}

/// What the plan was computed from, handed unchanged to the change that runs it.
#[derive(Debug, Clone)]
pub struct Prepared {
    backend: Backend,
    comment: String,
    steps: Vec<Step>,
    warnings: Vec<String>,
}

const NFT_TABLE: &str = "vigil";
const NFT_CHAIN: &str = "input";

#[async_trait]
impl Change for FirewallDenyPort {
    type Input = DenyPortInput;
    type Output = DenyPortFacts;
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "firewall_deny_port"
    }

    fn description(&self) -> &'static str {
        "Block incoming traffic to one port (tcp or udp) in the firewall the host runs: ufw when active, \
         else nftables (vigil's own `table inet vigil`), else iptables and ip6tables. The rule carries the \
         comment `vigil: REASON`. Changes the host: the administrator sees the exact commands and their \
         undo and must confirm. Refuses to block the SSH port of the current session or any port sshd \
         listens on, and refuses when the port is already blocked. Returns the commands run and the undo \
         commands. Use it to close a forgotten open port (e.g. Elasticsearch on 9200) after \
         list_open_ports or check_firewall showed it."
    }

    async fn prepare(&self, ctx: &Ctx, input: &DenyPortInput) -> Result<(Plan, Prepared), ToolError> {
        let prepared = prepare(ctx, input).await?;
        Ok((render_plan(ctx, input, &prepared), prepared))
    }

    async fn execute(
        &self,
        ctx: &Ctx,
        input: DenyPortInput,
        prepared: Prepared,
        _proof: Compared,
    ) -> Result<Outcome<DenyPortFacts>, ToolError> {
        execute(ctx, &input, prepared).await.map(|facts| Outcome::new(facts, Vec::new()))
    }
}

fn render_plan(ctx: &Ctx, input: &DenyPortInput, p: &Prepared) -> Plan {
    let backend = match p.backend {
        Backend::Ufw => "ufw",
        Backend::Nft => "nftables",
        Backend::Iptables => "iptables",
    };
    let mut plan = Plan::new(
        "firewall_deny_port",
        format!("block incoming {}/{} with {backend} (comment \"{}\")", input.port, input.proto.as_str(), p.comment),
    );
    for s in &p.steps {
        plan = plan.step(s.action.clone(), Some(s.cmd.shown(ctx)), s.undo_shown.clone());
    }
    for w in &p.warnings {
        plan = plan.warn(w.clone());
    }
    plan.warn("Existing connections to the port may stay open until they close; new ones are dropped.")
}

/// Everything that decides the plan: refusals, the backend, the steps.
async fn prepare(ctx: &Ctx, input: &DenyPortInput) -> Result<Prepared, ToolError> {
    let reason = check_reason(&input.reason)?;
    if input.port == 0 {
        return Err(ToolError::InvalidInput("port: 1-65535".into()));
    }
    if !ctx.host.is_live() {
        return Err(ToolError::Refused(format!(
            "the audited root {} is not the live system: firewall commands cannot run there",
            ctx.host.root().display()
        )));
    }
    if input.proto == Proto::Tcp {
        if ctx.session.ssh_server_port == Some(input.port) {
            return Err(ToolError::Refused(format!(
                "tcp/{} is the SSH port of the session vigil runs in (SSH_CONNECTION): blocking it would cut \
                 you off. Nothing was changed.",
                input.port
            )));
        }
        let sshd = sshd_ports(&ctx.host);
        if sshd.contains(&input.port) {
            return Err(ToolError::Refused(format!(
                "sshd listens on tcp/{}: blocking it could lock every administrator out. Move sshd first if \
                 this is really wanted. Nothing was changed.",
                input.port
            )));
        }
    }
    let comment = format!("vigil: {reason}");
    let backend = detect(ctx).await?;
    let (steps, warnings) = match backend {
        Backend::Ufw => ufw_steps(ctx, input, &comment).await?,
        Backend::Nft => nft_steps(ctx, input, &comment).await?,
        Backend::Iptables => iptables_steps(ctx, input, &comment).await?,
    };
    Ok(Prepared { backend, comment, steps, warnings })
}

/// The firewall in use: ufw when active, nft with an `inet` table, iptables, nft.
async fn detect(ctx: &Ctx) -> Result<Backend, ToolError> {
    if ctx.host.which("ufw").is_some() {
        let out = Cmd::new("ufw", &["status"]).run_ok(ctx).await?;
        if ufw_active(&out.stdout) {
            return Ok(Backend::Ufw);
        }
    }
    let has_nft = ctx.host.which("nft").is_some();
    if has_nft {
        let out = Cmd::new("nft", &["list", "tables"]).run_ok(ctx).await?;
        if !nft_tables(&out.stdout, "inet").is_empty() {
            return Ok(Backend::Nft);
        }
    }
    if ctx.host.which("iptables").is_some() {
        return Ok(Backend::Iptables);
    }
    if has_nft {
        return Ok(Backend::Nft);
    }
    Err(ToolError::Failed("no firewall tool found (ufw, nft or iptables): install nftables first".into()))
}

/// `ufw status` says active.
pub fn ufw_active(status: &str) -> bool {
    status.lines().any(|l| l.trim().eq_ignore_ascii_case("status: active"))
}

/// Table names of one family in `nft list tables`.
pub fn nft_tables(list: &str, family: &str) -> Vec<String> {
    list.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("table") && w.next() == Some(family)).then(|| w.next().map(str::to_string)).flatten()
        })
        .collect()
}

/// The handle nft printed for an added rule (`… # handle 7`).
pub fn nft_handle(echo: &str) -> Option<u64> {
    echo.lines().find_map(|l| l.rsplit_once("# handle ").and_then(|(_, h)| h.trim().parse().ok()))
}

/// The handle of the rule in `nft -a list chain` output that drops `proto` `port` with `comment`.
pub fn nft_find_rule(listing: &str, proto: Proto, port: u16, comment: &str) -> Option<u64> {
    let want = format!("{} dport {port} drop", proto.as_str());
    let want_comment = format!("comment \"{comment}\"");
    listing.lines().find(|l| l.contains(&want) && l.contains(&want_comment)).and_then(nft_handle)
}

fn nft_drops(listing: &str, proto: Proto, port: u16) -> bool {
    let want = format!("{} dport {port} drop", proto.as_str());
    listing.lines().any(|l| l.contains(&want))
}

async fn nft_steps(ctx: &Ctx, input: &DenyPortInput, comment: &str) -> Result<(Vec<Step>, Vec<String>), ToolError> {
    let tables = Cmd::new("nft", &["list", "tables"]).run_ok(ctx).await?;
    let have_table = nft_tables(&tables.stdout, "inet").iter().any(|t| t == NFT_TABLE);
    let mut steps = Vec::new();
    let mut have_chain = false;
    if have_table {
        let chain = Cmd::new("nft", &["-a", "list", "chain", "inet", NFT_TABLE, NFT_CHAIN]).run(ctx).await?;
        if chain.success() {
            have_chain = true;
            if nft_drops(&chain.stdout, input.proto, input.port) {
                return Err(ToolError::Refused(format!(
                    "{}/{} is already dropped by table inet {NFT_TABLE} chain {NFT_CHAIN}: nothing to change",
                    input.port,
                    input.proto.as_str()
                )));
            }
        }
    } else {
        let undo = Cmd::new("nft", &[format!("delete table inet {NFT_TABLE}")]);
        steps.push(Step {
            action: format!("create nftables table inet {NFT_TABLE}"),
            cmd: Cmd::new("nft", &[format!("add table inet {NFT_TABLE}")]),
            undo_shown: Some(undo.shown(ctx)),
            undo: Some(undo),
            nft_rule: false,
        });
    }
    if !have_chain {
        let undo = Cmd::new("nft", &[format!("delete chain inet {NFT_TABLE} {NFT_CHAIN}")]);
        steps.push(Step {
            action: format!("create chain {NFT_CHAIN} hooked on input at priority -10 (before the host's own filters)"),
            cmd: Cmd::new(
                "nft",
                &[format!(
                    "add chain inet {NFT_TABLE} {NFT_CHAIN} {{ type filter hook input priority -10; policy accept; }}"
                )],
            ),
            undo_shown: Some(undo.shown(ctx)),
            undo: Some(undo),
            nft_rule: false,
        });
    }
    let proto = input.proto.as_str();
    steps.push(Step {
        action: format!("drop incoming {proto} to port {}", input.port),
        cmd: Cmd::new(
            "nft",
            &[
                "--echo".to_string(),
                "--handle".to_string(),
                format!(
                    "add rule inet {NFT_TABLE} {NFT_CHAIN} {proto} dport {} drop comment \"{comment}\"",
                    input.port
                ),
            ],
        ),
        undo: None,
        undo_shown: Some(format!(
            "{} (N: the rule's handle, read back after adding)",
            Cmd::new("nft", &[format!("delete rule inet {NFT_TABLE} {NFT_CHAIN} handle N")]).shown(ctx)
        )),
        nft_rule: true,
    });
    Ok((steps, Vec::new()))
}

fn ipt_spec(input: &DenyPortInput, comment: &str) -> Vec<String> {
    let p = input.proto.as_str();
    let port = input.port.to_string();
    ["-p", p, "--dport", &port, "-m", "comment", "--comment", comment, "-j", "DROP"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// True when `iptables -S INPUT` output already drops or rejects `proto` `port`.
pub fn ipt_blocks(rules: &str, proto: Proto, port: u16) -> bool {
    rules.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.first() == Some(&"-A")
            && w.windows(2).any(|p| p == ["-p", proto.as_str()])
            && w.windows(2).any(|p| p[0] == "--dport" && p[1] == port.to_string())
            && !w.iter().any(|x| *x == "-s" || *x == "-i" || *x == "--sport")
            && w.windows(2).any(|p| p[0] == "-j" && (p[1] == "DROP" || p[1] == "REJECT"))
    })
}

async fn iptables_steps(
    ctx: &Ctx,
    input: &DenyPortInput,
    comment: &str,
) -> Result<(Vec<Step>, Vec<String>), ToolError> {
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    let spec = ipt_spec(input, comment);
    for prog in ["iptables", "ip6tables"] {
        let listed = if ctx.host.which(prog).is_some() {
            Cmd::new(prog, &["-S", "INPUT"]).run(ctx).await?
        } else {
            warnings.push(format!("{prog} is not installed: that address family is not blocked"));
            continue;
        };
        if !listed.success() {
            if prog == "iptables" {
                return Err(ToolError::Failed(format!("`iptables -S INPUT` failed: {}", first_line(&listed))));
            }
            warnings.push(format!("{prog} is not usable ({}): IPv6 is not blocked", first_line(&listed)));
            continue;
        }
        if ipt_blocks(&listed.stdout, input.proto, input.port) {
            warnings.push(format!("{prog} INPUT already drops {}/{}", input.port, input.proto.as_str()));
            continue;
        }
        let mut add = vec!["-I".to_string(), "INPUT".to_string()];
        add.extend(spec.iter().cloned());
        let mut del = vec!["-D".to_string(), "INPUT".to_string()];
        del.extend(spec.iter().cloned());
        let undo = Cmd::new(prog, &del);
        steps.push(Step {
            action: format!("{prog}: drop incoming {}/{} (inserted first in INPUT)", input.port, input.proto.as_str()),
            cmd: Cmd::new(prog, &add),
            undo_shown: Some(undo.shown(ctx)),
            undo: Some(undo),
            nft_rule: false,
        });
    }
    if steps.is_empty() {
        return Err(ToolError::Refused(format!(
            "{}/{} is already blocked in INPUT: nothing to change",
            input.port,
            input.proto.as_str()
        )));
    }
    Ok((steps, warnings))
}

/// One rule of `ufw show added`, as its argv after `ufw`.
pub fn ufw_added_rules(text: &str) -> Vec<Vec<String>> {
    text.lines().filter_map(|l| l.trim().strip_prefix("ufw ")).map(split_quoted).collect()
}

/// Split a line like a POSIX shell would for plain words and single/double quotes.
fn split_quoted(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// A ufw rule on exactly `spec` (e.g. `9200/tcp`): its action.
fn ufw_exact<'a>(rule: &'a [String], spec: &str) -> Option<&'a str> {
    let action = rule.first()?.as_str();
    if !["allow", "deny", "reject", "limit"].contains(&action) {
        return None;
    }
    let mut rest = rule[1..].iter().map(String::as_str).peekable();
    if rest.peek() == Some(&"in") {
        rest.next();
    }
    if rest.next()? != spec {
        return None;
    }
    match rest.next() {
        None | Some("comment") => Some(action),
        _ => None,
    }
}

async fn ufw_steps(ctx: &Ctx, input: &DenyPortInput, comment: &str) -> Result<(Vec<Step>, Vec<String>), ToolError> {
    let added = Cmd::new("ufw", &["show", "added"]).run_ok(ctx).await?;
    let rules = ufw_added_rules(&added.stdout);
    let spec = format!("{}/{}", input.port, input.proto.as_str());
    let bare = input.port.to_string();
    let mut steps = Vec::new();
    let mut remaining = rules.len();
    for r in &rules {
        if matches!(ufw_exact(r, &spec).or(ufw_exact(r, &bare)), Some("deny" | "reject")) {
            return Err(ToolError::Refused(format!(
                "ufw already has `ufw {}`: {spec} is blocked, nothing to change",
                r.join(" ")
            )));
        }
    }
    for r in &rules {
        // ufw will not add a deny for a spec it already has a rule for: that rule goes first.
        if let Some(action) = ufw_exact(r, &spec) {
            let undo = Cmd::new("ufw", r);
            steps.push(Step {
                action: format!("remove the existing rule `ufw {}` (ufw keeps one rule per spec)", r.join(" ")),
                cmd: Cmd::new("ufw", &["delete", action, &spec]),
                undo_shown: Some(undo.shown(ctx)),
                undo: Some(undo),
                nft_rule: false,
            });
            remaining -= 1;
        }
    }
    let add: Vec<String> = if remaining > 0 {
        vec!["insert".into(), "1".into(), "deny".into(), spec.clone(), "comment".into(), comment.into()]
    } else {
        vec!["deny".into(), spec.clone(), "comment".into(), comment.into()]
    };
    let undo = Cmd::new("ufw", &["delete", "deny", &spec]);
    steps.push(Step {
        action: format!("deny incoming {spec} (first rule, before any allow)"),
        cmd: Cmd::new("ufw", &add),
        undo_shown: Some(undo.shown(ctx)),
        undo: Some(undo),
        nft_rule: false,
    });
    Ok((steps, Vec::new()))
}

/// Run the steps; on any failure undo what was done, in reverse, and say what happened.
async fn execute(ctx: &Ctx, input: &DenyPortInput, p: Prepared) -> Result<DenyPortFacts, ToolError> {
    let mut done: Vec<Cmd> = Vec::new();
    let mut commands = Vec::new();
    for step in &p.steps {
        let result = step.cmd.run_ok(ctx).await;
        let out = match result {
            Ok(o) => o,
            Err(e) => return Err(rollback(ctx, &done, format!("step \"{}\" failed: {e}", step.action)).await),
        };
        commands.push(step.cmd.shown(ctx));
        let undo = if step.nft_rule {
            let handle = match nft_handle(&out.stdout) {
                Some(h) => Some(h),
                None => {
                    let l = Cmd::new("nft", &["-a", "list", "chain", "inet", NFT_TABLE, NFT_CHAIN]).run(ctx).await?;
                    nft_find_rule(&l.stdout, input.proto, input.port, &p.comment)
                }
            };
            match handle {
                Some(h) => Some(Cmd::new("nft", &[format!("delete rule inet {NFT_TABLE} {NFT_CHAIN} handle {h}")])),
                None => {
                    return Err(rollback(
                        ctx,
                        &done,
                        "the nft rule was added but its handle could not be found; delete it by hand \
                         (`nft -a list chain inet vigil input`)"
                            .into(),
                    )
                    .await);
                }
            }
        } else {
            step.undo.clone()
        };
        if let Some(u) = undo {
            done.push(u);
        }
    }
    let rule = match verify(ctx, input, &p).await {
        Ok(r) => r,
        Err(why) => return Err(rollback(ctx, &done, format!("the rule did not appear after the change: {why}")).await),
    };
    Ok(DenyPortFacts {
        port: input.port,
        proto: input.proto,
        backend: p.backend,
        comment: p.comment,
        commands,
        undo: done.iter().rev().map(|c| c.shown(ctx)).collect(),
        rule,
    })
}

/// Read the firewall back: the rule must be there. Returns how it shows.
async fn verify(ctx: &Ctx, input: &DenyPortInput, p: &Prepared) -> Result<String, String> {
    let spec = format!("{}/{}", input.port, input.proto.as_str());
    match p.backend {
        Backend::Ufw => {
            let out = Cmd::new("ufw", &["show", "added"]).run(ctx).await.map_err(|e| e.to_string())?;
            ufw_added_rules(&out.stdout)
                .into_iter()
                .find(|r| ufw_exact(r, &spec) == Some("deny") && r.contains(&p.comment))
                .map(|r| Cmd::new("ufw", &r).render())
                .ok_or_else(|| format!("`ufw show added` has no deny rule for {spec}"))
        }
        Backend::Nft => {
            let out = Cmd::new("nft", &["-a", "list", "chain", "inet", NFT_TABLE, NFT_CHAIN])
                .run(ctx)
                .await
                .map_err(|e| e.to_string())?;
            let want = format!("{} dport {} drop", input.proto.as_str(), input.port);
            out.stdout
                .lines()
                .find(|l| l.contains(&want) && l.contains(&p.comment))
                .map(|l| format!("table inet {NFT_TABLE} chain {NFT_CHAIN}: {}", l.trim()))
                .ok_or_else(|| format!("chain inet {NFT_TABLE} {NFT_CHAIN} has no `{want}` rule"))
        }
        Backend::Iptables => {
            let mut shown = Vec::new();
            for s in &p.steps {
                let mut check = s.cmd.clone();
                if let Some(a) = check.args.first_mut() {
                    *a = "-C".into();
                }
                let out = check.run(ctx).await.map_err(|e| e.to_string())?;
                if !out.success() {
                    return Err(format!("`{}` does not find the rule", check.render()));
                }
                let mut listed = s.cmd.clone();
                if let Some(first) = listed.args.first_mut() {
                    *first = "-A".into();
                }
                shown.push(listed.render());
            }
            Ok(shown.join("; "))
        }
    }
}

/// Undo `done` in reverse; the error says what failed and what the undo did.
async fn rollback(ctx: &Ctx, done: &[Cmd], what: String) -> ToolError {
    if done.is_empty() {
        return ToolError::Failed(format!("{what}. Nothing had been changed."));
    }
    let mut notes = Vec::new();
    let mut clean = true;
    for u in done.iter().rev() {
        match u.run_ok(ctx).await {
            Ok(_) => notes.push(format!("undone: {}", u.shown(ctx))),
            Err(e) => {
                clean = false;
                notes.push(format!("UNDO FAILED, run by hand: {} ({e})", u.shown(ctx)));
            }
        }
    }
    let end = if clean { "The host is as it was." } else { "The host is NOT fully restored." };
    ToolError::Failed(format!("{what}. {} {end}", notes.join("; ")))
}

/// Ports sshd listens on: `Port` / `ListenAddress` in `etc/ssh/sshd_config` (and the files
/// it `Include`s; 22 when none is set), plus live tcp listeners owned by a process named sshd.
pub fn sshd_ports(host: &Host) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    let mut listen_ports = BTreeSet::new();
    let mut seen_config = false;
    read_sshd_config(host, "/etc/ssh/sshd_config", 0, &mut ports, &mut listen_ports, &mut seen_config);
    if seen_config && ports.is_empty() {
        ports.insert(22);
    }
    ports.extend(listen_ports);
    if let Ok((facts, _)) = crate::ports::scan(host) {
        ports.extend(
            facts.listeners.iter().filter(|l| l.proto == "tcp" && l.process.as_deref() == Some("sshd")).map(|l| l.port),
        );
    }
    ports
}

fn read_sshd_config(
    host: &Host,
    path: &str,
    depth: u8,
    ports: &mut BTreeSet<u16>,
    listen: &mut BTreeSet<u16>,
    seen: &mut bool,
) {
    let Ok(Some(text)) = host.read_optional(path) else {
        return;
    };
    *seen = true;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((k, v)) => {
                (k.to_ascii_lowercase(), v.trim_start_matches(|c: char| c.is_whitespace() || c == '=').trim())
            }
            None => continue,
        };
        match key.as_str() {
            "match" => break, // Port cannot be set inside Match blocks.
            "port" => ports.extend(value.split_whitespace().filter_map(|p| p.parse::<u16>().ok())),
            "listenaddress" => {
                let addr = value.split_whitespace().next().unwrap_or("");
                let port = if let Some(rest) = addr.strip_prefix('[') {
                    rest.split_once("]:").and_then(|(_, p)| p.parse().ok())
                } else if addr.matches(':').count() == 1 {
                    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
                } else {
                    None
                };
                if let Some(p) = port {
                    listen.insert(p);
                }
            }
            "include" if depth < 3 => {
                for pat in value.split_whitespace() {
                    let pat = if pat.starts_with('/') { pat.to_string() } else { format!("/etc/ssh/{pat}") };
                    for f in host.glob(&pat) {
                        read_sshd_config(host, &f, depth + 1, ports, listen, seen);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;

    fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let real = d.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(real.parent().unwrap()).unwrap();
            std::fs::write(real, t).unwrap();
        }
        d
    }

    #[test]
    fn sshd_ports_come_from_the_config_and_its_includes() {
        let d = root_with(&[
            ("/etc/ssh/sshd_config", "# Port 99\nInclude /etc/ssh/sshd_config.d/*.conf\nListenAddress [::1]:2200\n"),
            ("/etc/ssh/sshd_config.d/port.conf", "Port 2222\nPort=2223\nMatch User x\nPort 5\n"),
        ]);
        let ports = sshd_ports(&Host::at(d.path()));
        assert_eq!(ports.into_iter().collect::<Vec<_>>(), vec![2200, 2222, 2223]);
        let d = root_with(&[("/etc/ssh/sshd_config", "PermitRootLogin no\n")]);
        assert!(sshd_ports(&Host::at(d.path())).contains(&22), "no Port line means 22");
        let d = root_with(&[]);
        assert!(sshd_ports(&Host::at(d.path())).is_empty(), "no sshd, no ssh port");
    }

    #[test]
    fn parsers_read_real_output_shapes() {
        assert!(ufw_active("Status: active\n\nTo Action From\n"));
        assert!(!ufw_active("Status: inactive\n"));
        assert_eq!(nft_tables("table ip filter\ntable inet vigil\ntable inet fw\n", "inet"), vec!["vigil", "fw"]);
        assert_eq!(
            nft_handle("add rule inet vigil input tcp dport 9201 drop comment \"vigil: x\" # handle 3\n"),
            Some(3)
        );
        let listing = "table inet vigil {\n\tchain input { # handle 1\n\t\ttcp dport 9200 drop comment \"vigil: es\" # handle 2\n\t}\n}\n";
        assert_eq!(nft_find_rule(listing, Proto::Tcp, 9200, "vigil: es"), Some(2));
        assert_eq!(nft_find_rule(listing, Proto::Udp, 9200, "vigil: es"), None);
        let rules = ufw_added_rules(
            "Added user rules (see 'ufw status' for running firewall):\nufw allow 9200/tcp comment 'es debug'\nufw allow 80\n",
        );
        assert_eq!(rules[0], vec!["allow", "9200/tcp", "comment", "es debug"]);
        assert_eq!(ufw_exact(&rules[0], "9200/tcp"), Some("allow"));
        assert_eq!(ufw_exact(&rules[1], "9200/tcp"), None);
        let s = "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 9200 -m comment --comment \"vigil: x\" -j DROP\n-A INPUT -s 10.0.0.1/32 -p tcp -m tcp --dport 22 -j DROP\n";
        assert!(ipt_blocks(s, Proto::Tcp, 9200));
        assert!(!ipt_blocks(s, Proto::Udp, 9200));
        assert!(!ipt_blocks(s, Proto::Tcp, 22), "a rule for one source does not block the port");
    }

    #[tokio::test]
    async fn refused_off_the_live_root_and_bad_reasons_are_input_errors() {
        let ctx = crate::testutil::fixture_ctx("web1");
        let i = DenyPortInput { port: 9200, proto: Proto::Tcp, reason: "es open".into() };
        let e = FirewallDenyPort.prepare(&ctx, &i).await.unwrap_err();
        assert!(matches!(e, ToolError::Refused(ref m) if m.contains("not the live system")), "{e}");
        let e = crate::Registry::builtin()
            .call(&ctx, "firewall_deny_port", serde_json::to_value(&i).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, ToolError::Refused(_)), "{e}");
        let i = DenyPortInput { port: 9200, proto: Proto::Tcp, reason: "x'; flush ruleset".into() };
        assert!(matches!(FirewallDenyPort.prepare(&ctx, &i).await, Err(ToolError::InvalidInput(_))));
    }
}
