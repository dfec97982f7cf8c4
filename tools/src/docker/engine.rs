//! Talking to the engine: where it is, whether we may reach it, and one
//! concurrent pass over its containers, images and CPU counters.
//!
//! Everything bollard returns is turned into the small `Observed` snapshot
//! the judgement works on, so the rules are tested without an engine. Env
//! variables of containers are never read into it (they hold passwords).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, ContainerSummary, ImageSummary};
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions, StatsOptions};
use bollard::{ClientVersion, Docker};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::tool::Ctx;

/// Per-request timeout given to bollard, in seconds.
const REQUEST_TIMEOUT_SECS: u64 = 5;
/// Requests in flight at once.
const CONCURRENCY: usize = 16;

/// Where the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket (real path on this machine).
    Unix {
        /// Real path of the socket.
        path: PathBuf,
        /// As shown to the user (`unix:///var/run/docker.sock`).
        shown: String,
        /// True when it is the audited root's default socket.
        default: bool,
    },
    /// Plain HTTP over TCP (`tcp://host:2375`).
    Tcp {
        /// `tcp://host:port`.
        url: String,
    },
}

impl Endpoint {
    /// As shown in facts and findings.
    pub fn shown(&self) -> String {
        match self {
            Endpoint::Unix { shown, .. } => shown.clone(),
            Endpoint::Tcp { url } => url.clone(),
        }
    }
}

/// Parse a `DOCKER_HOST`-style value.
pub fn parse_endpoint(value: &str) -> Result<Endpoint, String> {
    let v = value.trim();
    if let Some(p) = v.strip_prefix("unix://") {
        return Ok(Endpoint::Unix { path: PathBuf::from(p), shown: v.to_string(), default: false });
    }
    if v.starts_with('/') {
        return Ok(Endpoint::Unix { path: PathBuf::from(v), shown: format!("unix://{v}"), default: false });
    }
    if let Some(rest) = v.strip_prefix("tcp://").or_else(|| v.strip_prefix("http://")) {
        if rest.is_empty() {
            return Err(format!("`{v}` names no host"));
        }
        return Ok(Endpoint::Tcp { url: format!("tcp://{}", rest.trim_end_matches('/')) });
    }
    Err(format!(
        "`{v}`: only unix:///path and tcp://host:port (plain HTTP) engines are supported; \
         for TLS or ssh engines, run vigil on the engine's host against its unix socket"
    ))
}

/// The engine to talk to: `[docker] docker_host`, else `DOCKER_HOST` (live root
/// only: on another root it would describe this machine), else
/// `ROOT/var/run/docker.sock`.
pub fn resolve(ctx: &Ctx) -> Result<Endpoint, String> {
    if let Some(h) = ctx.config.docker.docker_host.as_deref().filter(|h| !h.trim().is_empty()) {
        return parse_endpoint(h);
    }
    if ctx.host.is_live() {
        if let Ok(h) = std::env::var("DOCKER_HOST") {
            if !h.trim().is_empty() {
                let e = parse_endpoint(&h)?;
                if matches!(e, Endpoint::Tcp { .. })
                    && std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty())
                {
                    return Err(format!(
                        "DOCKER_HOST={h} with DOCKER_TLS_VERIFY: vigil talks plain HTTP only; run it on the engine's host against its unix socket"
                    ));
                }
                return Ok(e);
            }
        }
    }
    let path = ctx.host.path("/var/run/docker.sock").map_err(|e| e.to_string())?;
    Ok(Endpoint::Unix { path, shown: "unix:///var/run/docker.sock".into(), default: true })
}

/// Why the engine could not be reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "why")]
pub enum ConnectError {
    /// Nothing there: no socket, or nothing listening on it.
    Absent(String),
    /// The socket exists but we may not open it.
    Denied(String),
    /// Anything else (timeout, protocol error, bad answer).
    Failed(String),
}

/// Check the socket quickly before bollard: tells "absent" from "denied",
/// and reads the engine's API version from `/_ping`'s `Api-Version` header
/// (as the docker CLI negotiates), when it answers one.
pub async fn preflight(ep: &Endpoint) -> Result<Option<ClientVersion>, ConnectError> {
    let Endpoint::Unix { path, shown, .. } = ep else {
        return Ok(None);
    };
    let limit = Duration::from_secs(2);
    let stream = match tokio::time::timeout(limit, tokio::net::UnixStream::connect(path)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(classify_io(shown, &e)),
        Err(_) => return Err(ConnectError::Failed(format!("{shown}: no answer within 2 s"))),
    };
    Ok(tokio::time::timeout(limit, ping(stream)).await.ok().flatten())
}

/// `GET /_ping` on an open connection; the `Api-Version` header, if any.
async fn ping(mut stream: tokio::net::UnixStream) -> Option<ClientVersion> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16_384 {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    ping_api_version(&String::from_utf8_lossy(&buf))
}

/// The `Api-Version` header of an HTTP response head.
pub fn ping_api_version(head: &str) -> Option<ClientVersion> {
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    head.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("api-version"))
        .and_then(|(_, v)| parse_api_version(v))
}

/// Map a socket error to absent / denied / failed.
pub fn classify_io(shown: &str, e: &std::io::Error) -> ConnectError {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => ConnectError::Absent(format!("{shown}: no such socket")),
        ConnectionRefused => {
            ConnectError::Absent(format!("{shown}: the socket exists but nothing answers (engine stopped)"))
        }
        PermissionDenied => ConnectError::Denied(format!("{shown}: permission denied")),
        _ => ConnectError::Failed(format!("{shown}: {e}")),
    }
}

fn make_client(ep: &Endpoint, version: &ClientVersion) -> Result<Docker, ConnectError> {
    match ep {
        Endpoint::Unix { path, .. } => {
            Docker::connect_with_unix(&path.to_string_lossy(), REQUEST_TIMEOUT_SECS, version)
        }
        Endpoint::Tcp { url } => Docker::connect_with_http(url, REQUEST_TIMEOUT_SECS, version),
    }
    .map_err(|e| ConnectError::Failed(format!("{}: {e}", ep.shown())))
}

/// `1.47` → a client version.
pub fn parse_api_version(s: &str) -> Option<ClientVersion> {
    let (major, minor) = s.trim().split_once('.')?;
    Some(ClientVersion { major_version: major.parse().ok()?, minor_version: minor.parse().ok()? })
}

/// Connect and negotiate the API version: the engine's version comes from
/// `/_ping` (cheap), else from `/version`; the client then speaks the lower of
/// it and bollard's own, as `Docker::negotiate_version` does. `/version` itself
/// is then read alongside the rest (podman answers it slowly: it runs its
/// helpers to report their versions).
pub async fn connect(ep: &Endpoint) -> Result<Docker, ConnectError> {
    let pinged = preflight(ep).await?;
    let server = match pinged {
        Some(v) => v,
        None => {
            let probe = make_client(ep, bollard::API_DEFAULT_VERSION)?;
            let version = match tokio::time::timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS), probe.version()).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(ConnectError::Failed(format!("{}: /version failed: {e}", ep.shown()))),
                Err(_) => {
                    return Err(ConnectError::Failed(format!(
                        "{}: no answer within {REQUEST_TIMEOUT_SECS} s",
                        ep.shown()
                    )));
                }
            };
            version.api_version.as_deref().and_then(parse_api_version).ok_or_else(|| {
                ConnectError::Failed(format!(
                    "{}: the engine reports no usable API version ({:?})",
                    ep.shown(),
                    version.api_version
                ))
            })?
        }
    };
    let negotiated = if &server < bollard::API_DEFAULT_VERSION { server } else { *bollard::API_DEFAULT_VERSION };
    make_client(ep, &negotiated)
}

/// The engine, as facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineObs {
    /// Endpoint as shown.
    pub endpoint: String,
    /// `Docker Engine - Community`, `Podman Engine`…
    pub name: String,
    /// Engine version.
    pub version: String,
    /// Negotiated API version.
    pub api_version: String,
    /// Host cores the engine reports.
    pub host_cores: f64,
    /// Rootless engine or user-namespace remapping: root in a container is not root on the host.
    pub userns: bool,
}

/// A bind or volume mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountObs {
    /// `bind`, `volume`, `tmpfs`…
    pub kind: String,
    /// Host path (binds) or volume path.
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    /// Writable.
    pub rw: bool,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortObs {
    /// Host address (`0.0.0.0`, `::`, `127.0.0.1`; empty means all interfaces).
    pub ip: String,
    /// Host port.
    pub public: u16,
    /// Container port.
    pub private: u16,
    /// `tcp` / `udp` / `sctp`.
    pub proto: String,
}

impl PortObs {
    /// True when reachable on every interface.
    pub fn all_interfaces(&self) -> bool {
        matches!(self.ip.as_str(), "" | "0.0.0.0" | "::" | "[::]")
    }

    /// `0.0.0.0:8080->80/tcp`.
    pub fn describe(&self) -> String {
        let ip = if self.ip.is_empty() { "0.0.0.0" } else { self.ip.as_str() };
        let ip = if ip.contains(':') && !ip.starts_with('[') { format!("[{ip}]") } else { ip.to_string() };
        format!("{ip}:{}->{}/{}", self.public, self.private, self.proto)
    }
}

/// One CPU counter read.
#[derive(Debug, Clone, Copy)]
pub struct CpuRead {
    /// Total CPU time used since start, ns.
    pub total_ns: u64,
    /// The engine's timestamp of the read (Unix seconds, fractional).
    pub read_at: Option<f64>,
    /// Our clock at the read.
    pub instant: Instant,
    /// Host cores the engine saw.
    pub online_cpus: Option<u32>,
}

/// One container, as the judgement needs it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerObs {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// The image as configured (`nginx:1.27`, an id…).
    pub image: String,
    /// Image id (`sha256:…`).
    pub image_id: String,
    /// `running`, `exited`, `restarting`…
    pub state: String,
    /// Restarting right now.
    pub restarting: bool,
    /// Restarts by the engine.
    pub restart_count: i64,
    /// Start time (Unix seconds) of a running container.
    pub started_at: Option<f64>,
    /// `Config.User`.
    pub user: String,
    /// `--privileged`.
    pub privileged: bool,
    /// `NetworkMode`.
    pub network_mode: String,
    /// `PidMode`.
    pub pid_mode: String,
    /// `UsernsMode`.
    pub userns_mode: String,
    /// `NanoCpus`.
    pub nano_cpus: i64,
    /// `CpuQuota`.
    pub cpu_quota: i64,
    /// `CpuPeriod`.
    pub cpu_period: i64,
    /// `CpusetCpus`.
    pub cpuset: String,
    /// `Memory` limit in bytes (0 = none).
    pub memory: i64,
    /// Mounts.
    pub mounts: Vec<MountObs>,
    /// Published ports.
    pub ports: Vec<PortObs>,
    /// CPU busy cores over the sampling window.
    pub sample_cores: Option<f64>,
    /// Length of the sampling window, seconds.
    pub sample_secs: Option<f64>,
    /// Total CPU time since start (ns) and the engine's time of that read.
    pub cpu_total: Option<(u64, Option<f64>)>,
    /// Host cores seen in the stats.
    pub online_cpus: Option<u32>,
    /// Why part of this container could not be read.
    pub errors: Vec<String>,
}

impl ContainerObs {
    /// Running (or restarting): uses CPU and exposes ports now.
    pub fn is_active(&self) -> bool {
        self.state == "running" || self.restarting || self.state == "restarting"
    }
}

/// One image.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageObs {
    /// `sha256:…`.
    pub id: String,
    /// Tags.
    pub repo_tags: Vec<String>,
    /// Digests (`name@sha256:…`).
    pub repo_digests: Vec<String>,
    /// Created, Unix seconds.
    pub created: i64,
}

/// Everything read from the engine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observed {
    /// The engine.
    pub engine: EngineObs,
    /// Containers (filtered when asked).
    pub containers: Vec<ContainerObs>,
    /// Images.
    pub images: Vec<ImageObs>,
    /// Engine-wide read errors (listing images…).
    pub errors: Vec<String>,
}

/// Parse an RFC 3339 engine timestamp into fractional Unix seconds (`None` for Go's zero time).
pub fn parse_time(s: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    let secs = t.unix_timestamp();
    if secs <= 0 {
        return None;
    }
    Some(secs as f64 + f64::from(t.nanosecond()) / 1e9)
}

fn cpu_read(s: &ContainerStatsResponse) -> Option<CpuRead> {
    let cpu = s.cpu_stats.as_ref()?;
    let total = cpu.cpu_usage.as_ref()?.total_usage?;
    let online = cpu
        .online_cpus
        .filter(|n| *n > 0)
        .or_else(|| cpu.cpu_usage.as_ref()?.percpu_usage.as_ref().map(|v| v.len() as u32).filter(|n| *n > 0));
    Some(CpuRead {
        total_ns: total,
        read_at: s.read.as_deref().and_then(parse_time),
        instant: Instant::now(),
        online_cpus: online,
    })
}

async fn read_stats(docker: &Docker, id: &str) -> Result<CpuRead, String> {
    let opts = StatsOptions { stream: false, one_shot: true };
    let mut stream = docker.stats(id, Some(opts));
    match stream.next().await {
        Some(Ok(s)) => cpu_read(&s).ok_or_else(|| "the stats carry no CPU counters".to_string()),
        Some(Err(e)) => Err(format!("stats: {e}")),
        None => Err("stats: empty answer".into()),
    }
}

/// Busy cores between two reads of the same container.
pub fn cores_between(a: &CpuRead, b: &CpuRead) -> Option<(f64, f64)> {
    let secs = match (a.read_at, b.read_at) {
        (Some(x), Some(y)) if y - x > 0.05 => y - x,
        _ => b.instant.duration_since(a.instant).as_secs_f64(),
    };
    if secs <= 0.0 || b.total_ns < a.total_ns {
        return None;
    }
    Some(((b.total_ns - a.total_ns) as f64 / 1e9 / secs, secs))
}

fn from_inspect(summary: &ContainerSummary, i: ContainerInspectResponse) -> ContainerObs {
    let hc = i.host_config.unwrap_or_default();
    let cfg = i.config.unwrap_or_default();
    let st = i.state.unwrap_or_default();
    let state = st
        .status
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| summary.state.map(|s| s.to_string()))
        .unwrap_or_default();
    let running = st.running.unwrap_or(false) || state == "running";
    let mounts = i
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| MountObs {
            kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
            source: m.source.unwrap_or_default(),
            destination: m.destination.unwrap_or_default(),
            rw: m.rw.unwrap_or(true),
        })
        .collect();
    let mut ports: Vec<PortObs> = summary
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            Some(PortObs {
                ip: p.ip.unwrap_or_default(),
                public: p.public_port.filter(|p| *p != 0)?,
                private: p.private_port,
                proto: p.typ.map(|t| t.to_string()).filter(|t| !t.is_empty()).unwrap_or_else(|| "tcp".into()),
            })
        })
        .collect();
    if ports.is_empty() && running {
        // Some engines leave the summary empty; the bindings say the same.
        let bound = i.network_settings.as_ref().and_then(|n| n.ports.clone()).or(hc.port_bindings.clone());
        for (key, bindings) in bound.unwrap_or_default() {
            let (private, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            for b in bindings.unwrap_or_default() {
                if let (Ok(private), Some(Ok(public))) =
                    (private.parse(), b.host_port.as_deref().map(str::parse::<u16>))
                {
                    ports.push(PortObs {
                        ip: b.host_ip.unwrap_or_default(),
                        public,
                        private,
                        proto: proto.to_string(),
                    });
                }
            }
        }
    }
    ports.sort_by(|a, b| (a.public, &a.proto, &a.ip).cmp(&(b.public, &b.proto, &b.ip)));
    ports.dedup();
    ContainerObs {
        id: i.id.or_else(|| summary.id.clone()).unwrap_or_default(),
        name: i
            .name
            .or_else(|| summary.names.as_ref().and_then(|n| n.first().cloned()))
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: cfg.image.filter(|s| !s.is_empty()).or_else(|| summary.image.clone()).unwrap_or_default(),
        image_id: i.image.or_else(|| summary.image_id.clone()).unwrap_or_default(),
        restarting: st.restarting.unwrap_or(false),
        restart_count: i.restart_count.unwrap_or(0),
        started_at: if running { st.started_at.as_deref().and_then(parse_time) } else { None },
        user: cfg.user.unwrap_or_default(),
        privileged: hc.privileged.unwrap_or(false),
        network_mode: hc.network_mode.unwrap_or_default(),
        pid_mode: hc.pid_mode.unwrap_or_default(),
        userns_mode: hc.userns_mode.unwrap_or_default(),
        nano_cpus: hc.nano_cpus.unwrap_or(0),
        cpu_quota: hc.cpu_quota.unwrap_or(0),
        cpu_period: hc.cpu_period.unwrap_or(0),
        cpuset: hc.cpuset_cpus.unwrap_or_default(),
        memory: hc.memory.unwrap_or(0),
        state,
        mounts,
        ports,
        ..Default::default()
    }
}

fn from_summary_only(s: &ContainerSummary, why: String) -> ContainerObs {
    ContainerObs {
        id: s.id.clone().unwrap_or_default(),
        name: s.names.as_ref().and_then(|n| n.first().cloned()).unwrap_or_default().trim_start_matches('/').to_string(),
        image: s.image.clone().unwrap_or_default(),
        image_id: s.image_id.clone().unwrap_or_default(),
        state: s.state.map(|s| s.to_string()).unwrap_or_default(),
        errors: vec![why],
        ..Default::default()
    }
}

fn image_obs(i: ImageSummary) -> ImageObs {
    ImageObs { id: i.id, repo_tags: i.repo_tags, repo_digests: i.repo_digests, created: i.created }
}

/// First pass: engine facts, every container inspected and its CPU counter
/// read once, all concurrently. `only` restricts to one container (name or id prefix).
pub async fn observe(
    docker: &Docker,
    ep: &Endpoint,
    only: Option<&str>,
) -> Result<(Observed, HashMap<String, CpuRead>), String> {
    let mut obs = Observed::default();
    let v = docker.client_version();
    obs.engine.endpoint = ep.shown();
    obs.engine.api_version = format!("{}.{}", v.major_version, v.minor_version);

    // /version and /info (slow on podman) run alongside the container pass.
    let pass = async {
        let list_opts = ListContainersOptions { all: true, ..Default::default() };
        let img_opts = ListImagesOptions { all: false, ..Default::default() };
        let (containers, images) =
            tokio::join!(docker.list_containers(Some(list_opts)), docker.list_images(Some(img_opts)));
        let containers = containers.map_err(|e| format!("listing containers: {e}"))?;
        let wanted: Vec<ContainerSummary> = containers
            .into_iter()
            .filter(|c| {
                only.is_none_or(|n| {
                    c.names.as_ref().is_some_and(|names| names.iter().any(|x| x.trim_start_matches('/') == n))
                        || c.id.as_deref().is_some_and(|id| id.starts_with(n) && n.len() >= 6)
                })
            })
            .collect();
        let first: Vec<(ContainerObs, Option<CpuRead>)> = futures::stream::iter(wanted)
            .map(|s| async move {
                let id = s.id.clone().unwrap_or_default();
                let running = s.state.map(|st| st.to_string()).as_deref() == Some("running");
                let (inspect, stats) = tokio::join!(docker.inspect_container(&id, None), async {
                    if running { Some(read_stats(docker, &id).await) } else { None }
                });
                let mut c = match inspect {
                    Ok(i) => from_inspect(&s, i),
                    Err(e) => from_summary_only(&s, format!("inspect: {e}")),
                };
                let read = match stats {
                    Some(Ok(r)) => {
                        c.online_cpus = r.online_cpus;
                        c.cpu_total = Some((r.total_ns, r.read_at));
                        Some(r)
                    }
                    Some(Err(e)) => {
                        c.errors.push(e);
                        None
                    }
                    None => None,
                };
                (c, read)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        Ok::<_, String>((first, images))
    };
    let (version, info, pass) = tokio::join!(docker.version(), docker.info(), pass);
    let (first, images) = pass?;
    if let Ok(version) = &version {
        obs.engine.version = version.version.clone().unwrap_or_default();
        // Docker: Platform.Name "Docker Engine - Community"; podman: Platform.Name
        // "linux/amd64/debian-12" and the first component "Podman Engine".
        obs.engine.name = version
            .platform
            .as_ref()
            .map(|p| p.name.clone())
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .or_else(|| version.components.as_ref().and_then(|c| c.first()).map(|c| c.name.clone()))
            .unwrap_or_default();
    }
    if let Ok(info) = &info {
        obs.engine.host_cores = info.ncpu.unwrap_or(0) as f64;
        obs.engine.userns = info
            .security_options
            .as_ref()
            .is_some_and(|o| o.iter().any(|s| s.contains("name=userns") || s.contains("name=rootless")));
    }
    match images {
        Ok(list) => obs.images = list.into_iter().map(image_obs).collect(),
        Err(e) => obs.errors.push(format!("listing images: {e}")),
    }
    let mut reads = HashMap::new();
    for (c, r) in first {
        if let Some(r) = r {
            reads.insert(c.id.clone(), r);
        }
        obs.containers.push(c);
    }
    obs.containers.sort_by(|a, b| a.name.cmp(&b.name));
    if obs.engine.host_cores <= 0.0 {
        obs.engine.host_cores = obs.containers.iter().filter_map(|c| c.online_cpus).max().map_or(0.0, f64::from);
    }
    Ok((obs, reads))
}

/// Second pass: one sampling window for every container read in the first
/// pass, then every counter read again at once.
pub async fn sample(docker: &Docker, obs: &mut Observed, first: &HashMap<String, CpuRead>, window: Duration) {
    if window.is_zero() || first.is_empty() {
        return;
    }
    tokio::time::sleep(window).await;
    let second: Vec<(String, Result<CpuRead, String>)> = futures::stream::iter(first.keys().cloned())
        .map(|id| async move {
            let r = read_stats(docker, &id).await;
            (id, r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (id, r) in second {
        let Some(c) = obs.containers.iter_mut().find(|c| c.id == id) else {
            continue;
        };
        match (r, first.get(&id)) {
            (Ok(b), Some(a)) => {
                c.cpu_total = Some((b.total_ns, b.read_at));
                if let Some((cores, secs)) = cores_between(a, &b) {
                    c.sample_cores = Some(cores);
                    c.sample_secs = Some(secs);
                }
            }
            (Err(e), _) => c.errors.push(e),
            _ => {}
        }
    }
}
