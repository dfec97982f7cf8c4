//! The confinement primitives of `vigil_tools::sandbox`, proved by attack: a
//! child is confined (in its `pre_exec` hook, single-threaded after `fork`) and
//! then runs a Python program that tries, for real, what a compromised
//! collector would: create a file in a world-writable directory, truncate a
//! world-writable file (by path and with `O_TRUNC`), make a FIFO, connect to a
//! loopback listener, signal a root process and push a character into its
//! terminal with `TIOCSTI`. The same program run unconfined succeeds at each
//! (the attacks are real); confined, each fails at every Landlock ABI from 1 to
//! the kernel's, and the test checks the damage from outside (file content,
//! the victim process alive, no connection accepted). Layer by layer tests show
//! which layer stops what on its own.
//!
//! Needs root, python3 and a kernel with Landlock; without them the tests are listed as
//! ignored with the reason, unless `VIGIL_SYSTEM_TESTS=1` (CI), where they fail.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use vigil_tools::sandbox::{self, Policy, Prepared, creds, landlock, seccomp};

const ATTACKS: &str = r#"
import errno, fcntl, os, socket, sys, termios
w, f, port, pid, scratch = sys.argv[1:6]
def attempt(name, act):
    try:
        act()
        print(name + ":ok")
    except OSError as e:
        print(name + ":" + errno.errorcode.get(e.errno, str(e.errno)))
def write_trunc():
    with open(f, "w") as h:
        h.write("owned")
def scratch_file():
    with open(scratch + "/note", "w") as h:
        h.write("fine")
attempt("create", lambda: open(w + "/planted", "x").close())
attempt("truncate", lambda: os.truncate(f, 0))
attempt("open_trunc", write_trunc)
attempt("mkfifo", lambda: os.mkfifo(w + "/fifo"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", int(port)), timeout=3).close())
attempt("kill", lambda: os.kill(int(pid), 15))
attempt("tiocsti", lambda: fcntl.ioctl(0, termios.TIOCSTI, b"x"))
attempt("scratch", scratch_file)
"#;

/// The things attacked, set up fresh for each run.
struct Stage {
    _dir: tempfile::TempDir,
    script: PathBuf,
    world: PathBuf,
    file: PathBuf,
    scratch: PathBuf,
    listener: TcpListener,
    victim: Child,
    pty_master: OwnedFd,
    pty_slave: OwnedFd,
}

impl Stage {
    fn new() -> Stage {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = dir.path().join("attacks.py");
        std::fs::write(&script, ATTACKS).unwrap();
        let world = dir.path().join("world");
        std::fs::create_dir(&world).unwrap();
        std::fs::set_permissions(&world, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let file = dir.path().join("shared.txt");
        std::fs::write(&file, "precious\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let who = creds::Target::lookup().unwrap();
        std::os::unix::fs::chown(&scratch, Some(who.uid), Some(who.gid)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let victim = Command::new("sleep").arg("300").spawn().unwrap();
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two descriptors into our integers.
        let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here only.
        let (pty_master, pty_slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        Stage { _dir: dir, script, world, file, scratch, listener, victim, pty_master, pty_slave }
    }

    /// Run the attacks in a child that `confine` confines after `fork`, with the
    /// pty as its controlling terminal. Their outcomes by name.
    fn attack<F>(&mut self, confine: F) -> BTreeMap<String, String>
    where
        F: Fn() -> std::io::Result<()> + Send + Sync + 'static,
    {
        let mut c = Command::new("/usr/bin/python3");
        c.arg("-S")
            .arg(&self.script)
            .arg(&self.world)
            .arg(&self.file)
            .arg(self.listener.local_addr().unwrap().port().to_string())
            .arg(self.victim.id().to_string())
            .arg(&self.scratch)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::from(self.pty_slave.try_clone().unwrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setsid and ioctl are plain system calls; `confine` is the code under test.
        unsafe {
            c.pre_exec(move || {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                confine()
            });
        }
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// What an outsider sees of the damage: (file intact, nothing planted, victim alive, no connection).
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
        let mut buf = [0u8; 64];
        // SAFETY: a non-blocking read into our buffer from our own pty master.
        unsafe { libc::fcntl(self.pty_master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut master = std::fs::File::from(self.pty_master.try_clone().unwrap());
        if matches!(master.read(&mut buf), Ok(n) if n > 0 && buf[..n].contains(&b'x')) {
            d.push("a character was typed into the terminal");
        }
        d
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = self.victim.kill();
        let _ = self.victim.wait();
    }
}

fn failed(out: &BTreeMap<String, String>, names: &[&str]) -> Vec<String> {
    names.iter().filter(|n| out.get(**n).map(String::as_str) == Some("ok")).map(|n| format!("{n} succeeded")).collect()
}

const ALL: [&str; 7] = ["create", "truncate", "open_trunc", "mkfifo", "connect", "kill", "tiocsti"];

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "/usr/bin/python3", vigil_missing = "landlock"),
    ignore = "needs root, /usr/bin/python3, landlock (a kernel with Landlock)"
)]
fn the_attacks_are_real_without_the_sandbox() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "landlock"]);
    let mut s = Stage::new();
    let out = s.attack(|| Ok(()));
    for name in ALL.iter().chain(&["scratch"]) {
        assert_eq!(out.get(*name).map(String::as_str), Some("ok"), "{name}: {out:?}");
    }
    let damage = s.damage();
    assert!(damage.contains(&"the shared file was changed"), "{damage:?}");
    assert!(damage.contains(&"a file was planted"), "{damage:?}");
    assert!(damage.contains(&"the root process was killed"), "{damage:?}");
    assert!(damage.contains(&"the listener was reached"), "{damage:?}");
    assert!(damage.contains(&"a character was typed into the terminal"), "{damage:?}");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "/usr/bin/python3", vigil_missing = "landlock"),
    ignore = "needs root, /usr/bin/python3, landlock (a kernel with Landlock)"
)]
fn every_attack_fails_in_the_worker_at_each_landlock_abi() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "landlock"]);
    let kernel = landlock::kernel_abi().unwrap();
    for abi in 1..=kernel {
        let mut s = Stage::new();
        let policy =
            Policy { scratch: Some(s.scratch.clone()), max_abi: Some(abi), no_network: true, ..Policy::default() };
        let p = Prepared::new(&policy).unwrap();
        let out = s.attack(move || {
            let applied = p.apply();
            let status = p.status(&applied);
            if !status.enforced() || !status.network.held() {
                return Err(std::io::Error::other(status.to_string()));
            }
            Ok(())
        });
        println!("Landlock ABI {abi}: {out:?}");
        let succeeded = failed(&out, &ALL);
        assert!(succeeded.is_empty(), "Landlock ABI {abi}: {succeeded:?} ({out:?})");
        assert_eq!(out.get("scratch").map(String::as_str), Some("ok"), "ABI {abi}: the scratch directory: {out:?}");
        let damage = s.damage();
        assert!(damage.is_empty(), "Landlock ABI {abi}: {damage:?}");
    }
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "/usr/bin/python3", vigil_missing = "landlock"),
    ignore = "needs root, /usr/bin/python3, landlock (a kernel with Landlock)"
)]
fn landlock_alone_stops_root_from_writing_connecting_and_signalling() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "landlock"]);
    let kernel = landlock::kernel_abi().unwrap();
    let mut s = Stage::new();
    let domain = landlock::Domain::worker(Some(&s.scratch), None).unwrap();
    // Still root, with every capability: only Landlock stands in the way.
    let out = s.attack(move || domain.enter().map_err(std::io::Error::from_raw_os_error));
    for name in ["create", "open_trunc", "mkfifo"] {
        assert_eq!(out[name], "EACCES", "{name}: {out:?}");
    }
    if kernel >= 3 {
        assert_eq!(out["truncate"], "EACCES", "{out:?}");
    }
    if kernel >= 4 {
        assert_eq!(out["connect"], "EACCES", "{out:?}");
    }
    if kernel >= 6 {
        assert_eq!(out["kill"], "EPERM", "{out:?}");
    }
    // Not Landlock's to stop: TIOCSTI on its own terminal.
    assert_eq!(out["tiocsti"], "ok", "{out:?}");
    assert_eq!(out["scratch"], "ok", "{out:?}");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "/usr/bin/python3", vigil_missing = "landlock"),
    ignore = "needs root, /usr/bin/python3, landlock (a kernel with Landlock)"
)]
fn seccomp_alone_stops_terminal_injection_and_truncate_by_path() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "landlock"]);
    let mut s = Stage::new();
    let filter = seccomp::Filter::worker();
    let out = s.attack(move || filter.install().map_err(std::io::Error::from_raw_os_error));
    // The ABI 1-2 gap Landlock leaves (truncate(2) by path) and the terminal.
    assert_eq!(out["tiocsti"], "EPERM", "{out:?}");
    assert_eq!(out["truncate"], "EPERM", "{out:?}");
    // Everything else is other layers' work: root still creates files.
    assert_eq!(out["create"], "ok", "{out:?}");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "/usr/bin/python3", vigil_missing = "landlock"),
    ignore = "needs root, /usr/bin/python3, landlock (a kernel with Landlock)"
)]
fn the_user_alone_cannot_signal_root_or_write_its_files() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "landlock"]);
    let mut s = Stage::new();
    // A root-owned file that is not world-writable: DAC alone protects it.
    let owned = s.file.with_file_name("root-only.txt");
    std::fs::write(&owned, "root\n").unwrap();
    let who = creds::Target::lookup().unwrap();
    let out = s.attack(move || who.switch(false).map_err(std::io::Error::from_raw_os_error));
    assert_eq!(out["kill"], "EPERM", "{out:?}");
    assert_eq!(std::fs::read_to_string(&owned).unwrap(), "root\n");
    // World-writable things are the other layers' job: the user alone could write them.
    assert_eq!(out["open_trunc"], "ok", "{out:?}");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "/usr/bin/python3", vigil_missing = "landlock"),
    ignore = "needs root, /usr/bin/python3, landlock (a kernel with Landlock)"
)]
fn the_worker_reads_root_only_files_and_reports_its_status_in_one_line() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "landlock"]);
    let scratch = tempfile::tempdir().unwrap();
    let policy = Policy { scratch: Some(scratch.path().to_path_buf()), no_network: true, ..Policy::default() };
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    let mut c = Command::new("/bin/cat");
    c.arg("/etc/shadow").stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: the hook confines this forked child; a test may allocate there.
    unsafe {
        c.pre_exec(move || {
            let status = sandbox::confine(&policy).map_err(std::io::Error::other)?;
            // In the worker itself: root-only files are readable, the capability is the only one.
            let shadow = std::fs::File::open("/etc/shadow").is_ok();
            let caps = creds::effective_caps();
            writeln!(writer, "{status}\nshadow={shadow}\ncaps={caps:?}\nuid={}", libc::getuid())?;
            Ok(())
        });
    }
    let st = c.status().unwrap();
    drop(c);
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    let kernel = landlock::kernel_abi().unwrap();
    assert!(text.starts_with(&format!("enforced (Landlock ABI {kernel}, seccomp, no network)\n")), "{text}");
    assert!(text.contains("shadow=true\n"), "{text}");
    assert!(text.contains(&format!("caps=Some({})\n", 1u64 << creds::CAP_DAC_READ_SEARCH)), "{text}");
    assert!(!text.contains("uid=0\n"), "{text}");
    // A program the worker runs has no capability left: `cat /etc/shadow` fails.
    assert!(!st.success(), "cat /etc/shadow succeeded in the worker's child");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "/usr/bin/python3", vigil_missing = "landlock"),
    ignore = "needs root, /usr/bin/python3, landlock (a kernel with Landlock)"
)]
fn read_cap_on_exec_lets_the_workers_programs_read_root_only_files() {
    vigil_testkit::require(&["root", "/usr/bin/python3", "landlock"]);
    let policy = Policy { read_cap_on_exec: true, no_network: true, ..Policy::default() };
    let p = Prepared::new(&policy).unwrap();
    let mut c = Command::new("/bin/sh");
    c.args(["-c", "cat /etc/shadow >/dev/null && echo read; echo x > /tmp/vigil-sandbox-test-$$ || echo denied"])
        .stdout(Stdio::piped());
    // SAFETY: the hook only makes system calls.
    unsafe {
        c.pre_exec(move || {
            let a = p.apply();
            if p.status(&a).enforced() { Ok(()) } else { Err(std::io::Error::other("not enforced")) }
        });
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("read\n") && text.contains("denied\n"), "{text}");
}
