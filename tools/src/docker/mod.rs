//! `docker_containers`: every container and image on the Docker (or
//! Docker-compatible) engine, where it comes from, what it may do, and what
//! CPU it burns.
//!
//! Pattern 6 of the seven mistakes: an image from an unknown publisher that
//! starts mining after 48 hours, noticed two weeks later. The Engine API is
//! read with bollard (`[docker] docker_host`, else `DOCKER_HOST` on the live
//! root, else `ROOT/var/run/docker.sock`) by [`pass`] — in the confined worker,
//! by the parent on the worker's behalf (`Fact::Docker`), since the socket is
//! root-only —, and the tool normalises image names the
//! way Docker does to tell official images from the rest, samples every
//! container's CPU in one shared window and keeps the samples across reviews
//! (`STATE/container-cpu.json`), and flags privilege, host namespaces, engine
//! sockets, sensitive mounts, ports published past the firewall, old images,
//! restart loops and, with trivy installed, known vulnerabilities. Container
//! environments are never read into the facts: they hold passwords.

mod cpu;
mod engine;
mod judge;
pub mod pass;
mod reference;
mod trivy;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::broker::{Fact, FactAnswer};
use crate::finding::{Category, Finding, Severity};
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};
pub use cpu::{Allowance, History, STATE_FILE, Sample, cpuset_count};
pub use engine::{ConnectError, Endpoint, classify_io, parse_endpoint};
pub use pass::EnginePass;
pub use reference::{ImageRef, Provenance, is_image_id};
pub use trivy::{ScanSummary, parse_report};

const TOOL: &str = "docker_containers";

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
        let mut facts = DockerFacts { cpu_sample_seconds: pass::window(ctx).as_secs_f64(), ..Default::default() };
        let t0 = std::time::Instant::now();
        let scanner = if input.skip_image_scan {
            Scanner::Skipped
        } else if !ctx.host.is_live() {
            Scanner::NotLive
        } else if ctx.host.which("trivy").is_some() {
            Scanner::Trivy
        } else {
            Scanner::Missing
        };
        let scan = scanner == Scanner::Trivy;
        // In the confined worker the parent runs the engine pass (the socket is root-only and
        // the worker has no network); anywhere else this process does, exporting into a
        // temporary directory of its own.
        let fact = Fact::Docker { container: input.container.clone(), export_images: scan };
        let mut own_exports = None;
        let pass = match ctx.host.ask_parent_async(fact).await {
            Some(Ok(FactAnswer::Docker { pass })) => serde_json::from_value::<EnginePass>(pass)
                .map_err(|e| ToolError::Failed(format!("the parent's engine pass is unreadable: {e}")))?,
            Some(Ok(other)) => {
                return Err(ToolError::Failed(format!("the parent answered the engine pass with {other:?}")));
            }
            Some(Err(e)) => {
                facts.image_scanner = "skipped".into();
                let f = Finding::could_not_check(
                    Category::Containers,
                    TOOL,
                    "the container engine",
                    format!("the parent could not query the engine: {e:?}"),
                )
                .fix("Run the review again; if it persists, `vigil -vv review` shows why the engine pass failed.");
                return Ok(Outcome::new(facts, vec![f]));
            }
            None => {
                let dir = if scan { Some(own_export_dir(ctx)?) } else { None };
                let opened = match &dir {
                    Some(d) => Some(
                        pass::ExportDir::open(d.path())
                            .map_err(|e| ToolError::Failed(format!("cannot open the image export directory: {e}")))?,
                    ),
                    None => None,
                };
                let p = pass::run(ctx, input.container.as_deref(), scan, opened.as_ref()).await;
                own_exports = dir;
                p
            }
        };
        let (endpoint, obs, exports, trivy_cache) = match pass {
            EnginePass::Unresolved { why } => {
                facts.image_scanner = "skipped".into();
                let f = Finding::could_not_check(Category::Containers, TOOL, "the container engine", why).fix(
                    "Set [docker] docker_host (or DOCKER_HOST) to unix:///path/to/docker.sock or tcp://host:port.",
                );
                return Ok(Outcome::new(facts, vec![f]));
            }
            EnginePass::Unreachable { endpoint, error } => {
                facts.image_scanner = "skipped".into();
                return Ok(Outcome::new(facts, vec![connect_finding(&endpoint, error)]));
            }
            EnginePass::Unread { endpoint, why } => {
                facts.image_scanner = "skipped".into();
                let f = Finding::could_not_check(
                    Category::Containers,
                    TOOL,
                    "containers",
                    format!("{endpoint}: {why}"),
                )
                .fix(
                    "Check the engine answers (`docker ps -a`); until it does, containers on this host are unreviewed.",
                );
                return Ok(Outcome::new(facts, vec![f]));
            }
            EnginePass::Observed { endpoint, observed, exports, trivy_cache } => {
                (endpoint, observed, exports, trivy_cache)
            }
        };
        tracing::debug!(elapsed = ?t0.elapsed(), "docker_containers: engine pass");
        if let Some(name) = &input.container {
            if obs.containers.is_empty() {
                return Err(ToolError::Failed(format!(
                    "no container named `{name}` on {endpoint}; call docker_containers without `container` to list them"
                )));
            }
        }
        let scans = if scan { scan_exports(ctx, exports, trivy_cache).await } else { HashMap::new() };
        drop(own_exports);
        tracing::debug!(elapsed = ?t0.elapsed(), "docker_containers: scanned");
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

/// A temporary directory for the images this process exports itself (unconfined).
fn own_export_dir(ctx: &Ctx) -> Result<tempfile::TempDir, ToolError> {
    let mut b = tempfile::Builder::new();
    b.prefix("vigil-images.");
    match &ctx.scratch_dir {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .map_err(|e| ToolError::Failed(format!("cannot create a directory for image exports: {e}")))
}

/// Scan every exported image with trivy, [`pass::EXPORT_CONCURRENCY`] at once: by image id,
/// the summary or why not (an export that failed or hit its size limit included).
async fn scan_exports(
    ctx: &Ctx,
    exports: Vec<pass::Export>,
    cache: Option<std::path::PathBuf>,
) -> HashMap<String, Result<ScanSummary, String>> {
    let timeout = Duration::from_secs(ctx.config.docker.trivy_timeout_seconds.max(1));
    let place = match (cache, &ctx.scratch_dir) {
        (None, _) => Err("the parent names no trivy cache directory (no home directory)".to_string()),
        (Some(c), Some(scratch)) => {
            let (c, scratch) = (c.clone(), scratch.clone());
            tokio::task::spawn_blocking(move || trivy::Place::scratch(&c, &scratch))
                .await
                .unwrap_or_else(|e| Err(format!("copying trivy's database stopped: {e}")))
        }
        (Some(c), None) => Ok(trivy::Place::own(c)),
    };
    let place = &place;
    futures::stream::iter(exports)
        .map(|e| async move {
            let r = match (e.file, place) {
                (Err(why), _) => Err(why),
                (Ok(_), Err(why)) => Err(why.clone()),
                (Ok(file), Ok(place)) => trivy::scan(&ctx.host, &file, place, timeout).await,
            };
            (e.image_id, r)
        })
        .buffer_unordered(pass::EXPORT_CONCURRENCY)
        .collect()
        .await
}

/// The finding for an engine we could not reach.
fn connect_finding(ep: &str, e: ConnectError) -> Finding {
    match e {
        ConnectError::Absent(why) => Finding::new("containers.no-engine", Severity::Info, Category::Containers, ep, "No Docker engine on this host")
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
