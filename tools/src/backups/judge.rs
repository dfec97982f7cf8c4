//! Judging one job: age, size against the one before, log errors, offsite copy,
//! restore test, the repository's own check, and the filesystems backups live on.

use super::*;

pub(super) async fn judge_job(
    ctx: &Ctx,
    job: &Job,
    fed_by: &[&Schedule],
    restore: Option<&RestoreTests>,
    now: i64,
    findings: &mut Vec<Finding>,
) -> JobFacts {
    let host = &ctx.host;
    let cfg = &job.cfg;
    let subject = subject_of(&cfg.name);
    let mut items = job.items.clone();
    items.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| b.path.cmp(&a.path)));
    let newest = items.first();
    let limit_note = if job.max_age_inferred {
        format!(
            " (limit {} h inferred for a discovered job; set [[backups]] max_age_hours to be precise)",
            cfg.max_age_hours
        )
    } else {
        String::new()
    };
    let mut jf = JobFacts {
        name: cfg.name.clone(),
        source: job.source,
        kind: job.kind,
        path: cfg.path.clone(),
        max_age_hours: cfg.max_age_hours,
        count: items.len(),
        newest: newest.map(|n| NewestFacts {
            path: n.path.clone(),
            date: date_time(n.mtime),
            age_hours: (now - n.mtime) / 3600,
            size: n.size,
        }),
        previous_size: None,
        log_errors: 0,
        offsite: None,
        restore_test: None,
        repo_check: None,
        scheduled_by: fed_by.iter().map(|s| format!("{} ({})", s.source, s.schedule)).collect(),
    };

    if !cfg.path.starts_with('/') {
        findings.push(
            Finding::new(
                "backups.bad-config",
                Severity::Medium,
                Category::Backups,
                subject.clone(),
                format!("Backup job `{}` has a path vigil cannot check", cfg.name),
            )
            .evidence(format!("path = \"{}\" is not an absolute path or glob", Redactor::global().text(&cfg.path)))
            .fix("Set `path` to the absolute glob of the local archives (or the local repository directory); put remote targets in `offsite`."),
        );
        return jf;
    }

    // Age.
    match newest {
        None => {
            let dir = glob_dir(&cfg.path);
            let mut f = Finding::new(
                "backups.missing",
                Severity::Critical,
                Category::Backups,
                subject.clone(),
                format!("Backup job `{}` has no backups at all", cfg.name),
            )
            .evidence(format!("nothing matches {}", cfg.path));
            if !host.exists(&dir) {
                f = f.evidence(format!("{dir} does not exist"));
            }
            for s in fed_by {
                f = f.evidence(format!("scheduled by {} ({}): {}", s.source, s.schedule, s.command));
            }
            findings.push(f.fix(format!(
                "Run the backup job by hand now and read its output; check that it writes to {} and that its schedule runs.",
                cfg.path
            )));
        }
        Some(n) => {
            let age = now - n.mtime;
            if age > (cfg.max_age_hours as i64) * 3600 {
                let mut f = Finding::new(
                    "backups.stale",
                    Severity::High,
                    Category::Backups,
                    subject.clone(),
                    format!("Newest backup of `{}` is {} old", cfg.name, human_age(age)),
                )
                .evidence(format!("newest: {} ({})", n.path, date_time(n.mtime)))
                .evidence(format!("limit: {} hours{limit_note}", cfg.max_age_hours));
                for s in fed_by {
                    f = f.evidence(format!("scheduled by {} ({}): {}", s.source, s.schedule, s.command));
                }
                findings.push(f.fix(format!(
                    "Find why the job stopped (its log{}, `journalctl`, cron mail, free space), run it by hand, and make failures alert someone.",
                    cfg.log.as_deref().map(|l| format!(" {l}")).unwrap_or_default()
                )));
            }
        }
    }

    // Size against the one before, per series.
    let mut series: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
    for i in items.iter().filter(|i| i.size.is_some()) {
        series.entry(series_key(&i.path)).or_default().push(i);
    }
    for list in series.values() {
        let (Some(a), Some(b)) = (list.first(), list.get(1)) else { continue };
        let (sa, sb) = (a.size.unwrap_or(0), b.size.unwrap_or(0));
        if Some(a.path.as_str()) == newest.map(|n| n.path.as_str()) {
            jf.previous_size = Some(sb);
        }
        if sb > 0 && sa.saturating_mul(2) < sb {
            findings.push(
                Finding::new(
                    "backups.shrunk",
                    Severity::High,
                    Category::Backups,
                    subject.clone(),
                    format!("Newest backup of `{}` is {}% of the one before", cfg.name, sa * 100 / sb),
                )
                .evidence(format!("{}: {} ({})", a.path, human_bytes(sa), date_time(a.mtime)))
                .evidence(format!("{}: {} ({})", b.path, human_bytes(sb), date_time(b.mtime)))
                .fix("Open the newest archive and check it is complete (a dump cut short by a full disk or a lost DB connection looks like this); run the job by hand and compare."),
            );
        }
    }
    let paths: Vec<(&str, Option<u64>)> = items.iter().map(|i| (i.path.as_str(), i.size)).collect();
    findings.extend(tiny::judge(host, &cfg.name, &subject, &paths));
    if let (Some(min), Some(n)) = (cfg.min_size, newest) {
        if n.size.is_some_and(|s| s < min) {
            findings.push(
                Finding::new(
                    "backups.too-small",
                    Severity::High,
                    Category::Backups,
                    subject.clone(),
                    format!("Newest backup of `{}` is smaller than its minimum size", cfg.name),
                )
                .evidence(format!("{}: {} < min_size {}", n.path, human_bytes(n.size.unwrap_or(0)), human_bytes(min)))
                .fix("Check the archive's contents and the job's log; a backup this small is usually empty or cut short."),
            );
        }
    }

    // Log.
    if let Some(log) = &cfg.log {
        match read_tail(host, log) {
            Ok((text, _)) => {
                let scan = scan_log(&text, now);
                jf.log_errors = scan.errors.len();
                if !scan.errors.is_empty() {
                    let since = match &scan.last_success {
                        Some((l, Some(t))) => format!("since the last success ({}): {}", date_time(*t), clip(l)),
                        Some((l, None)) => format!("since the last success: {}", clip(l)),
                        None => "no success recorded in the log".to_string(),
                    };
                    let mut f = Finding::new(
                        "backups.log-errors",
                        if scan.severe { Severity::High } else { Severity::Medium },
                        Category::Backups,
                        subject.clone(),
                        format!(
                            "{} error line(s) in the log of `{}` since its last success",
                            scan.errors.len(),
                            cfg.name
                        ),
                    )
                    .evidence(format!("{log}: {since}"));
                    for e in error_sample(&scan.errors) {
                        f = f.evidence(e);
                    }
                    findings.push(f.fix(format!(
                        "Fix the cause shown in {log} (free space with `df -h`, permissions, credentials), run the job by hand, and make its failures alert someone."
                    )));
                }
            }
            Err(e) if e.is_not_found() => findings.push(
                Finding::new(
                    "backups.log-missing",
                    Severity::Low,
                    Category::Backups,
                    subject.clone(),
                    format!("The log of `{}` does not exist", cfg.name),
                )
                .evidence(format!("{log} not found: the job may never have run, or logs elsewhere"))
                .fix("Make the job append its output to this log (or correct `log` in [[backups]])."),
            ),
            Err(e) => findings.push(Finding::could_not_check(Category::Backups, TOOL, log, e)),
        }
    }

    judge_offsite(host, job, fed_by, now, &subject, &mut jf, findings);
    judge_restore(job, restore, now, &subject, &mut jf, findings);
    jf.repo_check = repo_check(host, job, &subject, findings).await;
    jf
}

pub(super) fn judge_offsite(
    host: &Host,
    job: &Job,
    fed_by: &[&Schedule],
    now: i64,
    subject: &str,
    jf: &mut JobFacts,
    findings: &mut Vec<Finding>,
) {
    let cfg = &job.cfg;
    let Some(target) = cfg.offsite.as_deref() else {
        let mut f = Finding::new(
            "backups.no-offsite",
            Severity::Medium,
            Category::Backups,
            subject.to_string(),
            format!("No proven offsite copy of `{}`", cfg.name),
        )
        .evidence(format!("backups only in {} on this host", job.dirs.join(", ")));
        let claimed: Vec<String> = fed_by
            .iter()
            .flat_map(|s| s.remote_targets.iter().map(move |t| format!("{} sends to {t}", s.source)))
            .collect();
        for c in &claimed {
            f = f.evidence(format!("{c}, but nothing records that it succeeds"));
        }
        findings.push(f.fix(format!(
            "Copy the backups to another machine or provider (restic/borg to sftp:/s3:/b2:, rclone, rsync host:path) and record it in [[backups]] `{}`: offsite = \"TARGET\", offsite_log = \"a file the sync touches on success\".",
            cfg.name
        )));
        return;
    };
    let shown = Redactor::global().text(target).into_owned();
    let remote = discover::is_remote(target);
    let mut of = OffsiteFacts { target: shown.clone(), remote, last_sync: None, proven_by: None };
    if !remote {
        findings.push(
            Finding::new(
                "backups.offsite-not-remote",
                Severity::Medium,
                Category::Backups,
                subject.to_string(),
                format!("The \"offsite\" copy of `{}` is on this machine", cfg.name),
            )
            .evidence(format!("offsite = \"{shown}\" is a local path"))
            .fix("Send the copy to another machine or provider (sftp:, s3:, b2:, user@host:path, an rclone remote); a disk in the same server burns with it."),
        );
        jf.offsite = Some(of);
        return;
    }
    let host_part = target.split_once("://").map(|(_, r)| r).unwrap_or(target);
    let host_part = host_part
        .split(['/', ':'])
        .find(|p| !p.is_empty() && !matches!(*p, "sftp" | "s3" | "b2" | "rest" | "rclone"))
        .unwrap_or(host_part);
    // As a log line names the machine: without the user.
    let host_part = host_part.rsplit('@').next().unwrap_or(host_part);
    let mut last: Option<(i64, String)> = None;
    let mut errors: Option<LogScan> = None;
    if let Some(olog) = &cfg.offsite_log {
        match read_tail(host, olog) {
            Ok((text, mtime)) => {
                let scan = scan_log(&text, now);
                if let Some((_, Some(t))) = &scan.last_success {
                    last = Some((*t, format!("success line in {olog}")));
                } else if scan.errors.is_empty() {
                    last = Some((mtime, format!("{olog} modified")));
                }
                if !scan.errors.is_empty() {
                    errors = Some(scan);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => findings.push(Finding::could_not_check(Category::Backups, TOOL, olog, e)),
        }
    } else if let Some(log) = &cfg.log {
        if let Ok((text, _)) = read_tail(host, log) {
            let t = text
                .lines()
                .filter(|l| l.contains(host_part) && is_error_line(l).is_none() && is_success_line(l))
                .filter_map(|l| line_time(l, now))
                .max();
            last = t.map(|t| (t, format!("success line naming {host_part} in {log}")));
        }
    }
    if let Some(scan) = &errors {
        let mut f = Finding::new(
            "backups.log-errors",
            if scan.severe { Severity::High } else { Severity::Medium },
            Category::Backups,
            format!("{subject}:offsite"),
            format!("The offsite sync of `{}` logs errors since its last success", cfg.name),
        );
        for e in error_sample(&scan.errors) {
            f = f.evidence(e);
        }
        findings.push(f.fix("Fix the sync (credentials, reachability, space at the target) and run it by hand."));
    }
    match last {
        Some((t, how)) => {
            of.last_sync = Some(date_time(t));
            of.proven_by = Some(how.clone());
            let limit = 2 * cfg.max_age_hours as i64 * 3600;
            if now - t > limit {
                findings.push(
                    Finding::new(
                        "backups.offsite-stale",
                        Severity::Medium,
                        Category::Backups,
                        subject.to_string(),
                        format!("The offsite copy of `{}` was last synced {} ago", cfg.name, human_age(now - t)),
                    )
                    .evidence(format!("target {shown}; last successful sync {} ({how})", date_time(t)))
                    .evidence(format!("limit: 2 × max_age_hours = {} hours", 2 * cfg.max_age_hours))
                    .fix("Run the offsite sync by hand, fix what fails, and make it alert on failure."),
                );
            }
        }
        None => findings.push(
            Finding::new(
                "backups.offsite-unproven",
                Severity::Medium,
                Category::Backups,
                subject.to_string(),
                format!("Nothing proves the offsite copy of `{}` is made", cfg.name),
            )
            .evidence(format!("offsite = \"{shown}\""))
            .evidence(match &cfg.offsite_log {
                Some(l) => format!("offsite_log {l} is missing or shows no success"),
                None => "no offsite_log, and no timestamped success line naming the target in the job's log".into(),
            })
            .fix("Have the sync touch a marker file on success (`... && touch /var/log/backup-offsite.ok`) and set offsite_log to it."),
        ),
    }
    jf.offsite = Some(of);
}

pub(super) fn judge_restore(
    job: &Job,
    restore: Option<&RestoreTests>,
    now: i64,
    subject: &str,
    jf: &mut JobFacts,
    findings: &mut Vec<Finding>,
) {
    let Some(tests) = restore else { return };
    let name = &job.cfg.name;
    let rec = tests.get(name);
    jf.restore_test = rec.map(|r| RestoreFacts {
        date: unix_date(r.at),
        ok: r.ok,
        archive: Redactor::global().text(&r.archive).into_owned(),
    });
    let fix = format!(
        "Restore-test it now with the verify_backup_restore tool (job \"{name}\"): it restores the newest archive into a scratch directory, checks it and records the result; allow it in [schedule] allow for monthly runs."
    );
    let window = RESTORE_TEST_DAYS * 86_400;
    match rec {
        Some(r) if !r.ok && now - r.at <= window => findings.push(
            Finding::new(
                "backups.restore-failed",
                Severity::High,
                Category::Backups,
                subject.to_string(),
                format!("The last restore test of `{name}` failed"),
            )
            .evidence(format!("{}: {} ({})", unix_date(r.at), Redactor::global().text(&r.archive), clip(&r.detail)))
            .fix(format!("Find why the archive does not restore and fix the backup job; then {}", fix.to_lowercase())),
        ),
        Some(r) if r.ok && now - r.at <= window => {}
        other => {
            let ev = match other {
                Some(r) => format!(
                    "last restore test {} ({}), more than {RESTORE_TEST_DAYS} days ago",
                    unix_date(r.at),
                    if r.ok { "succeeded" } else { "failed" }
                ),
                None => "no restore test recorded".to_string(),
            };
            findings.push(
                Finding::new(
                    "backups.no-restore-test",
                    Severity::Medium,
                    Category::Backups,
                    subject.to_string(),
                    format!("`{name}` has not been restore-tested in {RESTORE_TEST_DAYS} days"),
                )
                .evidence(ev)
                .fix(fix),
            );
        }
    }
}

pub(super) async fn repo_check(host: &Host, job: &Job, subject: &str, findings: &mut Vec<Finding>) -> Option<String> {
    let repo = job.repo.as_deref()?;
    let pw = job.cfg.password_file.as_deref()?;
    if !host.exists(pw) {
        findings.push(
            Finding::new(
                "backups.password-file-missing",
                Severity::High,
                Category::Backups,
                subject.to_string(),
                format!("The repository password file of `{}` is missing: the backups cannot be restored", job.cfg.name),
            )
            .evidence(format!("password_file {pw} not found"))
            .fix("Restore the password file from your password manager (keep a copy off this server too); without it the repository is unreadable."),
        );
        return Some("not run: password file missing".into());
    }
    if !host.is_live() {
        return Some("not run: only on the live host".into());
    }
    let (program, args): (&str, Vec<String>) = match job.kind {
        JobKind::Restic => (
            "restic",
            vec!["-r".into(), repo.into(), "--password-file".into(), pw.into(), "--no-cache".into(), "check".into()],
        ),
        JobKind::Borg => {
            if pw.contains('\'') {
                return Some("not run: password file path contains a quote".into());
            }
            let Some(borg) = host.which("borg") else {
                return Some("not run: borg is not installed".into());
            };
            (
                "env",
                vec![
                    format!("BORG_PASSCOMMAND=cat '{pw}'"),
                    "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes".into(),
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes".into(),
                    borg,
                    "check".into(),
                    repo.into(),
                ],
            )
        }
        JobKind::Files => return None,
    };
    let tool = if job.kind == JobKind::Restic { "restic" } else { "borg" };
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match host.run(program, &argv, Duration::from_secs(300)).await {
        Ok(out) if out.success() => Some("ok".into()),
        Ok(out) => {
            let tail: Vec<String> =
                out.stderr.lines().chain(out.stdout.lines()).filter(|l| !l.trim().is_empty()).map(clip).collect();
            let tail: Vec<String> = tail.iter().rev().take(4).rev().cloned().collect();
            findings.push(
                Finding::new(
                    "backups.repo-check-failed",
                    Severity::High,
                    Category::Backups,
                    subject.to_string(),
                    format!("`{tool} check` fails on the repository of `{}`", job.cfg.name),
                )
                .evidence(format!("{tool} check {repo}: exit {}", out.status))
                .evidence(tail.join(" | "))
                .fix(format!("Run `{tool} check` on {repo} by hand and repair the repository (restic: `restic repair index`/`repair snapshots`; borg: `borg check --repair`) before you need a restore.")),
            );
            Some(format!("failed (exit {})", out.status))
        }
        Err(e) if e.is_not_found() => Some(format!("not run: {e}")),
        Err(e) => {
            findings.push(Finding::could_not_check(Category::Backups, TOOL, &format!("{tool} check {repo}"), e));
            Some("could not run".into())
        }
    }
}

/// Used space of the filesystems holding the newest backups (live host).
pub(super) fn filesystems(host: &Host, jobs: &[Job], findings: &mut Vec<Finding>) -> Vec<FsFacts> {
    let mut by_dev: BTreeMap<u64, FsFacts> = BTreeMap::new();
    for j in jobs {
        let Some(dir) =
            j.items.iter().max_by_key(|i| i.mtime).map(|i| parent(&i.path)).or_else(|| j.dirs.first().cloned())
        else {
            continue;
        };
        let Ok(m) = host.metadata(&dir) else { continue };
        if let Some(fs) = by_dev.get_mut(&m.dev()) {
            fs.jobs.push(j.cfg.name.clone());
            continue;
        }
        let Ok(real) = host.path(&dir) else { continue };
        let Some((used, avail)) = statvfs(&real) else { continue };
        by_dev.insert(
            m.dev(),
            FsFacts { path: dir, used_percent: used, available_bytes: avail, jobs: vec![j.cfg.name.clone()] },
        );
    }
    for fs in by_dev.values() {
        if fs.used_percent >= 80 {
            findings.push(
                Finding::new(
                    "backups.disk-full",
                    if fs.used_percent >= 90 { Severity::High } else { Severity::Medium },
                    Category::Backups,
                    format!("fs:{}", fs.path),
                    format!("The filesystem holding backups is {}% full", fs.used_percent),
                )
                .evidence(format!("{}: {}% used, {} free; jobs: {}", fs.path, fs.used_percent, human_bytes(fs.available_bytes), fs.jobs.join(", ")))
                .fix("Prune old backups (keep a retention policy: restic forget --prune, borg prune, or delete the oldest archives) or grow the disk before the next backup fails with 'No space left on device'."),
            );
        }
    }
    by_dev.into_values().collect()
}

/// (used percent as df shows it, available bytes).
pub(super) fn statvfs(path: &std::path::Path) -> Option<(u8, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `st` is plain old data that statvfs fills; `c` is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    let used = (st.f_blocks as u64).saturating_sub(st.f_bfree as u64);
    let total = used + st.f_bavail as u64;
    if total == 0 {
        return None;
    }
    let pct = (used * 100).div_ceil(total);
    Some((pct.min(100) as u8, st.f_bavail as u64 * frsize))
}
