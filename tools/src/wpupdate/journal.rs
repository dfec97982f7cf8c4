//! The journal of an apply or rollback in progress: `STATE/wp-journal/<site-hash>.json`,
//! rewritten (fsync'd, renamed into place) after every step, so an interruption
//! — power loss, `kill -9` — leaves a record `vigil wp recover SITE` can finish
//! or roll back from, and a second apply on the same site refuses to start.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::files::{BackupRef, Unit};
use super::{JOURNAL_DIR, failed, mkdir_private, site_hash, write_atomic};
use crate::tool::ToolError;

/// What the journalled operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Applying a staged update to production.
    Apply,
    /// Restoring the backup taken before an apply.
    Rollback,
}

/// How far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Backing up production; nothing changed yet.
    Backup,
    /// Writing the new content beside production; nothing changed yet.
    Prepare,
    /// Swapping directories: production is changing.
    Swap,
    /// Loading the database (rollback).
    DbLoad,
    /// Health-checking production.
    Check,
    /// Checked and kept: only cleanup remains.
    Keep,
    /// Failed: being restored.
    Restore,
}

/// The journal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Journal {
    /// Apply or rollback.
    pub op: Op,
    /// The site.
    pub site: String,
    /// The staged update.
    pub staged_id: String,
    /// When it started (unix seconds).
    pub started: i64,
    /// The process doing it.
    pub pid: u32,
    /// How far it got.
    pub phase: Phase,
    /// The backup of production taken first (set once it is complete and verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupRef>,
    /// The replacements.
    #[serde(default)]
    pub units: Vec<Unit>,
    /// The dump a rollback loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_load: Option<String>,
    /// Steps done, in words, with their time (unix seconds).
    #[serde(default)]
    pub log: Vec<(i64, String)>,
}

impl Journal {
    /// Where the journal of `site` lives.
    pub fn path(state: &Path, site: &str) -> PathBuf {
        state.join(JOURNAL_DIR).join(format!("{}.json", site_hash(site)))
    }

    /// The journal of `site`, if an operation is in progress or was interrupted.
    #[expect(clippy::disallowed_methods, reason = "vigil's own journal in its state directory, not a tenant file")]
    pub fn load(state: &Path, site: &str) -> Result<Option<Journal>, ToolError> {
        let p = Self::path(state, site);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| failed(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed(format!("{}: {e}", p.display()))),
        }
    }

    /// Record the current state, durably.
    pub fn save(&self, state: &Path) -> Result<(), ToolError> {
        mkdir_private(&state.join(JOURNAL_DIR), 0o700)?;
        let p = Self::path(state, &self.site);
        let bytes = serde_json::to_vec_pretty(self).map_err(failed)?;
        write_atomic(&p, &bytes).map_err(|e| failed(format!("cannot write the journal {}: {e}", p.display())))
    }

    /// Move to `phase`, noting `what`, durably.
    pub fn step(&mut self, state: &Path, now: i64, phase: Phase, what: impl Into<String>) -> Result<(), ToolError> {
        self.phase = phase;
        self.log.push((now, what.into()));
        self.save(state)
    }

    /// The operation is over: remove the journal.
    #[expect(clippy::disallowed_methods, reason = "opens, to fsync it, vigil's own journal directory")]
    pub fn remove(state: &Path, site: &str) -> Result<(), ToolError> {
        let p = Self::path(state, site);
        match std::fs::remove_file(&p) {
            Ok(()) => {
                if let Some(d) = p.parent() {
                    let _ = std::fs::File::open(d).and_then(|f| f.sync_all());
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(failed(format!("cannot remove the journal {}: {e}", p.display()))),
        }
    }

    /// True when the process that wrote it still runs (then nobody else may touch the site).
    #[expect(
        clippy::disallowed_methods,
        reason = "the kernel's /proc/PID/stat of the process that wrote the journal, not a tenant file"
    )]
    pub fn owner_alive(&self) -> bool {
        self.pid != std::process::id() && Path::new(&format!("/proc/{}", self.pid)).exists() && {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
            // A zombie (state Z) is dead.
            !stat.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
        }
    }
}
