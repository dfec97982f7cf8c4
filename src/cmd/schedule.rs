//! `vigil schedule install | status | remove`.

use anyhow::{Context, Result};

use crate::app::App;
use crate::cli::ScheduleAction;
use crate::schedule;

/// Run `vigil schedule …`.
pub async fn run(app: &App, action: ScheduleAction) -> Result<u8> {
    match action {
        ScheduleAction::Install(a) => {
            let exe = std::env::current_exe().context("cannot find the vigil binary to schedule")?;
            let (period, cron) = match (a.monthly, a.weekly, a.cron.as_deref()) {
                (true, _, _) => ("monthly", None),
                (_, true, _) => ("weekly", None),
                (_, _, Some(c)) => ("cron", Some(c)),
                _ => anyhow::bail!("choose --monthly, --weekly or --cron EXPR"),
            };
            // The job runs from another directory: every path it is given must be absolute.
            let abs =
                |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
            let mut args = Vec::new();
            if let Some(c) = &app.global.config {
                args.extend(["--config".to_string(), abs(c)]);
            }
            if let Some(s) = &app.global.state_dir {
                args.extend(["--state-dir".to_string(), abs(s)]);
            }
            if let Some(r) = &app.global.root {
                args.extend(["--root".to_string(), abs(r)]);
            }
            if let Some(f) = &app.global.vuln_feed {
                args.extend(["--vuln-feed".to_string(), abs(f)]);
            }
            let fleet = a.fleet.as_deref().map(crate::fleet::scheduled::check_inventory).transpose()?;
            let req = schedule::Request {
                period,
                cron,
                exe: &exe,
                args,
                key_file: a.key_file.as_deref(),
                notify: a.notify.clone(),
                fleet: fleet.as_deref(),
            };
            let (inst, notes) = schedule::install(&app.host, &app.state, req).await?;
            match &inst.fleet {
                Some(inv) => println!("Installed a {} fleet review of {inv} via {}:", inst.period, inst.backend),
                None => println!("Installed a {} review via {}:", inst.period, inst.backend),
            }
            for n in notes {
                println!("  - {n}");
            }
            println!("The job runs: {}", inst.exec);
            if let Some(why) = schedule::nothing_runs_it(&app.host, &inst.backend) {
                println!("WARNING: nothing will run this job yet: {why}.");
            }
            Ok(0)
        }
        ScheduleAction::Status { json: true } => {
            let v = schedule::status_json(&app.host, &app.state, app.host.now_unix());
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        ScheduleAction::Status { json: false } => {
            print!("{}", schedule::status(&app.host, &app.state, app.host.now_unix()));
            Ok(0)
        }
        ScheduleAction::Remove => {
            for n in schedule::remove(&app.host, &app.state).await? {
                println!("  - {n}");
            }
            Ok(0)
        }
    }
}
