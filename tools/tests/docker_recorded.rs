//! `docker_containers` against recorded Docker Engine API answers.
//!
//! Podman cannot produce some cases (an unofficial Docker Hub image, the
//! Docker socket mounted, host PID, a restart loop, Docker's own answer
//! shapes), so this test serves recorded bodies from `fixtures/docker/engine/`
//! (the Engine API's documented shapes for `/version`, `/info`,
//! `/containers/json`, `/containers/{id}/json`, `/containers/{id}/stats` and
//! `/images/json`) from a small HTTP/1.1 server on a unix socket in a temp dir.
//! The stats advance with the real clock at the rate the recording shows
//! (cpu_stats vs precpu_stats), so the tool's two reads see real CPU use.
//! It also times a review of 50 containers.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failure should panic with its message")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use vigil_tools::{Config, Ctx, Host, Registry, Severity, ToolResult};

/// 2026-11-27T00:00:00Z, the date the recordings describe.
const FIXTURE_NOW: u64 = 1_795_737_600;

fn engine_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/docker/engine")
}

fn load(name: &str) -> Value {
    let p = engine_dir().join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The recorded engine, in memory.
struct Recorded {
    version: Value,
    info: Value,
    list: Vec<Value>,
    images: Value,
    inspect: HashMap<String, Value>,
    stats: HashMap<String, Value>,
}

impl Recorded {
    fn load() -> Recorded {
        let list: Vec<Value> = serde_json::from_value(load("containers.json")).unwrap();
        let mut inspect = HashMap::new();
        let mut stats = HashMap::new();
        for c in &list {
            let id = c["Id"].as_str().unwrap().to_string();
            let name = c["Names"][0].as_str().unwrap().trim_start_matches('/').to_string();
            inspect.insert(id.clone(), load(&format!("inspect-{name}.json")));
            if engine_dir().join(format!("stats-{name}.json")).exists() {
                stats.insert(id, load(&format!("stats-{name}.json")));
            }
        }
        Recorded {
            version: load("version.json"),
            info: load("info.json"),
            list,
            images: load("images.json"),
            inspect,
            stats,
        }
    }

    /// `n` copies of the recorded `web` container (for timing).
    fn fifty(n: usize) -> Recorded {
        let mut r = Recorded::load();
        let template = r.list.iter().find(|c| c["Names"][0] == "/web").unwrap().clone();
        let tid = template["Id"].as_str().unwrap().to_string();
        let (ti, ts) = (r.inspect[&tid].clone(), r.stats[&tid].clone());
        r.list.clear();
        r.inspect.clear();
        r.stats.clear();
        for k in 0..n {
            let id = format!("{:064x}", 0xc0ffee_u64 * 1000 + k as u64);
            let name = format!("/web-{k:02}");
            let mut c = template.clone();
            c["Id"] = id.clone().into();
            c["Names"] = serde_json::json!([name]);
            let mut i = ti.clone();
            i["Id"] = id.clone().into();
            i["Name"] = name.clone().into();
            let mut s = ts.clone();
            s["id"] = id.clone().into();
            s["name"] = name.into();
            r.list.push(c);
            r.inspect.insert(id.clone(), i);
            r.stats.insert(id, s);
        }
        r
    }
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

/// A recorded stats body moved forward by `elapsed` at the rate it recorded.
fn advance(stats: &Value, elapsed: f64) -> Value {
    let mut s = stats.clone();
    let (read, pre) = (parse_time(&stats["read"]), parse_time(&stats["preread"]));
    let dt = (read - pre).as_seconds_f64();
    let total = stats["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap();
    let before = stats["precpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap();
    let rate = (total - before) as f64 / dt; // ns of CPU per second
    s["read"] = (read + time::Duration::seconds_f64(elapsed)).format(&Rfc3339).unwrap().into();
    s["cpu_stats"]["cpu_usage"]["total_usage"] = ((total as f64 + rate * elapsed) as u64).into();
    s
}

struct Server {
    socket: PathBuf,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn route(rec: &Recorded, start: Instant, path: &str) -> (u16, Value) {
    let path = path.split('?').next().unwrap_or("");
    // Strip the API version prefix: /v1.47/containers/json → /containers/json
    let path = match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest.find('/').map_or("", |i| &rest[i..]),
        _ => path,
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let found = match parts.as_slice() {
        ["version"] => Some(rec.version.clone()),
        ["info"] => Some(rec.info.clone()),
        ["containers", "json"] => Some(Value::Array(rec.list.clone())),
        ["images", "json"] => Some(rec.images.clone()),
        ["containers", id, "json"] => rec.inspect.get(*id).cloned(),
        ["containers", id, "stats"] => rec.stats.get(*id).map(|s| advance(s, start.elapsed().as_secs_f64())),
        _ => None,
    };
    match found {
        Some(v) => (200, v),
        None => (404, serde_json::json!({"message": format!("page not found: {path}")})),
    }
}

/// Serve `rec` on a unix socket in `dir`: one request per connection, HTTP/1.1.
async fn serve(dir: &Path, rec: Recorded) -> Server {
    let socket = dir.join("docker.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let rec = Arc::new(rec);
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let start = Instant::now();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let rec = rec.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = if path == "/_ping" {
                    (200, "OK".to_string())
                } else {
                    let (status, body) = route(&rec, start, &path);
                    (status, body.to_string())
                };
                let reason = if status == 200 { "OK" } else { "Not Found" };
                let resp = format!(
                    "HTTP/1.1 {status} {reason}\r\nApi-Version: 1.47\r\nContent-Type: application/json\r\nServer: Docker/27.3.1 (linux)\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Server { socket, requests, task }
}

fn ctx(root: &Path, state: &Path, socket: &Path, extra: &str) -> Ctx {
    let text = format!("[docker]\ndocker_host = \"unix://{}\"\n{extra}", socket.display());
    let cfg = Config::parse(&text, Path::new("test.toml")).unwrap();
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(FIXTURE_NOW);
    Ctx::new(Host::at(root).with_now(now)).with_config(cfg).with_state_dir(state)
}

fn has(out: &ToolResult, id: &str, subject: &str, sev: Severity) -> bool {
    out.findings.iter().any(|f| f.id == id && f.subject == subject && f.severity == sev)
}

fn summary(out: &ToolResult) -> String {
    out.findings
        .iter()
        .map(|f| format!("{} {} {} | {}", f.severity, f.id, f.subject, f.evidence.join(" / ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_engine_answers_are_judged() {
    let dir = tempfile::tempdir().unwrap();
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let server = serve(dir.path(), Recorded::load()).await;
    let ctx =
        ctx(&root, &state, &server.socket, "verified_publishers = [\"ghcr.io/acme\"]\ncpu_sample_seconds = 0.5\n");
    let out = Registry::builtin().call(&ctx, "docker_containers", serde_json::json!({})).await.unwrap();
    let all = summary(&out);
    println!("{all}");

    // The unofficial miner: critical, with its figures.
    assert!(has(&out, "containers.sustained-cpu", "container:helper", Severity::Critical), "{all}");
    let miner = out.findings.iter().find(|f| f.id == "containers.sustained-cpu").unwrap();
    let ev = miner.evidence.join("\n");
    assert!(
        ev.contains("now: 50% of its allowance of 2 cores") || ev.contains("now: 49% of its allowance of 2 cores"),
        "{ev}"
    );
    assert!(ev.contains("cores busy over a 0.5 s sample"), "{ev}");
    assert!(ev.contains("average since it started 2.9 days ago: 50% of its allowance (0.99 cores)"), "{ev}");
    assert_eq!(out.findings.iter().filter(|f| f.id == "containers.sustained-cpu").count(), 1, "only the miner: {all}");
    assert!(
        has(&out, "containers.unofficial-image", "image:docker.io/randomuser/xmrig-helper", Severity::Medium),
        "{all}"
    );
    assert!(has(&out, "containers.image-latest", "image:docker.io/randomuser/xmrig-helper", Severity::Low), "{all}");

    // Privilege and exposure.
    assert!(has(&out, "containers.docker-socket", "container:agent", Severity::Critical), "{all}");
    assert!(has(&out, "containers.sensitive-mount", "container:agent", Severity::High), "{all}");
    assert!(has(&out, "containers.runs-as-root", "container:agent", Severity::Medium), "{all}");
    assert!(has(&out, "containers.host-pid", "container:node-exporter", Severity::High), "{all}");
    assert!(has(&out, "containers.host-network", "container:node-exporter", Severity::High), "{all}");
    assert!(has(&out, "containers.sensitive-mount", "container:node-exporter", Severity::High), "{all}");
    assert!(has(&out, "containers.published-port", "tcp:3306", Severity::Medium), "{all}");
    assert!(
        !out.findings.iter().any(|f| f.subject == "tcp:80" || f.subject == "tcp:443" || f.subject == "tcp:9001"),
        "{all}"
    );
    assert!(!out.findings.iter().any(|f| f.subject == "tcp:8081"), "a stopped container publishes nothing now: {all}");
    assert!(has(&out, "containers.restart-loop", "container:worker", Severity::Medium), "{all}");
    assert!(has(&out, "containers.image-old", "image:docker.io/library/wordpress", Severity::Low), "{all}");
    // Trusted, pinned and limited: the worker has nothing else.
    assert!(
        out.findings.iter().filter(|f| f.subject == "container:worker" || f.subject.contains("shop-worker")).count()
            == 1,
        "{all}"
    );
    // Official images are not "unofficial".
    assert!(
        !out.findings.iter().any(|f| f.id == "containers.unofficial-image" && f.subject.contains("/library/")),
        "{all}"
    );
    assert!(has(&out, "containers.image-scanner-missing", "trivy", Severity::Info), "{all}");

    // Facts: compact, no environment, no secrets.
    let text = out.to_value().to_string();
    for secret in ["Company2024", "Welcome1", "hunter2", "s3cr3t", "48edfHu7", "MYSQL_ROOT_PASSWORD", "WALLET"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let facts = &out.facts;
    assert_eq!(facts["engine"]["name"], "Docker Engine - Community");
    assert_eq!(facts["engine"]["api_version"], "1.47");
    let cs = facts["containers"].as_array().unwrap();
    assert_eq!(cs.len(), 7);
    let helper = cs.iter().find(|c| c["name"] == "helper").unwrap();
    assert_eq!(helper["image"], "docker.io/randomuser/xmrig-helper:latest");
    assert_eq!(helper["official"], false);
    assert!(helper["cpu_sample_pct"].as_f64().unwrap() > 45.0, "{helper}");
    let web = cs.iter().find(|c| c["name"] == "web").unwrap();
    assert_eq!(web["official"], true);
    assert_eq!(web["cpu_limit"], "1");
    assert_eq!(web["memory_limit"], "512 MiB");
    assert!(web["ports"].as_array().unwrap().iter().any(|p| p == "0.0.0.0:80->80/tcp"), "{web}");
    let ne = cs.iter().find(|c| c["name"] == "node-exporter").unwrap();
    assert_eq!(ne["flags"], serde_json::json!(["host-network", "host-pid", "sensitive-mount"]));
    let facts_len = facts.to_string().len();
    println!("facts: {facts_len} bytes for 7 containers and 7 images");
    assert!(facts_len < 5_000, "facts stay compact: {facts_len} bytes: {facts}");

    // The samples are kept for the next review.
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("container-cpu.json")).unwrap()).unwrap();
    let samples: Vec<&Value> =
        kept["containers"].as_object().unwrap().values().filter(|h| h["name"] == "helper").collect();
    assert_eq!(samples.len(), 1, "{kept}");
    assert_eq!(samples[0]["samples"][0]["full"], true, "{kept}");
    assert!(
        server.requests.load(Ordering::Relaxed) >= 1 + 4 + 7 + 5 * 2,
        "inspect and two stats reads per running container"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_container_by_name_and_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), Recorded::load()).await;
    let ctx = ctx(dir.path(), dir.path(), &server.socket, "cpu_sample_seconds = 0\n");
    let reg = Registry::builtin();
    let out = reg.call(&ctx, "docker_containers", serde_json::json!({"container": "db"})).await.unwrap();
    assert_eq!(out.facts["containers"].as_array().unwrap().len(), 1);
    assert!(has(&out, "containers.published-port", "tcp:3306", Severity::Medium), "{}", summary(&out));
    assert!(!out.findings.iter().any(|f| f.subject.contains("helper")));
    let err = reg.call(&ctx, "docker_containers", serde_json::json!({"container": "nope"})).await.unwrap_err();
    assert!(err.to_string().contains("no container named `nope`"), "{err}");
    let err = reg.call(&ctx, "docker_containers", serde_json::json!({"path": "/etc/shadow"})).await.unwrap_err();
    assert!(err.to_string().contains("invalid input"), "{err}");
}

/// 50 containers share one CPU sampling window: every one gets its sample. (The time it
/// takes is a benchmark, `bench/run` section 7, not an assertion here: a loaded CI
/// machine must not fail a test over speed.) Times: `-- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_containers_share_one_sampling_window() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), Recorded::fifty(50)).await;
    let reg = Registry::builtin();
    for window in [0.0, 1.0] {
        let ctx = ctx(dir.path(), dir.path(), &server.socket, &format!("cpu_sample_seconds = {window:.1}\n"));
        let t = Instant::now();
        let out = reg.call(&ctx, "docker_containers", serde_json::json!({})).await.unwrap();
        let took = t.elapsed().as_secs_f64();
        assert_eq!(out.facts["containers"].as_array().unwrap().len(), 50);
        if window > 0.0 {
            assert!(out.facts["containers"].as_array().unwrap().iter().all(|c| c["cpu_sample_pct"].is_number()));
        }
        println!(
            "50 containers, sampling window {window:.1} s: {took:.3} s (added beyond the window: {:.3} s)",
            took - window
        );
    }
}
