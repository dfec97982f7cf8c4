//! Fleet history: each host of an inventory keeps its reviews exactly as one server does.
//!
//! `STATE/fleet/<inventory-id>/hosts/<host>/` holds the host's saved reviews
//! ([`crate::review::history`]: save, latest, compare), so "new since last month"
//! works per host as on one server, and `attempt.json`, the last attempt and the
//! last failure (reason, time), so `vigil fleet status` can say which hosts were
//! not reached without asking ssh. A host that fails keeps its previous review.
//! Host names come from the inventory, which may be generated or edited by
//! others: they become directory names only after [`safe_name`] (no `/`, no
//! `..`, no control characters), and the inventory id is the file's name plus a
//! hash of its canonical path, so two inventories never share a history.
//! Scheduled runs keep every format of the report under `reports/`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::outcome::Reason;
use crate::state::{StateDir, ensure_private_dir, read_private, write_atomic};

/// Longest directory name made from a host name (the hash suffix comes on top).
const MAX_NAME: usize = 80;

fn short_hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))[..8].to_string()
}

/// A host (or inventory) name as a directory name: ASCII letters, digits, `-`, `_` and `.`
/// kept, anything else `_`, never starting with `.`; a name that had to change gets a hash of
/// the original, so `a/b` and `a_b` stay two hosts.
pub fn safe_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .take(MAX_NAME)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    if s.starts_with('.') || s.is_empty() {
        s.insert(0, '_');
    }
    if s != name {
        s = format!("{s}-{}", short_hash(name));
    }
    s
}

/// The inventory's id: its file name and a hash of its canonical path (`hosts.ini-1a2b3c4d`).
pub fn inventory_id(inventory: &Path) -> String {
    let canon = std::fs::canonicalize(inventory)
        .or_else(|_| std::path::absolute(inventory))
        .unwrap_or_else(|_| inventory.to_path_buf());
    let stem = canon.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "inventory".into());
    let stem: String = stem
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    format!("{}-{}", stem.trim_start_matches('.'), short_hash(&canon.to_string_lossy()))
}

/// One inventory's history directory.
#[derive(Debug, Clone)]
pub struct FleetDir {
    root: PathBuf,
}

impl FleetDir {
    /// `STATE/fleet/<inventory-id>/`, created (0700) if absent.
    pub fn open(state: &StateDir, inventory: &Path) -> Result<FleetDir> {
        let root = state.sub("fleet")?.join(inventory_id(inventory));
        ensure_private_dir(&root)?;
        Ok(FleetDir { root })
    }

    /// The same directory, for reading only: nothing is created (`fleet status`).
    pub fn find(state: &StateDir, inventory: &Path) -> FleetDir {
        FleetDir { root: state.path().join("fleet").join(inventory_id(inventory)) }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A host's directory (its `reviews/` and `attempt.json`), not created.
    pub fn host_path(&self, host: &str) -> PathBuf {
        self.root.join("hosts").join(safe_name(host))
    }

    /// A host's directory, created (0700).
    pub fn host_dir(&self, host: &str) -> Result<PathBuf> {
        ensure_private_dir(&self.root.join("hosts"))?;
        let p = self.host_path(host);
        ensure_private_dir(&p)?;
        Ok(p)
    }

    /// Where scheduled runs keep their reports, created (0700).
    pub fn reports_dir(&self) -> Result<PathBuf> {
        let p = self.root.join("reports");
        ensure_private_dir(&p)?;
        Ok(p)
    }
}

/// One attempt to review a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the run started (the controller's clock, RFC 3339).
    pub at: String,
    /// `reviewed`, `partial`, or the failure reason (`unreachable`, `auth-failed`…).
    pub result: String,
    /// Why it failed, in ssh's or the remote's words (controls stripped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Attempt {
    /// A failed attempt.
    pub fn failed(at: &str, reason: Reason, detail: &str) -> Attempt {
        Attempt {
            at: at.to_string(),
            result: reason.as_str().to_string(),
            detail: Some(crate::term::strip_controls(detail)),
        }
    }

    /// True when the host answered with a review (complete or partial).
    pub fn ok(&self) -> bool {
        self.result == "reviewed" || self.result == "partial"
    }
}

/// A host's attempts: the last one, and the last that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempts {
    /// The inventory's name for the host (the directory name may differ).
    pub host: String,
    /// The most recent attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Attempt>,
    /// The most recent failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Attempt>,
}

fn attempts_file(host_dir: &Path) -> PathBuf {
    host_dir.join("attempt.json")
}

/// The recorded attempts of the host in `host_dir` (empty when none or unreadable).
pub fn attempts(host_dir: &Path) -> Attempts {
    read_private(&attempts_file(host_dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Record an attempt for `host` (kept with its last failure).
pub fn record(host_dir: &Path, host: &str, attempt: Attempt) -> Result<()> {
    let mut a = attempts(host_dir);
    a.host = host.to_string();
    if !attempt.ok() {
        a.last_failure = Some(attempt.clone());
    }
    a.last = Some(attempt);
    write_atomic(&attempts_file(host_dir), &serde_json::to_vec_pretty(&a)?)
}

/// Seconds since the Unix epoch of an RFC 3339 time, if it is one.
pub fn unix_of(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok().map(|d| d.unix_timestamp())
}

/// How old a host's last successful review may be before it is overdue: the installed
/// schedule's longest gap, else 35 days (a month and a few days' slack).
pub fn overdue_after(state: &StateDir) -> i64 {
    crate::schedule::installed(state).map(|i| i.max_gap_secs()).unwrap_or(35 * 86_400)
}

/// True when the last successful review (`None`: never) is older than `limit` seconds at `now`.
pub fn overdue(last_review: Option<&str>, now: i64, limit: i64) -> bool {
    match last_review.and_then(unix_of) {
        Some(t) => now - t > limit,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_host_names_stay_inside_the_fleet_directory() {
        for bad in ["..", ".", "../../etc", "a/b", "web\n01", "\u{1b}[31mx", "", "/abs", ".hidden"] {
            let s = safe_name(bad);
            assert!(!s.contains('/') && !s.starts_with('.') && !s.chars().any(char::is_control), "{bad:?} -> {s}");
            assert!(!s.is_empty());
        }
        assert_eq!(safe_name("web01.example.org"), "web01.example.org");
        assert_ne!(safe_name("a/b"), safe_name("a_b"), "two hosts never share a history");
        assert!(safe_name(&"x".repeat(500)).len() < 100);
        let t = tempfile::tempdir().unwrap();
        let state = StateDir::open(Some(t.path())).unwrap();
        let dir = FleetDir::open(&state, Path::new("/etc/ansible/hosts")).unwrap();
        let p = dir.host_dir("../../../escape").unwrap();
        assert!(p.starts_with(dir.path().join("hosts")), "{}", p.display());
        assert_eq!(p.parent(), Some(dir.path().join("hosts").as_path()));
    }

    #[test]
    fn a_failure_is_kept_after_a_later_success() {
        let t = tempfile::tempdir().unwrap();
        let at = "2026-11-01T00:00:00Z";
        record(t.path(), "web1", Attempt::failed(at, Reason::Unreachable, "ssh: connect: \u{1b}[2JNo route")).unwrap();
        let a = attempts(t.path());
        assert_eq!(a.last.as_ref().map(|l| l.result.as_str()), Some("unreachable"));
        assert_eq!(a.last_failure.as_ref().and_then(|l| l.detail.as_deref()), Some("ssh: connect: No route"));
        let later = Attempt { at: "2026-12-01T00:00:00Z".into(), result: "reviewed".into(), detail: None };
        record(t.path(), "web1", later.clone()).unwrap();
        let a = attempts(t.path());
        assert_eq!(a.last, Some(later));
        assert_eq!(a.last_failure.map(|f| f.at), Some(at.to_string()));
        assert!(overdue(Some("2026-10-01T00:00:00Z"), unix_of("2026-11-20T00:00:00Z").unwrap(), 35 * 86_400));
        assert!(!overdue(Some("2026-11-01T00:00:00Z"), unix_of("2026-11-20T00:00:00Z").unwrap(), 35 * 86_400));
        assert!(overdue(None, 0, 35 * 86_400), "never reviewed is overdue");
    }
}
