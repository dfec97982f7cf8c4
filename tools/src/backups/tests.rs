use super::*;
use crate::testutil::{FIXTURE_NOW, fixture, fixture_ctx};

/// The fixture hosts are a copy with their dates set (vigil_testkit::fixture_hosts).
fn set_mtimes() {
    vigil_testkit::fixture_hosts();
}

fn keys(out: &Outcome<BackupsFacts>) -> Vec<(String, String, Severity)> {
    out.findings.iter().map(|f| (f.id.clone(), f.subject.clone(), f.severity)).collect()
}

fn find<'a>(out: &'a Outcome<BackupsFacts>, id: &str, subject: &str) -> &'a Finding {
    out.findings
        .iter()
        .find(|f| f.id == id && f.subject == subject)
        .unwrap_or_else(|| panic!("no {id} for {subject}: {:#?}", keys(out)))
}

const NOW: i64 = FIXTURE_NOW as i64;

async fn web1() -> Outcome<BackupsFacts> {
    set_mtimes();
    let state = tempfile::tempdir().unwrap();
    let ctx = fixture_ctx("web1").with_state_dir(state.path());
    CheckBackups.run(&ctx, BackupsInput::default()).await.unwrap()
}

#[tokio::test]
async fn web1_stopped_backups_full_disk_log_and_shrunk_dump_are_caught() {
    let out = web1().await;
    let stale = find(&out, "backups.stale", "backup:site-files");
    assert_eq!(stale.severity, Severity::High);
    assert!(stale.title.contains("8 months"), "{}", stale.title);
    assert!(stale.evidence.iter().any(|e| e.contains("site-2026-03-27.tar.gz (2026-03-27 02:31 UTC)")), "{stale:?}");
    assert!(
        stale.evidence.iter().any(|e| e.contains("/etc/cron.d/backup")),
        "the cron line that should feed it: {stale:?}"
    );

    let log = find(&out, "backups.log-errors", "backup:site-files");
    assert_eq!(log.severity, Severity::High, "a full disk is severe");
    assert!(log.evidence[0].contains("since the last success (2026-03-27 02:31 UTC)"), "{log:?}");
    assert!(log.evidence.iter().any(|e| e.contains("No space left on device")), "{log:?}");
    assert!(
        log.evidence[1].contains("site-2026-03-28.tar.gz: Cannot write: No space left on device"),
        "when it started: {log:?}"
    );
    assert_eq!(log.evidence.len(), 7, "first error, a count, the last four: {log:?}");

    let shrunk = find(&out, "backups.shrunk", "backup:databases");
    assert_eq!(shrunk.severity, Severity::High);
    assert!(shrunk.evidence[0].contains("shop-2026-11-26.sql.gz"), "{shrunk:?}");
    let db = out.facts.jobs.iter().find(|j| j.name == "databases").unwrap();
    assert_eq!(db.count, 3);
    assert!(db.newest.as_ref().unwrap().size.unwrap() * 10 < db.previous_size.unwrap() + db.previous_size.unwrap() / 5);
    // The dump itself is fresh.
    assert!(!out.findings.iter().any(|f| f.id == "backups.stale" && f.subject == "backup:databases"));

    for job in ["backup:site-files", "backup:databases"] {
        assert_eq!(find(&out, "backups.no-offsite", job).severity, Severity::Medium);
        let r = find(&out, "backups.no-restore-test", job);
        assert_eq!(r.severity, Severity::Medium);
        assert_eq!(r.evidence, vec!["no restore test recorded"]);
    }
}

#[tokio::test]
async fn web1_discovery_repositories_schedules_and_distro_files() {
    let out = web1().await;
    // Debian's own dpkg/passwd copies in /var/backups are not site backups.
    assert!(!out.facts.jobs.iter().any(|j| j.name == "/var/backups"), "{:?}", out.facts.jobs);
    assert!(!out.findings.iter().any(|f| f.subject.contains("passwd.bak") || f.subject == "backup:/var/backups"));
    // The configured DB dumps are not discovered a second time.
    assert!(!out.facts.jobs.iter().any(|j| j.name == "/var/backups/mysql"));
    // A restic repository found by its layout, fed by a daily cron job: its limit follows the schedule.
    let repo = out.facts.jobs.iter().find(|j| j.name == "/srv/backup-restic").unwrap();
    assert_eq!((repo.source, repo.kind, repo.count, repo.max_age_hours), (Source::Discovered, JobKind::Restic, 2, 26));
    assert_eq!(repo.newest.as_ref().unwrap().date, "2026-10-01 04:00 UTC");
    assert_eq!(find(&out, "backups.stale", "backup:/srv/backup-restic").severity, Severity::High);
    // Off the live host the repository's own check does not run (and no password file is configured).
    assert!(repo.repo_check.is_none());

    // Schedules: the Debian crontab's run-parts lines are not backups; the three cron.d jobs and the
    // user's rclone are. Passwords on cron lines are redacted.
    let s = &out.facts.schedules;
    assert_eq!(s.len(), 4, "{s:#?}");
    assert!(s.iter().all(|s| s.source != "/etc/crontab"));
    let dump = s.iter().find(|s| s.tools == ["mysqldump"]).unwrap();
    assert!(dump.command.contains("-p[REDACTED]"), "{}", dump.command);
    let rclone = s.iter().find(|s| s.tools == ["rclone"]).unwrap();
    assert_eq!(rclone.user.as_deref(), Some("deploy"));
    assert_eq!(rclone.remote_targets, vec!["b2:web1-uploads"]);
    assert_eq!(rclone.frequency, Frequency::Weekly);
    // Nothing checks the uploads sync.
    assert_eq!(find(&out, "backups.unmonitored", "schedule:/var/spool/cron/crontabs/deploy").severity, Severity::Low);
    let all = serde_json::to_string(&out.facts).unwrap() + &serde_json::to_string(&out.findings).unwrap();
    assert!(!all.contains("Company2024"), "a cron password leaked");
}

#[tokio::test]
async fn clean_host_reports_nothing_above_info() {
    set_mtimes();
    let state = tempfile::tempdir().unwrap();
    let ten_days_ago = NOW - 10 * 86_400;
    for job in ["nightly-files", "nightly-db"] {
        restore_record::record(
            state.path(),
            job,
            RestoreTest {
                at: ten_days_ago,
                ok: true,
                archive: "/backup/clean/files/site-2026-11-16.tar.gz".into(),
                files: 3,
                detail: "ok".into(),
            },
        )
        .unwrap();
    }
    let ctx = fixture_ctx("clean").with_state_dir(state.path());
    let out = CheckBackups.run(&ctx, BackupsInput::default()).await.unwrap();
    let loud: Vec<_> = out.findings.iter().filter(|f| f.severity > Severity::Info).collect();
    assert!(loud.is_empty(), "{loud:#?}");
    assert_eq!(out.facts.jobs.len(), 2, "{:#?}", out.facts.jobs);
    let files = &out.facts.jobs[0];
    let off = files.offsite.as_ref().unwrap();
    assert!(off.remote);
    assert_eq!(off.last_sync.as_deref(), Some("2026-11-26 04:10 UTC"));
    assert_eq!(files.restore_test.as_ref().unwrap().date, "2026-11-17");
    // The systemd timer and the cron jobs are tied to the jobs they feed.
    assert!(
        files.scheduled_by.iter().any(|s| s.contains("backup-offsite.timer (OnCalendar=*-*-* 04:00)")),
        "{:?}",
        files.scheduled_by
    );
    assert!(out.facts.jobs[1].scheduled_by.iter().any(|s| s.contains("/etc/cron.d/backup")));
    let timer = out.facts.schedules.iter().find(|s| s.source.ends_with("backup-offsite.timer")).unwrap();
    assert_eq!(timer.tools, vec!["rsync"]);
    assert_eq!(timer.frequency, Frequency::Daily);
    assert_eq!(timer.remote_targets, vec!["backup@nas.example.net:/srv/offsite/clean"]);
}

#[tokio::test]
async fn clean_host_a_month_later_needs_a_restore_test_and_its_offsite_is_stale() {
    set_mtimes();
    let state = tempfile::tempdir().unwrap();
    restore_record::record(
        state.path(),
        "nightly-db",
        RestoreTest {
            at: NOW - 3 * 86_400,
            ok: false,
            archive: "/var/backups/mariadb/app.sql.gz".into(),
            files: 0,
            detail: "gzip: unexpected end of file".into(),
        },
    )
    .unwrap();
    let cfg = fixture_ctx("clean").config.as_ref().clone();
    let host = fixture("clean")
        .with_now(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(FIXTURE_NOW + 3 * 86_400));
    let ctx = Ctx::new(host).with_config(cfg).with_state_dir(state.path());
    let out = CheckBackups.run(&ctx, BackupsInput::default()).await.unwrap();
    // Three days on: backups are stale, the offsite sync is older than 2 × 26 h, the DB restore test failed.
    assert_eq!(find(&out, "backups.stale", "backup:nightly-files").severity, Severity::High);
    assert_eq!(find(&out, "backups.offsite-stale", "backup:nightly-files").severity, Severity::Medium);
    let failed = find(&out, "backups.restore-failed", "backup:nightly-db");
    assert!(failed.evidence[0].contains("unexpected end of file"), "{failed:?}");
    find(&out, "backups.no-restore-test", "backup:nightly-files");
}

#[tokio::test]
async fn nothing_at_all_is_high_with_how_to_configure() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var/backups")).unwrap();
    std::fs::write(dir.path().join("var/backups/dpkg.status.0"), "x").unwrap();
    let out = CheckBackups.run(&Ctx::new(Host::at(dir.path())), BackupsInput::default()).await.unwrap();
    let none = find(&out, "backups.none", "backups");
    assert_eq!(none.severity, Severity::High);
    assert!(none.remediation.contains("[[backups]]"), "{}", none.remediation);
    assert_eq!(out.findings.len(), 1, "{:#?}", out.findings);
}

#[tokio::test]
async fn configured_job_with_nothing_is_critical_and_bad_inputs_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::config::Config::parse(
        "[[backups]]\nname = \"site\"\npath = \"/backup/site/*.tar.gz\"\nlog = \"/var/log/site-backup.log\"\noffsite = \"/mnt/usb/site\"\n",
        std::path::Path::new("c"),
    )
    .unwrap();
    let ctx = Ctx::new(Host::at(dir.path())).with_config(cfg);
    let out = CheckBackups.run(&ctx, BackupsInput::default()).await.unwrap();
    let missing = find(&out, "backups.missing", "backup:site");
    assert_eq!(missing.severity, Severity::Critical);
    assert!(missing.evidence.iter().any(|e| e.contains("/backup/site does not exist")), "{missing:?}");
    find(&out, "backups.log-missing", "backup:site");
    find(&out, "backups.offsite-not-remote", "backup:site");
    // No state directory: restore tests are unknown (info), not "never tested".
    find(&out, "backups.restore-tests-unknown", "restore-tests");
    assert!(!out.findings.iter().any(|f| f.id == "backups.no-restore-test"));

    let err = CheckBackups.run(&ctx, BackupsInput { job: Some("nope".into()) }).await.unwrap_err();
    assert!(err.to_string().contains("known jobs: site"), "{err}");
    let only = CheckBackups.run(&ctx, BackupsInput { job: Some("site".into()) }).await.unwrap();
    assert!(only.findings.iter().all(|f| f.subject.starts_with("backup:site")), "{:?}", only.findings);
}

#[tokio::test]
async fn corrupt_restore_record_is_a_finding_not_a_crash() {
    set_mtimes();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("restore-tests.json"), "{\"site\": 3").unwrap();
    let ctx = fixture_ctx("clean").with_state_dir(state.path());
    let out = CheckBackups.run(&ctx, BackupsInput::default()).await.unwrap();
    assert_eq!(find(&out, "backups.restore-record-unreadable", "restore-tests").severity, Severity::High);
    find(&out, "backups.no-restore-test", "backup:nightly-db");
}

#[test]
fn newest_archive_is_what_a_restore_test_restores() {
    set_mtimes();
    let ctx = fixture_ctx("web1");
    let job = ctx.config.backups.iter().find(|j| j.name == "databases").unwrap();
    let a = newest_archive(&ctx.host, job).unwrap();
    assert_eq!(a.path, "/var/backups/mysql/shop-2026-11-26.sql.gz");
    assert_eq!(a.mtime, 1_795_662_902);
    assert_eq!(a.size, 607);
}

#[test]
fn log_scanning() {
    let s = scan_log(
        "2026-01-01 02:00 backup completed\nrsync error: some files could not be transferred (code 23)\n",
        NOW,
    );
    assert_eq!(s.errors.len(), 1);
    assert!(!s.severe);
    let s = scan_log("Permission denied\nbackup completed with 0 errors\n", NOW);
    assert!(s.errors.is_empty(), "a later success clears earlier errors: {s:?}");
    assert!(s.last_success.is_some());
    let s = scan_log("Nov 26 02:00:01 host backup: snapshot 1a2b3c4d saved\n", NOW);
    assert_eq!(s.last_success.unwrap().1, Some(1_795_658_401));
    assert!(scan_log("terrorism is not an error word boundary test: terror\n", NOW).errors.len() == 1);
    assert!(scan_log("mirror sync: interrupted\n", NOW).errors.is_empty());
}

#[test]
fn ages_sizes_and_series() {
    assert_eq!(human_age(245 * 86_400), "8 months (245 days)");
    assert_eq!(human_age(20 * 3600), "20 hours");
    assert_eq!(human_size(6796), "6.8 kB");
    assert_eq!(series_key("/b/site-a-2026-11-26.tar.gz"), series_key("/b/site-a-2026-11-25.tar.gz"));
    assert_ne!(series_key("/b/site-a-2026-11-26.tar.gz"), series_key("/b/site-b-2026-11-26.tar.gz"));
    assert_eq!(glob_dir("/backup/site/*.tar.gz"), "/backup/site");
    assert_eq!(glob_dir("/srv/restic"), "/srv/restic");
}

#[tokio::test]
async fn live_host_runs_and_reports_the_filesystem() {
    let started = std::time::Instant::now();
    let out = CheckBackups.run(&Ctx::new(Host::live()), BackupsInput::default()).await;
    eprintln!("live check_backups: {:?}", started.elapsed());
    let out = out.unwrap();
    if out.facts.jobs.is_empty() {
        assert!(out.findings.iter().any(|f| f.id == "backups.none"), "{:#?}", out.findings);
    }
    // Every filesystem holding backups was measured.
    assert!(out.facts.filesystems.iter().all(|f| f.used_percent <= 100));
}

#[tokio::test]
async fn offsite_proven_by_a_log_line_naming_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::create_dir_all(r.join("backup/site")).unwrap();
    std::fs::write(r.join("backup/site/site.tar.gz"), "x").unwrap();
    std::fs::write(
        r.join("backup/site/backup.log"),
        "2026-11-20 04:00:01 sync to nas.example.net completed\n2026-11-26 04:00:01 sync to nas.example.net completed\n2026-11-26 04:10:00 rsync error: connection refused to other.example.org\n",
    )
    .unwrap();
    let cfg = crate::config::Config::parse(
        "[[backups]]\nname = \"site\"\npath = \"/backup/site/*.tar.gz\"\nmax_age_hours = 1000000\nlog = \"/backup/site/backup.log\"\noffsite = \"backup@nas.example.net:/srv/site\"\n",
        std::path::Path::new("c"),
    )
    .unwrap();
    let ctx = Ctx::new(Host::at(r).with_now(fixture("web1").now())).with_config(cfg);
    let out = CheckBackups.run(&ctx, BackupsInput::default()).await.unwrap();
    let off = out.facts.jobs[0].offsite.clone().unwrap();
    assert_eq!(off.last_sync.as_deref(), Some("2026-11-26 04:00 UTC"), "{off:?}");
    assert!(!out.findings.iter().any(|f| f.id.starts_with("backups.offsite")), "{:#?}", out.findings);
    // The error after the last success is still reported against the job's log.
    assert_eq!(find(&out, "backups.log-errors", "backup:site").severity, Severity::Medium);
}

#[test]
fn statvfs_reads_the_root_filesystem() {
    let (pct, _avail) = statvfs(std::path::Path::new("/")).unwrap();
    assert!(pct <= 100);
    assert!(statvfs(std::path::Path::new("/nonexistent/x")).is_none());
}
