//! Test support shared by the workspace's crates, so no test copies it.
//!
//! **System tests never pass by skipping.** A test that needs something of the
//! machine (root, a program, an account, a Python module) declares it once, in
//! the attribute that ignores it when the component is missing:
//!
//! ```text
//! #[test]
//! #[cfg_attr(vigil_missing = "podman", ignore = "needs podman (.ci/packages/docker.txt)")]
//! fn containers_are_judged() {
//!     vigil_testkit::require(&["podman"]);
//!     …
//! }
//! ```
//!
//! Each crate's build script calls [`components::emit_cfgs`]: it finds every
//! `vigil_missing = "…"` the crate's sources name, probes each component on the
//! machine building the tests, and sets `vigil_missing = "<name>"` for the missing
//! ones, so cargo lists the test as `ignored, needs podman (…)` (and
//! `scripts/test` counts them by reason). With `VIGIL_SYSTEM_TESTS=1` (set by
//! `scripts/test` as root, and in CI) nothing is ignored: [`require`] fails the
//! test, naming what is missing. A test never returns early as if it had passed.
//!
//! Component names: `@GROUP` (several that come together, [`components::GROUPS`]); `root`;
//! `landlock` (the kernel has Landlock); `user:NAME` (an account exists); `py:MODULE`
//! (Debian's /usr/bin/python3 can import it); an absolute path (exists); anything else is a
//! program looked up in the system's binary directories.
#![allow(clippy::disallowed_methods, reason = "test support reads the machine's own files, not an audited root")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support: a failed unwrap is a failed test")]

pub mod components;
pub mod mariadb;
pub mod podman;
pub mod racer;
pub mod sshfleet;

pub use components::{probe, require};

use std::process::Command;
use std::time::{Duration, Instant};

/// Run `cmd` with `sh -c`: (exit code, stdout + stderr).
pub fn sh(cmd: &str) -> (i32, String) {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), s)
}

/// Run `cmd` with `sh -c`; it must succeed. Returns its output.
pub fn ok(cmd: &str) -> String {
    let (rc, out) = sh(cmd);
    assert_eq!(rc, 0, "`{cmd}` failed: {out}");
    out
}

/// A TCP port on 127.0.0.1 free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Wait up to 60 s for `f` to hold; fails naming `what`.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A private copy of the checked-in fixture hosts (`fixtures/hosts`), made once
/// per test process, with the dates and modes git does not keep set by
/// `set-mtimes.sh`: tests never change the checked-in files. Copies left by
/// earlier test processes that have ended are removed.
pub fn fixture_hosts() -> &'static std::path::Path {
    static COPY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hosts");
        let base = std::env::temp_dir();
        // SAFETY: getuid has no preconditions.
        let prefix = format!("vigil-fixtures-{}-", unsafe { libc::getuid() });
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(&prefix) {
                if !std::path::Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dst = base.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dst);
        let st = Command::new("cp").arg("-a").arg(&src).arg(&dst).status().unwrap();
        assert!(st.success(), "copying {} failed", src.display());
        let st = Command::new("sh").arg(dst.join("set-mtimes.sh")).status().unwrap();
        assert!(st.success(), "set-mtimes.sh failed");
        dst
    })
}

/// The real Debian 12 hosting root `scripts/debroot` builds once (mmdebstrap, from
/// Debian's packages) and caches. Tests that plant mistakes copy it first. A test
/// calling this declares `root` and `mmdebstrap` (and needs Debian's mirror the first time).
pub fn debroot() -> std::path::PathBuf {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/debroot");
    let o = Command::new(&script).output().unwrap();
    assert!(o.status.success(), "scripts/debroot failed: {}", String::from_utf8_lossy(&o.stderr));
    std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// Whether `child` has exited, allowing it up to 300 ms: a signal is delivered at once,
/// but the exit can take a moment to show.
pub fn exited_soon(child: &mut std::process::Child) -> bool {
    (0..30).any(|_| {
        let gone = child.try_wait().unwrap().is_some();
        if !gone {
            std::thread::sleep(Duration::from_millis(10));
        }
        gone
    })
}
