//! `vigil log show | verify`: read the audit log and check its hash chain.

use std::io::Write;

use anyhow::Result;

use crate::app::App;
use crate::audit::Verdict;
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
        LogAction::Verify => match log.verify()? {
            Verdict::Intact { entries, head } => {
                writeln!(out, "audit log intact: {entries} entries, head {}", &head[..16.min(head.len())])?;
                Ok(0)
            }
            Verdict::Broken { line, why } => {
                writeln!(out, "audit log BROKEN at line {line} of {}: {why}", log.path().display())?;
                Ok(1)
            }
        },
    }
}
