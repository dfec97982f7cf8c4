//! `vigil log show | verify`: read the audit log and check its hash chain.
//!
//! `verify` says plainly what it could check: the chain and its head file, the
//! chain against the hashes anchored in the journal, and what it could not
//! (no journal, an unsealed one, a remote syslog it cannot read back).

use std::io::Write;

use anyhow::Result;

use crate::app::App;
use crate::audit::anchor::JournalCheck;
use crate::audit::{Verdict, Verification};
use crate::cli::LogAction;

/// Run `vigil log …`.
pub fn run(app: &App, action: LogAction) -> Result<u8> {
    let log = app.audit();
    let mut out = std::io::stdout().lock();
    match action {
        LogAction::Show { last, json } => {
            let entries = log.entries()?;
            let skip = last.map(|n| entries.len().saturating_sub(n)).unwrap_or(0);
            for e in entries.iter().skip(skip) {
                if json {
                    writeln!(out, "{}", serde_json::to_string(e)?)?;
                    continue;
                }
                let ev = &e.event;
                let s = |k: &str| ev.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                let line = match s("kind").as_str() {
                    "tool_call" => format!(
                        "{:>5} {} {:<9} {:<24} {:<9} {}ms {}",
                        e.seq,
                        e.ts,
                        s("origin"),
                        s("tool"),
                        s("decision"),
                        ev.get("duration_ms").and_then(|v| v.as_u64()).unwrap_or(0),
                        ev.get("result").map(|r| r.to_string()).unwrap_or_default()
                    ),
                    other => format!("{:>5} {} {other} {}", e.seq, e.ts, ev),
                };
                writeln!(out, "{}", crate::term::strip_controls(&line))?;
            }
            Ok(0)
        }
        LogAction::Verify => {
            let v = log.verify()?;
            for line in verify_lines(&v, log.path()) {
                writeln!(out, "{}", crate::term::strip_controls(&line))?;
            }
            Ok(if v.ok() { 0 } else { 1 })
        }
    }
}

/// What `vigil log verify` prints: the chain's verdict, then what backs it (or does not).
pub fn verify_lines(v: &Verification, path: &std::path::Path) -> Vec<String> {
    let mut o = Vec::new();
    let head = match &v.chain {
        Verdict::Intact { entries, head } => {
            o.push(format!("audit log intact: {entries} entries, head {head}"));
            Some(*entries)
        }
        Verdict::Broken { line, why } => {
            o.push(format!("audit log BROKEN at line {line} of {}: {why}", path.display()));
            None
        }
    };
    let unsealed = "the journal is not sealed (no Forward Secure Sealing keys in /var/log/journal/*/fss): \
                    root could rewrite it too";
    match &v.journal {
        JournalCheck::NotChecked => {}
        JournalCheck::Matches { up_to, entries } => {
            o.push(format!("anchored in the journal up to seq {up_to} (matches)"));
            if up_to < entries {
                o.push(format!(
                    "entries {}-{entries} have no anchor in the journal (written while it was not reachable)",
                    up_to + 1
                ));
            }
            match v.sealed {
                Some(true) => o.push(
                    "the journal is sealed (Forward Secure Sealing): `journalctl --verify` shows whether it was altered"
                        .into(),
                ),
                _ => o.push(unsealed.into()),
            }
        }
        JournalCheck::Mismatch(why) => {
            o.push(format!("audit log BROKEN against the journal: {why}"));
            if v.sealed != Some(true) {
                o.push(unsealed.into());
            }
        }
        JournalCheck::NoAnchors => o.push(format!(
            "not anchored: the journal holds no hashes of this log{}; a root user could rewrite the log and its \
             head undetected",
            if !crate::state::is_root() {
                " that this user can read (run as root or in group systemd-journal)"
            } else if head.unwrap_or(0) > 0 {
                " (it was written while no journal was running)"
            } else {
                ""
            }
        )),
        JournalCheck::Unavailable(why) => {
            o.push(format!("not anchored: {why}; a root user could rewrite the log and its head undetected"))
        }
    }
    if let Some(s) = &v.syslog {
        o.push(format!(
            "each entry's hash also goes to syslog {s}, which cannot be read from here: compare its last \
             `vigil-audit` line with the head above"
        ));
    }
    o
}
