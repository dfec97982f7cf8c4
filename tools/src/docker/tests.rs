use std::collections::HashMap;

use super::engine::{ContainerObs, EngineObs, ImageObs, MountObs, Observed, PortObs};
use super::judge::{Context, judge};
use super::*;
use crate::config::{DockerConfig, PortsConfig};
use crate::host::Host;
use crate::testutil::FIXTURE_NOW;

const NOW: i64 = FIXTURE_NOW as i64;
const DAY: i64 = 86_400;

fn fixture(name: &str) -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/docker").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn references_are_normalised_like_docker() {
    let cases = [
        ("nginx", "docker.io/library/nginx:latest", Provenance::Official),
        ("nginx:1.27", "docker.io/library/nginx:1.27", Provenance::Official),
        ("library/nginx:1.27", "docker.io/library/nginx:1.27", Provenance::Official),
        ("docker.io/nginx", "docker.io/library/nginx:latest", Provenance::Official),
        ("index.docker.io/library/redis:7", "docker.io/library/redis:7", Provenance::Official),
        ("randomuser/xmrig-helper:latest", "docker.io/randomuser/xmrig-helper:latest", Provenance::ThirdParty),
        ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2", Provenance::Verified),
        ("ghcr.io/acme/shop:2.1", "ghcr.io/acme/shop:2.1", Provenance::Verified),
        ("ghcr.io/other/shop:2.1", "ghcr.io/other/shop:2.1", Provenance::ThirdParty),
        ("localhost/busybox", "localhost/busybox:latest", Provenance::Local),
        ("localhost:5000/app:3", "localhost:5000/app:3", Provenance::Local),
        ("quay.io/library/nginx", "quay.io/library/nginx:latest", Provenance::ThirdParty),
        ("docker.io/library/foo/bar", "docker.io/library/foo/bar:latest", Provenance::ThirdParty),
    ];
    let trusted = vec!["bitnami".to_string(), "ghcr.io/acme".to_string()];
    for (input, normal, prov) in cases {
        let r = ImageRef::parse(input).unwrap_or_else(|| panic!("{input}"));
        assert_eq!(r.normalized(), normal, "{input}");
        assert_eq!(r.provenance(&trusted), prov, "{input}");
    }
    let pinned = ImageRef::parse("nginx@sha256:0123abcd").unwrap();
    assert_eq!(pinned.normalized(), "docker.io/library/nginx@sha256:0123abcd");
    assert!(pinned.is_pinned() && !pinned.is_latest());
    assert!(ImageRef::parse("nginx").unwrap().is_latest());
    assert!(ImageRef::parse("nginx:latest").unwrap().is_latest());
    assert!(!ImageRef::parse("nginx:1.27").unwrap().is_latest());
    // A registry port is not a tag.
    let r = ImageRef::parse("registry.example.com:5000/team/app").unwrap();
    assert_eq!(
        (r.registry.as_str(), r.path.as_str(), r.tag.as_deref()),
        ("registry.example.com:5000", "team/app", None)
    );
    assert!(ImageRef::parse("sha256:758153baa363891d923fdd1384c3b28ea4ef90ab6c3210a6463ee525ac62e01a").is_none());
    assert!(ImageRef::parse("").is_none());
}

#[test]
fn allowance_is_the_limit_or_the_host() {
    let unlimited = Allowance::of(0, 0, 0, "", 2.0);
    assert_eq!(unlimited, Allowance { cores: 2.0, limited: false });
    assert!((unlimited.percent(1.0) - 50.0).abs() < 1e-9);
    // A single-threaded miner pegs one core of an unlimited container: that is full.
    assert!(unlimited.is_full(0.97, 90.0));
    assert!(!unlimited.is_full(0.2, 90.0));
    let half = Allowance::of(500_000_000, 0, 0, "", 8.0);
    assert_eq!(half, Allowance { cores: 0.5, limited: true });
    assert!(half.is_full(0.48, 90.0));
    assert!(!half.is_full(0.3, 90.0));
    assert_eq!(Allowance::of(0, 150_000, 100_000, "", 4.0).cores, 1.5);
    assert_eq!(Allowance::of(0, 50_000, 0, "", 4.0).cores, 0.5);
    assert_eq!(Allowance::of(0, 0, 0, "0-1,3", 8.0).cores, 3.0);
    assert_eq!(Allowance::of(4_000_000_000, 0, 0, "", 2.0).cores, 2.0, "a limit above the host is the host");
    assert_eq!(cpuset_count("0-3,6"), Some(5));
    assert_eq!(cpuset_count("x"), None);
    assert_eq!(cpuset_count(""), None);
}

#[test]
fn trivy_reports_are_counted() {
    let s = parse_report(&fixture("trivy-xmrig-helper.json")).unwrap();
    assert_eq!((s.critical, s.high), (2, 4), "{s:?}");
    assert_eq!(s.fixable, 5);
    assert!(
        s.examples[0]
            .starts_with("CRITICAL CVE-2023-38545 in libcurl4 7.74.0-1.3+deb11u3 (fixed in 7.74.0-1.3+deb11u10"),
        "{:?}",
        s.examples
    );
    assert!(s.examples.iter().any(|e| e.contains("CVE-2023-45853") && e.contains("no fix yet")), "{:?}", s.examples);
    assert!(s.examples.len() <= 5);
    let clean = parse_report(&fixture("trivy-clean.json")).unwrap();
    assert_eq!(clean, ScanSummary::default());
    assert!(parse_report("trivy: command failed").is_err());
}

fn engine() -> EngineObs {
    EngineObs {
        endpoint: "unix:///var/run/docker.sock".into(),
        name: "Docker Engine - Community".into(),
        version: "27.3.1".into(),
        api_version: "1.47".into(),
        host_cores: 2.0,
        userns: false,
    }
}

/// A well-run container: official image pinned by digest, limits, unprivileged user, loopback port.
fn clean(name: &str) -> ContainerObs {
    ContainerObs {
        id: format!("{name}0000000000000000"),
        name: name.into(),
        image: "nginx:1.27.3@sha256:66f8bdd3810c96dc5c28aec39583af731b34a2cd99471530f53c8794ed5b423e".into(),
        image_id: "sha256:1111".into(),
        state: "running".into(),
        started_at: Some((NOW - 10 * DAY) as f64),
        user: "101:101".into(),
        network_mode: "bridge".into(),
        nano_cpus: 1_000_000_000,
        memory: 256 * 1024 * 1024,
        ports: vec![PortObs { ip: "127.0.0.1".into(), public: 8080, private: 80, proto: "tcp".into() }],
        mounts: vec![MountObs {
            kind: "bind".into(),
            source: "/srv/site/html".into(),
            destination: "/usr/share/nginx/html".into(),
            rw: false,
        }],
        sample_cores: Some(0.01),
        sample_secs: Some(1.0),
        cpu_total: Some(((10 * DAY) as u64 * 10_000_000, Some(NOW as f64))),
        ..Default::default()
    }
}

fn images() -> Vec<ImageObs> {
    vec![
        ImageObs {
            id: "sha256:1111".into(),
            repo_tags: vec!["nginx:1.27.3".into()],
            repo_digests: vec![],
            created: NOW - 20 * DAY,
        },
        ImageObs {
            id: "sha256:2222".into(),
            repo_tags: vec!["randomuser/xmrig-helper:latest".into()],
            repo_digests: vec!["randomuser/xmrig-helper@sha256:5b0c9f0e6c4c".into()],
            created: NOW - 400 * DAY,
        },
    ]
}

fn run_judge(obs: &Observed, cfg: &DockerConfig, history: &History) -> judge::Judged {
    let scans = HashMap::new();
    judge(
        obs,
        &Context { cfg, now: NOW, history, scans: &scans, scanner: Scanner::Skipped, ports: &PortsConfig::default() },
    )
}

fn ids(j: &judge::Judged) -> Vec<(String, String, Severity)> {
    j.findings.iter().map(|f| (f.id.clone(), f.subject.clone(), f.severity)).collect()
}

#[test]
fn a_well_run_container_reports_nothing() {
    let obs = Observed { engine: engine(), containers: vec![clean("web")], images: images(), errors: vec![] };
    let j = run_judge(&obs, &DockerConfig::default(), &History::default());
    assert!(j.findings.is_empty(), "{:#?}", j.findings);
    let c = &j.containers[0];
    assert_eq!(
        c.image,
        "docker.io/library/nginx:1.27.3@sha256:66f8bdd3810c96dc5c28aec39583af731b34a2cd99471530f53c8794ed5b423e"
    );
    assert!(c.official);
    assert_eq!(c.cpu_limit, "1");
    assert_eq!(c.memory_limit, "256 MiB");
    assert_eq!(c.cpu_sample_pct, Some(1.0));
    assert!(c.flags.is_empty());
}

fn miner() -> ContainerObs {
    ContainerObs {
        id: "miner00000000000000".into(),
        name: "helper".into(),
        image: "randomuser/xmrig-helper:latest".into(),
        image_id: "sha256:2222".into(),
        state: "running".into(),
        started_at: Some((NOW - 3 * DAY) as f64),
        network_mode: "bridge".into(),
        sample_cores: Some(0.98),
        sample_secs: Some(1.0),
        // 2.9 of 3 days busy on one core.
        cpu_total: Some(((29 * DAY / 10) as u64 * 1_000_000_000, Some(NOW as f64))),
        ..Default::default()
    }
}

#[test]
fn an_unofficial_miner_is_critical_with_its_figures() {
    let obs = Observed { engine: engine(), containers: vec![clean("web"), miner()], images: images(), errors: vec![] };
    let j = run_judge(&obs, &DockerConfig::default(), &History::default());
    let got = ids(&j);
    assert!(
        got.contains(&("containers.sustained-cpu".into(), "container:helper".into(), Severity::Critical)),
        "{got:#?}"
    );
    assert!(
        got.contains(&(
            "containers.unofficial-image".into(),
            "image:docker.io/randomuser/xmrig-helper".into(),
            Severity::Medium
        )),
        "{got:#?}"
    );
    assert!(
        got.contains(&(
            "containers.image-latest".into(),
            "image:docker.io/randomuser/xmrig-helper".into(),
            Severity::Low
        )),
        "{got:#?}"
    );
    assert!(got.contains(&("containers.no-limits".into(), "container:helper".into(), Severity::Low)), "{got:#?}");
    assert!(got.contains(&("containers.runs-as-root".into(), "container:helper".into(), Severity::Low)), "{got:#?}");
    assert!(
        got.contains(&("containers.image-old".into(), "image:docker.io/randomuser/xmrig-helper".into(), Severity::Low)),
        "{got:#?}"
    );
    assert!(
        !got.iter().any(|(_, s, _)| s == "container:web" || s.contains("nginx")),
        "the clean container stays clean: {got:#?}"
    );
    let f = j.findings.iter().find(|f| f.id == "containers.sustained-cpu").unwrap();
    assert!(f.title.contains("sustained full CPU: possible cryptominer"), "{}", f.title);
    let ev = f.evidence.join("\n");
    assert!(
        ev.contains(
            "now: 49% of its allowance of 2 cores (the whole host: no CPU limit) (0.98 cores busy over a 1.0 s sample)"
        ),
        "{ev}"
    );
    assert!(ev.contains("average since it started 3.0 days ago: 48% of its allowance (0.97 cores)"), "{ev}");
    assert!(ev.contains("UNOFFICIAL"), "{ev}");
    assert!(f.remediation.contains("docker stop helper"), "{}", f.remediation);
    let latest = j.findings.iter().find(|f| f.id == "containers.image-latest").unwrap();
    assert!(
        latest.remediation.contains("docker.io/randomuser/xmrig-helper:latest@sha256:5b0c9f0e6c4c"),
        "{}",
        latest.remediation
    );
    // The same miner from a trusted publisher is high, not critical.
    let cfg = DockerConfig { verified_publishers: vec!["randomuser".into()], ..Default::default() };
    let j = run_judge(&obs, &cfg, &History::default());
    assert!(ids(&j).contains(&("containers.sustained-cpu".into(), "container:helper".into(), Severity::High)));
    assert!(!ids(&j).iter().any(|(id, _, _)| id == "containers.unofficial-image"));
    // Facts: compact, normalised, official flag.
    let c = j.containers.iter().find(|c| c.name == "helper").unwrap();
    assert_eq!(c.image, "docker.io/randomuser/xmrig-helper:latest");
    assert!(!c.official);
    assert_eq!((c.cpu_sample_pct, c.cpu_avg_pct), (Some(49.0), Some(48.3)));
    assert_eq!(j.samples.len(), 2);
    assert!(j.samples.iter().any(|(_, n, s)| n == "helper" && s.full && s.pct == 49.0));
}

#[test]
fn a_miner_idle_now_is_caught_from_earlier_reviews() {
    let mut idle_now = miner();
    idle_now.sample_cores = Some(0.0);
    idle_now.started_at = Some((NOW - 40 * DAY) as f64);
    idle_now.cpu_total = Some((DAY as u64 * 1_000_000_000, Some(NOW as f64)));
    let obs = Observed { engine: engine(), containers: vec![idle_now], images: images(), errors: vec![] };
    let none = run_judge(&obs, &DockerConfig::default(), &History::default());
    assert!(
        !ids(&none).iter().any(|(id, _, _)| id == "containers.sustained-cpu"),
        "no history, idle: {:#?}",
        ids(&none)
    );

    let mut h = History::default();
    h.record("miner00000000000000", "helper", Sample { at: NOW - 30 * DAY, pct: 99.0, cores: 1.98, full: true });
    h.record("miner00000000000000", "helper", Sample { at: NOW - 7 * DAY, pct: 98.0, cores: 1.96, full: true });
    let j = run_judge(&obs, &DockerConfig::default(), &h);
    let f = j.findings.iter().find(|f| f.id == "containers.sustained-cpu").expect("caught from history");
    assert_eq!(f.severity, Severity::Critical);
    let ev = f.evidence.join("\n");
    assert!(ev.contains("pegged at previous reviews: 98% on 2026-11-20, 99% on 2026-10-28"), "{ev}");
    assert!(ev.contains("now: 0%"), "{ev}");

    // Samples older than the history window no longer count.
    let mut old = History::default();
    old.record("miner00000000000000", "helper", Sample { at: NOW - 90 * DAY, pct: 99.0, cores: 1.98, full: true });
    let j = run_judge(&obs, &DockerConfig::default(), &old);
    assert!(!ids(&j).iter().any(|(id, _, _)| id == "containers.sustained-cpu"));
}

#[test]
fn privilege_and_exposure_are_flagged() {
    let mut c = clean("admin");
    c.privileged = true;
    c.pid_mode = "host".into();
    c.network_mode = "host".into();
    c.user = String::new();
    c.state = "exited".into();
    c.mounts = vec![
        MountObs {
            kind: "bind".into(),
            source: "/var/run/docker.sock".into(),
            destination: "/var/run/docker.sock".into(),
            rw: true,
        },
        MountObs { kind: "bind".into(), source: "/".into(), destination: "/host".into(), rw: false },
        MountObs {
            kind: "bind".into(),
            source: "/etc/nginx/conf.d".into(),
            destination: "/etc/nginx/conf.d".into(),
            rw: false,
        },
        MountObs {
            kind: "volume".into(),
            source: "/var/lib/docker/volumes/data/_data".into(),
            destination: "/data".into(),
            rw: true,
        },
    ];
    let mut web = clean("shop");
    web.ports = vec![
        PortObs { ip: "0.0.0.0".into(), public: 8080, private: 80, proto: "tcp".into() },
        PortObs { ip: "::".into(), public: 8080, private: 80, proto: "tcp".into() },
        PortObs { ip: "127.0.0.1".into(), public: 9000, private: 9000, proto: "tcp".into() },
    ];
    web.ports.push(PortObs { ip: "0.0.0.0".into(), public: 443, private: 443, proto: "tcp".into() });
    let mut looping = clean("worker");
    looping.state = "restarting".into();
    looping.restarting = true;
    looping.restart_count = 37;
    let obs = Observed { engine: engine(), containers: vec![c, web, looping], images: images(), errors: vec![] };
    let j = run_judge(&obs, &DockerConfig::default(), &History::default());
    let got = ids(&j);
    for want in [
        ("containers.privileged", "container:admin", Severity::Critical),
        ("containers.docker-socket", "container:admin", Severity::Critical),
        ("containers.host-pid", "container:admin", Severity::High),
        ("containers.host-network", "container:admin", Severity::High),
        ("containers.sensitive-mount", "container:admin", Severity::High),
        ("containers.published-port", "tcp:8080", Severity::Medium),
        ("containers.restart-loop", "container:worker", Severity::Medium),
    ] {
        assert!(got.contains(&(want.0.into(), want.1.into(), want.2)), "missing {want:?} in {got:#?}");
    }
    assert_eq!(
        got.iter().filter(|(id, _, _)| id == "containers.published-port").count(),
        1,
        "0.0.0.0 and :: are one finding"
    );
    assert!(!got.iter().any(|(_, s, _)| s == "tcp:9000"), "loopback is fine");
    assert!(!got.iter().any(|(_, s, _)| s == "tcp:443"), "443 is meant to be public");
    let mounts = j.findings.iter().find(|f| f.id == "containers.sensitive-mount").unwrap();
    assert_eq!(mounts.evidence.len(), 1, "only / is sensitive, not conf.d nor a volume: {:?}", mounts.evidence);
    assert!(mounts.evidence[0].contains("host / mounted at /host (read-only)"));
    assert!(mounts.evidence[0].contains("exited"), "a stopped container says so: {:?}", mounts.evidence);
    let port = j.findings.iter().find(|f| f.id == "containers.published-port").unwrap();
    assert!(port.evidence.iter().any(|e| e.contains("ufw")), "{:?}", port.evidence);
    let admin = j.containers.iter().find(|c| c.name == "admin").unwrap();
    assert_eq!(admin.flags, vec!["privileged", "engine-socket", "host-network", "host-pid", "sensitive-mount", "root"]);
    // A stopped container does not count as running as root or lacking limits now.
    assert!(!got.contains(&("containers.runs-as-root".into(), "container:admin".into(), Severity::Medium)));
}

#[test]
fn root_is_not_root_under_userns_remap() {
    let mut c = clean("app");
    c.user = "root".into();
    let mut obs = Observed { engine: engine(), containers: vec![c], images: images(), errors: vec![] };
    let j = run_judge(&obs, &DockerConfig::default(), &History::default());
    assert!(ids(&j).iter().any(|(id, _, _)| id == "containers.runs-as-root"));
    obs.engine.userns = true;
    let j = run_judge(&obs, &DockerConfig::default(), &History::default());
    assert!(!ids(&j).iter().any(|(id, _, _)| id == "containers.runs-as-root"));
}

#[test]
fn scans_and_the_missing_scanner() {
    let obs = Observed { engine: engine(), containers: vec![miner()], images: images(), errors: vec![] };
    let mut scans = HashMap::new();
    scans.insert(
        "sha256:2222".to_string(),
        parse_report(&fixture("trivy-xmrig-helper.json")).map_err(|e| e.to_string()),
    );
    let cfg = DockerConfig::default();
    let h = History::default();
    let j = judge(
        &obs,
        &Context {
            cfg: &cfg,
            now: NOW,
            history: &h,
            scans: &scans,
            scanner: Scanner::Trivy,
            ports: &PortsConfig::default(),
        },
    );
    let f = j.findings.iter().find(|f| f.id == "containers.image-vulnerabilities").expect("vulns reported");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.subject, "image:docker.io/randomuser/xmrig-helper");
    assert!(f.title.contains("2 critical and 4 high"), "{}", f.title);
    let img = j.images.iter().find(|i| i.id == "2222").unwrap();
    assert_eq!(img.vulnerabilities.as_deref(), Some("2 critical, 4 high"));

    let j = judge(
        &obs,
        &Context {
            cfg: &cfg,
            now: NOW,
            history: &h,
            scans: &HashMap::new(),
            scanner: Scanner::Missing,
            ports: &PortsConfig::default(),
        },
    );
    let info: Vec<&Finding> = j.findings.iter().filter(|f| f.id == "containers.image-scanner-missing").collect();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].severity, Severity::Info);
    assert!(info[0].remediation.contains("trivy"));

    let mut failed = HashMap::new();
    failed.insert(
        "sha256:2222".to_string(),
        Err("trivy exited with status 1: --skip-db-update cannot be specified on the first run".to_string()),
    );
    let j = judge(
        &obs,
        &Context {
            cfg: &cfg,
            now: NOW,
            history: &h,
            scans: &failed,
            scanner: Scanner::Trivy,
            ports: &PortsConfig::default(),
        },
    );
    let f = j.findings.iter().find(|f| f.id == "containers.check-failed").expect("a failed scan is a could-not-check");
    assert_eq!(f.severity, Severity::High);
    assert!(f.remediation.contains("--download-db-only"));
}

#[test]
fn socket_errors_become_the_right_findings() {
    let ep = parse_endpoint("unix:///var/run/docker.sock").unwrap();
    let denied =
        classify_io("unix:///var/run/docker.sock", &std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    let f = super::connect_finding(&ep.shown(), denied);
    assert_eq!((f.id.as_str(), f.severity), ("containers.check-failed", Severity::High));
    assert!(f.remediation.contains("docker group") && f.remediation.contains("root-equivalent"), "{}", f.remediation);
    assert!(f.evidence[0].contains("permission denied"));
    let absent = classify_io("unix:///var/run/docker.sock", &std::io::Error::from(std::io::ErrorKind::NotFound));
    assert_eq!(super::connect_finding(&ep.shown(), absent).severity, Severity::Info);
    let refused = classify_io("x", &std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert!(matches!(refused, ConnectError::Absent(_)));
}

#[test]
fn api_versions_parse() {
    let v = engine::parse_api_version("1.41").unwrap();
    assert_eq!((v.major_version, v.minor_version), (1, 41));
    assert!(engine::parse_api_version("4.3.1").is_none() || engine::parse_api_version("1.x").is_none());
    assert!(engine::parse_api_version("").is_none());
    let head = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nLibpod-Api-Version: 4.3.1\r\nContent-Length: 2\r\n\r\nOK";
    assert_eq!(engine::ping_api_version(head).map(|v| v.minor_version), Some(41));
    assert!(engine::ping_api_version("HTTP/1.1 404 Not Found\r\nApi-Version: 1.41\r\n\r\n").is_none());
    assert!(engine::ping_api_version("HTTP/1.1 200 OK\r\n\r\nOK").is_none());
}

#[test]
fn endpoints() {
    assert_eq!(parse_endpoint("tcp://10.0.0.5:2375").unwrap(), Endpoint::Tcp { url: "tcp://10.0.0.5:2375".into() });
    assert!(matches!(parse_endpoint("/run/podman/podman.sock").unwrap(), Endpoint::Unix { .. }));
    let e = parse_endpoint("ssh://admin@host").unwrap_err();
    assert!(e.contains("only unix"), "{e}");
    let ctx = Ctx::new(Host::at("/srv/image"));
    match engine::resolve(&ctx).unwrap() {
        Endpoint::Unix { path, default, .. } => {
            assert_eq!(path, std::path::PathBuf::from("/srv/image/var/run/docker.sock"));
            assert!(default);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_engine_is_one_info_line() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(Host::at(dir.path()));
    let out = DockerContainers.run(&ctx, DockerInput::default()).await.unwrap();
    assert_eq!(out.findings.len(), 1, "{:#?}", out.findings);
    assert_eq!((out.findings[0].id.as_str(), out.findings[0].severity), ("containers.no-engine", Severity::Info));
    assert!(out.facts.engine.is_none() && out.facts.containers.is_empty());
    // The clean and messy fixture hosts have no engine socket either.
    let out = DockerContainers.run(&crate::testutil::fixture_ctx("web1"), DockerInput::default()).await.unwrap();
    assert!(out.findings.iter().all(|f| f.severity == Severity::Info), "{:#?}", out.findings);
}

#[tokio::test]
async fn a_stale_socket_is_an_engine_that_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var/run")).unwrap();
    let sock = dir.path().join("var/run/docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let out = DockerContainers.run(&Ctx::new(Host::at(dir.path())), DockerInput::default()).await.unwrap();
    assert_eq!(out.findings[0].id, "containers.no-engine");
    assert!(out.findings[0].evidence[0].contains("nothing answers"), "{:?}", out.findings[0].evidence);
}

#[test]
fn history_round_trips_privately() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::load(dir.path()).unwrap();
    h.record("abc", "helper", Sample { at: NOW, pct: 99.0, cores: 0.99, full: true });
    h.save(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join(STATE_FILE)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let back = History::load(dir.path()).unwrap();
    assert_eq!(back.previous_full("abc", NOW + DAY).len(), 1);
    assert_eq!(back.containers["abc"].name, "helper");
    let mut pruned = back.clone();
    pruned.prune(NOW + 365 * DAY);
    assert!(pruned.containers.is_empty());
    std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
    assert!(History::load(dir.path()).is_err());
}
