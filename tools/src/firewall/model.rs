//! One model for every firewall backend: tables of chains of rules, a
//! canonical one-line rendering of a rule (what reviews compare month to
//! month), and an evaluator that answers "would a new connection from an
//! arbitrary internet address to this port be accepted?".
//!
//! The evaluator is deliberately conservative: a rule only applies when every
//! condition in it is understood and certainly true for such a packet (any
//! source, a non-loopback interface, connection state NEW). A rule with a
//! condition it does not understand is skipped, whatever its verdict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which IP family a table filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both (nftables `inet`).
    Both,
}

impl Family {
    /// True when this table sees packets of `f`.
    pub fn covers(self, f: Family) -> bool {
        self == Family::Both || self == f
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Let the packet through (this chain).
    Accept,
    /// Drop it.
    Drop,
    /// Reject it.
    Reject,
    /// Evaluate another chain, come back if it returns.
    Jump(String),
    /// Evaluate another chain, do not come back.
    Goto(String),
    /// Back to the calling chain.
    Return,
    /// ufw `limit`: accepted unless the source connects too often.
    Limit,
    /// Hand the decision to ufw's own rules (the ufw chains inside iptables).
    Ufw,
    /// A non-terminal action (LOG, counter, mark…), by name.
    Continue(String),
}

impl Target {
    fn verb(&self) -> String {
        match self {
            Target::Accept => "accept".into(),
            Target::Drop => "drop".into(),
            Target::Reject => "reject".into(),
            Target::Jump(c) => format!("jump {c}"),
            Target::Goto(c) => format!("goto {c}"),
            Target::Return => "return".into(),
            Target::Limit => "limit".into(),
            Target::Ufw => "ufw".into(),
            Target::Continue(n) => n.to_lowercase(),
        }
    }

    /// True for a verdict that stops the packet.
    pub fn is_blocking(&self) -> bool {
        matches!(self, Target::Drop | Target::Reject)
    }
}

/// One rule, parsed into the conditions the evaluator understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp`…; `None` = any protocol.
    pub proto: Option<String>,
    /// Destination ports as inclusive ranges; `None` = any port.
    pub dports: Option<Vec<(u16, u16)>>,
    /// Source address or network; `None` = anywhere.
    pub src: Option<String>,
    /// Destination address; `None` = any local address.
    pub dst: Option<String>,
    /// Input interface; `None` = any.
    pub iface: Option<String>,
    /// Connection states matched (lowercase); `None` = any.
    pub states: Option<Vec<String>>,
    /// Conditions not understood, as text (the rule then never applies).
    pub extra: Vec<String>,
    /// Conditions understood and always true for a new connection (a rate
    /// limit, `recent --set`): shown, never blocking a match.
    pub notes: Vec<String>,
    /// What it does.
    pub target: Target,
}

impl Rule {
    /// A rule with no conditions.
    pub fn new(target: Target) -> Self {
        Rule {
            proto: None,
            dports: None,
            src: None,
            dst: None,
            iface: None,
            states: None,
            extra: Vec::new(),
            notes: Vec::new(),
            target,
        }
    }

    /// The canonical one-line form, without the chain (see [`Table::render`]).
    pub fn render(&self) -> String {
        let mut s = self.target.verb();
        s.push(' ');
        s.push_str(self.proto.as_deref().unwrap_or("all"));
        if let Some(p) = &self.dports {
            s.push_str(&format!(" port {}", render_ports(p)));
        }
        s.push_str(&format!(" from {}", self.src.as_deref().unwrap_or("anywhere")));
        if let Some(d) = &self.dst {
            s.push_str(&format!(" to {d}"));
        }
        if let Some(i) = &self.iface {
            s.push_str(&format!(" in {i}"));
        }
        if let Some(st) = &self.states {
            s.push_str(&format!(" state {}", st.join(",")));
        }
        for e in self.notes.iter().chain(&self.extra) {
            s.push_str(&format!(" [{e}]"));
        }
        s
    }

    /// Does this rule certainly apply to a new connection from anywhere to `proto`/`port`?
    fn applies(&self, proto: &str, port: u16) -> bool {
        if !self.extra.is_empty() {
            return false;
        }
        if let Some(p) = &self.proto {
            if !(p == proto || p == "all" || p == "any") {
                return false;
            }
        }
        if let Some(ranges) = &self.dports {
            if !ranges.iter().any(|(a, b)| (*a..=*b).contains(&port)) {
                return false;
            }
        }
        if self.src.as_deref().is_some_and(|s| !is_any_addr(s)) {
            return false;
        }
        if self.dst.as_deref().is_some_and(|s| !is_any_addr(s)) {
            return false;
        }
        if let Some(i) = &self.iface {
            if i == "lo" {
                return false;
            }
        }
        if let Some(st) = &self.states {
            if !st.iter().any(|s| s == "new" || s == "untracked") {
                return false;
            }
        }
        true
    }

    /// An accept rule that opens ports to any source (the rules a review
    /// should look at twice).
    pub fn opens_to_anywhere(&self) -> bool {
        matches!(self.target, Target::Accept | Target::Limit)
            && self.src.as_deref().is_none_or(is_any_addr)
            && self.iface.as_deref() != Some("lo")
            && self.extra.is_empty()
            && self.states.as_ref().is_none_or(|st| st.iter().any(|s| s == "new"))
    }
}

/// True for `0.0.0.0/0`, `::/0`, `any`, `anywhere`.
pub fn is_any_addr(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "0.0.0.0/0" | "::/0" | "any" | "anywhere" | "0/0")
}

/// `22`, `80,443`, `1000:2000`.
pub fn render_ports(p: &[(u16, u16)]) -> String {
    p.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}:{b}") }).collect::<Vec<_>>().join(",")
}

/// Parse `22`, `80,443`, `1000:2000`, `1000-2000` into ranges.
pub fn parse_ports(s: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once([':', '-']) {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let p: u16 = part.parse().ok()?;
                (p, p)
            }
        };
        out.push((a.min(b), a.max(b)));
    }
    if out.is_empty() { None } else { Some(out) }
}

/// One chain: its rules in order and, for a base chain, its policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// The policy of a base chain (`accept`/`drop`); `None` for a regular chain.
    pub policy: Option<Target>,
    /// True when the chain is hooked on incoming traffic for this host.
    pub input_hook: bool,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// One table of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// `ufw`, `nftables`, `iptables`, `iptables-legacy`, `firewalld`.
    pub backend: String,
    /// Where it was read: a command or a file.
    pub source: String,
    /// Families it filters.
    pub family: Family,
    /// Its name for rendering (`inet filter`, `filter`, empty for ufw).
    pub name: String,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
}

/// The answer for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Accept,
    /// Dropped or rejected.
    Block,
}

impl Table {
    /// A table with no chains.
    pub fn new(backend: &str, source: &str, family: Family, name: &str) -> Self {
        Table {
            backend: backend.to_string(),
            source: source.to_string(),
            family,
            name: name.to_string(),
            chains: BTreeMap::new(),
        }
    }

    /// The prefix of every rule of `chain` in the canonical rendering.
    pub fn location(&self, chain: &str) -> String {
        let fam = match (self.backend.as_str(), self.family) {
            ("ufw", Family::V6) => "ufw6".to_string(),
            ("ufw", _) => "ufw".to_string(),
            ("nftables", f) => format!("nft {}", nft_family(f, &self.name)),
            ("iptables" | "iptables-legacy" | "iptables-nft", Family::V6) => {
                self.backend.replacen("iptables", "ip6tables", 1)
            }
            (b, _) => b.to_string(),
        };
        let name = self.name.split_whitespace().last().unwrap_or("");
        match (self.backend.as_str(), name) {
            ("ufw" | "firewalld", _) | (_, "") => format!("{fam} {chain}"),
            _ => format!("{fam} {name} {chain}"),
        }
    }

    /// Every rule reachable from the input hooks, rendered with its location.
    /// Chains that churn on their own (fail2ban bans, Docker) are left out.
    pub fn render(&self) -> Vec<String> {
        let mut seen: Vec<&str> = Vec::new();
        let mut todo: Vec<&str> = self.chains.iter().filter(|(_, c)| c.input_hook).map(|(n, _)| n.as_str()).collect();
        let mut out = Vec::new();
        while let Some(name) = todo.pop() {
            if seen.contains(&name) || is_dynamic_chain(name) {
                continue;
            }
            seen.push(name);
            let Some(chain) = self.chains.get(name) else { continue };
            for r in &chain.rules {
                if let Target::Jump(t) | Target::Goto(t) = &r.target {
                    if is_dynamic_chain(t) {
                        continue;
                    }
                    todo.push(t.as_str());
                }
                out.push(format!("{}: {}", self.location(name), r.render()));
            }
        }
        out
    }

    /// True when the table has at least one chain hooked on input.
    pub fn has_input(&self) -> bool {
        self.chains.values().any(|c| c.input_hook)
    }

    /// Policies of the input hooks (lowercase), e.g. `["drop"]`.
    pub fn input_policies(&self) -> Vec<String> {
        self.chains
            .values()
            .filter(|c| c.input_hook)
            .map(|c| c.policy.as_ref().map(|p| p.verb()).unwrap_or_else(|| "accept".into()))
            .collect()
    }

    /// The verdict of this table for a new connection from anywhere to
    /// `proto`/`port`, given what ufw's own rules decide (`ufw`), when the
    /// table hands over to them. `None` when the table has no input hook.
    pub fn evaluate(&self, proto: &str, port: u16, ufw: Option<Verdict>) -> Option<Verdict> {
        let mut verdict = None;
        for chain in self.chains.values().filter(|c| c.input_hook) {
            let v = match self.eval_chain(chain, proto, port, ufw, 0) {
                Some(v) => v,
                None => match chain.policy {
                    Some(Target::Drop | Target::Reject) => Verdict::Block,
                    _ => Verdict::Accept,
                },
            };
            if v == Verdict::Block {
                return Some(Verdict::Block);
            }
            verdict = Some(v);
        }
        verdict
    }

    fn eval_chain(&self, chain: &Chain, proto: &str, port: u16, ufw: Option<Verdict>, depth: u8) -> Option<Verdict> {
        if depth > 32 {
            return None;
        }
        for r in &chain.rules {
            if !r.applies(proto, port) {
                continue;
            }
            match &r.target {
                Target::Accept | Target::Limit => return Some(Verdict::Accept),
                Target::Drop | Target::Reject => return Some(Verdict::Block),
                Target::Return => return None,
                Target::Ufw => {
                    if ufw.is_some() {
                        return ufw;
                    }
                }
                Target::Jump(t) => {
                    if let Some(c) = self.chains.get(t) {
                        if let Some(v) = self.eval_chain(c, proto, port, ufw, depth + 1) {
                            return Some(v);
                        }
                    }
                }
                Target::Goto(t) => {
                    return self.chains.get(t).and_then(|c| self.eval_chain(c, proto, port, ufw, depth + 1));
                }
                Target::Continue(_) => {}
            }
        }
        None
    }
}

fn nft_family(f: Family, name: &str) -> String {
    match name.split_whitespace().next() {
        Some(fam) if name.contains(' ') => fam.to_string(),
        _ => match f {
            Family::V4 => "ip".into(),
            Family::V6 => "ip6".into(),
            Family::Both => "inet".into(),
        },
    }
}

/// Chains whose rules change by themselves (ban lists, container plumbing):
/// not part of the reviewed ruleset.
pub fn is_dynamic_chain(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["f2b-", "fail2ban", "docker", "crowdsec", "sshguard", "kube-", "cali-", "cilium", "denyhosts"]
        .iter()
        .any(|p| n.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept_port(p: u16) -> Rule {
        let mut r = Rule::new(Target::Accept);
        r.proto = Some("tcp".into());
        r.dports = Some(vec![(p, p)]);
        r
    }

    #[test]
    fn evaluation_follows_jumps_policies_and_skips_what_it_does_not_understand() {
        let mut t = Table::new("iptables", "iptables-save", Family::V4, "filter");
        let mut input = Chain { policy: Some(Target::Drop), input_hook: true, rules: vec![] };
        let mut est = Rule::new(Target::Accept);
        est.states = Some(vec!["established".into(), "related".into()]);
        input.rules.push(est);
        let mut lo = Rule::new(Target::Accept);
        lo.iface = Some("lo".into());
        input.rules.push(lo);
        let mut odd = Rule::new(Target::Accept);
        odd.extra.push("-m geoip --src-cc FR".into());
        input.rules.push(odd);
        input.rules.push(Rule::new(Target::Jump("user".into())));
        t.chains.insert("INPUT".into(), input);
        let mut from_lan = accept_port(9200);
        from_lan.src = Some("10.0.0.0/8".into());
        let user = Chain { policy: None, input_hook: false, rules: vec![accept_port(22), from_lan] };
        t.chains.insert("user".into(), user);

        assert_eq!(t.evaluate("tcp", 22, None), Some(Verdict::Accept));
        assert_eq!(t.evaluate("tcp", 9200, None), Some(Verdict::Block), "only from the LAN");
        assert_eq!(t.evaluate("udp", 22, None), Some(Verdict::Block));
        assert_eq!(t.render().len(), 6);
        assert!(t.render().contains(&"iptables filter user: accept tcp port 22 from anywhere".to_string()));
    }

    #[test]
    fn ports_parse_and_render() {
        assert_eq!(parse_ports("80,443"), Some(vec![(80, 80), (443, 443)]));
        assert_eq!(parse_ports("6000:6007"), Some(vec![(6000, 6007)]));
        assert_eq!(parse_ports("http"), None);
        assert_eq!(render_ports(&[(80, 80), (1000, 2000)]), "80,1000:2000");
    }
}
