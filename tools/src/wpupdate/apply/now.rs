//! `wordpress_apply_update` applied now: the plan of swapping in exactly the verified
//! packages, and the transaction that backs up, swaps, health-checks production and
//! restores at once when anything fails.

use super::*;

pub(super) fn apply_plan(ctx: &Ctx, r: &Ready, rec: &StagedRecord) -> Result<Plan, ToolError> {
    let b = backup_dir(&r.state, &rec.id);
    let site = &r.site;
    let changes: Vec<String> = rec
        .updates
        .iter()
        .map(|u| format!("{} {} {} → {}", u.kind.as_str(), u.slug, u.from.as_deref().unwrap_or("?"), u.to))
        .collect();
    let mut plan = Plan::new(TOOL, format!("apply {} to {} (staged {})", changes.join(", "), site.path, rec.id))
        .step(
            format!(
                "journal every step in {} (an interruption is finished or undone by `vigil wp recover {}`)",
                Journal::path(&r.state, &site.path).display(),
                quote(&site.path)
            ),
            None,
            None,
        )
        .step(
            format!(
                "back up the files again: tar.gz of {} → {}, and the database `{}` → {} ({} --skip-dump-date …); both \
                 read back",
                site.path,
                b.join("apply-files.tar.gz").display(),
                site.db.name.as_deref().unwrap_or("?"),
                b.join("apply-db.sql").display(),
                CNF_SHOWN
            ),
            None,
            Some("kept: `action: rollback` restores it".into()),
        );
    for u in &rec.updates {
        let pkg = StagedRecord::package_dir(&r.state, &rec.id);
        plan = plan.step(
            format!(
                "unpack the verified package (sha256 {}…, from {}) beside {} and give it the owner of what it replaces",
                &u.sha256[..16.min(u.sha256.len())],
                pkg.display(),
                rel(site, &u.target)
            ),
            None,
            None,
        );
        if u.kind == UpdateKind::Core {
            plan = plan.step(
                format!(
                    "swap every core file and directory of {} (all but wp-content and wp-config.php) by renames",
                    site.path
                ),
                Some(format!(
                    "for each X: mv -T {0}/X {0}/.X.vigil-old-{1}; mv -T {0}/.X.vigil-new-{1} {0}/X",
                    site.path, rec.id
                )),
                Some(format!("for each X: rm -rf {0}/X; mv -T {0}/.X.vigil-old-{1} {0}/X", site.path, rec.id)),
            );
        } else {
            let t = PathBuf::from(&u.target);
            let (new, old) = (files::sibling(&t, "new", &rec.id), files::sibling(&t, "old", &rec.id));
            plan = plan.step(
                format!("swap {} ({} → {})", u.target, u.from.as_deref().unwrap_or("?"), u.to),
                Some(format!("{}; {}", mv(&t, &old), mv(&new, &t))),
                Some(format!("rm -rf {}; {}", quote(&u.target), mv(&old, &t))),
            );
        }
    }
    let php = health::php(ctx)?;
    let serve = health::serve_cmd(
        &php,
        &r.who,
        Path::new(&site.path),
        "<port>",
        Path::new("<private dir>/php-errors.log"),
        false,
    )?;
    Ok(plan
        .step(
            format!(
                "health-check production: serve it on loopback as {} (mail disabled) and GET {} with Host: {}; no 5xx, \
                 no PHP fatal error in a page or the log; php -l on the changed files",
                r.who.name.clone().unwrap_or_else(|| format!("uid {}", r.who.uid)),
                health::pages(ctx).join(", "),
                site_host(site)
            ),
            Some(serve.render()),
            None,
        )
        .step(
            "passed: remove the old copies and record the update as applied. Failed: put the old copies back and \
             restore the database from the backup just taken, at once, then check again"
                .to_string(),
            None,
            Some(format!("mariadb {CNF_SHOWN} {LOAD_SHOWN} {} < {}", quote(site.db.name.as_deref().unwrap_or("?")), b.join("apply-db.sql").display())),
        )
        .warn("the site runs the new code from the swap on; writes made between the backup and a failed check are lost by the automatic restore"))
}

pub(super) async fn apply(ctx: &Ctx, r: Ready) -> Result<Outcome<ApplyFacts>, ToolError> {
    let mut rec = r.rec.clone().ok_or_else(|| failed("no staged record"))?;
    let pkgdir = StagedRecord::package_dir(&r.state, &rec.id);
    let mut facts = ApplyFacts {
        site: r.site.path.clone(),
        staged_id: Some(rec.id.clone()),
        changes: rec
            .updates
            .iter()
            .map(|u| format!("{} {} {} → {}", u.kind.as_str(), u.slug, u.from.as_deref().unwrap_or("?"), u.to))
            .collect(),
        ..Default::default()
    };
    // The packages applied are exactly the ones verified on staging.
    let mut zips = Vec::new();
    for u in &rec.updates {
        let zip = pkgdir.join(format!("{}-{}-{}.zip", u.kind.as_str(), u.slug, &u.sha256[..12]));
        let sum = files::sha256_file(&zip)
            .map_err(|e| failed(format!("the verified package {} is gone: {e}", zip.display())))?;
        if sum != u.sha256 {
            return Err(ToolError::Refused(format!("{} changed since it was verified: refused", zip.display())));
        }
        zips.push((u.clone(), zip));
    }
    let site_path = PathBuf::from(&r.site.path);
    let id = rec.id.clone();
    let prepare = |j: &mut Journal| -> Result<Vec<PathBuf>, ToolError> {
        let mut lint = Vec::new();
        for (u, zip) in &zips {
            let (units, l) = build_units(u.kind, &u.slug, zip, &site_path, Path::new(&u.target), &id)?;
            j.units.extend(units);
            lint.extend(l);
        }
        Ok(lint)
    };
    let kept = transact(ctx, &r, Op::Apply, "apply-", prepare, None, &mut facts).await?;
    let mut findings = Vec::new();
    if kept {
        rec.applied_at = Some(ctx.host.now_unix());
        rec.apply_backup = facts.backup.clone();
        rec.rolled_back_at = None;
        rec.scheduled = None;
        rec.save(&r.state)?;
        facts.result = "applied".into();
        facts.ok = true;
    } else {
        facts.result = "restored-after-failure".into();
        findings.push(
            Finding::new(
                "updates.apply-failed-restored",
                Severity::High,
                Category::Updates,
                r.site.path.clone(),
                format!("Applying {} broke production; files and database were restored", facts.changes.join(", ")),
            )
            .evidence(facts.steps.join("; "))
            .fix("Production is back as it was. Look at the health check above; stage the update again after fixing the cause."),
        );
    }
    Ok(Outcome::new(facts, findings))
}
