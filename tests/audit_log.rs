//! The audit log through the real binary: an oversized tool argument no longer
//! stops the log, every report format carries the chain head, the configured
//! syslog (a real UDP listener) gets each entry's hash, and, against a
//! real `systemd-journald` (run alone in a private mount namespace, since this
//! machine has no systemd), `vigil log verify` checks the chain against the
//! journal's anchors and catches what the files alone cannot: a recomputed
//! chain, a cut log with a rewritten head, both files deleted.
//!
//! The journald test needs root, `unshare`, `nsenter` and `systemd-journald`:
//! missing, it fails under `VIGIL_SYSTEM_TESTS=1` and is skipped (saying so) otherwise.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{Run, run, vigil_cmd};

fn lines(state: &Path) -> Vec<String> {
    std::fs::read_to_string(state.join("audit.jsonl")).unwrap().lines().map(String::from).collect()
}

#[test]
fn an_oversized_tool_argument_does_not_stop_the_audit_log() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path();
    let big = format!("{{\"path\": \"{}\"}}", "A".repeat(70_000));
    let r = run(vigil_cmd(state, None, &["tools", "run", "no_such_tool", &big]), "");
    assert_eq!(r.code, 1, "{r:?}");
    for _ in 0..2 {
        let r = run(vigil_cmd(state, None, &["tools", "run", "check_ssh"]), "");
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!r.stderr.contains("audit log"), "no audit warning after a 70 kB argument: {}", r.stderr);
    }
    let v = run(vigil_cmd(state, None, &["log", "verify"]), "");
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("audit log intact: 3 entries"), "{}", v.stdout);
    let first: Value = serde_json::from_str(&lines(state)[0]).unwrap();
    let logged = &first["event"]["input"]["path"];
    assert_eq!(logged["bytes"], 70_000, "{first}");
    assert_eq!(logged["sha256"], hex::encode(Sha256::digest("A".repeat(70_000))));
    assert!(lines(state).iter().all(|l| l.len() < 20_000), "every entry is capped");
}

#[test]
fn every_report_format_carries_the_audit_chain_head() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path();
    let mut outs = Vec::new();
    for (fmt, ext) in [("text", "txt"), ("md", "md"), ("html", "html"), ("json", "json")] {
        let out = state.join(format!("report.{ext}"));
        let r =
            run(vigil_cmd(state, None, &["review", "--offline", "--format", fmt, "--out", out.to_str().unwrap()]), "");
        assert!(r.code == 0 || r.code == 1, "{r:?}");
        // The head as it was when this report was written: the review's own tool calls are in it.
        let head: Value = serde_json::from_slice(&std::fs::read(state.join("audit.head")).unwrap()).unwrap();
        outs.push((fmt, std::fs::read_to_string(&out).unwrap(), head));
    }
    for (fmt, text, head) in &outs {
        let (seq, hash) = (head["seq"].as_u64().unwrap(), head["hash"].as_str().unwrap());
        assert!(seq > 0);
        if *fmt == "json" {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["audit_head"], *head, "{fmt}");
            // ...and so does the notification of that review, in its text and its JSON.
            let r: vigil::review::Review = serde_json::from_str(text).unwrap();
            let note = vigil::notify::Note::for_review(&r, &[]);
            assert!(note.body.contains(&format!("audit log head: entry {seq} sha256 {hash}")), "{}", note.body);
            assert_eq!(note.json["audit_head"], *head);
        } else {
            let line = format!("audit log head: entry {seq} sha256 {hash}");
            assert_eq!(text.matches(&line).count(), 1, "{fmt}: one line `{line}` in\n{text}");
        }
    }
}

/// Where each program is (the test requires them first).
fn paths(progs: &[&str]) -> Vec<PathBuf> {
    progs
        .iter()
        .map(|p| {
            ["/usr/sbin", "/usr/bin", "/usr/lib/systemd"]
                .iter()
                .map(|d| Path::new(d).join(p))
                .find(|p| p.is_file())
                .unwrap()
        })
        .collect()
}

/// A real journald alone in a private mount namespace (its own /run and /var/log/journal),
/// killed when dropped; commands run inside with `nsenter`.
struct Journald(Child);

impl Journald {
    fn start(journald: &Path) -> Journald {
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/systemd/journal /run/log/journal; \
             if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; \
             else mount -t tmpfs tmpfs /var/log; mkdir /var/log/journal; fi; exec {}",
            journald.display()
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let j = Journald(child);
        let start = Instant::now();
        while !j.sh("test -S /run/systemd/journal/socket").status.success() {
            assert!(start.elapsed() < Duration::from_secs(10), "journald did not create its socket");
            std::thread::sleep(Duration::from_millis(100));
        }
        j
    }

    fn enter(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.0.id().to_string(), "-m", "--", prog]);
        c
    }

    fn sh(&self, cmd: &str) -> std::process::Output {
        self.enter("sh").args(["-c", cmd]).output().unwrap()
    }

    /// `vigil ARGS` inside the namespace, with the usual clean test environment.
    fn vigil(&self, state: &Path, args: &[&str]) -> Run {
        let proto = vigil_cmd(state, None, args);
        let mut c = self.enter(env!("CARGO_BIN_EXE_vigil"));
        c.args(proto.get_args());
        c.env_clear();
        for (k, v) in proto.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        run(c, "")
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a root attacker does: change entries, recompute every hash and the head.
fn rechain(state: &Path, edit: impl Fn(&mut Vec<Value>)) {
    let mut es: Vec<Value> = lines(state).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    edit(&mut es);
    let mut prev = "0".repeat(64);
    for (i, e) in es.iter_mut().enumerate() {
        let seq = i as u64 + 1;
        let mut h = Sha256::new();
        h.update(prev.as_bytes());
        h.update(seq.to_string().as_bytes());
        h.update(e["ts"].as_str().unwrap().as_bytes());
        h.update(serde_json::to_vec(&e["event"]).unwrap());
        let hash = hex::encode(h.finalize());
        e["seq"] = seq.into();
        e["prev"] = prev.clone().into();
        e["hash"] = hash.clone().into();
        prev = hash;
    }
    let text: String = es.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(state.join("audit.jsonl"), text).unwrap();
    std::fs::write(state.join("audit.head"), serde_json::json!({"seq": es.len(), "hash": prev}).to_string()).unwrap();
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "unshare",
        vigil_missing = "nsenter",
        vigil_missing = "/usr/lib/systemd/systemd-journald",
        vigil_missing = "journalctl"
    ),
    ignore = "needs root, unshare, nsenter, systemd-journald, journalctl (.ci/packages/audit.txt)"
)]
fn a_real_journal_anchors_the_chain_and_verify_catches_a_rewrite() {
    vigil_testkit::require(&["root", "unshare", "nsenter", "/usr/lib/systemd/systemd-journald", "journalctl"]);
    let progs = paths(&["unshare", "nsenter", "systemd-journald", "journalctl"]);
    let j = Journald::start(&progs[2]);
    let t = tempfile::tempdir().unwrap();
    let state = t.path();
    for _ in 0..3 {
        let r = j.vigil(state, &["tools", "run", "check_ssh"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(!r.stderr.contains("audit"), "{}", r.stderr);
    }
    let v = j.vigil(state, &["log", "verify"]);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("audit log intact: 3 entries"), "{}", v.stdout);
    assert!(v.stdout.contains("anchored in the journal up to seq 3 (matches)"), "{}", v.stdout);
    assert!(v.stdout.contains("not sealed"), "{}", v.stdout);

    // The journal holds the seq and hash of each entry, nothing of what was called.
    let out =
        j.enter("journalctl").args(["-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=vigil-audit"]).output().unwrap();
    let recs: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(recs.len(), 3, "{}", String::from_utf8_lossy(&out.stdout));
    for (i, (rec, line)) in recs.iter().zip(lines(state)).enumerate() {
        let e: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(rec["VIGIL_AUDIT_SEQ"], (i + 1).to_string());
        assert_eq!(rec["VIGIL_AUDIT_HASH"], e["hash"]);
        // Not even in the journal's own fields: journald records the sender's command line,
        // and the sender is `logger`, not vigil (whose arguments may hold what an admin typed).
        assert!(!rec.to_string().contains("check_ssh"), "{rec}");
        // journald reads the sender's name from /proc when the record arrives; a logger that has
        // already exited leaves the field out, which is fine: it must never be vigil.
        assert!(rec.get("_COMM").is_none_or(|c| c == "logger"), "{rec}");
        assert!(rec.get("_CMDLINE").is_none_or(|c| !c.to_string().contains("vigil")), "{rec}");
    }
    let saved = (std::fs::read(state.join("audit.jsonl")).unwrap(), std::fs::read(state.join("audit.head")).unwrap());
    let restore = || {
        std::fs::write(state.join("audit.jsonl"), &saved.0).unwrap();
        std::fs::write(state.join("audit.head"), &saved.1).unwrap();
    };

    // Someone hides that the second call ran, recomputing the chain and its head.
    rechain(state, |es| es[1]["event"]["decision"] = "refused".into());
    let off_host = run(vigil_cmd(state, None, &["log", "verify"]), "");
    assert_eq!(off_host.code, 0, "without the journal the files alone verify: {off_host:?}");
    assert!(off_host.stdout.contains("not anchored") && off_host.stdout.contains("undetected"), "{}", off_host.stdout);
    let v = j.vigil(state, &["log", "verify"]);
    assert_eq!(v.code, 1, "{v:?}");
    assert!(v.stdout.contains("BROKEN against the journal: entry 2"), "{}", v.stdout);

    // They cut the last entry and rewrite the head.
    restore();
    rechain(state, |es| es.truncate(2));
    let v = j.vigil(state, &["log", "verify"]);
    assert_eq!(v.code, 1, "{v:?}");
    assert!(v.stdout.contains("ends at entry 2 but the journal has entries up to seq 3"), "{}", v.stdout);

    // They delete both files.
    restore();
    std::fs::remove_file(state.join("audit.jsonl")).unwrap();
    std::fs::remove_file(state.join("audit.head")).unwrap();
    let v = j.vigil(state, &["log", "verify"]);
    assert_eq!(v.code, 1, "{v:?}");
    assert!(v.stdout.contains("log missing but the journal has entries up to seq 3"), "{}", v.stdout);

    // Put back, the log verifies again and new entries are anchored as they come.
    restore();
    assert_eq!(j.vigil(state, &["tools", "run", "check_ssh"]).code, 0);
    let v = j.vigil(state, &["log", "verify"]);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("anchored in the journal up to seq 4 (matches)"), "{}", v.stdout);

    // With Forward Secure Sealing set up, verify says the journal is sealed.
    let fss = j.sh("mkdir -p /var/log/journal/$(cat /etc/machine-id) && journalctl --setup-keys --force");
    assert!(fss.status.success(), "{}", String::from_utf8_lossy(&fss.stderr));
    let v = j.vigil(state, &["log", "verify"]);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("the journal is sealed (Forward Secure Sealing)"), "{}", v.stdout);
}

fn write_config(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn the_configured_syslog_gets_each_entry_and_a_malformed_one_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let cfg = t.path().join("config.toml");
    let srv = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    srv.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let target = format!("udp://{}", srv.local_addr().unwrap());
    write_config(&cfg, &format!("[audit]\nsyslog = \"{target}\"\n"));
    let with_cfg = |args: &[&str]| {
        let mut a = vec!["--config", cfg.to_str().unwrap()];
        a.extend_from_slice(args);
        run(vigil_cmd(&state, None, &a), "")
    };
    let r = with_cfg(&["tools", "run", "check_ssh"]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut buf = vec![0u8; 4096];
    let n = srv.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    let head: Value = serde_json::from_slice(&std::fs::read(state.join("audit.head")).unwrap()).unwrap();
    assert!(line.starts_with("<86>1 ") && line.contains(" vigil-audit "), "{line}");
    assert!(line.contains(&format!("seq=\"1\" hash=\"{}\"", head["hash"].as_str().unwrap())), "{line}");
    assert!(!line.contains("check_ssh"), "nothing of the call: {line}");
    let v = with_cfg(&["log", "verify"]);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains(&format!("also goes to syslog {target}")), "{}", v.stdout);

    write_config(&cfg, "[audit]\nsyslog = \"logs.example.org:514\"\n");
    let r = with_cfg(&["log", "verify"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("expected udp://HOST:PORT or tcp://HOST:PORT"), "{}", r.stderr);
    assert!(r.stderr.contains("config.toml"), "names the file: {}", r.stderr);
}
