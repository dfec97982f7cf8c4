//! `wordpress_apply_update`: apply a staged, verified update to production —
//! now, or later through a single-use approval — health-check it and restore
//! files and database at once when anything fails. The same tool rolls a
//! kept update back (`action: rollback`, its plan saying what is discarded)
//! and finishes or undoes an interrupted one (`action: recover`), every step
//! journalled so no interruption leaves a site half-updated.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::approval::{self, Approval};
use super::db::{CNF_SHOWN, Db, LOAD_SHOWN};
use super::files::{self, BackupRef, Unit};
use super::health::{self, Health};
use super::journal::{Journal, Op, Phase};
use super::stage::{Timings, backup_site, build_units, staging_root};
use super::{
    BACKUP_DIR, RunAs, StagedRecord, UpdateKind, failed, fmt_time, mkdir_private, resolve_site, run_as, state_dir,
};
use crate::finding::{Category, Finding, Severity};
use crate::fixes::{Cmd, check_plan, quote, remember_plan};
use crate::tool::{Ctx, Outcome, Plan, Tool, ToolError};
use crate::wordpress::Site;

const TOOL: &str = "wordpress_apply_update";

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct WordpressApplyUpdate;

/// What to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    /// Apply the staged update to production (default).
    #[default]
    Apply,
    /// Restore the backup taken right before the update was applied (discards what was written since).
    Rollback,
    /// Finish or roll back an interrupted apply or rollback of this site (needs no staged_id).
    Recover,
}

/// Input of `wordpress_apply_update`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyInput {
    /// The site's directory, as `wordpress_inventory` and `wordpress_stage_update` report it.
    pub site: String,
    /// The id `wordpress_stage_update` returned (not needed for `recover`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_id: Option<String>,
    /// Apply later, at a quiet time: a systemd calendar time (`2026-11-28 03:00`) where systemd runs,
    /// else an `at` time (`03:00 tomorrow`). Absent: now. Only for `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// `apply` (default), `rollback` or `recover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ApplyAction>,
}

impl ApplyInput {
    fn action(&self) -> ApplyAction {
        self.action.unwrap_or_default()
    }

    /// The same call, applying now (what a deferred job runs).
    pub fn now(&self) -> ApplyInput {
        ApplyInput { site: self.site.clone(), staged_id: self.staged_id.clone(), at: None, action: None }
    }
}

/// A deferred apply, as scheduled.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Scheduled {
    /// When (as given).
    pub at: String,
    /// `systemd-run` or `at`.
    pub via: String,
    /// The job (unit or at job), for cancelling.
    pub job: String,
    /// How to cancel it.
    pub cancel: String,
    /// SHA-256 of the apply plan the approval is bound to.
    pub plan_digest: String,
}

/// Facts of `wordpress_apply_update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ApplyFacts {
    /// The site.
    pub site: String,
    /// The staged update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staged_id: Option<String>,
    /// What was done: `applied`, `rolled-back`, `restored-after-failure`, `scheduled`, `recovered-…`.
    pub result: String,
    /// True when the site ended where it was meant to (update kept, rollback done, recovery done).
    pub ok: bool,
    /// What changed, old → new.
    pub changes: Vec<String>,
    /// Production's health after the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Production's health after restoring, when it had to be restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_after_restore: Option<Health>,
    /// The backup taken first (restores this site to before the change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupRef>,
    /// A deferred apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Scheduled>,
    /// What happened, step by step.
    pub steps: Vec<String>,
    /// Milliseconds per step.
    pub timings: Vec<(String, u64)>,
}

struct Ready {
    site: Site,
    rec: Option<StagedRecord>,
    state: PathBuf,
    who: RunAs,
    journal: Option<Journal>,
    discards: Vec<String>,
}

fn backup_dir(state: &Path, id: &str) -> PathBuf {
    state.join(BACKUP_DIR).join(id)
}

fn rel(site: &Site, target: &str) -> String {
    let base = format!("{}/", site.path.trim_end_matches('/'));
    target.strip_prefix(&base).unwrap_or(target).to_string()
}

/// Host header for production's health check.
fn site_host(site: &Site) -> String {
    site.host.clone().unwrap_or_else(|| "localhost".into())
}

fn check_at(at: &str) -> Result<(), ToolError> {
    let ok = !at.trim().is_empty()
        && at.len() <= 64
        && at.chars().all(|c| c.is_ascii_alphanumeric() || " :-+*,./".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ToolError::InvalidInput(format!("at `{at}`: a time like `2026-11-28 03:00` or `03:00 tomorrow`")))
    }
}

async fn ready(ctx: &Ctx, input: &ApplyInput) -> Result<Ready, ToolError> {
    let site = resolve_site(ctx, &input.site)?;
    let state = state_dir(ctx)?;
    let who = run_as(ctx, &site)?;
    let journal = Journal::load(&state, &site.path)?;
    let action = input.action();
    if action == ApplyAction::Recover {
        let Some(j) = journal else {
            return Err(ToolError::InvalidInput(format!(
                "{}: nothing to recover (no interrupted apply or rollback is journalled)",
                site.path
            )));
        };
        if j.owner_alive() {
            return Err(ToolError::Refused(format!(
                "an {} of {} is still running (pid {}): wait for it",
                if j.op == Op::Apply { "apply" } else { "rollback" },
                site.path,
                j.pid
            )));
        }
        let rec = StagedRecord::load(&state, &site.path, &j.staged_id).ok();
        return Ok(Ready { site, rec, state, who, journal: Some(j), discards: Vec::new() });
    }
    if input.at.is_some() && action != ApplyAction::Apply {
        return Err(ToolError::InvalidInput("at: only an apply can be deferred".into()));
    }
    if let Some(j) = &journal {
        return Err(ToolError::Refused(format!(
            "an {} of {} (staged id {}) started {} and did not finish: run `vigil wp recover {}` first",
            if j.op == Op::Apply { "apply" } else { "rollback" },
            site.path,
            j.staged_id,
            fmt_time(j.started),
            quote(&site.path)
        )));
    }
    let id = input.staged_id.as_deref().ok_or_else(|| {
        ToolError::InvalidInput("staged_id: which staged update (wordpress_stage_update's id)".into())
    })?;
    let rec = StagedRecord::load(&state, &site.path, id)?;
    let mut discards = Vec::new();
    match action {
        ApplyAction::Apply => {
            if !rec.ok {
                return Err(ToolError::Refused(format!(
                    "staged update {id} failed on staging ({}): it is never applied",
                    rec.health.join("; ")
                )));
            }
            if rec.applied_at.is_some() && rec.rolled_back_at.is_none() {
                return Err(ToolError::Refused(format!(
                    "staged update {id} was already applied {}",
                    fmt_time(rec.applied_at.unwrap_or_default())
                )));
            }
            for u in &rec.updates {
                let now = super::installed_version(&site, u.kind, &u.slug);
                if now != u.from {
                    return Err(ToolError::Refused(format!(
                        "{} `{}` is at {} on production now, but was at {} when it was staged: stage it again",
                        u.kind.as_str(),
                        u.slug,
                        now.as_deref().unwrap_or("?"),
                        u.from.as_deref().unwrap_or("?")
                    )));
                }
                if u.kind != UpdateKind::Core && super::target_of(&site, u.kind, &u.slug)? != u.target {
                    return Err(ToolError::Refused(format!("{} moved since it was staged: stage it again", u.slug)));
                }
            }
            if let Some(at) = &input.at {
                check_at(at)?;
            }
        }
        ApplyAction::Rollback => {
            let Some(b) =
                rec.apply_backup.as_ref().filter(|_| rec.applied_at.is_some() && rec.rolled_back_at.is_none())
            else {
                return Err(ToolError::Refused(format!("staged update {id} is not applied: nothing to roll back")));
            };
            for f in [&b.files, &b.db] {
                if !Path::new(f).is_file() {
                    return Err(ToolError::Failed(format!("the backup {f} is gone: cannot roll back")));
                }
            }
            discards = count_discards(ctx, &site, &state, b.at).await;
        }
        ApplyAction::Recover => {}
    }
    Ok(Ready { site, rec: Some(rec), state, who, journal: None, discards })
}

/// What a rollback to a backup taken at `since` throws away.
async fn count_discards(ctx: &Ctx, site: &Site, state: &Path, since: i64) -> Vec<String> {
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

fn mv(a: &Path, b: &Path) -> String {
    Cmd::new("mv", &["-T", &a.display().to_string(), &b.display().to_string()]).render()
}

fn apply_plan(ctx: &Ctx, r: &Ready, rec: &StagedRecord) -> Result<Plan, ToolError> {
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

fn scheduler(ctx: &Ctx) -> Option<(&'static str, String)> {
    if Path::new("/run/systemd/system").is_dir() {
        if let Some(p) = ctx.host.which("systemd-run") {
            return Some(("systemd-run", p));
        }
    }
    ctx.host.which("at").map(|p| ("at", p))
}

fn job_argv(ctx: &Ctx, site: &str, id: &str, token: &str) -> Vec<String> {
    let mut v = ctx.session.relaunch.clone();
    v.extend(["wp".into(), "apply".into(), site.to_string(), id.to_string(), "--approval".into(), token.to_string()]);
    v
}

fn deferred_plan(ctx: &Ctx, r: &Ready, rec: &StagedRecord, at: &str) -> Result<(Plan, String), ToolError> {
    let now_plan = apply_plan(ctx, r, rec)?;
    let digest = crate::redact::Redactor::global().plan(now_plan.clone()).digest();
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
                r.state.join(super::APPROVAL_DIR).display()
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

fn rollback_plan(r: &Ready, rec: &StagedRecord) -> Plan {
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

fn recover_plan(r: &Ready, j: &Journal) -> Plan {
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
fn db_touched(j: &Journal) -> bool {
    j.backup.is_some() && j.phase >= Phase::Swap
}

async fn make_plan(ctx: &Ctx, input: &ApplyInput) -> Result<(Plan, Ready, Option<String>), ToolError> {
    let r = ready(ctx, input).await?;
    let (plan, digest) = match (input.action(), &r.rec, &r.journal) {
        (ApplyAction::Recover, _, Some(j)) => (recover_plan(&r, j), None),
        (ApplyAction::Rollback, Some(rec), _) => (rollback_plan(&r, rec), None),
        (ApplyAction::Apply, Some(rec), _) => match &input.at {
            Some(at) => {
                let (p, d) = deferred_plan(ctx, &r, rec, at)?;
                (p, Some(d))
            }
            None => (apply_plan(ctx, &r, rec)?, None),
        },
        _ => return Err(failed("inconsistent staged state")),
    };
    Ok((plan, r, digest))
}

#[async_trait]
impl Tool for WordpressApplyUpdate {
    type Input = ApplyInput;
    type Output = ApplyFacts;

    fn name(&self) -> &'static str {
        TOOL
    }

    fn description(&self) -> &'static str {
        "Apply an update staged and verified by wordpress_stage_update to the production site, now or at a quiet \
         time (`at`; the job carries a single-use approval bound to this plan). Backs up files and database first, \
         swaps in exactly the verified packages, health-checks production the same way as staging, and restores \
         files and database at once when anything fails. Every step is journalled. `action: rollback` restores the \
         backup taken before the update (its plan says how many orders, comments and posts written since would be \
         discarded); `action: recover` finishes or undoes an apply that was interrupted (power loss, kill)."
    }

    async fn plan(&self, ctx: &Ctx, input: &ApplyInput) -> Result<Plan, ToolError> {
        let (plan, _, _) = make_plan(ctx, input).await?;
        remember_plan(ctx, input, &plan);
        Ok(plan)
    }

    async fn run(&self, ctx: &Ctx, input: ApplyInput) -> Result<Outcome<ApplyFacts>, ToolError> {
        let (plan, r, digest) = make_plan(ctx, &input).await?;
        check_plan(ctx, &input, &plan)?;
        match input.action() {
            ApplyAction::Recover => recover(ctx, r).await,
            ApplyAction::Rollback => rollback(ctx, r).await,
            ApplyAction::Apply => match (&input.at, digest) {
                (Some(at), Some(d)) => schedule(ctx, r, at, d).await,
                _ => apply(ctx, r).await,
            },
        }
    }
}

async fn schedule(ctx: &Ctx, r: Ready, at: &str, digest: String) -> Result<Outcome<ApplyFacts>, ToolError> {
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
            super::exec::Proc::new(&prog, &a).run_ok(ctx, std::time::Duration::from_secs(60)).await?;
            Ok((format!("{unit}.timer"), format!("systemctl stop {unit}.timer")))
        } else {
            let job = r.state.join(super::APPROVAL_DIR).join(format!("job-{}.sh", rec.id));
            let text = format!("#!/bin/sh\nexec {}\n", Cmd::new("x", &argv).render().trim_start_matches("x "));
            super::write_atomic(&job, text.as_bytes()).map_err(failed)?;
            let out = super::exec::Proc::new(&prog, &["-f".to_string(), job.display().to_string(), at.to_string()])
                .run(ctx, std::time::Duration::from_secs(60))
                .await;
            let _ = std::fs::remove_file(&job);
            let out = out?;
            if !out.success() {
                return Err(failed(format!("at refused the time `{at}`: {}", crate::fixes::first_line(&out))));
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

/// Swap every prepared unit in, journalling each rename.
fn swap_in(j: &mut Journal, state: &Path, root: &Path, now: i64) -> Result<(), ToolError> {
    for i in 0..j.units.len() {
        j.units[i].move_old(root).map_err(|e| failed(format!("moving {} aside: {e}", j.units[i].target.display())))?;
        j.save(state)?;
        j.units[i]
            .put_new(root)
            .map_err(|e| failed(format!("putting the new {} in place: {e}", j.units[i].target.display())))?;
        let what = format!("swapped {}", j.units[i].target.display());
        j.log.push((now, what));
        j.save(state)?;
    }
    Ok(())
}

/// Put everything back as the journal's backup has it: units undone, database restored when touched.
async fn undo(ctx: &Ctx, site: &Site, state: &Path, j: &mut Journal, steps: &mut Vec<String>) -> Result<(), ToolError> {
    let touched = db_touched(j) || j.phase == Phase::Restore;
    j.phase = Phase::Restore;
    j.save(state)?;
    for i in (0..j.units.len()).rev() {
        j.units[i]
            .undo(Path::new(&site.path))
            .map_err(|e| failed(format!("putting back {}: {e}", j.units[i].target.display())))?;
        steps.push(format!("put back {}", j.units[i].target.display()));
        j.save(state)?;
    }
    if touched {
        if let Some(b) = j.backup.clone() {
            let db = Db::open(ctx, site, state)?;
            db.restore(ctx, &db.name, Path::new(&b.db)).await?;
            steps.push(format!("restored the database from {}", b.db));
        }
    }
    Journal::remove(state, &site.path)?;
    steps.push("journal removed".into());
    Ok(())
}

async fn check_production(ctx: &Ctx, r: &Ready, lint: &[PathBuf]) -> Result<Health, ToolError> {
    let root = staging_root(ctx);
    mkdir_private(&root, 0o711)?;
    let port = health::free_port()?;
    health::check(ctx, &r.who, Path::new(&r.site.path), &site_host(&r.site), port, &root, false, lint).await
}

fn new_journal(ctx: &Ctx, op: Op, site: &Site, id: &str) -> Journal {
    Journal {
        op,
        site: site.path.clone(),
        staged_id: id.to_string(),
        started: ctx.host.now_unix(),
        pid: std::process::id(),
        phase: Phase::Backup,
        backup: None,
        units: Vec::new(),
        db_load: None,
        log: Vec::new(),
    }
}

/// Take the backup, prepare the units (by `prepare`), swap, load a dump if asked, check; keep or undo.
async fn transact(
    ctx: &Ctx,
    r: &Ready,
    op: Op,
    tag: &str,
    prepare: impl FnOnce(&mut Journal) -> Result<Vec<PathBuf>, ToolError>,
    db_load: Option<String>,
    facts: &mut ApplyFacts,
) -> Result<bool, ToolError> {
    let rec = r.rec.as_ref().ok_or_else(|| failed("no staged record"))?;
    let now = ctx.host.now_unix();
    let mut t = Timings::new();
    let mut j = new_journal(ctx, op, &r.site, &rec.id);
    j.db_load = db_load.clone();
    j.save(&r.state)?;
    let bdir = backup_dir(&r.state, &rec.id);
    mkdir_private(&r.state.join(BACKUP_DIR), 0o700)?;
    mkdir_private(&bdir, 0o700)?;
    let backup = match backup_site(ctx, &r.site, &bdir, tag).await {
        Ok(b) => b,
        Err(e) => {
            Journal::remove(&r.state, &r.site.path)?;
            return Err(ToolError::Failed(format!("the backup failed, nothing was changed: {e}")));
        }
    };
    t.lap("backup (files + database)");
    facts.steps.push(format!("backed up {} files and {} tables", backup.file_count, backup.tables));
    facts.backup = Some(backup.clone());
    j.backup = Some(backup);
    j.step(&r.state, now, Phase::Prepare, "backup complete")?;
    let lint = match prepare(&mut j) {
        Ok(l) => l,
        Err(e) => {
            let mut s = Vec::new();
            undo(ctx, &r.site, &r.state, &mut j, &mut s).await?;
            return Err(ToolError::Failed(format!("preparing the new files failed, nothing was changed: {e}")));
        }
    };
    j.save(&r.state)?;
    t.lap("prepare new files");
    j.step(&r.state, now, Phase::Swap, "swapping")?;
    let mut failure: Option<String> = None;
    if let Err(e) = swap_in(&mut j, &r.state, Path::new(&r.site.path), now) {
        failure = Some(e.to_string());
    } else {
        facts.steps.push(format!("swapped {} path(s)", j.units.len()));
    }
    t.lap("swap");
    if failure.is_none() {
        if let Some(dump) = &db_load {
            j.step(&r.state, now, Phase::DbLoad, "loading the database")?;
            match async {
                let db = Db::open(ctx, &r.site, &r.state)?;
                db.restore(ctx, &db.name, Path::new(dump)).await
            }
            .await
            {
                Ok(()) => facts.steps.push(format!("loaded the database from {dump}")),
                Err(e) => failure = Some(e.to_string()),
            }
            t.lap("database load");
        }
    }
    if failure.is_none() {
        j.step(&r.state, now, Phase::Check, "health check")?;
        match check_production(ctx, r, &lint).await {
            Ok(h) => {
                if !h.ok {
                    failure = Some(format!("production fails its health check: {}", h.summary().join("; ")));
                }
                facts.health = Some(h);
            }
            Err(e) => failure = Some(format!("the health check could not run: {e}")),
        }
        t.lap("health check");
    }
    match failure {
        None => {
            j.step(&r.state, now, Phase::Keep, "kept")?;
            for u in &j.units {
                u.finish(Path::new(&r.site.path)).map_err(|e| failed(format!("removing {}: {e}", u.old.display())))?;
            }
            Journal::remove(&r.state, &r.site.path)?;
            t.lap("cleanup");
            facts.timings = t.into_inner();
            Ok(true)
        }
        Some(why) => {
            facts.steps.push(format!("FAILED: {why}"));
            undo(ctx, &r.site, &r.state, &mut j, &mut facts.steps).await?;
            t.lap("restore");
            facts.health_after_restore = check_production(ctx, r, &[]).await.ok();
            t.lap("health check after restore");
            facts.timings = t.into_inner();
            Ok(false)
        }
    }
}

async fn apply(ctx: &Ctx, r: Ready) -> Result<Outcome<ApplyFacts>, ToolError> {
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

async fn rollback(ctx: &Ctx, r: Ready) -> Result<Outcome<ApplyFacts>, ToolError> {
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
fn core_entries(archive: &Path) -> Result<Vec<String>, ToolError> {
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

async fn recover(ctx: &Ctx, r: Ready) -> Result<Outcome<ApplyFacts>, ToolError> {
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
