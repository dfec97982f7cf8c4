//! `Host`: the one place facts come from.
//!
//! Every file and `/proc` read goes through a `Host`, rooted at `/` for the
//! live machine or at a directory (`--root DIR`) for a mounted image or a
//! fixture. Commands only run on the live root: on any other root the answer
//! would describe *this* machine, not the audited one, so the runner refuses.
//! Paths given to a `Host` are absolute paths *inside* the audited system;
//! `..` components are refused so nothing escapes the root.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use thiserror::Error;

/// An error reading the host, with the path (inside the audited root) it concerns.
#[derive(Debug, Error)]
pub enum HostError {
    /// The path does not exist.
    #[error("{path}: not found")]
    NotFound {
        /// Path inside the audited root.
        path: String,
    },
    /// Permission denied: the check needs more privileges.
    #[error("{path}: permission denied (run vigil as root to read it)")]
    PermissionDenied {
        /// Path inside the audited root.
        path: String,
    },
    /// Any other I/O error.
    #[error("{path}: {source}")]
    Io {
        /// Path inside the audited root.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A path with `..` or a relative path was asked for.
    #[error("{path}: refused: only absolute paths without '..' are read")]
    BadPath {
        /// The path as asked.
        path: String,
    },
    /// A command was asked for on a root that is not the live system.
    #[error("`{program}` not run: commands only run when auditing the live root `/`, not {root}")]
    NotLive {
        /// The program that was refused.
        program: String,
        /// The audited root.
        root: String,
    },
    /// The program is not installed.
    #[error("`{program}` is not installed")]
    NoProgram {
        /// The program name.
        program: String,
    },
    /// The program ran past its time limit and was killed.
    #[error("`{program}` did not finish within {secs} s and was stopped")]
    Timeout {
        /// The program name.
        program: String,
        /// The limit in seconds.
        secs: u64,
    },
}

impl HostError {
    /// True when the thing is simply absent (a fact), not unreadable (a problem).
    pub fn is_not_found(&self) -> bool {
        matches!(self, HostError::NotFound { .. } | HostError::NoProgram { .. })
    }

    fn from_io(path: &str, e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => HostError::NotFound { path: path.to_string() },
            io::ErrorKind::PermissionDenied => HostError::PermissionDenied { path: path.to_string() },
            _ => HostError::Io { path: path.to_string(), source: e },
        }
    }
}

/// What a command printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit status code (`-1` when killed by a signal).
    pub status: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CmdOutput {
    /// True when the command exited 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// The audited system: a root directory and, on the live root, a command runner.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
    live: bool,
    now: SystemTime,
}

impl Host {
    /// The live machine, rooted at `/`.
    pub fn live() -> Self {
        Host { root: PathBuf::from("/"), live: true, now: SystemTime::now() }
    }

    /// A host rooted at `root`; it is the live one only when `root` is `/`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let live = root == Path::new("/") || std::fs::canonicalize(&root).map(|p| p == Path::new("/")).unwrap_or(false);
        Host { root, live, now: SystemTime::now() }
    }

    /// Fix "now" (for reproducible reviews of fixtures).
    pub fn with_now(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }

    /// The moment the review treats as "now".
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// Seconds since the epoch of [`Host::now`].
    pub fn now_unix(&self) -> i64 {
        unix_secs(self.now)
    }

    /// The audited root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when this is the live system (`/`), where commands may run.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The real path of `path` (absolute inside the audited system).
    pub fn path(&self, path: &str) -> Result<PathBuf, HostError> {
        let p = Path::new(path);
        if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(HostError::BadPath { path: path.to_string() });
        }
        let rel: PathBuf = p.components().filter(|c| matches!(c, Component::Normal(_))).collect();
        Ok(self.root.join(rel))
    }

    /// Read a whole text file (lossy UTF-8).
    pub fn read_to_string(&self, path: &str) -> Result<String, HostError> {
        let real = self.path(path)?;
        std::fs::read(&real).map(|b| String::from_utf8_lossy(&b).into_owned()).map_err(|e| HostError::from_io(path, e))
    }

    /// Read a whole file as bytes.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, HostError> {
        let real = self.path(path)?;
        std::fs::read(&real).map_err(|e| HostError::from_io(path, e))
    }

    /// Read a text file when it exists: `Ok(None)` when absent.
    pub fn read_optional(&self, path: &str) -> Result<Option<String>, HostError> {
        match self.read_to_string(path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names in a directory, sorted.
    pub fn read_dir(&self, path: &str) -> Result<Vec<String>, HostError> {
        let real = self.path(path)?;
        let rd = std::fs::read_dir(&real).map_err(|e| HostError::from_io(path, e))?;
        let mut names: Vec<String> =
            rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        Ok(names)
    }

    /// Metadata without following a final symlink.
    pub fn symlink_metadata(&self, path: &str) -> Result<std::fs::Metadata, HostError> {
        let real = self.path(path)?;
        std::fs::symlink_metadata(&real).map_err(|e| HostError::from_io(path, e))
    }

    /// Metadata, following symlinks.
    pub fn metadata(&self, path: &str) -> Result<std::fs::Metadata, HostError> {
        let real = self.path(path)?;
        std::fs::metadata(&real).map_err(|e| HostError::from_io(path, e))
    }

    /// True when the path exists (without following a final symlink).
    pub fn exists(&self, path: &str) -> bool {
        self.symlink_metadata(path).is_ok()
    }

    /// The target of a symlink, as text.
    pub fn read_link(&self, path: &str) -> Result<String, HostError> {
        let real = self.path(path)?;
        std::fs::read_link(&real).map(|p| p.to_string_lossy().into_owned()).map_err(|e| HostError::from_io(path, e))
    }

    /// Files matching a shell glob (`*`, `?`) in the final component and in
    /// any directory component, e.g. `/home/*/.ssh/authorized_keys`. Sorted.
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        for part in pattern.split('/').filter(|p| !p.is_empty()) {
            let mut next = Vec::new();
            for base in &out {
                if part.contains(['*', '?']) {
                    let dir = if base.is_empty() { "/".to_string() } else { base.clone() };
                    if let Ok(names) = self.read_dir(&dir) {
                        for n in names {
                            if (part.starts_with('.') || !n.starts_with('.')) && wildcard_match(part, &n) {
                                next.push(format!("{base}/{n}"));
                            }
                        }
                    }
                } else {
                    next.push(format!("{base}/{part}"));
                }
            }
            out = next;
        }
        let mut found: Vec<String> = out.into_iter().filter(|p| !p.is_empty() && self.exists(p)).collect();
        found.sort();
        found
    }

    /// Which program of `names` is installed (searching the usual bin dirs of the live host).
    pub fn which(&self, name: &str) -> Option<String> {
        if !self.live {
            return None;
        }
        ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .map(|d| format!("{d}/{name}"))
            .find(|p| Path::new(p).is_file())
    }

    /// Run a program on the live host with a time limit; refused on any other root.
    pub async fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<CmdOutput, HostError> {
        self.run_env(program, args, &[], timeout).await
    }

    /// [`Host::run`] with extra environment variables: the way to hand a secret to a
    /// program (e.g. `MYSQL_PWD`) without putting it on its command line, where any
    /// local user could read it in `/proc/PID/cmdline`. The program gets these, `PATH`
    /// and `LC_ALL=C`, nothing else of vigil's environment and none of its descriptors
    /// (see [`crate::spawn`]).
    pub async fn run_env(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<CmdOutput, HostError> {
        if !self.live {
            return Err(HostError::NotLive { program: program.to_string(), root: self.root.display().to_string() });
        }
        let path = if program.contains('/') {
            crate::spawn::resolve(program)
        } else {
            self.which(program).map(std::path::PathBuf::from)
        }
        .ok_or_else(|| HostError::NoProgram { program: program.to_string() })?;
        let child = crate::spawn::command(&path, args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HostError::from_io(program, e))?;
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(CmdOutput {
                status: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            Ok(Err(e)) => Err(HostError::from_io(program, e)),
            Err(_) => Err(HostError::Timeout { program: program.to_string(), secs: timeout.as_secs() }),
        }
    }
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Shell-style wildcard match of `*` and `?` against a whole name.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let h = Host::at("/tmp/fixture");
        assert_eq!(h.path("/etc/passwd").ok(), Some(PathBuf::from("/tmp/fixture/etc/passwd")));
        assert!(matches!(h.path("/etc/../../root"), Err(HostError::BadPath { .. })));
        assert!(matches!(h.path("etc/passwd"), Err(HostError::BadPath { .. })));
        assert!(!h.is_live());
        assert!(Host::at("/").is_live());
    }

    #[tokio::test]
    async fn commands_are_refused_off_the_live_root() {
        let h = Host::at("/tmp/fixture");
        let err = h.run("true", &[], Duration::from_secs(1)).await;
        assert!(matches!(err, Err(HostError::NotLive { .. })));
        let err = h.run_env("true", &[], &[("X", "y")], Duration::from_secs(1)).await;
        assert!(matches!(err, Err(HostError::NotLive { .. })));
    }

    #[tokio::test]
    async fn environment_reaches_the_program_not_its_arguments() {
        let h = Host::live();
        let out =
            h.run_env("sh", &["-c", "printf %s \"$VIGIL_T\""], &[("VIGIL_T", "v 1")], Duration::from_secs(5)).await;
        assert_eq!(out.map(|o| o.stdout).ok().as_deref(), Some("v 1"));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.conf", "a.conf"));
        assert!(!wildcard_match("*.conf", "a.conf.bak"));
        assert!(wildcard_match("backup-??.tar", "backup-01.tar"));
        assert!(wildcard_match("*", ""));
    }

    #[test]
    fn glob_walks_directories() {
        let dir = tempfile::tempdir().unwrap();
        for u in ["alice", "bob"] {
            std::fs::create_dir_all(dir.path().join(format!("home/{u}/.ssh"))).unwrap();
            std::fs::write(dir.path().join(format!("home/{u}/.ssh/authorized_keys")), "").unwrap();
        }
        let h = Host::at(dir.path());
        assert_eq!(
            h.glob("/home/*/.ssh/authorized_keys"),
            vec!["/home/alice/.ssh/authorized_keys", "/home/bob/.ssh/authorized_keys"]
        );
    }
}
