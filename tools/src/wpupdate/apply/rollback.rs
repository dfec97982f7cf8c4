//! `action: rollback` of `wordpress_apply_update`: put back the backup taken before an
//! update, after counting what the rollback discards (orders, comments, posts written
//! since), so the plan can say so.

use super::*;

/// What a rollback to a backup taken at `since` throws away.
pub(super) async fn count_discards(ctx: &Ctx, site: &Site, state: &Path, since: i64) -> Vec<String> {
    let Ok(db) = Db::open(ctx, site, state) else {
        return vec!["could not count what was written since the backup (no database access)".into()];
    };
    let p = &db.prefix;
    let tables = db.tables(ctx, &db.name).await.unwrap_or_default();
    let has = |t: &str| tables.iter().any(|x| x == &format!("{p}{t}"));
    let mut queries: Vec<(&str, String)> = Vec::new();
    if has("posts") {
        queries.push((
            "posts and pages",
            format!("SELECT COUNT(*) FROM `{p}posts` WHERE post_type NOT IN ('revision','shop_order','shop_order_placehold') AND post_date_gmt > FROM_UNIXTIME({since})"),
        ));
        queries.push((
            "orders (posts)",
            format!("SELECT COUNT(*) FROM `{p}posts` WHERE post_type IN ('shop_order','shop_order_placehold') AND post_date_gmt > FROM_UNIXTIME({since})"),
        ));
    }
    if has("comments") {
        queries.push((
            "comments",
            format!("SELECT COUNT(*) FROM `{p}comments` WHERE comment_date_gmt > FROM_UNIXTIME({since})"),
        ));
    }
    if has("users") {
        queries.push((
            "user accounts",
            format!("SELECT COUNT(*) FROM `{p}users` WHERE user_registered > FROM_UNIXTIME({since})"),
        ));
    }
    if has("wc_orders") {
        queries.push((
            "WooCommerce orders",
            format!("SELECT COUNT(*) FROM `{p}wc_orders` WHERE date_created_gmt > FROM_UNIXTIME({since})"),
        ));
    }
    let mut out = Vec::new();
    for (what, q) in queries {
        let sql = format!("SET time_zone = '+00:00'; {q}");
        match db.query(ctx, &db.name, &sql).await {
            Ok(rows) => {
                let n: u64 = rows.first().and_then(|r| r.first()).and_then(|v| v.parse().ok()).unwrap_or(0);
                if n > 0 || what == "comments" || what.contains("orders") {
                    out.push(format!("{n} {what} written since {}", fmt_time(since)));
                }
            }
            Err(_) => out.push(format!("could not count {what} written since the backup")),
        }
    }
    out
}

pub(super) fn rollback_plan(r: &Ready, rec: &StagedRecord) -> Plan {
    let site = &r.site;
    let b = backup_dir(&r.state, &rec.id);
    let from = rec.apply_backup.clone().unwrap_or_else(|| rec.stage_backup.clone());
    let mut plan = Plan::new(
        TOOL,
        format!("roll {} back to the backup taken {} (before staged update {})", site.path, fmt_time(from.at), rec.id),
    )
    .step(format!("journal every step in {}", Journal::path(&r.state, &site.path).display()), None, None)
    .step(
        format!(
            "back up the site as it is now: {} and {} (so the rollback itself can be undone)",
            b.join("pre-rollback-files.tar.gz").display(),
            b.join("pre-rollback-db.sql").display()
        ),
        None,
        None,
    );
    for u in &rec.updates {
        if u.kind == UpdateKind::Core {
            plan = plan.step(
                format!(
                    "restore WordPress core files of {} from {} and swap them in by renames",
                    site.path, from.files
                ),
                None,
                Some(format!("the pre-rollback backup: {}", b.join("pre-rollback-files.tar.gz").display())),
            );
        } else {
            plan = plan.step(
                format!(
                    "restore {} ({} → {}) from {} and swap it in by renames",
                    u.target,
                    u.to,
                    u.from.as_deref().unwrap_or("?"),
                    from.files
                ),
                None,
                Some(format!("the pre-rollback backup: {}", b.join("pre-rollback-files.tar.gz").display())),
            );
        }
    }
    plan = plan
        .step(
            format!(
                "restore the database `{}` to the backup: drop the site's tables created since, load {}",
                site.db.name.as_deref().unwrap_or("?"),
                from.db
            ),
            Some(format!(
                "mariadb {CNF_SHOWN} {LOAD_SHOWN} {} < {}",
                quote(site.db.name.as_deref().unwrap_or("?")),
                quote(&from.db)
            )),
            Some(format!(
                "mariadb {CNF_SHOWN} {LOAD_SHOWN} {} < {}",
                quote(site.db.name.as_deref().unwrap_or("?")),
                b.join("pre-rollback-db.sql").display()
            )),
        )
        .step(
            "health-check production; if it fails, put back what was there before the rollback".to_string(),
            None,
            None,
        );
    plan = plan.warn(format!(
        "this DISCARDS everything written to the database since {}: {}",
        fmt_time(from.at),
        if r.discards.is_empty() { "nothing counted".to_string() } else { r.discards.join(", ") }
    ));
    plan
}

pub(super) async fn rollback(ctx: &Ctx, r: Ready) -> Result<Outcome<ApplyFacts>, ToolError> {
    let mut rec = r.rec.clone().ok_or_else(|| failed("no staged record"))?;
    let from = rec.apply_backup.clone().ok_or_else(|| failed("no backup to roll back to"))?;
    let mut facts = ApplyFacts {
        site: r.site.path.clone(),
        staged_id: Some(rec.id.clone()),
        changes: rec
            .updates
            .iter()
            .map(|u| format!("{} {} {} → {}", u.kind.as_str(), u.slug, u.to, u.from.as_deref().unwrap_or("?")))
            .collect(),
        ..Default::default()
    };
    facts.steps.extend(r.discards.iter().map(|d| format!("discarded: {d}")));
    let site_path = PathBuf::from(&r.site.path);
    let id = rec.id.clone();
    let updates = rec.updates.clone();
    let archive = PathBuf::from(&from.files);
    let prepare = move |j: &mut Journal| -> Result<Vec<PathBuf>, ToolError> {
        // Each unit's old content, back from the archive beside its target, written through
        // descriptors (the site's owner may change the site meanwhile).
        let mut restore = |t: PathBuf, sub: &str| -> Result<(), ToolError> {
            let ctx = |e: std::io::Error| failed(format!("restoring {}: {e}", t.display()));
            let unit = Unit::new(&site_path, &t, &id).map_err(ctx)?;
            let (parent, _) = files::open_parent(&site_path, &unit.new).map_err(ctx)?;
            let new_name = unit.new.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            unit.clear(&site_path).map_err(ctx)?;
            files::extract_sub(&archive, sub, &parent, &new_name)?;
            j.units.push(unit);
            Ok(())
        };
        for u in &updates {
            if u.kind == UpdateKind::Core {
                // Every core entry the update replaced, back from the archive.
                for name in core_entries(&archive)? {
                    restore(site_path.join(&name), &name)?;
                }
            } else {
                let t = PathBuf::from(&u.target);
                let sub = t.strip_prefix(&site_path).map_err(|_| failed("target outside the site"))?;
                let sub = sub.to_string_lossy().into_owned();
                restore(t, &sub)?;
            }
        }
        Ok(Vec::new())
    };
    let kept = transact(ctx, &r, Op::Rollback, "pre-rollback-", prepare, Some(from.db.clone()), &mut facts).await?;
    if kept {
        rec.rolled_back_at = Some(ctx.host.now_unix());
        rec.save(&r.state)?;
        facts.result = "rolled-back".into();
        facts.ok = true;
    } else {
        facts.result = "rollback-failed-restored".into();
    }
    Ok(Outcome::new(facts, Vec::new()))
}

/// Top-level core entries in a site backup (all but wp-content and wp-config.php).
#[expect(
    clippy::disallowed_methods,
    reason = "the site backup vigil itself wrote to its state directory, not a tenant file"
)]
pub(super) fn core_entries(archive: &Path) -> Result<Vec<String>, ToolError> {
    let f = std::fs::File::open(archive).map_err(failed)?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)));
    let mut names = std::collections::BTreeSet::new();
    for e in ar.entries().map_err(failed)? {
        let e = e.map_err(failed)?;
        let p = e.path().map_err(failed)?.to_string_lossy().into_owned();
        let rel = crate::archive_path::safe_rel(&p).map_err(failed)?;
        if let Some(first) = rel.components().next() {
            let n = first.as_os_str().to_string_lossy().into_owned();
            if n != "wp-content" && n != "wp-config.php" && !n.starts_with('.') {
                names.insert(n);
            }
        }
    }
    Ok(names.into_iter().collect())
}
