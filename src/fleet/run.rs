//! `vigil fleet review`: every selected host over ssh, at most `--forks` at once.
//!
//! The runner reads the inventory, selects hosts with `--limit`, and reviews each
//! through an [`Exchange`] (ssh in production, a local process in tests) on at most
//! `--forks` threads. Each host gets its own deadline from the moment it starts; the
//! exchange enforces it, and the runner stops waiting [`GRACE`] after it in any case,
//! so a host that hangs, or a transport that does not stop, never delays or hides the
//! others. The run's digest key (32 bytes from the OS) and the controller's
//! vulnerability feed (read once) go to every host on stdin; the key is wiped when
//! the run ends and never printed. Progress goes to stderr: a line per finished host,
//! and on a terminal one live line of hosts done, running and failed. The
//! [`FleetRun`] keeps inventory order whatever order hosts finish in.

use std::io::{IsTerminal, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use secrecy::zeroize::{Zeroize, Zeroizing};

use super::inventory::{Inventory, InventoryError, Target};
use super::outcome::{Failure, FleetRun, HostOutcome, Reason, Status};
use super::proto::{Exchange, Request, Response};
use crate::app::App;
use crate::cli::FleetReviewArgs;

/// How long after a host's deadline the runner stops waiting for its exchange to return.
pub const GRACE: Duration = Duration::from_secs(2);

/// One selected host: how to reach it, or why its inventory entry cannot say.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The inventory's name for the host.
    pub name: String,
    /// Its resolved target, or the inventory problem (the host is then failed, not skipped).
    pub target: Result<Target, String>,
}

/// The hosts of `inv` that `limit` selects (all without one), in inventory order.
pub fn plan(inv: &Inventory, limit: Option<&str>) -> Result<Vec<Planned>, InventoryError> {
    let names = match limit {
        Some(p) => super::pattern::select(inv, p)?,
        None => inv.hosts().to_vec(),
    };
    Ok(names
        .into_iter()
        .map(|name| {
            let target = inv.target(&name).map_err(|e| e.to_string());
            Planned { name, target }
        })
        .collect())
}

/// How the hosts are run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// At most this many hosts at once.
    pub forks: usize,
    /// Each host's deadline, from when it starts.
    pub timeout: Duration,
    /// Length of the feed the exchange sends after each review request (0: none).
    pub feed_bytes: u64,
}

/// What the runner reports while it runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A host started.
    Started(&'a str),
    /// A host finished, reviewed or failed.
    Finished(&'a HostOutcome),
}

/// A fresh random digest key for one run: 32 bytes from the OS, as hex (wiped when dropped).
pub fn new_key() -> Result<Zeroizing<String>> {
    use rand::TryRngCore;
    let mut bytes = Zeroizing::new([0u8; super::remote::KEY_BYTES]);
    rand::rngs::OsRng.try_fill_bytes(bytes.as_mut()).context("the OS random number generator failed")?;
    Ok(Zeroizing::new(hex::encode(bytes.as_ref())))
}

/// Review every planned host through `exchange`, at most `settings.forks` at once, each
/// by its own deadline; outcomes in the order planned. `key` is the run's digest key (hex).
pub fn run_hosts(
    exchange: Arc<dyn Exchange>,
    hosts: &[Planned],
    settings: &Settings,
    key: &str,
    on: &(dyn Fn(Event<'_>) + Sync),
) -> Vec<HostOutcome> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<HostOutcome>>> = Mutex::new(vec![None; hosts.len()]);
    let forks = settings.forks.clamp(1, hosts.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..forks {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(host) = hosts.get(i) else { break };
                    on(Event::Started(&host.name));
                    let outcome = one_host(&exchange, host, settings, key);
                    on(Event::Finished(&outcome));
                    if let Ok(mut d) = done.lock() {
                        d[i] = Some(outcome);
                    }
                }
            });
        }
    });
    let done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.into_iter()
        .zip(hosts)
        .map(|(o, h)| o.unwrap_or_else(|| failed(h, "", 0, Reason::Error, "the runner lost this host's result".into())))
        .collect()
}

fn failed(host: &Planned, address: &str, ms: u64, reason: Reason, detail: String) -> HostOutcome {
    let detail = crate::term::strip_controls(&detail);
    HostOutcome {
        name: host.name.clone(),
        address: address.to_string(),
        ms,
        status: Status::Failed(Failure { reason, detail }),
    }
}

/// One host, by its deadline: the exchange runs on its own thread so that even a transport
/// that ignores the deadline is given up on [`GRACE`] after it.
fn one_host(exchange: &Arc<dyn Exchange>, host: &Planned, settings: &Settings, key: &str) -> HostOutcome {
    let started = Instant::now();
    let target = match &host.target {
        Ok(t) => t.clone(),
        Err(why) => return failed(host, "", 0, Reason::Error, format!("inventory: {why}")),
    };
    let address = target.address.clone();
    let deadline = started + settings.timeout;
    let mut request =
        Request::Review { root: target.root.clone(), key: Some(key.to_string()), feed_bytes: settings.feed_bytes };
    let (tx, rx) = mpsc::channel();
    let ex = exchange.clone();
    let spawned = std::thread::Builder::new().name(format!("fleet {}", host.name)).spawn(move || {
        let answer = ex.exchange(&target, &request, deadline);
        if let Request::Review { key: Some(k), .. } = &mut request {
            k.zeroize();
        }
        let _ = tx.send(answer);
    });
    let ms = || started.elapsed().as_millis() as u64;
    if let Err(e) = spawned {
        return failed(host, &address, ms(), Reason::Error, format!("cannot start a thread for the host: {e}"));
    }
    let wait = deadline.saturating_duration_since(Instant::now()) + GRACE;
    let answer = match rx.recv_timeout(wait) {
        Ok(a) => a,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let why = format!(
                "no answer within {} s (the transport did not stop by the deadline)",
                settings.timeout.as_secs()
            );
            return failed(host, &address, ms(), Reason::Timeout, why);
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return failed(
                host,
                &address,
                ms(),
                Reason::Error,
                "the exchange with the host stopped unexpectedly".into(),
            );
        }
    };
    match answer {
        Ok(Response::Review { review, digests }) => {
            HostOutcome { name: host.name.clone(), address, ms: ms(), status: Status::Reviewed { review, digests } }
        }
        Ok(Response::Error { kind, message }) => {
            failed(host, &address, ms(), Reason::Error, format!("the remote vigil refused ({kind}): {message}"))
        }
        Ok(_) => failed(
            host,
            &address,
            ms(),
            Reason::Error,
            "the remote vigil answered something other than a review".into(),
        ),
        Err(f) => failed(host, &address, ms(), f.reason, f.detail),
    }
}

/// The line a finished host gets on stderr: `web1: reviewed in 2.1 s: 1 critical, 2 high`.
pub fn line(o: &HostOutcome) -> String {
    let secs = o.ms as f64 / 1000.0;
    let text = match &o.status {
        Status::Reviewed { review, .. } => {
            let counts: Vec<String> = vigil_tools::Severity::ALL
                .iter()
                .filter(|s| **s > vigil_tools::Severity::Info)
                .filter_map(|s| {
                    let n = review.summary.by_severity.get(s.as_str()).copied().unwrap_or(0);
                    (n > 0).then(|| format!("{n} {}", s.as_str()))
                })
                .collect();
            let counts = if counts.is_empty() { "nothing above info".to_string() } else { counts.join(", ") };
            let partial = if review.partial() { " (partial: some checks could not run)" } else { "" };
            format!("{}: reviewed in {secs:.1} s: {counts}{partial}", o.name)
        }
        Status::Failed(f) => format!("{}: {}: {} (after {secs:.1} s)", o.name, f.reason.as_str(), f.detail),
    };
    crate::term::strip_controls(&text)
}

/// The controller's vulnerability feed, read once for the whole run (the file `vigil review`
/// would use); empty when there is none.
pub fn read_feed(app: &App) -> Result<Vec<u8>> {
    let Some(path) = &app.config.wordpress.vuln_feed else { return Ok(Vec::new()) };
    #[expect(clippy::disallowed_methods, reason = "the controller's own feed, from its config or state directory")]
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read the vulnerability feed {}", path.display()))?;
    let mut feed = Vec::new();
    file.take(super::remote::MAX_FEED + 1)
        .read_to_end(&mut feed)
        .with_context(|| format!("cannot read the vulnerability feed {}", path.display()))?;
    if feed.len() as u64 > super::remote::MAX_FEED {
        anyhow::bail!(
            "the vulnerability feed {} is over the {} MiB a fleet host accepts",
            path.display(),
            super::remote::MAX_FEED >> 20
        );
    }
    Ok(feed)
}

/// Progress on stderr: a line per finished host; on a terminal, one live line of hosts done,
/// running and failed under them.
struct Progress {
    total: usize,
    state: Mutex<(usize, usize, Vec<String>)>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                indicatif::ProgressBar::with_draw_target(Some(total as u64), indicatif::ProgressDrawTarget::stderr());
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {wide_msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { total, state: Mutex::new((0, 0, Vec::new())), bar }
    }

    fn on(&self, event: Event<'_>) {
        let Ok(mut st) = self.state.lock() else { return };
        let (done, failed, running) = &mut *st;
        match event {
            Event::Started(name) => running.push(crate::term::strip_controls(name)),
            Event::Finished(o) => {
                running.retain(|r| *r != crate::term::strip_controls(&o.name));
                *done += 1;
                if matches!(o.status, Status::Failed(_)) {
                    *failed += 1;
                }
                match &self.bar {
                    Some(b) => b.println(line(o)),
                    None => eprintln!("{}", line(o)),
                }
            }
        }
        if let Some(b) = &self.bar {
            b.set_position(*done as u64);
            b.set_message(format!(
                "{done}/{} hosts done, {} running, {failed} failed: {}",
                self.total,
                running.len(),
                running.join(", ")
            ));
        }
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Run `vigil fleet review` through `exchange`, which sends a feed of `feed_bytes` after
/// each review request: the finished run, in inventory order (not yet reported). Blocks
/// until every host has finished or passed its deadline.
pub fn review_with(args: &FleetReviewArgs, exchange: Arc<dyn Exchange>, feed_bytes: u64) -> Result<FleetRun> {
    let inv = Inventory::load(&args.inventory)?;
    for u in &inv.unsupported {
        eprintln!("vigil: inventory {}: {}", args.inventory.display(), crate::term::strip_controls(u));
    }
    let hosts = plan(&inv, args.limit.as_deref())?;
    if hosts.is_empty() {
        anyhow::bail!("the inventory {} has no hosts", args.inventory.display());
    }
    let settings = Settings { forks: usize::from(args.forks), timeout: Duration::from_secs(args.timeout), feed_bytes };
    let started = crate::review::rfc3339(SystemTime::now());
    let key = new_key()?;
    let progress = Progress::new(hosts.len());
    let outcomes = run_hosts(exchange, &hosts, &settings, &key, &|e| progress.on(e));
    progress.finish();
    Ok(FleetRun {
        inventory: args.inventory.display().to_string(),
        limit: args.limit.clone(),
        started,
        hosts: outcomes,
    })
}

/// The longest ssh waits to connect to a host (within the host's own deadline).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Run `vigil fleet review`: the hosts over ssh, then the fleet report.
pub async fn review(app: &App, args: FleetReviewArgs) -> Result<u8> {
    if let Some(s) = args.fail_on.as_deref() {
        vigil_tools::Severity::parse(s)
            .with_context(|| format!("--fail-on {s}: use critical, high, medium, low or info"))?;
    }
    let feed = read_feed(app)?;
    let feed_bytes = feed.len() as u64;
    let connect = CONNECT_TIMEOUT.min(Duration::from_secs(args.timeout));
    let ssh = super::ssh::Ssh::new(&args.inventory.display().to_string(), app.state.path(), connect)?.with_feed(feed);
    let exchange: Arc<dyn Exchange> = Arc::new(ssh);
    let run = {
        let args = args.clone();
        tokio::task::spawn_blocking(move || review_with(&args, exchange, feed_bytes))
            .await
            .context("the fleet run stopped unexpectedly")??
    };
    super::report::finish(app, &args, run)
}
