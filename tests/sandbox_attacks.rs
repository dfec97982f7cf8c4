//! Issue 15, enforcement proved from outside, for every entry point: a program a
//! read-only check runs is replaced, inside a private mount namespace, by a
//! stand-in placed first in the search path (`/usr/local/bin/restic`, bind-mounted
//! from the test's directory; `check_backups` runs `restic check` on a configured
//! repository). The stand-in tries, for real, to create a file in a
//! world-writable directory, truncate a world-writable file (by path and with
//! `O_TRUNC`), make a FIFO, connect to a loopback listener, kill a root process
//! and push a character into vigil's terminal with `TIOCSTI`, then reports what
//! happened on stderr (which the check shows as evidence). Unconfined
//! (`--no-sandbox`) every attempt succeeds and the damage is visible; through
//! `vigil review`, `vigil tools run`, `vigil ask` (the fake Messages API asks for
//! the tool) and `vigil mcp`, at every Landlock ABI from 1 to the kernel's
//! (`VIGIL_LANDLOCK_MAX_ABI`), every attempt fails, nothing is damaged, and the
//! entry point completes.
//!
//! Needs root, python3, util-linux `unshare` and a kernel with Landlock; without
//! them the tests are listed as ignored with the reason, unless `VIGIL_SYSTEM_TESTS=1` (CI), where
//! they fail.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]

mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{FakeApi, Reply, text_sse, tool_use_sse};

/// The stand-in for `restic`: every attack, one line of outcomes on stderr, and an exit
/// status of 64 plus a bit for each attack that succeeded.
const STAND_IN: &str = r#"#!/usr/bin/python3 -S
import errno, fcntl, os, socket, sys, termios
w, f, port, pid = "@WORLD@", "@FILE@", @PORT@, @PID@
out = []
def attempt(name, act):
    try:
        act()
        out.append(name + "=ok")
    except OSError as e:
        out.append(name + "=" + errno.errorcode.get(e.errno, str(e.errno)))
def write_trunc():
    with open(f, "w") as h:
        h.write("owned")
def sti():
    fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
    finally:
        os.close(fd)
attempt("create", lambda: open(w + "/planted", "x").close())
attempt("truncate", lambda: os.truncate(f, 0))
attempt("open_trunc", write_trunc)
attempt("mkfifo", lambda: os.mkfifo(w + "/fifo"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", port), timeout=3).close())
attempt("kill", lambda: os.kill(pid, 15))
attempt("tiocsti", sti)
sys.stderr.write("vigil-standin: " + " ".join(out) + "\n")
# The exit status says the same to whoever only sees it (the model's compact view): 64 plus
# one bit per attempt that succeeded, in ATTEMPTS' order.
sys.exit(64 + sum(1 << i for i, o in enumerate(out) if o.endswith("=ok")))
"#;

/// The entry points proved confined.
const ENTRY_POINTS: [&str; 4] = ["review", "tools run", "ask", "mcp"];

const ATTEMPTS: [&str; 7] = ["create", "truncate", "open_trunc", "mkfifo", "connect", "kill", "tiocsti"];

/// Everything attacked, fresh for each run.
struct Stage {
    dir: tempfile::TempDir,
    world: PathBuf,
    file: PathBuf,
    config: PathBuf,
    listener: TcpListener,
    victim: Child,
    pty_master: OwnedFd,
    pty_slave: OwnedFd,
    pty_path: CString,
}

impl Stage {
    fn new() -> Stage {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let world = d.join("world");
        std::fs::create_dir(&world).unwrap();
        std::fs::set_permissions(&world, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let file = d.join("shared.txt");
        std::fs::write(&file, "precious\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        // A restic repository as vigil recognises one, with its password file.
        for sub in ["data", "index", "keys", "snapshots"] {
            std::fs::create_dir_all(d.join("repo").join(sub)).unwrap();
        }
        std::fs::write(d.join("repo/config"), "not really encrypted").unwrap();
        std::fs::write(d.join("pw"), "hunter2\n").unwrap();
        let config = d.join("vigil.toml");
        std::fs::write(
            &config,
            format!("[[backups]]\nname = \"offsite\"\npath = \"{0}/repo\"\npassword_file = \"{0}/pw\"\n", d.display()),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let victim = Command::new("sleep").arg("300").spawn().unwrap();
        let script = STAND_IN
            .replace("@WORLD@", &world.display().to_string())
            .replace("@FILE@", &file.display().to_string())
            .replace("@PORT@", &listener.local_addr().unwrap().port().to_string())
            .replace("@PID@", &victim.id().to_string());
        std::fs::create_dir(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/restic"), script).unwrap();
        std::fs::set_permissions(d.join("bin/restic"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (mut m, mut s) = (-1, -1);
        let mut name = [0 as libc::c_char; 64];
        // SAFETY: openpty writes two descriptors and the slave's name into our buffers.
        let r = unsafe { libc::openpty(&mut m, &mut s, name.as_mut_ptr(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here only; the name is NUL-terminated.
        let (pty_master, pty_slave, pty_path) = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            libc::tcgetattr(s, &mut t);
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(s, libc::TCSANOW, &t);
            (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s), std::ffi::CStr::from_ptr(name.as_ptr()).to_owned())
        };
        Stage { dir, world, file, config, listener, victim, pty_master, pty_slave, pty_path }
    }

    /// `vigil GLOBAL… ARGS…` on the live root, in a private mount namespace where the
    /// stand-in is `/usr/local/bin/restic`, in its own session with the pty as its terminal.
    fn vigil(&self, state: &Path, run: &Run, args: &[&str], api: Option<&FakeApi>) -> Command {
        let mut c = Command::new("/usr/bin/unshare");
        c.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg("mount --bind \"$1\" /usr/local/bin && shift && exec \"$@\"")
            .arg("sh")
            .arg(self.dir.path().join("bin"))
            .arg(env!("CARGO_BIN_EXE_vigil"))
            .arg("--state-dir")
            .arg(state)
            .arg("--config")
            .arg(&self.config)
            .args(&run.global)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", state)
            .env("NO_COLOR", "1");
        if let Some(abi) = run.max_abi {
            c.env(vigil_tools::sandbox::MAX_ABI_ENV, abi.to_string());
        }
        if let Some(api) = api {
            c.env("ANTHROPIC_API_KEY", support::KEY).env("ANTHROPIC_BASE_URL", &api.url);
        }
        let tty = self.pty_path.clone();
        // SAFETY: setsid, open, ioctl and close are async-signal-safe; the path was built before fork.
        unsafe {
            c.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let fd = libc::open(tty.as_ptr(), libc::O_RDWR);
                if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        c
    }

    /// What an outsider sees of the damage.
    fn damage(&mut self) -> Vec<&'static str> {
        let mut d = Vec::new();
        if std::fs::read_to_string(&self.file).unwrap() != "precious\n" {
            d.push("the shared file was changed");
        }
        if self.world.join("planted").exists() || self.world.join("fifo").exists() {
            d.push("a file was planted");
        }
        if vigil_testkit::exited_soon(&mut self.victim) {
            d.push("the root process was killed");
        }
        if self.listener.accept().is_ok() {
            d.push("the listener was reached");
        }
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        unsafe { libc::ioctl(self.pty_slave.as_raw_fd(), libc::FIONREAD, &mut n) };
        if n > 0 {
            d.push("a character was typed into the terminal");
        }
        d
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = self.victim.kill();
        let _ = self.victim.wait();
        let _ = &self.pty_master;
    }
}

/// Run a command to the end (bounded); its stdout and stderr.
fn output(mut c: Command, stdin: &str) -> (i32, String, String) {
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
        // SAFETY: killing the child we started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("vigil did not finish within 120 s");
    });
    let out = out.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The stand-in's report found in `text` (JSON-escaped or not): attempt → outcome; from its
/// stderr line when shown, else from its exit status as the check reports it.
fn report(text: &str) -> Option<BTreeMap<String, String>> {
    let Some(at) = text.find("vigil-standin: ") else {
        let code: u32 = regex::Regex::new(r"failed \(exit (\d+)\)").unwrap().captures(text)?[1].parse().ok()?;
        let mask = code.checked_sub(64).filter(|m| *m < 128)?;
        return Some(
            ATTEMPTS
                .iter()
                .enumerate()
                .map(|(i, a)| (a.to_string(), if mask & (1 << i) != 0 { "ok" } else { "failed" }.to_string()))
                .collect(),
        );
    };
    let line: String = text[at + 15..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '=' || *c == ' ')
        .collect();
    Some(line.split_whitespace().filter_map(|p| p.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
}

/// How vigil is run: global flags, and the Landlock ABI cap.
#[derive(Default)]
struct Run {
    global: Vec<String>,
    max_abi: Option<u8>,
}

/// The entry points, each run once as `run` says; what each printed (or sent the model).
fn entry_point(stage: &Stage, which: &str, run: &Run) -> String {
    let state = tempfile::tempdir().unwrap();
    match which {
        "review" => {
            let (code, out, err) =
                output(stage.vigil(state.path(), run, &["review", "--offline", "--format", "json"], None), "");
            // A review with findings exits 1; it completed either way.
            assert!(code == 0 || code == 1, "review failed ({code}): {err}");
            let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
            // The review says it was confined, at the ABI asked for.
            let sb = &v["sandbox"];
            if run.global.iter().any(|g| g == "--no-sandbox") {
                assert_eq!(sb["enforced"], false, "{sb}");
            } else {
                assert_eq!(sb["enforced"], true, "{sb}");
                if let Some(abi) = run.max_abi {
                    assert_eq!(sb["layers"]["landlock"]["held"]["abi"], u64::from(abi), "{sb}");
                }
            }
            out
        }
        "tools run" => {
            let (code, out, err) = output(stage.vigil(state.path(), run, &["tools", "run", "check_backups"], None), "");
            assert!(code == 0 || code == 1, "tools run failed ({code}): {err}");
            out
        }
        "ask" => {
            let api = FakeApi::start(vec![
                Reply::Sse(tool_use_sse("toolu_sb1", "check_backups", &json!({}))),
                Reply::Sse(text_sse("Checked.")),
            ]);
            let (code, out, err) = output(stage.vigil(state.path(), run, &["ask", "check my backups"], Some(&api)), "");
            assert_eq!(code, 0, "ask failed: {out}\n{err}");
            api.received().iter().map(|r| r.raw.clone()).collect::<Vec<_>>().join("\n")
        }
        "mcp" => {
            let mut c = stage.vigil(state.path(), run, &["mcp"], None);
            c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
            let call =
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"check_backups","arguments":{}}}"#;
            write!(stdin, "{init}\n{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}}\n{call}\n")
                .unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("\"id\":2") {
                        let _ = tx.send(line);
                        return;
                    }
                }
            });
            let reply = rx.recv_timeout(Duration::from_secs(120));
            drop(stdin);
            let status = child.wait().unwrap();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            let reply = reply.unwrap_or_else(|_| panic!("no reply to tools/call: {err}"));
            assert!(status.success(), "vigil mcp ended badly: {status}: {err}");
            reply
        }
        other => panic!("no entry point {other}"),
    }
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "/usr/bin/python3",
        vigil_missing = "/usr/bin/unshare",
        vigil_missing = "landlock"
    ),
    ignore = "needs root, /usr/bin/python3, /usr/bin/unshare, landlock (a kernel with Landlock)"
)]
fn unconfined_the_stand_ins_attacks_succeed() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "/usr/bin/unshare", "landlock"]);
    let mut s = Stage::new();
    let out = entry_point(&s, "tools run", &Run { global: vec!["--no-sandbox".into()], max_abi: None });
    let r = report(&out).unwrap_or_else(|| panic!("the stand-in did not run: {out}"));
    for a in ATTEMPTS {
        assert_eq!(r.get(a).map(String::as_str), Some("ok"), "{a}: {r:?}");
    }
    let damage = s.damage();
    for d in
        ["the shared file was changed", "a file was planted", "the root process was killed", "the listener was reached"]
    {
        assert!(damage.contains(&d), "{d}: {damage:?}");
    }
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "/usr/bin/python3",
        vigil_missing = "/usr/bin/unshare",
        vigil_missing = "landlock"
    ),
    ignore = "needs root, /usr/bin/python3, /usr/bin/unshare, landlock (a kernel with Landlock)"
)]
fn every_entry_point_confines_the_stand_in_at_every_landlock_abi() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "/usr/bin/unshare", "landlock"]);
    let kernel = vigil_tools::sandbox::landlock::kernel_abi().unwrap();
    for abi in 1..=kernel {
        for which in ENTRY_POINTS {
            let mut s = Stage::new();
            let out = entry_point(&s, which, &Run { global: Vec::new(), max_abi: Some(abi) });
            let r = report(&out).unwrap_or_else(|| {
                let tail: String = out.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
                panic!("{which}, ABI {abi}: the stand-in did not run: …{tail}")
            });
            println!("{which}, Landlock ABI {abi}: {r:?}");
            // Every attempt reported, and each with an error.
            let not_stopped: Vec<&str> = ATTEMPTS
                .iter()
                .copied()
                .filter(|a| !matches!(r.get(*a).map(String::as_str), Some(e) if e != "ok"))
                .collect();
            assert!(not_stopped.is_empty(), "{which}, ABI {abi}: not stopped: {not_stopped:?} ({r:?})");
            let damage = s.damage();
            assert!(damage.is_empty(), "{which}, ABI {abi}: {damage:?}");
        }
    }
}
