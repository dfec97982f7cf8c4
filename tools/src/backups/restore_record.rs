//! The restore-test record: `STATE/restore-tests.json`.
//!
//! "A backup that has never been restored is not a backup — it is a hope."
//! `verify_backup_restore` proves a backup by restoring it into scratch space
//! and writes the result here with [`record`]; `check_backups` reads it with
//! [`load`] to flag jobs with no successful restore test in 30 days. One entry
//! per job name: `{"JOB": {"at": <unix secs>, "ok": true, "archive": "...",
//! "files": <n>, "detail": "..."}}`. Written atomically (temp file + rename),
//! mode 0600, never through a symlink.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The file name under the state directory.
pub const FILE: &str = "restore-tests.json";

/// The result of one restore test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RestoreTest {
    /// When the test ran (unix seconds).
    pub at: i64,
    /// True when the archive restored and read to the end.
    pub ok: bool,
    /// The archive that was restored (path inside the audited host).
    pub archive: String,
    /// Files (or SQL tables) found in the restored copy.
    #[serde(default)]
    pub files: u64,
    /// What happened, in one line (never a secret).
    #[serde(default)]
    pub detail: String,
}

/// Every job's latest restore test, by job name.
pub type RestoreTests = BTreeMap<String, RestoreTest>;

/// Why the record could not be read or written.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The file exists but could not be read (permissions, a symlink, I/O).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the JSON we write.
    #[error("{path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// serde's message.
        message: String,
    },
}

/// The record's path under `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Read every job's latest restore test; an absent file is an empty record.
pub fn load(state_dir: &Path) -> Result<RestoreTests, RecordError> {
    let p = path(state_dir);
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&p);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RestoreTests::new()),
        Err(e) => return Err(RecordError::Io { path: p, source: e }),
    };
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| RecordError::Io { path: p.clone(), source: e })?;
    serde_json::from_str(&text).map_err(|e| RecordError::Corrupt { path: p, message: e.to_string() })
}

/// Record `result` as `job`'s latest restore test (atomic write, mode 0600).
///
/// A corrupt record is moved aside to `restore-tests.json.corrupt` and a new
/// one started, so one bad write never blocks every later test.
pub fn record(state_dir: &Path, job: &str, result: RestoreTest) -> Result<(), RecordError> {
    let p = path(state_dir);
    let mut all = match load(state_dir) {
        Ok(all) => all,
        Err(RecordError::Corrupt { .. }) => {
            let aside = state_dir.join(format!("{FILE}.corrupt"));
            std::fs::rename(&p, &aside).map_err(|e| RecordError::Io { path: p.clone(), source: e })?;
            RestoreTests::new()
        }
        Err(e) => return Err(e),
    };
    all.insert(job.to_string(), result);
    let mut text = serde_json::to_vec_pretty(&all)
        .map_err(|e| RecordError::Corrupt { path: p.clone(), message: e.to_string() })?;
    text.push(b'\n');
    crate::atomic::write_atomic(&p, &text).map_err(|e| RecordError::Io { path: p.clone(), source: e })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn t(at: i64, ok: bool) -> RestoreTest {
        RestoreTest {
            at,
            ok,
            archive: "/backup/site/site-2026-11-26.tar.gz".into(),
            files: 120,
            detail: "read to the end".into(),
        }
    }

    #[test]
    fn record_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty(), "absent file = no tests yet");
        record(dir.path(), "site", t(100, true)).unwrap();
        record(dir.path(), "db", t(200, false)).unwrap();
        record(dir.path(), "site", t(300, true)).unwrap();
        let all = load(dir.path()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["site"].at, 300);
        assert!(!all["db"].ok);
        let mode = std::fs::metadata(path(dir.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_record_is_an_error_to_load_and_set_aside_on_record() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "{not json").unwrap();
        assert!(matches!(load(dir.path()), Err(RecordError::Corrupt { .. })));
        record(dir.path(), "site", t(1, true)).unwrap();
        assert_eq!(load(dir.path()).unwrap().len(), 1);
        assert!(dir.path().join("restore-tests.json.corrupt").exists());
    }

    #[test]
    fn a_symlinked_record_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.json");
        std::fs::write(&target, "{}").unwrap();
        std::os::unix::fs::symlink(&target, path(dir.path())).unwrap();
        assert!(matches!(load(dir.path()), Err(RecordError::Io { .. })));
    }
}
