//! A fleet without ssh: [`LocalExchange`] runs this build's `vigil __remote` as a
//! child for each host (request on stdin, answer on stdout, killed at the deadline),
//! so the runner and the remote side are tested together on one machine.
//!
//! Per-target behaviour, by the target's address: `hang` runs a command that sleeps
//! and never answers; `dies` exits at once without an answer; any other address runs
//! `vigil __remote` with its own state directory (`STATE/<host name>`).
//! Every exchange is recorded ([`Seen`]): the request's key, the child's
//! `/proc/PID/cmdline` and `/proc/PID/environ` read while it runs, and what it printed.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil::fleet::Target;
use vigil::fleet::outcome::{Failure, Reason};
use vigil::fleet::proto::{Exchange, Request, Response};

/// What one exchange showed.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The target's name.
    pub host: String,
    /// The digest key the request carried.
    pub key: Option<String>,
    /// The child's argv, NULs as spaces.
    pub cmdline: String,
    /// The child's environment, NULs as newlines.
    pub environ: String,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// Runs `vigil __remote` locally in place of ssh.
pub struct LocalExchange {
    /// Each host's state directory is `state/<name>`.
    pub state: PathBuf,
    /// The controller's feed, sent after each review request that announces it.
    pub feed: Vec<u8>,
    /// Every exchange, in the order they finished.
    pub seen: Mutex<Vec<Seen>>,
}

/// The answer cap, as a transport would have one.
const MAX_ANSWER: u64 = 64 << 20;

impl LocalExchange {
    /// Hosts keep their state under `state`; `feed` follows each review request.
    pub fn new(state: &Path, feed: Vec<u8>) -> LocalExchange {
        LocalExchange { state: state.to_path_buf(), feed, seen: Mutex::new(Vec::new()) }
    }

    /// The command for `target`, by its address.
    fn command(&self, target: &Target) -> Command {
        let mut c = match target.address.as_str() {
            "hang" => {
                let mut c = Command::new("sh");
                c.args(["-c", "sleep 600"]);
                c
            }
            "dies" => {
                let mut c = Command::new("sh");
                c.args(["-c", "echo 'vigil: killed' >&2; exit 137"]);
                c
            }
            _ => {
                let state = self.state.join(&target.name);
                std::fs::create_dir_all(&state).unwrap();
                let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
                c.arg("--state-dir").arg(state).args(["--no-color", "__remote"]);
                c
            }
        };
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.state)
            .env("VIGIL_NOW", "2026-11-27T00:00:00Z")
            .env("VIGIL_KEYRING", "kernel")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        c
    }
}

/// What the remote reads on stdin (proto.rs): the request as one line of JSON, then the
/// feed a review announces.
fn write_request(out: &mut impl std::io::Write, request: &Request, feed: &[u8]) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, request)?;
    out.write_all(b"\n")?;
    if let Request::Review { feed_bytes, .. } = request {
        assert_eq!(*feed_bytes, feed.len() as u64, "the request announces the feed the exchange holds");
        out.write_all(feed)?;
    }
    out.flush()
}

/// A word of the command line `target` runs.
fn target_program(target: &Target) -> &'static str {
    match target.address.as_str() {
        "hang" => "sleep 600",
        "dies" => "exit 137",
        _ => "__remote",
    }
}

fn read_capped(mut r: impl Read + Send + 'static, cap: u64) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut r).take(cap).read_to_end(&mut buf);
        buf
    })
}

impl Exchange for LocalExchange {
    fn exchange(&self, target: &Target, request: &Request, deadline: Instant) -> Result<Response, Failure> {
        let fail = |reason, detail: String| Failure { reason, detail };
        let mut child =
            self.command(target).spawn().map_err(|e| fail(Reason::Unreachable, format!("cannot start: {e}")))?;
        let pid = child.id();
        let proc_text = |f: &str, sep: &str| {
            std::fs::read(format!("/proc/{pid}/{f}"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', sep))
                .unwrap_or_default()
        };
        // Until the child has exec'd, /proc shows this test's own argv: wait for the program's.
        let started = Instant::now();
        while !proc_text("cmdline", " ").contains(target_program(target)) && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut seen = Seen {
            host: target.name.clone(),
            key: match request {
                Request::Review { key, .. } => key.clone(),
                _ => None,
            },
            cmdline: proc_text("cmdline", " "),
            environ: proc_text("environ", "\n"),
            ..Seen::default()
        };
        let mut stdin = child.stdin.take().unwrap();
        let (request, feed) = (request.clone(), self.feed.clone());
        // A child that does not read (hangs, dies) must not block the writer past the deadline.
        std::thread::spawn(move || {
            let _ = write_request(&mut stdin, &request, &feed);
        });
        let out = read_capped(child.stdout.take().unwrap(), MAX_ANSWER + 1);
        let err = read_capped(child.stderr.take().unwrap(), 1 << 20);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() >= deadline {
                // The whole process group: the remote vigil and its worker.
                // SAFETY: kill has no memory effects; the group is the child's own.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out.join().unwrap_or_default();
        seen.stdout = String::from_utf8_lossy(&stdout).into_owned();
        seen.stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
        let stderr_tail = seen.stderr.lines().last().unwrap_or("").to_string();
        self.seen.lock().unwrap().push(seen);
        let Some(status) = status else {
            return Err(fail(Reason::Timeout, "no answer by the deadline".into()));
        };
        if stdout.len() as u64 > MAX_ANSWER {
            return Err(fail(Reason::Error, format!("answer over {} MiB", MAX_ANSWER >> 20)));
        }
        match serde_json::from_slice::<Response>(&stdout) {
            Ok(r) => Ok(r),
            Err(_) => Err(fail(Reason::Error, format!("the remote vigil exited with {status}: {stderr_tail}"))),
        }
    }
}
