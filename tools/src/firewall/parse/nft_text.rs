//! nftables configuration text (`/etc/nftables.conf`): `define`s, `include`s,
//! tables, chains, sets and rules, tokenized as nft reads them.

use super::*;

pub(super) fn service_port(s: &str) -> Option<u16> {
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

pub(super) fn strip_comments(text: &str) -> String {
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
pub(super) fn nft_tokens(text: &str) -> Vec<String> {
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

pub(super) fn family_of(f: &str) -> Option<Family> {
    match f {
        "ip" => Some(Family::V4),
        "ip6" => Some(Family::V6),
        "inet" => Some(Family::Both),
        _ => None,
    }
}

pub(super) fn nft_text_into(
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

pub(super) fn matching_brace(toks: &[String], open: usize) -> usize {
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
pub(super) fn statement_end(toks: &[String], start: usize) -> usize {
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

pub(super) fn nft_table_body(toks: &[String], table: &mut Table) {
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

pub(super) fn nft_chain_body(toks: &[String], chain: &mut Chain, sets: &HashMap<String, Vec<String>>) {
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
pub(super) fn nft_value(st: &[String], i: usize) -> (Vec<String>, usize, bool) {
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
