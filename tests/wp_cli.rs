//! `vigil wp` through the real binary and the real gate: with no terminal
//! (`setsid`, stdin not a tty) both staged-update tools are refused and nothing
//! changes; a forged or unknown `--approval` token opens nothing; on a
//! pseudo-terminal (`script`) the plan is shown and anything but the tool's
//! name declines; a confirmed change that fails exits with the same code from
//! `vigil wp` and `vigil tools run`. The run itself is covered by
//! `tools/tests/wp_stage_real.rs`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn vigil() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

/// A minimal WordPress tree the inventory discovers, with a config and a state dir.
struct Site {
    t: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = t.path().join("www/site");
        for (p, body) in [
            ("wp-includes/version.php", "<?php\n$wp_version = '6.1.9';\n"),
            ("wp-settings.php", "<?php\n"),
            ("wp-load.php", "<?php\n"),
            (
                "wp-config.php",
                "<?php\ndefine('DB_NAME', 'shop');\ndefine('DB_USER', 'shop');\ndefine('DB_PASSWORD', 'Sup3r-secret-pw');\n\
                 define('DB_HOST', '127.0.0.1:9');\n$table_prefix = 'wp_';\nrequire_once ABSPATH . 'wp-settings.php';\n",
            ),
            ("wp-content/plugins/akismet/akismet.php", "<?php\n/*\nPlugin Name: Akismet\nVersion: 5.0.2\n*/\n"),
        ] {
            std::fs::create_dir_all(s.join(p).parent().unwrap()).unwrap();
            std::fs::write(s.join(p), body).unwrap();
        }
        let cfg = t.path().join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "[wordpress]\nweb_roots = [\"{0}/www\"]\nstaging_dir = \"{0}/staging\"\ndownload_base = \"http://127.0.0.1:9\"\n",
                t.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
        Site { t }
    }

    fn site(&self) -> String {
        self.t.path().join("www/site").display().to_string()
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--state-dir".into(),
            self.t.path().join("state").display().to_string(),
            "--config".into(),
            self.t.path().join("config.toml").display().to_string(),
        ]
    }

    /// Everything under the temp dir but the audit log and its head: what a refusal must not change.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn rec(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(rd) = std::fs::read_dir(d) else { return };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("audit") {
                    continue;
                }
                if p.is_dir() {
                    out.push((p.clone(), Vec::new()));
                    rec(&p, out);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
                }
            }
        }
        let mut v = Vec::new();
        rec(self.t.path(), &mut v);
        v.sort();
        v
    }

    /// Run vigil in a new session (no controlling terminal), stdin from /dev/null.
    fn detached(&self, args: &[&str]) -> (i32, String, String) {
        let mut a: Vec<String> = vec!["-w".into(), vigil().into()];
        a.extend(self.args());
        a.extend(args.iter().map(|s| s.to_string()));
        let o = Command::new("setsid").args(&a).stdin(Stdio::null()).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Run vigil on a pseudo-terminal (`script`), type `answer` at its prompt, and return
    /// the exit code and everything it wrote.
    fn on_terminal(&self, args: &[&str], answer: &str) -> (i32, String) {
        let mut cmd = vec![vigil().to_string()];
        cmd.extend(self.args());
        cmd.extend(args.iter().map(|a| a.to_string()));
        let line = cmd.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
        let mut child = Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let started = std::time::Instant::now();
        while !String::from_utf8_lossy(&seen).contains("anything else declines") {
            assert!(started.elapsed().as_secs() < 60, "no prompt: {}", String::from_utf8_lossy(&seen));
            let n = stdout.read(&mut buf).unwrap();
            assert!(n > 0, "vigil ended without asking: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        child.stdin.as_mut().unwrap().write_all(format!("{answer}\n").as_bytes()).unwrap();
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        // `script -e` passes the child's exit code on.
        (status.code().unwrap_or(-1), String::from_utf8_lossy(&seen).into_owned() + &rest)
    }

    /// A staged update whose backup cannot be taken (there is no database): applying it fails.
    fn stage_unappliable(&self) -> String {
        let site = self.site();
        let (rc, _, _) = self.detached(&["wp", "recover", &site]);
        assert_eq!(rc, 1, "nothing to recover; creates the state directory");
        let host = self.host_dir();
        std::fs::create_dir_all(host.join("wp-staged")).unwrap();
        let rec = serde_json::json!({
            "id": "0a1b2c3d", "site": site, "staged_at": 1, "updates": [], "ok": true, "health": [],
            "stage_backup": {"at": 1, "files": "/nonexistent.tar.gz", "file_count": 1, "db": "/nonexistent.sql", "tables": 1}
        });
        std::fs::write(host.join("wp-staged/0a1b2c3d.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
        "0a1b2c3d".into()
    }

    fn host_dir(&self) -> PathBuf {
        std::fs::read_dir(self.t.path().join("state/hosts")).unwrap().flatten().next().unwrap().path()
    }
}

#[test]
#[cfg_attr(
    any(vigil_missing = "setsid", vigil_missing = "php"),
    ignore = "needs setsid, php (.ci/packages/wpstage.txt)"
)]
fn without_a_terminal_both_tools_are_refused_and_nothing_changes() {
    vigil_testkit::require(&["setsid", "php"]);
    let s = Site::new();
    // Create the per-host state directory (a recover with nothing to recover), then take the snapshot.
    let site = s.site();
    let (rc, _, err) = s.detached(&["wp", "recover", &site]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("nothing to recover"), "{err}");
    let before = s.snapshot();
    let (rc, out, err) = s.detached(&["wp", "stage", &site, "plugin:akismet@5.0.3"]);
    assert_eq!(rc, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("wordpress_stage_update") && err.contains("needs a human to confirm"), "{err}");
    assert!(!err.contains("Sup3r") && !out.contains("Sup3r"), "the password never appears");
    assert_eq!(s.snapshot(), before, "a refused stage changes nothing");

    // A staged record to apply (as a stage would have left it).
    let staged = s.host_dir().join("wp-staged");
    std::fs::create_dir_all(&staged).unwrap();
    let rec = serde_json::json!({
        "id": "0a1b2c3d", "site": site, "staged_at": 1, "updates": [], "ok": true, "health": [],
        "stage_backup": {"at": 1, "files": "/nonexistent.tar.gz", "file_count": 1, "db": "/nonexistent.sql", "tables": 1}
    });
    std::fs::write(staged.join("0a1b2c3d.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
    let before = s.snapshot();
    let (rc, _, err) = s.detached(&["wp", "apply", &site, "0a1b2c3d"]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("wordpress_apply_update") && err.contains("needs a human to confirm"), "{err}");
    let (rc, _, err) = s.detached(&["wp", "apply", &site, "0a1b2c3d", "--approval", &"ab".repeat(24)]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("approval does not hold") && err.contains("unknown or was already used"), "{err}");
    let (rc, _, err) = s.detached(&["wp", "rollback", &site, "0a1b2c3d"]);
    assert_eq!(rc, 1, "{err}");
    assert_eq!(s.snapshot(), before, "refused applies change nothing");

    let (rc, log, _) = s.detached(&["log", "show", "--json"]);
    assert_eq!(rc, 0);
    assert!(log.matches("\"decision\":\"refused\"").count() >= 3, "{log}");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "script", vigil_missing = "php"),
    ignore = "needs script, php (.ci/packages/wpstage.txt)"
)]
fn on_a_terminal_the_plan_is_shown_and_anything_but_the_name_declines() {
    vigil_testkit::require(&["script", "php"]);
    let s = Site::new();
    let (rc, shown) = s.on_terminal(&["wp", "stage", &s.site(), "plugin:akismet@5.0.3"], "yes");
    assert!(shown.contains("Plan for wordpress_stage_update"), "{shown}");
    assert!(shown.contains("akismet 5.0.2 → 5.0.3"), "{shown}");
    assert!(shown.contains("--defaults-extra-file=<0600 file"), "{shown}");
    assert!(!shown.contains("Sup3r"), "the password never appears in the plan");
    assert_eq!(rc, 1, "{shown}");
    assert!(shown.contains("declined"), "{shown}");
    let host = std::fs::read_dir(s.t.path().join("state/hosts")).unwrap().flatten().next().unwrap().path();
    assert!(!host.join("wp-staged").exists() && !host.join("wp-backups").exists(), "nothing staged");
    assert!(!s.t.path().join("staging").exists());
}

#[tokio::test]
#[cfg_attr(
    any(vigil_missing = "setsid", vigil_missing = "php"),
    ignore = "needs setsid, php (.ci/packages/wpstage.txt)"
)]
async fn an_approval_opens_the_gate_once_and_only_for_the_plan_it_was_issued_for() {
    use vigil_tools::wpupdate::approval::{Approval, issue};
    vigil_testkit::require(&["setsid", "php"]);
    let s = Site::new();
    let site = s.site();
    s.stage_unappliable();
    let host = s.host_dir();
    // The plan the deferred job will meet, as the gate computes it.
    let cfg = vigil::config::Config::load(&s.t.path().join("config.toml")).unwrap().unwrap().tools();
    let ctx = vigil_tools::Ctx::new(vigil_tools::Host::live()).with_config(cfg).with_state_dir(&host);
    let input = serde_json::json!({"site": site, "staged_id": "0a1b2c3d"});
    let plan = vigil_tools::Registry::builtin().plan(&ctx, "wordpress_apply_update", input).await.unwrap();
    let approval = |digest: String| Approval {
        tool: "wordpress_apply_update".into(),
        site: site.clone(),
        staged_id: "0a1b2c3d".into(),
        plan_digest: digest,
        issued_at: 1,
        at: "03:00".into(),
    };
    // Bound to another plan: refused, and spent.
    let wrong = issue(&host, &approval("00".repeat(32))).unwrap();
    let (rc, _, err) = s.detached(&["wp", "apply", &site, "0a1b2c3d", "--approval", &wrong]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("plan changed since it was approved"), "{err}");
    // Bound to this plan: the gate opens and the apply runs (and stops at the backup: there is no database).
    let right = issue(&host, &approval(plan.digest.clone())).unwrap();
    let (rc, _, err) = s.detached(&["wp", "apply", &site, "0a1b2c3d", "--approval", &right]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("the backup failed, nothing was changed"), "{err}");
    assert!(!host.join("wp-journal").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false), "no journal left");
    let (rc, _, err) = s.detached(&["wp", "apply", &site, "0a1b2c3d", "--approval", &right]);
    assert_eq!(rc, 1, "a token opens the gate once: {err}");
    assert!(err.contains("already used"), "{err}");
    let (_, log, _) = s.detached(&["log", "show", "--json"]);
    assert_eq!(log.matches("\"decision\":\"confirmed\"").count(), 1, "{log}");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "script", vigil_missing = "setsid", vigil_missing = "php"),
    ignore = "needs script, setsid, php (.ci/packages/wpstage.txt)"
)]
fn a_confirmed_change_that_fails_exits_the_same_from_wp_and_tools_run() {
    vigil_testkit::require(&["script", "setsid", "php"]);
    let s = Site::new();
    let site = s.site();
    let id = s.stage_unappliable();
    // The same confirmed call, once per command: the apply starts and fails at its backup.
    let (wp_rc, wp_out) = s.on_terminal(&["wp", "apply", &site, &id], "wordpress_apply_update");
    assert!(wp_out.contains("the backup failed, nothing was changed"), "{wp_out}");
    let input = serde_json::json!({"site": site, "staged_id": id}).to_string();
    let (run_rc, run_out) =
        s.on_terminal(&["tools", "run", "wordpress_apply_update", &input], "wordpress_apply_update");
    assert!(run_out.contains("the backup failed, nothing was changed"), "{run_out}");
    assert_eq!(wp_rc, 2, "a confirmed change that ran and failed: {wp_out}");
    assert_eq!(run_rc, wp_rc, "the same failure, the same exit code: {run_out}");
    // And the same refusal (declined), the same code: nothing ran.
    let (wp_rc, wp_out) = s.on_terminal(&["wp", "apply", &site, &id], "no");
    let (run_rc, run_out) = s.on_terminal(&["tools", "run", "wordpress_apply_update", &input], "no");
    assert!(wp_out.contains("declined") && run_out.contains("declined"), "{wp_out}\n{run_out}");
    assert_eq!((wp_rc, run_rc), (1, 1));
    let (_, log, _) = s.detached(&["log", "show", "--json"]);
    assert_eq!(log.matches("\"decision\":\"confirmed\"").count(), 2, "{log}");
}
