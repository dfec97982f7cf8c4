//! `vigil review`, `ack`, `tools run` and `log verify` as a user and a CI job
//! meet them, through the real binary: `--fail-on` exit codes (2 when the
//! review cannot run), every output format to a file, a second review of a
//! changed host copy that names the host changes and the new and resolved
//! findings, acknowledgements that stop counting until they expire, and the
//! clear refusals (a malformed or group/world-writable config, malformed tool
//! input, an edited audit log).
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{Run, run, web1};

fn fixtures() -> PathBuf {
    vigil_testkit::fixture_hosts().to_path_buf()
}

/// The fixture hosts, copied with their dates and modes (vigil_testkit::fixture_hosts).
fn prepare() {
    vigil_testkit::fixture_hosts();
}

/// `vigil --root ROOT ARGS…` with state in `state`.
fn vigil_at(state: &Path, root: &Path, args: &[&str]) -> Run {
    prepare();
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.arg("--state-dir").arg(state).arg("--root").arg(root).args(args);
    c.env_clear();
    c.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c.env("HOME", state);
    c.env("VIGIL_NOW", "2026-11-27T00:00:00Z");
    c.env("VIGIL_KEYRING", "kernel");
    c.env("NO_COLOR", "1");
    run(c, "")
}

fn review_json(state: &Path, root: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["review", "--offline", "--format", "json"];
    args.extend_from_slice(extra);
    let r = vigil_at(state, root, &args);
    assert!(r.code == 0 || r.code == 1, "review exited {}: {}", r.code, r.stderr);
    (r.code, serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout)))
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap().to_string(), f["subject"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn fail_on_sets_the_exit_code() {
    let t = tempfile::tempdir().unwrap();
    let web1 = web1();
    let clean = fixtures().join("clean");
    // web1 has critical findings; the clean host none above medium.
    assert_eq!(vigil_at(t.path(), &web1, &["review", "--offline", "--fail-on", "critical"]).code, 1);
    let r = vigil_at(t.path(), &clean, &["review", "--offline", "--fail-on", "high"]);
    assert_eq!(r.code, 0, "the clean host has a finding at high or above:\n{}", r.stdout);
    // Without --fail-on, findings alone never fail the run.
    assert_eq!(vigil_at(t.path(), &web1, &["review", "--offline"]).code, 0);
    let bad = vigil_at(t.path(), &web1, &["review", "--offline", "--fail-on", "severe"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--fail-on severe"), "{}", bad.stderr);
}

#[test]
fn a_review_that_cannot_run_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let missing = vigil_at(&state, &t.path().join("nowhere"), &["review", "--offline", "--fail-on", "info"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("not a directory"), "{}", missing.stderr);
    let file = t.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert_eq!(vigil_at(&state, &file, &["review", "--offline"]).code, 2);

    // A malformed config names the file, the line and the key.
    let cfg = t.path().join("config.toml");
    std::fs::write(&cfg, "[review]\nkeep_reviews = 12\n\n[ports]\nallowd = []\n").unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg_s = cfg.display().to_string();
    let r = vigil_at(&state, &web1(), &["--config", &cfg_s, "review", "--offline", "--fail-on", "critical"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&cfg_s) && r.stderr.contains("line 5") && r.stderr.contains("allowd"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "no review printed: {}", r.stdout);

    // A config others may write is refused, whatever it says: world-writable, or group-writable
    // by a group other than root.
    std::fs::write(&cfg, "[review]\nkeep_reviews = 12\n").unwrap();
    for (mode, gid) in [(0o666, None), (0o660, Some(65534))] {
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&cfg, None, Some(gid)).unwrap();
        }
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(mode)).unwrap();
        let r = vigil_at(&state, &web1(), &["--config", &cfg_s, "review", "--offline"]);
        assert_eq!(r.code, 2, "mode {mode:o}: {}", r.stderr);
        assert!(r.stderr.contains("refusing to trust it") && r.stderr.contains("chmod go-w"), "{}", r.stderr);
    }
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(vigil_at(&state, &web1(), &["--config", &cfg_s, "review", "--offline"]).code, 0);
}

#[test]
fn every_format_goes_to_the_file_named() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    for (fmt, check) in [
        ("md", (|s: &str| s.starts_with('#') && s.contains("ports.exposed-datastore")) as fn(&str) -> bool),
        ("json", |s: &str| {
            serde_json::from_str::<Value>(s).is_ok_and(|v| v["version"] == 1 && v["findings"].is_array())
        }),
        ("html", |s: &str| s.contains("<html") && s.contains("</html>") && s.contains("ports.exposed-datastore")),
        ("text", |s: &str| s.contains("CRITICAL") && s.contains("ports.exposed-datastore")),
    ] {
        let out = t.path().join(format!("review.{fmt}"));
        let out_s = out.display().to_string();
        let r = vigil_at(&state, &web1(), &["review", "--offline", "--format", fmt, "--out", &out_s]);
        assert_eq!(r.code, 0, "{fmt}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{fmt}: with --out nothing goes to stdout: {}", r.stdout);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(check(&text), "{fmt}:\n{}", &text[..text.len().min(2000)]);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{fmt}: a report names accounts and weaknesses: only its owner reads it");
        assert!(!text.contains(support::PLANTED), "{fmt}: the planted password is in the report");
    }
    let r = vigil_at(&state, &web1(), &["review", "--offline", "--out", "/nonexistent/dir/r.txt"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/dir/r.txt"), "{}", r.stderr);
}

/// Copy a fixture host, keeping modes and modification times.
fn copy_host(name: &str, to: &Path) -> PathBuf {
    prepare();
    let dest = to.join(name);
    let st = Command::new("cp").arg("-a").arg(fixtures().join(name)).arg(&dest).status().unwrap();
    assert!(st.success());
    dest
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_second_review_names_what_changed() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let root = copy_host("web1", t.path());
    let (_, first) = review_json(&state, &root, &[]);
    assert!(first["changes"]["since"].is_null(), "the first review has nothing to compare with");
    let before = pairs(&first["findings"]);
    assert!(before.iter().any(|(id, _)| id == "hardening.php-in-uploads"));

    // A month later: MongoDB listening on every address, a new cron job, a new sudoer; the web shell removed.
    append(
        &root.join("proc/net/tcp"),
        "   8: 00000000:6989 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1099 1 0000000000000000 100 0 0 10 0\n",
    );
    std::fs::write(root.join("etc/cron.d/sync"), "*/5 * * * * root /usr/local/bin/sync-uploads.sh\n").unwrap();
    append(&root.join("etc/passwd"), "mallory:x:1042:1042:Mallory,,,:/home/mallory:/bin/bash\n");
    append(
        &root.join("etc/shadow"),
        "mallory:$y$j9T$fixturesaltfixture$NotARealHashOnlyAFixtureValueForVigilTest1:20780:0:99999:7:::\n",
    );
    append(&root.join("etc/group"), "mallory:x:1042:\n");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    let group = group.replace("sudo:x:27:alice,contractor-jane", "sudo:x:27:alice,contractor-jane,mallory");
    std::fs::write(root.join("etc/group"), group).unwrap();
    std::fs::remove_file(root.join("home/client2/public_html/wp-content/uploads/2024/11/wp-cache.php")).unwrap();

    let (_, second) = review_json(&state, &root, &[]);
    let ch = &second["changes"];
    assert_eq!(ch["since"], first["generated_at"], "{ch:#}");
    let host: Vec<(String, String, String)> = ch["host"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
                c["item"].as_str().unwrap().into(),
            )
        })
        .collect();
    let has = |kind: &str, change: &str, item: &str| {
        host.iter().any(|(k, c, i)| k == kind && c == change && i.contains(item))
    };
    assert!(has("listeners", "added", ":27017"), "{host:#?}");
    assert!(has("cron_jobs", "added", "sync-uploads.sh"), "{host:#?}");
    assert!(has("privileged_accounts", "added", "mallory"), "{host:#?}");
    assert!(!host.iter().any(|(_, c, _)| c == "removed"), "nothing was removed: {host:#?}");

    let new = pairs(&ch["new"]);
    assert!(new.iter().any(|(id, s)| id == "ports.exposed-datastore" && s == "tcp:27017"), "{new:#?}");
    assert!(new.iter().any(|(_, s)| s.contains("mallory")), "a finding about the new sudoer: {new:#?}");
    let after = pairs(&second["findings"]);
    for n in &new {
        assert!(!before.contains(n) && after.contains(n), "{n:?} is not new");
    }
    let resolved = pairs(&ch["resolved"]);
    assert_eq!(resolved, vec![("hardening.php-in-uploads".to_string(), "/home/client2/public_html".to_string())]);
    assert_eq!(second["summary"]["new"], new.len());
    assert_eq!(second["summary"]["resolved"], 1);

    // The text report says it too.
    let r = vigil_at(&state, &root, &["review", "--offline"]);
    assert!(r.stdout.contains("mallory") && r.stdout.contains("27017"), "{}", r.stdout);
}

#[test]
fn acknowledged_findings_stop_counting_until_they_expire() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let web1 = web1();
    let (code, v) = review_json(&state, &web1, &["--fail-on", "critical"]);
    assert_eq!(code, 1);
    let critical: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "critical")
        .map(|f| (f["id"].as_str().unwrap().to_string(), f["subject"].as_str().unwrap().to_string()))
        .collect();
    assert!(critical.len() >= 2, "{critical:?}");
    let ack = |(id, subject): &(String, String), until: &str| {
        let r = vigil_at(
            &state,
            &web1,
            &["ack", id, "--subject", subject, "--reason", "accepted by the test", "--until", until],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains(&format!("Acknowledged {id} on {subject} until {until}")), "{}", r.stdout);
    };
    // The first one's acknowledgement expired before "now" (2026-11-27); the others run into next year.
    ack(&critical[0], "2026-11-26");
    for c in &critical[1..] {
        ack(c, "2027-06-30");
    }
    let (code, v) = review_json(&state, &web1, &["--fail-on", "critical"]);
    assert_eq!(code, 1, "the expired acknowledgement still counts");
    let open = pairs(&v["findings"]);
    assert!(open.contains(&critical[0]));
    let acked: Vec<(String, String)> = v["acknowledged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["finding"]["id"].as_str().unwrap().into(), a["finding"]["subject"].as_str().unwrap().into()))
        .collect();
    assert_eq!(acked.len(), critical.len() - 1);
    for c in &critical[1..] {
        assert!(acked.contains(c) && !open.contains(c), "{c:?}");
    }
    assert_eq!(v["summary"]["acknowledged"], critical.len() - 1);
    assert_eq!(v["summary"]["by_severity"]["critical"], 1);

    ack(&critical[0], "2027-01-31");
    let (code, v) = review_json(&state, &web1, &["--fail-on", "critical"]);
    assert_eq!(code, 0, "every critical finding is acknowledged");
    assert_eq!(v["summary"]["by_severity"]["critical"], 0);
    assert_eq!(v["acknowledged"].as_array().unwrap().len(), critical.len());
    let text = vigil_at(&state, &web1, &["review", "--offline"]);
    assert!(text.stdout.contains("accepted by the test"), "acknowledgements are shown with their reason");

    let bad = vigil_at(&state, &web1, &["ack", &critical[0].0, "--reason", "r", "--until", "next week"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--until next week"), "{}", bad.stderr);

    // An id no check produces is refused, with the closest ones.
    let typo = vigil_at(&state, &web1, &["ack", "ports.exposed-datstore", "--reason", "r"]);
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(
        typo.stderr.contains("no check produces") && typo.stderr.contains("ports.exposed-datastore"),
        "{}",
        typo.stderr
    );

    // list (text and JSON) and remove.
    let list = vigil_at(&state, &web1, &["ack", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_eq!(list.stdout.lines().count(), critical.len(), "{}", list.stdout);
    assert!(
        list.stdout.contains("accepted by the test") && list.stdout.contains("until 2027-01-31"),
        "{}",
        list.stdout
    );
    let json = vigil_at(&state, &web1, &["ack", "list", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(critical.len()));
    let (id, subject) = &critical[0];
    let rm = vigil_at(&state, &web1, &["ack", "remove", id, "--subject", subject]);
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    assert!(rm.stdout.contains("Removed 1 acknowledgement"), "{}", rm.stdout);
    let (code, v) = review_json(&state, &web1, &["--fail-on", "critical"]);
    assert_eq!(code, 1, "the removed acknowledgement counts again");
    assert!(pairs(&v["findings"]).contains(&critical[0]));
    let again = vigil_at(&state, &web1, &["ack", "remove", id, "--subject", subject]);
    assert_eq!(again.code, 2, "nothing left to remove is an error: {}", again.stdout);
}

#[test]
fn malformed_tool_input_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let r = vigil_at(t.path(), &web1(), &["tools", "run", "list_open_ports", "{\"port\": "]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not valid JSON") && r.stderr.contains("line 1"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    // Well-formed JSON the schema rejects, or an unknown tool: the gate refuses the call (exit 1), saying why.
    let r = vigil_at(t.path(), &web1(), &["tools", "run", "list_open_ports", "{\"no_such_field\": 1}"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no_such_field") && r.stdout.is_empty(), "{}", r.stderr);
    let r = vigil_at(t.path(), &web1(), &["tools", "run", "no_such_tool"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no_such_tool"), "{}", r.stderr);
}

#[test]
fn an_edited_audit_log_fails_verification_naming_the_line() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path();
    for _ in 0..3 {
        assert_eq!(vigil_at(state, &web1(), &["tools", "run", "check_ssh"]).code, 0);
    }
    let ok = vigil_at(state, &web1(), &["log", "verify"]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("intact: 3 entries"), "{}", ok.stdout);

    let log = state.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert_eq!(lines.len(), 3);
    // Someone hides that the second call happened at all: they change its decision.
    assert!(lines[1].contains("\"decision\":\"ran\""), "{}", lines[1]);
    lines[1] = lines[1].replace("\"decision\":\"ran\"", "\"decision\":\"refused\"");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let r = vigil_at(state, &web1(), &["log", "verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("BROKEN at line 2") && r.stdout.contains("edited"), "{}", r.stdout);

    // Cutting the last line off is caught by the head kept apart.
    std::fs::write(&log, text.lines().take(2).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let r = vigil_at(state, &web1(), &["log", "verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("BROKEN at line 3") && r.stdout.contains("cut off"), "{}", r.stdout);
}

#[test]
fn report_says_when_the_trend_starts_and_auth_status_has_json() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let r = vigil_at(&state, &web1(), &["review", "--offline"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rep = vigil_at(&state, &web1(), &["report"]);
    assert_eq!(rep.code, 0, "{}", rep.stderr);
    assert!(
        rep.stdout.contains("TREND: starts with next month's review (only 2026-11 is saved so far"),
        "{}",
        rep.stdout
    );
    assert!(!rep.stdout.contains("month     critical"), "no one-row table posing as a trend: {}", rep.stdout);

    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.arg("--state-dir").arg(&state).args(["auth", "status", "--json"]);
    c.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", &state).env("VIGIL_KEYRING", "kernel");
    c.env("ANTHROPIC_API_KEY", support::KEY);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["api_key"]["present"], true, "{v}");
    assert!(v["api_key"]["source"].as_str().unwrap().contains("ANTHROPIC_API_KEY"), "{v}");
    assert!(!text.contains(support::KEY), "the key itself is never shown");
}

#[test]
fn an_empty_root_and_a_missing_config_are_errors() {
    let t = tempfile::tempdir().unwrap();
    let empty = t.path().join("mnt");
    std::fs::create_dir(&empty).unwrap();
    let r = vigil_at(&t.path().join("state"), &empty, &["review", "--offline"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("is empty") && r.stderr.contains("mounted"), "{}", r.stderr);
    let r = vigil_at(&t.path().join("state"), &web1(), &["--config", "/nonexistent/vigil.toml", "review", "--offline"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("/nonexistent/vigil.toml") && r.stderr.contains("no such file"), "{}", r.stderr);
}
