//! `vigil report`: the latest saved review of this host and the month-by-month trend.

use std::io::Write;

use anyhow::{Context, Result, bail};
use vigil_tools::Severity;

use crate::app::App;
use crate::cli::{Format, ReportArgs};
use crate::review::{history, render};

/// Text table of the trend: one line per month.
pub fn trend_text(points: &[render::TrendPoint]) -> String {
    let mut o =
        String::from("\nTREND (open findings, last review of each month)\n  month     critical  high  medium  low\n");
    for p in points {
        let c = |s: Severity| p.by_severity.get(s.as_str()).copied().unwrap_or(0);
        o.push_str(&format!(
            "  {:<9} {:>8} {:>5} {:>7} {:>4}\n",
            p.label,
            c(Severity::Critical),
            c(Severity::High),
            c(Severity::Medium),
            c(Severity::Low)
        ));
    }
    o
}

/// `vigil report`.
pub fn run(app: &App, args: ReportArgs) -> Result<u8> {
    let dir = app.host_dir()?;
    let reviews = history::all(&dir);
    let Some(latest) = reviews.last() else {
        bail!("no saved review of {} yet: run `vigil review` first", app.host.root().display());
    };
    let points = render::trend(&reviews);
    let trend = if points.len() > 1 {
        trend_text(&points)
    } else {
        // One month is no trend: say when it starts instead of repeating the review as one.
        let month = points.first().map(|p| p.label.clone()).unwrap_or_default();
        format!(
            "\nTREND: starts with next month's review (only {month} is saved so far; a review in a later month adds the first point of comparison).\n"
        )
    };
    let out = match args.format {
        Format::Text => render::text(latest) + &trend,
        Format::Md => render::markdown(latest) + &format!("\n## Trend\n\n```\n{trend}```\n"),
        Format::Json => {
            let trend: Vec<_> = points
                .iter()
                .map(|p| serde_json::json!({"month": p.label, "by_severity": p.by_severity, "by_category": p.by_category}))
                .collect();
            serde_json::to_string_pretty(&serde_json::json!({"latest": latest, "trend": trend}))? + "\n"
        }
        Format::Html => render::html(latest, &points),
    };
    let target = match (&args.out, args.open) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(app.state.sub("reports")?.join("latest.html")),
        (None, false) => None,
    };
    match &target {
        Some(p) => crate::state::write_report(p, out.as_bytes())?,
        None => std::io::stdout().lock().write_all(out.as_bytes())?,
    }
    if args.open {
        let p = target.context("nothing to open")?;
        if args.format != Format::Html {
            eprintln!("vigil: --open shows HTML; use --format html for the chart");
        }
        let status = open_in_browser(&p);
        if !status.map(|s| s.success()).unwrap_or(false) {
            eprintln!("vigil: could not open a browser; the report is at {}", p.display());
        }
    }
    Ok(0)
}

/// `xdg-open FILE` through the one spawner: the desktop session's own variables
/// (display, session bus, home) and nothing else of vigil's environment.
fn open_in_browser(file: &std::path::Path) -> std::io::Result<std::process::ExitStatus> {
    let prog = vigil_tools::spawn::resolve("xdg-open")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "xdg-open is not installed"))?;
    let keep =
        ["DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "HOME", "XAUTHORITY", "BROWSER"];
    let vars: Vec<(&str, String)> = keep.iter().filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))).collect();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vigil_tools::spawn::std_command(&prog, &[file], &env).status()
}
