//! firewalld: `firewall-cmd --list-all` (ports, services, rich rules) and service
//! definitions (`/usr/lib/firewalld/services/*.xml`).

use super::*;

/// A firewalld service name → its (protocol, port range) pairs.
pub type ServicePorts<'a> = dyn Fn(&str) -> Vec<(String, (u16, u16))> + 'a;

/// The active zone of `firewall-cmd --list-all` as a table; `services` maps a
/// service name to its ports (`tcp`, range).
pub fn firewalld_list_all(text: &str, source: &str, services: &ServicePorts<'_>) -> Table {
    let mut t = Table::new("firewalld", source, Family::Both, "");
    let mut policy = Target::Reject;
    let mut rules = Vec::new();
    let mut in_rich = false;
    for line in text.lines() {
        let l = line.trim();
        if let Some((k, v)) = l.split_once(':') {
            if !l.starts_with("rule ") {
                in_rich = k == "rich rules";
                let v = v.trim();
                match k {
                    "target" => {
                        policy = match v {
                            "ACCEPT" => Target::Accept,
                            "DROP" => Target::Drop,
                            _ => Target::Reject,
                        }
                    }
                    "services" => {
                        for s in v.split_whitespace() {
                            let ports = services(s);
                            if ports.is_empty() {
                                let mut r = Rule::new(Target::Accept);
                                r.extra.push(format!("service {s}"));
                                rules.push(r);
                            }
                            for (proto, range) in ports {
                                let mut r = Rule::new(Target::Accept);
                                r.proto = Some(proto);
                                r.dports = Some(vec![range]);
                                r.notes.push(format!("service {s}"));
                                rules.push(r);
                            }
                        }
                    }
                    "ports" => {
                        for p in v.split_whitespace() {
                            let mut r = Rule::new(Target::Accept);
                            if let Some((port, proto)) = p.split_once('/') {
                                r.proto = Some(proto.to_string());
                                match parse_ports(port) {
                                    Some(x) => r.dports = Some(x),
                                    None => r.extra.push(format!("port {port}")),
                                }
                            }
                            rules.push(r);
                        }
                    }
                    _ => {}
                }
                continue;
            }
        }
        if in_rich && l.starts_with("rule") {
            rules.push(firewalld_rich(l));
        }
    }
    // Rich rules with a source are evaluated before the plain service/port allows
    // in firewalld; order only matters for the evaluator when they conflict.
    rules.sort_by_key(|r| r.src.is_none());
    t.chains.insert("input".into(), Chain { policy: Some(policy), input_hook: true, rules });
    t
}

pub(super) fn firewalld_rich(l: &str) -> Rule {
    let attr = |name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let i = l.find(&key)? + key.len();
        Some(l[i..].split('"').next()?.to_string())
    };
    let target = if l.ends_with(" accept") {
        Target::Accept
    } else if l.ends_with(" drop") {
        Target::Drop
    } else if l.contains(" reject") {
        Target::Reject
    } else {
        Target::Continue("rich".into())
    };
    let mut r = Rule::new(target);
    if let Some(a) = l.find("source address=\"").and_then(|_| attr("source address")) {
        r.src = Some(a);
    }
    if l.contains("port port=") {
        r.dports = attr("port").as_deref().and_then(parse_ports);
        r.proto = attr("protocol");
    }
    if l.contains("service name=") {
        r.extra.push(format!("service {}", attr("service name").unwrap_or_default()));
    }
    if l.contains(" not ") || l.contains("limit ") || l.contains("source ipset") {
        r.extra.push(l.to_string());
    }
    r
}

/// Ports of a firewalld service definition (`/usr/lib/firewalld/services/NAME.xml`).
pub fn firewalld_service_xml(xml: &str) -> Vec<(String, (u16, u16))> {
    let Ok(re) =
        regex::Regex::new(r#"<port\s+(?:protocol="(\w+)"\s+port="([\d-]+)"|port="([\d-]+)"\s+protocol="(\w+)")"#)
    else {
        return Vec::new();
    };
    re.captures_iter(xml)
        .filter_map(|c| {
            let proto = c.get(1).or(c.get(4))?.as_str().to_string();
            let port = c.get(2).or(c.get(3))?.as_str();
            let r = parse_ports(port)?.first().copied()?;
            Some((proto, r))
        })
        .collect()
}
