//! `wordpress_apply_update`: apply a staged, verified update to production —
//! now, or later through a single-use approval — health-check it and restore
//! files and database at once when anything fails. The same tool rolls a
//! kept update back (`action: rollback`, its plan saying what is discarded)
//! and finishes or undoes an interrupted one (`action: recover`), every step
//! journalled so no interruption leaves a site half-updated.
//!
//! Split by what it does: [`now`] (apply now, with the transaction it runs),
//! [`deferred`] (apply later with `at`), [`rollback`] and [`recover`]. This file holds
//! the tool, its input and facts, the check that a staged update is ready, and the
//! journalled swap, undo and health check they share.

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
use crate::change::{Cmd, quote};
use crate::compared::Compared;
use crate::finding::{Category, Finding, Severity};
use crate::tool::{Change, Ctx, Outcome, Plan, ToolError};
use crate::wordpress::Site;

mod deferred;
mod now;
mod recover;
mod rollback;

use deferred::{deferred_plan, schedule};
use now::{apply, apply_plan};
use recover::{db_touched, recover, recover_plan};
use rollback::{count_discards, rollback, rollback_plan};

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

/// What an apply, rollback or recovery was planned from, handed unchanged to the run.
pub struct Prepared {
    r: Ready,
    /// For a deferred apply: the digest of the apply plan the job's token is bound to.
    digest: Option<String>,
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

fn mv(a: &Path, b: &Path) -> String {
    Cmd::new("mv", &["-T", &a.display().to_string(), &b.display().to_string()]).render()
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
impl Change for WordpressApplyUpdate {
    type Input = ApplyInput;
    type Output = ApplyFacts;
    type Prepared = Prepared;

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

    async fn prepare(&self, ctx: &Ctx, input: &ApplyInput) -> Result<(Plan, Prepared), ToolError> {
        let (plan, r, digest) = make_plan(ctx, input).await?;
        Ok((plan, Prepared { r, digest }))
    }

    async fn execute(
        &self,
        ctx: &Ctx,
        input: ApplyInput,
        p: Prepared,
        _proof: Compared,
    ) -> Result<Outcome<ApplyFacts>, ToolError> {
        let Prepared { r, digest } = p;
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
