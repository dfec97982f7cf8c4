//! The audit log: every tool call and gate decision, hash-chained.
//!
//! Each entry is one JSON line `{seq, ts, prev, event, hash}` where `hash` is
//! SHA-256 over `prev`, `seq`, `ts` and the event. Appends take an exclusive
//! `flock` on the log, so concurrent vigil processes never interleave. The
//! chain head (last seq and hash) is also written to `audit.head`, so
//! `vigil log verify` notices an edited, removed or reordered entry *and* a log
//! cut off at the end. Events are redacted, then capped (a value beyond the cap
//! is replaced by its size and SHA-256), before they are written.
//!
//! Everything in the state directory can be rewritten by root, so each entry's
//! sequence number and hash are also sent out of it ([`anchor`]): to the systemd
//! journal and, when configured, to a remote syslog. `verify` compares the chain
//! with what the journal holds.

pub mod anchor;

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use vigil_tools::Redactor;

use crate::state::{open_append, read_private, write_atomic};
use anchor::{Anchors, JournalCheck};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest string value kept in an event; a longer one is replaced by its size and digest.
pub const STRING_CAP: usize = 2048;
/// The largest event kept (serialized); beyond it the largest fields are replaced by digests.
pub const EVENT_CAP: usize = 16 * 1024;
/// Fields at least this large are the ones replaced when an event is over [`EVENT_CAP`].
const FIELD_FLOOR: usize = 256;
/// The event key under which an append records damage it found in the log.
const DAMAGE_KEY: &str = "audit_damage";

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
    /// A fleet controller's request, served by `vigil __remote` on this host.
    Fleet,
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

/// The chain head: the last entry's sequence number and hash. Reports and
/// notifications carry it, so a copy of it lives wherever they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last entry's sequence number.
    pub seq: u64,
    /// The last entry's hash (hex SHA-256).
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry {} sha256 {}", self.seq, self.hash)
    }
}

/// The log file and its head.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
    anchors: Anchors,
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
    vigil_tools::format::rfc3339(time::OffsetDateTime::now_utc().unix_timestamp())
}

/// What replaces a value too large to log: its size and digest (of the redacted value).
fn omitted(serialized: &[u8]) -> Value {
    serde_json::json!({
        "omitted": "too large to log",
        "bytes": serialized.len(),
        "sha256": hex::encode(Sha256::digest(serialized)),
    })
}

fn cap_strings(v: Value) -> Value {
    match v {
        Value::String(s) if s.len() > STRING_CAP => omitted(s.as_bytes()),
        Value::Array(a) => Value::Array(a.into_iter().map(cap_strings).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    // A key is as much the caller's as a value.
                    let k = if k.len() > STRING_CAP {
                        format!("key-sha256-{}", hex::encode(Sha256::digest(k.as_bytes())))
                    } else {
                        k
                    };
                    (k, cap_strings(v))
                })
                .collect(),
        ),
        other => other,
    }
}

fn size_of(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// Keep an event under [`EVENT_CAP`]: long strings become digests, then the
/// largest top-level fields, then (an event of countless small fields) all of it
/// but its kind.
pub fn cap_event(event: Value) -> Value {
    let event = cap_strings(event);
    if size_of(&event) <= EVENT_CAP {
        return event;
    }
    let Value::Object(mut o) = event else {
        let bytes = serde_json::to_vec(&event).unwrap_or_default();
        return omitted(&bytes);
    };
    let mut sizes: Vec<(String, usize)> = o.iter().map(|(k, v)| (k.clone(), size_of(v))).collect();
    sizes.sort_by_key(|s| std::cmp::Reverse(s.1));
    // The running size: the whole event less what each replacement saved.
    let mut total = serde_json::to_vec(&o).map(|b| b.len()).unwrap_or(usize::MAX);
    for (k, n) in sizes {
        if n < FIELD_FLOOR || total <= EVENT_CAP {
            break;
        }
        if let Some(v) = o.get_mut(&k) {
            *v = omitted(&serde_json::to_vec(v).unwrap_or_default());
            total = total.saturating_sub(n) + size_of(v);
        }
    }
    let event = Value::Object(o);
    if size_of(&event) <= EVENT_CAP {
        return event;
    }
    let bytes = serde_json::to_vec(&event).unwrap_or_default();
    let mut keep = Map::new();
    for k in ["kind", "origin", "tool", "decision"] {
        if let Some(v) = event.get(k).filter(|v| size_of(v) < FIELD_FLOOR) {
            keep.insert(k.to_string(), v.clone());
        }
    }
    keep.insert("event".into(), omitted(&bytes));
    Value::Object(keep)
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

/// What `verify` found in the files themselves.
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

/// What `verify` found: the files, and the files against their anchors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The chain and its head file.
    pub chain: Verdict,
    /// The chain against the hashes in the journal.
    pub journal: JournalCheck,
    /// Whether the journal is sealed (Forward Secure Sealing keys exist); `None` with no journal.
    pub sealed: Option<bool>,
    /// The remote syslog that receives copies, when configured.
    pub syslog: Option<String>,
}

impl Verification {
    /// True when nothing contradicts the log.
    pub fn ok(&self) -> bool {
        matches!(self.chain, Verdict::Intact { .. }) && !matches!(self.journal, JournalCheck::Mismatch { .. })
    }
}

/// How the tail of the log looked to an append.
struct Tail {
    seq: u64,
    hash: String,
    /// Why the tail cannot be trusted, if it cannot.
    damage: Option<String>,
    /// The file does not end in a newline (a torn write).
    torn: bool,
}

/// Warn once per process: the gate appends for every tool call.
fn warn_once(flag: &AtomicBool, msg: &str) {
    tracing::warn!("audit log: {msg}");
    if !flag.swap(true, Ordering::Relaxed) {
        eprintln!("vigil: warning: {msg}");
    }
}

static DAMAGE_WARNED: AtomicBool = AtomicBool::new(false);

impl AuditLog {
    /// The log in `state_dir`, anchored in the system journal when one runs.
    pub fn in_dir(state_dir: &Path) -> Self {
        let dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        let path = dir.join("audit.jsonl");
        let anchors = Anchors::new(&path);
        AuditLog { path, head: dir.join("audit.head"), anchors }
    }

    /// Also send each entry's hash to this remote syslog.
    pub fn with_syslog(mut self, target: Option<anchor::SyslogTarget>) -> Self {
        self.anchors.syslog = target;
        self
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(crate) fn anchors_mut(&mut self) -> &mut Anchors {
        &mut self.anchors
    }

    /// Append an event (redacted, then capped). Returns the new entry.
    ///
    /// A damaged tail never stops the log: the entry is still written, chained
    /// to the recorded head, and a warning says what `verify` will report.
    pub fn append(&self, event: Value) -> Result<Entry> {
        let event = cap_event(Redactor::global().value(event));
        let entry = {
            let mut f = open_append(&self.path)?;
            let _lock = Locked::new(&f)?;
            let tail = self.tail(&mut f)?;
            if let Some(why) = &tail.damage {
                warn_once(
                    &DAMAGE_WARNED,
                    &format!(
                        "the audit log {} is damaged ({why}); new entries are still written; \
                         run `vigil log verify`",
                        self.path.display()
                    ),
                );
            }
            // The damage is written into the chain itself: re-creating the head cannot hide it.
            let event = match (&tail.damage, event) {
                (Some(why), Value::Object(mut o)) => {
                    o.insert(DAMAGE_KEY.into(), Value::String(why.clone()));
                    Value::Object(o)
                }
                (Some(why), other) => serde_json::json!({DAMAGE_KEY: why, "event": other}),
                (None, event) => event,
            };
            let ts = now_rfc3339();
            let seq = tail.seq + 1;
            let hash = entry_hash(&tail.hash, seq, &ts, &event);
            let entry = Entry { seq, ts, prev: tail.hash, event, hash };
            let mut line = Vec::new();
            if tail.torn {
                line.push(b'\n');
            }
            serde_json::to_writer(&mut line, &entry)?;
            line.push(b'\n');
            f.write_all(&line).context("cannot write the audit log")?;
            f.sync_data().ok();
            write_atomic(&self.head, &serde_json::to_vec(&Head { seq, hash: entry.hash.clone() })?)?;
            entry
        };
        self.anchors.send(entry.seq, &entry.hash);
        Ok(entry)
    }

    /// The chain head, if any entry exists.
    pub fn head(&self) -> Option<Head> {
        let b = read_private(&self.head).ok()?;
        serde_json::from_slice(&b).ok()
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

    /// The last entry as an append sees it, checked the way `verify` checks it:
    /// it parses, its hash is its own, and it is the recorded head.
    fn tail(&self, f: &mut std::fs::File) -> Result<Tail> {
        let (last, torn) = last_line(f)?;
        let head = self.head();
        let Some(last) = last else {
            return Ok(match head {
                Some(h) => Tail {
                    damage: Some(format!("the log is empty but its head records entry {}", h.seq)),
                    seq: h.seq,
                    hash: h.hash,
                    torn,
                },
                None => Tail { seq: 0, hash: GENESIS.to_string(), damage: None, torn },
            });
        };
        let damage = match serde_json::from_slice::<Entry>(&last) {
            Err(e) => Err(format!("its last line is not a log entry: {e}")),
            Ok(e) if entry_hash(&e.prev, e.seq, &e.ts, &e.event) != e.hash => {
                Err(format!("its last entry {} does not match its hash", e.seq))
            }
            Ok(e) => match &head {
                None => Err(format!("the chain head file {} is missing", self.head.display())),
                Some(h) if h.seq != e.seq || h.hash != e.hash => {
                    Err(format!("its last entry is {} but the recorded head is entry {}", e.seq, h.seq))
                }
                Some(_) => Ok(e),
            },
        };
        Ok(match damage {
            Ok(e) => Tail { seq: e.seq, hash: e.hash, damage: None, torn },
            // Chain from the recorded head when there is one (it is what was last
            // written whole), else from the last entry that parsed.
            Err(why) => match head {
                Some(h) => Tail { seq: h.seq, hash: h.hash, damage: Some(why), torn },
                None => {
                    let (seq, hash) = serde_json::from_slice::<Entry>(&last)
                        .map(|e| (e.seq, e.hash))
                        .unwrap_or((0, GENESIS.to_string()));
                    Tail { seq, hash, damage: Some(why), torn }
                }
            },
        })
    }

    /// Check the whole chain and the head file.
    pub fn verify_chain(&self) -> Result<(Verdict, Vec<String>)> {
        let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&self.path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        let mut hashes = Vec::new();
        let mut prev = GENESIS.to_string();
        let mut n = 0u64;
        if let Some(file) = file {
            let mut r = BufReader::new(file);
            let mut line = Vec::new();
            let mut lineno = 0u64;
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).with_context(|| format!("cannot read {}", self.path.display()))? == 0
                {
                    break;
                }
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                lineno += 1;
                let e: Entry = match serde_json::from_slice(&line) {
                    Ok(e) => e,
                    Err(err) => {
                        return Ok((Verdict::Broken { line: lineno, why: format!("not a log entry: {err}") }, hashes));
                    }
                };
                if e.seq != lineno {
                    let why = format!("sequence {} where {lineno} was expected (removed or reordered)", e.seq);
                    return Ok((Verdict::Broken { line: lineno, why }, hashes));
                }
                if e.prev != prev {
                    let why = "does not chain to the entry before it".to_string();
                    return Ok((Verdict::Broken { line: lineno, why }, hashes));
                }
                if entry_hash(&e.prev, e.seq, &e.ts, &e.event) != e.hash {
                    let why = "content does not match its hash (edited)".to_string();
                    return Ok((Verdict::Broken { line: lineno, why }, hashes));
                }
                if let Some(d) = e.event.get(DAMAGE_KEY) {
                    let d = d.as_str().unwrap_or("");
                    let why = format!("entry {} was written when the log was found damaged: {d}", e.seq);
                    return Ok((Verdict::Broken { line: lineno, why }, hashes));
                }
                hashes.push(e.hash.clone());
                prev = e.hash;
                n = lineno;
            }
        }
        let verdict = match self.head() {
            Some(h) if h.seq != n || h.hash != prev => Verdict::Broken {
                line: n + 1,
                why: format!(
                    "the log ends at entry {n} but the recorded head is entry {}: entries were cut off the end",
                    h.seq
                ),
            },
            None if n > 0 => Verdict::Broken { line: 1, why: "the chain head file audit.head is missing".into() },
            _ => Verdict::Intact { entries: n, head: prev },
        };
        Ok((verdict, hashes))
    }

    /// Check the chain, and the chain against its anchors in the journal.
    pub fn verify(&self) -> Result<Verification> {
        let (chain, hashes) = self.verify_chain()?;
        let journal = match &chain {
            Verdict::Intact { .. } => self.anchors.check(&hashes),
            Verdict::Broken { .. } => JournalCheck::NotChecked,
        };
        Ok(Verification {
            chain,
            journal,
            sealed: self.anchors.sealed(),
            syslog: self.anchors.syslog.as_ref().map(|s| s.to_string()),
        })
    }
}

/// The last non-empty line of the log, however long, and whether the file ends torn
/// (without its final newline). Reads backwards from the end, a block at a time.
fn last_line(f: &mut std::fs::File) -> Result<(Option<Vec<u8>>, bool)> {
    const BLOCK: u64 = 64 * 1024;
    let len = f.seek(SeekFrom::End(0))?;
    let mut tail: Vec<u8> = Vec::new();
    let mut torn = false;
    let mut pos = len;
    let found = loop {
        while tail.last().is_some_and(|b| b.is_ascii_whitespace()) {
            tail.pop();
        }
        if let Some(i) = tail.iter().rposition(|b| *b == b'\n') {
            break Some(tail.split_off(i + 1));
        }
        if pos == 0 {
            break if tail.is_empty() { None } else { Some(tail) };
        }
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut block).context("cannot read the audit log")?;
        if pos == len {
            torn = block.last().is_some_and(|b| *b != b'\n');
        }
        block.extend_from_slice(&tail);
        tail = block;
        pos = start;
    };
    f.seek(SeekFrom::End(0))?;
    Ok((found, torn))
}

#[cfg(test)]
mod tests;
