//! Scheduled reviews: `vigil schedule install | status | remove`, the record of
//! each scheduled run, and the "overdue" check.
//!
//! A review nobody runs is Mistake 4 again, so the schedule is checked from
//! both ends: `install` writes a systemd service + timer (`Persistent=true`, a
//! randomised delay, a hardened service that may write only the state
//! directory) where systemd runs, else an `/etc/cron.d` entry; every scheduled
//! run records its result; and every review starts by saying so when the last
//! scheduled run is overdue — the timer stopped firing. `remove` undoes exactly
//! what `install` recorded.

pub mod cron;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use vigil_tools::Host;

use crate::auth::CREDENTIAL;
use crate::state::{StateDir, read_private, write_atomic};
use cron::Cron;

/// Unit and file names.
pub const SERVICE: &str = "vigil-review.service";
/// The timer unit.
pub const TIMER: &str = "vigil-review.timer";
/// The cron.d file.
pub const CRON_FILE: &str = "/etc/cron.d/vigil";

/// What `install` did, kept so `status` and `remove` know.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Installed {
    /// `systemd` or `cron`.
    pub backend: String,
    /// `monthly`, `weekly` or `cron`.
    pub period: String,
    /// The cron expression the schedule follows.
    pub cron: String,
    /// The systemd calendar expression (systemd backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_calendar: Option<String>,
    /// Files written (paths inside the audited root).
    pub files: Vec<String>,
    /// The command the job runs.
    pub exec: String,
    /// The root-owned key file the job reads, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Notification targets given at install.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Whether the timer was enabled with systemctl.
    pub enabled: bool,
    /// When (Unix seconds).
    pub installed_at: i64,
    /// The inventory a fleet schedule reviews (`vigil fleet review -i`), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
}

impl Installed {
    /// The longest gap between two runs before a run counts as overdue.
    pub fn max_gap_secs(&self) -> i64 {
        let parsed = Cron::parse(&self.cron).ok();
        // The gap between two consecutive runs, from the expression itself.
        let gap = parsed
            .as_ref()
            .and_then(|c| {
                let a = c.next_after(self.installed_at)?;
                let b = c.next_after(a)?;
                Some(b - a)
            })
            .unwrap_or(31 * 86_400);
        // A month can be 31 days; allow the randomised delay and a day of slack.
        gap.max(31 * 86_400 * i64::from(self.period == "monthly")) + 2 * 86_400
    }
}

/// One scheduled run's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Run {
    /// When it started (Unix seconds).
    pub at: i64,
    /// Its exit code.
    pub exit: u8,
    /// The headline of its review.
    pub headline: String,
    /// Report files written.
    #[serde(default)]
    pub reports: Vec<String>,
    /// Notification problems, if any.
    #[serde(default)]
    pub notify_errors: Vec<String>,
}

fn installed_path(state: &StateDir) -> PathBuf {
    state.path().join("schedule.json")
}

fn runs_path(state: &StateDir) -> PathBuf {
    state.path().join("schedule-runs.json")
}

/// The recorded installation, if any.
pub fn installed(state: &StateDir) -> Option<Installed> {
    serde_json::from_slice(&read_private(&installed_path(state)).ok()?).ok()
}

/// Recorded runs, oldest first.
pub fn runs(state: &StateDir) -> Vec<Run> {
    read_private(&runs_path(state)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Record a scheduled run (the newest 100 are kept).
pub fn record_run(state: &StateDir, run: Run) -> Result<()> {
    let mut all = runs(state);
    all.push(run);
    let skip = all.len().saturating_sub(100);
    write_atomic(&runs_path(state), &serde_json::to_vec_pretty(&all[skip..])?)
}

/// The line a review must start with when the schedule stopped firing.
pub fn overdue_notice(state: &StateDir, now: i64) -> Option<String> {
    let inst = installed(state)?;
    let last = runs(state).last().map(|r| r.at);
    let since = last.unwrap_or(inst.installed_at);
    let gap = now - since;
    if gap <= inst.max_gap_secs() {
        return None;
    }
    let days = gap / 86_400;
    Some(match last {
        Some(t) => format!(
            "The scheduled {} review is overdue: the last scheduled run was {} ({days} days ago). The {} may have stopped firing: check `vigil schedule status`.",
            inst.period,
            crate::review::acks::date_of_day(t / 86_400),
            if inst.backend == "systemd" { "timer" } else { "cron job" }
        ),
        None => format!(
            "The scheduled {} review has never run since it was installed {days} days ago: check `vigil schedule status`.",
            inst.period
        ),
    })
}

/// Is systemd the running init on the live host?
pub fn systemd_running(host: &Host) -> bool {
    host.is_live() && Path::new("/run/systemd/system").is_dir()
}

/// Why nothing would run a job of `backend` on this host, if that is so: systemd is not the
/// running init, or no cron daemon runs. Off the live root nothing can be told (`None`).
pub fn nothing_runs_it(host: &Host, backend: &str) -> Option<String> {
    if !host.is_live() {
        return None;
    }
    match backend {
        "systemd" if !systemd_running(host) => {
            Some("systemd is not the running init here, so the timer never fires".into())
        }
        "cron" if !cron_daemon_running() => Some(
            "no cron daemon (cron, crond, cronie, busybox crond) is running, so /etc/cron.d/vigil is never read: \
             start one (`service cron start`, or enable it at boot) or schedule vigil with what this host runs"
                .into(),
        ),
        _ => None,
    }
}

/// Is a cron daemon among the running processes?
fn cron_daemon_running() -> bool {
    let live = Host::live();
    let Ok(pids) = live.read_dir("/proc") else { return false };
    pids.iter().filter(|n| n.bytes().all(|b| b.is_ascii_digit())).any(|pid| {
        let comm = live.read_to_string(&format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        ["cron", "crond", "cronie", "fcron", "dcron"].contains(&comm)
            || (comm == "busybox"
                && live
                    .read(&format!("/proc/{pid}/cmdline"))
                    .map(|c| c.split(|b| *b == 0).any(|a| a == b"crond"))
                    .unwrap_or(false))
    })
}

/// A minute and hour derived from the host name, so a fleet does not all run at once.
fn spread(host: &Host) -> (u32, u32) {
    let name = crate::state::host_name(host);
    let h = name.bytes().fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    (h % 60, 2 + (h / 60) % 3)
}

/// What to install.
pub struct Request<'a> {
    /// `monthly`, `weekly`, or a cron expression.
    pub period: &'a str,
    /// The cron expression when `period` is `cron`.
    pub cron: Option<&'a str>,
    /// The vigil binary the job runs.
    pub exe: &'a Path,
    /// Extra arguments the job passes (e.g. `--config`).
    pub args: Vec<String>,
    /// A root-owned 0600 key file.
    pub key_file: Option<&'a Path>,
    /// Notification targets.
    pub notify: Vec<String>,
    /// Review this inventory's servers (`fleet review -i INV --scheduled`) instead of this
    /// host: an absolute path that `fleet::scheduled::check_inventory` accepted.
    pub fleet: Option<&'a Path>,
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The systemd service unit.
pub fn service_unit(exec: &str, state_dir: &Path, key_file: Option<&Path>) -> String {
    let cred = key_file.map(|k| format!("LoadCredential={CREDENTIAL}:{}\n", k.display())).unwrap_or_default();
    format!(
        "[Unit]\n\
         Description=vigil scheduled security review\n\
         Documentation=https://example.invalid/vigil\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={exec}\n\
         TimeoutStartSec=2h\n\
         TimeoutStopSec=30s\n\
         {cred}\
         Nice=10\n\
         IOSchedulingClass=idle\n\
         UMask=0077\n\
         NoNewPrivileges=yes\n\
         PrivateTmp=yes\n\
         ProtectSystem=strict\n\
         ReadWritePaths={state}\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         RestrictRealtime=yes\n\
         SystemCallArchitectures=native\n",
        state = state_dir.display()
    )
}

/// The systemd timer unit.
pub fn timer_unit(on_calendar: &str, period: &str) -> String {
    format!(
        "[Unit]\n\
         Description=Run the vigil security review ({period})\n\
         \n\
         [Timer]\n\
         OnCalendar={on_calendar}\n\
         Persistent=true\n\
         RandomizedDelaySec=1h\n\
         AccuracySec=1min\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    )
}

/// The cron.d file.
pub fn cron_file(cron: &str, exec: &str, key_file: Option<&Path>) -> String {
    let key = key_file.map(|k| format!("VIGIL_API_KEY_FILE={}\n", k.display())).unwrap_or_default();
    format!(
        "# Installed by `vigil schedule install`; remove with `vigil schedule remove`.\n\
         SHELL=/bin/sh\n\
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         {key}\
         {cron} root timeout -k 60 2h {exec} >/dev/null 2>&1\n"
    )
}

/// Install the schedule; returns what was done, for the user.
pub async fn install(host: &Host, state: &StateDir, req: Request<'_>) -> Result<(Installed, Vec<String>)> {
    if host.is_live() && !crate::state::is_root() {
        bail!("installing a schedule writes under /etc: run it as root (sudo vigil schedule install …)");
    }
    if let Some(prev) = installed(state) {
        bail!("a {} schedule is already installed ({}); run `vigil schedule remove` first", prev.period, prev.backend);
    }
    if let Some(k) = req.key_file {
        crate::auth::read_key_file(k).context("the --key-file is not usable for scheduled runs")?;
    }
    let (m, h) = spread(host);
    let cron_expr = match (req.period, req.cron) {
        ("monthly", _) => format!("{m} {h} 1 * *"),
        ("weekly", _) => format!("{m} {h} * * 1"),
        (_, Some(c)) => Cron::parse(c)?.expr,
        _ => bail!("choose --monthly, --weekly or --cron EXPR"),
    };
    let cron = Cron::parse(&cron_expr)?;
    let mut parts = vec![req.exe.display().to_string()];
    parts.extend(req.args.iter().cloned());
    match req.fleet {
        Some(inv) => {
            parts.extend(["fleet", "review", "-i", &inv.display().to_string(), "--scheduled"].map(str::to_string))
        }
        None => parts.extend(["review".to_string(), "--scheduled".to_string()]),
    }
    let exec = parts.iter().map(|p| shell_quote(p)).collect::<Vec<_>>().join(" ");
    let mut notes = Vec::new();
    let mut files = Vec::new();
    let systemd = systemd_running(host) || (!host.is_live() && host.exists("/etc/systemd/system"));
    let mut enabled = false;
    let on_calendar = if systemd {
        let svc = format!("/etc/systemd/system/{SERVICE}");
        let tmr = format!("/etc/systemd/system/{TIMER}");
        write_host_file(host, &svc, &service_unit(&exec, state.path(), req.key_file), 0o644)?;
        let oc = cron.on_calendar();
        write_host_file(host, &tmr, &timer_unit(&oc, req.period), 0o644)?;
        files.extend([svc.clone(), tmr.clone()]);
        notes.push(format!("wrote {svc} and {tmr} (OnCalendar={oc}, Persistent=true, RandomizedDelaySec=1h)"));
        if systemd_running(host) {
            let d = host.run("systemctl", &["daemon-reload"], std::time::Duration::from_secs(30)).await?;
            let e = host.run("systemctl", &["enable", "--now", TIMER], std::time::Duration::from_secs(30)).await?;
            if !d.success() || !e.success() {
                bail!("systemctl failed: {}{}", d.stderr.trim(), e.stderr.trim());
            }
            enabled = true;
            notes.push(format!("enabled and started {TIMER}"));
        } else {
            notes.push(format!(
                "systemd is not running here: enable it on that system with `systemctl enable --now {TIMER}`"
            ));
        }
        Some(oc)
    } else {
        write_host_file(host, CRON_FILE, &cron_file(&cron_expr, &exec, req.key_file), 0o644)?;
        files.push(CRON_FILE.to_string());
        notes.push(format!("wrote {CRON_FILE} ({cron_expr}); cron picks it up by itself"));
        None
    };
    match req.key_file {
        Some(k) if systemd => notes.push(format!(
            "the job reads the API key from {} through systemd credentials (LoadCredential={CREDENTIAL})",
            k.display()
        )),
        Some(k) => notes.push(format!("the job reads the API key from {} (VIGIL_API_KEY_FILE in {CRON_FILE})", k.display())),
        None => notes.push(
            "no API key for scheduled runs: the deterministic review runs; add --key-file FILE (root-owned, 0600) for the model's summary"
                .into(),
        ),
    }
    let inst = Installed {
        backend: if systemd { "systemd" } else { "cron" }.into(),
        period: if req.cron.is_some() && req.period == "cron" { "cron".into() } else { req.period.into() },
        cron: cron_expr,
        on_calendar,
        files,
        exec,
        key_file: req.key_file.map(|k| k.display().to_string()),
        notify: req.notify,
        enabled,
        installed_at: host.now_unix(),
        fleet: req.fleet.map(|p| p.display().to_string()),
    };
    write_atomic(&installed_path(state), &serde_json::to_vec_pretty(&inst)?)?;
    Ok((inst, notes))
}

fn write_host_file(host: &Host, path: &str, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let real = host.path(path)?;
    if let Some(dir) = real.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&real, text).with_context(|| format!("cannot write {}", real.display()))?;
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Undo everything `install` recorded.
pub async fn remove(host: &Host, state: &StateDir) -> Result<Vec<String>> {
    let Some(inst) = installed(state) else { bail!("no schedule is installed") };
    let mut notes = Vec::new();
    if inst.backend == "systemd" && systemd_running(host) {
        let r = host.run("systemctl", &["disable", "--now", TIMER], std::time::Duration::from_secs(30)).await?;
        notes.push(if r.success() {
            format!("disabled {TIMER}")
        } else {
            format!("systemctl disable: {}", r.stderr.trim())
        });
    }
    for f in &inst.files {
        let real = host.path(f)?;
        match std::fs::remove_file(&real) {
            Ok(()) => notes.push(format!("removed {f}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => notes.push(format!("{f} was already gone")),
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", real.display())),
        }
    }
    if inst.backend == "systemd" && systemd_running(host) {
        let _ = host.run("systemctl", &["daemon-reload"], std::time::Duration::from_secs(30)).await;
    }
    std::fs::remove_file(installed_path(state)).context("cannot remove the schedule record")?;
    notes.push("removed the schedule record (past runs and reports are kept)".into());
    Ok(notes)
}

/// `status` text.
pub fn status(host: &Host, state: &StateDir, now: i64) -> String {
    let Some(inst) = installed(state) else {
        return "No schedule installed: `vigil schedule install --monthly` sets one up.".into();
    };
    let idle = nothing_runs_it(host, &inst.backend);
    let date = vigil_tools::format::rfc3339;
    let mut o = format!(
        "Schedule: {} via {} ({}{})\nRuns:     {}\nFiles:    {}\n",
        inst.period,
        inst.backend,
        inst.cron,
        inst.on_calendar.as_deref().map(|c| format!(", OnCalendar={c}")).unwrap_or_default(),
        inst.exec,
        inst.files.join(", ")
    );
    if let Some(inv) = &inst.fleet {
        o.push_str(&format!("Fleet:    every server of {inv} (`vigil fleet status -i {inv}`)\n"));
    }
    match runs(state).last() {
        Some(r) => {
            o.push_str(&format!("Last run: {} exit {} — {}\n", date(r.at), r.exit, r.headline));
            for e in &r.notify_errors {
                o.push_str(&format!("          notification failed: {e}\n"));
            }
        }
        None => o.push_str("Last run: never\n"),
    }
    match (&idle, Cron::parse(&inst.cron).ok().and_then(|c| c.next_after(now))) {
        (Some(why), _) => o.push_str(&format!("Next run: none — nothing will run the job: {why}\n")),
        (None, Some(n)) => o.push_str(&format!(
            "Next run: {}{}\n",
            date(n),
            if inst.backend == "systemd" { " (plus up to 1 h randomised delay)" } else { "" }
        )),
        (None, None) => o.push_str("Next run: unknown\n"),
    }
    if let Some(n) = overdue_notice(state, now) {
        o.push_str(&format!("OVERDUE:  {n}\n"));
    }
    o
}

/// [`status`] as JSON: the installation, the last run, the next run, and whether anything runs the job.
pub fn status_json(host: &Host, state: &StateDir, now: i64) -> serde_json::Value {
    let Some(inst) = installed(state) else {
        return serde_json::json!({"installed": null});
    };
    let idle = nothing_runs_it(host, &inst.backend);
    let next = if idle.is_some() { None } else { Cron::parse(&inst.cron).ok().and_then(|c| c.next_after(now)) };
    serde_json::json!({
        "installed": inst,
        "last_run": runs(state).last(),
        "next_run": next,
        "runs_here": idle.is_none(),
        "why_not": idle,
        "overdue": overdue_notice(state, now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_nothing_runs_is_said_so() {
        // Off the live root nothing can be told.
        assert_eq!(nothing_runs_it(&Host::at("/nonexistent"), "cron"), None);
        if !Path::new("/run/systemd/system").is_dir() {
            let why = nothing_runs_it(&Host::live(), "systemd").unwrap_or_default();
            assert!(why.contains("systemd is not the running init"), "{why}");
        }
        // A process named crond counts as a cron daemon.
        let t = tempfile::tempdir().unwrap();
        let fake = t.path().join("crond");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let mut child = std::process::Command::new(&fake).arg("30").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let seen = cron_daemon_running();
        let verdict = nothing_runs_it(&Host::live(), "cron");
        let _ = child.kill();
        let _ = child.wait();
        assert!(seen, "a running crond is found");
        assert_eq!(verdict, None, "with a cron daemon running, the cron job will run");
    }

    #[test]
    fn units_are_hardened_and_persistent() {
        let s = service_unit(
            "/usr/local/bin/vigil review --scheduled",
            Path::new("/var/lib/vigil"),
            Some(Path::new("/etc/vigil/key")),
        );
        for want in [
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/vigil",
            "LoadCredential=anthropic-api-key:/etc/vigil/key",
        ] {
            assert!(s.contains(want), "{want} missing:\n{s}");
        }
        assert!(s.contains("TimeoutStartSec=2h"), "a oneshot has no time limit unless given one:\n{s}");
        let t = timer_unit("*-*-01 03:17:00", "monthly");
        assert!(t.contains("Persistent=true") && t.contains("RandomizedDelaySec="), "{t}");
    }

    #[test]
    fn the_cron_line_parses_back() {
        let f = cron_file("17 3 1 * *", "/usr/local/bin/vigil review --scheduled", None);
        let line = f.lines().find(|l| l.ends_with("2>&1")).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let c = Cron::parse(&fields[..5].join(" ")).unwrap();
        assert_eq!(c.expr, "17 3 1 * *");
        assert_eq!(fields[5], "root");
        // Under a time limit: a stuck run is stopped (SIGTERM, then SIGKILL a minute later).
        assert_eq!(fields[6..10].join(" "), "timeout -k 60 2h");
        assert_eq!(fields[10..13].join(" "), "/usr/local/bin/vigil review --scheduled");
    }

    #[test]
    fn overdue_after_a_missed_month() {
        let t = tempfile::tempdir().unwrap();
        let state = StateDir::open(Some(t.path())).unwrap();
        let inst = Installed {
            backend: "cron".into(),
            period: "monthly".into(),
            cron: "17 3 1 * *".into(),
            on_calendar: None,
            files: vec![],
            exec: "vigil review --scheduled".into(),
            key_file: None,
            notify: vec![],
            enabled: false,
            installed_at: 1_790_000_000,
            fleet: None,
        };
        write_atomic(&installed_path(&state), &serde_json::to_vec(&inst).unwrap()).unwrap();
        let day = 86_400;
        record_run(
            &state,
            Run { at: 1_790_000_000 + day, exit: 0, headline: "ok".into(), reports: vec![], notify_errors: vec![] },
        )
        .unwrap();
        assert!(overdue_notice(&state, 1_790_000_000 + 30 * day).is_none());
        let n = overdue_notice(&state, 1_790_000_000 + 70 * day).unwrap();
        assert!(n.contains("overdue") && n.contains("69 days ago"), "{n}");
    }
}
