//! `nft -j list ruleset` JSON: tables, chains, named sets and the match
//! expressions of each rule.

use super::*;

/// Every table of `nft -j list ruleset` output.
pub fn nft_json(text: &str, source: &str) -> Result<Vec<Table>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("nft JSON: {e}"))?;
    let items = v.get("nftables").and_then(Value::as_array).ok_or("nft JSON: no `nftables` array")?;
    let mut tables: Vec<Table> = Vec::new();
    let mut sets: HashMap<(String, String, String), Vec<Value>> = HashMap::new();
    for it in items {
        if let Some(s) = it.get("set") {
            let key = (str_of(s, "family"), str_of(s, "table"), str_of(s, "name"));
            sets.insert(key, s.get("elem").and_then(Value::as_array).cloned().unwrap_or_default());
        }
    }
    let find = |tables: &mut Vec<Table>, fam: &str, name: &str| -> Option<usize> {
        let full = format!("{fam} {name}");
        if let Some(i) = tables.iter().position(|t| t.name == full) {
            return Some(i);
        }
        let family = match fam {
            "ip" => Family::V4,
            "ip6" => Family::V6,
            "inet" => Family::Both,
            _ => return None,
        };
        tables.push(Table::new("nftables", source, family, &full));
        Some(tables.len() - 1)
    };
    for it in items {
        if let Some(c) = it.get("chain") {
            let Some(i) = find(&mut tables, &str_of(c, "family"), &str_of(c, "table")) else { continue };
            let ch = tables[i].chains.entry(str_of(c, "name")).or_default();
            if c.get("hook").and_then(Value::as_str) == Some("input")
                && c.get("type").and_then(Value::as_str).is_none_or(|t| t == "filter")
            {
                ch.input_hook = true;
                ch.policy = Some(if str_of(c, "policy") == "drop" { Target::Drop } else { Target::Accept });
            }
        } else if let Some(r) = it.get("rule") {
            let fam = str_of(r, "family");
            let tname = str_of(r, "table");
            let Some(i) = find(&mut tables, &fam, &tname) else { continue };
            let exprs = r.get("expr").and_then(Value::as_array).cloned().unwrap_or_default();
            let lookup = |name: &str| sets.get(&(fam.clone(), tname.clone(), name.to_string())).cloned();
            let rule = nft_json_rule(&exprs, &lookup);
            tables[i].chains.entry(str_of(r, "chain")).or_default().rules.push(rule);
        }
    }
    Ok(tables)
}

pub(super) fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

pub(super) fn nft_json_rule(exprs: &[Value], sets: &dyn Fn(&str) -> Option<Vec<Value>>) -> Rule {
    let mut r = Rule::new(Target::Continue("continue".into()));
    for e in exprs {
        let Some((k, v)) = e.as_object().and_then(|o| o.iter().next()) else { continue };
        match k.as_str() {
            "match" => nft_json_match(&mut r, v, sets),
            "accept" => r.target = Target::Accept,
            "drop" => r.target = Target::Drop,
            "reject" => r.target = Target::Reject,
            "return" => r.target = Target::Return,
            "jump" => r.target = Target::Jump(str_of(v, "target")),
            "goto" => r.target = Target::Goto(str_of(v, "target")),
            "counter" | "log" | "continue" => {}
            "limit" => r.notes.push(format!("limit {}", v.get("rate").map(Value::to_string).unwrap_or_default())),
            other => r.extra.push(format!("{other} {}", compact(v))),
        }
    }
    r
}

pub(super) fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}

/// The values of a match's right side: a scalar, a list, an anonymous or named set.
pub(super) fn nft_values(v: &Value, sets: &dyn Fn(&str) -> Option<Vec<Value>>) -> Option<Vec<Value>> {
    match v {
        Value::String(s) if s.starts_with('@') => sets(&s[1..]),
        Value::Array(a) => Some(a.clone()),
        Value::Object(o) if o.contains_key("set") => o.get("set").and_then(Value::as_array).cloned(),
        other => Some(vec![other.clone()]),
    }
}

pub(super) fn nft_port_ranges(vals: &[Value]) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for v in vals {
        let v = v.get("elem").and_then(|e| e.get("val")).unwrap_or(v);
        match v {
            Value::Number(n) => {
                let p = u16::try_from(n.as_u64()?).ok()?;
                out.push((p, p));
            }
            Value::String(s) => out.extend(parse_ports(&service_port(s)?.to_string())?),
            Value::Object(o) => {
                let r = o.get("range")?.as_array()?;
                let a = u16::try_from(r.first()?.as_u64()?).ok()?;
                let b = u16::try_from(r.get(1)?.as_u64()?).ok()?;
                out.push((a, b));
            }
            _ => return None,
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

pub(super) fn nft_addr(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                return Some(format!("{}/{}", str_of(p, "addr"), p.get("len")?.as_u64()?));
            }
            if let Some(r) = o.get("range").and_then(Value::as_array) {
                return Some(format!("{}-{}", r.first()?.as_str()?, r.get(1)?.as_str()?));
            }
            None
        }
        _ => None,
    }
}

pub(super) fn nft_json_match(r: &mut Rule, m: &Value, sets: &dyn Fn(&str) -> Option<Vec<Value>>) {
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let left = m.get("left").cloned().unwrap_or(Value::Null);
    let right = m.get("right").cloned().unwrap_or(Value::Null);
    let neg = op == "!=";
    let positive = op == "==" || op == "in";
    let unknown = |r: &mut Rule| r.extra.push(format!("{} {op} {}", compact(&left), compact(&right)));
    if let Some(p) = left.get("payload") {
        let proto = str_of(p, "protocol");
        let field = str_of(p, "field");
        match (proto.as_str(), field.as_str()) {
            (l4, "dport") if positive => {
                match nft_values(&right, sets).as_deref().and_then(nft_port_ranges) {
                    Some(ports) => r.dports = Some(ports),
                    None => unknown(r),
                }
                if l4 != "th" {
                    r.proto = Some(l4.to_string());
                }
            }
            ("ip" | "ip6", "saddr") => match (nft_addr(&right), neg) {
                (Some(a), true) => r.notes.push(format!("not from {a}")),
                (Some(a), false) if !is_any_addr(&a) => r.src = Some(a),
                (Some(_), false) => {}
                (None, _) => unknown(r),
            },
            ("ip" | "ip6", "daddr") => match nft_addr(&right) {
                Some(a) if positive => r.dst = Some(a),
                _ => unknown(r),
            },
            ("ip", "protocol") | ("ip6", "nexthdr") if positive => match right.as_str() {
                Some(p) => r.proto = Some(proto_name(p)),
                None => unknown(r),
            },
            ("icmp" | "icmpv6", "type") => {
                r.proto = Some(proto.clone());
                r.notes.push(format!("{proto} type {}", compact(&right)));
            }
            _ => unknown(r),
        }
    } else if let Some(meta) = left.get("meta") {
        match (str_of(meta, "key").as_str(), right.as_str()) {
            ("l4proto", Some(p)) if positive => r.proto = Some(proto_name(p)),
            ("iifname" | "iif", Some(i)) if positive => r.iface = Some(i.to_string()),
            ("iifname" | "iif", Some(i)) if neg => r.notes.push(format!("not in {i}")),
            ("nfproto", Some(f)) if positive => r.notes.push(format!("only {f}")),
            _ => unknown(r),
        }
    } else if left.get("ct").is_some_and(|c| str_of(c, "key") == "state") {
        let states: Vec<String> = nft_values(&right, sets)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        if neg {
            // `ct state != established` style: matches new connections unless "new" is excluded.
            if states.iter().any(|s| s == "new") {
                unknown(r);
            }
        } else if positive || op == "&" {
            r.states = Some(states);
        } else {
            unknown(r);
        }
    } else {
        unknown(r);
    }
}
