//! check_backups against real restic and borg repositories: discovery by their
//! on-disk layout, and the repositories' own `check` (passing, then failing
//! after the test damages the repository). Needs the Debian packages in
//! `.ci/packages/backups.txt`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![expect(clippy::unwrap_used, reason = "test helpers: a failed setup step fails the test")]

use std::path::Path;
use std::process::Command;

use vigil_tools::backups::{BackupsInput, CheckBackups, JobKind};
use vigil_tools::config::Config;
use vigil_tools::{Ctx, Host, Severity, Tool};

/// The program's path (the test requires it first).
fn program(name: &str) -> String {
    ["/usr/local/bin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).is_file())
        .unwrap()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn job_config(name: &str, repo: &Path, password_file: &Path) -> Config {
    Config::parse(
        &format!(
            "[[backups]]\nname = \"{name}\"\npath = \"{}\"\nmax_age_hours = 26\npassword_file = \"{}\"\n",
            repo.display(),
            password_file.display()
        ),
        Path::new("test.toml"),
    )
    .unwrap()
}

/// Some site files to back up.
fn site(dir: &Path) -> std::path::PathBuf {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("wp-content")).unwrap();
    std::fs::write(site.join("index.php"), "<?php echo 'hello';\n").unwrap();
    std::fs::write(site.join("wp-content/big.txt"), "x".repeat(200_000)).unwrap();
    site
}

#[tokio::test]
#[cfg_attr(vigil_missing = "restic", ignore = "needs restic (.ci/packages/backups.txt)")]
async fn restic_repository_is_discovered_and_checked() {
    vigil_testkit::require(&["restic"]);
    let restic = program("restic");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let repo = root.join("backup/restic");
    std::fs::create_dir_all(&repo).unwrap();
    let pw = dir.path().join("restic.pass");
    std::fs::write(&pw, "correct horse battery staple\n").unwrap();
    let site = site(dir.path());
    let cache = dir.path().join("cache");
    let restic_cmd = |args: &[&str]| {
        let mut c = Command::new(&restic);
        c.arg("-r").arg(&repo).arg("--password-file").arg(&pw).arg("--cache-dir").arg(&cache).args(args);
        c
    };
    run(&mut restic_cmd(&["init"]));
    run(restic_cmd(&["backup"]).arg(&site));

    // Discovery on a root that is not live: found by its layout, one snapshot, fresh; no check off the live host.
    let ctx = Ctx::new(Host::at(&root));
    let out = CheckBackups.run(&ctx, BackupsInput::default()).await.unwrap();
    let job = out.facts.jobs.iter().find(|j| j.name == "/backup/restic").expect("restic repository discovered");
    assert_eq!((job.kind, job.count), (JobKind::Restic, 1));
    assert!(job.newest.as_ref().unwrap().age_hours < 1);
    assert!(!out.findings.iter().any(|f| f.id == "backups.stale" || f.id == "backups.missing"), "{:#?}", out.findings);

    // On the live host, with a password file configured, restic's own check runs and passes.
    let ctx = Ctx::new(Host::live()).with_config(job_config("restic-site", &repo, &pw));
    let out = CheckBackups.run(&ctx, BackupsInput { job: Some("restic-site".into()) }).await.unwrap();
    let job = &out.facts.jobs[0];
    assert_eq!(job.kind, JobKind::Restic);
    assert_eq!(job.repo_check.as_deref(), Some("ok"), "{:#?}", out.findings);
    assert!(!out.findings.iter().any(|f| f.severity >= Severity::High), "{:#?}", out.findings);

    // Damage it: a pack file goes missing. restic check fails and so does the finding.
    let data = repo.join("data");
    let pack = walk_files(&data).into_iter().next().expect("a pack file");
    std::fs::remove_file(&pack).unwrap();
    let out = CheckBackups.run(&ctx, BackupsInput { job: Some("restic-site".into()) }).await.unwrap();
    let f = out
        .findings
        .iter()
        .find(|f| f.id == "backups.repo-check-failed")
        .unwrap_or_else(|| panic!("{:#?}", out.findings));
    assert_eq!(f.severity, Severity::High);
    assert!(f.evidence[0].starts_with("restic check"), "{f:?}");
    let text = serde_json::to_string(&out.findings).unwrap();
    assert!(!text.contains("correct horse"), "the password stays on the host");
}

#[tokio::test]
#[cfg_attr(vigil_missing = "borg", ignore = "needs borg (.ci/packages/backups.txt)")]
async fn borg_repository_is_discovered_and_checked() {
    vigil_testkit::require(&["borg"]);
    let borg = program("borg");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let repo = root.join("srv/backup/borg");
    std::fs::create_dir_all(repo.parent().unwrap()).unwrap();
    let pw = dir.path().join("borg.pass");
    std::fs::write(&pw, "another long passphrase\n").unwrap();
    let site = site(dir.path());
    let base = dir.path().join("borg-base");
    let borg_cmd = |args: &[&str]| {
        let mut c = Command::new(&borg);
        c.env("BORG_PASSCOMMAND", format!("cat {}", pw.display())).env("BORG_BASE_DIR", &base).args(args);
        c
    };
    run(borg_cmd(&["init", "-e", "repokey"]).arg(&repo));
    run(borg_cmd(&["create"]).arg(format!("{}::first", repo.display())).arg(&site));

    let ctx = Ctx::new(Host::at(&root));
    let out = CheckBackups.run(&ctx, BackupsInput::default()).await.unwrap();
    let job = out.facts.jobs.iter().find(|j| j.name == "/srv/backup/borg").expect("borg repository discovered");
    assert_eq!(job.kind, JobKind::Borg);
    assert!(job.count >= 1 && job.newest.as_ref().unwrap().age_hours < 1, "{job:?}");

    let ctx = Ctx::new(Host::live()).with_config(job_config("borg-site", &repo, &pw));
    let out = CheckBackups.run(&ctx, BackupsInput { job: Some("borg-site".into()) }).await.unwrap();
    assert_eq!(out.facts.jobs[0].repo_check.as_deref(), Some("ok"), "{:#?}", out.findings);

    // Damage a segment: borg check fails.
    let segments: Vec<_> =
        walk_files(&repo.join("data")).into_iter().filter(|p| std::fs::metadata(p).unwrap().len() > 1000).collect();
    let seg = segments.last().expect("a data segment");
    let bytes = std::fs::read(seg).unwrap();
    let mut damaged = bytes.clone();
    for b in damaged.iter_mut().skip(bytes.len() / 2).take(64) {
        *b ^= 0xff;
    }
    std::fs::write(seg, damaged).unwrap();
    let out = CheckBackups.run(&ctx, BackupsInput { job: Some("borg-site".into()) }).await.unwrap();
    let f = out
        .findings
        .iter()
        .find(|f| f.id == "backups.repo-check-failed")
        .unwrap_or_else(|| panic!("{:#?}", out.findings));
    assert!(f.evidence[0].starts_with("borg check"), "{f:?}");
}

#[tokio::test]
async fn missing_password_file_is_high() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    for d in ["data", "index", "keys", "snapshots"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    std::fs::write(repo.join("config"), "x").unwrap();
    let ctx = Ctx::new(Host::live()).with_config(job_config("r", &repo, &dir.path().join("gone.pass")));
    let out = CheckBackups.run(&ctx, BackupsInput { job: Some("r".into()) }).await.unwrap();
    assert!(out.findings.iter().any(|f| f.id == "backups.password-file-missing" && f.severity == Severity::High));
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}
