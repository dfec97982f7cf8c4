//! `iptables-save` text (also ufw's `user.rules` and `rules.v4`): tables, chains
//! and rules, and the hand-over to ufw's chains in a table ufw manages.

use super::*;

/// Split a line into words, honouring double and single quotes.
pub(super) fn words(line: &str) -> Vec<String> {
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

pub(super) fn proto_name(p: &str) -> String {
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
