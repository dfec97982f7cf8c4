//! `vigil review`: the comprehensive review, and `vigil ack`.
//!
//! Exit codes: 0 when nothing is at or above `--fail-on` (or no `--fail-on`),
//! 1 when something is, 2 when the review could not run, 3 when it ran but
//! part of the host was not checked (and nothing made it 1).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vigil_tools::Severity;
use vigil_tools::format::parse_date;

use crate::app::App;
use crate::audit::Origin;
use crate::cli::{AckAction, AckArgs, Format, ReviewArgs};
use crate::gate::Scheduled;
use crate::review::lock::HostLock;
use crate::review::{ModelSummary, Review, acks, history, render};

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

pub use crate::review::deterministic::{nothing_ran, review, review_with_progress};

/// Keep the review in the host's history (the next review compares with it).
pub fn save(app: &App, r: &Review) -> Result<()> {
    history::save(&app.host_dir()?, r, app.config.review.keep_reviews)?;
    Ok(())
}

/// What the model is asked, after the system prompt.
const SUMMARY_INSTRUCTION: &str = "You are writing the short summary that goes on top of a deterministic security review. \
The user message is the review as JSON: its counts, open findings (id, severity, category, subject, title, evidence, fix) \
and what changed since the previous review. You have no tools and need none. \
Write a prioritised plan of at most three numbered items (what to do first, second, third), each naming the finding ids \
and subjects it covers, why it comes at that place (exposure, exploitability, what changed) and the concrete fix. \
Then at most two sentences on anything new since the last review. Plain text, no tables, no headings, under 200 words. \
Use only what the JSON says: never invent findings, hosts, versions or dates, and never ask for or repeat secrets.";

/// Most evidence lines per finding sent to the model (the review keeps them all).
const EVIDENCE_PER_FINDING: usize = 3;

/// The review as the model sees it: counts, findings and changes, compact and redacted — never the facts.
pub fn model_input(r: &Review) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = r
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "id": f.id,
                "severity": f.severity,
                "category": f.category,
                "subject": f.subject,
                "title": f.title,
                "evidence": f.evidence.iter().take(EVIDENCE_PER_FINDING).collect::<Vec<_>>(),
                "fix": f.remediation,
            })
        })
        .collect();
    let acknowledged: Vec<serde_json::Value> = r
        .acknowledged
        .iter()
        .map(|a| serde_json::json!({"id": a.finding.id, "subject": a.finding.subject, "until": a.ack.until}))
        .collect();
    let v = serde_json::json!({
        "host": r.host.name,
        "generated_at": r.generated_at,
        "notices": r.notices,
        "headline": render::headline(r),
        "summary": r.summary,
        "findings": findings,
        "acknowledged": acknowledged,
        "changes": r.changes,
        "checks_that_could_not_run": r.tools.iter().filter(|(_, t)| !t.ok).map(|(n, _)| n).collect::<Vec<_>>(),
        "not_checked": r.not_checked,
    });
    vigil_tools::Redactor::global().value(v)
}

/// The longest the model's summary may hold up a review (retries included).
const SUMMARY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Ask the model for a prioritised summary of `r`: one request, no tools. Never fails the review:
/// a model, network or API failure is the summary's `error`.
pub async fn model_summary(app: &App, client: crate::claude::Client, r: &Review) -> ModelSummary {
    use crate::claude::types::{CacheControl, SystemBlock};
    use crate::claude::{Message, Note, Request};
    let model = crate::agent::model_for(app);
    let failed = |e: String| ModelSummary { model: model.clone(), text: None, error: Some(e) };
    let input = match serde_json::to_string(&model_input(r)) {
        Ok(s) => s,
        Err(e) => return failed(format!("cannot encode the review: {e}")),
    };
    let req = Request {
        model: model.clone(),
        max_tokens: app.config.agent.max_tokens.clamp(1, 1024),
        system: vec![
            SystemBlock { kind: "text", text: crate::prompts::SYSTEM.to_string(), cache_control: None },
            SystemBlock {
                kind: "text",
                text: SUMMARY_INSTRUCTION.to_string(),
                cache_control: Some(CacheControl::EPHEMERAL),
            },
        ],
        tools: Vec::new(),
        messages: vec![Message::user_text(input)],
        stream: true,
    };
    let show = std::io::stderr().is_terminal();
    let mut on = |n: Note<'_>| {
        if let Note::Retrying { attempt, delay, why } = n {
            if show {
                eprintln!(
                    "vigil: model summary: attempt {attempt} failed ({}); retrying in {:.1} s",
                    crate::term::strip_controls(&why),
                    delay.as_secs_f64()
                );
            }
        }
    };
    let sent = tokio::time::timeout(SUMMARY_TIMEOUT, client.send(&req, &mut on)).await;
    let resp = match sent {
        Err(_) => return failed(format!("no answer within {} s", SUMMARY_TIMEOUT.as_secs())),
        Ok(Err(e)) => return failed(crate::term::strip_controls(&e.to_string())),
        Ok(Ok(resp)) => resp,
    };
    let text = vigil_tools::Redactor::global()
        .text(Message { role: crate::claude::Role::Assistant, content: resp.content }.text().trim())
        .into_owned();
    let stop = resp.stop_reason.map(|s| s.as_str().to_string()).unwrap_or_default();
    match stop.as_str() {
        _ if text.is_empty() => failed(format!("the model returned no text (stop reason {stop})")),
        "refusal" => failed("the model declined to summarise this review".into()),
        "max_tokens" => {
            ModelSummary { model, text: Some(format!("{text} […cut short at the output limit]")), error: None }
        }
        _ => ModelSummary { model, text: Some(text), error: None },
    }
}

/// The model's summary for a review run without `--offline`: `None` when there is no API key
/// (said once on stderr), else the summary or why there is none.
async fn summary_for(app: &App, r: &Review) -> Option<ModelSummary> {
    let store = crate::auth::OsKeyring::new();
    let key_file = if app.config_trusted { app.config.schedule.api_key_file.as_deref() } else { None };
    let model = crate::agent::model_for(app);
    let key = match crate::auth::find_api_key(&store, key_file) {
        Ok(Some((key, source))) => (key, source),
        Ok(None) => {
            eprintln!(
                "vigil: no API key, so this review has no model summary (the findings never need one); \
                 to add it run `vigil auth login`, set ANTHROPIC_API_KEY, or for scheduled runs \
                 `vigil schedule install --key-file FILE`; --offline skips this note"
            );
            return None;
        }
        Err(e) => {
            let e = crate::term::strip_controls(&format!("{e:#}"));
            eprintln!("vigil: no model summary: {e}");
            return Some(ModelSummary { model, text: None, error: Some(format!("no usable API key: {e}")) });
        }
    };
    let client = match crate::claude::Client::new(key.0, None) {
        Ok(c) => c.with_key_source(key.1),
        Err(e) => return Some(ModelSummary { model, text: None, error: Some(format!("{e:#}")) }),
    };
    let m = model_summary(app, client, r).await;
    if let Some(e) = &m.error {
        eprintln!("vigil: no model summary: {e} (the review is complete without it)");
    }
    let _ = app.audit().append(serde_json::json!({
        "kind": "model_summary",
        "model": m.model,
        "ok": m.error.is_none(),
        "error": m.error,
    }));
    Some(m)
}

/// Reports written by a scheduled run: every format, in `STATE/reports/`.
fn save_reports(app: &App, r: &Review) -> Result<Vec<String>> {
    let dir = app.state.sub("reports")?;
    let stamp: String = r.generated_at.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    // The host name is the audited root's to choose: keep it to a safe file name.
    let name: String = crate::state::host_name(&app.host)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
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
            eprintln!("vigil: restore test of {}: {}", job.name, crate::term::strip_controls(&e.to_string()));
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

/// How long a run waits for another run on the same host before giving up.
fn lock_wait(app: &App) -> Duration {
    Duration::from_secs(app.config.review.timeout_seconds.saturating_mul(2).max(600))
}

/// SIGTERM (systemd stopping the job, `timeout`) and SIGINT, caught from the moment
/// this is made: a signal that arrives before the first `recv` is kept, not fatal.
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn catch() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
    }

    /// The first signal: its name and number.
    async fn recv(&mut self) -> (&'static str, u8) {
        match (&mut self.term, &mut self.int) {
            (Some(term), Some(int)) => tokio::select! {
                _ = term.recv() => ("SIGTERM", 15),
                _ = int.recv() => ("SIGINT", 2),
            },
            _ => std::future::pending().await,
        }
    }
}

/// `vigil review`: one run per host at a time; SIGTERM/SIGINT stop it cleanly.
pub async fn run(app: &App, args: ReviewArgs) -> Result<u8> {
    let fail_on = match args.fail_on.as_deref() {
        None => None,
        Some(s) => Some(
            Severity::parse(s).with_context(|| format!("--fail-on {s}: use critical, high, medium, low or info"))?,
        ),
    };
    let mut stop = StopSignals::catch();
    let locked = async {
        let _lock = HostLock::acquire(&app.host_dir()?, lock_wait(app)).await?;
        reviewed(app, args, fail_on).await
    };
    tokio::select! {
        code = locked => code,
        (name, num) = stop.recv() => {
            // The review future is dropped: every running check is cancelled, which kills its
            // child processes (kill_on_drop) and removes its scratch directories; give the tool
            // threads a moment to do that before the process exits.
            vigil_tools::registry::settle(Duration::from_secs(3)).await;
            eprintln!("vigil: stopped by {name}: the review did not finish (what was already saved is intact)");
            Ok(128 + num)
        }
    }
}

async fn reviewed(app: &App, args: ReviewArgs, fail_on: Option<Severity>) -> Result<u8> {
    let started = app.host.now_unix();
    if args.scheduled {
        scheduled_restores(app).await?;
    }
    let mut r = review_with_progress(app, args.scheduled, notices(app), args.progress).await?;
    if let Some(why) = nothing_ran(app, &r) {
        save(app, &r)?;
        eprintln!("vigil: {why}");
        return Ok(2);
    }
    if !args.offline {
        r.model_summary = summary_for(app, &r).await;
    }
    save(app, &r)?;
    let code = exit_code(&r, fail_on);
    let mut reports = Vec::new();
    let mut notify_errors = Vec::new();
    if args.scheduled {
        reports = save_reports(app, &r)?;
        notify_errors = notify(app, &r, &reports).await;
    }
    let out = match (args.format, &args.out) {
        // On a terminal the long lines are wrapped to its width; files and pipes get whole lines.
        (Format::Text, None) => render::text_to_width(&r, crate::term::width()),
        _ => render_as(app, &r, args.format)?,
    };
    match &args.out {
        Some(p) => crate::state::write_report(p, out.as_bytes())?,
        None if args.scheduled => {}
        None => std::io::stdout().lock().write_all(out.as_bytes())?,
    }
    if args.scheduled {
        let run =
            crate::schedule::Run { at: started, exit: code, headline: render::headline(&r), reports, notify_errors };
        crate::schedule::record_run(&app.state, run)?;
    }
    Ok(code)
}

/// 1 when a finding is at or above `--fail-on`, else 3 when the review is partial
/// (a `--fail-on` user is never told "fine" about what was not looked at), else 0.
pub fn exit_code(r: &Review, fail_on: Option<Severity>) -> u8 {
    match fail_on {
        Some(s) if r.count_at_least(s) > 0 => 1,
        _ if r.partial() => 3,
        _ => 0,
    }
}

/// `vigil ack`, `vigil ack list`, `vigil ack remove` (changes under the host lock:
/// acknowledgements are read-modify-write).
pub async fn ack(app: &App, args: AckArgs) -> Result<u8> {
    match args.action {
        Some(AckAction::List { json }) => return ack_list(app, json),
        Some(AckAction::Remove { id, subject }) => {
            let _lock = HostLock::acquire(&app.host_dir()?, lock_wait(app)).await?;
            return ack_remove(app, &id, subject.as_deref());
        }
        None => {}
    }
    let (Some(id), Some(reason)) = (args.id.clone(), args.reason.clone()) else {
        bail!("usage: vigil ack ID --reason WHY [--subject S] [--until DATE] (or `vigil ack list`)");
    };
    if !vigil_tools::finding::KNOWN_IDS.contains(&id.as_str()) && !seen_on_this_host(app, &id) {
        let close = vigil_tools::finding::closest_ids(&id, 3);
        bail!(
            "no check produces the finding id `{}`; the closest are: {} (ids are shown in brackets in every review)",
            crate::term::strip_controls(&id),
            close.join(", ")
        );
    }
    if let Some(u) = &args.until {
        if parse_date(u).is_none() {
            bail!("--until {u}: use a date like 2027-01-31");
        }
    }
    if reason.trim().is_empty() {
        bail!("--reason must say why this is acceptable");
    }
    let by = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let today = app.host.now_unix() / 86_400;
    let ack = acks::Ack {
        id: id.clone(),
        subject: args.subject.clone(),
        reason,
        until: args.until.clone(),
        by,
        at: acks::date_of_day(today),
    };
    let _lock = HostLock::acquire(&app.host_dir()?, lock_wait(app)).await?;
    acks::add(&app.host_dir()?, ack.clone())?;
    app.audit().append(serde_json::json!({"kind": "ack", "ack": ack}))?;
    let what = args.subject.as_deref().map(|s| format!(" on {s}")).unwrap_or_else(|| " (every subject)".into());
    let until = args.until.as_deref().map(|u| format!(" until {u}")).unwrap_or_else(|| " with no end date".into());
    println!("Acknowledged {id}{what}{until}: shown in reviews, not counted.");
    Ok(0)
}

/// True when a saved review of this host has a finding with this id (a check from another version).
fn seen_on_this_host(app: &App, id: &str) -> bool {
    app.host_dir().map(|d| history::all(&d).iter().any(|r| r.findings.iter().any(|f| f.id == id))).unwrap_or(false)
}

fn ack_list(app: &App, json: bool) -> Result<u8> {
    let all = acks::load(&app.host_dir()?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    if all.is_empty() {
        println!("No acknowledgements for this host.");
        return Ok(0);
    }
    let today = app.host.now_unix() / 86_400;
    for a in &all {
        let subject = a.subject.as_deref().unwrap_or("(every subject)");
        let until = match (&a.until, a.active(today)) {
            (Some(u), true) => format!("until {u}"),
            (Some(u), false) => format!("EXPIRED {u}"),
            (None, _) => "no end date".into(),
        };
        let line = format!("{} {subject} — \"{}\" ({}, {}, {until})", a.id, a.reason, a.by, a.at);
        println!("{}", crate::term::strip_controls(&line));
    }
    Ok(0)
}

fn ack_remove(app: &App, id: &str, subject: Option<&str>) -> Result<u8> {
    let gone = acks::remove(&app.host_dir()?, id, subject)?;
    if gone == 0 {
        let what = subject.map(|s| format!(" on {s}")).unwrap_or_default();
        bail!(
            "no acknowledgement of `{}`{} to remove (see `vigil ack list`)",
            crate::term::strip_controls(id),
            crate::term::strip_controls(&what)
        );
    }
    app.audit().append(serde_json::json!({"kind": "ack_removed", "id": id, "subject": subject}))?;
    println!(
        "Removed {gone} acknowledgement{} of {id}: it counts again from the next review.",
        if gone == 1 { "" } else { "s" }
    );
    Ok(0)
}
