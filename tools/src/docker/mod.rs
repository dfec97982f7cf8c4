//! `docker_containers`: every container and image on the Docker (or
//! Docker-compatible) engine, where it comes from, what it may do, and what
//! CPU it burns.
//!
//! Pattern 6 of the seven mistakes: an image from an unknown publisher that
//! starts mining after 48 hours, noticed two weeks later. The tool talks to
//! the Engine API with bollard (`[docker] docker_host`, else `DOCKER_HOST` on
//! the live root, else `ROOT/var/run/docker.sock`), normalises image names the
//! way Docker does to tell official images from the rest, samples every
//! container's CPU in one shared window and keeps the samples across reviews
//! (`STATE/container-cpu.json`), and flags privilege, host namespaces, engine
//! sockets, sensitive mounts, ports published past the firewall, old images,
//! restart loops and, with trivy installed, known vulnerabilities. Container
//! environments are never read into the facts: they hold passwords.

mod cpu;
mod engine;
mod judge;
mod reference;
mod trivy;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};
pub use cpu::{Allowance, History, STATE_FILE, Sample, cpuset_count};
pub use engine::{ConnectError, Endpoint, classify_io, parse_endpoint};
pub use reference::{ImageRef, Provenance, is_image_id};
pub use trivy::{ScanSummary, parse_report};

const TOOL: &str = "docker_containers";
/// Images scanned by trivy at once.
const SCAN_CONCURRENCY: usize = 2;

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct DockerContainers;

/// Input of `docker_containers`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerInput {
    /// Only this container (its name, or an id prefix of at least 6 characters). Every container when absent.
    #[serde(default)]
    pub container: Option<String>,
    /// Skip the trivy image vulnerability scan (faster answers about CPU or configuration).
    #[serde(default)]
    pub skip_image_scan: bool,
}

/// The engine vigil talked to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct EngineFacts {
    /// Endpoint (`unix:///var/run/docker.sock`).
    pub endpoint: String,
    /// Engine product (`Docker Engine - Community`, `Podman Engine`).
    pub name: String,
    /// Engine version.
    pub version: String,
    /// Negotiated Engine API version.
    pub api_version: String,
    /// Host cores the engine reports.
    pub host_cores: u32,
    /// Rootless engine or userns-remap: root in a container is not root on the host.
    pub userns_remap: bool,
}

/// One container, compactly. Environment variables are never included.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ContainerFacts {
    /// Container name.
    pub name: String,
    /// Image, normalised (`docker.io/library/nginx:1.27`).
    pub image: String,
    /// True only for Docker official images (`docker.io/library/*`).
    pub official: bool,
    /// official, verified (a trusted publisher), local (built here) or third-party.
    pub provenance: Provenance,
    /// running, exited, restarting, paused, created…
    pub state: String,
    /// CPU over this review's sampling window, % of its allowance (its limit, else all host cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_sample_pct: Option<f64>,
    /// CPU averaged since the container started, % of its allowance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_avg_pct: Option<f64>,
    /// CPU limit in cores, or `none`.
    pub cpu_limit: String,
    /// Memory limit, or `none`.
    pub memory_limit: String,
    /// privileged, engine-socket, host-network, host-pid, sensitive-mount, root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Published ports (`0.0.0.0:8080->80/tcp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Restarts by the engine.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restart_count: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One image.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ImageFacts {
    /// Normalised reference (first tag), or `<none> ID`.
    pub reference: String,
    /// Short image id.
    pub id: String,
    /// True only for Docker official images.
    pub official: bool,
    /// official, verified, local or third-party.
    pub provenance: Provenance,
    /// Build date.
    pub created: String,
    /// Age in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_days: Option<i64>,
    /// Containers using it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    /// trivy's HIGH/CRITICAL counts, when scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerabilities: Option<String>,
}

/// Facts of `docker_containers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct DockerFacts {
    /// The engine, when one answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineFacts>,
    /// Every container, running or not.
    pub containers: Vec<ContainerFacts>,
    /// Every image.
    pub images: Vec<ImageFacts>,
    /// Image scanner: trivy, not-installed, not-live, skipped.
    pub image_scanner: String,
    /// Length of the CPU sampling window, seconds.
    pub cpu_sample_seconds: f64,
}

/// Whether images are scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanner {
    /// trivy runs.
    Trivy,
    /// trivy is not installed.
    Missing,
    /// Not the live root: no commands.
    NotLive,
    /// The caller asked to skip.
    Skipped,
}

impl Scanner {
    fn as_str(self) -> &'static str {
        match self {
            Scanner::Trivy => "trivy",
            Scanner::Missing => "not-installed",
            Scanner::NotLive => "not-live",
            Scanner::Skipped => "skipped",
        }
    }
}

#[async_trait]
impl Tool for DockerContainers {
    type Input = DockerInput;
    type Output = DockerFacts;

    fn name(&self) -> &'static str {
        TOOL
    }

    fn description(&self) -> &'static str {
        "Review every Docker container (running or stopped) and image on the host's Docker-compatible engine: \
         the image's provenance (official docker.io/library image, trusted publisher, built locally, or \
         unofficial), pinning and age; CPU use over a short sample and averaged since start, relative to the \
         container's CPU limit (sustained full CPU is a cryptominer sign; earlier reviews' samples are kept); \
         CPU/memory limits; privileged mode, host network/PID namespaces, the Docker socket or sensitive host \
         paths mounted, running as root; ports published on all interfaces (these bypass ufw); restart loops; \
         and, when trivy is installed, HIGH/CRITICAL vulnerabilities in the images. Never returns container \
         environment variables. Use it for 'what containers run here', 'is something mining', 'is this \
         container safe'."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, input: DockerInput) -> Result<Outcome<DockerFacts>, ToolError> {
        let cfg = &ctx.config.docker;
        let window = Duration::from_secs_f64(if cfg.cpu_sample_seconds.is_finite() {
            cfg.cpu_sample_seconds.clamp(0.0, 30.0)
        } else {
            0.0
        });
        let mut facts = DockerFacts { cpu_sample_seconds: window.as_secs_f64(), ..Default::default() };
        let t0 = std::time::Instant::now();
        let ep = match engine::resolve(ctx) {
            Ok(ep) => ep,
            Err(why) => {
                facts.image_scanner = "skipped".into();
                let f = Finding::could_not_check(Category::Containers, TOOL, "the container engine", why).fix(
                    "Set [docker] docker_host (or DOCKER_HOST) to unix:///path/to/docker.sock or tcp://host:port.",
                );
                return Ok(Outcome::new(facts, vec![f]));
            }
        };
        let docker = match engine::connect(&ep).await {
            Ok(d) => d,
            Err(e) => {
                facts.image_scanner = "skipped".into();
                return Ok(Outcome::new(facts, vec![connect_finding(&ep, e)]));
            }
        };
        tracing::debug!(elapsed = ?t0.elapsed(), "docker_containers: connect");
        let (mut obs, reads) = match engine::observe(&docker, &ep, input.container.as_deref()).await {
            Ok(x) => x,
            Err(why) => {
                facts.image_scanner = "skipped".into();
                let f = Finding::could_not_check(
                    Category::Containers,
                    TOOL,
                    "containers",
                    format!("{}: {why}", ep.shown()),
                )
                .fix(
                    "Check the engine answers (`docker ps -a`); until it does, containers on this host are unreviewed.",
                );
                return Ok(Outcome::new(facts, vec![f]));
            }
        };
        tracing::debug!(elapsed = ?t0.elapsed(), "docker_containers: observe");
        if let Some(name) = &input.container {
            if obs.containers.is_empty() {
                return Err(ToolError::Failed(format!(
                    "no container named `{name}` on {}; call docker_containers without `container` to list them",
                    ep.shown()
                )));
            }
        }

        let scanner = if input.skip_image_scan {
            Scanner::Skipped
        } else if !ctx.host.is_live() {
            Scanner::NotLive
        } else if ctx.host.which("trivy").is_some() {
            Scanner::Trivy
        } else {
            Scanner::Missing
        };
        // The images the containers use: scanned during the CPU sampling window.
        let mut targets: Vec<(String, String)> = Vec::new();
        if scanner == Scanner::Trivy {
            let mut seen = HashSet::new();
            for c in &obs.containers {
                let Some(img) = obs.images.iter().find(|i| !c.image_id.is_empty() && i.id == c.image_id) else {
                    continue;
                };
                if seen.insert(img.id.clone()) {
                    let name = img
                        .repo_tags
                        .iter()
                        .find(|t| !t.starts_with("<none>"))
                        .cloned()
                        .unwrap_or_else(|| img.id.clone());
                    targets.push((img.id.clone(), name));
                }
            }
        }
        let docker_host = ep.non_default();
        let timeout = Duration::from_secs(cfg.trivy_timeout_seconds.max(1));
        let scans_fut = async {
            futures::stream::iter(targets)
                .map(|(id, name)| {
                    let dh = docker_host.clone();
                    async move { (id, trivy::scan(&ctx.host, &name, dh.as_deref(), timeout).await) }
                })
                .buffer_unordered(SCAN_CONCURRENCY)
                .collect::<Vec<_>>()
                .await
        };
        let (_, scans) = tokio::join!(engine::sample(&docker, &mut obs, &reads, window), scans_fut);
        let scans: HashMap<String, Result<ScanSummary, String>> = scans.into_iter().collect();

        tracing::debug!(elapsed = ?t0.elapsed(), "docker_containers: sample");
        let now = ctx.host.now_unix();
        let (mut history, history_err) = match &ctx.state_dir {
            Some(dir) => match History::load(dir) {
                Ok(h) => (h, None),
                Err(e) => (History::default(), Some(e)),
            },
            None => (History::default(), None),
        };
        let judged = judge::judge(
            &obs,
            &judge::Context { cfg, now, history: &history, scans: &scans, scanner, ports: &ctx.config.ports },
        );
        let mut findings = judged.findings;
        if let Some(dir) = &ctx.state_dir {
            for c in &obs.containers {
                history.seen(&c.id, &c.name, now);
            }
            for (id, name, s) in judged.samples {
                history.record(&id, &name, s);
            }
            history.prune(now);
            let saved = history.save(dir);
            if let Some(e) = history_err.or(saved.err()) {
                findings.push(
                    Finding::new("containers.cpu-history", Severity::Info, Category::Containers, STATE_FILE, "CPU samples could not be kept across reviews")
                        .evidence(e)
                        .fix("Make the state directory writable by vigil (0700, owned by the user vigil runs as); a miner idle during one review is then still caught from earlier samples."),
                );
            }
        }
        tracing::debug!(elapsed = ?t0.elapsed(), "docker_containers: judged+saved");
        facts.engine = Some(judged.engine);
        facts.containers = judged.containers;
        facts.images = judged.images;
        facts.image_scanner = scanner.as_str().into();
        findings.sort_by(|a, b| {
            b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)).then_with(|| a.subject.cmp(&b.subject))
        });
        Ok(Outcome::new(facts, findings))
    }
}

/// The finding for an engine we could not reach.
fn connect_finding(ep: &Endpoint, e: ConnectError) -> Finding {
    match e {
        ConnectError::Absent(why) => Finding::new("containers.no-engine", Severity::Info, Category::Containers, ep.shown(), "No Docker engine on this host")
            .evidence(why)
            .fix("Nothing to do. If containers run here under another engine, set [docker] docker_host to its socket (e.g. unix:///run/podman/podman.sock)."),
        ConnectError::Denied(why) => Finding::could_not_check(Category::Containers, TOOL, "Docker containers", format!("{why}: vigil may not open the engine's socket"))
            .fix("Run vigil as root (`sudo vigil review`), or add the user vigil runs as to the `docker` group (`usermod -aG docker USER`) — but the docker group is root-equivalent: anyone in it can start a privileged container that mounts / . Until then, containers on this host are unreviewed."),
        ConnectError::Failed(why) => Finding::could_not_check(Category::Containers, TOOL, "Docker containers", why)
            .fix("Check the engine is healthy (`docker info`, its log) and that [docker] docker_host / DOCKER_HOST names it; until then containers on this host are unreviewed."),
    }
}

#[cfg(test)]
mod tests;
