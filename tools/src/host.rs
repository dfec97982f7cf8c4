//! `Host`: the one place facts come from.
//!
//! Every file and `/proc` read goes through a `Host`, rooted at `/` for the
//! live machine or at a directory (`--root DIR`) for a mounted image or a
//! fixture. Commands only run on the live root: on any other root the answer
//! would describe *this* machine, not the audited one, so the runner refuses.
//! Paths given to a `Host` are absolute paths *inside* the audited system;
//! `..` components are refused so nothing escapes the root.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use thiserror::Error;

use crate::broker::{Broker, Fact, FactAnswer, FactError};
use crate::inroot::{self, shown};

/// Where tenants' files live: a file on a FUSE mount under one of these is skipped
/// (the FUSE server may be the tenant's own process, answering slowly or not at all).
const TENANT_DIRS: &[&str] = &["/home/", "/var/www/", "/srv/", "/var/customers/", "/var/vhosts/"];

/// How much of a file a caller will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Most bytes read.
    pub bytes: u64,
    /// Over the cap: keep the first `bytes` (true) or fail naming path and size (false).
    pub truncate: bool,
}

impl Limit {
    /// The cap for configuration and state files: 16 MiB, over it an error.
    pub const DEFAULT: Limit = Limit { bytes: 16 << 20, truncate: false };

    /// At most `bytes`; a larger file is an error naming it and its size.
    pub const fn max(bytes: u64) -> Limit {
        Limit { bytes, truncate: false }
    }

    /// The first `bytes` of the file, however large it is.
    pub const fn head(bytes: u64) -> Limit {
        Limit { bytes, truncate: true }
    }
}

/// An error reading the host, with the path (inside the audited root) it concerns.
#[derive(Debug, Error)]
pub enum HostError {
    /// The path does not exist.
    #[error("{}: not found", shown(path))]
    NotFound {
        /// Path inside the audited root.
        path: String,
    },
    /// Permission denied: the check needs more privileges.
    #[error("{}: permission denied (run vigil as root to read it)", shown(path))]
    PermissionDenied {
        /// Path inside the audited root.
        path: String,
    },
    /// Any other I/O error.
    #[error("{}: {source}", shown(path))]
    Io {
        /// Path inside the audited root.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A path with `..` or a relative path was asked for.
    #[error("{}: refused: only absolute paths without '..' are read", shown(path))]
    BadPath {
        /// The path as asked.
        path: String,
    },
    /// Not a regular file (FIFO, socket, device, directory): never opened for reading.
    #[error("{}: not read: it is a {kind}, not a regular file", shown(path))]
    NotRegular {
        /// Path inside the audited root.
        path: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// Larger than the cap for this kind of file.
    #[error("{}: not read: {} is over the {} limit for this file", shown(path), crate::format::human_bytes(*size), crate::format::human_bytes(*limit))]
    TooLarge {
        /// Path inside the audited root.
        path: String,
        /// Its size in bytes (at least).
        size: u64,
        /// The cap in bytes.
        limit: u64,
    },
    /// On a FUSE file system under a tenant directory.
    #[error(
        "{}: skipped: it is on a FUSE file system, whose answers come from a program a tenant may run",
        shown(path)
    )]
    Foreign {
        /// Path inside the audited root.
        path: String,
    },
    /// A name that is not valid UTF-8 (shown with `\xNN` escapes).
    #[error("{path}: skipped: the name is not valid UTF-8")]
    BadName {
        /// Path inside the audited root, already escaped.
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

    /// True when the file was deliberately not read (FIFO, device, too large, FUSE, bad
    /// name): the review lists these so a planted trap is named, never silently absorbed.
    pub fn is_skipped(&self) -> bool {
        match self {
            HostError::NotRegular { kind, .. } => *kind != "directory",
            HostError::TooLarge { .. } | HostError::Foreign { .. } | HostError::BadName { .. } => true,
            _ => false,
        }
    }

    /// The path the error concerns, shown escaped (the program name for a command).
    pub fn shown_path(&self) -> String {
        match self {
            HostError::NotFound { path }
            | HostError::PermissionDenied { path }
            | HostError::Io { path, .. }
            | HostError::BadPath { path }
            | HostError::NotRegular { path, .. }
            | HostError::TooLarge { path, .. }
            | HostError::Foreign { path } => shown(path),
            HostError::BadName { path } => path.clone(),
            HostError::NotLive { program, .. }
            | HostError::NoProgram { program }
            | HostError::Timeout { program, .. } => shown(program),
        }
    }

    fn from_io(path: &str, e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => HostError::NotFound { path: path.to_string() },
            io::ErrorKind::PermissionDenied => HostError::PermissionDenied { path: path.to_string() },
            _ => HostError::Io { path: path.to_string(), source: e },
        }
    }
}

/// A process's `/proc/PID` ([`Host::process`]).
pub(crate) struct Process<'h> {
    host: &'h Host,
    pid: u32,
    /// `/proc/PID` on the kernel's procfs, opened `O_PATH`; `None`: read by path.
    dir: Option<std::os::fd::OwnedFd>,
}

impl Process<'_> {
    /// Its `fd` directory, opened for listing (and for `readlinkat` of what it lists).
    pub(crate) fn fd_dir(&self) -> Result<std::os::fd::OwnedFd, HostError> {
        let path = self.path("fd");
        let opened = match &self.dir {
            Some(d) => inroot::open_in_procfs(d.as_fd(), "fd", inroot::ProcOpen::List),
            None => inroot::open_listing(&self.host.open_path(&path, true)?),
        };
        opened.map_err(|e| HostError::from_io(&path, e))
    }

    /// One of its files (`comm`, `cmdline`), whole, up to [`Limit::DEFAULT`].
    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>, HostError> {
        let Some(d) = &self.dir else { return self.host.read(&self.path(name)) };
        let path = self.path(name);
        let fd = inroot::open_in_procfs(d.as_fd(), name, inroot::ProcOpen::Read)
            .map_err(|e| HostError::from_io(&path, e))?;
        // procfs says size 0 for every file: the cap is met by reading.
        self.host.read_opened(&path, std::fs::File::from(fd), 0, Limit::DEFAULT)
    }

    fn path(&self, name: &str) -> String {
        format!("/proc/{}/{name}", self.pid)
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
    /// Files refused so far (shared by every clone), named in the review: (path shown escaped, full line).
    skipped: Arc<Mutex<Vec<(String, String)>>>,
    /// The root directory, opened on first use.
    root_dir: Arc<OnceLock<std::os::fd::OwnedFd>>,
    /// In the confined worker: where the facts it cannot gather itself come from (see [`crate::broker`]).
    broker: Option<Arc<dyn Broker>>,
}

impl Host {
    /// The live machine, rooted at `/`.
    pub fn live() -> Self {
        Host {
            root: PathBuf::from("/"),
            live: true,
            now: SystemTime::now(),
            skipped: Arc::default(),
            root_dir: Arc::default(),
            broker: None,
        }
    }

    /// A host rooted at `root`; it is the live one only when `root` is `/`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let live = root == Path::new("/") || std::fs::canonicalize(&root).map(|p| p == Path::new("/")).unwrap_or(false);
        Host { root, live, now: SystemTime::now(), skipped: Arc::default(), root_dir: Arc::default(), broker: None }
    }

    /// Whether the live host's clock is synchronised, as the kernel says (what `timedatectl`
    /// shows as "System clock synchronized"); `None` for an audited root or when unknown.
    /// In the worker the parent answers (see [`crate::broker::Fact::ClockSynchronized`]).
    pub fn clock_synchronized(&self) -> Option<bool> {
        if !self.live {
            return None;
        }
        match &self.broker {
            Some(b) => match b.ask(Fact::ClockSynchronized) {
                Ok(FactAnswer::Clock { synchronized }) => synchronized,
                _ => None,
            },
            None => kernel_clock_synchronized(),
        }
    }

    /// In the confined worker: ask `broker` (the parent) for the fixed facts of [`crate::broker`]
    /// (firewall read commands, `/proc/net` tables, `/proc/PID/fd`) instead of gathering them here.
    pub fn with_broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// In the confined worker on the live root: the parent's answer to `fact` (blocking;
    /// call it from a blocking thread). `None` anywhere else: the caller gathers the fact itself.
    pub fn ask_parent(&self, fact: Fact) -> Option<Result<FactAnswer, FactError>> {
        let b = self.broker.as_ref().filter(|_| self.live)?;
        Some(b.ask(fact))
    }

    /// [`Host::ask_parent`] from async code (the question waits on a blocking thread).
    /// [`Fact::Docker`] is asked whatever the root: the engine is named by configuration
    /// (`[docker] docker_host`, else the root's socket), which the parent reads itself.
    pub async fn ask_parent_async(&self, fact: Fact) -> Option<Result<FactAnswer, FactError>> {
        let b = self.broker.clone().filter(|_| self.live || matches!(fact, Fact::Docker { .. }))?;
        Some(
            tokio::task::spawn_blocking(move || b.ask(fact))
                .await
                .unwrap_or_else(|e| Err(FactError::Failed { why: format!("asking the parent stopped: {e}") })),
        )
    }

    /// Note files another reader of this host (the worker) refused, as `(path shown escaped, line)`,
    /// so the review names them as if this host had met them.
    pub fn add_skipped(&self, files: Vec<(String, String)>) {
        if let Ok(mut n) = self.skipped.lock() {
            for f in files {
                if !n.iter().any(|(_, l)| *l == f.1) {
                    n.push(f);
                }
            }
        }
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

    /// `path` checked (absolute, no `..`) and made relative to the root for a lookup.
    fn checked<'a>(&self, path: &'a str) -> Result<&'a str, HostError> {
        let p = Path::new(path);
        if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(HostError::BadPath { path: path.to_string() });
        }
        Ok(path)
    }

    /// The root, opened to resolve beneath; a missing root means every path in it is missing.
    /// Opened once per host (and its clones): every read resolves beneath the same directory.
    fn root_fd(&self, path: &str) -> Result<std::os::fd::BorrowedFd<'_>, HostError> {
        if let Some(fd) = self.root_dir.get() {
            return Ok(fd.as_fd());
        }
        let fd = inroot::open_root(&self.root).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => HostError::NotFound { path: path.to_string() },
            _ => HostError::Io {
                path: path.to_string(),
                source: io::Error::new(e.kind(), format!("cannot open the audited root {}: {e}", self.root.display())),
            },
        })?;
        // A racing first open loses its descriptor here; both name the same directory.
        let _ = self.root_dir.set(fd);
        self.root_dir.get().map(|fd| fd.as_fd()).ok_or_else(|| HostError::NotFound { path: path.to_string() })
    }

    /// `path` opened `O_PATH` inside the root (symlinks resolved inside it; the
    /// final one followed only when `follow`).
    pub(crate) fn open_path(&self, path: &str, follow: bool) -> Result<std::os::fd::OwnedFd, HostError> {
        let path = self.checked(path)?;
        let root = self.root_fd(path)?;
        inroot::resolve(root.as_fd(), path, follow).map_err(|e| HostError::from_io(path, e))
    }

    /// Remember a file that was skipped (FIFO, device, too large, on FUSE) so the
    /// review names it even when the tool that met it only saw "unreadable".
    fn note(&self, e: &HostError) {
        if e.is_skipped()
            && let Ok(mut n) = self.skipped.lock()
        {
            let line = e.to_string();
            if !n.iter().any(|(_, l)| *l == line) {
                n.push((e.shown_path(), line));
            }
        }
    }

    /// Files this host (and every clone of it) refused to read, as readable lines naming each path.
    pub fn skipped(&self) -> Vec<String> {
        self.skipped_files().into_iter().map(|(_, line)| line).collect()
    }

    /// [`Host::skipped`] as `(path shown escaped, line)`, sorted by path.
    pub fn skipped_files(&self) -> Vec<(String, String)> {
        let mut v = self.skipped.lock().map(|n| n.clone()).unwrap_or_default();
        v.sort();
        v
    }

    /// The path on this machine of `path` inside the audited root, with every
    /// symlink resolved *inside* the root (an image's absolute
    /// `/etc/nginx/sites-enabled/x -> /etc/nginx/sites-available/x` stays in the
    /// image). Components that do not exist are appended as given. A FIFO or a
    /// device is refused (and noted): whoever opens the returned path could block
    /// or trigger a device. Prefer the `read*` methods, which also check the type
    /// on the descriptor they read; this is for callers that need a path.
    pub fn path(&self, path: &str) -> Result<PathBuf, HostError> {
        let path = self.checked(path)?;
        let mut parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        let root = match self.root_fd(path) {
            Ok(fd) => fd,
            // Nothing to resolve in a root that is not there (yet).
            Err(e) if e.is_not_found() => return Ok(self.root.join(parts.join("/"))),
            Err(e) => return Err(e),
        };
        let mut rest = Vec::new();
        // Longest existing prefix, resolved in the root; the rest cannot contain symlinks.
        let fd = loop {
            let prefix = format!("/{}", parts.join("/"));
            match inroot::resolve(root.as_fd(), &prefix, true) {
                Ok(fd) => break fd,
                Err(e) if parts.is_empty() => return Err(HostError::from_io(path, e)),
                Err(_) => {
                    if let Some(last) = parts.pop() {
                        rest.push(last);
                    }
                }
            }
        };
        if rest.is_empty() {
            let meta = inroot::metadata_of(fd.try_clone().map_err(|e| HostError::from_io(path, e))?)
                .map_err(|e| HostError::from_io(path, e))?;
            let t = meta.file_type();
            if t.is_fifo() || t.is_char_device() || t.is_block_device() {
                let e = HostError::NotRegular { path: path.to_string(), kind: inroot::kind_of(&meta).unwrap_or("") };
                self.note(&e);
                return Err(e);
            }
        }
        let proc_path = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        // Where the kernel says the resolved file is, re-expressed under the root as it was given.
        let real = match (proc_path(root.as_raw_fd()), proc_path(fd.as_raw_fd())) {
            (Some(r), Some(f)) => f.strip_prefix(&r).ok().map(|rel| self.root.join(rel)),
            _ => None,
        }
        .unwrap_or_else(|| self.root.join(parts.join("/")));
        Ok(rest.iter().rev().fold(real, |p, c| p.join(c)))
    }

    /// Open a regular file for reading: resolved inside the root, checked on an
    /// `O_PATH` descriptor first, so a FIFO, socket or device is an error naming
    /// it (and a note in the review) and is never opened; a file on a FUSE mount
    /// under a tenant directory is skipped likewise. Returns the file and its metadata.
    pub fn open_file(&self, path: &str) -> Result<(std::fs::File, std::fs::Metadata), HostError> {
        let r = self.open_file_inner(path);
        if let Err(e) = &r {
            self.note(e);
        }
        r
    }

    /// [`Host::open_file`] and where the opened file really is inside the root (every
    /// symlink resolved inside it), for a caller that judges a file by its owner and its
    /// place: both come from the descriptor that is read (its `fstat` and its
    /// `/proc/self/fd` link), never from a second lookup by path that a swap could
    /// answer differently. Fails closed when the place cannot be told (no `/proc`).
    pub fn open_file_located(&self, path: &str) -> Result<(std::fs::File, std::fs::Metadata, String), HostError> {
        let (file, meta) = self.open_file(path)?;
        let located = self.root_dir.get().and_then(|root| {
            let link = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
            let (r, f) = (link(root.as_raw_fd())?, link(file.as_raw_fd())?);
            let rel = f.strip_prefix(&r).ok()?.to_str()?.to_string();
            Some(format!("/{rel}"))
        });
        let real = located.ok_or_else(|| HostError::Io {
            path: path.to_string(),
            source: io::Error::other(
                "cannot tell where the opened file is inside the audited root (is /proc mounted?)",
            ),
        })?;
        Ok((file, meta, real))
    }

    fn open_file_inner(&self, path: &str) -> Result<(std::fs::File, std::fs::Metadata), HostError> {
        let path = self.checked(path)?;
        let root = self.root_fd(path)?;
        let io = |e: io::Error| HostError::from_io(path, e);
        let fd = inroot::resolve(root.as_fd(), path, true).map_err(io)?;
        let meta = inroot::metadata_of(fd.try_clone().map_err(io)?).map_err(io)?;
        if let Some(kind) = inroot::kind_of(&meta) {
            return Err(HostError::NotRegular { path: path.to_string(), kind });
        }
        if TENANT_DIRS.iter().any(|d| path.starts_with(d)) && inroot::on_fuse(fd.as_fd()) {
            return Err(HostError::Foreign { path: path.to_string() });
        }
        let file = inroot::reopen_for_read(root.as_fd(), path, &fd, &meta).map_err(io)?;
        Ok((file, meta))
    }

    /// Read a file as bytes within `limit` (see [`Limit`]).
    pub fn read_limited(&self, path: &str, limit: Limit) -> Result<Vec<u8>, HostError> {
        // Only the live root's tables are the parent's: an audited root's are files like any other.
        if let (Some(b), true, Some(fact)) = (&self.broker, self.live, Fact::read(path)) {
            let mut bytes = match b.ask(fact).map_err(|e| e.into_host(path))? {
                FactAnswer::Text { text } => text.into_bytes(),
                _ => return Err(HostError::BadPath { path: path.to_string() }),
            };
            if bytes.len() as u64 > limit.bytes && !limit.truncate {
                return Err(HostError::TooLarge {
                    path: path.to_string(),
                    size: bytes.len() as u64,
                    limit: limit.bytes,
                });
            }
            bytes.truncate(limit.bytes.min(usize::MAX as u64) as usize);
            return Ok(bytes);
        }
        let (file, meta) = self.open_file(path)?;
        self.read_opened(path, file, meta.len(), limit)
    }

    /// `file` (opened for reading by the hardened reader or [`Process::read`]; `size` as
    /// `fstat` gave it) read up to `limit`; a file over it is noted.
    fn read_opened(&self, path: &str, file: std::fs::File, size: u64, limit: Limit) -> Result<Vec<u8>, HostError> {
        let too_large = |size: u64| {
            let e = HostError::TooLarge { path: path.to_string(), size, limit: limit.bytes };
            self.note(&e);
            e
        };
        if size > limit.bytes && !limit.truncate {
            return Err(too_large(size));
        }
        let mut buf = Vec::with_capacity(size.min(limit.bytes).min(1 << 20) as usize);
        file.take(limit.bytes.saturating_add(1)).read_to_end(&mut buf).map_err(|e| HostError::from_io(path, e))?;
        if buf.len() as u64 > limit.bytes {
            if !limit.truncate {
                return Err(too_large(buf.len() as u64));
            }
            buf.truncate(limit.bytes as usize);
        }
        Ok(buf)
    }

    /// Read a whole text file (lossy UTF-8) up to the default cap ([`Limit::DEFAULT`]).
    pub fn read_to_string(&self, path: &str) -> Result<String, HostError> {
        self.read_limited(path, Limit::DEFAULT).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Read a whole file as bytes up to the default cap ([`Limit::DEFAULT`]).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, HostError> {
        self.read_limited(path, Limit::DEFAULT)
    }

    /// The first `n` bytes of a file, lossily decoded.
    pub fn read_head(&self, path: &str, n: u64) -> Result<String, HostError> {
        self.read_limited(path, Limit::head(n)).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Read a text file when it exists: `Ok(None)` when absent.
    pub fn read_optional(&self, path: &str) -> Result<Option<String>, HostError> {
        match self.read_to_string(path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `ROOT/proc` opened `O_PATH` inside the root, when it is the kernel's procfs: what
    /// [`Host::process`] opens each process's directory from.
    pub(crate) fn kernel_proc(&self) -> Option<std::os::fd::OwnedFd> {
        let fd = self.open_path("/proc", true).ok()?;
        inroot::on_procfs(fd.as_fd()).then_some(fd)
    }

    /// Process `pid`'s `/proc/PID`, for a reader that visits every process (the socket
    /// owners' walk). With `proc` ([`Host::kernel_proc`]) the directory is opened once and
    /// each file relative to it by its one name: no path is resolved per file, and the
    /// kernel made every file there (no FIFO, device or symlink to fear). Without (an
    /// image's `/proc`, whatever it holds) each file goes through the hardened reader.
    /// `None` when the process is gone.
    pub(crate) fn process(&self, proc: Option<&std::os::fd::OwnedFd>, pid: u32) -> Option<Process<'_>> {
        let dir = match proc.map(|p| inroot::open_in_procfs(p.as_fd(), &pid.to_string(), inroot::ProcOpen::Dir)) {
            None => None,
            Some(Ok(fd)) => Some(fd),
            Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => return None,
            // Whatever else went wrong, the hardened reader meets it again and says what.
            Some(Err(_)) => None,
        };
        Some(Process { host: self, pid, dir })
    }

    /// Names in a directory, sorted. A name that is not valid UTF-8 cannot be
    /// named back to this host, so it is left out and noted (shown escaped).
    pub fn read_dir(&self, path: &str) -> Result<Vec<String>, HostError> {
        if let Some(fds) = self.brokered_fds(path) {
            let mut names: Vec<String> = fds?.into_iter().map(|(n, _)| n).collect();
            names.sort();
            return Ok(names);
        }
        let fd = self.open_path(path, true)?;
        let raw = inroot::list(&fd).map_err(|e| HostError::from_io(path, e))?;
        let mut names = Vec::with_capacity(raw.len());
        for n in raw {
            match String::from_utf8(n) {
                Ok(s) => names.push(s),
                Err(e) => {
                    let name = inroot::shown_bytes(e.as_bytes());
                    self.note(&HostError::BadName { path: format!("{}/{name}", path.trim_end_matches('/')) });
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// In the worker, `/proc/PID/fd` as the parent sees it: `(fd, link target)` (`None`: not brokered).
    fn brokered_fds(&self, path: &str) -> Option<Result<Vec<(String, String)>, HostError>> {
        let b = self.broker.as_ref().filter(|_| self.live)?;
        let pid = Fact::fd_dir(path)?;
        Some(match b.ask(Fact::ProcFds { pid }) {
            Ok(FactAnswer::Fds { fds }) => Ok(fds),
            Ok(_) => Err(HostError::BadPath { path: path.to_string() }),
            Err(e) => Err(e.into_host(path)),
        })
    }

    /// Metadata without following a final symlink.
    pub fn symlink_metadata(&self, path: &str) -> Result<std::fs::Metadata, HostError> {
        let fd = self.open_path(path, false)?;
        inroot::metadata_of(fd).map_err(|e| HostError::from_io(path, e))
    }

    /// Metadata, following symlinks (inside the root).
    pub fn metadata(&self, path: &str) -> Result<std::fs::Metadata, HostError> {
        let fd = self.open_path(path, true)?;
        inroot::metadata_of(fd).map_err(|e| HostError::from_io(path, e))
    }

    /// True when the path exists (without following a final symlink).
    pub fn exists(&self, path: &str) -> bool {
        self.symlink_metadata(path).is_ok()
    }

    /// The target of a symlink, as text.
    pub fn read_link(&self, path: &str) -> Result<String, HostError> {
        if let Some((dir, n)) = path.rsplit_once('/')
            && let Some(fds) = self.brokered_fds(dir)
        {
            return fds?
                .into_iter()
                .find(|(name, _)| name == n)
                .map(|(_, target)| target)
                .ok_or_else(|| HostError::NotFound { path: path.to_string() });
        }
        let fd = self.open_path(path, false)?;
        inroot::link_target(&fd)
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .map_err(|e| HostError::from_io(path, e))
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
        if let (Some(b), true, Some(fact)) = (&self.broker, env.is_empty(), Fact::command(program, args)) {
            let b = b.clone();
            let answer = tokio::task::spawn_blocking(move || b.ask(fact)).await.map_err(|e| HostError::Io {
                path: program.to_string(),
                source: std::io::Error::other(format!("asking the parent: {e}")),
            })?;
            return match answer {
                Ok(FactAnswer::Command { status, stdout, stderr }) => Ok(CmdOutput { status, stdout, stderr }),
                Ok(_) => Err(HostError::BadPath { path: program.to_string() }),
                Err(crate::broker::FactError::NotFound { .. }) => {
                    Err(HostError::NoProgram { program: program.to_string() })
                }
                Err(e) => Err(e.into_host(program)),
            };
        }
        let path = if program.contains('/') {
            crate::spawn::resolve(program)
        } else {
            self.which(program).map(std::path::PathBuf::from)
        }
        .ok_or_else(|| HostError::NoProgram { program: program.to_string() })?;
        if let Some(table) = legacy_tables_file(program, args)
            && let Some(out) = legacy_save_without_tables(self.read(&format!("/proc/net/{table}")))
        {
            return Ok(out);
        }
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

/// The kernel's list of legacy iptables tables that `iptables-legacy-save` or
/// `ip6tables-legacy-save` (no arguments) print, one after another.
fn legacy_tables_file(program: &str, args: &[&str]) -> Option<&'static str> {
    match (program, args) {
        ("iptables-legacy-save", []) => Some("ip_tables_names"),
        ("ip6tables-legacy-save", []) => Some("ip6_tables_names"),
        _ => None,
    }
}

/// What a legacy `iptables-save` prints when the kernel's list of its tables (`names`, as
/// read) is absent or empty: nothing, successfully, as its own code does (it lists that file
/// and saves each table named there; no legacy table is the usual case on an nftables host).
/// Answered without starting it: each start forks vigil while the socket walk is under way.
/// `None` when the program must run (tables loaded, or the list unreadable).
fn legacy_save_without_tables(names: Result<Vec<u8>, HostError>) -> Option<CmdOutput> {
    let none = CmdOutput { status: 0, stdout: String::new(), stderr: String::new() };
    match names {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Some(none),
        Err(e) if e.is_not_found() => Some(none),
        _ => None,
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

impl FactError {
    /// As the host error the worker's tool would have met reading `path` itself.
    pub fn into_host(self, path: &str) -> HostError {
        match self {
            FactError::NotFound { .. } => HostError::NotFound { path: path.to_string() },
            FactError::Failed { why } => HostError::Io {
                path: path.to_string(),
                source: std::io::Error::other(format!("asked the parent: {why}")),
            },
        }
    }
}

/// The kernel's synchronisation status: `Some(true)` when synchronised (`adjtimex` with
/// `modes = 0`, which only reads).
pub(crate) fn kernel_clock_synchronized() -> Option<bool> {
    // SAFETY: adjtimex with `modes = 0` only reads the kernel's clock state into the
    // zeroed struct we own; it changes nothing.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `tx` is valid for writes for the whole call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    (state >= 0).then_some(state != libc::TIME_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn a_legacy_save_without_tables_is_answered_only_when_the_kernel_lists_none() {
        let gone = || Err(HostError::from_io("/proc/net/ip_tables_names", std::io::ErrorKind::NotFound.into()));
        for names in [Ok(Vec::new()), Ok(b"\n".to_vec()), gone()] {
            let out = legacy_save_without_tables(names).expect("no legacy table: nothing to start");
            assert_eq!((out.status, out.stdout.as_str(), out.stderr.as_str()), (0, "", ""));
        }
        // Tables loaded, or a list that cannot be read: the program runs.
        assert!(legacy_save_without_tables(Ok(b"filter\nnat\n".to_vec())).is_none());
        let denied = HostError::from_io("/proc/net/ip_tables_names", std::io::ErrorKind::PermissionDenied.into());
        assert!(legacy_save_without_tables(Err(denied)).is_none());
        assert_eq!(legacy_tables_file("ip6tables-legacy-save", &[]), Some("ip6_tables_names"));
        assert_eq!(legacy_tables_file("iptables-legacy-save", &["-t", "nat"]), None);
        assert_eq!(legacy_tables_file("iptables-nft-save", &[]), None);
    }

    #[tokio::test]
    #[cfg_attr(
        any(vigil_missing = "root", vigil_missing = "iptables-legacy-save", vigil_missing = "ip6tables-legacy-save"),
        ignore = "needs root, iptables-legacy-save, ip6tables-legacy-save (.ci/packages/firewall.txt)"
    )]
    async fn the_legacy_saves_answer_as_the_programs_do() {
        vigil_testkit::require(&["root", "iptables-legacy-save", "ip6tables-legacy-save"]);
        // Whatever this machine's legacy tables are, vigil's answer is what the program prints.
        for program in ["iptables-legacy-save", "ip6tables-legacy-save"] {
            let ours = Host::live().run(program, &[], Duration::from_secs(30)).await.unwrap();
            let theirs = std::process::Command::new(crate::spawn::resolve(program).unwrap()).output().unwrap();
            let strip = |s: &str| s.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
            assert_eq!(ours.status, theirs.status.code().unwrap());
            assert_eq!(strip(&ours.stdout), strip(&String::from_utf8_lossy(&theirs.stdout)), "{program}");
        }
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/nginx/sites-available")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc/nginx/sites-enabled")).unwrap();
        std::fs::write(dir.path().join("etc/nginx/sites-available/default"), "server {} # image").unwrap();
        std::os::unix::fs::symlink(
            "/etc/nginx/sites-available/default",
            dir.path().join("etc/nginx/sites-enabled/default"),
        )
        .unwrap();
        let h = Host::at(dir.path());
        assert_eq!(h.path("/etc/passwd").ok(), Some(dir.path().join("etc/passwd")));
        assert_eq!(
            h.path("/etc/nginx/sites-enabled/default").ok(),
            Some(dir.path().join("etc/nginx/sites-available/default"))
        );
        // The image's absolute link is the image's file, never this machine's.
        assert_eq!(h.read_to_string("/etc/nginx/sites-enabled/default").unwrap(), "server {} # image");
        assert_eq!(h.read_link("/etc/nginx/sites-enabled/default").unwrap(), "/etc/nginx/sites-available/default");
        assert!(h.symlink_metadata("/etc/nginx/sites-enabled/default").unwrap().file_type().is_symlink());
        assert!(h.metadata("/etc/nginx/sites-enabled/default").unwrap().is_file());
        assert!(matches!(h.path("/etc/../../root"), Err(HostError::BadPath { .. })));
        assert!(matches!(h.path("etc/passwd"), Err(HostError::BadPath { .. })));
        assert!(!h.is_live());
        assert!(Host::at("/").is_live());
    }

    /// Run `f` on a thread; fail (instead of hanging the suite) if it blocks.
    fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(secs)).expect("the read blocked")
    }

    #[test]
    fn a_fifo_is_named_and_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/eve/.ssh")).unwrap();
        let fifo = dir.path().join("home/eve/.ssh/authorized_keys");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let h = Host::at(dir.path());
        let h2 = h.clone();
        let r = within(5, move || h2.read_to_string("/home/eve/.ssh/authorized_keys"));
        let e = r.unwrap_err();
        assert!(matches!(e, HostError::NotRegular { kind: "FIFO (named pipe)", .. }), "{e}");
        // path() hands out no FIFO either (a caller opening it would block).
        assert!(matches!(h.path("/home/eve/.ssh/authorized_keys"), Err(HostError::NotRegular { .. })));
        assert_eq!(
            h.skipped(),
            vec!["/home/eve/.ssh/authorized_keys: not read: it is a FIFO (named pipe), not a regular file"]
        );
        // Listing and stat still work: the FIFO is seen, just never read.
        assert_eq!(h.read_dir("/home/eve/.ssh").unwrap(), vec!["authorized_keys"]);
    }

    #[test]
    fn a_process_is_read_relative_to_the_kernels_procfs_and_an_images_proc_through_the_hardened_reader() {
        // The live root's /proc is the kernel's: this very process, read by one name at a time.
        let live = Host::live();
        let proc = live.kernel_proc().expect("/proc is procfs here");
        let me = live.process(Some(&proc), std::process::id()).unwrap();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(me.read("comm").unwrap(), comm.as_bytes());
        assert_eq!(me.read("cmdline").unwrap(), std::fs::read("/proc/self/cmdline").unwrap());
        assert!(me.fd_dir().is_ok());
        // A name is one component, never a path out of the process's directory.
        for name in ["../1/comm", "..", "", "fd/0"] {
            assert!(me.read(name).is_err(), "{name}");
        }
        // A process that is gone (above the largest pid Linux hands out) is said to be.
        assert!(live.process(Some(&proc), 1 << 23).is_none());
        // An image's /proc is a directory like any other: not procfs, so each file goes through
        // the hardened reader, and a planted FIFO or symlink is refused, never opened.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/42/fd")).unwrap();
        let fifo = std::ffi::CString::new(dir.path().join("proc/42/comm").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("proc/42/cmdline")).unwrap();
        let image = Host::at(dir.path());
        assert!(image.kernel_proc().is_none());
        let planted = image.process(image.kernel_proc().as_ref(), 42).unwrap();
        let p2 = Host::at(dir.path());
        let r = within(5, move || p2.process(None, 42).unwrap().read("comm"));
        assert!(matches!(r, Err(HostError::NotRegular { kind: "FIFO (named pipe)", .. })), "{r:?}");
        // Its symlink resolves inside the image (whose /dev/zero does not exist), never on this machine.
        assert!(planted.read("cmdline").unwrap_err().is_not_found());
        assert!(planted.fd_dir().is_ok());
    }

    #[test]
    fn devices_are_refused_and_links_to_them_stay_in_the_root() {
        let h = Host::live();
        assert!(matches!(h.read("/dev/zero"), Err(HostError::NotRegular { kind: "character device", .. })));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/www/a")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("var/www/a/wp-config.php")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../dev/zero", dir.path().join("var/www/a/rel.php")).unwrap();
        let h = Host::at(dir.path());
        // Inside this root there is no /dev/zero: the link is dangling, never this machine's device.
        assert!(h.read("/var/www/a/wp-config.php").unwrap_err().is_not_found());
        assert!(h.read("/var/www/a/rel.php").unwrap_err().is_not_found());
    }

    #[test]
    fn a_file_over_the_cap_is_an_error_naming_it_or_a_head() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/ssh")).unwrap();
        let f = std::fs::File::create(dir.path().join("etc/ssh/sshd_config")).unwrap();
        f.set_len(4 << 30).unwrap(); // 4 GiB, sparse
        let h = Host::at(dir.path());
        let h2 = h.clone();
        let e = within(5, move || h2.read_to_string("/etc/ssh/sshd_config")).unwrap_err();
        assert_eq!(e.to_string(), "/etc/ssh/sshd_config: not read: 4 GiB is over the 16 MiB limit for this file");
        assert_eq!(h.read_head("/etc/ssh/sshd_config", 10).unwrap(), "\0".repeat(10));
        assert!(h.skipped().iter().any(|s| s.contains("4 GiB")));
        std::fs::write(dir.path().join("etc/small"), "0123456789").unwrap();
        assert!(matches!(h.read_limited("/etc/small", Limit::max(4)), Err(HostError::TooLarge { size: 10, .. })));
        assert_eq!(h.read_limited("/etc/small", Limit::head(4)).unwrap(), b"0123");
        assert_eq!(h.read_limited("/etc/small", Limit::max(10)).unwrap(), b"0123456789");
        // /proc files say size 0: the cap holds on what is read, not what stat says.
        assert!(matches!(
            Host::live().read_limited("/proc/self/status", Limit::max(8)),
            Err(HostError::TooLarge { .. })
        ));
    }

    #[test]
    fn hostile_names_are_escaped_in_errors_and_notes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("srv");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ok"), "").unwrap();
        std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"bad\xff")), "").unwrap();
        let h = Host::at(dir.path());
        assert_eq!(h.read_dir("/srv").unwrap(), vec!["ok"]);
        assert_eq!(h.skipped(), vec![r"/srv/bad\xff: skipped: the name is not valid UTF-8"]);
        let e = h.read("/srv/\x1b]0;owned\x07").unwrap_err();
        assert_eq!(e.to_string(), r"/srv/\x1b]0;owned\x07: not found");
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
