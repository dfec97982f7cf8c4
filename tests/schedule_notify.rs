//! The monthly habit end to end: `schedule install` on a root, the service's
//! ExecStart run by hand producing reports and a notification, a real SMTP
//! conversation with STARTTLS (aiosmtpd), webhooks to a local HTTP server,
//! a failed notification shown at the top of the next review, the overdue
//! notice, and `remove` undoing `install`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn vigil() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

fn fixture(name: &str) -> PathBuf {
    vigil_testkit::fixture_hosts().join(name)
}

/// Debian's python (python3-aiosmtpd is a Debian package; a pyenv python earlier on PATH lacks it).
fn debian_python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(vigil()).args(args).env_remove("ANTHROPIC_API_KEY").stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn write_config(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

#[test]
#[cfg_attr(vigil_missing = "systemd-analyze", ignore = "needs systemd-analyze (.ci/packages/notify.txt)")]
fn systemd_install_then_exec_start_by_hand_reports_and_notifies() {
    vigil_testkit::require(&["systemd-analyze"]);
    let t = tempfile::tempdir().unwrap();
    // An audited root that looks like a systemd host: a copy of the messy fixture.
    let root = t.path().join("root");
    let cp = Command::new("cp")
        .args(["-a", &fixture("web1").display().to_string(), &root.display().to_string()])
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    let state = t.path().join("state");
    let (url, bodies) = support::http_server(200, 4, "/hook/T0KEN");
    let cfg = t.path().join("config.toml");
    write_config(&cfg, &format!("[[notify.webhooks]]\nurl = \"{url}\"\nkind = \"json\"\n"));
    let (root_s, state_s, cfg_s) = (root.display().to_string(), state.display().to_string(), cfg.display().to_string());
    let g = ["--root", root_s.as_str(), "--state-dir", state_s.as_str(), "--config", cfg_s.as_str()];

    let (code, out, err) = run(&[&g[..], &["schedule", "install", "--monthly"]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("via systemd"), "{out}");
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/vigil-review.service")).unwrap();
    let timer = std::fs::read_to_string(root.join("etc/systemd/system/vigil-review.timer")).unwrap();
    assert!(
        timer.contains("Persistent=true")
            && timer.contains("RandomizedDelaySec")
            && timer.contains("OnCalendar=*-*-01")
    );
    for want in ["NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict", &format!("ReadWritePaths={state_s}")]
    {
        assert!(unit.contains(want), "{want}: {unit}");
    }
    // systemd itself checks the units it would load.
    {
        let v = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(root.join("etc/systemd/system/vigil-review.timer"))
            .arg(root.join("etc/systemd/system/vigil-review.service"))
            .output()
            .unwrap();
        let msg = String::from_utf8_lossy(&v.stderr);
        // Without systemd as PID 1 verify may complain about the environment, never about our keys.
        assert!(!msg.contains("Unknown key") && !msg.contains("Invalid") && !msg.contains("bad-setting"), "{msg}");
    }
    let (_, status, _) = run(&[&g[..], &["schedule", "status"]].concat());
    assert!(status.contains("Last run: never") && status.contains("Next run: "), "{status}");
    let (_, json, _) = run(&[&g[..], &["schedule", "status", "--json"]].concat());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["installed"]["backend"], "systemd", "{v}");
    assert!(v["last_run"].is_null() && v["next_run"].is_i64(), "{v}");

    // Run the service's ExecStart line by hand.
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    let out = Command::new("sh").arg("-c").arg(exec).env_remove("ANTHROPIC_API_KEY").output().unwrap();
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{}", String::from_utf8_lossy(&out.stderr));
    let reports: Vec<String> = std::fs::read_dir(state.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for ext in ["json", "md", "html", "txt"] {
        assert!(reports.iter().any(|r| r.ends_with(ext)), "{ext} report missing: {reports:?}");
    }
    let body = bodies.recv_timeout(Duration::from_secs(10)).expect("the webhook got the notification");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["headline"].as_str().unwrap().contains("critical"), "{v}");
    assert!(!body.contains("Company2024"), "a secret reached the webhook");
    // The audit chain head leaves the host with the notification.
    let head = &v["audit_head"];
    assert!(head["seq"].as_u64().unwrap() > 0 && head["hash"].as_str().unwrap().len() == 64, "{v}");
    let log = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    assert!(log.contains(&format!("\"hash\":{}", head["hash"])), "the head is an entry of the log: {head}");
    let (_, status, _) = run(&[&g[..], &["schedule", "status"]].concat());
    assert!(status.contains("Last run: 20"), "{status}");

    let (code, out, _) = run(&[&g[..], &["schedule", "remove"]].concat());
    assert_eq!(code, 0);
    assert!(out.contains("removed /etc/systemd/system/vigil-review.service"), "{out}");
    assert!(!root.join("etc/systemd/system/vigil-review.timer").exists());
    let (_, status, _) = run(&[&g[..], &["schedule", "status"]].concat());
    assert!(status.contains("No schedule installed"), "{status}");
}

#[test]
fn cron_install_overdue_notice_and_failed_notification() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("proc/net")).unwrap();
    let state = t.path().join("state");
    // A webhook that always fails.
    let (url, _bodies) = support::http_server(500, 10, "/hook/T0KEN");
    let cfg = t.path().join("config.toml");
    write_config(&cfg, &format!("[[notify.webhooks]]\nurl = \"{url}\"\n"));
    let (root_s, state_s, cfg_s) = (root.display().to_string(), state.display().to_string(), cfg.display().to_string());
    let g = ["--root", root_s.as_str(), "--state-dir", state_s.as_str(), "--config", cfg_s.as_str()];
    let (code, out, err) = run(&[&g[..], &["schedule", "install", "--cron", "5 4 * * 1"]].concat());
    assert_eq!(code, 0, "{out}{err}");
    let cron = std::fs::read_to_string(root.join("etc/cron.d/vigil")).unwrap();
    let line = cron.lines().find(|l| l.starts_with("5 4 * * 1 root ")).expect("the cron line");
    assert!(line.contains("review --scheduled"), "{line}");

    // The notification fails: recorded, and the next review leads with it.
    let (code, _, _) = run(&[&g[..], &["notify", "test"]].concat());
    assert_eq!(code, 1);
    let (_, out, _) = run(&[&g[..], &["review", "--offline"]].concat());
    let first = out.lines().next().unwrap_or("");
    assert!(first.contains("A notification failed") && !first.contains("T0KEN"), "{out}");

    // Two months without a run: the review's first line says the schedule is overdue.
    let later = "2027-06-01T00:00:00Z";
    let out = Command::new(vigil())
        .args(&g[..])
        .args(["review", "--offline"])
        .env("VIGIL_NOW", later)
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().unwrap_or("").contains("never run since it was installed"), "{text}");
    let (code, _, _) = run(&[&g[..], &["schedule", "remove"]].concat());
    assert_eq!(code, 0);
    assert!(!root.join("etc/cron.d/vigil").exists());
}

#[test]
#[cfg_attr(
    any(vigil_missing = "py:aiosmtpd", vigil_missing = "openssl"),
    ignore = "needs py:aiosmtpd, openssl (.ci/packages/notify.txt)"
)]
fn email_over_starttls_to_a_real_smtp_server() {
    vigil_testkit::require(&["py:aiosmtpd", "openssl"]);
    let t = tempfile::tempdir().unwrap();
    // A private CA and a server certificate it signed, as an internal mail relay would have.
    let (ca, cert, key) = (t.path().join("ca.pem"), t.path().join("cert.pem"), t.path().join("key.pem"));
    std::fs::write(t.path().join("ext.cnf"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    let d = t.path().display();
    let script = format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=vigil-test-ca -keyout {d}/ca.key -out {d}/ca.pem && \
         openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout {d}/key.pem -out {d}/leaf.csr && \
         openssl x509 -req -in {d}/leaf.csr -CA {d}/ca.pem -CAkey {d}/ca.key -CAcreateserial -days 2 \
           -extfile {d}/ext.cnf -out {d}/cert.pem"
    );
    let ok = Command::new("sh").arg("-c").arg(script).stderr(Stdio::null()).stdout(Stdio::null()).status().unwrap();
    assert!(ok.success(), "openssl could not make the test certificates");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let maildir = t.path().join("mail");
    let mut server = Command::new(debian_python())
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("localhost:{port}"), "--tlscert"])
        .arg(&cert)
        .arg("--tlskey")
        .arg(&key)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cfg = t.path().join("config.toml");
    write_config(
        &cfg,
        &format!(
            "[notify]\nemail_to = [\"admin@example.org\"]\nemail_from = \"vigil@example.org\"\nsmtp = \"localhost:{port}\"\nsmtp_ca_file = \"{}\"\n",
            ca.display()
        ),
    );
    let state = t.path().join("state").display().to_string();
    let (code, out, err) = run(&["--state-dir", &state, "--config", &cfg.display().to_string(), "notify", "test"]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sent: email to admin@example.org"), "{out}");
    let mut found = String::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(maildir.join(sub)).into_iter().flatten() {
            found.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        }
    }
    assert!(found.contains("Subject: vigil") && found.contains("test notification"), "mailbox: {found}");
}
