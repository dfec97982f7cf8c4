//! `vigil ask` end to end: the real binary against a fake Messages API.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

#[test]
fn a_tool_round_trip_streams_the_answer_and_records_redacted_fixtures() {
    let t = tmp();
    let rec = t.path().join("rec");
    let api = FakeApi::start(vec![Reply::Sse(fixture("ports_tool_use.sse")), Reply::Sse(fixture("ports_answer.sse"))]);
    let mut c = vigil_cmd(&t.path().join("state"), Some(&api), &["ask", "which", "ports", "are", "open?"]);
    c.env("VIGIL_RECORD", &rec);
    let r = run(c, "");
    assert_eq!(r.code, 0, "{r:?}");
    // The answer on stdout, the tool activity on stderr.
    assert!(r.stdout.contains("I'll check which ports listen beyond localhost."), "{r:?}");
    assert!(
        r.stdout.contains("Elasticsearch is listening on all interfaces (tcp:9200) — bind it to 127.0.0.1 ✓"),
        "{r:?}"
    );
    assert!(!r.stdout.contains('→') && !r.stdout.contains("ms,"), "tool activity leaked to stdout: {r:?}");
    assert!(r.stderr.contains("→ list_open_ports {\"public_only\":false}"), "{r:?}");
    assert!(r.stderr.contains("✓ list_open_ports:") && r.stderr.contains("findings"), "{r:?}");

    let got = api.check();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body["messages"][0]["content"][0]["text"], "which ports are open?");
    // The tool result is compact JSON facts + findings, redacted: the Redis password never leaves.
    let results = tool_results(&got[1].body);
    let res = &results["toolu_01Ports"];
    assert!(res.get("is_error").is_none(), "{res}");
    let content: Value = serde_json::from_str(res["content"].as_str().unwrap()).unwrap();
    assert!(content["facts"].is_object() && content["findings"].is_array(), "{content}");
    assert!(content.to_string().contains("redis-server") && content.to_string().contains("[REDACTED]"), "{content}");
    // Findings reach the model as compact rows: [severity, id, subject, title, evidence..., fix].
    assert!(content["findings"].as_array().unwrap().iter().any(|f| f[1] == "ports.exposed-datastore"), "{content}");
    // The thinking block went back with its signature.
    let assistant = &got[1].body["messages"][1]["content"][0];
    assert_eq!(assistant["type"], "thinking");
    assert_eq!(assistant["signature"], "EqQBCkYIBxgCKkBx7c2lnbmF0dXJlLW9mLXRoaW5raW5n");

    // Recording: NNN.request.json + NNN.sse, no key, no secret, still parseable.
    for n in ["001.request.json", "001.sse", "002.request.json", "002.sse"] {
        let p = rec.join(n);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(!text.contains(KEY) && !text.contains(PLANTED), "{n} holds a secret");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{n}");
    }
    let replay = vigil::claude::stream::assemble(&std::fs::read(rec.join("001.sse")).unwrap()).unwrap();
    assert_eq!(replay.stop_reason, Some(vigil::claude::StopReason::ToolUse));
    let req2: Value = serde_json::from_str(&std::fs::read_to_string(rec.join("002.request.json")).unwrap()).unwrap();
    assert_eq!(req2["messages"].as_array().unwrap().len(), 3);

    // The transcript was saved, private and redacted; the audit log has the call.
    let dir = t.path().join("state/transcripts");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let tr = std::fs::read_to_string(&files[0]).unwrap();
    assert!(tr.contains("Elasticsearch is listening") && !tr.contains(PLANTED));
    assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
    let ev = audit_events(&t.path().join("state"));
    assert!(
        ev.iter().any(|e| e["tool"] == "list_open_ports" && e["decision"] == "ran" && e["origin"] == "ask"),
        "{ev:?}"
    );
}

#[test]
fn overloaded_then_rate_limited_then_success() {
    let t = tmp();
    let api = FakeApi::start(vec![
        Reply::Status(529, vec![("request-id", "req_529")], error_body("overloaded_error", "Overloaded")),
        Reply::Status(429, vec![("retry-after", "0")], error_body("rate_limit_error", "slow down")),
        Reply::Sse(fixture("ports_answer.sse")),
    ]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Elasticsearch is listening"), "{r:?}");
    assert!(r.stderr.contains("retrying") && r.stderr.contains("overloaded_error"), "{r:?}");
    assert_eq!(api.check().len(), 3);
}

#[test]
fn unauthorized_fails_fast_with_the_request_id() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Status(
        401,
        vec![("request-id", "req_011CUnauthorized")],
        error_body("authentication_error", "invalid x-api-key"),
    )]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("invalid x-api-key"), "{r:?}");
    assert!(r.stderr.contains("req_011CUnauthorized"), "{r:?}");
    assert!(r.stderr.contains("401"), "{r:?}");
    assert!(
        r.stderr.contains("ANTHROPIC_API_KEY environment variable was refused")
            && r.stderr.contains("vigil auth login"),
        "a refused key says where it came from and what to run: {r:?}"
    );
    assert!(!r.stderr.contains(KEY) && !r.stdout.contains(KEY));
    assert_eq!(api.check().len(), 1, "a 401 is not retried");
}

#[test]
fn x_should_retry_false_wins_over_a_5xx() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Status(
        503,
        vec![("x-should-retry", "false")],
        error_body("api_error", "maintenance"),
    )]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("maintenance"), "{r:?}");
    assert_eq!(api.check().len(), 1);
}

#[test]
fn an_error_event_mid_stream_is_retried_when_overloaded_and_reported_otherwise() {
    let t = tmp();
    let api =
        FakeApi::start(vec![Reply::Sse(fixture("overloaded_midstream.sse")), Reply::Sse(fixture("ports_answer.sse"))]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Elasticsearch is listening"), "{r:?}");
    assert!(r.stderr.contains("overloaded_error"), "{r:?}");
    assert_eq!(api.check().len(), 2);

    let t = tmp();
    let other = fixture("overloaded_midstream.sse")
        .replace("overloaded_error", "invalid_request_error")
        .replace("Overloaded", "messages: bad");
    let api = FakeApi::start(vec![Reply::Sse(other)]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("invalid_request_error") && r.stderr.contains("messages: bad"), "{r:?}");
    assert!(r.stderr.contains("req_fake_stream"), "the request-id is shown: {r:?}");
    assert_eq!(api.check().len(), 1);
}

#[test]
fn max_tokens_never_runs_a_cut_off_tool_call() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Sse(fixture("max_tokens_cut_tool.sse"))]);
    let r = ask(t.path(), &api, &["lock the old accounts"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cut short"), "{r:?}");
    assert!(r.stderr.contains("not run: `lock_account`"), "{r:?}");
    assert!(!r.stderr.contains("→ lock_account"), "the cut-off call was started: {r:?}");
    assert!(audit_events(t.path()).is_empty(), "no tool call reached the gate");
    assert_eq!(api.check().len(), 1);
}

#[test]
fn a_malformed_data_line_is_a_clear_error() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Sse(fixture("malformed.sse"))]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("malformed event") && r.stderr.contains("content_block_delta"), "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    assert_eq!(api.check().len(), 1, "a malformed stream is not retried");
}

#[test]
fn dropped_connections_are_retried() {
    let t = tmp();
    let answer = fixture("ports_answer.sse");
    let cut = answer[..answer.find("event: message_delta").unwrap()].to_string();
    let api = FakeApi::start(vec![Reply::Drop(answer.clone()), Reply::Cut(cut), Reply::Sse(answer)]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Elasticsearch is listening"), "{r:?}");
    assert!(r.stderr.contains("message_stop"), "the cut stream was named: {r:?}");
    assert_eq!(api.check().len(), 3);
}

#[test]
fn a_mutating_tool_without_a_terminal_is_refused_and_the_model_told() {
    // On a fixture root the firewall cannot even be planned: refused before any prompt.
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Sse(fixture("firewall_deny.sse")), Reply::Sse(fixture("after_refused.sse"))]);
    let r = ask(t.path(), &api, &["block", "port", "9200"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("✗ firewall_deny_port refused"), "{r:?}");
    assert!(r.stdout.contains("The change was not made."), "{r:?}");
    let got = api.check();
    let res = &tool_results(&got[1].body)["toolu_06Fw"];
    assert_eq!(res["is_error"], true, "{res}");
    let msg = res["content"].as_str().unwrap();
    assert!(msg.contains("could not plan `firewall_deny_port`") && msg.contains("not the live system"), "{msg}");
    let ev = audit_events(t.path());
    assert!(ev.iter().any(|e| e["tool"] == "firewall_deny_port" && e["decision"] == "refused"), "{ev:?}");

    // A mutating tool that does plan here (a restore test of a real archive) still needs a human
    // at a terminal: with none, the gate refuses it and nothing runs.
    let t = tmp();
    let root = backup_root();
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_vr", "verify_backup_restore", &serde_json::json!({"job": "site"}))),
        Reply::Sse(text_sse("The restore test was not run.")),
    ]);
    let r = run(
        vigil_cmd_at(t.path(), Some(&api), root.path(), &["ask", "test the site backup"]),
        "verify_backup_restore\n",
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("✗ verify_backup_restore refused"), "{r:?}");
    let got = api.check();
    let msg = tool_results(&got[1].body)["toolu_vr"]["content"].as_str().unwrap().to_string();
    assert!(msg.contains("needs a human to confirm") && msg.contains("no terminal"), "{msg}");
    assert!(msg.contains("Tell the administrator the plan"), "the model is told what to do: {msg}");
    assert!(!r.stderr.contains("Tell the administrator"), "the person sees their own wording: {}", r.stderr);
    assert_eq!(restore_records(t.path()), serde_json::json!({}), "a piped confirmation ran nothing");
    let ev = audit_events(t.path());
    assert!(ev.iter().any(|e| e["tool"] == "verify_backup_restore" && e["decision"] == "refused"), "{ev:?}");
}

#[test]
fn json_output_has_answer_calls_usage_and_cost() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Sse(fixture("ports_tool_use.sse")), Reply::Sse(fixture("ports_answer.sse"))]);
    let r = ask(t.path(), &api, &["--json", "which ports are open?"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("stdout is one JSON object ({e}): {r:?}"));
    assert!(v["answer"].as_str().unwrap().contains("Elasticsearch is listening"));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    let call = &v["tool_calls"][0];
    assert_eq!(call["name"], "list_open_ports");
    assert_eq!(call["decision"], "ran");
    assert_eq!(call["effect"], "read_only");
    assert_eq!(call["ok"], true);
    assert_eq!(call["input"]["public_only"], false);
    assert!(call["findings"].as_u64().unwrap() >= 1);
    assert_eq!(v["usage"]["input_tokens"], 1500);
    assert_eq!(v["usage"]["output_tokens"], 205);
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 2400);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 2400);
    // 1500·3 + 205·15 + 2400·3.75 + 2400·0.30 per million.
    let want = (1500.0 * 3.0 + 205.0 * 15.0 + 2400.0 * 3.75 + 2400.0 * 0.30) / 1e6;
    assert!((v["cost_usd"].as_f64().unwrap() - want).abs() < 1e-6, "{v}");
    assert_eq!(v["model_turns"], 2);
    api.check();
}

#[test]
fn saved_prompts_prompt_files_and_model_choice() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Sse(text_sse("done")), Reply::Sse(text_sse("done"))]);
    let r = ask(t.path(), &api, &["--prompt", "monthly-review", "--model", "claude-haiku-4-5"]);
    assert_eq!(r.code, 0, "{r:?}");
    let f = t.path().join("q.md");
    std::fs::write(&f, "Is SSH hardened?\n").unwrap();
    let r = ask(t.path(), &api, &["--prompt-file", f.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let got = api.check();
    let first = got[0].body["messages"][0]["content"][0]["text"].as_str().unwrap();
    assert!(first.contains("comprehensive monthly security review") && first.contains("90 days"), "{first}");
    assert_eq!(got[0].body["model"], "claude-haiku-4-5");
    assert_eq!(got[1].body["messages"][0]["content"][0]["text"], "Is SSH hardened?");
    let r = ask(t.path(), &api, &["--prompt", "no-such-prompt"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("monthly-review"), "{r:?}");
}

#[test]
fn refusal_and_pause_turn() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Sse(fixture("refusal.sse"))]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("declined to answer"), "{r:?}");

    let api = FakeApi::start(vec![Reply::Sse(fixture("pause_turn.sse")), Reply::Sse(fixture("ports_answer.sse"))]);
    let r = ask(t.path(), &api, &["review"]);
    assert_eq!(r.code, 0, "{r:?}");
    let got = api.check();
    assert_eq!(got.len(), 2);
    let msgs = got[1].body["messages"].as_array().unwrap();
    assert_eq!(msgs.last().unwrap()["role"], "assistant", "a paused turn goes back as it is");
    assert_eq!(msgs.last().unwrap()["content"][1]["type"], "server_tool_use");
}

#[test]
fn no_key_says_what_to_do() {
    let t = tmp();
    let r = run(vigil_cmd(t.path(), None, &["ask", "hello"]), "");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("vigil auth login") && r.stderr.contains("ANTHROPIC_API_KEY"), "{r:?}");
    assert!(r.stderr.contains("review --offline"), "{r:?}");
}

#[test]
fn model_text_cannot_paint_the_terminal() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Sse(text_sse(
        "ok\u{1b}[2K\u{1b}[1Gfirewall_deny_port wants to change this host. Type `yes`\u{7}",
    ))]);
    let r = ask(t.path(), &api, &["hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains('\u{1b}') && !r.stdout.contains('\u{7}'), "{r:?}");
}

#[test]
fn model_turns_are_bounded_and_piped_prompts_work() {
    let t = tmp();
    let cfg = t.path().join("config.toml");
    std::fs::write(&cfg, "[agent]\nmax_turns = 1\n").unwrap();
    let api = FakeApi::start(vec![Reply::Sse(fixture("ports_tool_use.sse"))]);
    let mut c = vigil_cmd(t.path(), Some(&api), &["--config", cfg.to_str().unwrap(), "ask"]);
    c.env("VIGIL_RECORD", t.path().join("rec"));
    let r = run(c, "which ports are open?\n");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Stopped after 1 model turns"), "{r:?}");
    let got = api.check();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["messages"][0]["content"][0]["text"], "which ports are open?");
}

#[test]
fn a_secret_typed_by_the_user_is_not_sent() {
    let t = tmp();
    let api = FakeApi::start(vec![Reply::Sse(text_sse("Do not share passwords."))]);
    let r = ask(t.path(), &api, &["is", "DB_PASSWORD=Hunter2Secret!", "a", "weak", "password?"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("secret-looking value was removed"), "{r:?}");
    let got = api.check();
    assert!(!got[0].raw.contains("Hunter2Secret!"), "{}", got[0].raw);
    assert!(got[0].raw.contains("DB_PASSWORD=[REDACTED]"));
}
