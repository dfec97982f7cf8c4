//! `vigil review`: the comprehensive review, and `vigil ack`.
//!
//! Exit codes: 0 when nothing is at or above `--fail-on` (or no `--fail-on`),
//! 1 when something is, 2 when the review could not run.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use vigil_tools::Severity;
use vigil_tools::config::parse_date;

use crate::app::App;
use crate::audit::Origin;
use crate::cli::{AckArgs, Format, ReviewArgs};
use crate::gate::{NoHuman, Scheduled};
use crate::review::{self, HostInfo, Review, ToolRun, acks, history, render};
use crate::state::host_name;

/// Render a review in a format (HTML with the trend of the saved reviews).
pub fn render_as(app: &App, r: &Review, format: Format) -> Result<String> {
    Ok(match format {
        Format::Text => render::text(r),
        Format::Md => render::markdown(r),
        Format::Json => serde_json::to_string_pretty(r)? + "\n",
        Format::Html => {
            let mut reviews = history::all(&app.host_dir()?);
            if reviews.last().map(|l| l.generated_at != r.generated_at).unwrap_or(true) {
                reviews.push(r.clone());
            }
            render::html(r, &render::trend(&reviews))
        }
    })
}

/// Run the deterministic review, save it, and return it.
pub async fn review(app: &App, scheduled: bool, notices: Vec<String>) -> Result<Review> {
    let confirmer: Arc<dyn crate::gate::Confirmer> = if scheduled {
        let allow = if app.config_trusted { app.config.schedule.allow.clone() } else { Vec::new() };
        Arc::new(Scheduled { allow })
    } else {
        Arc::new(NoHuman("a review only reads".into()))
    };
    let origin = if scheduled { Origin::Schedule } else { Origin::Review };
    let gate = app.gate(origin, confirmer)?;
    let ctx = gate.ctx().clone();
    let show = std::io::stderr().is_terminal();
    let progress = move |name: &str, run: &ToolRun, n: usize| {
        if show {
            let mark = if run.ok { crate::term::paint("32", "ok") } else { crate::term::paint("31", "FAILED") };
            eprintln!("  {mark:>6} {name:<22} {:>5} ms  {n} findings", run.ms);
        }
    };
    let host = HostInfo { name: host_name(&app.host), root: app.host.root().display().to_string() };
    let r = review::run(&gate, &ctx, host, review::Options { progress: &progress, notices }).await?;
    history::save(&app.host_dir()?, &r, app.config.review.keep_reviews)?;
    Ok(r)
}

/// Reports written by a scheduled run: every format, in `STATE/reports/`.
fn save_reports(app: &App, r: &Review) -> Result<Vec<String>> {
    let dir = app.state.sub("reports")?;
    let stamp: String = r.generated_at.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let name = crate::state::host_name(&app.host);
    let mut written = Vec::new();
    for (ext, format) in [("json", Format::Json), ("md", Format::Md), ("html", Format::Html), ("txt", Format::Text)] {
        let p = dir.join(format!("{name}-{stamp}.{ext}"));
        let text = if format == Format::Text {
            crate::term::strip_controls(&render::text(r))
        } else {
            render_as(app, r, format)?
        };
        crate::state::write_atomic(&p, text.as_bytes())?;
        written.push(p.display().to_string());
    }
    // Retention: keep the newest `keep` reports of each format.
    let keep = app.config.schedule.keep_reports.unwrap_or(24).max(1);
    let mut all: Vec<_> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    all.sort();
    for ext in ["json", "md", "html", "txt"] {
        let of: Vec<_> = all.iter().filter(|p| p.extension().is_some_and(|x| x == ext)).collect();
        for old in of.iter().take(of.len().saturating_sub(keep)) {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(written)
}

/// Test-restore every configured backup job, when the root-owned config allows it.
async fn scheduled_restores(app: &App) -> Result<()> {
    let allowed = app.config_trusted && app.config.schedule.allow.iter().any(|a| a == "verify_backup_restore");
    if !allowed || app.config.backups.is_empty() {
        return Ok(());
    }
    let gate = app.gate(Origin::Schedule, Arc::new(Scheduled { allow: app.config.schedule.allow.clone() }))?;
    for job in &app.config.backups {
        let r = gate.call("verify_backup_restore", serde_json::json!({"job": job.name})).await;
        if let Err(e) = r.result {
            eprintln!("vigil: restore test of {}: {}", job.name, crate::term::strip_controls(&e));
        }
    }
    Ok(())
}

/// Lines every review must lead with: an overdue schedule, notifications that failed.
pub fn notices(app: &App) -> Vec<String> {
    let mut n: Vec<String> = crate::schedule::overdue_notice(&app.state, app.host.now_unix()).into_iter().collect();
    for f in crate::notify::take_unshown(&app.state, false) {
        n.push(format!("A notification failed on {}: {} ({})", f.at, f.channel, f.error));
    }
    n
}

/// Send the review to every configured channel; returns the failures, for the run record.
pub async fn notify(app: &App, r: &Review, reports: &[String]) -> Vec<String> {
    let extra = crate::schedule::installed(&app.state).map(|i| i.notify).unwrap_or_default();
    let channels = crate::notify::channels(&app.config.notify, &extra);
    if channels.is_empty() {
        return Vec::new();
    }
    let store = crate::auth::OsKeyring::new();
    let sender = crate::notify::Sender { cfg: &app.config.notify, secrets: &store, retry: Default::default() };
    let note = crate::notify::Note::for_review(r, reports);
    sender
        .send_all(&channels, &note, Some(&app.state))
        .await
        .into_iter()
        .filter_map(|(name, res)| res.err().map(|e| format!("{name}: {e:#}")))
        .collect()
}

/// `vigil review`.
pub async fn run(app: &App, args: ReviewArgs) -> Result<u8> {
    let fail_on = match args.fail_on.as_deref() {
        None => None,
        Some(s) => Some(
            Severity::parse(s).with_context(|| format!("--fail-on {s}: use critical, high, medium, low or info"))?,
        ),
    };
    let started = app.host.now_unix();
    if args.scheduled {
        scheduled_restores(app).await?;
    }
    let r = review(app, args.scheduled, notices(app)).await?;
    if r.tools.values().all(|t| !t.ok) {
        eprintln!("vigil: no check could run on {}", app.host.root().display());
        return Ok(2);
    }
    let code = match fail_on {
        Some(s) if r.count_at_least(s) > 0 => 1,
        _ => 0,
    };
    let mut reports = Vec::new();
    if args.scheduled {
        reports = save_reports(app, &r)?;
    }
    let out = render_as(app, &r, args.format)?;
    match &args.out {
        Some(p) => std::fs::write(p, out).with_context(|| format!("cannot write {}", p.display()))?,
        None if args.scheduled => {}
        None => std::io::stdout().lock().write_all(out.as_bytes())?,
    }
    if args.scheduled {
        let notify_errors = notify(app, &r, &reports).await;
        for e in &notify_errors {
            eprintln!("vigil: notification failed: {e}");
        }
        let run =
            crate::schedule::Run { at: started, exit: code, headline: render::headline(&r), reports, notify_errors };
        crate::schedule::record_run(&app.state, run)?;
    }
    Ok(code)
}

/// `vigil ack`.
pub fn ack(app: &App, args: AckArgs) -> Result<u8> {
    if let Some(u) = &args.until {
        if parse_date(u).is_none() {
            bail!("--until {u}: use a date like 2027-01-31");
        }
    }
    if args.reason.trim().is_empty() {
        bail!("--reason must say why this is acceptable");
    }
    let by = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let today = app.host.now_unix() / 86_400;
    let ack = acks::Ack {
        id: args.id.clone(),
        subject: args.subject.clone(),
        reason: args.reason.clone(),
        until: args.until.clone(),
        by,
        at: acks::date_of_day(today),
    };
    acks::add(&app.host_dir()?, ack.clone())?;
    app.audit().append(serde_json::json!({"kind": "ack", "ack": ack}))?;
    let what = args.subject.as_deref().map(|s| format!(" on {s}")).unwrap_or_else(|| " (every subject)".into());
    let until = args.until.as_deref().map(|u| format!(" until {u}")).unwrap_or_else(|| " with no end date".into());
    println!("Acknowledged {}{what}{until}: shown in reviews, not counted.", args.id);
    Ok(0)
}
