//! The comprehensive review: every read-only tool, their findings, and what
//! changed since the last review.
//!
//! The review is deterministic and needs no model: the findings come from the
//! tools alone. Tools run concurrently; one that fails, or cannot read part of
//! the host, is listed under "not checked" ([`unchecked`]), never a silent gap
//! and never a finding: the review is then partial, says so first, and exits 3. Each review is
//! kept (per audited host) so the next one can say which findings are new,
//! which were resolved, and what changed on the host even when it looks fine:
//! new privileged accounts, SSH keys, listeners, firewall rules, containers,
//! cron jobs, systemd units and SUID files — the decisions that quietly
//! become the status quo.
//!
//! - [`acks`]: acknowledged findings (shown, not counted, until they expire).
//! - [`deterministic`]: the review of an `App`'s host, as `vigil review` and a fleet host run it.
//! - [`history`]: saved reviews and the comparison with the previous one.
//! - [`lock`]: one run at a time per host (acks, history and run records are read-modify-write).
//! - [`snapshot`]: the host inventory the comparison of host changes uses.
//! - [`priority`]: what to fix first, and repeated findings folded into one row.
//! - [`render`]: text, Markdown, JSON and HTML.
//! - [`unchecked`]: what could not be checked, why, and the fix.

pub mod acks;
pub mod deterministic;
pub mod history;
pub mod lock;
pub mod priority;
pub mod render;
pub mod snapshot;
pub mod unchecked;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_tools::{Category, Ctx, Finding, Severity};

use crate::gate::Gate;

/// The review JSON format version.
pub const VERSION: u32 = 1;

/// The audited host, as named in a review.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name (`ROOT/etc/hostname`).
    pub name: String,
    /// The audited root.
    pub root: String,
}

/// How one tool fared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolRun {
    /// True when it ran and returned facts.
    pub ok: bool,
    /// Wall time.
    pub ms: u64,
    /// Why it could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `{id, subject}` of a finding, for new/resolved lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FindingRef {
    /// Finding id.
    pub id: String,
    /// Subject.
    pub subject: String,
    /// Severity (for display).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Title (for display).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// What changed since the previous review.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Changes {
    /// When the previous review ran (absent for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Findings not in the previous review.
    pub new: Vec<FindingRef>,
    /// Findings of the previous review that are gone.
    pub resolved: Vec<FindingRef>,
    /// What changed on the host itself.
    pub host: Vec<snapshot::HostChange>,
}

/// Counts that lead every report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// Open findings by severity name.
    pub by_severity: BTreeMap<String, usize>,
    /// Open findings (above info) by category name.
    pub by_category: BTreeMap<String, usize>,
    /// New since the previous review.
    pub new: usize,
    /// Resolved since the previous review.
    pub resolved: usize,
    /// Acknowledged (not counted above).
    pub acknowledged: usize,
}

/// A finding someone acknowledged, with the acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Acknowledged {
    /// The finding.
    pub finding: Finding,
    /// Why and until when.
    pub ack: acks::Ack,
}

/// The model's summary, when one was asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The model used.
    pub model: String,
    /// The summary text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Why there is none (network, key, API error) — recorded, never fatal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One review.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Review {
    /// Format version.
    pub version: u32,
    /// The audited host.
    pub host: HostInfo,
    /// When (RFC 3339 UTC).
    pub generated_at: String,
    /// Wall time of the whole review.
    pub duration_ms: u64,
    /// Lines that must be read first (an overdue schedule, a failed notification).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// The counts.
    pub summary: Summary,
    /// Open findings, most severe first.
    pub findings: Vec<Finding>,
    /// What could not be checked, why, and the fix (never counted as findings).
    #[serde(default)]
    pub not_checked: Vec<unchecked::NotChecked>,
    /// Acknowledged findings.
    #[serde(default)]
    pub acknowledged: Vec<Acknowledged>,
    /// Each tool's facts.
    pub facts: BTreeMap<String, Value>,
    /// How each tool ran.
    pub tools: BTreeMap<String, ToolRun>,
    /// Changes since the previous review.
    pub changes: Changes,
    /// The host inventory used for the next comparison.
    pub snapshot: snapshot::Snapshot,
    /// The model's summary (never the findings' source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_summary: Option<ModelSummary>,
    /// The audit log's chain head when the review was written (compare with `vigil log verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<crate::audit::Head>,
    /// Whether the kernel confined the read-only tools of this review, and how (absent in
    /// reviews made before the worker existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::worker::SandboxStatus>,
}

impl Review {
    /// Highest open severity, if any finding above info.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).filter(|s| *s > Severity::Info).max()
    }

    /// True when part of the host was not checked.
    pub fn partial(&self) -> bool {
        !self.not_checked.is_empty()
    }

    /// Open findings at or above `s`.
    pub fn count_at_least(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity >= s).count()
    }
}

/// The pattern each tool's failures are filed under.
pub fn category_of(tool: &str) -> Category {
    match tool {
        "list_open_ports" | "check_firewall" => Category::Ports,
        "audit_accounts" | "check_ssh" => Category::Accounts,
        "check_backups" => Category::Backups,
        "check_tls" => Category::Hardening,
        "check_os_updates" | "wordpress_inventory" => Category::Updates,
        "docker_containers" => Category::Containers,
        _ => Category::Hardening,
    }
}

/// What a review reports while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A check started.
    Started(&'a str),
    /// A check ended: how it ran and how many findings it had.
    Finished(&'a str, &'a ToolRun, usize),
}

/// A progress callback, called as each check starts and as each ends (not at the end).
pub type Progress<'a> = &'a (dyn Fn(Event<'_>) + Sync);

/// Run every read-only tool through the gate, concurrently; collect facts and findings.
pub async fn collect(
    gate: &Gate,
    progress: Progress<'_>,
) -> (BTreeMap<String, Value>, BTreeMap<String, ToolRun>, Vec<Finding>) {
    let names = gate.registry().read_only();
    // Each tool has its own limit (`tool_timeout_seconds`, enforced where the registry runs it);
    // this is the whole review's, for the tools still running when it ends.
    let limit = std::time::Duration::from_secs(gate.ctx().config.review.timeout_seconds.max(1));
    let runs = names.iter().map(|name| async move {
        progress(Event::Started(name));
        let started = Instant::now();
        let r = match tokio::time::timeout(limit, gate.call(name, serde_json::json!({}))).await {
            Ok(g) => g.result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("not checked (the review's time limit of {} s ran out)", limit.as_secs())),
        };
        let ms = started.elapsed().as_millis() as u64;
        let run = ToolRun { ok: r.is_ok(), ms, error: r.as_ref().err().cloned() };
        progress(Event::Finished(name, &run, r.as_ref().map(|res| res.findings.len()).unwrap_or(1)));
        (*name, r, run)
    });
    let mut facts = BTreeMap::new();
    let mut tools = BTreeMap::new();
    let mut findings = Vec::new();
    for (name, r, run) in join_all(runs).await {
        match r {
            Ok(res) => {
                tools.insert(name.to_string(), run);
                facts.insert(name.to_string(), res.facts);
                findings.extend(res.findings);
            }
            Err(e) => {
                tools.insert(name.to_string(), run);
                findings.push(Finding::could_not_check(category_of(name), name, "this part of the host", e));
            }
        }
    }
    (facts, tools, findings)
}

/// One note per file the reader refused (a FIFO, a device, a file over its size cap, a
/// file on a tenant's FUSE mount, a name that is not UTF-8), whichever tool met it: a
/// planted trap is named in the report, never silently absorbed as "unreadable".
pub fn skipped_files(host: &vigil_tools::Host) -> Vec<Finding> {
    host.skipped_files()
        .into_iter()
        .map(|(path, line)| {
            Finding::new("hardening.file-not-read", Severity::Info, Category::Hardening, path, line)
                .fix("Look at this file: a FIFO, device or huge file where a configuration belongs is unusual and may be planted to stop reviews. Replace it with a regular file (or remove it) so it can be checked.")
        })
        .collect()
}

/// Sort most severe first, then by category, id and subject; drop exact duplicates.
pub fn sort_findings(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.category.cmp(&b.category))
            .then(a.id.cmp(&b.id))
            .then(a.subject.cmp(&b.subject))
    });
    findings.dedup_by(|a, b| a.id == b.id && a.subject == b.subject && a.title == b.title);
}

/// Options of one review.
pub struct Options<'a> {
    /// Progress callback.
    pub progress: Progress<'a>,
    /// Lines to put first.
    pub notices: Vec<String>,
}

/// The whole deterministic review of `ctx`'s host: collect, acknowledge, compare, save.
pub async fn run(gate: &Gate, ctx: &Ctx, host: HostInfo, opts: Options<'_>) -> Result<Review> {
    let started = Instant::now();
    let (facts, tools, mut findings) = collect(gate, opts.progress).await;
    let snap = snapshot::Snapshot::take(&ctx.host, &facts);
    findings.extend(skipped_files(&ctx.host));
    let who = unchecked::Runner::of(&ctx.host);
    let (mut findings, not_checked) = unchecked::split(findings, &tools, who);
    let mut notices = opts.notices;
    if let Some(line) = unchecked::notice(&not_checked, who) {
        notices.push(line);
    }
    sort_findings(&mut findings);
    let generated_at = rfc3339(ctx.host.now());
    let state = ctx.state_dir.clone();
    let acks = state.as_deref().map(acks::load).transpose()?.unwrap_or_default();
    let today = ctx.host.now_unix() / 86_400;
    let (open, acknowledged) = acks::split(findings, &acks, today);
    let previous = state.as_deref().and_then(|d| history::latest(d).ok().flatten());
    let changes = history::compare(previous.as_ref(), &open, &acknowledged, &snap);
    let summary = summarize(&open, &acknowledged, &changes);
    let review = Review {
        version: VERSION,
        host,
        generated_at,
        duration_ms: started.elapsed().as_millis() as u64,
        notices,
        summary,
        findings: open,
        not_checked,
        acknowledged,
        facts,
        tools,
        changes,
        snapshot: snap,
        model_summary: None,
        audit_head: gate.audit_head(),
        sandbox: gate.sandbox_status(),
    };
    Ok(review)
}

/// Count open findings by severity and category.
pub fn summarize(open: &[Finding], acknowledged: &[Acknowledged], changes: &Changes) -> Summary {
    let mut s = Summary {
        new: changes.new.len(),
        resolved: changes.resolved.len(),
        acknowledged: acknowledged.len(),
        ..Default::default()
    };
    for sev in Severity::ALL {
        s.by_severity.insert(sev.as_str().to_string(), 0);
    }
    for f in open {
        *s.by_severity.entry(f.severity.as_str().to_string()).or_default() += 1;
        if f.severity > Severity::Info {
            *s.by_category.entry(f.category.as_str().to_string()).or_default() += 1;
        }
    }
    s
}

/// A time as RFC 3339 UTC, whole seconds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    vigil_tools::format::rfc3339(vigil_tools::host::unix_secs(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use schemars::JsonSchema;
    use std::sync::Arc;
    use std::time::Duration;
    use vigil_tools::{Effect, Host, Outcome, Registry, Tool, ToolError};

    /// A read-only check that answers at once, or blocks its thread for 30 s.
    struct Check {
        name: &'static str,
        stuck: bool,
    }
    #[derive(serde::Deserialize, JsonSchema)]
    struct NoInput {}
    #[derive(serde::Serialize, JsonSchema)]
    struct Out {
        ok: bool,
    }
    #[async_trait]
    impl Tool for Check {
        type Input = NoInput;
        type Output = Out;
        fn name(&self) -> &'static str {
            self.name
        }
        fn description(&self) -> &'static str {
            "test check"
        }
        fn effect(&self) -> Effect {
            Effect::ReadOnly
        }
        async fn run(&self, _ctx: &Ctx, _i: NoInput) -> Result<Outcome<Out>, ToolError> {
            if self.stuck {
                std::thread::sleep(Duration::from_secs(30));
            }
            Ok(Outcome::new(Out { ok: true }, vec![]))
        }
    }

    fn gate(tool_secs: u64, review_secs: u64) -> Gate {
        let mut r = Registry::empty();
        r.add(Check { name: "quick", stuck: false }).unwrap();
        r.add(Check { name: "stuck", stuck: true }).unwrap();
        let mut cfg = vigil_tools::Config::default();
        cfg.review.tool_timeout_seconds = tool_secs;
        cfg.review.timeout_seconds = review_secs;
        let ctx = Ctx::new(Host::at("/nonexistent")).with_config(cfg);
        Gate::new(Arc::new(r), ctx, Arc::new(crate::gate::NoHuman("test".into())), None, crate::audit::Origin::Review)
    }

    #[tokio::test]
    async fn a_stuck_check_is_not_checked_and_the_rest_is_kept() {
        for (tool_secs, review_secs, why) in [
            (1, 300, "not checked (timed out after 1 s)"),
            (300, 1, "not checked (the review's time limit of 1 s ran out)"),
        ] {
            let g = gate(tool_secs, review_secs);
            let started = Instant::now();
            let (facts, tools, findings) = collect(&g, &|_| {}).await;
            assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
            assert!(tools["quick"].ok && facts["quick"]["ok"] == true);
            assert_eq!(tools["stuck"].error.as_deref(), Some(why));
            assert!(findings.iter().any(|f| f.subject.starts_with("stuck") && f.evidence == [why]), "{findings:?}");
        }
    }
}
