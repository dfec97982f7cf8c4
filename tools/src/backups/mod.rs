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

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{BackupJob, format_date};
use crate::finding::{Category, Finding, Severity};
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

/// The newest archive of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Archive {
    /// Path inside the audited host.
    pub path: String,
    /// Modification time (unix seconds).
    pub mtime: i64,
    /// Size in bytes.
    pub size: u64,
}

/// The newest regular file matching a job's `path` glob: what `verify_backup_restore` restores.
pub fn newest_archive(host: &Host, job: &BackupJob) -> Option<Archive> {
    if !job.path.starts_with('/') {
        return None;
    }
    host.glob(&job.path)
        .into_iter()
        .filter_map(|p| {
            let m = host.metadata(&p).ok()?;
            m.is_file().then(|| Archive { mtime: m.mtime(), size: m.len(), path: p })
        })
        .max_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.path.cmp(&b.path)))
}

/// One backup item: an archive, a dated directory, a restic snapshot or a borg transaction.
#[derive(Debug, Clone)]
struct Item {
    path: String,
    mtime: i64,
    size: Option<u64>,
}

/// Where a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `[[backups]]` in the config.
    Config,
    /// Found on the host.
    Discovered,
}

/// What a job's backups are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Archive files (or dated directories).
    Files,
    /// A restic repository (items are snapshots).
    Restic,
    /// A borg repository (items are transactions).
    Borg,
}

/// The newest item of a job.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NewestFacts {
    /// Path.
    pub path: String,
    /// Date and time (UTC).
    pub date: String,
    /// Age in hours.
    pub age_hours: i64,
    /// Size in bytes (archives only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The proven offsite copy of a job.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OffsiteFacts {
    /// Where it goes (redacted).
    pub target: String,
    /// The target is on another machine.
    pub remote: bool,
    /// Last successful sync, when proven.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,
    /// How the sync was proven (`offsite_log mtime`, `log line`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proven_by: Option<String>,
}

/// The latest restore test of a job.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RestoreFacts {
    /// Date.
    pub date: String,
    /// Succeeded.
    pub ok: bool,
    /// Archive restored.
    pub archive: String,
}

/// One backup job and what was found of it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct JobFacts {
    /// Name (config name, or the path of a discovered job).
    pub name: String,
    /// Configured or discovered.
    pub source: Source,
    /// Archives or a repository.
    pub kind: JobKind,
    /// The glob or directory.
    pub path: String,
    /// Age limit in hours.
    pub max_age_hours: u64,
    /// Backups found.
    pub count: usize,
    /// The newest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<NewestFacts>,
    /// Size of the one before it, in the same series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_size: Option<u64>,
    /// Errors in its log since the last success.
    pub log_errors: usize,
    /// The offsite copy, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsite: Option<OffsiteFacts>,
    /// The latest restore test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<RestoreFacts>,
    /// Result of the repository's own `check` (restic/borg), or why it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_check: Option<String>,
    /// Schedules (cron/timers) that feed it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scheduled_by: Vec<String>,
}

/// A filesystem holding backups (live host).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FsFacts {
    /// A backup directory on it.
    pub path: String,
    /// Used space, percent (as `df` shows it).
    pub used_percent: u8,
    /// Free space available, bytes.
    pub available_bytes: u64,
    /// Jobs stored there.
    pub jobs: Vec<String>,
}

/// Facts of `check_backups`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct BackupsFacts {
    /// Jobs, configured first.
    pub jobs: Vec<JobFacts>,
    /// Cron jobs and systemd timers that run backup tools.
    pub schedules: Vec<Schedule>,
    /// Filesystems holding backups (live host only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<FsFacts>,
    /// Discovery stopped early (too many files under the backup roots).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub discovery_truncated: bool,
}

struct Job {
    cfg: BackupJob,
    source: Source,
    kind: JobKind,
    items: Vec<Item>,
    /// Directories the job's backups live in (for schedules and filesystems).
    dirs: Vec<String>,
    /// The repository directory, for restic/borg jobs.
    repo: Option<String>,
    max_age_inferred: bool,
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

fn subject_of(name: &str) -> String {
    format!("backup:{name}")
}

fn date_time(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!("{} {:02}:{:02} UTC", format_date(t.date()), t.hour(), t.minute()),
        Err(_) => secs.to_string(),
    }
}

fn date_only(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs).map(|t| format_date(t.date())).unwrap_or_else(|_| secs.to_string())
}

/// "8 months", "3 days", "20 hours".
pub fn human_age(secs: i64) -> String {
    let h = secs / 3600;
    match h {
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 60 => format!("{} days", h / 24),
        _ => format!("{} months ({} days)", h / 24 / 30, h / 24),
    }
}

/// "1.2 GB", "340 kB".
pub fn human_size(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", units[u]) }
}

/// The literal directory before the first wildcard of a glob.
fn glob_dir(glob: &str) -> String {
    let cut = glob.find(['*', '?', '[']).unwrap_or(glob.len());
    let lit = &glob[..cut];
    if cut == glob.len() {
        return lit.trim_end_matches('/').to_string();
    }
    match lit.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => lit[..i].to_string(),
    }
}

fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

fn item_of(host: &Host, path: &str) -> Option<Item> {
    let m = host.metadata(path).ok()?;
    Some(Item { path: path.to_string(), mtime: m.mtime(), size: m.is_file().then_some(m.len()) })
}

/// Items of a repository: restic snapshots, or borg transactions (index.N files).
fn repo_items(host: &Host, dir: &str, kind: RepoKind) -> Vec<Item> {
    match kind {
        RepoKind::Restic => host
            .read_dir(&format!("{dir}/snapshots"))
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| item_of(host, &format!("{dir}/snapshots/{n}")))
            .map(|i| Item { size: None, ..i })
            .collect(),
        RepoKind::Borg => host
            .read_dir(dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.strip_prefix("index.").is_some_and(|r| r.bytes().all(|b| b.is_ascii_digit())))
            .filter_map(|n| item_of(host, &format!("{dir}/{n}")))
            .map(|i| Item { size: None, ..i })
            .collect(),
    }
}

fn kind_of(k: RepoKind) -> JobKind {
    match k {
        RepoKind::Restic => JobKind::Restic,
        RepoKind::Borg => JobKind::Borg,
    }
}

/// Expand a configured job.
fn configured(host: &Host, cfg: &BackupJob) -> Job {
    let mut job = Job {
        cfg: cfg.clone(),
        source: Source::Config,
        kind: JobKind::Files,
        items: Vec::new(),
        dirs: vec![glob_dir(&cfg.path)],
        repo: None,
        max_age_inferred: false,
    };
    if !cfg.path.starts_with('/') {
        return job;
    }
    let matches = host.glob(&cfg.path);
    if let [only] = matches.as_slice() {
        if let Some(k) = discover::repo_kind(host, only) {
            job.kind = kind_of(k);
            job.items = repo_items(host, only, k);
            job.dirs = vec![only.clone()];
            job.repo = Some(only.clone());
            return job;
        }
    }
    let mut dirs: Vec<String> = Vec::new();
    for p in matches {
        if let Some(i) = item_of(host, &p) {
            let d = parent(&p);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
            job.items.push(i);
        }
    }
    if !dirs.is_empty() {
        job.dirs = dirs;
    }
    job
}

/// Discover repositories and archive directories under the backup roots.
fn discovered(host: &Host, taken: &HashSet<String>, truncated: &mut bool) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut budget = DISCOVERY_BUDGET;
    let mut roots: Vec<String> = Vec::new();
    for r in DISCOVERY_ROOTS {
        for p in if r.contains('*') { host.glob(r) } else { vec![r.to_string()] } {
            if host.metadata(&p).map(|m| m.is_dir()).unwrap_or(false) && !roots.contains(&p) {
                roots.push(p);
            }
        }
    }
    let mut stack: Vec<(String, usize)> = roots.into_iter().rev().map(|r| (r, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((dir, depth)) = stack.pop() {
        // The same directory can be reached through two roots (a symlink); follow it once.
        let key = host.metadata(&dir).map(|m| (m.dev(), m.ino())).unwrap_or((0, 0));
        if !seen.insert(key) {
            continue;
        }
        if taken.contains(&dir) {
            continue;
        }
        if let Some(k) = discover::repo_kind(host, &dir) {
            let max = DISCOVERED_MAX_AGE;
            jobs.push(Job {
                cfg: discovered_cfg(&dir, max),
                source: Source::Discovered,
                kind: kind_of(k),
                items: repo_items(host, &dir, k),
                dirs: vec![dir.clone()],
                repo: Some(dir.clone()),
                max_age_inferred: true,
            });
            continue;
        }
        let names = host.read_dir(&dir).unwrap_or_default();
        if names.len() > budget {
            *truncated = true;
            continue;
        }
        budget -= names.len();
        let top_var_backups = dir == "/var/backups";
        let mut items = Vec::new();
        for n in names {
            if n.starts_with('.') || (top_var_backups && discover::is_distro_backup(&n)) {
                continue;
            }
            let p = format!("{dir}/{n}");
            if taken.contains(&p) {
                continue;
            }
            let Ok(m) = host.metadata(&p) else { continue };
            if m.is_dir() {
                if depth < 3 {
                    stack.push((p, depth + 1));
                }
            } else if m.is_file() && (top_var_backups || discover::looks_like_archive(&n)) {
                items.push(Item { path: p, mtime: m.mtime(), size: Some(m.len()) });
            }
        }
        if !items.is_empty() {
            jobs.push(Job {
                cfg: discovered_cfg(&dir, DISCOVERED_MAX_AGE),
                source: Source::Discovered,
                kind: JobKind::Files,
                items,
                dirs: vec![dir.clone()],
                repo: None,
                max_age_inferred: true,
            });
        }
    }
    jobs
}

fn discovered_cfg(dir: &str, max_age_hours: u64) -> BackupJob {
    BackupJob {
        name: dir.to_string(),
        path: dir.to_string(),
        max_age_hours,
        min_size: None,
        log: None,
        offsite: None,
        offsite_log: None,
        password_file: None,
        max_members: None,
    }
}

/// `site-2026-11-26.tar.gz` and `site-2026-11-25.tar.gz` are one series: digits folded.
fn series_key(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut out = String::new();
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    format!("{}/{out}", parent(path))
}

// ---------------------------------------------------------------- logs

/// A log's tail, judged: the last success and the errors after it.
#[derive(Debug, Default, Clone)]
pub struct LogScan {
    /// The last line that says the job succeeded, with its timestamp when it has one.
    pub last_success: Option<(String, Option<i64>)>,
    /// Error lines after it (or in the whole tail when no success is recorded).
    pub errors: Vec<String>,
    /// An error after the last success is of the "disk full / no access" kind.
    pub severe: bool,
}

fn is_error_line(l: &str) -> Option<bool> {
    let low = l.to_ascii_lowercase();
    let cleaned = low
        .replace("0 errors", "")
        .replace("no errors", "")
        .replace("without errors", "")
        .replace("errors: 0", "")
        .replace("error: 0", "")
        .replace("errors=0", "")
        .replace("0 failed", "");
    const SEVERE: &[&str] = &[
        "no space left on device",
        "disk quota exceeded",
        "read-only file system",
        "input/output error",
        "permission denied",
        "fatal",
        "repository does not exist",
        "wrong password",
    ];
    if SEVERE.iter().any(|s| cleaned.contains(s)) {
        return Some(true);
    }
    let word = |w: &str| {
        cleaned.match_indices(w).any(|(i, _)| {
            let before = cleaned[..i].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric());
            let after = cleaned[i + w.len()..].chars().next().is_none_or(|c| !c.is_ascii_alphanumeric());
            before && after
        })
    };
    let generic = [
        "error",
        "errors",
        "failed",
        "failure",
        "cannot",
        "unable to",
        "could not",
        "connection refused",
        "timed out",
        "killed",
    ];
    generic.iter().any(|w| word(w)).then_some(false)
}

fn is_success_line(l: &str) -> bool {
    let low = l.to_ascii_lowercase();
    [
        "success",
        "completed",
        "finished",
        "backup ok",
        "backup done",
        "terminating with success",
        "saved",
        " done",
        "sync ok",
    ]
    .iter()
    .any(|w| low.contains(w))
}

/// Leading `YYYY-MM-DD[ T]HH:MM[:SS]` (optionally in brackets) or syslog `Mon DD HH:MM:SS`.
pub fn line_time(line: &str, now: i64) -> Option<i64> {
    let l = line.trim_start_matches(['[', ' ']);
    if l.len() >= 16 && l.as_bytes()[4] == b'-' && l.as_bytes()[7] == b'-' {
        let d = crate::config::parse_date(&l[..10])?;
        let hh: u8 = l.get(11..13)?.parse().ok()?;
        let mm: u8 = l.get(14..16)?.parse().ok()?;
        let ss: u8 = l.get(17..19).and_then(|s| s.parse().ok()).unwrap_or(0);
        return Some(d.with_hms(hh, mm, ss).ok()?.assume_utc().unix_timestamp());
    }
    // Syslog: no year; take the latest year that is not in the future.
    let mut p = l.split_whitespace();
    let mon = p.next()?;
    let day: u8 = p.next()?.parse().ok()?;
    let hms: Vec<u8> = p.next()?.split(':').filter_map(|x| x.parse().ok()).collect();
    let month = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        .iter()
        .position(|m| mon.eq_ignore_ascii_case(m))?;
    let month = time::Month::try_from(month as u8 + 1).ok()?;
    let year = time::OffsetDateTime::from_unix_timestamp(now).ok()?.year();
    let [h, m, s] = hms[..] else { return None };
    for y in [year, year - 1] {
        let t =
            time::Date::from_calendar_date(y, month, day).ok()?.with_hms(h, m, s).ok()?.assume_utc().unix_timestamp();
        if t <= now + 86_400 {
            return Some(t);
        }
    }
    None
}

/// Judge a log's text: last success, errors since.
pub fn scan_log(text: &str, now: i64) -> LogScan {
    let mut scan = LogScan::default();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        match is_error_line(l) {
            Some(severe) => {
                scan.severe |= severe;
                scan.errors.push(l.to_string());
            }
            None if is_success_line(l) => {
                scan.last_success = Some((l.to_string(), line_time(l, now)));
                scan.errors.clear();
                scan.severe = false;
            }
            None => {}
        }
    }
    scan
}

/// The last `LOG_TAIL` bytes of a file, through the host.
fn read_tail(host: &Host, path: &str) -> Result<(String, i64), crate::host::HostError> {
    let (mut f, meta) = host.open_file(path)?;
    let io = |e: std::io::Error| crate::host::HostError::Io { path: path.to_string(), source: e };
    let start = meta.len().saturating_sub(LOG_TAIL);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut buf = Vec::new();
    f.take(LOG_TAIL).read_to_end(&mut buf).map_err(io)?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        // Drop the partial first line.
        text = text.split_once('\n').map(|(_, r)| r.to_string()).unwrap_or_default();
    }
    Ok((text, meta.mtime()))
}

/// The first error (when it started) and the last four (how it is now), redacted.
fn error_sample(errors: &[String]) -> Vec<String> {
    let mut out: Vec<String> = errors.first().map(|e| clip(e)).into_iter().collect();
    if errors.len() > 5 {
        out.push(format!("… {} more …", errors.len() - 5));
    }
    let tail = errors.len().saturating_sub(4).max(1);
    out.extend(errors.iter().skip(tail).map(|e| clip(e)));
    out
}

fn clip(line: &str) -> String {
    let r = Redactor::global().text(line);
    if r.chars().count() > 200 { format!("{}…", r.chars().take(200).collect::<String>()) } else { r.into_owned() }
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

async fn judge_job(
    ctx: &Ctx,
    job: &Job,
    fed_by: &[&Schedule],
    restore: Option<&RestoreTests>,
    now: i64,
    findings: &mut Vec<Finding>,
) -> JobFacts {
    let host = &ctx.host;
    let cfg = &job.cfg;
    let subject = subject_of(&cfg.name);
    let mut items = job.items.clone();
    items.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| b.path.cmp(&a.path)));
    let newest = items.first();
    let limit_note = if job.max_age_inferred {
        format!(
            " (limit {} h inferred for a discovered job; set [[backups]] max_age_hours to be precise)",
            cfg.max_age_hours
        )
    } else {
        String::new()
    };
    let mut jf = JobFacts {
        name: cfg.name.clone(),
        source: job.source,
        kind: job.kind,
        path: cfg.path.clone(),
        max_age_hours: cfg.max_age_hours,
        count: items.len(),
        newest: newest.map(|n| NewestFacts {
            path: n.path.clone(),
            date: date_time(n.mtime),
            age_hours: (now - n.mtime) / 3600,
            size: n.size,
        }),
        previous_size: None,
        log_errors: 0,
        offsite: None,
        restore_test: None,
        repo_check: None,
        scheduled_by: fed_by.iter().map(|s| format!("{} ({})", s.source, s.schedule)).collect(),
    };

    if !cfg.path.starts_with('/') {
        findings.push(
            Finding::new(
                "backups.bad-config",
                Severity::Medium,
                Category::Backups,
                subject.clone(),
                format!("Backup job `{}` has a path vigil cannot check", cfg.name),
            )
            .evidence(format!("path = \"{}\" is not an absolute path or glob", Redactor::global().text(&cfg.path)))
            .fix("Set `path` to the absolute glob of the local archives (or the local repository directory); put remote targets in `offsite`."),
        );
        return jf;
    }

    // Age.
    match newest {
        None => {
            let dir = glob_dir(&cfg.path);
            let mut f = Finding::new(
                "backups.missing",
                Severity::Critical,
                Category::Backups,
                subject.clone(),
                format!("Backup job `{}` has no backups at all", cfg.name),
            )
            .evidence(format!("nothing matches {}", cfg.path));
            if !host.exists(&dir) {
                f = f.evidence(format!("{dir} does not exist"));
            }
            for s in fed_by {
                f = f.evidence(format!("scheduled by {} ({}): {}", s.source, s.schedule, s.command));
            }
            findings.push(f.fix(format!(
                "Run the backup job by hand now and read its output; check that it writes to {} and that its schedule runs.",
                cfg.path
            )));
        }
        Some(n) => {
            let age = now - n.mtime;
            if age > (cfg.max_age_hours as i64) * 3600 {
                let mut f = Finding::new(
                    "backups.stale",
                    Severity::High,
                    Category::Backups,
                    subject.clone(),
                    format!("Newest backup of `{}` is {} old", cfg.name, human_age(age)),
                )
                .evidence(format!("newest: {} ({})", n.path, date_time(n.mtime)))
                .evidence(format!("limit: {} hours{limit_note}", cfg.max_age_hours));
                for s in fed_by {
                    f = f.evidence(format!("scheduled by {} ({}): {}", s.source, s.schedule, s.command));
                }
                findings.push(f.fix(format!(
                    "Find why the job stopped (its log{}, `journalctl`, cron mail, free space), run it by hand, and make failures alert someone.",
                    cfg.log.as_deref().map(|l| format!(" {l}")).unwrap_or_default()
                )));
            }
        }
    }

    // Size against the one before, per series.
    let mut series: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
    for i in items.iter().filter(|i| i.size.is_some()) {
        series.entry(series_key(&i.path)).or_default().push(i);
    }
    for list in series.values() {
        let (Some(a), Some(b)) = (list.first(), list.get(1)) else { continue };
        let (sa, sb) = (a.size.unwrap_or(0), b.size.unwrap_or(0));
        if Some(a.path.as_str()) == newest.map(|n| n.path.as_str()) {
            jf.previous_size = Some(sb);
        }
        if sb > 0 && sa.saturating_mul(2) < sb {
            findings.push(
                Finding::new(
                    "backups.shrunk",
                    Severity::High,
                    Category::Backups,
                    subject.clone(),
                    format!("Newest backup of `{}` is {}% of the one before", cfg.name, sa * 100 / sb),
                )
                .evidence(format!("{}: {} ({})", a.path, human_size(sa), date_time(a.mtime)))
                .evidence(format!("{}: {} ({})", b.path, human_size(sb), date_time(b.mtime)))
                .fix("Open the newest archive and check it is complete (a dump cut short by a full disk or a lost DB connection looks like this); run the job by hand and compare."),
            );
        }
    }
    let paths: Vec<(&str, Option<u64>)> = items.iter().map(|i| (i.path.as_str(), i.size)).collect();
    findings.extend(tiny::judge(host, &cfg.name, &subject, &paths));
    if let (Some(min), Some(n)) = (cfg.min_size, newest) {
        if n.size.is_some_and(|s| s < min) {
            findings.push(
                Finding::new(
                    "backups.too-small",
                    Severity::High,
                    Category::Backups,
                    subject.clone(),
                    format!("Newest backup of `{}` is smaller than its minimum size", cfg.name),
                )
                .evidence(format!("{}: {} < min_size {}", n.path, human_size(n.size.unwrap_or(0)), human_size(min)))
                .fix("Check the archive's contents and the job's log; a backup this small is usually empty or cut short."),
            );
        }
    }

    // Log.
    if let Some(log) = &cfg.log {
        match read_tail(host, log) {
            Ok((text, _)) => {
                let scan = scan_log(&text, now);
                jf.log_errors = scan.errors.len();
                if !scan.errors.is_empty() {
                    let since = match &scan.last_success {
                        Some((l, Some(t))) => format!("since the last success ({}): {}", date_time(*t), clip(l)),
                        Some((l, None)) => format!("since the last success: {}", clip(l)),
                        None => "no success recorded in the log".to_string(),
                    };
                    let mut f = Finding::new(
                        "backups.log-errors",
                        if scan.severe { Severity::High } else { Severity::Medium },
                        Category::Backups,
                        subject.clone(),
                        format!(
                            "{} error line(s) in the log of `{}` since its last success",
                            scan.errors.len(),
                            cfg.name
                        ),
                    )
                    .evidence(format!("{log}: {since}"));
                    for e in error_sample(&scan.errors) {
                        f = f.evidence(e);
                    }
                    findings.push(f.fix(format!(
                        "Fix the cause shown in {log} (free space with `df -h`, permissions, credentials), run the job by hand, and make its failures alert someone."
                    )));
                }
            }
            Err(e) if e.is_not_found() => findings.push(
                Finding::new(
                    "backups.log-missing",
                    Severity::Low,
                    Category::Backups,
                    subject.clone(),
                    format!("The log of `{}` does not exist", cfg.name),
                )
                .evidence(format!("{log} not found: the job may never have run, or logs elsewhere"))
                .fix("Make the job append its output to this log (or correct `log` in [[backups]])."),
            ),
            Err(e) => findings.push(Finding::could_not_check(Category::Backups, TOOL, log, e)),
        }
    }

    judge_offsite(host, job, fed_by, now, &subject, &mut jf, findings);
    judge_restore(job, restore, now, &subject, &mut jf, findings);
    jf.repo_check = repo_check(host, job, &subject, findings).await;
    jf
}

fn judge_offsite(
    host: &Host,
    job: &Job,
    fed_by: &[&Schedule],
    now: i64,
    subject: &str,
    jf: &mut JobFacts,
    findings: &mut Vec<Finding>,
) {
    let cfg = &job.cfg;
    let Some(target) = cfg.offsite.as_deref() else {
        let mut f = Finding::new(
            "backups.no-offsite",
            Severity::Medium,
            Category::Backups,
            subject.to_string(),
            format!("No proven offsite copy of `{}`", cfg.name),
        )
        .evidence(format!("backups only in {} on this host", job.dirs.join(", ")));
        let claimed: Vec<String> = fed_by
            .iter()
            .flat_map(|s| s.remote_targets.iter().map(move |t| format!("{} sends to {t}", s.source)))
            .collect();
        for c in &claimed {
            f = f.evidence(format!("{c}, but nothing records that it succeeds"));
        }
        findings.push(f.fix(format!(
            "Copy the backups to another machine or provider (restic/borg to sftp:/s3:/b2:, rclone, rsync host:path) and record it in [[backups]] `{}`: offsite = \"TARGET\", offsite_log = \"a file the sync touches on success\".",
            cfg.name
        )));
        return;
    };
    let shown = Redactor::global().text(target).into_owned();
    let remote = discover::is_remote(target);
    let mut of = OffsiteFacts { target: shown.clone(), remote, last_sync: None, proven_by: None };
    if !remote {
        findings.push(
            Finding::new(
                "backups.offsite-not-remote",
                Severity::Medium,
                Category::Backups,
                subject.to_string(),
                format!("The \"offsite\" copy of `{}` is on this machine", cfg.name),
            )
            .evidence(format!("offsite = \"{shown}\" is a local path"))
            .fix("Send the copy to another machine or provider (sftp:, s3:, b2:, user@host:path, an rclone remote); a disk in the same server burns with it."),
        );
        jf.offsite = Some(of);
        return;
    }
    let host_part = target.split_once("://").map(|(_, r)| r).unwrap_or(target);
    let host_part = host_part
        .split(['/', ':'])
        .find(|p| !p.is_empty() && !matches!(*p, "sftp" | "s3" | "b2" | "rest" | "rclone"))
        .unwrap_or(host_part);
    // As a log line names the machine: without the user.
    let host_part = host_part.rsplit('@').next().unwrap_or(host_part);
    let mut last: Option<(i64, String)> = None;
    let mut errors: Option<LogScan> = None;
    if let Some(olog) = &cfg.offsite_log {
        match read_tail(host, olog) {
            Ok((text, mtime)) => {
                let scan = scan_log(&text, now);
                if let Some((_, Some(t))) = &scan.last_success {
                    last = Some((*t, format!("success line in {olog}")));
                } else if scan.errors.is_empty() {
                    last = Some((mtime, format!("{olog} modified")));
                }
                if !scan.errors.is_empty() {
                    errors = Some(scan);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => findings.push(Finding::could_not_check(Category::Backups, TOOL, olog, e)),
        }
    } else if let Some(log) = &cfg.log {
        if let Ok((text, _)) = read_tail(host, log) {
            let t = text
                .lines()
                .filter(|l| l.contains(host_part) && is_error_line(l).is_none() && is_success_line(l))
                .filter_map(|l| line_time(l, now))
                .max();
            last = t.map(|t| (t, format!("success line naming {host_part} in {log}")));
        }
    }
    if let Some(scan) = &errors {
        let mut f = Finding::new(
            "backups.log-errors",
            if scan.severe { Severity::High } else { Severity::Medium },
            Category::Backups,
            format!("{subject}:offsite"),
            format!("The offsite sync of `{}` logs errors since its last success", cfg.name),
        );
        for e in error_sample(&scan.errors) {
            f = f.evidence(e);
        }
        findings.push(f.fix("Fix the sync (credentials, reachability, space at the target) and run it by hand."));
    }
    match last {
        Some((t, how)) => {
            of.last_sync = Some(date_time(t));
            of.proven_by = Some(how.clone());
            let limit = 2 * cfg.max_age_hours as i64 * 3600;
            if now - t > limit {
                findings.push(
                    Finding::new(
                        "backups.offsite-stale",
                        Severity::Medium,
                        Category::Backups,
                        subject.to_string(),
                        format!("The offsite copy of `{}` was last synced {} ago", cfg.name, human_age(now - t)),
                    )
                    .evidence(format!("target {shown}; last successful sync {} ({how})", date_time(t)))
                    .evidence(format!("limit: 2 × max_age_hours = {} hours", 2 * cfg.max_age_hours))
                    .fix("Run the offsite sync by hand, fix what fails, and make it alert on failure."),
                );
            }
        }
        None => findings.push(
            Finding::new(
                "backups.offsite-unproven",
                Severity::Medium,
                Category::Backups,
                subject.to_string(),
                format!("Nothing proves the offsite copy of `{}` is made", cfg.name),
            )
            .evidence(format!("offsite = \"{shown}\""))
            .evidence(match &cfg.offsite_log {
                Some(l) => format!("offsite_log {l} is missing or shows no success"),
                None => "no offsite_log, and no timestamped success line naming the target in the job's log".into(),
            })
            .fix("Have the sync touch a marker file on success (`... && touch /var/log/backup-offsite.ok`) and set offsite_log to it."),
        ),
    }
    jf.offsite = Some(of);
}

fn judge_restore(
    job: &Job,
    restore: Option<&RestoreTests>,
    now: i64,
    subject: &str,
    jf: &mut JobFacts,
    findings: &mut Vec<Finding>,
) {
    let Some(tests) = restore else { return };
    let name = &job.cfg.name;
    let rec = tests.get(name);
    jf.restore_test = rec.map(|r| RestoreFacts {
        date: date_only(r.at),
        ok: r.ok,
        archive: Redactor::global().text(&r.archive).into_owned(),
    });
    let fix = format!(
        "Restore-test it now with the verify_backup_restore tool (job \"{name}\"): it restores the newest archive into a scratch directory, checks it and records the result; allow it in [schedule] allow for monthly runs."
    );
    let window = RESTORE_TEST_DAYS * 86_400;
    match rec {
        Some(r) if !r.ok && now - r.at <= window => findings.push(
            Finding::new(
                "backups.restore-failed",
                Severity::High,
                Category::Backups,
                subject.to_string(),
                format!("The last restore test of `{name}` failed"),
            )
            .evidence(format!("{}: {} ({})", date_only(r.at), Redactor::global().text(&r.archive), clip(&r.detail)))
            .fix(format!("Find why the archive does not restore and fix the backup job; then {}", fix.to_lowercase())),
        ),
        Some(r) if r.ok && now - r.at <= window => {}
        other => {
            let ev = match other {
                Some(r) => format!(
                    "last restore test {} ({}), more than {RESTORE_TEST_DAYS} days ago",
                    date_only(r.at),
                    if r.ok { "succeeded" } else { "failed" }
                ),
                None => "no restore test recorded".to_string(),
            };
            findings.push(
                Finding::new(
                    "backups.no-restore-test",
                    Severity::Medium,
                    Category::Backups,
                    subject.to_string(),
                    format!("`{name}` has not been restore-tested in {RESTORE_TEST_DAYS} days"),
                )
                .evidence(ev)
                .fix(fix),
            );
        }
    }
}

async fn repo_check(host: &Host, job: &Job, subject: &str, findings: &mut Vec<Finding>) -> Option<String> {
    let repo = job.repo.as_deref()?;
    let pw = job.cfg.password_file.as_deref()?;
    if !host.exists(pw) {
        findings.push(
            Finding::new(
                "backups.password-file-missing",
                Severity::High,
                Category::Backups,
                subject.to_string(),
                format!("The repository password file of `{}` is missing: the backups cannot be restored", job.cfg.name),
            )
            .evidence(format!("password_file {pw} not found"))
            .fix("Restore the password file from your password manager (keep a copy off this server too); without it the repository is unreadable."),
        );
        return Some("not run: password file missing".into());
    }
    if !host.is_live() {
        return Some("not run: only on the live host".into());
    }
    let (program, args): (&str, Vec<String>) = match job.kind {
        JobKind::Restic => (
            "restic",
            vec!["-r".into(), repo.into(), "--password-file".into(), pw.into(), "--no-cache".into(), "check".into()],
        ),
        JobKind::Borg => {
            if pw.contains('\'') {
                return Some("not run: password file path contains a quote".into());
            }
            let Some(borg) = host.which("borg") else {
                return Some("not run: borg is not installed".into());
            };
            (
                "env",
                vec![
                    format!("BORG_PASSCOMMAND=cat '{pw}'"),
                    "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes".into(),
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes".into(),
                    borg,
                    "check".into(),
                    repo.into(),
                ],
            )
        }
        JobKind::Files => return None,
    };
    let tool = if job.kind == JobKind::Restic { "restic" } else { "borg" };
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match host.run(program, &argv, Duration::from_secs(300)).await {
        Ok(out) if out.success() => Some("ok".into()),
        Ok(out) => {
            let tail: Vec<String> =
                out.stderr.lines().chain(out.stdout.lines()).filter(|l| !l.trim().is_empty()).map(clip).collect();
            let tail: Vec<String> = tail.iter().rev().take(4).rev().cloned().collect();
            findings.push(
                Finding::new(
                    "backups.repo-check-failed",
                    Severity::High,
                    Category::Backups,
                    subject.to_string(),
                    format!("`{tool} check` fails on the repository of `{}`", job.cfg.name),
                )
                .evidence(format!("{tool} check {repo}: exit {}", out.status))
                .evidence(tail.join(" | "))
                .fix(format!("Run `{tool} check` on {repo} by hand and repair the repository (restic: `restic repair index`/`repair snapshots`; borg: `borg check --repair`) before you need a restore.")),
            );
            Some(format!("failed (exit {})", out.status))
        }
        Err(e) if e.is_not_found() => Some(format!("not run: {e}")),
        Err(e) => {
            findings.push(Finding::could_not_check(Category::Backups, TOOL, &format!("{tool} check {repo}"), e));
            Some("could not run".into())
        }
    }
}

/// Used space of the filesystems holding the newest backups (live host).
fn filesystems(host: &Host, jobs: &[Job], findings: &mut Vec<Finding>) -> Vec<FsFacts> {
    let mut by_dev: BTreeMap<u64, FsFacts> = BTreeMap::new();
    for j in jobs {
        let Some(dir) =
            j.items.iter().max_by_key(|i| i.mtime).map(|i| parent(&i.path)).or_else(|| j.dirs.first().cloned())
        else {
            continue;
        };
        let Ok(m) = host.metadata(&dir) else { continue };
        if let Some(fs) = by_dev.get_mut(&m.dev()) {
            fs.jobs.push(j.cfg.name.clone());
            continue;
        }
        let Ok(real) = host.path(&dir) else { continue };
        let Some((used, avail)) = statvfs(&real) else { continue };
        by_dev.insert(
            m.dev(),
            FsFacts { path: dir, used_percent: used, available_bytes: avail, jobs: vec![j.cfg.name.clone()] },
        );
    }
    for fs in by_dev.values() {
        if fs.used_percent >= 80 {
            findings.push(
                Finding::new(
                    "backups.disk-full",
                    if fs.used_percent >= 90 { Severity::High } else { Severity::Medium },
                    Category::Backups,
                    format!("fs:{}", fs.path),
                    format!("The filesystem holding backups is {}% full", fs.used_percent),
                )
                .evidence(format!("{}: {}% used, {} free; jobs: {}", fs.path, fs.used_percent, human_size(fs.available_bytes), fs.jobs.join(", ")))
                .fix("Prune old backups (keep a retention policy: restic forget --prune, borg prune, or delete the oldest archives) or grow the disk before the next backup fails with 'No space left on device'."),
            );
        }
    }
    by_dev.into_values().collect()
}

/// (used percent as df shows it, available bytes).
fn statvfs(path: &std::path::Path) -> Option<(u8, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `st` is plain old data that statvfs fills; `c` is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    let used = (st.f_blocks as u64).saturating_sub(st.f_bfree as u64);
    let total = used + st.f_bavail as u64;
    if total == 0 {
        return None;
    }
    let pct = (used * 100).div_ceil(total);
    Some((pct.min(100) as u8, st.f_bavail as u64 * frsize))
}

#[cfg(test)]
mod tests;
