//! The one way vigil starts a child process.
//!
//! vigil runs as root with secrets in its environment (the API key, perhaps
//! `MYSQL_PWD`, `RESTIC_PASSWORD`, proxies) and descriptors open on state files,
//! sockets and the administrator's terminal. A child must see none of it: every
//! program is started here with an empty environment plus `PATH`
//! ([`CHILD_PATH`]), `LC_ALL=C` and only the variables its caller names, by an
//! absolute path, with stdin from `/dev/null` unless the caller gives a file,
//! and with every descriptor from 3 up marked close-on-exec, so nothing the
//! caller had open leaks into it. The marking is done in vigil itself, on its
//! own descriptor table (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`), as each
//! command is made: vigil opens every descriptor close-on-exec already (Rust's
//! `std`, tokio and `rustix` calls with `O_CLOEXEC`), so what this catches is
//! one it inherited or a library opened without the flag. No code then runs in
//! the child between `fork` and `exec`, so the child is started with
//! `posix_spawn` (a `vfork`-style clone that shares vigil's memory until `exec`)
//! instead of a `fork` that copies the page tables of a large, threaded process
//! and stalls its other threads meanwhile.
//!
//! Site code (PHP a site owner wrote, run by the staged-update health check)
//! gets more, through [`site_code`]: a new session (no controlling terminal, so
//! no `TIOCSTI` into the administrator's shell), the parent-death signal, and a
//! PID namespace (`unshare --pid --fork --kill-child`) whose first process is
//! killed when vigil stops the check or dies, which kills every process in the
//! namespace, however often they forked or called `setsid()`. Where a PID
//! namespace cannot be created, site code is refused, never run unconfined.
//! Site code also runs in a Landlock domain of its own
//! ([`crate::sandbox::landlock::Domain::site_code`]): it reads and executes
//! everywhere (its user's permissions still apply) but writes only below the
//! directories its caller names (the staging copy, its log and temporary
//! directory), makes no devices, FIFOs or sockets, and, from ABI 6, signals
//! nothing outside its domain. On a kernel without Landlock this layer is
//! skipped; the other layers remain.

use std::ffi::OsStr;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

/// `PATH` of every child: system directories only, never one from the caller.
pub const CHILD_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Where programs are looked up (the local directories first, as a shell would).
const BIN_DIRS: [&str; 6] = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The absolute path of `program`: itself when absolute, else the first match
/// in the system bin directories. `None` when not installed (or relative with a `/`).
pub fn resolve(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    if program.is_empty() || program.contains('/') {
        return None;
    }
    BIN_DIRS.iter().map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

/// A command for the program at the absolute path `program` with a clean start:
/// environment cleared, then `PATH` and `LC_ALL=C` and `env`; stdin `/dev/null`
/// (the caller may give a file); descriptors >= 3 closed on `exec` (marked so in
/// vigil now, see the module's documentation). The caller sets stdout/stderr.
pub fn std_command(program: &Path, args: &[impl AsRef<OsStr>], env: &[(&str, &str)]) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    c.args(args).env_clear().env("PATH", CHILD_PATH).env("LC_ALL", "C");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    cloexec_from_3();
    c
}

/// [`std_command`] for async callers: killed when the handle is dropped.
pub fn command(program: &Path, args: &[impl AsRef<OsStr>], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut c = tokio::process::Command::from(std_command(program, args, env));
    c.kill_on_drop(true);
    c
}

/// How site code is started: `unshare` and `setpriv` in front of the program.
pub const UNSHARE_ARGS: [&str; 3] = ["--pid", "--fork", "--kill-child"];

/// Why site code cannot be confined on this machine (`None`: it can).
/// Probed once: `unshare --pid --fork --kill-child /bin/true` as vigil would run it.
pub fn site_code_unavailable() -> Option<String> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE.get_or_init(|| probe(resolve("unshare"))).clone()
}

/// Run `unshare [--map-current-user] --pid --fork --kill-child /bin/true`: `None` when it works.
fn probe(unshare: Option<PathBuf>) -> Option<String> {
    let Some(unshare) = unshare else {
        return Some("`unshare` (util-linux) is not installed".into());
    };
    let Some(t) = resolve("true") else {
        return Some("`true` (coreutils) is not installed".into());
    };
    let mut args: Vec<String> = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        args.push("--map-current-user".into());
    }
    args.extend(UNSHARE_ARGS.iter().map(|s| s.to_string()));
    args.push(t.display().to_string());
    match std_command(&unshare, &args, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "a PID namespace cannot be created here (`unshare --pid` failed: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("`unshare` cannot be started: {e}")),
    }
}

/// Arguments that put `program args` in a new PID namespace as `uid:gid`:
/// `unshare --pid --fork --kill-child setpriv … --pdeathsig keep -- program args`.
/// When vigil already runs as `uid`, `setpriv` is left out and a user namespace
/// (`--map-current-user`) makes the PID namespace possible without root.
pub fn site_code_argv(uid: u32, gid: u32, init_groups: bool, program: &str, args: &[String]) -> Vec<String> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut a: Vec<String> = Vec::new();
    if !root {
        a.push("--map-current-user".into());
    }
    a.extend(UNSHARE_ARGS.iter().map(|s| s.to_string()));
    if root {
        let setpriv = resolve("setpriv").map_or_else(|| "setpriv".to_string(), |p| p.display().to_string());
        a.extend([
            setpriv,
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            if init_groups { "--init-groups".into() } else { "--clear-groups".into() },
            "--reset-env".into(),
            "--no-new-privs".into(),
            // Changing the uid clears the parent-death signal `--kill-child` set;
            // keep it, or the namespace would outlive `unshare`.
            "--pdeathsig".into(),
            "keep".into(),
            "--".into(),
        ]);
    }
    a.push(program.to_string());
    a.extend(args.iter().cloned());
    a
}

/// A command running site code: `argv` (from [`site_code_argv`]) under `unshare`,
/// started in a new session (no controlling terminal), in a Landlock domain that
/// writes only below `writable` (and `/dev/null`), and killed with SIGKILL
/// when the thread that started it ends. Refused when no PID namespace can be made
/// or a `writable` directory cannot be opened.
///
/// The parent-death signal follows the starting *thread*, not the process: start
/// site code from a runtime worker or the main thread, never from a short-lived
/// thread (a `spawn_blocking` task), or the check is cut short when that thread exits.
pub fn site_code(argv: &[String], writable: &[&Path]) -> Result<tokio::process::Command, String> {
    if let Some(why) = site_code_unavailable() {
        return Err(format!("site code is not run: {why}; vigil only runs a site's PHP inside a PID namespace"));
    }
    let unshare = resolve("unshare").ok_or_else(|| "`unshare` (util-linux) is not installed".to_string())?;
    let domain = crate::sandbox::landlock::Domain::site_code(writable, crate::sandbox::max_abi_from_env())?;
    let mut c = std_command(&unshare, argv, &[]);
    let parent = std::process::id();
    // SAFETY: setsid, prctl, getppid, and Domain::enter (prctl, landlock_restrict_self)
    // are async-signal-safe system calls; nothing is allocated.
    unsafe {
        c.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("vigil exited while starting site code"));
            }
            // No Landlock in this kernel (ENOSYS): the other layers still hold.
            match domain.enter() {
                Ok(()) | Err(libc::ENOSYS) => Ok(()),
                Err(e) => Err(io::Error::from_raw_os_error(e)),
            }
        });
    }
    let mut c = tokio::process::Command::from(c);
    c.kill_on_drop(true);
    Ok(c)
}

/// Mark every descriptor of this process from 3 up close-on-exec (`close_range`, else one
/// by one). vigil never means a child to inherit one: a child's stdio is given by `dup2`,
/// which clears the flag on 0, 1 and 2 only.
fn cloexec_from_3() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
    // SAFETY: close_range only changes descriptor flags of this process.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return;
    }
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        65536
    };
    for fd in 3..max {
        // SAFETY: F_SETFD on a descriptor number; unused numbers fail with EBADF, harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn sh() -> PathBuf {
        resolve("sh").unwrap()
    }

    #[test]
    fn programs_resolve_to_absolute_paths() {
        assert!(resolve("sh").unwrap().is_absolute());
        assert_eq!(resolve("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(resolve("./sh"), None);
        assert_eq!(resolve("vigil-no-such-program"), None);
        assert_eq!(resolve(""), None);
    }

    #[test]
    fn the_environment_is_cleared_to_what_the_caller_names() {
        // A secret in vigil's own environment (HOME and whatever else the test runner
        // has are there too); only PATH, LC_ALL and what the caller names may arrive.
        // SAFETY: no other test in this binary reads this variable.
        unsafe { std::env::set_var("VIGIL_SPAWN_TEST_SECRET", "sk-ant-spawn-test") };
        let out = std_command(&sh(), &["-c", "env"], &[("RESTIC_PASSWORD_FILE", "/root/pw")])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut vars: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap_or("")).collect();
        vars.sort();
        // sh itself adds PWD (and some shells SHLVL/_): everything else came from us.
        vars.retain(|v| !["PWD", "SHLVL", "_"].contains(v));
        assert_eq!(vars, vec!["LC_ALL", "PATH", "RESTIC_PASSWORD_FILE"], "{text}");
        assert!(text.contains(&format!("PATH={CHILD_PATH}\n")), "{text}");
        assert!(!text.contains("sk-ant"), "{text}");
    }

    #[test]
    fn an_open_descriptor_is_not_inherited() {
        // A descriptor opened without close-on-exec, as a library or a careless caller might.
        let f = std::fs::File::open("/etc/hostname").unwrap();
        let fd = f.as_raw_fd();
        // Without the spawner a child sees it (the attack is real). The flag is cleared in
        // the child itself: another test's spawn may mark this process's descriptors meanwhile.
        let mut plain = std::process::Command::new(sh());
        plain.args(["-c", &format!("readlink /proc/self/fd/{fd}")]);
        // SAFETY: fcntl on a descriptor number is async-signal-safe.
        unsafe {
            plain.pre_exec(move || {
                libc::fcntl(fd, libc::F_SETFD, 0);
                Ok(())
            });
        }
        assert_eq!(String::from_utf8_lossy(&plain.output().unwrap().stdout).trim(), "/etc/hostname");
        // SAFETY: clearing FD_CLOEXEC on our own open descriptor.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
        // Through the spawner, the child has nothing from 3 up but what `ls` opens itself...
        let mut cmd = std_command(&sh(), &["-c", &format!("readlink /proc/self/fd/{fd}; ls -l /proc/self/fd/")], &[]);
        let out = cmd.stderr(Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("/etc/hostname"), "{text}");
        // ...because making the command marked vigil's own descriptor close-on-exec.
        // SAFETY: F_GETFD on our own open descriptor.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        drop(f);
    }

    #[test]
    fn stdin_is_dev_null_unless_given() {
        let out = std_command(&sh(), &["-c", "readlink /proc/self/fd/0"], &[]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/dev/null");
    }

    #[test]
    fn no_unshare_is_a_clear_refusal() {
        assert!(probe(None).unwrap().contains("`unshare` (util-linux) is not installed"));
    }

    #[test]
    #[cfg_attr(
        any(vigil_missing = "root", vigil_missing = "setpriv", vigil_missing = "unshare"),
        ignore = "needs root, setpriv, unshare (util-linux)"
    )]
    fn no_pid_namespace_is_a_clear_refusal() {
        vigil_testkit::require(&["root", "setpriv", "unshare"]);
        // The real unshare, denied by the kernel: run as `nobody`, it may not create a PID namespace.
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("unshare");
        let (setpriv, unshare) = (resolve("setpriv").unwrap(), resolve("unshare").unwrap());
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} --reuid=65534 --regid=65534 --clear-groups {} \"$@\"\n",
                setpriv.display(),
                unshare.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let why = probe(Some(wrapper)).unwrap();
        assert!(
            why.contains("a PID namespace cannot be created here") && why.contains("Operation not permitted"),
            "{why}"
        );
    }

    #[tokio::test]
    #[cfg_attr(
        any(vigil_missing = "root", vigil_missing = "setpriv", vigil_missing = "unshare"),
        ignore = "needs root, setpriv, unshare (util-linux)"
    )]
    async fn site_code_runs_without_a_terminal_in_its_own_pid_namespace() {
        vigil_testkit::require(&["root", "setpriv", "unshare"]);
        assert_eq!(site_code_unavailable(), None, "site code cannot run on this machine");
        let argv =
            site_code_argv(65534, 65534, false, "/bin/sh", &["-c".into(), "echo pid=$$; cat /proc/self/stat".into()]);
        let out = site_code(&argv, &[]).unwrap().stdout(Stdio::piped()).stderr(Stdio::piped()).output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // PID 1 of a new namespace (unshare's child became `sh`).
        assert!(text.contains("pid=1\n"), "{text}");
        // /proc/self/stat field 7 is tty_nr: 0 means no controlling terminal.
        let stat = text.lines().find(|l| l.contains(") ")).unwrap();
        let after = stat.rsplit_once(") ").unwrap().1;
        assert_eq!(after.split(' ').nth(4), Some("0"), "{stat}");
    }
}
