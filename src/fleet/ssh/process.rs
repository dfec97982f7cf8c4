//! One `ssh` run with a deadline, capped output and nothing left behind.
//!
//! A host that hangs must cost its deadline and no more, and a host that
//! answers gigabytes must not fill the controller's memory. Each `ssh` is
//! started through [`vigil_tools::spawn`] (empty environment but what ssh
//! needs, descriptors closed) in a session of its own: it has no controlling
//! terminal, so neither ssh nor a `ProxyJump` child can prompt the
//! administrator for a password, and its process group is killed whole when
//! the deadline passes or the answer grows past its cap.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How much of stderr is kept (its end: ssh's own complaint comes last).
const STDERR_KEEP: usize = 64 << 10;

/// What goes on the child's stdin, in order.
pub(crate) enum Input {
    /// Bytes of this call (the request line).
    Bytes(Vec<u8>),
    /// Bytes shared by every host (the vulnerability feed).
    Shared(Arc<Vec<u8>>),
    /// A file streamed from disk (the binary being pushed), never held in memory whole.
    File(PathBuf),
}

/// A run that ended by itself.
#[derive(Debug)]
pub(crate) struct Ran {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it printed (at most the cap).
    pub stdout: Vec<u8>,
    /// The last [`STDERR_KEEP`] bytes of its diagnostics.
    pub stderr: Vec<u8>,
}

impl Ran {
    /// The exit code, or `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Its diagnostics as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a run has no result.
#[derive(Debug)]
pub(crate) enum RunError {
    /// `ssh` could not be started.
    Start(io::Error),
    /// The deadline passed; the process group was killed.
    Timeout,
    /// stdout grew past the cap; the process group was killed.
    TooBig(usize),
}

enum Event {
    Out(Result<Vec<u8>, ()>),
    Err(Vec<u8>),
}

/// Run `program argv` with `env`, feeding `input` on stdin, by `deadline`,
/// keeping at most `out_cap` bytes of stdout.
pub(crate) fn run(
    program: &Path,
    argv: &[String],
    env: &[(&str, &str)],
    input: Vec<Input>,
    deadline: Instant,
    out_cap: usize,
) -> Result<Ran, RunError> {
    if Instant::now() >= deadline {
        return Err(RunError::Timeout);
    }
    let mut cmd = vigil_tools::spawn::std_command(program, argv, env);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setsid is an async-signal-safe system call; nothing is allocated.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(RunError::Start)?;
    let (tx, rx) = mpsc::channel();
    if let Some(stdin) = child.stdin.take() {
        std::thread::spawn(move || feed(stdin, input));
    }
    if let Some(mut out) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let r = (&mut out).take(out_cap as u64 + 1).read_to_end(&mut buf);
            let _ = tx.send(Event::Out(match r {
                Ok(_) if buf.len() > out_cap => Err(()),
                _ => Ok(buf),
            }));
        });
    }
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = tx.send(Event::Err(read_tail(err, STDERR_KEEP)));
        });
    } else {
        drop(tx);
    }
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill(&mut child);
            return Err(RunError::Timeout);
        }
        match rx.recv_timeout(left) {
            Ok(Event::Out(Ok(b))) => stdout = Some(b),
            Ok(Event::Out(Err(()))) => {
                kill(&mut child);
                return Err(RunError::TooBig(out_cap));
            }
            Ok(Event::Err(b)) => stderr = Some(b),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Both pipes are closed: ssh is exiting.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(Ran { status, stdout: stdout.unwrap_or_default(), stderr: stderr.unwrap_or_default() });
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                kill(&mut child);
                return Err(RunError::Timeout);
            }
            Err(e) => {
                kill(&mut child);
                return Err(RunError::Start(e));
            }
        }
    }
}

/// Write every input, stopping quietly when the other side stops reading
/// (the remote refused early: its stderr says why).
fn feed(mut stdin: std::process::ChildStdin, input: Vec<Input>) {
    for part in input {
        let r = match part {
            Input::Bytes(b) => stdin.write_all(&b),
            Input::Shared(b) => stdin.write_all(&b),
            Input::File(p) => open_own(&p).and_then(|mut f| io::copy(&mut f, &mut stdin).map(|_| ())),
        };
        if r.is_err() {
            return;
        }
    }
    // Dropping stdin closes it: the remote sees end of input.
}

#[expect(clippy::disallowed_methods, reason = "vigil's own executable, pushed to the host")]
fn open_own(p: &Path) -> io::Result<std::fs::File> {
    std::fs::File::open(p)
}

/// Read to the end, keeping only the last `keep` bytes.
fn read_tail(mut r: impl Read, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * keep {
                    kept.drain(..kept.len() - keep);
                }
            }
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    kept
}

/// Kill the child's whole process group (it leads its own session) and reap it.
fn kill(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill with a negative pid signals the group this child leads; no memory is touched.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> PathBuf {
        vigil_tools::spawn::resolve("sh").unwrap()
    }

    fn args(script: &str) -> Vec<String> {
        vec!["-c".into(), script.into()]
    }

    #[test]
    fn stdin_parts_arrive_in_order_and_output_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("part3");
        std::fs::write(&f, b"three").unwrap();
        let input = vec![Input::Bytes(b"one\n".to_vec()), Input::Shared(Arc::new(b"two\n".to_vec())), Input::File(f)];
        let ran = run(
            &sh(),
            &args("cat; echo oops >&2; exit 7"),
            &[],
            input,
            Instant::now() + Duration::from_secs(10),
            1 << 20,
        )
        .unwrap();
        assert_eq!(ran.stdout, b"one\ntwo\nthree");
        assert_eq!(ran.stderr_text(), "oops\n");
        assert_eq!(ran.code(), Some(7));
    }

    #[test]
    fn a_hanging_command_and_its_children_are_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // A grandchild that would outlive a plain kill of the child, holding stdout open.
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let t = Instant::now();
        let r = run(&sh(), &args(&script), &[], vec![], Instant::now() + Duration::from_millis(700), 1 << 20);
        assert!(matches!(r, Err(RunError::Timeout)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // The grandchild is gone (or a zombie about to be reaped by init).
        std::thread::sleep(Duration::from_millis(100));
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = state.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'));
        assert!(!alive, "sleep {pid} survived: {state}");
    }

    #[test]
    fn output_over_the_cap_is_cut_off() {
        let r = run(&sh(), &args("yes"), &[], vec![], Instant::now() + Duration::from_secs(10), 1 << 20);
        assert!(matches!(r, Err(RunError::TooBig(n)) if n == 1 << 20), "{r:?}");
    }

    #[test]
    fn stderr_keeps_its_end() {
        let tail = read_tail(&b"abcdefghij"[..], 4);
        assert_eq!(tail, b"ghij");
    }

    #[test]
    fn the_child_has_no_controlling_terminal() {
        let ran = run(
            &sh(),
            &args("cut -d' ' -f7 /proc/self/stat"),
            &[],
            vec![],
            Instant::now() + Duration::from_secs(10),
            1 << 20,
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), "0");
    }
}
