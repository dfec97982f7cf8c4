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
            let mut args = Vec::new();
            if let Some(c) = &app.global.config {
                args.extend(["--config".to_string(), c.display().to_string()]);
            }
            if let Some(s) = &app.global.state_dir {
                args.extend(["--state-dir".to_string(), s.display().to_string()]);
            }
            if let Some(r) = &app.global.root {
                args.extend(["--root".to_string(), r.display().to_string()]);
            }
            let req = schedule::Request {
                period,
                cron,
                exe: &exe,
                args,
                key_file: a.key_file.as_deref(),
                notify: a.notify.clone(),
            };
            let (inst, notes) = schedule::install(&app.host, &app.state, req).await?;
            println!("Installed a {} review via {}:", inst.period, inst.backend);
            for n in notes {
                println!("  - {n}");
            }
            println!("The job runs: {}", inst.exec);
            Ok(0)
        }
        ScheduleAction::Status => {
            print!("{}", schedule::status(&app.state, app.host.now_unix()));
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
