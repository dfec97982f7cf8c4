//! Anchors: copies of each audit entry's sequence number and hash kept outside
//! the state directory, so rewriting the log (and its head) is not enough to
//! hide what happened.
//!
//! Two places, each optional: the systemd journal (a native-protocol datagram
//! to its socket, fields `SYSLOG_IDENTIFIER=vigil-audit`, `VIGIL_AUDIT_LOG`,
//! `VIGIL_AUDIT_SEQ`, `VIGIL_AUDIT_HASH`) and a remote syslog named in the
//! root-owned config (`[audit] syslog = "udp://host:514"`, one RFC 5424 line per
//! entry). Nothing of the event itself leaves: only the log's path, the
//! sequence number and the hash. `vigil log verify` reads the journal back with
//! `journalctl` and compares; a remote syslog cannot be read from here, so its
//! copy is what an admin compares by hand after local tampering.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{now_rfc3339, warn_once};

/// The journal's native socket on a systemd host.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// Where journal files live (persistent, volatile).
const JOURNAL_DIRS: [&str; 2] = ["/var/log/journal", "/run/log/journal"];
/// The identifier anchors are logged under.
pub const IDENT: &str = "vigil-audit";
/// How long a TCP syslog may take to accept a line before this entry goes unanchored there.
const TCP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long reading the journal back may take.
const JOURNALCTL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a journal send may take.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed TCP syslog send, further sends wait this long (each would cost the timeout).
const TCP_BACKOFF_SECS: u64 = 60;

static JOURNAL_WARNED: AtomicBool = AtomicBool::new(false);
static SYSLOG_WARNED: AtomicBool = AtomicBool::new(false);
static TCP_RETRY_AT: AtomicU64 = AtomicU64::new(0);

/// A remote syslog server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    tcp: bool,
    host: String,
    port: u16,
}

impl SyslogTarget {
    /// Parse `udp://HOST[:PORT]` or `tcp://HOST[:PORT]` (IPv6 in brackets; port 514 when absent).
    pub fn parse(s: &str) -> Result<SyslogTarget> {
        let usage = || {
            format!(
                "[audit] syslog = {s:?}: expected udp://HOST:PORT or tcp://HOST:PORT, like \"udp://192.0.2.10:514\""
            )
        };
        let (tcp, rest) = if let Some(r) = s.strip_prefix("udp://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("tcp://") {
            (true, r)
        } else {
            bail!("{}", usage());
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').with_context(usage)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok().with_context(usage)?,
                None if after.is_empty() => 514,
                None => bail!("{}", usage()),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok().with_context(usage)?),
                None => (rest.to_string(), 514),
            }
        };
        if host.is_empty() || port == 0 || host.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
            bail!("{}", usage());
        }
        Ok(SyslogTarget { tcp, host, port })
    }

    fn send(&self, line: &str) -> Result<()> {
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", self.host))?
            .collect();
        let addr = addrs.first().with_context(|| format!("{} has no address", self.host))?;
        if self.tcp {
            let mut s = TcpStream::connect_timeout(addr, TCP_TIMEOUT)?;
            s.set_write_timeout(Some(TCP_TIMEOUT))?;
            s.write_all(format!("{line}\n").as_bytes())?;
            s.flush()?;
        } else {
            let local = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            UdpSocket::bind(local)?.send_to(line.as_bytes(), addr)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tcp { "tcp" } else { "udp" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Where `verify` reads the journal's anchors from.
#[derive(Debug, Clone)]
pub(crate) enum JournalSource {
    /// `journalctl -o json …` (every live run).
    Journalctl,
    /// A file of `journalctl -o json` lines (tests, which have no journald).
    #[cfg_attr(not(test), allow(dead_code))]
    Export(PathBuf),
}

/// Where this log's anchors go and are read from.
#[derive(Debug, Clone)]
pub struct Anchors {
    /// The log's path: the journal holds anchors of every vigil state directory.
    log: String,
    /// The journal's socket (a test binds its own).
    pub(crate) journal_socket: PathBuf,
    /// Send through `logger --journald` (live runs) rather than straight to the socket (tests).
    pub(crate) journal_via_logger: bool,
    /// Where the journal is read back from.
    pub(crate) journal_source: JournalSource,
    /// Where journal files are looked for (sealing keys, "is there a journal").
    pub(crate) journal_dirs: Vec<PathBuf>,
    /// The remote syslog, when configured.
    pub(crate) syslog: Option<SyslogTarget>,
}

/// The chain against the journal's copy of its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalCheck {
    /// The chain itself is broken; that is the finding.
    NotChecked,
    /// The journal could not be read, or there is none: why.
    Unavailable(String),
    /// The journal is there but holds no anchor of this log.
    NoAnchors,
    /// Every anchor matches the log.
    Matches {
        /// The highest anchored sequence number.
        up_to: u64,
        /// The entries in the log.
        entries: u64,
    },
    /// The log contradicts the journal: what.
    Mismatch(String),
}

/// Append a native-protocol field; values with a newline use the length-prefixed form.
fn field(buf: &mut Vec<u8>, key: &str, value: &str) {
    buf.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value.as_bytes());
    buf.push(b'\n');
}

/// A syslog header/SD-safe token: printable ASCII without spaces, or `-`.
fn token(s: &str, max: usize) -> String {
    let t: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if t.is_empty() { "-".into() } else { t }
}

/// An RFC 5424 PARAM-VALUE: `"`, `\` and `]` escaped, controls dropped.
fn param(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if matches!(c, '"' | '\\' | ']') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn hostname() -> String {
    let h = vigil_tools::Host::live().read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    token(h.trim(), 255)
}

impl Anchors {
    /// Anchors of the log at `path`: the system journal; syslog when configured.
    pub(crate) fn new(path: &Path) -> Anchors {
        Anchors {
            log: path.display().to_string(),
            journal_socket: PathBuf::from(JOURNAL_SOCKET),
            journal_via_logger: true,
            journal_source: JournalSource::Journalctl,
            journal_dirs: JOURNAL_DIRS.iter().map(PathBuf::from).collect(),
            syslog: None,
        }
    }

    /// The journal datagram for one entry.
    pub(crate) fn journal_record(&self, seq: u64, hash: &str) -> Vec<u8> {
        let mut b = Vec::new();
        field(&mut b, "MESSAGE", &format!("vigil audit log {} entry {seq} sha256 {hash}", self.log));
        field(&mut b, "PRIORITY", "6");
        field(&mut b, "SYSLOG_FACILITY", "10");
        field(&mut b, "SYSLOG_IDENTIFIER", IDENT);
        field(&mut b, "VIGIL_AUDIT_LOG", &self.log);
        field(&mut b, "VIGIL_AUDIT_SEQ", &seq.to_string());
        field(&mut b, "VIGIL_AUDIT_HASH", hash);
        b
    }

    /// The RFC 5424 line for one entry (authpriv.info).
    pub(crate) fn syslog_line(&self, seq: u64, hash: &str) -> String {
        format!(
            "<86>1 {} {} {IDENT} {} - [vigil@32473 log=\"{}\" seq=\"{seq}\" hash=\"{hash}\"] vigil audit log entry {seq} sha256 {hash}",
            now_rfc3339(),
            hostname(),
            std::process::id(),
            param(&self.log),
        )
    }

    /// Send one entry's anchors. A host without a journal is not an error (verify
    /// says so); a journal or syslog that refuses is a warning, once per process.
    pub(crate) fn send(&self, seq: u64, hash: &str) {
        if self.journal_socket.exists() {
            let sent = if self.journal_via_logger && !self.log.contains('\n') {
                self.send_via_logger(seq, hash)
            } else {
                self.send_direct(seq, hash)
            };
            if let Err(e) = sent {
                warn_once(
                    &JOURNAL_WARNED,
                    &format!(
                        "cannot anchor the audit log in the journal ({}: {e}); `vigil log verify` will show \
                         which entries have no anchor",
                        self.journal_socket.display()
                    ),
                );
            }
        }
        if let Some(t) = &self.syslog {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            if t.tcp && now < TCP_RETRY_AT.load(Ordering::Relaxed) {
                return;
            }
            if let Err(e) = t.send(&self.syslog_line(seq, hash)) {
                if t.tcp {
                    TCP_RETRY_AT.store(now + TCP_BACKOFF_SECS, Ordering::Relaxed);
                }
                warn_once(
                    &SYSLOG_WARNED,
                    &format!(
                        "cannot send the audit log's hashes to syslog {t}: {e:#}; entry {seq} is not anchored there"
                    ),
                );
            }
        }
    }

    fn send_direct(&self, seq: u64, hash: &str) -> std::io::Result<()> {
        let s = UnixDatagram::unbound()?;
        s.set_write_timeout(Some(JOURNAL_TIMEOUT))?;
        s.send_to(&self.journal_record(seq, hash), &self.journal_socket).map(|_| ())
    }

    /// Hand the record to `logger --journald`: journald stores the sender's command line
    /// (`_CMDLINE`), and vigil's may hold what an admin typed; logger's holds nothing.
    /// Without logger the record goes straight to the socket.
    fn send_via_logger(&self, seq: u64, hash: &str) -> std::io::Result<()> {
        let Some(logger) = vigil_tools::spawn::resolve("logger") else {
            return self.send_direct(seq, hash);
        };
        let spawned = vigil_tools::spawn::std_command(&logger, &["--journald"], &[])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.send_direct(seq, hash),
            Err(e) => return Err(e),
        };
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&self.journal_record(seq, hash))?;
        }
        let started = std::time::Instant::now();
        loop {
            match child.try_wait()? {
                Some(st) if st.success() => return Ok(()),
                Some(st) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return Err(std::io::Error::other(format!(
                        "logger --journald failed ({st}): {}",
                        crate::term::strip_controls(err.trim())
                    )));
                }
                None if started.elapsed() > JOURNAL_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::io::Error::other("logger --journald did not finish within 2 s"));
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    fn journal_files_exist(&self) -> bool {
        self.journal_dirs.iter().any(|d| {
            std::fs::read_dir(d).into_iter().flatten().flatten().any(|m| {
                std::fs::read_dir(m.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|f| f.file_name().to_string_lossy().ends_with(".journal"))
            })
        })
    }

    /// Whether a journal exists here, and if so whether Forward Secure Sealing is set up.
    pub(crate) fn sealed(&self) -> Option<bool> {
        if !self.journal_socket.exists() && !self.journal_files_exist() {
            return None;
        }
        Some(
            self.journal_dirs
                .iter()
                .any(|d| std::fs::read_dir(d).into_iter().flatten().flatten().any(|m| m.path().join("fss").is_file())),
        )
    }

    /// The journal's anchors of this log: (seq, hash) pairs, possibly repeated.
    #[expect(clippy::disallowed_methods, reason = "a journal export the administrator names, not an audited file")]
    fn read_journal(&self) -> Result<Vec<(u64, String)>, String> {
        let text = match &self.journal_source {
            JournalSource::Export(p) => std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
            JournalSource::Journalctl => journalctl(&[
                "-o".into(),
                "json".into(),
                "--no-pager".into(),
                "-q".into(),
                format!("SYSLOG_IDENTIFIER={IDENT}"),
                format!("VIGIL_AUDIT_LOG={}", self.log),
            ])?,
        };
        let mut anchors = Vec::new();
        for line in text.split(|b| *b == b'\n') {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            if s("SYSLOG_IDENTIFIER").as_deref() != Some(IDENT) || s("VIGIL_AUDIT_LOG").as_deref() != Some(&self.log) {
                continue;
            }
            let (Some(seq), Some(hash)) = (s("VIGIL_AUDIT_SEQ").and_then(|q| q.parse().ok()), s("VIGIL_AUDIT_HASH"))
            else {
                continue;
            };
            anchors.push((seq, hash));
        }
        Ok(anchors)
    }

    /// Compare the log's hashes (entry `i + 1` at `hashes[i]`) with the journal's anchors.
    pub(crate) fn check(&self, hashes: &[String]) -> JournalCheck {
        let anchors = match self.read_journal() {
            Ok(a) => a,
            Err(why) => return JournalCheck::Unavailable(why),
        };
        if anchors.is_empty() {
            if self.journal_socket.exists() || self.journal_files_exist() {
                return JournalCheck::NoAnchors;
            }
            return JournalCheck::Unavailable("no journal on this host".into());
        }
        compare(hashes, &anchors)
    }
}

/// Run journalctl, bounded by [`JOURNALCTL_TIMEOUT`]: its stdout, or why there is none.
fn journalctl(args: &[String]) -> Result<Vec<u8>, String> {
    let Some(program) = vigil_tools::spawn::resolve("journalctl") else {
        return Err("no journal on this host (journalctl is not installed)".into());
    };
    let child = vigil_tools::spawn::std_command(&program, args, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let child = match child {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("no journal on this host (journalctl is not installed)".into());
        }
        Err(e) => return Err(format!("cannot run journalctl: {e}")),
        Ok(c) => c,
    };
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(JOURNALCTL_TIMEOUT) {
        Ok(Ok(o)) if o.status.success() => Ok(o.stdout),
        Ok(Ok(o)) => {
            let err = String::from_utf8_lossy(&o.stderr);
            Err(format!("journalctl failed ({}): {}", o.status, crate::term::strip_controls(err.trim())))
        }
        Ok(Err(e)) => Err(format!("cannot read journalctl's output: {e}")),
        Err(_) => {
            // SAFETY: kill(2) on the pid of the child we started; its waiter has sent nothing, so it is
            // still running or was reaped only an instant ago (too soon for the pid to be reused).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            Err(format!("journalctl did not answer within {} s", JOURNALCTL_TIMEOUT.as_secs()))
        }
    }
}

/// The log's hashes against the anchors: the first contradiction, if any.
pub(crate) fn compare(hashes: &[String], anchors: &[(u64, String)]) -> JournalCheck {
    let mut by_seq: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for (seq, hash) in anchors.iter().filter(|(s, _)| *s > 0) {
        by_seq.entry(*seq).or_default().insert(hash);
    }
    let n = hashes.len() as u64;
    let Some(max) = by_seq.keys().next_back().copied() else { return JournalCheck::NoAnchors };
    if n == 0 {
        return JournalCheck::Mismatch(format!(
            "log missing but the journal has entries up to seq {max}: the log and its head were deleted"
        ));
    }
    if max > n {
        return JournalCheck::Mismatch(format!(
            "the log ends at entry {n} but the journal has entries up to seq {max}: entries were removed \
             (or the log was deleted and started again)"
        ));
    }
    for (seq, set) in &by_seq {
        let ours = hashes.get((*seq - 1) as usize).map(String::as_str).unwrap_or("");
        if set.len() > 1 {
            return JournalCheck::Mismatch(format!(
                "the journal has {} different hashes for entry {seq}: the log was rewritten or started again \
                 after that entry was first written",
                set.len()
            ));
        }
        if !set.contains(ours) {
            let theirs = set.iter().next().copied().unwrap_or("");
            return JournalCheck::Mismatch(format!(
                "entry {seq} is not the one anchored in the journal (there sha256 {}…, here {}…): \
                 the log was rewritten",
                theirs.chars().take(16).collect::<String>(),
                ours.chars().take(16).collect::<String>()
            ));
        }
    }
    JournalCheck::Matches { up_to: max, entries: n }
}
