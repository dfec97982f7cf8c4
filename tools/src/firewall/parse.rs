//! Parsers from what each firewall prints or stores into [`Table`]s:
//! `iptables-save` text (also ufw's `user.rules` and `rules.v4`), `nft -j list
//! ruleset` JSON, nftables configuration text (`/etc/nftables.conf`), ufw's
//! `status verbose` and its `### tuple ###` lines, and firewalld's
//! `--list-all`. Every parser is total: what it does not understand becomes
//! an `extra` condition (so the rule never counts as applying), never a panic.

use std::collections::HashMap;

use serde_json::Value;

use super::model::{Chain, Family, Rule, Table, Target, is_any_addr, parse_ports};

// ---------------------------------------------------------------- iptables

/// Split a line into words, honouring double and single quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
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

/// The `filter` table of `iptables-save` output (or a `rules.v4` / ufw
/// `user.rules` file). `None` when the text has no filter table.
pub fn iptables_save(text: &str, backend: &str, source: &str, family: Family) -> Option<Table> {
    let mut table: Option<Table> = None;
    let mut in_filter = false;
    let mut pending: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('*') {
            in_filter = name == "filter";
            if in_filter && table.is_none() {
                table = Some(Table::new(backend, source, family, "filter"));
            }
            continue;
        }
        if !in_filter {
            continue;
        }
        let Some(t) = table.as_mut() else { continue };
        if let Some(decl) = line.strip_prefix(':') {
            let mut it = decl.split_whitespace();
            let Some(name) = it.next() else { continue };
            let policy = match it.next() {
                Some("DROP") => Some(Target::Drop),
                Some("ACCEPT") => Some(Target::Accept),
                _ => None,
            };
            let chain = t.chains.entry(name.to_string()).or_default();
            chain.policy = policy;
            chain.input_hook = name == "INPUT";
        } else if line.starts_with("-A ") || line.starts_with("-I ") {
            let w = words(line);
            if w.len() >= 2 {
                pending.push((w[1].clone(), w[2..].to_vec()));
            }
        }
    }
    let mut t = table?;
    for (chain, args) in pending {
        let rule = iptables_rule(&args, |c| t.chains.contains_key(c));
        t.chains.entry(chain).or_default().rules.push(rule);
    }
    Some(t)
}

/// One `-A CHAIN` rule's arguments.
pub fn iptables_rule(args: &[String], is_chain: impl Fn(&str) -> bool) -> Rule {
    let mut r = Rule::new(Target::Continue("continue".into()));
    let mut i = 0;
    let mut negate = false;
    let mut module = String::new();
    let mut module_opts: Vec<String> = Vec::new();
    let flush_module = |module: &str, opts: &mut Vec<String>, r: &mut Rule| {
        if opts.is_empty() {
            return;
        }
        let text = format!("{module} {}", opts.join(" "));
        opts.clear();
        match module {
            "limit" | "hashlimit" => r.notes.push(text),
            "recent" if text.contains("--set") => r.notes.push(text),
            "addrtype" if text.contains("--dst-type LOCAL") && !text.contains("--src-type") => {}
            _ => r.extra.push(text),
        }
    };
    while i < args.len() {
        let a = args[i].as_str();
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match a {
            "!" => {
                negate = true;
                i += 1;
                continue;
            }
            "-p" | "--protocol" => {
                if negate {
                    r.extra.push(format!("not proto {val}"));
                } else if val != "all" {
                    r.proto = Some(proto_name(&val));
                }
                i += 2;
            }
            "-s" | "--source" | "--src" => {
                if negate {
                    r.notes.push(format!("not from {val}"));
                } else if !is_any_addr(&val) {
                    r.src = Some(val);
                }
                i += 2;
            }
            "-d" | "--destination" | "--dst" => {
                if negate {
                    r.extra.push(format!("not to {val}"));
                } else if !is_any_addr(&val) {
                    r.dst = Some(val);
                }
                i += 2;
            }
            "-i" | "--in-interface" => {
                if negate {
                    r.notes.push(format!("not in {val}"));
                } else {
                    r.iface = Some(val);
                }
                i += 2;
            }
            "-o" | "--out-interface" => {
                r.extra.push(format!("out {val}"));
                i += 2;
            }
            "-m" | "--match" => {
                flush_module(&module, &mut module_opts, &mut r);
                module = val;
                i += 2;
            }
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                match (negate, parse_ports(&val)) {
                    (false, Some(p)) => r.dports = Some(p),
                    _ => r.extra.push(format!("dport {}{val}", if negate { "! " } else { "" })),
                }
                i += 2;
            }
            "--ctstate" | "--state" => {
                if negate {
                    r.extra.push(format!("state ! {val}"));
                } else {
                    r.states = Some(val.split(',').map(|s| s.to_ascii_lowercase()).collect());
                }
                i += 2;
            }
            "--comment" => i += 2,
            "--icmp-type" | "--icmpv6-type" => {
                r.notes.push(format!("icmp type {val}"));
                i += 2;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                flush_module(&module, &mut module_opts, &mut r);
                module.clear();
                r.target = match (a, val.as_str()) {
                    (_, "ACCEPT") => Target::Accept,
                    (_, "DROP") => Target::Drop,
                    (_, "REJECT") => Target::Reject,
                    (_, "RETURN") => Target::Return,
                    ("-g" | "--goto", c) => Target::Goto(c.to_string()),
                    (_, c) if is_chain(c) => Target::Jump(c.to_string()),
                    (_, c) => Target::Continue(c.to_string()),
                };
                // The target's own options (--reject-with, --log-prefix…) are not conditions.
                i += 2;
                while i < args.len() && args[i].starts_with("--") {
                    i += 1;
                    while i < args.len() && !args[i].starts_with('-') && args[i] != "!" {
                        i += 1;
                    }
                }
                continue;
            }
            _ if a.starts_with('-') => {
                // An option of the current match module, with its values.
                let mut opt = if negate { format!("! {a}") } else { a.to_string() };
                i += 1;
                while i < args.len() && !args[i].starts_with('-') && args[i] != "!" {
                    opt.push(' ');
                    opt.push_str(&args[i]);
                    i += 1;
                }
                if module.is_empty() {
                    r.extra.push(opt);
                } else {
                    module_opts.push(opt);
                }
            }
            _ => i += 1,
        }
        negate = false;
    }
    flush_module(&module, &mut module_opts, &mut r);
    r
}

fn proto_name(p: &str) -> String {
    match p {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" | "ipv6-icmp" => "icmpv6".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// In a table that ufw manages, hand the decision to ufw's rules at the first
/// jump into a ufw chain and leave ufw's own chains out (they are reviewed as
/// ufw rules, not as dozens of boilerplate iptables lines).
pub fn delegate_to_ufw(t: &mut Table) {
    let is_ufw = |c: &str| c.starts_with("ufw-") || c.starts_with("ufw6-");
    if !t.chains.keys().any(|c| is_ufw(c)) {
        return;
    }
    t.chains.retain(|name, _| !is_ufw(name));
    for chain in t.chains.values_mut() {
        let mut handed = false;
        chain.rules.retain_mut(|r| match &r.target {
            Target::Jump(c) | Target::Goto(c) if is_ufw(c) => {
                if handed {
                    false
                } else {
                    handed = true;
                    r.target = Target::Ufw;
                    true
                }
            }
            _ => true,
        });
    }
}

// ---------------------------------------------------------------- nftables JSON

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

fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn nft_json_rule(exprs: &[Value], sets: &dyn Fn(&str) -> Option<Vec<Value>>) -> Rule {
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

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}

/// The values of a match's right side: a scalar, a list, an anonymous or named set.
fn nft_values(v: &Value, sets: &dyn Fn(&str) -> Option<Vec<Value>>) -> Option<Vec<Value>> {
    match v {
        Value::String(s) if s.starts_with('@') => sets(&s[1..]),
        Value::Array(a) => Some(a.clone()),
        Value::Object(o) if o.contains_key("set") => o.get("set").and_then(Value::as_array).cloned(),
        other => Some(vec![other.clone()]),
    }
}

fn nft_port_ranges(vals: &[Value]) -> Option<Vec<(u16, u16)>> {
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

fn nft_addr(v: &Value) -> Option<String> {
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

fn nft_json_match(r: &mut Rule, m: &Value, sets: &dyn Fn(&str) -> Option<Vec<Value>>) {
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

// ---------------------------------------------------------------- nftables text

fn service_port(s: &str) -> Option<u16> {
    if let Ok(p) = s.parse() {
        return Some(p);
    }
    Some(match s {
        "ssh" => 22,
        "smtp" => 25,
        "domain" => 53,
        "http" => 80,
        "pop3" => 110,
        "imap" | "imap2" => 143,
        "https" => 443,
        "submissions" | "smtps" => 465,
        "submission" => 587,
        "imaps" => 993,
        "pop3s" => 995,
        "mysql" => 3306,
        "postgresql" => 5432,
        "ntp" => 123,
        _ => return None,
    })
}

/// nftables configuration text (`/etc/nftables.conf`): its tables, with
/// `include` files read through `include` (a glob → the texts, in order).
pub fn nft_text(text: &str, source: &str, include: &dyn Fn(&str) -> Vec<String>) -> Vec<Table> {
    let mut defines: HashMap<String, String> = HashMap::new();
    let mut tables: Vec<Table> = Vec::new();
    nft_text_into(text, source, include, &mut defines, &mut tables, 0);
    tables
}

fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut q = false;
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' {
                q = !q;
            } else if c == '#' && !q {
                cut = i;
                break;
            }
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

/// Tokens: words, quoted strings, and the punctuation `{ } ; , \n`.
fn nft_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    for c in text.chars() {
        if q {
            cur.push(c);
            if c == '"' {
                q = false;
            }
            continue;
        }
        match c {
            '"' => {
                cur.push(c);
                q = true;
            }
            '{' | '}' | ';' | ',' | '\n' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn family_of(f: &str) -> Option<Family> {
    match f {
        "ip" => Some(Family::V4),
        "ip6" => Some(Family::V6),
        "inet" => Some(Family::Both),
        _ => None,
    }
}

fn nft_text_into(
    text: &str,
    source: &str,
    include: &dyn Fn(&str) -> Vec<String>,
    defines: &mut HashMap<String, String>,
    tables: &mut Vec<Table>,
    depth: u8,
) {
    let text = strip_comments(text);
    // `define NAME = value` lines first (they may be used before a table).
    let mut body = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(d) = l.strip_prefix("define ") {
            if let Some((k, v)) = d.split_once('=') {
                defines.insert(k.trim().to_string(), v.trim().trim_end_matches(';').to_string());
            }
            body.push('\n');
        } else if let Some(inc) = l.strip_prefix("include ") {
            if depth < 8 {
                for t in include(inc.trim().trim_matches('"')) {
                    nft_text_into(&t, source, include, defines, tables, depth + 1);
                }
            }
            body.push('\n');
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    let mut toks = nft_tokens(&body);
    // Substitute variables (longest names first so `$a` does not eat `$ab`).
    let mut names: Vec<&String> = defines.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for t in toks.iter_mut() {
        if let Some(n) = names.iter().find(|n| t.as_str() == format!("${n}")) {
            *t = defines[*n].clone();
        }
    }
    let toks: Vec<String> = nft_tokens(&toks.join(" ")).into_iter().collect();
    let mut i = 0;
    while i < toks.len() {
        match toks[i].as_str() {
            "table" if i + 2 < toks.len() && toks.get(i + 3).map(String::as_str) == Some("{") => {
                let (fam, name) = (toks[i + 1].clone(), toks[i + 2].clone());
                let end = matching_brace(&toks, i + 3);
                if let Some(family) = family_of(&fam) {
                    let full = format!("{fam} {name}");
                    let idx = match tables.iter().position(|t| t.name == full) {
                        Some(x) => x,
                        None => {
                            tables.push(Table::new("nftables", source, family, &full));
                            tables.len() - 1
                        }
                    };
                    nft_table_body(&toks[i + 4..end], &mut tables[idx]);
                }
                i = end + 1;
            }
            "table" if i + 1 < toks.len() && toks.get(i + 2).map(String::as_str) == Some("{") => {
                // `table NAME {` means family ip.
                let name = toks[i + 1].clone();
                let end = matching_brace(&toks, i + 2);
                let full = format!("ip {name}");
                tables.push(Table::new("nftables", source, Family::V4, &full));
                let idx = tables.len() - 1;
                nft_table_body(&toks[i + 3..end], &mut tables[idx]);
                i = end + 1;
            }
            "add" | "insert" if toks.get(i + 1).map(String::as_str) == Some("rule") => {
                let end = statement_end(&toks, i);
                let st = &toks[i + 2..end];
                if st.len() > 3 {
                    if let Some(family) = family_of(&st[0]) {
                        let full = format!("{} {}", st[0], st[1]);
                        let idx = match tables.iter().position(|t| t.name == full) {
                            Some(x) => x,
                            None => {
                                tables.push(Table::new("nftables", source, family, &full));
                                tables.len() - 1
                            }
                        };
                        let rule = nft_text_rule(&st[3..]);
                        tables[idx].chains.entry(st[2].clone()).or_default().rules.push(rule);
                    }
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
}

fn matching_brace(toks: &[String], open: usize) -> usize {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    toks.len().saturating_sub(1).max(open)
}

/// End (exclusive index of the `;`/newline) of the statement starting at `start`.
fn statement_end(toks: &[String], start: usize) -> usize {
    let mut depth = 0i32;
    let mut j = start;
    while j < toks.len() {
        match toks[j].as_str() {
            "{" => depth += 1,
            "}" if depth == 0 => return j,
            "}" => depth -= 1,
            ";" | "\n" if depth == 0 => return j,
            _ => {}
        }
        j += 1;
    }
    j
}

fn nft_table_body(toks: &[String], table: &mut Table) {
    // Named sets first: rules refer to them as `@name`.
    let mut sets: HashMap<String, Vec<String>> = HashMap::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i] == "set" && i + 2 < toks.len() && toks[i + 2] == "{" {
            let end = matching_brace(toks, i + 2);
            let body = &toks[i + 3..end.min(toks.len())];
            if let Some(e) = body.iter().position(|t| t == "elements") {
                if let Some(open) = body[e..].iter().position(|t| t == "{").map(|o| o + e) {
                    let close = matching_brace(body, open);
                    let elems = body[open + 1..close].iter().filter(|t| *t != "," && *t != "\n").cloned().collect();
                    sets.insert(toks[i + 1].clone(), elems);
                }
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    let mut i = 0;
    while i < toks.len() {
        if toks[i] == "chain" && i + 2 < toks.len() && toks[i + 2] == "{" {
            let name = toks[i + 1].clone();
            let end = matching_brace(toks, i + 2);
            let mut chain = table.chains.remove(&name).unwrap_or_default();
            nft_chain_body(&toks[i + 3..end.min(toks.len())], &mut chain, &sets);
            table.chains.insert(name, chain);
            i = end + 1;
        } else if (toks[i] == "set" || toks[i] == "map") && i + 2 < toks.len() && toks[i + 2] == "{" {
            i = matching_brace(toks, i + 2) + 1;
        } else {
            i += 1;
        }
    }
}

fn nft_chain_body(toks: &[String], chain: &mut Chain, sets: &HashMap<String, Vec<String>>) {
    let mut i = 0;
    while i < toks.len() {
        let end = statement_end(toks, i);
        let st: Vec<&str> = toks[i..end].iter().map(String::as_str).collect();
        i = end + 1;
        if st.is_empty() {
            continue;
        }
        match st[0] {
            "type" => {
                if st.contains(&"hook") && st.windows(2).any(|w| w == ["hook", "input"]) && st.get(1) == Some(&"filter")
                {
                    chain.input_hook = true;
                    chain.policy.get_or_insert(Target::Accept);
                }
            }
            "policy" => {
                chain.policy = Some(if st.get(1) == Some(&"drop") { Target::Drop } else { Target::Accept });
            }
            "comment" | "devices" => {}
            _ => {
                // Substitute named sets as anonymous ones.
                let mut owned: Vec<String> = Vec::new();
                for w in &st {
                    match w.strip_prefix('@').and_then(|n| sets.get(n)) {
                        Some(elems) => {
                            owned.push("{".into());
                            for (k, e) in elems.iter().enumerate() {
                                if k > 0 {
                                    owned.push(",".into());
                                }
                                owned.push(e.clone());
                            }
                            owned.push("}".into());
                        }
                        None => owned.push(w.to_string()),
                    }
                }
                chain.rules.push(nft_text_rule(&owned));
            }
        }
    }
}

/// Read one value after a keyword: a word, or a `{ … }` group. Returns the
/// words and the index after the value.
fn nft_value(st: &[String], i: usize) -> (Vec<String>, usize, bool) {
    let mut i = i;
    let mut neg = false;
    if st.get(i).map(String::as_str) == Some("!=") {
        neg = true;
        i += 1;
    } else if st.get(i).map(String::as_str) == Some("==") {
        i += 1;
    }
    match st.get(i).map(String::as_str) {
        Some("{") => {
            let end = matching_brace(st, i);
            let vals = st[i + 1..end].iter().filter(|t| *t != "," && *t != "\n").cloned().collect();
            (vals, end + 1, neg)
        }
        Some(v) => {
            // `established,related` arrives as words separated by `,` tokens.
            let mut vals: Vec<String> = vec![v.to_string()];
            let mut j = i + 1;
            while st.get(j).map(String::as_str) == Some(",") && st.get(j + 1).is_some_and(|w| w != "{" && w != "\n") {
                vals.push(st[j + 1].clone());
                j += 2;
            }
            (vals, j, neg)
        }
        None => (Vec::new(), i, neg),
    }
}

/// One rule statement of nftables text (`tcp dport { 22, 80 } ct state new accept`).
pub fn nft_text_rule(st: &[String]) -> Rule {
    let mut r = Rule::new(Target::Continue("continue".into()));
    let mut i = 0;
    let kw = |s: &str| -> bool {
        matches!(
            s,
            "tcp"
                | "udp"
                | "sctp"
                | "th"
                | "meta"
                | "ip"
                | "ip6"
                | "iif"
                | "iifname"
                | "oif"
                | "oifname"
                | "ct"
                | "counter"
                | "log"
                | "limit"
                | "comment"
                | "accept"
                | "drop"
                | "reject"
                | "jump"
                | "goto"
                | "return"
                | "continue"
                | "icmp"
                | "icmpv6"
                | "l4proto"
        )
    };
    while i < st.len() {
        let t = st[i].as_str();
        let next = st.get(i + 1).map(String::as_str).unwrap_or("");
        match t {
            "tcp" | "udp" | "sctp" | "th" if next == "dport" => {
                let (vals, j, neg) = nft_value(st, i + 2);
                let ports: Option<Vec<(u16, u16)>> = vals
                    .iter()
                    .map(|v| match v.split_once('-') {
                        Some((a, b)) => Some((service_port(a)?, service_port(b)?)),
                        None => service_port(v).map(|p| (p, p)),
                    })
                    .collect();
                match (ports, neg) {
                    (Some(p), false) if !p.is_empty() => r.dports = Some(p),
                    _ => r.extra.push(format!("{t} dport {}{}", if neg { "!= " } else { "" }, vals.join(","))),
                }
                if t != "th" {
                    r.proto = Some(t.to_string());
                }
                i = j;
            }
            "meta" | "ip" | "ip6" if matches!(next, "l4proto" | "protocol" | "nexthdr") => {
                let (vals, j, neg) = nft_value(st, i + 2);
                if vals.len() == 1 && !neg {
                    r.proto = Some(proto_name(&vals[0]));
                } else {
                    r.extra.push(format!("{t} {next} {}", vals.join(",")));
                }
                i = j;
            }
            "l4proto" => {
                let (vals, j, _) = nft_value(st, i + 1);
                r.proto = vals.first().map(|p| proto_name(p));
                i = j;
            }
            "ip" | "ip6" if next == "saddr" || next == "daddr" => {
                let (vals, j, neg) = nft_value(st, i + 2);
                let a = vals.join(",");
                match (next, neg) {
                    ("saddr", true) => r.notes.push(format!("not from {a}")),
                    ("saddr", false) if !is_any_addr(&a) => r.src = Some(a),
                    ("daddr", false) => r.dst = Some(a),
                    ("daddr", true) => r.extra.push(format!("not to {a}")),
                    _ => {}
                }
                i = j;
            }
            "iif" | "iifname" | "meta" if t != "meta" || matches!(next, "iif" | "iifname") => {
                let at = if t == "meta" { i + 2 } else { i + 1 };
                let (vals, j, neg) = nft_value(st, at);
                let name = vals.join(",").trim_matches('"').to_string();
                if neg {
                    r.notes.push(format!("not in {name}"));
                } else {
                    r.iface = Some(name);
                }
                i = j;
            }
            "ct" if next == "state" => {
                let (vals, j, neg) = nft_value(st, i + 2);
                if neg {
                    if vals.iter().any(|v| v == "new") {
                        r.extra.push(format!("ct state != {}", vals.join(",")));
                    }
                } else {
                    r.states = Some(vals.iter().map(|v| v.to_ascii_lowercase()).collect());
                }
                i = j;
            }
            "icmp" | "icmpv6" => {
                r.proto = Some(t.to_string());
                let (vals, j, _) = nft_value(st, i + 2);
                r.notes.push(format!("{t} {next} {}", vals.join(",")));
                i = j;
            }
            "counter" => {
                i += 1;
                while i < st.len() && (st[i] == "packets" || st[i] == "bytes") {
                    i += 2;
                }
            }
            "log" | "limit" | "comment" => {
                let mut words = vec![t.to_string()];
                i += 1;
                while i < st.len() && !kw(&st[i]) {
                    words.push(st[i].clone());
                    i += 1;
                }
                if t == "limit" {
                    r.notes.push(words.join(" "));
                }
            }
            "accept" => {
                r.target = Target::Accept;
                i += 1;
            }
            "drop" => {
                r.target = Target::Drop;
                i += 1;
            }
            "reject" => {
                r.target = Target::Reject;
                i = st.len();
            }
            "return" => {
                r.target = Target::Return;
                i += 1;
            }
            "jump" | "goto" => {
                let c = next.to_string();
                r.target = if t == "jump" { Target::Jump(c) } else { Target::Goto(c) };
                i += 2;
            }
            "\n" | ";" => i += 1,
            _ => {
                let mut words = vec![t.to_string()];
                i += 1;
                while i < st.len() && !kw(&st[i]) {
                    words.push(st[i].clone());
                    i += 1;
                }
                r.extra.push(words.join(" "));
            }
        }
    }
    r
}

// ---------------------------------------------------------------- ufw

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

fn ufw_action(a: &str) -> Option<Target> {
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

fn ufw_status_to(r: &mut Rule, to: &str) {
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

// ---------------------------------------------------------------- firewalld

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

fn firewalld_rich(l: &str) -> Rule {
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
