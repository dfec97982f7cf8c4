//! Secrets planted in a fixture host never leave it: not in `vigil review`'s
//! output in any format, the report files, the summary request to the API
//! (including the "changes" since the last review), the webhook notification,
//! `vigil ask`'s requests, the transcript, the audit log, nor an MCP tool result.
//!
//! The fixture host web1 is copied, then given cron lines in the shapes that
//! passed the redactor before (issue 14: `curl -u user:S`, `sshpass -p S`,
//! `lftp -u user,S`, `STRIPE_KEY=sk_live_…`, a MongoDB URL whose password holds
//! a `/`, a Telegram bot URL, a quoted `'--password=two words'`) and live
//! processes with `--requirepass -S`, `--spring.datasource.password S` and an
//! argument `--password=two words`. Every planted secret contains `PLANTED`,
//! so one search finds any piece of any of them.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed unwrap is a failed test")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const MARK: &str = "PLANTED";

const CRON: &str = "\
0 5 * * * root curl -fsS -u backup:PLANTED-curl-Q7x -T /backup/site.tgz ftp://ftp.example.net/
10 5 * * * root sshpass -p PLANTED-sshpass-3k rsync -a /var/www/ backup@nas:/www/
20 5 * * * root lftp -u backup,PLANTED-lftp-9z -e 'mirror -R /var/www /www; quit' ftp.example.net
30 5 * * * root STRIPE_KEY=sk_live_PLANTEDstripe0123456789 /usr/bin/php /var/www/shop/cron.php
40 5 * * * root mongodump --uri mongodb://admin:PLANTED-mongo/slash@db:27017/shop --out /backup/mongo
50 5 * * * root curl -s https://api.telegram.org/bot123456:PLANTEDtelegram0123456789abcdef/sendMessage
55 5 * * * root /opt/sync '--password=PLANTEDone PLANTEDtwo' --host db
";

/// A copy of web1 with live processes carrying secrets on their command lines.
fn planted_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let st = Command::new("cp").arg("-a").arg(web1()).arg(t.path().join("web1")).status().unwrap();
    assert!(st.success(), "copying the fixture host");
    let root = t.path().join("web1");
    let argv = |pid: u32, args: &[&str]| {
        let mut b = Vec::new();
        for a in args {
            b.extend_from_slice(a.as_bytes());
            b.push(0);
        }
        std::fs::write(root.join(format!("proc/{pid}/cmdline")), b).unwrap();
    };
    argv(700, &["/usr/bin/redis-server", "127.0.0.1:6379", "--requirepass", "-PLANTED-dash-5r"]);
    argv(
        800,
        &[
            "/usr/share/elasticsearch/jdk/bin/java",
            "--spring.datasource.password",
            "PLANTED-spring-4w",
            "--password=PLANTEDthree PLANTEDfour",
            "-Des.path.home=/usr/share/elasticsearch",
        ],
    );
    t
}

fn plant_cron(root: &Path) {
    std::fs::write(root.join("etc/cron.d/planted"), CRON).unwrap();
}

/// Where any piece of a planted secret shows in `text`.
fn leak(text: &str) -> Option<String> {
    let i = text.find(MARK).or_else(|| text.find(PLANTED))?;
    let from = text[..i].char_indices().rev().nth(60).map_or(0, |(j, _)| j);
    Some(text[from..].chars().take(140).collect())
}

fn assert_clean(what: &str, text: &str) {
    if let Some(around) = leak(text) {
        panic!("a planted secret reached {what}: …{around}…");
    }
}

/// Every file under `dir`, by path.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { todo.push(p) } else { out.push(p) }
        }
    }
    out
}

#[test]
fn planted_secrets_reach_no_report_request_transcript_or_audit_log() {
    let t = planted_root();
    let root = t.path().join("web1");
    let state = t.path().join("state");

    // A first review, then the cron lines appear: the next review reports them as changes.
    let r = run(vigil_cmd_at(&state, None, &root, &["review", "--offline", "--format", "json"]), "");
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    plant_cron(&root);

    // The scheduled review: the summary request, the report files in every format, the webhook.
    let (url, bodies) = http_server(200, 4, "/hook");
    let cfg = t.path().join("config.toml");
    std::fs::write(&cfg, format!("[[notify.webhooks]]\nurl = \"{url}\"\nkind = \"json\"\n")).unwrap();
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let api = FakeApi::start(vec![Reply::Sse(text_sse("1. Close tcp:9200."))]);
    let cfg_arg = cfg.display().to_string();
    let r = run(vigil_cmd_at(&state, Some(&api), &root, &["--config", &cfg_arg, "review", "--scheduled"]), "");
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert_clean("the scheduled review's output", &format!("{}{}", r.stdout, r.stderr));
    let note = bodies.recv_timeout(Duration::from_secs(10)).expect("the webhook got the notification");
    assert_clean("the webhook notification", &note);
    assert!(note.contains("[REDACTED]"), "the planted cron lines are in the notification's changes: {note}");
    let got = api.received();
    assert_eq!(got.len(), 1, "one summary request");
    assert_clean("the summary request", &got[0].raw);
    // The changes went out, redacted: the planted cron lines are there, their secrets are not.
    let input = got[0].body["messages"][0]["content"][0]["text"].as_str().unwrap();
    assert!(input.contains("backup:[REDACTED]") && input.contains("sshpass -p [REDACTED]"), "{input}");
    let reports: Vec<_> = files_under(&state.join("reports"));
    let exts: std::collections::BTreeSet<String> =
        reports.iter().filter_map(|p| p.extension().map(|e| e.to_string_lossy().into_owned())).collect();
    assert!(["html", "json", "md", "txt"].iter().all(|e| exts.contains(*e)), "{exts:?}");
    for p in &reports {
        assert_clean(&p.display().to_string(), &String::from_utf8_lossy(&std::fs::read(p).unwrap()));
    }

    // `vigil review` on stdout, in every format.
    for format in ["text", "md", "json", "html"] {
        let r = run(vigil_cmd_at(&state, None, &root, &["review", "--offline", "--format", format]), "");
        assert!(r.code == 0 || r.code == 1, "{format}: {}", r.stderr);
        assert!(r.stdout.len() > 1000, "{format}: a whole review");
        assert_clean(&format!("review --format {format}"), &format!("{}{}", r.stdout, r.stderr));
    }
    let r = run(vigil_cmd_at(&state, None, &root, &["review", "--offline", "--format", "json"]), "");
    assert!(r.stdout.contains("lftp -u backup,[REDACTED]"), "the cron line is in the review, redacted");
    // A fix the admin follows by typing a value names a placeholder, never the mask.
    let review: Value = serde_json::from_str(&r.stdout).unwrap();
    let fixes: Vec<&str> =
        review["findings"].as_array().unwrap().iter().filter_map(|f| f["remediation"].as_str()).collect();
    assert!(fixes.iter().any(|f| f.contains("IDENTIFIED BY 'NEW-PASSWORD'")), "{fixes:#?}");
    for f in &fixes {
        assert!(!f.contains("[REDACTED"), "a fix tells the admin to type the mask: {f}");
    }

    // `vigil ask`: the model calls the tools that read processes and cron jobs.
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_p", "list_open_ports", &json!({}))),
        Reply::Sse(tool_use_sse("toolu_b", "check_backups", &json!({}))),
        Reply::Sse(text_sse("Done.")),
    ]);
    let r = run(vigil_cmd_at(&state, Some(&api), &root, &["ask", "what listens and what backs up?"]), "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_clean("ask's output", &format!("{}{}", r.stdout, r.stderr));
    let got = api.check();
    assert_eq!(got.len(), 3);
    for (n, req) in got.iter().enumerate() {
        assert_clean(&format!("ask request {}", n + 1), &req.raw);
    }
    let ports = tool_results(&got[1].body)["toolu_p"]["content"].as_str().unwrap().to_string();
    assert!(ports.contains("--requirepass [REDACTED]"), "the live command line is there, redacted: {ports}");
    assert!(ports.contains("--spring.datasource.password [REDACTED]"), "{ports}");

    // Everything vigil keeps: transcripts, the audit log, history, snapshots, reports.
    let kept = files_under(&state);
    assert!(kept.iter().any(|p| p.starts_with(state.join("transcripts"))), "a transcript was saved");
    assert!(kept.iter().any(|p| p.ends_with("audit.jsonl")), "the audit log was written");
    for p in kept {
        assert_clean(&p.display().to_string(), &String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
    }
}

#[tokio::test]
async fn planted_secrets_reach_no_mcp_result() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;

    let t = planted_root();
    let root = t.path().join("web1");
    plant_cron(&root);
    let state = t.path().join("state");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("--root").arg(&root).arg("--state-dir").arg(&state).arg("mcp");
    cmd.env("VIGIL_NOW", "2026-11-27T00:00:00Z");
    let (transport, _) = TokioChildProcess::builder(cmd).spawn().expect("spawn vigil mcp");
    let wait = Duration::from_secs(60);
    let s = tokio::time::timeout(wait, ().serve(transport)).await.expect("initialize in time").expect("initialize");
    let mut seen = String::new();
    for tool in ["list_open_ports", "check_backups", "audit_accounts"] {
        let p = CallToolRequestParams::new(tool.to_string()).with_arguments(serde_json::Map::new());
        let r = tokio::time::timeout(wait, s.call_tool(p)).await.expect("answer in time").expect(tool);
        let text = serde_json::to_string(&r).unwrap();
        assert_clean(&format!("the MCP result of {tool}"), &text);
        seen.push_str(&text);
    }
    s.cancel().await.unwrap();
    assert!(seen.contains("--requirepass [REDACTED]"), "the redacted command line came back");
    let audit: Vec<Value> = audit_events(&state);
    assert!(!audit.is_empty());
    assert_clean("the audit log", &std::fs::read_to_string(state.join("audit.jsonl")).unwrap());
}
