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
