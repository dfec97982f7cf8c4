//! The module import graph of both crates, read from the source: no cycles,
//! and no read-only module importing a mutating one.
//!
//! Each `.rs` file under `src/` and `tools/src/` is a module. Every path a
//! module names (`use crate::a::b`, `super::c`, an inline `crate::x::f()`) is
//! resolved to the module it points into. Two modules under the same parent
//! form an edge between those siblings (a module and its own submodules may
//! use each other: that is one module's inside). The sibling graph under every
//! parent must have no cycle, so a layer can be read, tested and moved without
//! the one it depends on depending back on it. In the tools crate only the
//! mutating modules (`fixes`, `wpupdate`) and the registry that lists every
//! tool may import `fixes` or `wpupdate`: a review must not reach the updater.
//! Test code (`tests.rs`, `*_tests.rs`, a trailing `#[cfg(test)] mod`) is left
//! out: a test may import anything. See docs/architecture.md.
#![allow(clippy::disallowed_methods, reason = "the test reads vigil's own source files with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The mutating modules of the tools crate, and the modules that may import them.
const MUTATING: &[&str] = &["fixes", "wpupdate"];
const MAY_IMPORT_MUTATING: &[&str] = &["registry", "fixes", "wpupdate"];

/// Cycles known and being removed, as `crate: parent: members`. Each must still occur (the
/// test fails once it is gone, so the entry is deleted with the cycle) and nothing else may.
/// Cycles tolerated for now (none: the last, `fixes` <-> `wpupdate`, went when the
/// shared change helpers moved to `change`).
const KNOWN_CYCLES: &[&str] = &[];

type Module = Vec<String>;

struct Graph {
    /// Every module of the crate.
    modules: BTreeSet<Module>,
    /// module → modules it names (resolved, as written).
    refs: BTreeMap<Module, BTreeSet<Module>>,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

fn is_test_file(m: &Module) -> bool {
    m.last().is_some_and(|s| s == "tests" || s.ends_with("_tests") || s == "testutil")
}

/// The file's code without comments, string contents and its trailing test module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") && lines.peek().is_some_and(|n| n.trim_start().starts_with("mod ")) {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    strip_strings(&out)
}

fn strip_strings(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    let mut chars = s.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        if in_str {
            if c == '\\' {
                chars.next();
            } else if c == '"' {
                in_str = false;
                out.push('"');
            }
            continue;
        }
        if c == '"' && prev != '\'' {
            in_str = true;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            // A trailing comment: skip to the end of the line.
            for n in chars.by_ref() {
                if n == '\n' {
                    out.push('\n');
                    break;
                }
            }
            prev = '\n';
            continue;
        }
        out.push(c);
        prev = c;
    }
    out
}

/// Expand a `use` tree (`crate::{a::b, c::{d, e}}`) into whole paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(&tree).to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.iter().filter(|p| !p.is_empty()).flat_map(|p| expand_use(&format!("{prefix}{p}"))).collect()
}

/// Every path the code names starting with `crate`, `super` or `self`.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let after = &rest[i + 4..];
        if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
            if let Some(end) = after.find(';') {
                out.extend(expand_use(&after[..end]));
            }
        }
        rest = after;
    }
    let bytes = code.as_bytes();
    for kw in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(kw) {
            let at = from + i;
            from = at + kw.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[at..end].trim_end_matches(':').to_string());
        }
    }
    out
}

/// The module a path points into, seen from `from` (`from_is_dir`: `mod.rs`/`lib.rs`).
fn resolve(path: &str, from: &Module, from_is_dir: bool, modules: &BTreeSet<Module>) -> Option<Module> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Module;
    let mut i = 0;
    match segs.first() {
        Some(&"crate") => {
            base = Vec::new();
            i = 1;
        }
        Some(&"super") | Some(&"self") => {
            // A file `a/b.rs` is module a::b; its `self` is a::b, its `super` is a.
            base = from.clone();
            let _ = from_is_dir;
            while let Some(&s) = segs.get(i) {
                match s {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                i += 1;
            }
        }
        _ => return None,
    }
    let mut best = base.clone();
    for s in &segs[i..] {
        base.push((*s).to_string());
        if modules.contains(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

fn graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rs_files(root, &mut files);
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(root, f)).collect();
    let mut refs: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for f in &files {
        let m = module_of(root, f);
        if is_test_file(&m) || f.file_name().is_some_and(|n| n == "main.rs") {
            continue;
        }
        let is_dir = f.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        let entry = refs.entry(m.clone()).or_default();
        for p in paths_in(&code) {
            if let Some(to) = resolve(&p, &m, is_dir, &modules) {
                entry.insert(to);
            }
        }
    }
    Graph { modules, refs }
}

fn name(m: &[String]) -> String {
    if m.is_empty() { "crate".to_string() } else { m.join("::") }
}

/// Edges between siblings: `a::x::…` naming `a::y::…` is the edge x → y under `a`.
fn sibling_edges(g: &Graph) -> BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, tos) in &g.refs {
        for to in tos {
            let common = from.iter().zip(to.iter()).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue; // a module and its own submodules
            }
            out.entry(from[..common].to_vec())
                .or_default()
                .entry(from[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }
    out
}

/// Nodes reachable from `n` (not counting `n` itself unless it is on a cycle).
fn reachable(n: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = edges.get(n).into_iter().flatten().map(String::as_str).collect();
    while let Some(x) = todo.pop() {
        if seen.insert(x.to_string()) {
            todo.extend(edges.get(x).into_iter().flatten().map(String::as_str));
        }
    }
    seen
}

/// Every group of sibling modules that reach each other, with the uses that tie them.
fn cycles(g: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for (parent, edges) in sibling_edges(g) {
        let reach: BTreeMap<&String, BTreeSet<String>> = edges.keys().map(|n| (n, reachable(n, &edges))).collect();
        let mut done = BTreeSet::new();
        for (n, r) in &reach {
            if done.contains(*n) || !r.contains(*n) {
                continue;
            }
            let group: BTreeSet<String> =
                r.iter().filter(|m| reach.get(m).is_some_and(|rm| rm.contains(*n))).cloned().collect();
            done.extend(group.iter().cloned());
            let mut why = Vec::new();
            for (from, tos) in &g.refs {
                let Some(a) = from.get(parent.len()).filter(|a| from.starts_with(&parent) && group.contains(*a)) else {
                    continue;
                };
                for to in tos {
                    let b = to.get(parent.len()).filter(|b| to.starts_with(&parent) && group.contains(*b) && b != &a);
                    if b.is_some() {
                        why.push(format!("    {} uses {}", name(from), name(to)));
                    }
                }
            }
            let members: Vec<&str> = group.iter().map(String::as_str).collect();
            problems.push(format!(
                "cycle under `{}` between {}:\n{}",
                name(&parent),
                members.join(", "),
                why.join("\n")
            ));
        }
    }
    problems
}

fn crate_root(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(sub)
}

#[test]
fn no_module_import_cycle_in_either_crate() {
    let mut problems = Vec::new();
    let mut known_seen = Vec::new();
    for (krate, dir) in [("vigil", "src"), ("vigil-tools", "tools/src")] {
        let g = graph(&crate_root(dir));
        assert!(g.modules.len() > 20, "{krate}: only {} modules found under {dir}", g.modules.len());
        let edges: usize = sibling_edges(&g).values().flat_map(|e| e.values()).map(BTreeSet::len).sum();
        eprintln!("{krate}: {} modules, {edges} edges between sibling modules", g.modules.len());
        for c in cycles(&g) {
            let key = format!("{krate}: {}", c.lines().next().unwrap_or(""));
            match KNOWN_CYCLES.iter().find(|k| key == cycle_key(k)) {
                Some(k) => known_seen.push(*k),
                None => problems.push(format!("{krate}: {c}")),
            }
        }
    }
    assert!(problems.is_empty(), "import cycles:\n{}", problems.join("\n"));
    let gone: Vec<_> = KNOWN_CYCLES.iter().filter(|k| !known_seen.contains(k)).collect();
    assert!(gone.is_empty(), "these known cycles are gone: delete them from KNOWN_CYCLES: {gone:?}");
}

/// `crate: parent: a, b` as the first line `cycles` prints for it.
fn cycle_key(known: &str) -> String {
    let mut parts = known.splitn(3, ": ");
    let (krate, parent, members) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    format!("{krate}: cycle under `{parent}` between {members}:")
}

/// Uses of `fixes` or `wpupdate` from a module that is neither (nor the registry).
fn mutating_imports(g: &Graph) -> Vec<String> {
    let mut bad = Vec::new();
    for (from, tos) in &g.refs {
        let Some(top) = from.first() else { continue };
        if MAY_IMPORT_MUTATING.contains(&top.as_str()) {
            continue;
        }
        for to in tos {
            if to.first().is_some_and(|t| MUTATING.contains(&t.as_str())) {
                bad.push(format!("{} uses {}", name(from), name(to)));
            }
        }
    }
    bad
}

#[test]
fn read_only_tools_never_import_the_mutating_ones() {
    let bad = mutating_imports(&graph(&crate_root("tools/src")));
    assert!(bad.is_empty(), "read-only modules importing mutating ones:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_a_planted_cycle_and_a_planted_import() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod inner;\nuse crate::{x::y, b::{self, f}};\n").unwrap();
    std::fs::write(src.join("a/inner.rs"), "use super::super::c::g; // crate::b in a comment\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub fn f() { let _ = \"crate::a\"; }\n").unwrap();
    std::fs::write(src.join("c.rs"), "pub fn g() { crate::a::h(); }\n").unwrap();
    let g = graph(src);
    let found = cycles(&g);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("between a, c:"), "{}", found[0]);
    assert!(found[0].contains("a::inner uses c"), "{}", found[0]);
    assert!(!found[0].contains("b uses"), "comments and strings are not imports: {}", found[0]);
    std::fs::write(src.join("c.rs"), "pub fn g() {}\n#[cfg(test)]\nmod tests {\n use crate::a::h;\n}\n").unwrap();
    assert!(cycles(&graph(src)).is_empty(), "a test module may import anything");
    std::fs::create_dir_all(src.join("wpupdate")).unwrap();
    std::fs::write(src.join("wpupdate/mod.rs"), "pub fn fmt_time() {}\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub fn f() { crate::wpupdate::fmt_time(); }\n").unwrap();
    assert_eq!(mutating_imports(&graph(src)), vec!["b uses wpupdate"]);
}

/// Only the registry, after comparing the plan with the approved one, makes the proof a
/// change's `execute` needs: no other module of the tools crate calls its constructor.
#[test]
fn only_the_registry_makes_the_proof_a_plan_was_compared() {
    let mut files = Vec::new();
    rs_files(&crate_root("tools/src"), &mut files);
    let callers: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("compared.rs"))
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("Compared::by_the_registry"))
        .map(|f| f.display().to_string())
        .collect();
    assert_eq!(callers.len(), 1, "{callers:?}");
    assert!(callers[0].ends_with("tools/src/registry.rs"), "{callers:?}");
}
