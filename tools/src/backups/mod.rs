//! `check_backups`: backups that exist on paper only (pattern 4).
//!
//! "Backups run every night — I set it up months ago." Then the disk fills,
//! the job fails silently, and eight months later the newest backup is eight
//! months old. This tool checks what the backups *are*, not what they are
//! supposed to be: the newest archive of each job (configured in
//! `[[backups]]` or discovered in `/var/backups`, restic/borg repositories and
//! archive directories under the usual backup roots) against its age limit,
//! its size against the one before, the job's log for errors since the last
//! success, the filesystem holding it (live host), a *proven* offsite copy (a
//! remote target and the age of its last successful sync), and a restore test
//! in the last 30 days (recorded by `verify_backup_restore` in
//! [`restore_record`]). Cron jobs and systemd timers that run backup tools are
//! reported with their commands redacted, and tied to the jobs they feed.

pub mod discover;
pub mod restore_record;
pub mod tiny;

mod facts;
mod jobs;
mod judge;
mod logscan;

pub use facts::*;
pub use jobs::*;
pub use logscan::*;

use judge::*;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::BackupJob;
use crate::finding::{Category, Finding, Severity};
use crate::format::{date_time, human_bytes, unix_date};
use crate::host::Host;
use crate::redact::Redactor;
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};
pub use discover::{Frequency, RepoKind, Schedule};
pub use restore_record::{RestoreTest, RestoreTests};

const TOOL: &str = "check_backups";
/// A job with no successful restore test in this many days is flagged.
pub const RESTORE_TEST_DAYS: i64 = 30;
/// Roots searched for repositories and archive directories.
pub const DISCOVERY_ROOTS: &[&str] = &["/var/backups", "/backup", "/backups", "/srv/backup*", "/mnt/backup*"];
/// Directory entries read during discovery before it stops (keeps the review fast on huge mirrors).
const DISCOVERY_BUDGET: usize = 5000;
/// Bytes read from the end of a log.
const LOG_TAIL: u64 = 256 * 1024;
/// Age limit of a discovered job whose schedule is unknown.
const DISCOVERED_MAX_AGE: u64 = 8 * 24 + 2;

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct CheckBackups;

/// Input of `check_backups`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupsInput {
    /// Only this job (its `[[backups]]` name, or the path of a discovered one); all jobs when absent.
    #[serde(default)]
    pub job: Option<String>,
}

#[async_trait]
impl Tool for CheckBackups {
    type Input = BackupsInput;
    type Output = BackupsFacts;

    fn name(&self) -> &'static str {
        TOOL
    }

    fn description(&self) -> &'static str {
        "Check that backups really happen: every [[backups]] job in the config plus what can be discovered \
         (/var/backups, restic and borg repositories and archive directories under /backup, /backups, \
         /srv/backup*, /mnt/backup*, cron jobs and systemd timers running restic, borg, rsync, rclone, \
         mysqldump, tar...). For each job: the newest backup and its age against the limit, a newest archive \
         much smaller than the one before, errors in the job's log since the last success (e.g. 'No space \
         left on device'), the filesystem holding it 80%+ full, a proven offsite copy (remote target and age \
         of its last successful sync), the repository's own check (restic/borg, when a password file is \
         configured), and the last restore test (recorded by verify_backup_restore). Cron commands are \
         shown with secrets redacted. Use it for 'are our backups OK?' or 'when did the last backup run?'."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, input: BackupsInput) -> Result<Outcome<BackupsFacts>, ToolError> {
        let mut out = review(ctx).await;
        if let Some(name) = &input.job {
            if !out.facts.jobs.iter().any(|j| &j.name == name) {
                let known: Vec<&str> = out.facts.jobs.iter().map(|j| j.name.as_str()).collect();
                return Err(ToolError::InvalidInput(format!(
                    "no backup job named `{name}`; known jobs: {}",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            }
            let subject = subject_of(name);
            out.facts.jobs.retain(|j| &j.name == name);
            out.findings.retain(|f| f.subject == subject || f.subject.starts_with(&format!("{subject}:")));
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- the review

/// The whole review; problems become findings.
pub async fn review(ctx: &Ctx) -> Outcome<BackupsFacts> {
    let host = &ctx.host;
    let now = host.now_unix();
    let mut findings = Vec::new();
    let mut facts = BackupsFacts::default();

    let mut unreadable = Vec::new();
    let schedules = discover::schedules(host, &mut unreadable);
    for (path, err) in unreadable {
        findings.push(Finding::could_not_check(Category::Backups, TOOL, &path, err));
    }

    let mut jobs: Vec<Job> = ctx.config.backups.iter().map(|c| configured(host, c)).collect();
    let mut taken: HashSet<String> = HashSet::new();
    for j in &jobs {
        taken.extend(j.items.iter().map(|i| i.path.clone()));
        taken.extend(j.repo.iter().cloned());
    }
    let mut found = discovered(host, &taken, &mut facts.discovery_truncated);
    // A discovered job's limit follows the schedule that feeds it, when one does.
    for j in &mut found {
        let freq = schedules.iter().filter(|s| j.dirs.iter().any(|d| s.mentions(d))).map(|s| s.frequency).min();
        if let Some(h) = freq.and_then(Frequency::max_age_hours) {
            j.cfg.max_age_hours = h;
        }
    }
    jobs.extend(found);

    let restore = load_restore_tests(ctx, &jobs, &mut findings);

    for job in &jobs {
        let fed_by: Vec<&Schedule> = schedules.iter().filter(|s| feeds(s, job)).collect();
        let jf = judge_job(ctx, job, &fed_by, restore.as_ref(), now, &mut findings).await;
        facts.jobs.push(jf);
    }

    if host.is_live() {
        facts.filesystems = filesystems(host, &jobs, &mut findings);
    }

    // Schedules nobody checks.
    for s in &schedules {
        if !jobs.is_empty() && !jobs.iter().any(|j| feeds(s, j)) {
            findings.push(
                Finding::new(
                    "backups.unmonitored",
                    Severity::Low,
                    Category::Backups,
                    format!("schedule:{}", s.source),
                    format!("{} runs {} but no backup job checks its result", s.source, s.tools.join(", ")),
                )
                .evidence(format!("{} ({}): {}", s.source, s.schedule, s.command))
                .fix("Add a [[backups]] entry for it (name, path of its archives or repository, max_age_hours, log, offsite, offsite_log) so a stopped job is noticed."),
            );
        }
    }

    if jobs.is_empty() {
        let mut f = Finding::new(
            "backups.none",
            Severity::High,
            Category::Backups,
            "backups",
            "No backups found: none configured, none discovered",
        )
        .evidence(format!(
            "no [[backups]] in the config; nothing under {} (restic/borg repositories, archives)",
            DISCOVERY_ROOTS.join(", ")
        ));
        for s in &schedules {
            f = f.evidence(format!("{} ({}) runs {}: {}", s.source, s.schedule, s.tools.join(", "), s.command));
        }
        findings.push(f.fix(
            "Set up backups and describe them in /etc/vigil/config.toml so every review checks them:\n\
             [[backups]]\nname = \"site\"\npath = \"/backup/site/*.tar.gz\"\nmax_age_hours = 26\n\
             log = \"/var/log/backup-site.log\"\noffsite = \"backup@offsite.example:/srv/site\"\n\
             offsite_log = \"/var/log/backup-site-offsite.ok\"",
        ));
    }
    facts.schedules = schedules;
    Outcome::new(facts, findings)
}

/// True when `s` produces or ships `job`'s backups.
fn feeds(s: &Schedule, job: &Job) -> bool {
    job.dirs.iter().any(|d| s.mentions(d))
        || job.repo.as_deref().is_some_and(|r| s.mentions(r))
        || job.cfg.log.as_deref().is_some_and(|l| s.mentions(l))
        || job.cfg.offsite.as_deref().is_some_and(|o| s.mentions(o))
}

fn load_restore_tests(ctx: &Ctx, jobs: &[Job], findings: &mut Vec<Finding>) -> Option<RestoreTests> {
    if jobs.is_empty() {
        return None;
    }
    let Some(dir) = &ctx.state_dir else {
        findings.push(
            Finding::new(
                "backups.restore-tests-unknown",
                Severity::Info,
                Category::Backups,
                "restore-tests",
                "Restore tests not checked: no state directory",
            )
            .fix("Run the review with a state directory (the default) so restore tests recorded by verify_backup_restore are read."),
        );
        return None;
    };
    match restore_record::load(dir) {
        Ok(t) => Some(t),
        Err(e) => {
            findings.push(
                Finding::new(
                    "backups.restore-record-unreadable",
                    Severity::High,
                    Category::Backups,
                    "restore-tests",
                    "The restore-test record cannot be read: no restore test counts until it is fixed",
                )
                .evidence(e.to_string())
                .fix(format!(
                    "Move {} aside (verify_backup_restore starts a new one), then restore-test each job again.",
                    restore_record::path(dir).display()
                )),
            );
            Some(RestoreTests::new())
        }
    }
}

#[cfg(test)]
mod tests;
