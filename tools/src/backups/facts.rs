//! What `check_backups` reports of each job (newest archive, offsite copy,
//! restore test, filesystem) and the job records it judges.

use super::*;

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
pub(super) struct Item {
    pub(super) path: String,
    pub(super) mtime: i64,
    pub(super) size: Option<u64>,
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

pub(super) struct Job {
    pub(super) cfg: BackupJob,
    pub(super) source: Source,
    pub(super) kind: JobKind,
    pub(super) items: Vec<Item>,
    /// Directories the job's backups live in (for schedules and filesystems).
    pub(super) dirs: Vec<String>,
    /// The repository directory, for restic/borg jobs.
    pub(super) repo: Option<String>,
    pub(super) max_age_inferred: bool,
}
