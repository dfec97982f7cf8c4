//! The rules: from an `Observed` snapshot (and the CPU history) to compact
//! facts and findings. Pure, so every rule is tested without an engine.

use std::collections::{BTreeMap, HashMap};

use super::cpu::{Allowance, History, Sample, round1, trim_float};
use super::engine::{ContainerObs, ImageObs, MountObs, Observed};
use super::reference::{ImageRef, Provenance};
use super::trivy::ScanSummary;
use super::{ContainerFacts, EngineFacts, ImageFacts, Scanner};
use crate::config::{DockerConfig, PortsConfig};
use crate::finding::{Category, Finding, Severity};
use crate::format::{human_bytes, unix_date};

const TOOL: &str = "docker_containers";
/// Images older than this are flagged.
pub const OLD_IMAGE_DAYS: i64 = 180;
/// A container restarted this often by the engine is looping.
pub const RESTART_LOOP: i64 = 5;
/// The running average only counts once a container has been up this long.
pub const MIN_UPTIME_FOR_AVERAGE: f64 = 600.0;

/// Host paths that give a container the host when mounted exactly.
const SENSITIVE_EXACT: &[&str] =
    &["/", "/etc", "/home", "/var", "/var/run", "/run", "/dev", "/usr", "/lib", "/var/lib", "/bin", "/sbin"];
/// Host paths that are sensitive with everything below them.
const SENSITIVE_TREE: &[&str] = &[
    "/root",
    "/etc/ssh",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/pam.d",
    "/etc/systemd",
    "/etc/cron.d",
    "/proc",
    "/sys",
    "/boot",
    "/var/lib/docker",
    "/var/lib/containers",
];
/// Engine sockets: mounting one hands the container the engine, i.e. root on the host.
const ENGINE_SOCKETS: &[&str] = &["docker.sock", "podman.sock", "containerd.sock", "crio.sock"];

/// What the judgement needs besides the snapshot.
pub struct Context<'a> {
    /// `[docker]`.
    pub cfg: &'a DockerConfig,
    /// "now", Unix seconds.
    pub now: i64,
    /// CPU history before this review.
    pub history: &'a History,
    /// Scan results by image id.
    pub scans: &'a HashMap<String, Result<ScanSummary, String>>,
    /// Whether images were scanned.
    pub scanner: Scanner,
    /// The port ledger (`[[ports.allowed]]`).
    pub ports: &'a PortsConfig,
}

/// Facts, findings, and the CPU samples to record (container id, name, sample).
pub struct Judged {
    /// Engine facts.
    pub engine: EngineFacts,
    /// Container facts.
    pub containers: Vec<ContainerFacts>,
    /// Image facts.
    pub images: Vec<ImageFacts>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Samples to keep.
    pub samples: Vec<(String, String, Sample)>,
}

/// The name a container's image goes by, resolved through the image list when
/// the container was started from a bare id.
pub fn image_ref_of(c: &ContainerObs, images: &[ImageObs]) -> Option<ImageRef> {
    if let Some(r) = ImageRef::parse(&c.image) {
        return Some(r);
    }
    let id = if c.image_id.is_empty() { c.image.as_str() } else { c.image_id.as_str() };
    let img = find_image(images, id)?;
    img.repo_tags.iter().filter(|t| !t.starts_with("<none>")).find_map(|t| ImageRef::parse(t))
}

fn find_image<'a>(images: &'a [ImageObs], id: &str) -> Option<&'a ImageObs> {
    let bare = |s: &str| s.strip_prefix("sha256:").unwrap_or(s).to_string();
    let want = bare(id);
    if want.len() < 12 {
        return None;
    }
    images.iter().find(|i| bare(&i.id).starts_with(&want))
}

fn short_id(id: &str) -> String {
    id.strip_prefix("sha256:").unwrap_or(id).chars().take(12).collect()
}

fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s >= 2.0 * 86_400.0 {
        format!("{:.1} days", s / 86_400.0)
    } else if s >= 2.0 * 3600.0 {
        format!("{:.1} hours", s / 3600.0)
    } else if s >= 120.0 {
        format!("{:.0} minutes", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

fn is_root_user(user: &str) -> bool {
    let u = user.split(':').next().unwrap_or("").trim();
    u.is_empty() || u == "0" || u == "root"
}

fn is_engine_socket(m: &MountObs) -> bool {
    [&m.source, &m.destination].iter().any(|p| ENGINE_SOCKETS.iter().any(|s| p.rsplit('/').next() == Some(*s)))
}

fn is_sensitive(source: &str) -> bool {
    let s = source.trim_end_matches('/');
    let s = if s.is_empty() { "/" } else { s };
    SENSITIVE_EXACT.contains(&s) || SENSITIVE_TREE.iter().any(|t| s == *t || s.starts_with(&format!("{t}/")))
}

/// Apply every rule.
pub fn judge(obs: &Observed, cx: &Context<'_>) -> Judged {
    let cfg = cx.cfg;
    let threshold = if cfg.cpu_full_percent > 0.0 { cfg.cpu_full_percent } else { 90.0 };
    let mut findings = Vec::new();
    let mut samples = Vec::new();
    let mut containers = Vec::new();
    // Image repository → (provenance, ref, containers using it).
    let mut by_repo: BTreeMap<String, (Provenance, ImageRef, Vec<String>)> = BTreeMap::new();
    let mut unnamed: Vec<String> = Vec::new();
    let mut published: BTreeMap<(String, u16), Vec<String>> = BTreeMap::new();
    let mut errors: Vec<String> = obs.errors.clone();

    for c in &obs.containers {
        let subject = format!("container:{}", c.name);
        let r = image_ref_of(c, &obs.images);
        let prov = r.as_ref().map_or(Provenance::ThirdParty, |r| r.provenance(&cfg.verified_publishers));
        let image_shown =
            r.as_ref().map_or_else(|| format!("unnamed image {}", short_id(&c.image)), ImageRef::normalized);
        match &r {
            Some(r) => {
                by_repo.entry(r.repository()).or_insert_with(|| (prov, r.clone(), Vec::new())).2.push(c.name.clone())
            }
            None => unnamed.push(format!("{} (image {})", c.name, short_id(&c.image))),
        }
        for e in &c.errors {
            errors.push(format!("{}: {e}", c.name));
        }
        let active = c.is_active();
        let state_note = if active {
            String::new()
        } else {
            format!(" (container is {}, but keeps this setting when started)", c.state)
        };
        let mut flags = Vec::new();

        // Privilege and exposure.
        let socket_mounts: Vec<&MountObs> =
            c.mounts.iter().filter(|m| (m.kind.is_empty() || m.kind == "bind") && is_engine_socket(m)).collect();
        let sensitive: Vec<&MountObs> = c
            .mounts
            .iter()
            .filter(|m| (m.kind.is_empty() || m.kind == "bind") && !is_engine_socket(m) && is_sensitive(&m.source))
            .collect();
        let host_net = c.network_mode == "host";
        let host_pid = c.pid_mode == "host";
        if c.privileged {
            flags.push("privileged".to_string());
            findings.push(
                Finding::new("containers.privileged", Severity::Critical, Category::Containers, &subject, format!("Container {} runs privileged", c.name))
                    .evidence(format!("HostConfig.Privileged = true: every capability and every host device; escaping to the host is trivial{state_note}"))
                    .evidence(format!("image {image_shown}"))
                    .fix(format!("Recreate {} without --privileged (privileged: false in compose), adding only the capabilities it really needs (--cap-add …) and the devices it needs (--device …).", c.name)),
            );
        }
        if !socket_mounts.is_empty() {
            flags.push("engine-socket".to_string());
            let mut f = Finding::new(
                "containers.docker-socket",
                Severity::Critical,
                Category::Containers,
                &subject,
                format!("Container {} has the container engine's socket mounted", c.name),
            );
            for m in &socket_mounts {
                f = f.evidence(format!("{} mounted at {}{}: whoever controls this container controls the engine, i.e. is root on the host{state_note}", m.source, m.destination, if m.rw { "" } else { " (read-only does not help: the API still works)" }));
            }
            findings.push(f.evidence(format!("image {image_shown}")).fix(format!(
                "Remove the socket mount from {}; if it needs to watch containers, give it a filtering socket proxy (e.g. tecnativa/docker-socket-proxy with only the endpoints it needs).",
                c.name
            )));
        }
        if host_net {
            flags.push("host-network".to_string());
            findings.push(
                Finding::new("containers.host-network", Severity::High, Category::Containers, &subject, format!("Container {} shares the host's network namespace", c.name))
                    .evidence(format!("NetworkMode = host: it can bind any host port and reach every host-local service (127.0.0.1 databases, admin APIs){state_note}"))
                    .fix(format!("Recreate {} on a bridge network and publish only the ports it serves, bound to 127.0.0.1 behind the reverse proxy.", c.name)),
            );
        }
        if host_pid {
            flags.push("host-pid".to_string());
            findings.push(
                Finding::new(
                    "containers.host-pid",
                    Severity::High,
                    Category::Containers,
                    &subject,
                    format!("Container {} shares the host's process namespace", c.name),
                )
                .evidence(format!(
                    "PidMode = host: it sees every host process and their command lines (and their secrets){state_note}"
                ))
                .fix(format!("Recreate {} without --pid=host.", c.name)),
            );
        }
        if !sensitive.is_empty() {
            flags.push("sensitive-mount".to_string());
            let mut f = Finding::new(
                "containers.sensitive-mount",
                Severity::High,
                Category::Containers,
                &subject,
                format!("Container {} mounts sensitive host paths", c.name),
            );
            for m in &sensitive {
                f = f.evidence(format!(
                    "host {} mounted at {} ({}){state_note}",
                    m.source,
                    m.destination,
                    if m.rw { "read-write" } else { "read-only" }
                ));
            }
            findings.push(f.fix(format!("Mount only the specific files or data directories {} needs, read-only where possible, never whole system directories.", c.name)));
        }
        let userns = obs.engine.userns || (!c.userns_mode.is_empty() && c.userns_mode != "host");
        if is_root_user(&c.user) && !userns {
            flags.push("root".to_string());
            if active {
                let risky = c.privileged || host_net || host_pid || !sensitive.is_empty() || !socket_mounts.is_empty();
                let user = if c.user.is_empty() {
                    "no User set (the image default, root)".to_string()
                } else {
                    format!("User = {}", c.user)
                };
                findings.push(
                    Finding::new("containers.runs-as-root", if risky { Severity::Medium } else { Severity::Low }, Category::Containers, &subject, format!("Container {} runs as root", c.name))
                        .evidence(format!("{user}; the engine does not remap users, so root in the container is root on the host if it escapes"))
                        .fix(format!("Run {} as an unprivileged user (--user 1000:1000, or USER in its Dockerfile), or enable userns-remap / rootless mode.", c.name)),
                );
            }
        }

        // CPU.
        let host_cores =
            if obs.engine.host_cores > 0.0 { obs.engine.host_cores } else { c.online_cpus.map_or(1.0, f64::from) };
        let allowance = Allowance::of(c.nano_cpus, c.cpu_quota, c.cpu_period, &c.cpuset, host_cores);
        let sample_pct = c.sample_cores.map(|x| allowance.percent(x));
        let avg = match (c.cpu_total, c.started_at) {
            (Some((total, read_at)), Some(started)) => {
                let at = read_at.unwrap_or(cx.now as f64);
                let up = at - started;
                (up > 1.0).then(|| (total as f64 / 1e9 / up, up))
            }
            _ => None,
        };
        if active {
            let sample_full = c.sample_cores.is_some_and(|x| allowance.is_full(x, threshold));
            let avg_full =
                avg.is_some_and(|(cores, up)| up >= MIN_UPTIME_FOR_AVERAGE && allowance.is_full(cores, threshold));
            let previous = cx.history.previous_full(&c.id, cx.now);
            if let (Some(cores), Some(pct)) = (c.sample_cores, sample_pct) {
                samples.push((
                    c.id.clone(),
                    c.name.clone(),
                    Sample { at: cx.now, pct: round1(pct), cores: (cores * 100.0).round() / 100.0, full: sample_full },
                ));
            }
            if sample_full || avg_full || !previous.is_empty() {
                let sev = if prov.is_unofficial() { Severity::Critical } else { Severity::High };
                let mut f = Finding::new(
                    "containers.sustained-cpu",
                    sev,
                    Category::Containers,
                    &subject,
                    format!("Container {}: sustained full CPU: possible cryptominer", c.name),
                );
                if let (Some(cores), Some(pct), Some(secs)) = (c.sample_cores, sample_pct, c.sample_secs) {
                    f = f.evidence(format!(
                        "now: {pct:.0}% of its allowance of {} ({cores:.2} cores busy over a {secs:.1} s sample)",
                        allowance.describe()
                    ));
                }
                if let Some((cores, up)) = avg {
                    f = f.evidence(format!(
                        "average since it started {} ago: {:.0}% of its allowance ({cores:.2} cores)",
                        human_duration(up),
                        allowance.percent(cores)
                    ));
                }
                if !previous.is_empty() {
                    let list: Vec<String> = previous
                        .iter()
                        .rev()
                        .take(5)
                        .map(|s| format!("{:.0}% on {}", s.pct, unix_date(s.at)))
                        .collect();
                    f = f.evidence(format!("pegged at previous reviews: {}", list.join(", ")));
                }
                f = f.evidence(format!("image {image_shown} ({})", provenance_word(prov)));
                findings.push(f.fix(format!(
                    "See what it runs and where it connects (`docker top {n}`, `docker logs --tail 100 {n}`); if that is not its job, stop it (`docker stop {n}`), remove it and its image, and redeploy from an official image pinned by digest. Give every container a CPU limit (`docker update --cpus 1 {n}`) so one cannot take the host.",
                    n = c.name
                )));
            }
            let no_cpu = !allowance.limited;
            let no_mem = c.memory <= 0;
            if no_cpu || no_mem {
                let mut f = Finding::new(
                    "containers.no-limits",
                    Severity::Low,
                    Category::Containers,
                    &subject,
                    format!(
                        "Container {} has no {} limit",
                        c.name,
                        match (no_cpu, no_mem) {
                            (true, true) => "CPU or memory",
                            (true, false) => "CPU",
                            _ => "memory",
                        }
                    ),
                );
                if no_cpu {
                    f = f.evidence(format!("no CPU limit: it may use all {} host cores", trim_float(host_cores)));
                }
                if no_mem {
                    f = f.evidence("no memory limit: it may exhaust the host's memory");
                }
                findings.push(f.fix(format!("Set limits: `docker update --cpus 1 --memory 512m --memory-swap 512m {}` (and cpus/mem_limit in its compose file).", c.name)));
            }
            for p in c.ports.iter().filter(|p| p.all_interfaces()) {
                published.entry((p.proto.clone(), p.public)).or_default().push(format!(
                    "container {} publishes {}",
                    c.name,
                    p.describe()
                ));
            }
        }

        // Restart loops.
        if c.restarting || c.state == "restarting" || c.restart_count >= RESTART_LOOP {
            findings.push(
                Finding::new("containers.restart-loop", Severity::Medium, Category::Containers, &subject, format!("Container {} keeps restarting", c.name))
                    .evidence(format!("state {}, restarted {} times by the engine", c.state, c.restart_count))
                    .fix(format!("See why it exits (`docker logs --tail 50 {n}`); fix it, or stop the loop (`docker update --restart=no {n}` then `docker stop {n}`).", n = c.name)),
            );
        }

        let cpu_limit = if allowance.limited { Some(trim_float(allowance.cores)) } else { None };
        let mut ports: Vec<String> = c.ports.iter().map(|p| p.describe()).collect();
        ports.dedup();
        containers.push(ContainerFacts {
            name: c.name.clone(),
            image: image_shown.clone(),
            official: prov == Provenance::Official,
            provenance: prov,
            state: c.state.clone(),
            cpu_sample_pct: sample_pct.map(round1),
            cpu_avg_pct: avg.map(|(cores, _)| round1(allowance.percent(cores))),
            cpu_limit: cpu_limit.unwrap_or_else(|| "none".into()),
            memory_limit: if c.memory > 0 { human_bytes(c.memory as u64) } else { "none".into() },
            flags,
            ports,
            restart_count: c.restart_count,
        });
    }

    // Provenance, per image repository.
    for (repo, (prov, r, users)) in &by_repo {
        let subject = format!("image:{repo}");
        let users_s = users.join(", ");
        if prov.is_unofficial() {
            findings.push(
                Finding::new("containers.unofficial-image", Severity::Medium, Category::Containers, &subject, format!("Image {} is not an official image nor from a trusted publisher", r.normalized()))
                    .evidence(format!("used by: {users_s}"))
                    .evidence(format!("only docker.io/library/* images are Docker official images; {} is published by `{}`", r.repository(), publisher_of(r)))
                    .fix(format!(
                        "Replace it with an official image (docker.io/library/…) or a verified publisher's, pinned by digest; scan it first (`trivy image {}`). If you trust this publisher, add it to verified_publishers in [docker].",
                        r.normalized()
                    )),
            );
        }
        if *prov != Provenance::Local {
            let pin = digest_of(&obs.images, repo).map_or_else(
                || {
                    format!(
                        "{repo}:TAG@sha256:… (`docker image inspect --format '{{{{.RepoDigests}}}}' {}`)",
                        r.normalized()
                    )
                },
                |d| format!("{repo}:{}@{d}", r.tag.as_deref().unwrap_or("latest")),
            );
            if r.is_latest() {
                findings.push(
                    Finding::new("containers.image-latest", Severity::Low, Category::Containers, &subject, format!("{} runs a floating `latest` tag", repo))
                        .evidence(format!("{} used by {users_s}: what runs changes silently at the next pull and cannot be reproduced", r.normalized()))
                        .fix(format!("Pin a version tag and its digest: what runs now is {pin}; better, a release tag such as `{repo}:1.2.3@sha256:…`.")),
                );
            } else if !r.is_pinned() {
                findings.push(
                    Finding::new(
                        "containers.image-unpinned",
                        Severity::Low,
                        Category::Containers,
                        &subject,
                        format!("{} is not pinned by digest", r.normalized()),
                    )
                    .evidence(format!(
                        "used by {users_s}: a tag can be moved to different content by whoever controls the repository"
                    ))
                    .fix(format!("Reference it by digest as well: {pin}.")),
                );
            }
        }
    }
    if !unnamed.is_empty() {
        findings.push(
            Finding::new(
                "containers.unofficial-image",
                Severity::Medium,
                Category::Containers,
                "image:<unnamed>",
                "Containers run from images with no name: their origin cannot be told",
            )
            .evidence(format!("containers: {}", unnamed.join(", ")))
            .fix("Recreate them from a named image (official or from a trusted publisher) pinned by digest."),
        );
    }

    // Published ports bypass the host firewall.
    for ((proto, port), ev) in &published {
        // 80/443 and friends are meant to be public.
        if crate::ports::is_standard_port(proto, *port) {
            continue;
        }
        let documented = cx
            .ports
            .allowed
            .iter()
            .find(|a| a.port == *port && a.proto.as_deref().is_none_or(|p| p.eq_ignore_ascii_case(proto)));
        let mut f = Finding::new(
            "containers.published-port",
            if documented.is_some() { Severity::Low } else { Severity::Medium },
            Category::Containers,
            format!("{proto}:{port}"),
            format!("Port {port}/{proto} is published by a container on every interface (bypasses ufw)"),
        );
        for e in ev {
            f = f.evidence(e.clone());
        }
        if let Some(a) = documented {
            f = f.evidence(format!(
                "documented in the port ledger: \"{}\" (reviewed {}); any ufw restriction on it does not apply",
                a.reason, a.reviewed
            ));
        }
        findings.push(f.evidence("Docker's NAT rules run before ufw/INPUT rules: a ufw deny does not close this port").fix(format!(
            "Publish it on 127.0.0.1 only (`-p 127.0.0.1:{port}:…`) behind the reverse proxy, or filter it in the DOCKER-USER iptables chain; document it in [[ports.allowed]] if it must be public."
        )));
    }

    // Images.
    let mut images = Vec::new();
    let mut scan_fail = Vec::new();
    for img in &obs.images {
        let users: Vec<String> = obs
            .containers
            .iter()
            .filter(|c| {
                let bare = |s: &str| s.strip_prefix("sha256:").unwrap_or(s).to_string();
                !c.image_id.is_empty() && bare(&img.id).starts_with(&bare(&c.image_id))
            })
            .map(|c| c.name.clone())
            .collect();
        let r = img.repo_tags.iter().filter(|t| !t.starts_with("<none>")).find_map(|t| ImageRef::parse(t));
        let prov = r.as_ref().map_or(Provenance::ThirdParty, |r| r.provenance(&cfg.verified_publishers));
        let reference = r.as_ref().map_or_else(|| format!("<none> {}", short_id(&img.id)), ImageRef::normalized);
        let repo = r.as_ref().map_or_else(|| format!("<none>@{}", short_id(&img.id)), ImageRef::repository);
        let age_days = if img.created > 0 { Some((cx.now - img.created).max(0) / 86_400) } else { None };
        let mut vulns = None;
        if !users.is_empty() {
            if let Some(age) = age_days.filter(|a| *a > OLD_IMAGE_DAYS) {
                findings.push(
                    Finding::new("containers.image-old", Severity::Low, Category::Containers, format!("image:{repo}"), format!("Image {reference} is {age} days old"))
                        .evidence(format!("built {} ({age} days ago), used by {}", unix_date(img.created), users.join(", ")))
                        .fix(format!("Pull or rebuild the current release (`docker pull {reference}`) and recreate the containers; an old image carries old, known vulnerabilities.")),
                );
            }
            match cx.scans.get(&img.id) {
                Some(Ok(s)) => {
                    vulns = Some(format!("{} critical, {} high", s.critical, s.high));
                    if s.critical + s.high > 0 {
                        let sev = if s.critical > 0 { Severity::High } else { Severity::Medium };
                        let mut f = Finding::new("containers.image-vulnerabilities", sev, Category::Containers, format!("image:{repo}"), format!("Image {reference}: {} critical and {} high vulnerabilities", s.critical, s.high))
                            .evidence(format!("trivy (offline database): {} CRITICAL, {} HIGH, {} of them with a fixed version; used by {}", s.critical, s.high, s.fixable, users.join(", ")));
                        for e in &s.examples {
                            f = f.evidence(e.clone());
                        }
                        findings.push(f.fix(format!("Update to a release of the image with the fixes and recreate its containers; rescan with `trivy image {reference}`.")));
                    }
                }
                Some(Err(e)) => scan_fail.push(format!("{reference}: {e}")),
                None => {}
            }
        }
        images.push(ImageFacts {
            reference,
            id: short_id(&img.id),
            official: prov == Provenance::Official,
            provenance: prov,
            created: if img.created > 0 { unix_date(img.created) } else { "unknown".into() },
            age_days,
            used_by: users,
            vulnerabilities: vulns,
        });
    }
    images.sort_by(|a, b| a.reference.cmp(&b.reference));

    let used_images = obs.containers.iter().any(|c| !c.image_id.is_empty() || !c.image.is_empty());
    match cx.scanner {
        Scanner::Missing if used_images => findings.push(
            Finding::new("containers.image-scanner-missing", Severity::Info, Category::Containers, "trivy", "Images are not scanned for vulnerabilities: trivy is not installed")
                .evidence("vigil scans images with trivy when it is on the PATH of the live host (offline, with its cached database)")
                .fix("Install trivy (https://trivy.dev, e.g. from the aquasecurity apt repository) and download its database once with `trivy image --download-db-only`; later reviews scan offline."),
        ),
        Scanner::NotLive if used_images => findings.push(
            Finding::new("containers.image-scanner-missing", Severity::Info, Category::Containers, "trivy", "Images were not scanned: scanning runs only on the live host")
                .evidence("this review reads another root; trivy is not run against it")
                .fix("Run the review on the host itself to scan its images with trivy."),
        ),
        _ => {}
    }
    if !scan_fail.is_empty() {
        let mut f =
            Finding::could_not_check(Category::Containers, TOOL, "image vulnerabilities (trivy)", &scan_fail[0]);
        for e in scan_fail.iter().skip(1).take(4) {
            f = f.evidence(e.clone());
        }
        findings.push(f.fix("Make trivy's offline scan work: download its database once (`trivy image --download-db-only`) and keep it current (a daily `trivy image --download-db-only` from cron); then rerun the review."));
    }
    if !errors.is_empty() {
        let mut f = Finding::could_not_check(Category::Containers, TOOL, "container details", &errors[0]);
        for e in errors.iter().skip(1).take(9) {
            f = f.evidence(e.clone());
        }
        findings.push(f.fix("Check the engine's health (`docker info`, its log); containers whose details could not be read are only partly reviewed."));
    }

    let e = &obs.engine;
    Judged {
        engine: EngineFacts {
            endpoint: e.endpoint.clone(),
            name: e.name.clone(),
            version: e.version.clone(),
            api_version: e.api_version.clone(),
            host_cores: e.host_cores as u32,
            userns_remap: e.userns,
        },
        containers,
        images,
        findings,
        samples,
    }
}

/// The registry digest of the image a repository's tag points to, when the engine knows it.
fn digest_of(images: &[ImageObs], repo: &str) -> Option<String> {
    images
        .iter()
        .filter(|i| i.repo_tags.iter().filter_map(|t| ImageRef::parse(t)).any(|r| r.repository() == repo))
        .flat_map(|i| i.repo_digests.iter())
        .find_map(|d| d.split_once('@').map(|(_, d)| d.to_string()))
}

fn publisher_of(r: &ImageRef) -> String {
    match r.path.rsplit_once('/') {
        Some((ns, _)) if r.registry == "docker.io" => ns.to_string(),
        Some((ns, _)) => format!("{}/{ns}", r.registry),
        None => r.registry.clone(),
    }
}

fn provenance_word(p: Provenance) -> &'static str {
    match p {
        Provenance::Official => "official image",
        Provenance::Verified => "trusted publisher",
        Provenance::Local => "built locally",
        Provenance::ThirdParty => "UNOFFICIAL image",
    }
}
