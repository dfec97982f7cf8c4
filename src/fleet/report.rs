//! The fleet report: one row per host, fleet-wide findings, then each host's
//! review; history per host; text, md, json, html, prometheus and jsonl.
//!
//! An administrator with many servers reads one report, not one per server.
//! It starts with a row per host (reviewed, partial, or why it failed; counts
//! by severity; new and resolved since that host's last review; overdue when
//! its last successful review is older than the schedule allows), then what
//! only a fleet shows: the same finding on several servers folded into one row
//! ("plugin:woocommerce on 6 sites across 3 servers"), a secret reused across
//! servers (from [`super::digest`]: host and place, never a digest), and an
//! administrator present on every reviewed server but used on none. Each
//! host's review follows, rendered by [`crate::review::render`] — one renderer
//! per format for one server or many. History is kept per host
//! ([`super::history`]) with [`crate::review::history`], so "since last month"
//! means on a fleet what it means on one server. The exit code is `vigil
//! review`'s: 1 at or above `--fail-on` on any host, else 3 when any host
//! failed or was partial, else 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use vigil_tools::{Finding, Severity};

use super::history::{self as fleet_history, Attempt, FleetDir};
use super::outcome::{FleetRun, HostOutcome, Status};
use crate::app::App;
use crate::cli::{FleetFormat, FleetReviewArgs};
use crate::review::render::{self, TrendPoint, esc, md_escape};
use crate::review::{self, Review, history};
use crate::term::{paint, strip_controls};

/// One host's row.
#[derive(Debug, Clone, Serialize)]
pub struct HostRow {
    /// The inventory's name.
    pub host: String,
    /// What ssh connected to.
    pub address: String,
    /// `reviewed`, `partial`, or why it failed (`unreachable`, `auth-failed`, `no-sudo`, `timeout`…).
    pub status: String,
    /// ssh's or the remote's words, for a failed host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Open findings by severity (empty for a failed host).
    pub by_severity: BTreeMap<String, usize>,
    /// New since the host's previous review.
    pub new: usize,
    /// Resolved since the host's previous review.
    pub resolved: usize,
    /// When the previous review ran (none: first review, or failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The last successful review (this run's, or a saved one for a failed host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_review: Option<String>,
    /// The last successful review is older than the schedule allows (or there is none).
    pub overdue: bool,
}

impl HostRow {
    fn count(&self, s: Severity) -> usize {
        self.by_severity.get(s.as_str()).copied().unwrap_or(0)
    }

    fn failed(&self) -> bool {
        self.status != "reviewed" && self.status != "partial"
    }
}

/// One host's part of a fleet-wide row.
#[derive(Debug, Clone, Serialize)]
pub struct FoldHost {
    /// The host.
    pub host: String,
    /// Its subjects (sites, ports, accounts).
    pub subjects: Vec<String>,
}

/// The same finding on several hosts.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    /// Finding id.
    pub id: String,
    /// The most severe of them.
    pub severity: Severity,
    /// What they share (`tcp:9200`, `plugin:woocommerce`, `firewall`).
    pub what: String,
    /// The first one's title, its site left out.
    pub title: String,
    /// How many findings (sites, accounts) in all.
    pub count: usize,
    /// Which hosts, each with its subjects.
    pub hosts: Vec<FoldHost>,
}

/// Where one secret shared by several servers is (never the secret or its digest).
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    /// The host.
    pub host: String,
    /// Where on it (`/var/www/shop/wp-config.php DB_PASSWORD`).
    pub place: String,
}

/// One secret shared by several servers: what it is and where (never the secret or its digest).
#[derive(Debug, Clone, Serialize)]
pub struct ReusedSecret {
    /// What is shared (`a database password`, `a Redis password`…).
    pub what: String,
    /// Each host and place that holds it.
    pub places: Vec<Place>,
}

/// An administrator on every reviewed server, used on none.
#[derive(Debug, Clone, Serialize)]
pub struct UnusedAdmin {
    /// The account.
    pub account: String,
    /// Each host and what its review says (`unused for 245 days`, `never logged in`).
    pub hosts: Vec<Place>,
}

/// Everything a fleet report shows, in every format.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run, every host's review inside (changes compared with its own history).
    pub run: FleetRun,
    /// One row per host, in inventory order.
    pub rows: Vec<HostRow>,
    /// The same finding on several hosts, most severe and widest first.
    pub fleet_wide: Vec<Fold>,
    /// Secrets shared between servers, each with the places that share it.
    pub reused_secrets: Vec<ReusedSecret>,
    /// Whether any host returned keyed digests (else reuse was not checked).
    pub reuse_checked: bool,
    /// Administrators present on every reviewed server and used on none.
    pub unused_admins: Vec<UnusedAdmin>,
    /// Each reviewed host's trend, from its history (HTML).
    #[serde(skip)]
    pub trends: BTreeMap<String, Vec<TrendPoint>>,
}

fn reviews(run: &FleetRun) -> impl Iterator<Item = (&HostOutcome, &Review)> {
    run.hosts.iter().filter_map(|h| match &h.status {
        Status::Reviewed { review, .. } => Some((h, review.as_ref())),
        Status::Failed(_) => None,
    })
}

/// Compare each reviewed host with its own last review and save it; record every attempt
/// (a failed host keeps its previous review); build the report. `now` and `overdue_after`
/// (seconds) decide which failed hosts are overdue.
pub fn prepare(dir: &FleetDir, mut run: FleetRun, now: i64, overdue_after: i64, keep: usize) -> Result<Report> {
    let mut rows = Vec::new();
    let mut trends = BTreeMap::new();
    for h in &mut run.hosts {
        let hdir = dir.host_dir(&h.name)?;
        let previous = history::latest(&hdir)?;
        let host = strip_controls(&h.name);
        let address = strip_controls(&h.address);
        match &mut h.status {
            Status::Reviewed { review: r, .. } => {
                r.changes = history::compare(previous.as_ref(), &r.findings, &r.acknowledged, &r.snapshot);
                r.summary = review::summarize(&r.findings, &r.acknowledged, &r.changes);
                history::save(&hdir, r, keep)?;
                let status = if r.partial() { "partial" } else { "reviewed" };
                let attempt = Attempt { at: run.started.clone(), result: status.into(), detail: None };
                fleet_history::record(&hdir, &h.name, attempt)?;
                trends.insert(h.name.clone(), render::trend(&history::all(&hdir)));
                rows.push(HostRow {
                    host,
                    address,
                    status: status.into(),
                    detail: None,
                    by_severity: r.summary.by_severity.clone(),
                    new: r.summary.new,
                    resolved: r.summary.resolved,
                    since: r.changes.since.clone(),
                    last_review: Some(r.generated_at.clone()),
                    overdue: false,
                });
            }
            Status::Failed(f) => {
                fleet_history::record(&hdir, &h.name, Attempt::failed(&run.started, f.reason, &f.detail))?;
                let last = previous.map(|p| p.generated_at);
                rows.push(HostRow {
                    host,
                    address,
                    status: f.reason.as_str().into(),
                    detail: Some(strip_controls(&f.detail)),
                    by_severity: BTreeMap::new(),
                    new: 0,
                    resolved: 0,
                    since: None,
                    overdue: fleet_history::overdue(last.as_deref(), now, overdue_after),
                    last_review: last,
                });
            }
        }
    }
    let reused_secrets = super::digest::reused(&run.hosts)
        .into_iter()
        .map(|r| ReusedSecret {
            what: r.what().to_string(),
            places: r.places.into_iter().map(|(host, place)| Place { host, place }).collect(),
        })
        .collect();
    let reuse_checked =
        run.hosts.iter().any(|h| matches!(&h.status, Status::Reviewed { digests, .. } if !digests.is_empty()));
    Ok(Report {
        fleet_wide: fleet_wide(&run),
        unused_admins: unused_admins(&run),
        reused_secrets,
        reuse_checked,
        rows,
        trends,
        run,
    })
}

/// What findings on several hosts share: a site's `plugin:x` (the last word of the subject
/// when it names a kind), else the whole subject (`tcp:9200`, `firewall`).
fn fold_key(subject: &str) -> &str {
    match subject.rsplit_once(' ') {
        Some((_, last)) if last.contains(':') => last,
        _ => subject,
    }
}

/// A finding's title with its own site left out, to stand for all of them (a subject every
/// host shares, like `toor`, stays).
fn generic_title(f: &Finding) -> String {
    let key = fold_key(&f.subject);
    let site = f.subject[..f.subject.len() - key.len()].trim();
    if site.is_empty() { f.title.clone() } else { f.title.replace(site, "…") }
}

/// The same finding (id and what it is about) on two or more hosts, info left out.
pub fn fleet_wide(run: &FleetRun) -> Vec<Fold> {
    let mut map: BTreeMap<(String, String), Fold> = BTreeMap::new();
    for (h, r) in reviews(run) {
        for f in r.findings.iter().filter(|f| f.severity > Severity::Info) {
            let key = fold_key(&f.subject).to_string();
            let e = map.entry((f.id.clone(), key.clone())).or_insert_with(|| Fold {
                id: f.id.clone(),
                severity: f.severity,
                what: key,
                title: generic_title(f),
                count: 0,
                hosts: Vec::new(),
            });
            e.severity = e.severity.max(f.severity);
            e.count += 1;
            match e.hosts.last_mut() {
                Some(last) if last.host == h.name => last.subjects.push(f.subject.clone()),
                _ => e.hosts.push(FoldHost { host: h.name.clone(), subjects: vec![f.subject.clone()] }),
            }
        }
    }
    let mut v: Vec<Fold> = map.into_values().filter(|f| f.hosts.len() > 1).collect();
    v.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.hosts.len().cmp(&a.hosts.len()))
            .then(b.count.cmp(&a.count))
            .then(a.id.cmp(&b.id))
            .then(a.what.cmp(&b.what))
    });
    v
}

/// Finding ids that say an administrator account is not used.
const UNUSED_ADMIN_IDS: [&str; 2] = ["accounts.admin-unused", "accounts.admin-never-used"];

/// Administrators whose account the review of every reviewed host (two or more) reports
/// as unused or never used — open or acknowledged. A host whose accounts could not be
/// checked has no such finding, so an account is never called unused everywhere on a guess.
pub fn unused_admins(run: &FleetRun) -> Vec<UnusedAdmin> {
    let reviewed: Vec<(&HostOutcome, &Review)> = reviews(run).collect();
    if reviewed.len() < 2 {
        return Vec::new();
    }
    let unused_on = |r: &Review| -> BTreeMap<String, String> {
        r.findings
            .iter()
            .chain(r.acknowledged.iter().map(|a| &a.finding))
            .filter(|f| UNUSED_ADMIN_IDS.contains(&f.id.as_str()))
            .map(|f| (f.subject.clone(), f.title.clone()))
            .collect()
    };
    let per_host: Vec<(&str, BTreeMap<String, String>)> =
        reviewed.iter().map(|(h, r)| (h.name.as_str(), unused_on(r))).collect();
    let Some((_, first)) = per_host.first() else { return Vec::new() };
    first
        .keys()
        .filter(|account| per_host.iter().all(|(_, m)| m.contains_key(*account)))
        .map(|account| UnusedAdmin {
            account: account.clone(),
            hosts: per_host
                .iter()
                .map(|(host, m)| Place { host: host.to_string(), place: m.get(account).cloned().unwrap_or_default() })
                .collect(),
        })
        .collect()
}

/// 1 when a finding on any host is at or above `fail_on`, else 3 when any host failed or
/// was partial (a `--fail-on` user is never told "fine" about what was not looked at), else 0.
pub fn exit_code(run: &FleetRun, fail_on: Option<Severity>) -> u8 {
    if let Some(s) = fail_on {
        if reviews(run).any(|(_, r)| r.count_at_least(s) > 0) {
            return 1;
        }
    }
    let incomplete = run.hosts.iter().any(|h| match &h.status {
        Status::Reviewed { review, .. } => review.partial(),
        Status::Failed(_) => true,
    });
    if incomplete { 3 } else { 0 }
}

/// The one line a fleet report starts with.
pub fn headline(rep: &Report) -> String {
    let n = |st: &str| rep.rows.iter().filter(|r| r.status == st).count();
    let failed = rep.rows.iter().filter(|r| r.failed()).count();
    let total = |s: Severity| rep.rows.iter().map(|r| r.count(s)).sum::<usize>();
    let overdue = rep.rows.iter().filter(|r| r.overdue).count();
    let mut line = format!(
        "{} hosts: {} reviewed, {} partial, {} failed; {} critical, {} high, {} medium, {} low in all",
        rep.rows.len(),
        n("reviewed"),
        n("partial"),
        failed,
        total(Severity::Critical),
        total(Severity::High),
        total(Severity::Medium),
        total(Severity::Low)
    );
    if overdue > 0 {
        let _ = write!(line, "; {overdue} overdue");
    }
    line
}

fn hosts_phrase(f: &Fold) -> String {
    let servers = review::priority::plural(f.hosts.len(), "server", "servers");
    if f.count == f.hosts.len() {
        format!("on {servers}")
    } else {
        let what = if f.what == f.hosts[0].subjects[0] { "findings" } else { "sites" };
        format!("on {} {what} across {servers}", f.count)
    }
}

/// The hosts of a fleet-wide row, each with its own sites (`web-a (/var/www/shop, /srv/www/b)`),
/// or just the host when the subject is what the row is about (`tcp:9200`).
fn fold_hosts(f: &Fold) -> String {
    f.hosts
        .iter()
        .map(|h| {
            let own: Vec<&str> = h
                .subjects
                .iter()
                .map(|s| s.strip_suffix(f.what.as_str()).map(str::trim).filter(|p| !p.is_empty()).unwrap_or(s))
                .filter(|s| *s != f.what)
                .collect();
            if own.is_empty() { h.host.clone() } else { format!("{} ({})", h.host, own.join(", ")) }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn places(p: &[Place]) -> String {
    p.iter().map(|p| format!("{}: {}", p.host, p.place)).collect::<Vec<_>>().join("; ")
}

fn when(t: &Option<String>) -> String {
    t.as_deref().map(|t| t.chars().take(10).collect()).unwrap_or_else(|| "never".into())
}

/// A row's numbers as every format shows them: critical, high, medium and low (`-` for a
/// failed host), then new and resolved (`first` on a host's first review).
fn cells(r: &HostRow) -> [String; 6] {
    let c = |s: Severity| if r.failed() { "-".to_string() } else { r.count(s).to_string() };
    let (new, resolved) = match (&r.since, r.failed()) {
        (_, true) => ("-".into(), "-".into()),
        (None, false) => ("first".into(), "-".into()),
        (Some(_), false) => (r.new.to_string(), r.resolved.to_string()),
    };
    [c(Severity::Critical), c(Severity::High), c(Severity::Medium), c(Severity::Low), new, resolved]
}

/// Plain text: the hosts, the fleet-wide rows, then each host's review.
pub fn text(rep: &Report) -> String {
    let mut o = summary_text(rep);
    for (h, r) in reviews(&rep.run) {
        let _ = writeln!(
            o,
            "\n{}",
            paint("1", &format!("==== {} ({}) ====", strip_controls(&h.name), strip_controls(&h.address)))
        );
        o.push_str(&strip_controls(&render::text(r)));
    }
    o
}

/// The text report without each host's review: the hosts and what only a fleet shows.
pub fn summary_text(rep: &Report) -> String {
    let mut o = String::new();
    let limit = rep.run.limit.as_deref().map(|l| format!(" (--limit {l})")).unwrap_or_default();
    let _ = writeln!(
        o,
        "vigil fleet review of {}{} at {}",
        strip_controls(&rep.run.inventory),
        strip_controls(&limit),
        rep.run.started
    );
    let _ = writeln!(o, "{}", paint("1", &headline(rep)));
    let w = rep.rows.iter().map(|r| r.host.chars().count()).max().unwrap_or(4).clamp(4, 40);
    let _ = writeln!(o, "\n{}", paint("1", "HOSTS"));
    let _ = writeln!(
        o,
        "  {:<w$}  {:<12} {:>4} {:>4} {:>4} {:>4}  {:>5} {:>8}  last review",
        "host", "status", "crit", "high", "med", "low", "new", "resolved"
    );
    for r in &rep.rows {
        let [crit, high, med, low, new, resolved] = cells(r);
        let _ = writeln!(
            o,
            "  {:<w$}  {:<12} {:>4} {:>4} {:>4} {:>4}  {:>5} {:>8}  {}{}",
            r.host,
            r.status,
            crit,
            high,
            med,
            low,
            new,
            resolved,
            when(&r.last_review),
            if r.overdue { "  OVERDUE" } else { "" }
        );
        if let Some(d) = &r.detail {
            let _ = writeln!(o, "  {:<w$}  why: {d}", "");
        }
    }
    let _ = writeln!(o, "\n{}", paint("1", "FLEET-WIDE (the same finding on several servers)"));
    if rep.fleet_wide.is_empty() {
        let _ = writeln!(o, "  none: no finding is on more than one server");
    }
    for f in &rep.fleet_wide {
        let _ = writeln!(
            o,
            "  {} [{}] {} {}: {}",
            f.severity,
            f.id,
            strip_controls(&f.what),
            hosts_phrase(f),
            strip_controls(&fold_hosts(f))
        );
        let _ = writeln!(o, "      {}", strip_controls(&f.title));
    }
    let _ = writeln!(o, "\n{}", paint("1", "PASSWORDS REUSED ACROSS SERVERS"));
    match (rep.reuse_checked, rep.reused_secrets.is_empty()) {
        (false, _) => {
            let _ = writeln!(o, "  not checked: no host returned keyed digests of its secrets in this run");
        }
        (true, true) => {
            let _ = writeln!(o, "  none: no secret is shared between servers");
        }
        (true, false) => {
            for p in &rep.reused_secrets {
                let _ = writeln!(o, "  {} shared by {}", p.what, strip_controls(&places(&p.places)));
            }
        }
    }
    let _ = writeln!(o, "\n{}", paint("1", "ADMINISTRATORS ON EVERY REVIEWED SERVER, USED ON NONE"));
    if rep.unused_admins.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for a in &rep.unused_admins {
        let _ = writeln!(o, "  {} on all {} reviewed servers", strip_controls(&a.account), a.hosts.len());
        let _ = writeln!(o, "      {}", strip_controls(&places(&a.hosts)));
    }
    o
}

/// Markdown.
pub fn markdown(rep: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# vigil fleet review: {}\n", md_escape(&rep.run.inventory));
    let _ = writeln!(o, "**{}**\n\nStarted {}.\n", md_escape(&headline(rep)), md_escape(&rep.run.started));
    let _ = writeln!(
        o,
        "## Hosts\n\n| host | status | critical | high | medium | low | new | resolved | last review |\n|---|---|---|---|---|---|---|---|---|"
    );
    for r in &rep.rows {
        let [crit, high, med, low, new, resolved] = cells(r);
        let status = match &r.detail {
            Some(d) => format!("**{}**: {}", r.status, md_escape(d)),
            None => r.status.clone(),
        };
        let _ = writeln!(
            o,
            "| {} | {status} | {} | {} | {} | {} | {new} | {resolved} | {}{} |",
            md_escape(&r.host),
            crit,
            high,
            med,
            low,
            when(&r.last_review),
            if r.overdue { " **overdue**" } else { "" }
        );
    }
    let _ = writeln!(o, "\n## Fleet-wide\n");
    if rep.fleet_wide.is_empty() {
        let _ = writeln!(o, "No finding is on more than one server.");
    } else {
        let _ = writeln!(o, "| severity | finding | on | where | what |\n|---|---|---|---|---|");
        for f in &rep.fleet_wide {
            let _ = writeln!(
                o,
                "| {} | `{}` {} | {} | {} | {} |",
                f.severity,
                f.id,
                md_escape(&f.what),
                hosts_phrase(f),
                md_escape(&fold_hosts(f)),
                md_escape(&f.title)
            );
        }
    }
    let _ = writeln!(o, "\n## Passwords reused across servers\n");
    match (rep.reuse_checked, rep.reused_secrets.is_empty()) {
        (false, _) => o.push_str("Not checked: no host returned keyed digests of its secrets in this run.\n"),
        (true, true) => o.push_str("None.\n"),
        (true, false) => {
            for p in &rep.reused_secrets {
                let _ = writeln!(o, "- {} shared by {}", p.what, md_escape(&places(&p.places)));
            }
        }
    }
    let _ = writeln!(o, "\n## Administrators on every reviewed server, used on none\n");
    if rep.unused_admins.is_empty() {
        o.push_str("None.\n");
    }
    for a in &rep.unused_admins {
        let _ = writeln!(o, "- `{}`: {}", md_escape(&a.account), md_escape(&places(&a.hosts)));
    }
    for (_, r) in reviews(&rep.run) {
        o.push('\n');
        o.push_str(&render::markdown(r));
    }
    o
}

fn badge(status: &str) -> &'static str {
    match status {
        "reviewed" => "resolved",
        "partial" => "medium",
        _ => "critical",
    }
}

/// One self-contained HTML file: the hosts, the fleet-wide rows, then each host's review
/// with its trend.
pub fn html(rep: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<h1>vigil fleet review: {}</h1><p><strong>{}</strong></p><p class=\"muted\">Started {}.</p>",
        esc(&rep.run.inventory),
        esc(&headline(rep)),
        esc(&rep.run.started)
    );
    o.push_str(
        "<section id=\"hosts\"><h2>Hosts</h2><table><tr><th>host</th><th>status</th><th>critical</th><th>high</th>\
         <th>medium</th><th>low</th><th>new</th><th>resolved</th><th>last review</th></tr>",
    );
    for (i, r) in rep.rows.iter().enumerate() {
        let [crit, high, med, low, new, resolved] = cells(r);
        let name = if r.failed() { esc(&r.host) } else { format!("<a href=\"#host-{i}\">{}</a>", esc(&r.host)) };
        let detail = r.detail.as_deref().map(|d| format!("<div class=\"ev\">{}</div>", esc(d))).unwrap_or_default();
        let _ = write!(
            o,
            "<tr><td>{name}</td><td><span class=\"badge {}\">{}</span>{detail}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{new}</td><td>{resolved}</td><td>{}{}</td></tr>",
            badge(&r.status),
            esc(&r.status),
            crit,
            high,
            med,
            low,
            esc(&when(&r.last_review)),
            if r.overdue { " <span class=\"badge high\">overdue</span>" } else { "" }
        );
    }
    o.push_str("</table></section><section id=\"fleet-wide\"><h2>Fleet-wide</h2>");
    if rep.fleet_wide.is_empty() {
        o.push_str("<p class=\"muted\">No finding is on more than one server.</p>");
    } else {
        o.push_str("<table class=\"findings\"><tr><th>severity</th><th>finding</th><th>on</th><th>where</th><th>what</th></tr>");
        for f in &rep.fleet_wide {
            let _ = write!(
                o,
                "<tr><td><span class=\"badge {0}\">{0}</span></td><td><code>{1}</code> {2}</td><td>{3}</td><td>{4}</td><td>{5}</td></tr>",
                f.severity.as_str(),
                esc(&f.id),
                esc(&f.what),
                esc(&hosts_phrase(f)),
                esc(&fold_hosts(f)),
                esc(&f.title)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section><section id=\"reused\"><h2>Passwords reused across servers</h2>");
    match (rep.reuse_checked, rep.reused_secrets.is_empty()) {
        (false, _) => {
            o.push_str("<p class=\"muted\">Not checked: no host returned keyed digests of its secrets in this run.</p>")
        }
        (true, true) => o.push_str("<p class=\"muted\">None.</p>"),
        (true, false) => {
            o.push_str("<ul>");
            for p in &rep.reused_secrets {
                let _ = write!(o, "<li>{} shared by {}</li>", esc(&p.what), esc(&places(&p.places)));
            }
            o.push_str("</ul>");
        }
    }
    o.push_str(
        "</section><section id=\"unused-admins\"><h2>Administrators on every reviewed server, used on none</h2>",
    );
    if rep.unused_admins.is_empty() {
        o.push_str("<p class=\"muted\">None.</p>");
    } else {
        o.push_str("<ul>");
        for a in &rep.unused_admins {
            let _ = write!(o, "<li><code>{}</code>: {}</li>", esc(&a.account), esc(&places(&a.hosts)));
        }
        o.push_str("</ul>");
    }
    o.push_str("</section>");
    for (i, h) in rep.run.hosts.iter().enumerate() {
        if let Status::Reviewed { review, .. } = &h.status {
            let trend = rep.trends.get(&h.name).map(Vec::as_slice).unwrap_or(&[]);
            let _ = write!(o, "<section class=\"host\" id=\"host-{i}\"><h2>{}</h2>", esc(&h.name));
            o.push_str(&render::html_body(review, trend));
            o.push_str("</section>");
        }
    }
    render::page(&format!("vigil fleet review: {}", rep.run.inventory), &o)
}

/// A label value in the Prometheus exposition format: `\`, `"` and newlines escaped.
pub fn prom_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// node_exporter's textfile-collector format: findings by host and severity, the last
/// successful review's time, and whether this run reviewed the host.
pub fn prometheus(rep: &Report) -> String {
    let mut o = String::from(
        "# HELP vigil_findings Open findings of the host's review in this run, by severity.\n\
         # TYPE vigil_findings gauge\n",
    );
    for r in rep.rows.iter().filter(|r| !r.failed()) {
        for s in Severity::ALL {
            let _ = writeln!(o, "vigil_findings{{host=\"{}\",severity=\"{}\"}} {}", prom_label(&r.host), s, r.count(s));
        }
    }
    o.push_str(
        "# HELP vigil_last_review_timestamp_seconds When the host's last successful review ran (Unix time).\n\
         # TYPE vigil_last_review_timestamp_seconds gauge\n",
    );
    for r in &rep.rows {
        if let Some(t) = r.last_review.as_deref().and_then(fleet_history::unix_of) {
            let _ = writeln!(o, "vigil_last_review_timestamp_seconds{{host=\"{}\"}} {t}", prom_label(&r.host));
        }
    }
    o.push_str(
        "# HELP vigil_host_up 1 when this run reviewed the host (completely or partly), 0 when it failed.\n\
         # TYPE vigil_host_up gauge\n",
    );
    for r in &rep.rows {
        let _ = writeln!(o, "vigil_host_up{{host=\"{}\"}} {}", prom_label(&r.host), u8::from(!r.failed()));
    }
    o
}

/// One JSON object per line: each finding with its host, and each failed host.
pub fn jsonl(rep: &Report) -> Result<String> {
    let mut o = String::new();
    for h in &rep.run.hosts {
        match &h.status {
            Status::Reviewed { review, .. } => {
                for f in &review.findings {
                    let mut v = serde_json::to_value(f)?;
                    if let Some(m) = v.as_object_mut() {
                        m.insert("host".into(), h.name.clone().into());
                        m.insert("address".into(), h.address.clone().into());
                        m.insert("event".into(), "finding".into());
                        m.insert("time".into(), review.generated_at.clone().into());
                    }
                    o.push_str(&serde_json::to_string(&v)?);
                    o.push('\n');
                }
            }
            Status::Failed(f) => {
                let v = serde_json::json!({
                    "host": h.name,
                    "address": h.address,
                    "event": "host-failed",
                    "time": rep.run.started,
                    "reason": f.reason,
                    "detail": strip_controls(&f.detail),
                });
                o.push_str(&serde_json::to_string(&v)?);
                o.push('\n');
            }
        }
    }
    Ok(o)
}

/// The report in one format.
pub fn render_as(rep: &Report, format: FleetFormat) -> Result<String> {
    Ok(match format {
        FleetFormat::Text => text(rep),
        FleetFormat::Md => markdown(rep),
        FleetFormat::Json => serde_json::to_string_pretty(rep)? + "\n",
        FleetFormat::Html => html(rep),
        FleetFormat::Prometheus => prometheus(rep),
        FleetFormat::Jsonl => jsonl(rep)?,
    })
}

/// Write `--out`: the Prometheus file atomically and 0644 (node_exporter runs as its own
/// user and must read it; it holds counts, no finding), every other format as `vigil
/// review --out` does (0600, atomic). Something that is not a regular file the user named
/// on purpose (`/dev/stdout`, a FIFO) is written, not replaced.
pub fn write_out(path: &Path, format: FleetFormat, bytes: &[u8]) -> Result<()> {
    if format != FleetFormat::Prometheus {
        return crate::state::write_report(path, bytes);
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => crate::state::write_report(path, bytes),
        _ => vigil_tools::atomic::write_atomic_mode(path, bytes, 0o644)
            .with_context(|| format!("cannot write {}", path.display())),
    }
}

/// Every format, kept by a scheduled run in `STATE/fleet/<inventory>/reports/`.
const SCHEDULED: [(&str, FleetFormat); 6] = [
    ("txt", FleetFormat::Text),
    ("md", FleetFormat::Md),
    ("json", FleetFormat::Json),
    ("html", FleetFormat::Html),
    ("prom", FleetFormat::Prometheus),
    ("jsonl", FleetFormat::Jsonl),
];

fn save_reports(app: &App, dir: &FleetDir, rep: &Report) -> Result<Vec<String>> {
    let d = dir.reports_dir()?;
    let stamp: String = rep.run.started.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let mut written = Vec::new();
    for (ext, format) in SCHEDULED {
        let p = d.join(format!("fleet-{stamp}.{ext}"));
        crate::state::write_atomic(&p, render_as(rep, format)?.as_bytes())?;
        written.push(p.display().to_string());
    }
    let keep = app.config.schedule.keep_reports.unwrap_or(24).max(1);
    crate::state::prune_reports(&d, &SCHEDULED.map(|(ext, _)| ext), keep)?;
    Ok(written)
}

/// The notification of a scheduled fleet run: the hosts and fleet-wide rows (no host's whole
/// review), where the reports are; redacted like every notification.
pub fn note(rep: &Report, reports: &[String]) -> crate::notify::Note {
    let total = |s: Severity| rep.rows.iter().map(|r| r.count(s)).sum::<usize>();
    let failed = rep.rows.iter().filter(|r| r.failed()).count();
    let subject = format!(
        "vigil fleet {}: {failed} of {} hosts failed, {} critical, {} high",
        strip_controls(&rep.run.inventory),
        rep.rows.len(),
        total(Severity::Critical),
        total(Severity::High)
    );
    let mut body = crate::term::strip_controls(&summary_text(rep));
    if !reports.is_empty() {
        body.push_str("\nFull reports on the controller:\n");
        for p in reports {
            body.push_str(&format!("  {p}\n"));
        }
    }
    let json = serde_json::json!({
        "inventory": rep.run.inventory,
        "started": rep.run.started,
        "headline": headline(rep),
        "rows": rep.rows,
        "fleet_wide": rep.fleet_wide,
        "reused_secrets": rep.reused_secrets,
        "unused_admins": rep.unused_admins,
        "reports": reports,
    });
    let redactor = vigil_tools::Redactor::global();
    crate::notify::Note { subject, body: redactor.text(&body).into_owned(), json: redactor.value(json) }
}

/// Render, save and print a finished fleet run (a scheduled run keeps every format, notifies
/// and records itself for `schedule status`); the exit code of `fleet review`.
pub async fn finish(app: &App, args: &FleetReviewArgs, run: FleetRun) -> Result<u8> {
    let fail_on = match args.fail_on.as_deref() {
        None => None,
        Some(s) => Some(
            Severity::parse(s).with_context(|| format!("--fail-on {s}: use critical, high, medium, low or info"))?,
        ),
    };
    let dir = FleetDir::open(&app.state, &args.inventory)?;
    // Two runs over one inventory (a manual one during the scheduled one) take turns at
    // its history: each host's attempts and reviews are read-modify-write.
    let wait = std::time::Duration::from_secs(app.config.review.timeout_seconds.saturating_mul(2).max(600));
    let _lock = crate::review::lock::HostLock::acquire(dir.path(), wait).await?;
    let now = app.host.now_unix();
    let overdue_after = fleet_history::overdue_after(&app.state);
    let rep = prepare(&dir, run, now, overdue_after, app.config.review.keep_reviews)?;
    let code = exit_code(&rep.run, fail_on);
    let reports = if args.scheduled { save_reports(app, &dir, &rep)? } else { Vec::new() };
    let out = render_as(&rep, args.format)?;
    match &args.out {
        Some(p) => write_out(p, args.format, out.as_bytes())?,
        None if args.scheduled => {}
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())?,
    }
    if args.scheduled {
        let notify_errors = crate::notify::send_to_all(app, &note(&rep, &reports)).await;
        let at = fleet_history::unix_of(&rep.run.started).unwrap_or(now);
        let headline = format!("fleet {}: {}", strip_controls(&rep.run.inventory), headline(&rep));
        crate::schedule::record_run(
            &app.state,
            crate::schedule::Run { at, exit: code, headline, reports, notify_errors },
        )?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Report {
        Report {
            run: FleetRun {
                inventory: "hosts.ini".into(),
                limit: None,
                started: "2026-12-01T03:00:00Z".into(),
                hosts: vec![],
            },
            rows: vec![],
            fleet_wide: vec![],
            reused_secrets: vec![],
            reuse_checked: false,
            unused_admins: vec![],
            trends: BTreeMap::new(),
        }
    }

    #[test]
    fn a_reused_secret_is_shown_by_host_and_place_in_every_format() {
        let mut rep = empty();
        assert!(text(&rep).contains("not checked: no host returned keyed digests"), "no digests is not \"none\"");
        rep.reuse_checked = true;
        rep.reused_secrets = vec![ReusedSecret {
            what: "a database password".into(),
            places: vec![
                Place { host: "web-a".into(), place: "/var/www/shop/wp-config.php DB_PASSWORD".into() },
                Place { host: "db-1".into(), place: "/root/.my.cnf password".into() },
            ],
        }];
        let want = "a database password shared by web-a: /var/www/shop/wp-config.php DB_PASSWORD; db-1: /root/.my.cnf password";
        assert!(text(&rep).contains(want), "{}", text(&rep));
        assert!(markdown(&rep).contains(want));
        assert!(html(&rep).contains(want));
        let json = render_as(&rep, FleetFormat::Json).unwrap();
        assert!(json.contains("\"place\": \"/root/.my.cnf password\""), "{json}");
    }

    #[test]
    fn label_values_are_escaped_and_sites_fold_by_what_they_share() {
        assert_eq!(prom_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(fold_key("/var/www/shop plugin:woocommerce"), "plugin:woocommerce");
        assert_eq!(fold_key("tcp:9200"), "tcp:9200");
        assert_eq!(fold_key("%ops in /etc/sudoers.d/ops"), "%ops in /etc/sudoers.d/ops");
        let f = Finding::new(
            "updates.vulnerable-plugin",
            Severity::High,
            vigil_tools::Category::Updates,
            "/var/www/shop plugin:woocommerce",
            "WooCommerce 8.0 on /var/www/shop has 2 known vulnerabilities",
        );
        assert_eq!(generic_title(&f), "WooCommerce 8.0 on … has 2 known vulnerabilities");
    }
}
