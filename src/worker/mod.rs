//! The confined worker: read-only tools run in a re-executed child the kernel confines.
//!
//! vigil promises its read-only tools change nothing. So that this does not rest on
//! code review alone, every read-only call that goes through the gate (`vigil review`,
//! `vigil tools run`, the agent's and `vigil mcp`'s calls, the scheduled collection)
//! runs in one long-lived child per vigil process: `/proc/self/exe __worker`, which
//! confines itself before it reads anything and before it starts a thread (Landlock
//! confines only the calling thread): its own empty network namespace while still
//! root, then the confinement primitives (non-root uid keeping only
//! `CAP_DAC_READ_SEARCH`, Landlock, seccomp, `no_new_privs`). Requests and answers are
//! JSON lines over its stdin and stdout ([`proto`]); calls are concurrent and matched
//! by id. When the worker dies every pending call gets an error saying so, never a hang.
//!
//! The few facts it cannot gather (the firewall ruleset, socket tables and their
//! owners, `/proc/PID/fd`, loopback HTTP probes, the Docker engine pass with its image
//! exports) it asks the parent for through [`vigil_tools::broker`], answered here with the
//! parent's own context ([`vigil_tools::broker::Fact::answer_for`]); every read-only tool
//! runs in the worker. The worker writes only to its scratch directory
//! (`$TMPDIR/vigil-worker.PID.RANDOM`, 0700, the worker user's; a start removes those of
//! vigil processes that are gone): the tools' own state files ([`TOOL_STATE`]) are copied
//! in before and, once checked, back after each call; the parent writes the image archives
//! for the worker's trivy into a root-owned `images/` inside it, through a descriptor it
//! holds; the audit log, acks, history and reports are the parent's.
//!
//! - [`child`]: the worker's side (`vigil __worker`).
//! - [`proto`]: the messages.
//! - [`status`]: what held, and the one line every review shows.

pub mod child;
pub mod confine;
pub mod proto;
pub mod status;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use vigil_tools::{Ctx, ToolResult};

pub use status::SandboxStatus;

use proto::{FromWorker, Setup, ToWorker};

/// The tools' own state files (not the review's): copied into the worker's scratch
/// state directory before it starts and back after each call.
pub const TOOL_STATE: &[&str] = &[
    vigil_tools::wordpress::admins::STATE_FILE,
    vigil_tools::backups::restore_record::FILE,
    vigil_tools::docker::STATE_FILE,
];

/// What the worker's scratch directories are called: `vigil-worker.PID.RANDOM` in the
/// system's temporary directory, PID the parent's (so a later vigil can tell a dead one's).
const SCRATCH_PREFIX: &str = "vigil-worker.";

/// The directory inside the scratch directory where the parent writes the image archives
/// it exports for the worker's trivy (root's, not the worker's: the worker reads them only).
const EXPORTS: &str = "images";

/// Largest tool state file copied back from the worker.
const STATE_MAX: u64 = 4 << 20;

/// The longest line the worker may send (one tool's whole result).
const LINE_MAX: u64 = 256 << 20;

/// How long the worker has to say it is confined and ready.
const READY_LIMIT: Duration = Duration::from_secs(15);

/// Whether read-only work is confined, as the global options chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the worker (the default).
    On,
    /// `--no-sandbox`: in the parent, unconfined (diagnosis only; recorded).
    Off,
}

/// The worker of one vigil process, started on first use.
pub struct Sandbox {
    mode: Mode,
    ctx: Ctx,
    worker: OnceLock<Result<Worker, String>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("mode", &self.mode).finish()
    }
}

impl Sandbox {
    /// The sandbox for tools on `ctx` (started on the first read-only call).
    pub fn new(mode: Mode, ctx: Ctx) -> Self {
        Sandbox { mode, ctx, worker: OnceLock::new() }
    }

    fn worker(&self) -> &Result<Worker, String> {
        self.worker.get_or_init(|| match self.mode {
            Mode::On => Worker::start(&self.ctx).map_err(|e| format!("{e:#}")),
            Mode::Off => Err("--no-sandbox was given".into()),
        })
    }

    /// What held (starting the worker if it has not started).
    pub fn status(&self) -> SandboxStatus {
        match (self.mode, self.worker()) {
            (Mode::Off, _) => SandboxStatus::disabled(),
            (_, Ok(w)) => w.status.clone(),
            (_, Err(e)) => SandboxStatus::failed(e),
        }
    }

    /// Run read-only `name` where it belongs: `None` when it runs in the parent
    /// (`--no-sandbox`), else the worker's answer. A worker that cannot start is an error
    /// for every call, never a silent fallback to running unconfined.
    pub async fn call(&self, name: &str, input: Value, limit: Duration) -> Option<Result<ToolResult, String>> {
        if self.mode == Mode::Off {
            return None;
        }
        // What the worker will ask the parent for, read while it starts and works.
        let early = vigil_tools::parent::ahead(name, &self.ctx.host);
        Some(match self.worker() {
            // Redacted here, where the worker's results first arrive: the worker can read every
            // secret on the host, so what it returns is never trusted to be redacted (it does
            // not try: it sends its results unredacted, `vigil_tools::Unredacted`).
            Ok(w) => w.call(name, input, limit, early).await.map(|r| {
                let red = vigil_tools::Redactor::global();
                ToolResult {
                    facts: red.value(r.facts),
                    findings: r.findings.into_iter().map(|f| red.finding(f)).collect(),
                }
            }),
            Err(e) => Err(format!(
                "not checked: the confined worker could not start ({e}); `--no-sandbox` runs read-only tools unconfined, for diagnosis"
            )),
        })
    }
}

/// A running worker.
struct Worker {
    status: SandboxStatus,
    shared: Arc<Shared>,
}

/// What the caller and the reader thread share.
struct Shared {
    stdin: Mutex<Option<ChildStdin>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<ToolResult, String>>>>,
    /// The parent's answers started before the worker asked ([`vigil_tools::parent::ahead`]).
    early: Mutex<HashMap<vigil_tools::broker::Fact, vigil_tools::parent::Early>>,
    /// Why the worker stopped, once it has.
    dead: Mutex<Option<String>>,
    next: AtomicU64,
    child: Mutex<Child>,
    /// The parent's context: answers the broker, records what the worker skipped.
    ctx: Ctx,
    /// The worker's scratch directory (removed when the worker is dropped).
    scratch: tempfile::TempDir,
    /// Where the parent exports images for the worker's trivy (inside `scratch`, held open).
    exports: Option<vigil_tools::docker::pass::ExportDir>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Stopped on purpose: the reader need not warn that it died.
        if let Ok(mut d) = self.shared.dead.lock() {
            d.get_or_insert_with(|| "the confined worker was stopped".into());
        }
        if let Ok(mut c) = self.shared.child.lock() {
            let _ = c.kill();
        }
        // Now, not when the reader thread lets go of `shared`: vigil may have exited by then.
        let _ = std::fs::remove_dir_all(self.shared.scratch.path());
        // Reaped on a thread of its own: a killed worker takes a millisecond or two to give its
        // memory back, which a vigil about to exit need not wait for (init reaps it then).
        let shared = self.shared.clone();
        let _ = std::thread::Builder::new().name("vigil worker reaper".into()).spawn(move || {
            if let Ok(mut c) = shared.child.lock() {
                let _ = c.wait();
            }
        });
    }
}

impl Worker {
    /// Start `vigil __worker`, hand it its setup, wait until it says what held.
    fn start(ctx: &Ctx) -> anyhow::Result<Worker> {
        use anyhow::Context;
        // This very executable, even when its file was replaced since it started (a fleet push
        // renames a new copy over it): `current_exe()` would then name a deleted path.
        let own = Path::new("/proc/self/exe");
        let exe = if own.exists() {
            own.to_path_buf()
        } else {
            std::env::current_exe().context("cannot find vigil's own executable to start the worker")?
        };
        Worker::start_program(&exe, &[], ctx)
    }

    /// [`Worker::start`] with `program` (and `lead` arguments before vigil's own) as the worker.
    fn start_program(program: &Path, lead: &[&str], ctx: &Ctx) -> anyhow::Result<Worker> {
        use anyhow::Context;
        let exe = program;
        let started = std::time::Instant::now();
        let ids = confine::worker_ids();
        let scratch = new_scratch(&std::env::temp_dir(), ids)?;
        let state = scratch.path().join("state");
        std::fs::create_dir(&state).context("worker scratch directory")?;
        if let Some(dir) = &ctx.state_dir {
            copy_state_in(dir, &state);
        }
        if let Some((uid, gid)) = ids {
            chown_tree(scratch.path(), uid, gid);
        }
        let exports = export_dir(scratch.path());
        let mut args: Vec<String> = lead.iter().map(|s| s.to_string()).collect();
        args.extend(["__worker".to_string(), "--scratch".into(), scratch.path().display().to_string()]);
        // The worker's environment is empty but for these (see vigil_tools::spawn).
        let pass: Vec<(&str, String)> = ["VIGIL_LOG", vigil_tools::sandbox::MAX_ABI_ENV]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).map(|v| (k, v)))
            .collect();
        let env: Vec<(&str, &str)> = pass.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut child = vigil_tools::spawn::std_command(exe, &args, &env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the worker {}", exe.display()))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            anyhow::bail!("the worker has no pipes");
        };
        let line = serde_json::to_string(&Setup::for_worker(ctx, &state))? + "\n";
        // A worker that died at once fails this write; its reader below says why.
        let setup_sent = stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush());
        let shared = Arc::new(Shared {
            stdin: Mutex::new(Some(stdin)),
            pending: Mutex::default(),
            early: Mutex::default(),
            dead: Mutex::default(),
            next: AtomicU64::new(1),
            child: Mutex::new(child),
            ctx: ctx.clone(),
            scratch,
            exports,
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = tokio::runtime::Handle::try_current().context("the worker needs a runtime")?;
        let reader = shared.clone();
        std::thread::Builder::new()
            .name("vigil worker reader".into())
            .spawn(move || read_loop(reader, BufReader::new(stdout), ready_tx, handle))
            .context("cannot start the worker's reader")?;
        let status = match ready_rx.recv_timeout(READY_LIMIT) {
            Ok(s) if setup_sent.is_ok() => s,
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // The reader has declared it dead by now (it does so before it lets go of `ready`).
                for _ in 0..100 {
                    if let Some(why) = shared.dead.lock().ok().and_then(|d| d.clone()) {
                        anyhow::bail!("{why}");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                anyhow::bail!("the worker stopped before it was ready");
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(mut c) = shared.child.lock() {
                    let _ = c.kill();
                }
                anyhow::bail!("the worker did not say it was ready within {} s", READY_LIMIT.as_secs());
            }
        };
        // `vigil -vv`: the worker's start-up (BENCHMARKS.md section 9 reads it).
        tracing::debug!("worker: started, confined and ready in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
        Ok(Worker { status, shared })
    }

    /// One call: sent, then its answer, an error when the worker dies first, or a time-out.
    /// `early`: the parent's answers to what this call will ask, already under way; those
    /// the worker did not ask for are dropped when the call ends.
    async fn call(
        &self,
        name: &str,
        input: Value,
        limit: Duration,
        early: HashMap<vigil_tools::broker::Fact, vigil_tools::parent::Early>,
    ) -> Result<ToolResult, String> {
        let mut mine = Vec::new();
        if let Ok(mut a) = self.shared.early.lock() {
            for (fact, rx) in early {
                // Another call's answer to the same question is already coming: that one serves.
                if let std::collections::hash_map::Entry::Vacant(v) = a.entry(fact.clone()) {
                    v.insert(rx);
                    mine.push(fact);
                }
            }
        }
        let sent = std::time::Instant::now();
        let r = self.call_now(name, input, limit).await;
        tracing::debug!("worker: {name} answered in {:.1} ms", sent.elapsed().as_secs_f64() * 1e3);
        if let Ok(mut a) = self.shared.early.lock() {
            for fact in &mine {
                a.remove(fact);
            }
        }
        r
    }

    async fn call_now(&self, name: &str, input: Value, limit: Duration) -> Result<ToolResult, String> {
        let id = self.shared.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        {
            let dead = self.shared.dead.lock().map_err(|_| "the worker's state is poisoned".to_string())?;
            if let Some(why) = dead.as_ref() {
                return Err(format!("not checked: {why}"));
            }
            // Registered under the same lock the reader takes to declare the worker dead:
            // a call is either answered by that sweep or refused above.
            if let Ok(mut p) = self.shared.pending.lock() {
                p.insert(id, tx);
            }
        }
        let msg = ToWorker::Call { id, tool: name.to_string(), input };
        if let Err(e) = self.shared.send(&msg) {
            // A worker that just died: its reader is about to say why, which says more than EPIPE.
            return match tokio::time::timeout(Duration::from_secs(2), rx).await {
                Ok(Ok(r)) => r,
                _ => {
                    self.shared.forget(id);
                    Err(format!("not checked: cannot reach the worker: {e}"))
                }
            };
        }
        // The worker applies the tool's own limit; this one is for a worker that is stuck.
        match tokio::time::timeout(limit + Duration::from_secs(5), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("not checked: the worker dropped the call".into()),
            Err(_) => {
                self.shared.forget(id);
                Err(format!("not checked (timed out after {} s)", limit.as_secs()))
            }
        }
    }
}

impl Shared {
    fn send(&self, msg: &ToWorker) -> std::io::Result<()> {
        let line = serde_json::to_string(msg).map_err(std::io::Error::other)? + "\n";
        let mut guard = self.stdin.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let stdin = guard.as_mut().ok_or_else(|| std::io::Error::other("the worker has stopped"))?;
        stdin.write_all(line.as_bytes())?;
        stdin.flush()
    }

    fn forget(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
    }

    /// The worker is gone: say why to every pending call, refuse the next ones.
    fn died(&self, why: String) {
        let Ok(mut dead) = self.dead.lock() else { return };
        if dead.is_none() {
            tracing::warn!("worker: {why}");
        }
        let pending: Vec<_> = self.pending.lock().map(|mut p| p.drain().collect()).unwrap_or_default();
        for (_, tx) in pending {
            let _ = tx.send(Err(format!("not checked: {why}")));
        }
        dead.get_or_insert(why);
        if let Ok(mut s) = self.stdin.lock() {
            s.take();
        }
    }

    /// After a call: the tools' state files the worker wrote, back into the host's state directory.
    fn copy_state_out(&self) {
        let Some(dir) = &self.ctx.state_dir else { return };
        let from = self.scratch.path().join("state");
        for name in TOOL_STATE {
            let src = from.join(name);
            let Ok(meta) = std::fs::symlink_metadata(&src) else { continue };
            if !meta.is_file() || meta.len() > STATE_MAX {
                continue;
            }
            #[expect(clippy::disallowed_methods, reason = "the worker's scratch copy of vigil's own state file")]
            let Ok(bytes) = std::fs::read(&src) else { continue };
            // Only well-formed JSON goes back: a confused worker cannot plant anything else.
            if serde_json::from_slice::<Value>(&bytes).is_err() {
                continue;
            }
            let same = crate::state::read_private(&dir.join(name)).map(|old| old == bytes).unwrap_or(false);
            if !same && let Err(e) = crate::state::write_atomic(&dir.join(name), &bytes) {
                tracing::warn!("worker: cannot keep {}: {e}", dir.join(name).display());
            }
        }
    }
}

/// Read the worker's lines until it stops: results to their callers, broker questions answered.
fn read_loop(
    shared: Arc<Shared>,
    mut out: impl BufRead,
    ready: std::sync::mpsc::Sender<SandboxStatus>,
    rt: tokio::runtime::Handle,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut out).take(LINE_MAX).read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if !line.ends_with('\n') => {
                // Over the cap (or cut off): the worker is not answering as it should.
                if let Ok(mut c) = shared.child.lock() {
                    let _ = c.kill();
                }
                shared.died(format!("the confined worker sent an answer over {} MiB and was stopped", LINE_MAX >> 20));
                return;
            }
            Ok(_) => {}
        }
        let msg: FromWorker = match serde_json::from_str(line.trim_end()) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("worker: not a message ({e}): {}", crate::term::strip_controls(line.trim_end()));
                continue;
            }
        };
        match msg {
            FromWorker::Ready { status } => {
                let _ = ready.send(status);
            }
            FromWorker::Result { id, result, skipped } => {
                shared.ctx.host.add_skipped(skipped);
                shared.copy_state_out();
                let tx = shared.pending.lock().ok().and_then(|mut p| {
                    let tx = p.remove(&id);
                    // No call in flight: no scan still reads an exported image.
                    if p.is_empty()
                        && let Some(d) = &shared.exports
                    {
                        d.clear();
                    }
                    tx
                });
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
            }
            FromWorker::Ask { id, fact } => {
                let shared = shared.clone();
                let early = shared.early.lock().ok().and_then(|mut a| a.remove(&fact));
                rt.spawn(async move {
                    let asked = std::time::Instant::now();
                    let fresh = || fact.answer_for(&shared.ctx, shared.exports.as_ref());
                    let (answer, how) = match early {
                        Some(rx) => match rx.await {
                            Ok(Some(answer)) => (answer, "read ahead"),
                            _ => (fresh().await, "not read ahead after all"),
                        },
                        None => (fresh().await, "asked"),
                    };
                    tracing::debug!(
                        "worker: {fact:?} {how}, answered in {:.1} ms",
                        asked.elapsed().as_secs_f64() * 1e3
                    );
                    if let Err(e) = shared.send(&ToWorker::Fact { id, answer }) {
                        tracing::warn!("worker: cannot answer a broker request: {e}");
                    }
                });
            }
        }
    }
    let status = shared.child.lock().ok().and_then(|mut c| {
        // Give a crashing worker a moment to be reaped so its signal can be named.
        for _ in 0..50 {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    });
    shared.died(match status {
        Some(s) => format!("the confined worker stopped ({}) before answering", describe(s)),
        None => "the confined worker closed its output before answering".into(),
    });
}

/// An exit status in words: `exit code 3`, `killed by signal 9 (SIGKILL)`.
fn describe(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGSYS => " (SIGSYS: a system call the seccomp filter forbids)",
                libc::SIGABRT => " (SIGABRT)",
                _ => "",
            };
            format!("killed by signal {sig}{name}")
        }
        _ => "unknown status".into(),
    }
}

/// A new scratch directory in `tmp` (`vigil-worker.PID.RANDOM`, mode 0700), after removing
/// those of vigil processes that are gone (killed before they could remove theirs).
fn new_scratch(tmp: &Path, ids: Option<(u32, u32)>) -> anyhow::Result<tempfile::TempDir> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    remove_stale_scratch(tmp, ids.map(|(u, _)| u));
    let dir = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}.", std::process::id()))
        .tempdir_in(tmp)
        .context("worker scratch directory")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).context("worker scratch directory")?;
    Ok(dir)
}

/// Remove the scratch directories in `tmp` whose vigil process is gone: named
/// `vigil-worker.PID.*` with no process PID, a directory (not a symlink to one) owned by the
/// worker's uid `owner` (this process's own uid when it runs no worker user). The removal
/// never follows a symlink inside.
fn remove_stale_scratch(tmp: &Path, owner: Option<u32>) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let owner = owner.unwrap_or_else(|| unsafe { libc::geteuid() });
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)).and_then(|r| r.split_once('.'))
        else {
            continue;
        };
        let Ok(pid) = pid.0.parse::<u32>() else { continue };
        if pid == 0 || pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_dir() || meta.uid() != owner {
            continue;
        }
        // std's remove_dir_all opens each level with O_NOFOLLOW and unlinks symlinks themselves.
        match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::debug!("worker: removed the stale scratch directory {}", path.display()),
            Err(e) => tracing::warn!("worker: cannot remove the stale scratch directory {}: {e}", path.display()),
        }
    }
}

/// The parent's export directory inside `scratch`, created after the scratch directory was
/// given to the worker's user and kept root's (0755): the worker reads the archives, cannot
/// change them, and cannot redirect the parent's writes (they go through the open directory).
fn export_dir(scratch: &Path) -> Option<vigil_tools::docker::pass::ExportDir> {
    use std::os::unix::fs::DirBuilderExt;
    let path = scratch.join(EXPORTS);
    let made = std::fs::DirBuilder::new().mode(0o755).create(&path);
    match made.and_then(|()| vigil_tools::docker::pass::ExportDir::open(&path)) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!("worker: no image export directory ({e}): images will not be scanned");
            None
        }
    }
}

/// The tools' state files, copied from the host's state directory into the worker's.
fn copy_state_in(from: &Path, to: &Path) {
    for name in TOOL_STATE {
        let src: PathBuf = from.join(name);
        if std::fs::symlink_metadata(&src).map(|m| m.is_file()).unwrap_or(false) {
            let _ = std::fs::copy(&src, to.join(name));
        }
    }
}

/// Give the worker's uid its scratch directory (and what was copied into it).
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let _ = std::os::unix::fs::lchown(dir, Some(uid), Some(gid));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(gid));
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                chown_tree(&p, uid, gid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_tools::Host;

    /// A stand-in worker: says ready, reads its setup and `calls` calls, then dies by `signal`.
    fn dying_worker(calls: usize, signal: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("worker.sh");
        let ready = serde_json::to_string(&FromWorker::<vigil_tools::Unredacted>::Ready {
            status: SandboxStatus::failed("stand-in"),
        })
        .unwrap();
        let body = format!(
            "#!/bin/sh\necho '{ready}'\nread setup\ni=0\nwhile [ $i -lt {calls} ]; do read call; i=$((i+1)); done\nkill -{signal} $$\n"
        );
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        (dir, script)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_crash_is_a_clear_error_for_every_pending_call_and_the_next_ones() {
        let (_dir, script) = dying_worker(3, "KILL");
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let w = Worker::start_program(&script, &[], &ctx).unwrap();
        assert_eq!(w.status, SandboxStatus::failed("stand-in"));
        let limit = Duration::from_secs(30);
        let started = std::time::Instant::now();
        let (a, b, c) = tokio::join!(
            w.call_now("check_ssh", serde_json::json!({}), limit),
            w.call_now("audit_accounts", serde_json::json!({}), limit),
            w.call_now("check_tls", serde_json::json!({}), limit),
        );
        assert!(started.elapsed() < Duration::from_secs(10), "no hang: {:?}", started.elapsed());
        for r in [a, b, c] {
            let e = r.unwrap_err();
            assert!(e.contains("the confined worker stopped (killed by signal 9 (SIGKILL)) before answering"), "{e}");
        }
        let e = w.call_now("check_ssh", serde_json::json!({}), limit).await.unwrap_err();
        assert!(e.starts_with("not checked: the confined worker stopped"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_worker_returns_is_redacted_in_the_parent() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("worker.sh");
        let ready = serde_json::to_string(&FromWorker::<vigil_tools::Unredacted>::Ready {
            status: SandboxStatus::failed("stand-in"),
        })
        .unwrap();
        // A worker that reads a secret and returns it unredacted (as a compromised one would).
        let leak = r#"{"type":"result","body":{"id":1,"result":{"Ok":{"facts":{"cmd":"redis-server --requirepass hunter2secret"},"findings":[]}},"skipped":[]}}"#;
        std::fs::write(&script, format!("#!/bin/sh\necho '{ready}'\nread setup\nread call\necho '{leak}'\nsleep 5\n"))
            .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let s = Sandbox::new(Mode::On, Ctx::new(Host::at("/nonexistent")));
        let w = Worker::start_program(&script, &[], &s.ctx).unwrap();
        let _ = s.worker.set(Ok(w));
        let r = s.call("check_ssh", serde_json::json!({}), Duration::from_secs(10)).await.unwrap().unwrap();
        let shown = r.facts.to_string();
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }

    #[test]
    fn the_workers_setup_carries_the_tools_config_and_no_notification_secret() {
        let text = r#"
[[ports.allowed]]
port = 8443
reason = "the admin panel"
reviewed = 2026-10-01

[notify]
email_to = ["ops@example.org"]
smtp = "mail.example.org:587"
smtp_user = "vigil-mailer-u53r"
smtp_password_file = "/etc/vigil/smtp-pw-f1l3"

[[notify.webhooks]]
url = "https://hooks.example.org/services/T0/B0/w3bh00kT0k3n"
kind = "slack"

[agent]
model = "m0d3l-n4me"
"#;
        let config = crate::config::Config::parse(text, Path::new("/etc/vigil/config.toml")).unwrap();
        let ctx = Ctx::new(Host::at("/")).with_config(config.tools()).with_state_dir("/var/lib/vigil");
        let line = serde_json::to_string(&Setup::for_worker(&ctx, Path::new("/tmp/w/state"))).unwrap();
        for secret in
            ["w3bh00kT0k3n", "vigil-mailer-u53r", "smtp-pw-f1l3", "mail.example.org", "ops@example.org", "m0d3l"]
        {
            assert!(!line.contains(secret), "{secret} in the worker's setup: {line}");
        }
        // The tools' configuration is all there: the worker judges ports by the same ledger.
        let back: Setup = serde_json::from_str(&line).unwrap();
        assert_eq!(back.config.ports.allowed[0].port, 8443);
        assert_eq!(back.state_dir.as_deref(), Some(Path::new("/tmp/w/state")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_that_never_says_ready_is_an_error_naming_why() {
        let (_dir, script) = dying_worker(0, "SEGV");
        std::fs::write(&script, "#!/bin/sh\nkill -SEGV $$\n").unwrap();
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let e = Worker::start_program(&script, &[], &ctx).err().unwrap().to_string();
        assert!(e.contains("the confined worker stopped (killed by signal 11 (SIGSEGV))"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_worker_leaves_no_scratch_behind_even_if_vigil_exits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("worker.sh");
        let ready = serde_json::to_string(&FromWorker::<vigil_tools::Unredacted>::Ready {
            status: SandboxStatus::failed("stand-in"),
        })
        .unwrap();
        std::fs::write(&script, format!("#!/bin/sh\necho '{ready}'\nread setup\nexec sleep 30\n")).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let w = Worker::start_program(&script, &[], &Ctx::new(Host::at("/nonexistent"))).unwrap();
        let scratch = w.shared.scratch.path().to_path_buf();
        assert!(scratch.join(EXPORTS).is_dir());
        drop(w);
        // Not left to the reader thread, which a vigil that returns from main never waits for.
        assert!(!scratch.exists(), "{} is still there", scratch.display());
    }

    #[test]
    fn stale_scratch_of_gone_vigils_is_removed_and_nothing_else() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let gone = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id();
            c.wait().unwrap();
            pid
        };
        let outside = t.join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "keep").unwrap();
        // A gone vigil's scratch, with a symlink out of it: removed, the symlink's target kept.
        let stale = t.join(format!("{SCRATCH_PREFIX}{gone}.abc123"));
        std::fs::create_dir_all(stale.join("state")).unwrap();
        std::fs::write(stale.join("state/container-cpu.json"), "{}").unwrap();
        std::os::unix::fs::symlink(&outside, stale.join("out")).unwrap();
        // Kept: a running vigil's (pid 1 and ours), a symlink named like one, an unrelated name.
        let running = t.join(format!("{SCRATCH_PREFIX}1.xyz"));
        let ours = t.join(format!("{SCRATCH_PREFIX}{}.xyz", std::process::id()));
        let link = t.join(format!("{SCRATCH_PREFIX}{gone}.link"));
        let unrelated = t.join(format!("{SCRATCH_PREFIX}abc"));
        for d in [&running, &ours, &unrelated] {
            std::fs::create_dir(d).unwrap();
        }
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        // Another user's, when we can make one: not ours to remove.
        let foreign = t.join(format!("{SCRATCH_PREFIX}{gone}.foreign"));
        std::fs::create_dir(&foreign).unwrap();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            std::os::unix::fs::lchown(&foreign, Some(65534), None).unwrap();
        }
        remove_stale_scratch(t, None);
        assert!(!stale.exists(), "the gone vigil's scratch is removed");
        assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "keep");
        for kept in [&running, &ours, &link, &unrelated] {
            assert!(std::fs::symlink_metadata(kept).is_ok(), "{} was removed", kept.display());
        }
        assert_eq!(foreign.exists(), root, "another user's directory is left alone");
        // The new one: named by our pid, 0700.
        let s = new_scratch(t, None).unwrap();
        let name = s.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("{SCRATCH_PREFIX}{}.", std::process::id())), "{name}");
        let meta = std::fs::metadata(s.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(meta.uid(), unsafe { libc::geteuid() });
    }
}
