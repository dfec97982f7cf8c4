//! Ansible's host patterns, as `--limit` takes them: `all`, host and group
//! names, wildcards (`web*`), regular expressions (`~web\d+`), subscripts
//! (`webservers[0]`, `webservers[1:]`), and terms joined by `:` or `,` where
//! `&g` keeps only hosts also in `g` and `!g` removes them (unions first, then
//! intersections, then exclusions, whatever the order written).
//!
//! One difference from Ansible, on purpose: a term that matches no host is an
//! error naming it, not a warning, so a typo never turns a fleet review into a
//! review of fewer servers than the administrator meant.

use std::collections::BTreeSet;

use regex::Regex;

use super::inventory::{Inventory, InventoryError};

/// The hosts `pattern` selects, in inventory order.
pub fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>, InventoryError> {
    let err = |m: String| InventoryError::Pattern(m);
    let mut union: BTreeSet<String> = BTreeSet::new();
    let mut any_union = false;
    let mut intersections = Vec::new();
    let mut exclusions = Vec::new();
    for term in split_terms(pattern) {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        if let Some(t) = term.strip_prefix('!') {
            exclusions.push(matches(inv, t).map_err(err)?);
        } else if let Some(t) = term.strip_prefix('&') {
            let m = matches(inv, t).map_err(err)?;
            if m.is_empty() {
                return Err(err(no_match(inv, t)));
            }
            intersections.push(m);
        } else {
            let m = matches(inv, term).map_err(err)?;
            if m.is_empty() {
                return Err(err(no_match(inv, term)));
            }
            any_union = true;
            union.extend(m);
        }
    }
    if !any_union {
        // `&g` or `!g` alone apply to every host, as in Ansible.
        union.extend(inv.hosts().iter().cloned());
    }
    for i in &intersections {
        union.retain(|h| i.contains(h));
    }
    for x in &exclusions {
        union.retain(|h| !x.contains(h));
    }
    Ok(inv.hosts().iter().filter(|h| union.contains(*h)).cloned().collect())
}

/// Split on `,` when there is one, else on `:` outside brackets (`web[1:3]` is one term).
fn split_terms(pattern: &str) -> Vec<String> {
    let sep = if pattern.contains(',') { ',' } else { ':' };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in pattern.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c == sep && depth == 0 {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Hosts one term names.
fn matches(inv: &Inventory, term: &str) -> Result<BTreeSet<String>, String> {
    // A regular expression first: its brackets are a character class, not a subscript.
    if let Some(re) = term.strip_prefix('~') {
        let re = Regex::new(&format!("^(?:{re})"))
            .map_err(|e| format!("`{term}` is not a valid regular expression: {e}"))?;
        return Ok(by_name(inv, |n| re.is_match(n)));
    }
    if let Some((base, sub)) = subscript(term) {
        let hosts = ordered(inv, &matches(inv, base)?);
        return Ok(slice(&hosts, sub).into_iter().collect());
    }
    if term == "all" || term == "*" {
        return Ok(inv.hosts().iter().cloned().collect());
    }
    if term.contains(['*', '?']) {
        let re = glob(term)?;
        return Ok(by_name(inv, |n| re.is_match(n)));
    }
    if inv.groups().contains_key(term) {
        return Ok(inv.group_hosts(term).into_iter().collect());
    }
    Ok(inv.hosts().iter().filter(|h| *h == term).cloned().collect())
}

/// Hosts of every group whose name matches, and every host whose name matches.
fn by_name(inv: &Inventory, f: impl Fn(&str) -> bool) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = inv.hosts().iter().filter(|h| f(h)).cloned().collect();
    for g in inv.groups().keys().filter(|g| f(g)) {
        out.extend(inv.group_hosts(g));
    }
    out
}

fn ordered(inv: &Inventory, set: &BTreeSet<String>) -> Vec<String> {
    inv.hosts().iter().filter(|h| set.contains(*h)).cloned().collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sub {
    One(i64),
    Range(Option<i64>, Option<i64>),
}

/// `name[0]`, `name[-1]`, `name[1:]`, `name[:3]`, `name[0:2]`.
fn subscript(term: &str) -> Option<(&str, Sub)> {
    let inner = term.strip_suffix(']')?;
    let (base, idx) = inner.rsplit_once('[')?;
    if base.is_empty() {
        return None;
    }
    let num = |s: &str| if s.is_empty() { Some(None) } else { s.parse::<i64>().ok().map(Some) };
    match idx.split_once(':') {
        None => idx.parse::<i64>().ok().map(|i| (base, Sub::One(i))),
        Some((a, b)) => Some((base, Sub::Range(num(a)?, num(b)?))),
    }
}

/// Python's indexing and slicing, as Ansible uses them.
fn slice(hosts: &[String], sub: Sub) -> Vec<String> {
    let n = hosts.len() as i64;
    let norm = |i: i64| if i < 0 { (n + i).max(0) } else { i.min(n) };
    match sub {
        Sub::One(i) => {
            let i = if i < 0 { n + i } else { i };
            if (0..n).contains(&i) { vec![hosts[i as usize].clone()] } else { Vec::new() }
        }
        Sub::Range(a, b) => {
            let (a, b) = (norm(a.unwrap_or(0)), norm(b.unwrap_or(n)));
            if a >= b { Vec::new() } else { hosts[a as usize..b as usize].to_vec() }
        }
    }
}

/// A shell-style wildcard (`*`, `?`) as an anchored regular expression.
fn glob(p: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    for c in p.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("`{p}` is not a valid wildcard: {e}"))
}

fn no_match(inv: &Inventory, term: &str) -> String {
    let mut names: Vec<&String> = inv.groups().keys().chain(inv.hosts().iter()).collect();
    names.sort_by_key(|n| strsim(n, term));
    let close: Vec<&str> = names.iter().take(3).map(|s| s.as_str()).collect();
    format!("no host or group matches `{term}` (closest names: {})", close.join(", "))
}

/// Edit distance, for suggesting the names a typo meant.
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
