//! The worker's side: `vigil __worker`, confined before it reads anything.
//!
//! `main` runs on the process's only thread: it confines itself ([`super::confine`]),
//! then starts its runtime, says `ready` with what held, reads its [`Setup`] and serves
//! calls concurrently until its stdin closes. It runs only read-only tools (a mutating
//! one is refused here too), records nothing, and asks the parent for the broker's facts.
//! Its results go out unredacted ([`vigil_tools::Unredacted`]): the parent redacts
//! everything the worker sends, trusting none of it to be redacted already.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use vigil_tools::broker::{Broker, Fact, FactAnswer, FactError};
use vigil_tools::{Ctx, Effect, Host, Registry, Unredacted};

use super::confine;
use super::proto::{FromWorker, Setup, ToWorker};

/// How long a tool waits for the parent's answer to a broker question.
const ASK_LIMIT: Duration = Duration::from_secs(60);

/// `vigil __worker`: confine, then serve until stdin closes.
pub fn main(scratch: std::path::PathBuf) -> ExitCode {
    // Before any thread exists and before anything is read.
    let started = std::time::Instant::now();
    let status = confine::apply(scratch.clone());
    // `VIGIL_LOG=debug`: where the worker's start-up goes (BENCHMARKS.md section 9).
    tracing::debug!("worker: confined in {:.2} ms", started.elapsed().as_secs_f64() * 1e3);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil worker: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(serve(status, scratch));
    rt.shutdown_background();
    code
}

/// The worker's questions to the parent, waiting for their answers.
#[derive(Debug)]
struct ToParent {
    out: UnboundedSender<String>,
    /// How long the Docker engine pass may take (the call's own limit): its sampling window
    /// and image exports take longer than any other question.
    docker_limit: Duration,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, std::sync::mpsc::Sender<Result<FactAnswer, FactError>>>>,
}

impl Broker for ToParent {
    fn ask(&self, fact: Fact) -> Result<FactAnswer, FactError> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let limit = if matches!(fact, Fact::Docker { .. }) { self.docker_limit } else { ASK_LIMIT };
        let (tx, rx) = std::sync::mpsc::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(id, tx);
        }
        let failed = |why: &str| FactError::Failed { why: why.to_string() };
        let line =
            serde_json::to_string(&FromWorker::<Unredacted>::Ask { id, fact }).map_err(|e| failed(&e.to_string()))?;
        self.out.send(line).map_err(|_| failed("the worker's output is closed"))?;
        let r = rx.recv_timeout(limit).unwrap_or_else(|_| Err(failed("the parent did not answer")));
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(&id);
        }
        r
    }
}

async fn serve(status: super::SandboxStatus, scratch: std::path::PathBuf) -> ExitCode {
    let (out, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    // One writer, so lines from concurrent calls never interleave.
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        while let Some(l) = lines.blocking_recv() {
            if writeln!(stdout, "{l}").and_then(|()| stdout.flush()).is_err() {
                break;
            }
        }
    });
    let send = |out: &UnboundedSender<String>, m: &FromWorker<Unredacted>| {
        if let Ok(l) = serde_json::to_string(m) {
            let _ = out.send(l);
        }
    };
    // Built while the parent reads `ready` and sends the first call, not after it. (No
    // redactor is made ready: results go out unredacted, the parent redacts them.)
    let registry = tokio::task::spawn_blocking(|| {
        let built = std::time::Instant::now();
        let registry = Registry::builtin();
        tracing::debug!("worker: tools registered in {:.2} ms", built.elapsed().as_secs_f64() * 1e3);
        registry
    });
    send(&out, &FromWorker::Ready { status });
    // Reading stdin blocks: its own thread, forwarding lines.
    let (in_tx, mut input) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if in_tx.send(line).is_err() {
                break;
            }
        }
    });
    let Some(first) = input.recv().await else { return ExitCode::from(2) };
    let setup: Setup = match serde_json::from_str(&first) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vigil worker: bad setup: {e}");
            return ExitCode::from(2);
        }
    };
    let docker_limit = Duration::from_secs(setup.config.review.tool_timeout_seconds.max(1) + 5);
    let broker =
        Arc::new(ToParent { out: out.clone(), docker_limit, next: AtomicU64::new(1), waiting: Mutex::default() });
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(setup.now_unix.max(0) as u64);
    let host = Host::at(&setup.root).with_now(now).with_broker(broker.clone());
    let mut ctx = Ctx::new(host).with_config(setup.config);
    ctx.state_dir = setup.state_dir;
    ctx.scratch_dir = Some(scratch);
    let registry = match registry.await {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("vigil worker: cannot register the tools: {e}");
            return ExitCode::from(2);
        }
    };
    while let Some(line) = input.recv().await {
        let msg: ToWorker = match serde_json::from_str(&line) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("vigil worker: not a message: {e}");
                continue;
            }
        };
        match msg {
            ToWorker::Call { id, tool, input } => {
                let (registry, ctx, out) = (registry.clone(), ctx.clone(), out.clone());
                tokio::spawn(async move {
                    let result = if registry.effect(&tool) != Effect::ReadOnly {
                        Err(format!("`{tool}` changes the host: the worker runs read-only tools only"))
                    } else {
                        match registry.check(&tool, input) {
                            Ok(call) => call.run_unredacted(&ctx).await.map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    };
                    let skipped = ctx.host.skipped_files();
                    send(&out, &FromWorker::Result { id, result, skipped });
                });
            }
            ToWorker::Fact { id, answer } => {
                let tx = broker.waiting.lock().ok().and_then(|mut w| w.remove(&id));
                if let Some(tx) = tx {
                    let _ = tx.send(answer);
                }
            }
        }
    }
    drop((out, broker, ctx, registry));
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    ExitCode::SUCCESS
}
