//! ufw: `ufw status verbose`, its `### tuple ###` lines in `user.rules`, and
//! `/etc/default/ufw` and `ufw.conf` shell variables.

use super::*;

/// What `ufw status verbose` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UfwStatus {
    /// `Status: active`.
    pub active: bool,
    /// The default for incoming traffic (`deny`, `reject`, `allow`).
    pub default_incoming: Option<String>,
    /// IPv4 (and dual) rules, in order.
    pub v4: Vec<Rule>,
    /// IPv6 rules, in order.
    pub v6: Vec<Rule>,
}

pub(super) fn ufw_action(a: &str) -> Option<Target> {
    let base = a.split('_').next().unwrap_or(a).to_ascii_lowercase();
    Some(match base.as_str() {
        "allow" => Target::Accept,
        "deny" => Target::Drop,
        "reject" => Target::Reject,
        "limit" => Target::Limit,
        _ => return None,
    })
}

/// Parse `ufw status verbose` (or plain `ufw status`).
pub fn ufw_status(text: &str) -> UfwStatus {
    let mut s = UfwStatus::default();
    let re = regex::Regex::new(r"^(.*?)\s+(ALLOW|DENY|REJECT|LIMIT)(?:\s+(IN|OUT|FWD))?\s+(.*)$").ok();
    let mut in_rules = false;
    for line in text.lines() {
        let l = line.trim_end();
        if let Some(st) = l.strip_prefix("Status:") {
            s.active = st.trim() == "active";
            continue;
        }
        if let Some(d) = l.strip_prefix("Default:") {
            s.default_incoming = d
                .split(',')
                .find(|p| p.contains("(incoming)"))
                .map(|p| p.replace("(incoming)", "").trim().to_ascii_lowercase());
            continue;
        }
        if l.starts_with("--") {
            in_rules = true;
            continue;
        }
        if !in_rules || l.trim().is_empty() {
            continue;
        }
        let Some(c) = re.as_ref().and_then(|re| re.captures(l)) else { continue };
        if matches!(c.get(3).map(|m| m.as_str()), Some("OUT" | "FWD")) {
            continue;
        }
        let (to, action, from) = (c[1].trim(), &c[2], c[4].trim());
        let Some(target) = ufw_action(action) else { continue };
        let v6 = to.contains("(v6)") || from.contains("(v6)");
        let mut r = Rule::new(target);
        ufw_status_to(&mut r, &to.replace("(v6)", ""));
        let from = from.split(" # ").next().unwrap_or(from).replace("(v6)", "");
        let mut fw = from.split_whitespace();
        match fw.next() {
            Some("Anywhere") | None => {}
            Some(a) => r.src = Some(a.to_string()),
        }
        if let Some(sp) = fw.next() {
            r.extra.push(format!("source port {sp}"));
        }
        if v6 { s.v6.push(r) } else { s.v4.push(r) }
    }
    s
}

pub(super) fn ufw_status_to(r: &mut Rule, to: &str) {
    let mut to = to.trim().to_string();
    if let Some(i) = to.find(" on ") {
        r.iface = Some(to[i + 4..].split_whitespace().next().unwrap_or("").to_string());
        to.truncate(i);
    }
    // `80,443/tcp (Nginx Full)`: the application's name is a note.
    if let (Some(a), Some(b)) = (to.find('('), to.rfind(')')) {
        if a < b {
            to = to[..a].trim().to_string();
        }
    }
    let mut parts: Vec<&str> = to.split_whitespace().collect();
    if parts.first() == Some(&"Anywhere") {
        return;
    }
    // An address before the port spec.
    if parts.len() >= 2 && (parts[0].contains('.') || parts[0].contains(':')) {
        r.dst = Some(parts.remove(0).to_string());
    }
    let spec = parts.join(" ");
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p.to_string(), Some(proto.to_string())),
        None => (spec.clone(), None),
    };
    if ports == "Anywhere" || ports.is_empty() {
        r.proto = proto;
        return;
    }
    match parse_ports(&ports) {
        Some(p) => {
            r.dports = Some(p);
            r.proto = proto;
        }
        None if spec.contains('.') || spec.contains(':') && !spec.contains(' ') => r.dst = Some(spec),
        None => r.extra.push(format!("application {spec}")),
    }
}

/// Rules of ufw's `user.rules`/`user6.rules`, from their `### tuple ###` lines.
pub fn ufw_tuples(text: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(t) = line.trim().strip_prefix("### tuple ###") else { continue };
        let t = t.split(" comment=").next().unwrap_or(t);
        let f: Vec<&str> = t.split_whitespace().collect();
        // action proto dport dst sport src [dapp sapp] direction
        if f.len() < 7 || f[0].starts_with("route:") {
            continue;
        }
        let dir = f[f.len() - 1];
        if !dir.starts_with("in") {
            continue;
        }
        let Some(target) = ufw_action(f[0]) else { continue };
        let mut r = Rule::new(target);
        if f[1] != "any" {
            r.proto = Some(f[1].to_string());
        }
        if f[2] != "any" {
            match parse_ports(f[2]) {
                Some(p) => r.dports = Some(p),
                None => r.extra.push(format!("port {}", f[2])),
            }
        }
        if !is_any_addr(f[3]) {
            r.dst = Some(f[3].to_string());
        }
        if f[4] != "any" {
            r.extra.push(format!("source port {}", f[4]));
        }
        if !is_any_addr(f[5]) {
            r.src = Some(f[5].to_string());
        }
        if let Some(i) = dir.strip_prefix("in_") {
            r.iface = Some(i.to_string());
        }
        out.push(r);
    }
    out
}

/// `KEY=value` lines (`/etc/ufw/ufw.conf`, `/etc/default/ufw`), quotes removed.
pub fn shell_vars(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').trim_matches('\'').to_string()))
        .collect()
}

/// A ufw table (one family) from its rules and default incoming policy.
pub fn ufw_table(source: &str, family: Family, rules: Vec<Rule>, default_incoming: &str) -> Table {
    let mut t = Table::new("ufw", source, family, "");
    let policy = match default_incoming.to_ascii_lowercase().as_str() {
        "allow" | "accept" => Target::Accept,
        "reject" => Target::Reject,
        _ => Target::Drop,
    };
    t.chains.insert("input".into(), Chain { policy: Some(policy), input_hook: true, rules });
    t
}
