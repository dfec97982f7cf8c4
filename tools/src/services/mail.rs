//! Postfix as a relay for strangers, and Postfix listening to the world on a
//! host that only sends. `mynetworks` lists the clients Postfix relays for
//! without authentication: anything wider than loopback (or a single trusted
//! host) lets a neighbour, or the internet, send spam as this server.
//! `inet_interfaces = all` (the default) opens port 25 to every interface;
//! a web host that delivers no mail for any domain of its own only needs
//! `loopback-only`. Read from `main.cf` (with `$name` expansion and
//! continuation lines) and `master.cf`.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::host::Host;

const MAIN_CF: &str = "/etc/postfix/main.cf";

/// What Postfix's configuration says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MailFacts {
    /// `mynetworks`, expanded (or the style it defaults to).
    pub mynetworks: String,
    /// `inet_interfaces` (default `all`).
    pub inet_interfaces: String,
    /// An `smtp inet` service is enabled in master.cf.
    pub smtp_listener: bool,
    /// Domains it accepts mail for beyond the host's own names (`mydestination`,
    /// virtual and relay domains), empty for a host that only sends.
    pub receives_for: Vec<String>,
}

/// `main.cf` as name → raw value (last one wins, continuation lines joined).
pub fn parse_main_cf(text: &str) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some(v) = last.as_ref().and_then(|k| m.get_mut(k)) {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let k = k.trim().to_string();
            m.insert(k.clone(), v.trim().to_string());
            last = Some(k);
        }
    }
    m
}

/// `$name` / `${name}` / `$(name)` expanded from `m`, a few levels deep.
fn expand(m: &HashMap<String, String>, v: &str, depth: usize) -> String {
    if depth > 5 || !v.contains('$') {
        return v.to_string();
    }
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(b) = after.strip_prefix('{').or_else(|| after.strip_prefix('(')) {
            let end = b.find(['}', ')']).unwrap_or(b.len());
            (&b[..end], end + 2)
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], end)
        };
        out.push_str(&m.get(name).map(|x| expand(m, x, depth + 1)).unwrap_or_default());
        rest = after.get(len..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

fn list(v: &str) -> Vec<String> {
    v.split([' ', ',', '\t']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

/// A `mynetworks` entry wider than one host: (entry, reaches public addresses).
fn wide_network(entry: &str) -> Option<(String, bool)> {
    let e = entry.trim_start_matches('!');
    if entry.starts_with('!') {
        return None;
    }
    let (addr, len) = match e.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok()?),
        None => return None, // a single address or a host name: one host
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = addr.parse().ok()?;
    let (host_len, loopback, private) = match ip {
        IpAddr::V4(v) => (
            32,
            v.is_loopback(),
            v.is_private() || v.is_link_local() || (v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64),
        ),
        IpAddr::V6(v) => {
            let s0 = v.segments()[0];
            let mapped_loop = v.to_ipv4_mapped().is_some_and(|m| m.is_loopback()) && len >= 104;
            (128, v.is_loopback() || mapped_loop, (s0 & 0xfe00) == 0xfc00 || (s0 & 0xffc0) == 0xfe80)
        }
    };
    if len >= host_len || loopback {
        return None;
    }
    // A private range is private only when the prefix stays inside it.
    let public = !private || (matches!(ip, IpAddr::V4(_)) && len < 8) || (matches!(ip, IpAddr::V6(_)) && len < 7);
    Some((e.to_string(), public))
}

/// The host's own names: mail for them is the local postmaster's, not a mail service.
fn own_names(host: &Host, m: &HashMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "localhost.localdomain".into()];
    for f in ["/etc/mailname", "/etc/hostname"] {
        if let Ok(Some(t)) = host.read_optional(f) {
            names.extend(t.split_whitespace().next().map(str::to_ascii_lowercase));
        }
    }
    for k in ["myhostname", "myorigin"] {
        if let Some(v) = m.get(k) {
            let v = expand(m, v, 0);
            if !v.starts_with('/') {
                names.push(v.to_ascii_lowercase());
            }
        }
    }
    names
}

/// Read Postfix's configuration and judge it; `None` when Postfix is not installed.
pub fn check(host: &Host, findings: &mut Vec<Finding>, problems: &mut Vec<String>) -> Option<MailFacts> {
    let text = match host.read_optional(MAIN_CF) {
        Ok(Some(t)) => t,
        Ok(None) => return None,
        Err(e) => {
            problems.push(e.to_string());
            return None;
        }
    };
    let m = parse_main_cf(&text);
    let get = |k: &str| m.get(k).map(|v| expand(&m, v, 0));
    let smtp_listener = match host.read_optional("/etc/postfix/master.cf") {
        Ok(Some(t)) => t.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            !l.starts_with('#')
                && w.len() > 1
                && (w[0] == "smtp" || w[0].ends_with(":smtp") || w[0].ends_with(":25"))
                && w[1] == "inet"
        }),
        _ => true,
    };
    let interfaces = get("inet_interfaces").unwrap_or_else(|| "all".into());
    let listens_all = list(&interfaces).iter().any(|i| i == "all" || i == "0.0.0.0" || i == "[::]");

    // Relay for whom.
    let mut facts = MailFacts { inet_interfaces: interfaces.clone(), smtp_listener, ..Default::default() };
    let mut wide: Vec<(String, bool)> = Vec::new();
    match get("mynetworks") {
        Some(v) => {
            facts.mynetworks = v.clone();
            for e in list(&v) {
                if e.starts_with('/') {
                    // A file of networks, one or more a line.
                    if let Ok(Some(t)) = host.read_optional(&e) {
                        wide.extend(
                            t.lines()
                                .filter(|l| !l.trim_start().starts_with('#'))
                                .flat_map(list)
                                .filter_map(|x| wide_network(&x)),
                        );
                    }
                } else {
                    wide.extend(wide_network(&e));
                }
            }
        }
        None => {
            let compat = get("compatibility_level")
                .and_then(|c| c.split('.').next().and_then(|x| x.parse::<u32>().ok()))
                .unwrap_or(0);
            let style =
                get("mynetworks_style").unwrap_or_else(|| if compat >= 2 { "host".into() } else { "subnet".into() });
            facts.mynetworks = format!("(not set: mynetworks_style = {style})");
            if style != "host" {
                wide.push((format!("every network this host is on (mynetworks_style = {style})"), style == "class"));
            }
        }
    }
    if !wide.is_empty() && smtp_listener {
        let public = wide.iter().any(|(_, p)| *p);
        let sev = match (public, listens_all) {
            (true, true) => Severity::Critical,
            (_, true) => Severity::High,
            (_, false) => Severity::Low,
        };
        let nets: Vec<&str> = wide.iter().map(|(n, _)| n.as_str()).collect();
        findings.push(
            Finding::new(
                "ports.mail-open-relay",
                sev,
                Category::Ports,
                "postfix mynetworks",
                if public {
                    "Postfix relays mail for public networks: an open relay".to_string()
                } else {
                    "Postfix relays mail for whole networks, not just this host".to_string()
                },
            )
            .evidence(format!("{MAIN_CF}: mynetworks = {}", facts.mynetworks))
            .evidence(format!("wider than this host: {}", nets.join(", ")))
            .evidence(format!("inet_interfaces = {interfaces}: {}", if listens_all { "reachable on every interface" } else { "local interfaces only" }))
            .fix("Relay only for this host: `postconf -e 'mynetworks = 127.0.0.0/8 [::1]/128'` (add a single trusted address if one must relay), then `systemctl reload postfix`; test from outside with `swaks --to someone@example.com --server THIS-HOST`, which must be refused."),
        );
    }

    // Listening for whom.
    let own = own_names(host, &m);
    let mut receives: Vec<String> = Vec::new();
    for d in list(&get("mydestination").unwrap_or_default()) {
        let d = d.to_ascii_lowercase();
        if !own.contains(&d) && !d.starts_with('/') && !d.contains(':') {
            receives.push(d);
        }
    }
    for k in ["virtual_mailbox_domains", "virtual_alias_domains", "relay_domains"] {
        let v = get(k).unwrap_or_default();
        for d in list(&v) {
            if !own.contains(&d.to_ascii_lowercase()) {
                receives.push(format!("{d} ({k})"));
            }
        }
    }
    receives.dedup();
    facts.receives_for = receives.clone();
    if listens_all && smtp_listener && receives.is_empty() {
        findings.push(
            Finding::new(
                "ports.mail-listens-all",
                Severity::Medium,
                Category::Ports,
                "postfix inet_interfaces",
                "Postfix listens on every interface, but this host only sends mail",
            )
            .evidence(format!("{MAIN_CF}: inet_interfaces = {interfaces}; master.cf runs an smtp inet service (port 25)"))
            .evidence(format!(
                "it receives mail for no domain of its own: mydestination = {}; no virtual or relay domains",
                get("mydestination").unwrap_or_default()
            ))
            .fix("Listen on loopback only: `postconf -e 'inet_interfaces = loopback-only'` and `systemctl restart postfix`; local programs still send through it, and port 25 closes to the network (`ss -ltn 'sport = :25'`)."),
        );
    }
    Some(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_wider_than_the_host_are_found() {
        assert_eq!(wide_network("127.0.0.0/8"), None);
        assert_eq!(wide_network("[::ffff:127.0.0.0]/104"), None);
        assert_eq!(wide_network("[::1]/128"), None);
        assert_eq!(wide_network("192.0.2.10/32"), None);
        assert_eq!(wide_network("192.0.2.10"), None);
        assert_eq!(wide_network("0.0.0.0/0"), Some(("0.0.0.0/0".into(), true)));
        assert_eq!(wide_network("203.0.113.0/24"), Some(("203.0.113.0/24".into(), true)));
        assert_eq!(wide_network("10.0.0.0/8"), Some(("10.0.0.0/8".into(), false)));
        assert_eq!(wide_network("[2001:db8::]/32"), Some(("[2001:db8::]/32".into(), true)));
        assert_eq!(wide_network("!10.0.0.0/8"), None);
        assert_eq!(wide_network("garbage/xx"), None);
    }

    #[test]
    fn main_cf_parses_continuations_and_expands() {
        let m = parse_main_cf("# c\nmynetworks = 127.0.0.0/8\n    $extra\nextra = 10.0.0.0/8\nmyhostname=web1\n");
        assert_eq!(expand(&m, &m["mynetworks"], 0), "127.0.0.0/8 10.0.0.0/8");
        assert_eq!(expand(&m, "${myhostname}.x $(myhostname)", 0), "web1.x web1");
        // A self-reference ends, it does not loop.
        let m = parse_main_cf("a = $a $a\n");
        assert!(expand(&m, "$a", 0).len() < 10_000);
    }
}
