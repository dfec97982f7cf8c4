//! The deterministic review of an [`App`]'s host, as `vigil review` and a fleet host's
//! `vigil __remote` both run it: one piece of code, so a host reviewed from the fleet is
//! reviewed exactly as it would be on its own. Saving, the model's summary, reports and
//! notifications are the callers' (see `crate::cmd::review`).

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Result;

use super::{HostInfo, Review};
use crate::app::App;
use crate::audit::Origin;
use crate::gate::{NoHuman, Scheduled};
use crate::state::host_name;

/// Run the deterministic review and return it (not yet saved: see `crate::cmd::review::save`).
pub async fn review(app: &App, scheduled: bool, notices: Vec<String>) -> Result<Review> {
    review_with_progress(app, scheduled, notices, false).await
}

/// [`review`], showing each check as it starts and ends: live on a terminal (a line per
/// finished check above a spinner naming those still running), as plain lines on a pipe
/// when `forced` (`--progress`); nothing on a pipe otherwise.
pub async fn review_with_progress(app: &App, scheduled: bool, notices: Vec<String>, forced: bool) -> Result<Review> {
    let confirmer: Arc<dyn crate::gate::Confirmer> = if scheduled {
        let allow = if app.config_trusted { app.config.schedule.allow.clone() } else { Vec::new() };
        Arc::new(Scheduled { allow })
    } else {
        Arc::new(NoHuman("a review only reads".into()))
    };
    let origin = if scheduled { Origin::Schedule } else { Origin::Review };
    let gate = app.gate(origin, confirmer)?;
    let ctx = gate.ctx().clone();
    let live = std::io::stderr().is_terminal();
    let total = app.registry.read_only().len() as u64;
    let bar = if live {
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} checks done — running: {wide_msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let running = std::sync::Mutex::new(Vec::<String>::new());
    let progress = |event: super::Event<'_>| {
        let Ok(mut now) = running.lock() else { return };
        let line = match event {
            super::Event::Started(name) => {
                now.push(name.to_string());
                (forced && !live).then(|| format!("  start  {name}"))
            }
            super::Event::Finished(name, run, n) => {
                now.retain(|r| r != name);
                let mark =
                    if run.ok { crate::term::paint_err("32", "ok") } else { crate::term::paint_err("31", "FAILED") };
                let found = super::priority::plural(n, "finding", "findings");
                let line = format!("  {mark:>6} {name:<22} {:>5} ms  {found}", run.ms);
                if let Some(b) = &bar {
                    b.inc(1);
                    b.println(&line);
                }
                (forced && !live).then_some(line)
            }
        };
        if let Some(b) = &bar {
            b.set_message(now.join(", "));
        }
        if let Some(l) = line {
            eprintln!("{l}");
        }
    };
    let host = HostInfo { name: host_name(&app.host), root: app.host.root().display().to_string() };
    let r = super::run(&gate, &ctx, host, super::Options { progress: &progress, notices }).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r
}

/// Why a finished review is no review at all (`vigil review` exits 2, a fleet host answers an error).
pub fn nothing_ran(app: &App, r: &Review) -> Option<String> {
    r.tools.values().all(|t| !t.ok).then(|| format!("no check could run on {}", app.host.root().display()))
}
