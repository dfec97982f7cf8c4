//! `vigil fleet status`: the last review of each host, reachability, overdue.
//!
//! Answered from the saved fleet history alone ([`super::history`]): no ssh,
//! no host contacted, so it is instant and safe to run from a monitoring
//! check. For each selected host of the inventory: when it was last reviewed
//! and what that review found, the last attempt and, when the last attempt
//! failed, why (`unreachable`, `auth-failed`…), and whether it is overdue —
//! its last successful review older than the schedule allows, or none at all.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::history::{self as fleet_history, Attempt, FleetDir};
use super::{Inventory, pattern};
use crate::app::App;
use crate::review::{history, render};
use crate::term::strip_controls;

/// One host's status.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// The inventory's name.
    pub host: String,
    /// When its last successful review ran (none: never reviewed).
    pub last_review: Option<String>,
    /// That review's headline (counts, new and resolved, partial).
    pub result: Option<String>,
    /// The last attempt (its time, `reviewed`/`partial`/the failure reason, ssh's words).
    pub last_attempt: Option<Attempt>,
    /// The last failed attempt, if any.
    pub last_failure: Option<Attempt>,
    /// The last successful review is older than the schedule allows, or there is none.
    pub overdue: bool,
}

/// The status of `hosts` from the history in `dir`, at `now`, overdue after `limit` seconds.
pub fn hosts_status(dir: &FleetDir, hosts: &[String], now: i64, limit: i64) -> Vec<HostStatus> {
    hosts
        .iter()
        .map(|h| {
            let hdir = dir.host_path(h);
            let latest = history::latest(&hdir).ok().flatten();
            let attempts = fleet_history::attempts(&hdir);
            let last_review = latest.as_ref().map(|r| r.generated_at.clone());
            HostStatus {
                host: h.clone(),
                overdue: fleet_history::overdue(last_review.as_deref(), now, limit),
                result: latest.as_ref().map(render::headline),
                last_review,
                last_attempt: attempts.last,
                last_failure: attempts.last_failure,
            }
        })
        .collect()
}

/// The text `fleet status` prints.
pub fn text(inventory: &str, rows: &[HostStatus]) -> String {
    let overdue = rows.iter().filter(|r| r.overdue).count();
    let failing = rows.iter().filter(|r| r.last_attempt.as_ref().is_some_and(|a| !a.ok())).count();
    let mut o = format!(
        "Fleet {}: {} hosts, {overdue} overdue, {failing} failed at their last attempt\n",
        strip_controls(inventory),
        rows.len()
    );
    for r in rows {
        o.push_str(&format!("\n{}{}\n", strip_controls(&r.host), if r.overdue { "  OVERDUE" } else { "" }));
        match (&r.last_review, &r.result) {
            (Some(t), Some(h)) => o.push_str(&format!("  last review:  {t}: {}\n", strip_controls(h))),
            _ => o.push_str("  last review:  never\n"),
        }
        match &r.last_attempt {
            Some(a) => {
                let why = a.detail.as_deref().map(|d| format!(" ({})", strip_controls(d))).unwrap_or_default();
                o.push_str(&format!("  last attempt: {}: {}{why}\n", a.at, a.result));
            }
            None => o.push_str("  last attempt: never\n"),
        }
        if let Some(f) = r.last_failure.as_ref().filter(|_| r.last_attempt.as_ref().is_some_and(Attempt::ok)) {
            o.push_str(&format!("  last failure: {}: {}\n", f.at, f.result));
        }
    }
    o
}

/// Run `vigil fleet status`.
pub fn run(app: &App, inventory: &Path, limit: Option<&str>, json: bool) -> Result<u8> {
    let inv =
        Inventory::load(inventory).with_context(|| format!("cannot read the inventory {}", inventory.display()))?;
    let hosts = match limit {
        Some(p) => pattern::select(&inv, p).with_context(|| format!("--limit {p}"))?,
        None => inv.hosts().to_vec(),
    };
    let dir = FleetDir::find(&app.state, inventory);
    let rows = hosts_status(&dir, &hosts, app.host.now_unix(), fleet_history::overdue_after(&app.state));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", text(&inventory.display().to_string(), &rows));
    }
    Ok(0)
}
