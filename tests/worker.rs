//! The confined worker behind every entry point: `vigil tools run` and `vigil ask` run
//! their read-only tools in it (the audit log says where each call ran), and on the live
//! machine, as root, a tool's program really runs without network, root or write access.
//! (`vigil review` and `vigil mcp`: tests/review.rs and tests/mcp.rs.)
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

mod support;

use serde_json::{Value, json};
use support::{FakeApi, Reply, text_sse, tool_use_sse};

/// Where each read-only call ran, as `tool:place` (`worker` or `parent`).
fn ran_in(state: &std::path::Path) -> Vec<String> {
    support::audit_events(state)
        .iter()
        .filter(|e| e["kind"] == "tool_call")
        .map(|e| {
            format!(
                "{}:{}:{}",
                e["origin"].as_str().unwrap(),
                e["tool"].as_str().unwrap(),
                e["ran_in"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[test]
fn tools_run_uses_the_worker_and_no_sandbox_does_not() {
    let t = tempfile::tempdir().unwrap();
    let r = support::run(support::vigil_cmd(t.path(), None, &["tools", "run", "check_ssh"]), "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["findings"].as_array().is_some_and(|f| !f.is_empty()), "{v:#}");
    let r2 = support::run(support::vigil_cmd(t.path(), None, &["--no-sandbox", "tools", "run", "check_ssh"]), "");
    assert_eq!(r2.code, 0, "{}", r2.stderr);
    assert_eq!(serde_json::from_str::<Value>(&r2.stdout).unwrap(), v, "the same answer either way");
    assert_eq!(ran_in(t.path()), ["tools-run:check_ssh:worker", "tools-run:check_ssh:parent"]);
}

#[test]
fn the_agents_read_only_calls_run_in_the_worker() {
    let t = tempfile::tempdir().unwrap();
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_1", "audit_accounts", &json!({}))),
        Reply::Sse(text_sse("Two accounts have uid 0.")),
    ]);
    let r = support::ask(t.path(), &api, &["who has root?"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(ran_in(t.path()), ["ask:audit_accounts:worker"]);
}

/// `list_open_ports` runs in the worker, which has no network and cannot read other
/// processes' descriptors: the socket table with its owners and the loopback probe of an
/// Elasticsearch that answers without authentication come from the parent, and the answer
/// is the one the unconfined tool gives.
#[test]
#[cfg_attr(vigil_missing = "root", ignore = "needs root (the worker is confined only as root)")]
fn open_ports_in_the_worker_see_the_hosts_sockets_owners_and_probes() {
    use std::io::{Read, Write};
    vigil_testkit::require(&["root"]);
    let es = std::net::TcpListener::bind("0.0.0.0:9200").expect("port 9200 must be free for this test");
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for s in es.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"tagline\":\"You Know, for Search\"}",
            );
        }
    });
    let t = tempfile::tempdir().unwrap();
    let port = |sandbox: &[&str]| -> (Value, Vec<Value>) {
        let args: Vec<&str> = [sandbox, &["tools", "run", "list_open_ports", r#"{"port":9200}"#]].concat();
        let r = support::run(support::vigil_cmd_at(t.path(), None, std::path::Path::new("/"), &args), "");
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        let listener = v["facts"]["listeners"].as_array().unwrap().iter().find(|l| l["address"] == "0.0.0.0").cloned();
        (
            listener.unwrap_or_else(|| panic!("no 0.0.0.0:9200 listener: {v:#}")),
            v["findings"].as_array().unwrap().clone(),
        )
    };
    let (confined, confined_findings) = port(&[]);
    let (unconfined, unconfined_findings) = port(&["--no-sandbox"]);
    assert_eq!(ran_in(t.path()), ["tools-run:list_open_ports:worker", "tools-run:list_open_ports:parent"]);
    assert_eq!(confined, unconfined, "the same socket, owner and probe either way");
    assert_eq!(confined["pid"], std::process::id(), "the owner, from /proc/PID/fd read by the parent: {confined:#}");
    assert_eq!(confined["http_probe"], "answers without authentication", "{confined:#}");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2, "one probe per run");
    assert_eq!(confined_findings, unconfined_findings);
    assert!(confined_findings.iter().any(|f| f["id"] == "ports.exposed-datastore"), "{confined_findings:#?}");
}

/// `docker_containers` runs in the worker; the parent answers its engine pass from its own
/// configuration. An engine that is absent, stopped or named in a way vigil cannot use gives
/// the same findings confined as unconfined.
#[test]
fn docker_containers_in_the_worker_reports_an_unreachable_engine_as_the_parent_would() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // A socket nothing listens on any more: the engine is stopped.
    let dead = t.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let cases = [
        ("", "containers.no-engine", "no such socket"),
        (
            &*format!("[docker]\ndocker_host = \"unix://{}\"\n", dead.display()),
            "containers.no-engine",
            "nothing answers",
        ),
        ("[docker]\ndocker_host = \"ssh://engine.example\"\n", "containers.check-failed", "only unix:///path"),
    ];
    let mut expected = Vec::new();
    for (i, (config, id, evidence)) in cases.iter().enumerate() {
        let file = t.path().join(format!("vigil-{i}.toml"));
        std::fs::write(&file, config).unwrap();
        let run = |extra: &[&str]| {
            let mut args: Vec<&str> = vec!["--config", file.to_str().unwrap()];
            args.extend_from_slice(extra);
            args.extend(["tools", "run", "docker_containers"]);
            let r = support::run(support::vigil_cmd(&state, None, &args), "");
            assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
            serde_json::from_str::<Value>(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
        };
        let confined = run(&[]);
        let f = &confined["findings"][0];
        assert_eq!(f["id"], *id, "{confined:#}");
        assert!(f["evidence"].to_string().contains(evidence), "{confined:#}");
        assert_eq!(run(&["--no-sandbox"]), confined, "the same answer either way");
        expected.extend(["tools-run:docker_containers:worker", "tools-run:docker_containers:parent"]);
    }
    assert_eq!(ran_in(&state), expected);
}

/// A vigil killed with SIGKILL cannot remove its worker's scratch directory; the next
/// worker start removes it (its pid is in the name and that process is gone), and a vigil
/// that ends normally leaves none behind.
#[test]
fn a_killed_vigils_scratch_directory_is_removed_by_the_next_worker() {
    use std::io::{BufRead, BufReader, Write};
    let t = tempfile::tempdir().unwrap();
    let mut c = support::vigil_cmd(t.path(), None, &["mcp"]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"check_ssh","arguments":{}}}"#;
    write!(stdin, "{init}\n{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}}\n{call}\n").unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l.contains("\"id\":2")), "no answer to the call");
    let scratch = || -> Vec<std::path::PathBuf> {
        // vigil runs with a cleared environment: its temporary directory is /tmp.
        std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("vigil-worker.{pid}.")))
            .map(|e| e.path())
            .collect()
    };
    assert_eq!(scratch().len(), 1, "the worker's scratch directory, named by vigil's pid");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(scratch().len(), 1, "left behind by SIGKILL");
    let mut next = support::vigil_cmd(t.path(), None, &["tools", "run", "check_ssh"]);
    let next = next.stdout(std::process::Stdio::null()).spawn().unwrap();
    let next_pid = next.id();
    assert!(next.wait_with_output().unwrap().status.success());
    assert!(scratch().is_empty(), "the next worker start removed {:?}", scratch());
    // And a vigil that ends normally removes its own.
    let own: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("vigil-worker.{next_pid}.")))
        .collect();
    assert!(own.is_empty(), "{own:?}");
}
