//! The audit log: every tool call and gate decision, hash-chained.
//!
//! Each entry is one JSON line `{seq, ts, prev, event, hash}` where `hash` is
//! SHA-256 over `prev`, `seq`, `ts` and the event. Appends take an exclusive
//! `flock` on the log, so concurrent vigil processes never interleave. The
//! chain head (last seq and hash) is also written to `audit.head`, so
//! `vigil log verify` notices an edited, removed or reordered entry *and* a log
//! cut off at the end. Events are redacted before they are written.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use vigil_tools::Redactor;

use crate::state::{open_append, read_private, write_atomic};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a tool call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// `vigil chat`.
    Chat,
    /// `vigil ask`.
    Ask,
    /// `vigil tools run`.
    ToolsRun,
    /// `vigil review`.
    Review,
    /// A scheduled review.
    Schedule,
    /// An MCP client over `vigil mcp`.
    Mcp,
    /// `vigil wp …`.
    Wp,
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When (RFC 3339, UTC).
    pub ts: String,
    /// Hash of the previous entry.
    pub prev: String,
    /// What happened.
    pub event: Value,
    /// This entry's hash.
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

/// The log file and its head.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
}

fn entry_hash(prev: &str, seq: u64, ts: &str, event: &Value) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(seq.to_string().as_bytes());
    h.update(ts.as_bytes());
    h.update(serde_json::to_vec(event).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Now as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// An exclusive `flock`, released on drop (the file must outlive it).
struct Locked(std::os::unix::io::RawFd);

impl Locked {
    fn new(f: &std::fs::File) -> Result<Self> {
        let fd = f.as_raw_fd();
        // SAFETY: flock on a valid open descriptor.
        let rc = unsafe { libc::flock(fd, libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot lock the audit log");
        }
        Ok(Locked(fd))
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: unlocking the descriptor we locked; the file is still open.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry chains and the head matches.
    Intact {
        /// Number of entries.
        entries: u64,
        /// The head hash.
        head: String,
    },
    /// The first line that does not fit, 1-based, and why.
    Broken {
        /// Line number.
        line: u64,
        /// What is wrong.
        why: String,
    },
}

impl AuditLog {
    /// The log in `state_dir`.
    pub fn in_dir(state_dir: &Path) -> Self {
        AuditLog { path: state_dir.join("audit.jsonl"), head: state_dir.join("audit.head") }
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append an event (redacted first). Returns the new entry.
    pub fn append(&self, event: Value) -> Result<Entry> {
        let event = Redactor::global().value(event);
        let mut f = open_append(&self.path)?;
        let _lock = Locked::new(&f)?;
        let (seq, prev) = last_of(&mut f)?;
        let ts = now_rfc3339();
        let seq = seq + 1;
        let hash = entry_hash(&prev, seq, &ts, &event);
        let entry = Entry { seq, ts, prev, event, hash };
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        f.write_all(&line).context("cannot write the audit log")?;
        f.sync_data().ok();
        write_atomic(&self.head, &serde_json::to_vec(&Head { seq, hash: entry.hash.clone() })?)?;
        Ok(entry)
    }

    /// The chain head (`seq`, `hash`), if any entry exists.
    pub fn head(&self) -> Option<(u64, String)> {
        let b = read_private(&self.head).ok()?;
        let h: Head = serde_json::from_slice(&b).ok()?;
        Some((h.seq, h.hash))
    }

    /// All entries (for `log show`); unparsable lines are skipped here, `verify` reports them.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let bytes = match read_private(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }

    /// Check the whole chain and the head.
    pub fn verify(&self) -> Result<Verdict> {
        let bytes = match read_private(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        let mut prev = GENESIS.to_string();
        let mut n = 0u64;
        for (i, line) in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let lineno = i as u64 + 1;
            let e: Entry = match serde_json::from_slice(line) {
                Ok(e) => e,
                Err(err) => return Ok(Verdict::Broken { line: lineno, why: format!("not a log entry: {err}") }),
            };
            if e.seq != lineno {
                return Ok(Verdict::Broken {
                    line: lineno,
                    why: format!("sequence {} where {lineno} was expected (removed or reordered)", e.seq),
                });
            }
            if e.prev != prev {
                return Ok(Verdict::Broken { line: lineno, why: "does not chain to the entry before it".into() });
            }
            if entry_hash(&e.prev, e.seq, &e.ts, &e.event) != e.hash {
                return Ok(Verdict::Broken { line: lineno, why: "content does not match its hash (edited)".into() });
            }
            prev = e.hash;
            n = lineno;
        }
        match self.head() {
            Some((seq, hash)) if seq != n || hash != prev => Ok(Verdict::Broken {
                line: n + 1,
                why: format!(
                    "the log ends at entry {n} but the recorded head is entry {seq}: entries were cut off the end"
                ),
            }),
            None if n > 0 => Ok(Verdict::Broken { line: 1, why: "the chain head file audit.head is missing".into() }),
            _ => Ok(Verdict::Intact { entries: n, head: prev }),
        }
    }
}

fn last_of(f: &mut std::fs::File) -> Result<(u64, String)> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, GENESIS.to_string()));
    }
    // Read the tail and take the last complete line.
    let start = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut last = None;
    for line in BufReader::new(&mut *f).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    f.seek(SeekFrom::End(0))?;
    let last = last.context("the audit log's last line is unreadable")?;
    let e: Entry =
        serde_json::from_str(&last).context("the audit log's last entry is corrupt (run `vigil log verify`)")?;
    Ok((e.seq, e.hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log() -> (tempfile::TempDir, AuditLog) {
        let t = tempfile::tempdir().unwrap();
        let l = AuditLog::in_dir(t.path());
        for i in 0..4 {
            l.append(json!({"tool": "list_open_ports", "i": i})).unwrap();
        }
        (t, l)
    }

    fn lines(l: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(l.path()).unwrap().lines().map(String::from).collect()
    }

    fn rewrite(l: &AuditLog, ls: &[String]) {
        std::fs::write(l.path(), ls.iter().map(|s| format!("{s}\n")).collect::<String>()).unwrap();
    }

    #[test]
    fn an_intact_log_verifies() {
        let (_t, l) = log();
        assert!(matches!(l.verify().unwrap(), Verdict::Intact { entries: 4, .. }));
    }

    #[test]
    fn edits_removals_reorders_and_truncation_are_caught() {
        let (_t, l) = log();
        let orig = lines(&l);

        let mut edited = orig.clone();
        edited[1] = edited[1].replace("\"i\":1", "\"i\":9");
        rewrite(&l, &edited);
        assert!(matches!(l.verify().unwrap(), Verdict::Broken { line: 2, .. }));

        let mut removed = orig.clone();
        removed.remove(2);
        rewrite(&l, &removed);
        assert!(matches!(l.verify().unwrap(), Verdict::Broken { line: 3, .. }));

        let mut swapped = orig.clone();
        swapped.swap(0, 1);
        rewrite(&l, &swapped);
        assert!(matches!(l.verify().unwrap(), Verdict::Broken { line: 1, .. }));

        rewrite(&l, &orig[..3]);
        match l.verify().unwrap() {
            Verdict::Broken { line, why } => {
                assert_eq!(line, 4);
                assert!(why.contains("cut off"), "{why}");
            }
            v => panic!("truncation not caught: {v:?}"),
        }
    }

    #[test]
    fn events_are_redacted() {
        let t = tempfile::tempdir().unwrap();
        let l = AuditLog::in_dir(t.path());
        l.append(json!({"cmd": "mysql -pHunter2 db"})).unwrap();
        assert!(!std::fs::read_to_string(l.path()).unwrap().contains("Hunter2"));
    }
}
