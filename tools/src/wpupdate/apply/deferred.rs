//! `wordpress_apply_update` with `at`: the plan and the scheduling of a deferred apply.
//! The job carries a single-use token bound to the digest of the apply plan
//! (`crate::approval::plan_digest`, the registry's own), so when it runs the gate opens
//! only for that plan.

use super::*;

pub(super) fn scheduler(ctx: &Ctx) -> Option<(&'static str, String)> {
    if Path::new("/run/systemd/system").is_dir() {
        if let Some(p) = ctx.host.which("systemd-run") {
            return Some(("systemd-run", p));
        }
    }
    ctx.host.which("at").map(|p| ("at", p))
}

pub(super) fn job_argv(ctx: &Ctx, site: &str, id: &str, token: &str) -> Vec<String> {
    let mut v = ctx.session.relaunch.clone();
    v.extend(["wp".into(), "apply".into(), site.to_string(), id.to_string(), "--approval".into(), token.to_string()]);
    v
}

pub(super) fn deferred_plan(ctx: &Ctx, r: &Ready, rec: &StagedRecord, at: &str) -> Result<(Plan, String), ToolError> {
    let now_plan = apply_plan(ctx, r, rec)?;
    // The digest the registry will compute when the job runs the apply (`Registry::plan`).
    let digest = crate::approval::plan_digest(&now_plan);
    let Some((via, _)) = scheduler(ctx) else {
        return Err(ToolError::Refused(
            "an apply can only be deferred with systemd (systemd-run) or `at`, and neither is available here; apply \
             it now, or install `at` and start atd"
                .into(),
        ));
    };
    if ctx.session.relaunch.is_empty() {
        return Err(ToolError::Refused(
            "a deferred apply needs to know how to start vigil again (run it from vigil)".into(),
        ));
    }
    let shown = Cmd::new("x", &job_argv(ctx, &r.site.path, &rec.id, "<single-use token>")).render();
    let shown = shown.trim_start_matches("x ").to_string();
    let (cmd, undo) = if via == "systemd-run" {
        (
            format!(
                "systemd-run --unit=vigil-wp-apply-{} --on-calendar={} --timer-property=AccuracySec=1s -- {shown}",
                rec.id,
                quote(at)
            ),
            format!("systemctl stop vigil-wp-apply-{}.timer", rec.id),
        )
    } else {
        (format!("at -f <job file running: {shown}> {}", quote(at)), "atrm <job number>".to_string())
    };
    let mut plan = Plan::new(TOOL, format!("at {at}: {}", now_plan.summary))
        .step(
            format!(
                "issue a single-use approval bound to SHA-256 {digest} of the apply plan below, stored 0600 in {}; \
                 if the plan at run time hashes differently (production changed), the job is refused",
                r.state.join(crate::wpupdate::APPROVAL_DIR).display()
            ),
            None,
            Some("it is deleted when the job runs, whatever happens".into()),
        )
        .step(format!("schedule the job with {via} for {at}"), Some(cmd), Some(undo));
    for s in now_plan.steps {
        plan.steps.push(crate::tool::PlanStep {
            action: format!("(at {at}) {}", s.action),
            command: s.command,
            undo: s.undo,
        });
    }
    plan.warnings = now_plan.warnings;
    Ok((plan, digest))
}

pub(super) async fn schedule(ctx: &Ctx, r: Ready, at: &str, digest: String) -> Result<Outcome<ApplyFacts>, ToolError> {
    let mut rec = r.rec.clone().ok_or_else(|| failed("no staged record"))?;
    let (via, prog) = scheduler(ctx).ok_or_else(|| failed("no scheduler"))?;
    let token = approval::issue(
        &r.state,
        &Approval {
            tool: TOOL.into(),
            site: r.site.path.clone(),
            staged_id: rec.id.clone(),
            plan_digest: digest.clone(),
            issued_at: ctx.host.now_unix(),
            at: at.to_string(),
        },
    )?;
    let argv = job_argv(ctx, &r.site.path, &rec.id, &token);
    let result: Result<(String, String), ToolError> = async {
        if via == "systemd-run" {
            let unit = format!("vigil-wp-apply-{}", rec.id);
            let mut a = vec![
                format!("--unit={unit}"),
                format!("--on-calendar={at}"),
                "--timer-property=AccuracySec=1s".into(),
                "--".into(),
            ];
            a.extend(argv.iter().cloned());
            crate::wpupdate::exec::Proc::new(&prog, &a).run_ok(ctx, std::time::Duration::from_secs(60)).await?;
            Ok((format!("{unit}.timer"), format!("systemctl stop {unit}.timer")))
        } else {
            let job = r.state.join(crate::wpupdate::APPROVAL_DIR).join(format!("job-{}.sh", rec.id));
            let text = format!("#!/bin/sh\nexec {}\n", Cmd::new("x", &argv).render().trim_start_matches("x "));
            crate::wpupdate::write_atomic(&job, text.as_bytes()).map_err(failed)?;
            let out =
                crate::wpupdate::exec::Proc::new(&prog, &["-f".to_string(), job.display().to_string(), at.to_string()])
                    .run(ctx, std::time::Duration::from_secs(60))
                    .await;
            let _ = std::fs::remove_file(&job);
            let out = out?;
            if !out.success() {
                return Err(failed(format!("at refused the time `{at}`: {}", crate::change::first_line(&out))));
            }
            let n = out.stderr.split_whitespace().skip_while(|w| *w != "job").nth(1).unwrap_or("?").to_string();
            Ok((format!("at job {n}"), format!("atrm {n}")))
        }
    }
    .await;
    let (job, cancel) = match result {
        Ok(x) => x,
        Err(e) => {
            approval::revoke(&r.state, &token);
            return Err(e);
        }
    };
    rec.scheduled = Some(format!("{at} ({job})"));
    rec.save(&r.state)?;
    Ok(Outcome::new(
        ApplyFacts {
            site: r.site.path.clone(),
            staged_id: Some(rec.id.clone()),
            result: "scheduled".into(),
            ok: true,
            changes: rec
                .updates
                .iter()
                .map(|u| format!("{} {} {} → {}", u.kind.as_str(), u.slug, u.from.as_deref().unwrap_or("?"), u.to))
                .collect(),
            scheduled: Some(Scheduled { at: at.to_string(), via: via.to_string(), job, cancel, plan_digest: digest }),
            ..Default::default()
        },
        Vec::new(),
    ))
}
