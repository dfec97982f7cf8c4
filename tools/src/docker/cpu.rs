//! CPU use of a container relative to what it is allowed, and its history across reviews.
//!
//! A miner shows as a container pegged at its allowance: the `--cpus` /
//! CPU-quota limit, the cpuset, or, with no limit, the host's cores. A
//! single-threaded miner in an unlimited container pegs one core, which is
//! only half of a 2-core host, so a container with no CPU limit also counts
//! as full when it keeps a whole core busy. Samples are kept in
//! `STATE/container-cpu.json` so a miner that is idle during this review but
//! was pegged at the previous ones is still caught.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The state file's name under `ctx.state_dir`.
pub const STATE_FILE: &str = "container-cpu.json";
/// Previous samples within this many days count as "the last reviews".
pub const HISTORY_DAYS: i64 = 35;
/// Samples kept per container.
const KEEP_SAMPLES: usize = 60;
/// A container's history is dropped when it has not been seen for this long.
const FORGET_DAYS: i64 = 180;

/// What a container may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allowance {
    /// Cores it may use.
    pub cores: f64,
    /// True when a CPU limit (`--cpus`, quota, cpuset) sets it; false when it is the whole host.
    pub limited: bool,
}

impl Allowance {
    /// From the container's HostConfig: NanoCpus, CpuQuota/CpuPeriod, CpusetCpus; else the host's cores.
    pub fn of(nano_cpus: i64, cpu_quota: i64, cpu_period: i64, cpuset: &str, host_cores: f64) -> Allowance {
        let mut limit: Option<f64> = None;
        let mut take = |c: f64| {
            if c > 0.0 {
                limit = Some(limit.map_or(c, |l: f64| l.min(c)));
            }
        };
        if nano_cpus > 0 {
            take(nano_cpus as f64 / 1e9);
        }
        if cpu_quota > 0 {
            let period = if cpu_period > 0 { cpu_period } else { 100_000 };
            take(cpu_quota as f64 / period as f64);
        }
        if let Some(n) = cpuset_count(cpuset) {
            take(n as f64);
        }
        match limit {
            Some(cores) => {
                Allowance { cores: if host_cores > 0.0 { cores.min(host_cores) } else { cores }, limited: true }
            }
            None => Allowance { cores: host_cores.max(1.0), limited: false },
        }
    }

    /// Percent of the allowance that `cores` busy cores are.
    pub fn percent(&self, cores: f64) -> f64 {
        if self.cores <= 0.0 { 0.0 } else { cores / self.cores * 100.0 }
    }

    /// True when `cores` is "full": at least `threshold`% of the allowance, or,
    /// without a CPU limit, at least `threshold`% of one whole core.
    pub fn is_full(&self, cores: f64, threshold_pct: f64) -> bool {
        self.percent(cores) >= threshold_pct || (!self.limited && cores * 100.0 >= threshold_pct)
    }

    /// `0.5 CPU (limit)` / `2 cores (host, no limit)`.
    pub fn describe(&self) -> String {
        if self.limited {
            format!("{} CPU (its limit)", trim_float(self.cores))
        } else {
            format!("{} cores (the whole host: no CPU limit)", trim_float(self.cores))
        }
    }
}

/// Number of CPUs in a cpuset list (`0-3,6`), `None` when empty or malformed.
pub fn cpuset_count(s: &str) -> Option<usize> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut n = 0usize;
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a {
                    return None;
                }
                n += b - a + 1;
            }
            None => {
                part.parse::<usize>().ok()?;
                n += 1;
            }
        }
    }
    (n > 0).then_some(n)
}

/// `1`, `0.5`, `1.25`.
pub fn trim_float(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Round to one decimal for the facts.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One kept sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When (Unix seconds).
    pub at: i64,
    /// Percent of the allowance.
    pub pct: f64,
    /// Busy cores.
    pub cores: f64,
    /// Whether it counted as full CPU then.
    pub full: bool,
}

/// One container's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerHistory {
    /// Container name when last seen.
    pub name: String,
    /// Last time it was seen (Unix seconds).
    pub last_seen: i64,
    /// Samples, oldest first.
    pub samples: Vec<Sample>,
}

/// `STATE/container-cpu.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Format version.
    #[serde(default)]
    pub version: u32,
    /// By container id.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerHistory>,
}

impl History {
    /// Load the history; absent → empty. A corrupt file is an error (and is replaced on save).
    #[expect(clippy::disallowed_methods, reason = "vigil's own state file, in its root-owned state directory")]
    pub fn load(dir: &Path) -> Result<History, String> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Full samples of this container within the history window before `now` (oldest first).
    pub fn previous_full(&self, id: &str, now: i64) -> Vec<Sample> {
        self.containers
            .get(id)
            .map(|h| {
                h.samples
                    .iter()
                    .filter(|s| s.full && s.at < now && now - s.at <= HISTORY_DAYS * 86_400)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Record a sample, trimming old samples and forgotten containers.
    pub fn record(&mut self, id: &str, name: &str, sample: Sample) {
        let now = sample.at;
        let h = self.containers.entry(id.to_string()).or_default();
        h.name = name.to_string();
        h.last_seen = now;
        h.samples.push(sample);
        if h.samples.len() > KEEP_SAMPLES {
            let drop = h.samples.len() - KEEP_SAMPLES;
            h.samples.drain(..drop);
        }
    }

    /// Mark a container seen (stopped containers keep their history).
    pub fn seen(&mut self, id: &str, name: &str, now: i64) {
        if let Some(h) = self.containers.get_mut(id) {
            h.name = name.to_string();
            h.last_seen = now;
        }
    }

    /// Drop containers not seen for a long time.
    pub fn prune(&mut self, now: i64) {
        self.containers.retain(|_, h| now - h.last_seen <= FORGET_DAYS * 86_400);
    }

    /// Write atomically ([`crate::atomic::write_atomic`]), mode 0600.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join(STATE_FILE);
        let mut v = self.clone();
        v.version = 1;
        let bytes = serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?;
        crate::atomic::write_atomic(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}
