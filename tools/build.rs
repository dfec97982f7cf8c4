//! Build script: the catalogue of finding ids the checks can produce.
//!
//! Every string literal in `src/` shaped like a finding id (`ports.exposed-datastore`:
//! one of the seven category prefixes, a dot, lowercase words joined by `-`) is collected
//! into `OUT_DIR/finding_ids.rs`, so `vigil ack` can refuse an id no check produces and
//! suggest the closest ones. Collecting from the source keeps the list from going stale:
//! a new check's id is in it the moment the check is written.
//!
//! It also probes the components the crate's system tests name (`vigil_testkit`):
//! a test whose component this machine lacks is listed as ignored, with its reason.
#![allow(clippy::disallowed_methods, reason = "the build script reads this crate's own source, not an audited file")]

use std::collections::BTreeSet;
use std::path::Path;

const PREFIXES: &[&str] = &["credentials", "updates", "hardening", "backups", "ports", "containers", "accounts"];

fn is_id(s: &str) -> bool {
    let Some((prefix, rest)) = s.split_once('.') else { return false };
    PREFIXES.contains(&prefix)
        && !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && rest.starts_with(|c: char| c.is_ascii_lowercase())
}

fn scan(dir: &Path, ids: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            scan(&p, ids);
        } else if p.extension().is_some_and(|x| x == "rs") && p.file_name().is_some_and(|n| n != "tests.rs") {
            // (tests.rs files plant made-up ids; inline test modules use real ones)
            println!("cargo:rerun-if-changed={}", p.display());
            let Ok(text) = std::fs::read_to_string(&p) else { continue };
            // Look for `"prefix.` and read to the closing quote: counting quotes from the start of
            // the file would be thrown off by `'"'` and escaped quotes.
            for prefix in PREFIXES {
                let open = format!("\"{prefix}.");
                for (at, _) in text.match_indices(&open) {
                    let rest = &text[at + 1..];
                    if let Some(end) = rest.find('"') {
                        if is_id(&rest[..end]) {
                            ids.insert(rest[..end].to_string());
                        }
                    }
                }
            }
        }
    }
}

fn main() {
    let mut ids = BTreeSet::new();
    println!("cargo:rerun-if-changed=src");
    scan(Path::new("src"), &mut ids);
    let list: Vec<String> = ids.iter().map(|i| format!("{i:?}")).collect();
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("finding_ids.rs");
    if let Err(e) = std::fs::write(&out, format!("&[{}]\n", list.join(", "))) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
    }
    vigil_testkit::components::emit_cfgs(&[Path::new("src"), Path::new("tests")]);
}
