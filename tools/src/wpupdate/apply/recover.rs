//! `action: recover` of `wordpress_apply_update`: finish or undo an apply or rollback
//! that was interrupted (power loss, kill), from its journal.

use super::*;

pub(super) fn recover_plan(r: &Ready, j: &Journal) -> Plan {
    let site = &r.site;
    let what = if j.op == Op::Apply { "apply" } else { "rollback" };
    if j.phase == Phase::Keep {
        return Plan::new(
            TOOL,
            format!("finish the interrupted {what} of {} (it had passed its health check)", site.path),
        )
        .step(
            format!(
                "remove the old copies kept aside: {}",
                j.units.iter().map(|u| u.old.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
            None,
            None,
        )
        .step(
            format!("record it and remove the journal {}", Journal::path(&r.state, &site.path).display()),
            None,
            None,
        );
    }
    let mut plan = Plan::new(
        TOOL,
        format!(
            "undo the interrupted {what} of {} (staged {}, started {}, stopped while: {:?})",
            site.path,
            j.staged_id,
            fmt_time(j.started),
            j.phase
        ),
    );
    for u in j.units.iter().rev() {
        plan = plan.step(
            format!("make {} the old content again (found in state {:?})", u.target.display(), u.state),
            Some(if u.existed {
                format!(
                    "[ -e {0} ] && {{ rm -rf {1}; {2}; }}; rm -rf {3}",
                    quote(&u.old.display().to_string()),
                    quote(&u.target.display().to_string()),
                    mv(&u.old, &u.target),
                    quote(&u.new.display().to_string())
                )
            } else {
                format!("rm -rf {} {}", quote(&u.target.display().to_string()), quote(&u.new.display().to_string()))
            }),
            None,
        );
    }
    if db_touched(j) {
        if let Some(b) = &j.backup {
            plan = plan.step(
                format!("restore the database to the backup taken when the {what} started ({})", fmt_time(b.at)),
                Some(format!(
                    "mariadb {CNF_SHOWN} {LOAD_SHOWN} {} < {}",
                    quote(site.db.name.as_deref().unwrap_or("?")),
                    quote(&b.db)
                )),
                None,
            );
        }
    }
    plan.step("health-check production and remove the journal".to_string(), None, None)
}

/// The database may have changed: production served requests or a dump was loaded.
pub(super) fn db_touched(j: &Journal) -> bool {
    j.backup.is_some() && j.phase >= Phase::Swap
}

pub(super) async fn recover(ctx: &Ctx, r: Ready) -> Result<Outcome<ApplyFacts>, ToolError> {
    let mut j = r.journal.clone().ok_or_else(|| failed("no journal"))?;
    let mut facts =
        ApplyFacts { site: r.site.path.clone(), staged_id: Some(j.staged_id.clone()), ..Default::default() };
    let mut t = Timings::new();
    if j.phase == Phase::Keep {
        for u in &j.units {
            u.finish(Path::new(&r.site.path)).map_err(|e| failed(format!("removing {}: {e}", u.old.display())))?;
        }
        if let Some(mut rec) = r.rec.clone() {
            match j.op {
                Op::Apply => {
                    rec.applied_at = Some(j.started);
                    rec.apply_backup = j.backup.clone();
                    rec.rolled_back_at = None;
                }
                Op::Rollback => rec.rolled_back_at = Some(j.started),
            }
            rec.save(&r.state)?;
        }
        Journal::remove(&r.state, &r.site.path)?;
        facts.result = "recovered-finished".into();
        facts.ok = true;
        facts.steps.push("the interrupted change had passed its check: finished it".into());
        t.lap("finish");
    } else {
        facts.steps.push(format!("the interrupted {:?} stopped at {:?}: undoing it", j.op, j.phase));
        undo(ctx, &r.site, &r.state, &mut j, &mut facts.steps).await?;
        t.lap("undo");
        facts.result = "recovered-rolled-back".into();
        facts.health = check_production(ctx, &r, &[]).await.ok();
        t.lap("health check");
        facts.ok = true;
    }
    facts.timings = t.into_inner();
    Ok(Outcome::new(facts, Vec::new()))
}
