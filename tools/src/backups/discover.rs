//! What `check_backups` finds without being told: backup schedules in cron and
//! systemd timers, restic and borg repositories by their on-disk layout,
//! archive directories under the usual backup roots, and remote targets on
//! command lines (the evidence an offsite copy is at least attempted).

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::redact::Redactor;

/// Programs that make backups, by the name they are run as.
pub const BACKUP_TOOLS: &[&str] = &[
    "restic",
    "borg",
    "borgmatic",
    "rsync",
    "rclone",
    "duplicity",
    "duply",
    "mysqldump",
    "mariadb-dump",
    "mariabackup",
    "xtrabackup",
    "pg_dump",
    "pg_dumpall",
    "pg_basebackup",
    "mongodump",
    "tar",
    "automysqlbackup",
    "autopostgresqlbackup",
    "rdiff-backup",
    "rsnapshot",
    "kopia",
    "duplicati-cli",
    "wp-cli-backup",
];

/// Debian's own cron scripts: they keep package metadata, not site data.
const DISTRO_CRON: &[&str] = &[
    "apt-compat",
    "dpkg",
    "man-db",
    "logrotate",
    "passwd",
    "aptitude",
    "bsdmainutils",
    "exim4-base",
    "apache2",
    "mlocate",
    "plocate",
    "sysstat",
    "debsums",
    "popularity-contest",
    "e2scrub_all",
    "php",
    "locate",
    "quota",
    "ntp",
    "certbot",
];

/// How often a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// Every hour or more often.
    Hourly,
    /// Every day.
    Daily,
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
    /// Could not tell (e.g. `@reboot`).
    Unknown,
}

impl Frequency {
    /// The age limit (hours) a job on this schedule implies.
    pub fn max_age_hours(self) -> Option<u64> {
        match self {
            Frequency::Hourly | Frequency::Daily => Some(26),
            Frequency::Weekly => Some(8 * 24 + 2),
            Frequency::Monthly => Some(32 * 24),
            Frequency::Unknown => None,
        }
    }
}

/// A scheduled command that runs a backup tool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Schedule {
    /// Where it is defined (`/etc/cron.d/backup`, `/etc/systemd/system/restic.timer`).
    pub source: String,
    /// The schedule as written (`30 2 * * *`, `@daily`, `OnCalendar=daily`, `cron.daily`).
    pub schedule: String,
    /// How often that is.
    pub frequency: Frequency,
    /// The user it runs as, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Backup tools it runs (directly or in the script it calls).
    pub tools: Vec<String>,
    /// The command (secrets redacted, shortened).
    pub command: String,
    /// Remote targets on its command line or in its script (secrets redacted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote_targets: Vec<String>,
    /// The command and the scripts it runs, for matching with jobs (not serialised).
    #[serde(skip)]
    pub text: String,
}

impl Schedule {
    /// True when this schedule mentions `needle` (a job's directory, log, repository or target).
    pub fn mentions(&self, needle: &str) -> bool {
        let n = needle.trim_end_matches('/');
        !n.is_empty() && n != "/" && self.text.contains(n)
    }
}

/// Basename of a word, without quotes.
fn base(word: &str) -> &str {
    let w = word.trim_matches(|c| c == '"' || c == '\'');
    w.rsplit('/').next().unwrap_or(w)
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || ";|&()`<>".contains(c)).filter(|w| !w.is_empty())
}

/// Backup tools named in a command or script (comment lines skipped).
pub fn tools_in(text: &str) -> Vec<String> {
    let mut found = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for w in words(line) {
            let b = base(w);
            if BACKUP_TOOLS.contains(&b) {
                found.insert(b.to_string());
            }
        }
    }
    found.into_iter().collect()
}

/// True when `target` names a place on another machine.
pub fn is_remote(target: &str) -> bool {
    let t = target.trim().trim_matches(|c| c == '"' || c == '\'');
    if t.is_empty() || t.starts_with('/') || t.starts_with('.') || t.starts_with('-') || t.starts_with('~') {
        return false;
    }
    if let Some((scheme, rest)) = t.split_once("://") {
        let local = scheme.eq_ignore_ascii_case("file")
            || rest.starts_with("localhost")
            || rest.starts_with("127.")
            || rest.starts_with("[::1]");
        return !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) && !local;
    }
    // restic backends: sftp:user@host:/path, s3:host/bucket, b2:bucket:path, rest:https://...
    for p in ["sftp:", "s3:", "b2:", "azure:", "gs:", "swift:", "rest:", "rclone:"] {
        if t.len() > p.len() && t.starts_with(p) {
            return true;
        }
    }
    // [user@]host:path (rsync, scp, borg 1.x), host::module (rsync daemon), remote:path (rclone).
    let Some((hostpart, _)) = t.split_once(':') else { return false };
    let host = hostpart.rsplit('@').next().unwrap_or(hostpart);
    let ok_chars = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let user_ok = hostpart.split_once('@').is_none_or(|(u, _)| ok_chars(u));
    ok_chars(host)
        && user_ok
        && host.chars().any(|c| c.is_ascii_alphabetic())
        && !matches!(host, "localhost" | "ip6-localhost")
        && !host.starts_with("127.")
}

/// Remote targets in a command or script, redacted.
pub fn remote_targets(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if tools_in(line).is_empty() && !line.contains("RESTIC_REPOSITORY") && !line.contains("BORG_REPO") {
            continue;
        }
        for w in words(line) {
            let w = w.trim_matches(|c| c == '"' || c == '\'');
            let value = w
                .split_once('=')
                .map(
                    |(k, v)| {
                        if k.starts_with('-') || k.ends_with("_REPO") || k.ends_with("REPOSITORY") { v } else { "" }
                    },
                )
                .unwrap_or(w);
            if is_remote(value) {
                out.insert(Redactor::global().text(value).into_owned());
            }
        }
    }
    out.into_iter().collect()
}

fn shorten(s: &str, n: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}

/// Read the scripts a command runs (absolute paths at the start of each part), one level deep.
fn scripts_of(host: &Host, command: &str) -> String {
    let mut text = String::new();
    let mut read = 0;
    for part in command.split(['&', ';', '|']) {
        let mut first = words(part).skip_while(|w| w.contains('=') && !w.starts_with('/'));
        let Some(w) = first.next() else { continue };
        let w = if matches!(w, "sh" | "bash" | "/bin/sh" | "/bin/bash" | "nice" | "ionice" | "/usr/bin/nice") {
            match first.find(|w| !w.starts_with('-')) {
                Some(w) => w,
                None => continue,
            }
        } else {
            w
        };
        if !w.starts_with('/') || read >= 3 {
            continue;
        }
        let small = host.metadata(w).map(|m| m.is_file() && m.len() <= 64 * 1024).unwrap_or(false);
        if !small {
            continue;
        }
        if let Ok(bytes) = host.read(w) {
            if !bytes.iter().take(512).any(|b| *b == 0) {
                text.push('\n');
                text.push_str(&String::from_utf8_lossy(&bytes));
                read += 1;
            }
        }
    }
    text
}

fn make_schedule(
    host: &Host,
    source: &str,
    schedule: String,
    frequency: Frequency,
    user: Option<String>,
    command: &str,
    env: &str,
) -> Option<Schedule> {
    let scripts = scripts_of(host, command);
    let text = format!("{env}\n{command}\n{scripts}");
    let mut tools = tools_in(&format!("{command}\n{scripts}"));
    if tools.is_empty() {
        let named_backup = words(command).next().is_some_and(|w| base(w).to_ascii_lowercase().contains("backup"));
        if !named_backup {
            return None;
        }
        tools.push("backup script".into());
    }
    Some(Schedule {
        source: source.to_string(),
        schedule,
        frequency,
        user,
        tools,
        command: shorten(&Redactor::global().text(command), 200),
        remote_targets: remote_targets(&text),
        text,
    })
}

fn cron_frequency(fields: &[&str]) -> Frequency {
    match fields {
        [s] => match *s {
            "@hourly" => Frequency::Hourly,
            "@daily" | "@midnight" => Frequency::Daily,
            "@weekly" => Frequency::Weekly,
            "@monthly" | "@yearly" | "@annually" => Frequency::Monthly,
            _ => Frequency::Unknown,
        },
        [_min, hour, dom, _mon, dow] => {
            if *dom != "*" {
                Frequency::Monthly
            } else if *dow != "*" && !dow.contains(['-', ',']) {
                Frequency::Weekly
            } else if *hour == "*" || hour.contains('/') {
                Frequency::Hourly
            } else {
                Frequency::Daily
            }
        }
        _ => Frequency::Unknown,
    }
}

/// Parse a crontab; `system` crontabs have a user field.
fn parse_crontab(host: &Host, source: &str, text: &str, system: bool, owner: Option<&str>) -> Vec<Schedule> {
    let mut out = Vec::new();
    let mut env = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let first = l.split_whitespace().next().unwrap_or_default();
        if first.contains('=') && !first.starts_with('@') && !first.starts_with('*') {
            env.push_str(l);
            env.push('\n');
            continue;
        }
        let nfields = if first.starts_with('@') { 1 } else { 5 };
        let mut parts = l.split_whitespace();
        let fields: Vec<&str> = parts.by_ref().take(nfields).collect();
        if fields.len() < nfields {
            continue;
        }
        let user = if system { parts.next().map(str::to_string) } else { owner.map(str::to_string) };
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            continue;
        }
        let command = rest.join(" ");
        if let Some(s) = make_schedule(host, source, fields.join(" "), cron_frequency(&fields), user, &command, &env) {
            out.push(s);
        }
    }
    out
}

/// run-parts only runs names made of letters, digits, `_` and `-`.
fn run_parts_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Every cron job and systemd timer that runs a backup tool.
pub fn schedules(host: &Host, unreadable: &mut Vec<(String, String)>) -> Vec<Schedule> {
    let mut out = Vec::new();
    let mut read = |path: &str| match host.read_optional(path) {
        Ok(t) => t,
        Err(e) => {
            unreadable.push((path.to_string(), e.to_string()));
            None
        }
    };
    if let Some(t) = read("/etc/crontab") {
        out.extend(parse_crontab(host, "/etc/crontab", &t, true, None));
    }
    for n in host.read_dir("/etc/cron.d").unwrap_or_default().into_iter().filter(|n| run_parts_name(n)) {
        if DISTRO_CRON.contains(&n.as_str()) {
            continue;
        }
        let p = format!("/etc/cron.d/{n}");
        if let Some(t) = read(&p) {
            out.extend(parse_crontab(host, &p, &t, true, None));
        }
    }
    for (dir, freq) in [
        ("/etc/cron.hourly", Frequency::Hourly),
        ("/etc/cron.daily", Frequency::Daily),
        ("/etc/cron.weekly", Frequency::Weekly),
        ("/etc/cron.monthly", Frequency::Monthly),
    ] {
        for n in host.read_dir(dir).unwrap_or_default().into_iter().filter(|n| run_parts_name(n)) {
            if DISTRO_CRON.contains(&n.as_str()) {
                continue;
            }
            let p = format!("{dir}/{n}");
            let Some(t) = read(&p) else { continue };
            let tools = tools_in(&t);
            if tools.is_empty() && !n.to_ascii_lowercase().contains("backup") {
                continue;
            }
            let text = t.clone();
            out.push(Schedule {
                source: p.clone(),
                schedule: dir.trim_start_matches("/etc/").to_string(),
                frequency: freq,
                user: Some("root".into()),
                tools: if tools.is_empty() { vec!["backup script".into()] } else { tools },
                command: p.clone(),
                remote_targets: remote_targets(&text),
                text: format!("{p}\n{text}"),
            });
        }
    }
    for n in host.read_dir("/var/spool/cron/crontabs").unwrap_or_default() {
        let p = format!("/var/spool/cron/crontabs/{n}");
        if let Some(t) = read(&p) {
            out.extend(parse_crontab(host, &p, &t, false, Some(&n)));
        }
    }
    out.extend(timers(host, unreadable));
    out
}

fn unit_values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('='))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

fn calendar_frequency(v: &str) -> Frequency {
    let l = v.to_ascii_lowercase();
    if l.contains("hourly") || l.contains("*:") && l.matches(':').count() == 1 && l.starts_with('*') {
        Frequency::Hourly
    } else if l.contains("weekly") || ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().any(|d| l.starts_with(d))
    {
        Frequency::Weekly
    } else if l.contains("monthly") || l.contains("-01 ") || l.ends_with("-01") {
        Frequency::Monthly
    } else if l.contains("daily") || l.contains("*-*-*") {
        Frequency::Daily
    } else {
        Frequency::Unknown
    }
}

fn timers(host: &Host, unreadable: &mut Vec<(String, String)>) -> Vec<Schedule> {
    let mut out = Vec::new();
    for p in host.glob("/etc/systemd/system/*.timer") {
        if host.symlink_metadata(&p).map(|m| m.file_type().is_symlink()).unwrap_or(true) {
            continue;
        }
        let t = match host.read_to_string(&p) {
            Ok(t) => t,
            Err(e) => {
                unreadable.push((p.clone(), e.to_string()));
                continue;
            }
        };
        let stem = p.rsplit('/').next().unwrap_or_default().trim_end_matches(".timer").to_string();
        let unit = unit_values(&t, "Unit").first().map(|s| s.to_string()).unwrap_or(format!("{stem}.service"));
        let cal = unit_values(&t, "OnCalendar");
        let schedule = cal.first().map(|c| format!("OnCalendar={c}")).unwrap_or_else(|| {
            unit_values(&t, "OnUnitActiveSec").first().map(|c| format!("OnUnitActiveSec={c}")).unwrap_or_default()
        });
        let frequency = cal.first().map(|c| calendar_frequency(c)).unwrap_or(Frequency::Unknown);
        let service = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
            .iter()
            .find_map(|d| host.read_optional(&format!("{d}/{unit}")).ok().flatten());
        let Some(service) = service else { continue };
        let exec: Vec<String> = unit_values(&service, "ExecStart")
            .into_iter()
            .map(|c| c.trim_start_matches(['-', '@', ':', '+', '!']).to_string())
            .collect();
        let env = unit_values(&service, "Environment").join("\n");
        let user = unit_values(&service, "User").first().map(|s| s.to_string());
        let command = exec.join(" ; ");
        if let Some(mut s) = make_schedule(host, &p, schedule, frequency, user, &command, &env) {
            s.text.push_str(&format!("\n{unit}"));
            out.push(s);
        }
    }
    out
}

/// What kind of repository a directory is, by its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    /// restic: `config`, `data/`, `index/`, `keys/`, `snapshots/`.
    Restic,
    /// Borg: `README` "This is a Borg Backup repository", `config` with `[repository]`.
    Borg,
}

/// The repository layout at `dir`, if any.
pub fn repo_kind(host: &Host, dir: &str) -> Option<RepoKind> {
    let d = dir.trim_end_matches('/');
    let is_dir = |p: &str| host.metadata(&format!("{d}/{p}")).map(|m| m.is_dir()).unwrap_or(false);
    if host.metadata(&format!("{d}/config")).map(|m| m.is_file()).unwrap_or(false)
        && ["data", "index", "keys", "snapshots"].iter().all(|s| is_dir(s))
    {
        return Some(RepoKind::Restic);
    }
    let readme = host.read(&format!("{d}/README")).ok()?;
    if readme.starts_with(b"This is a Borg Backup repository") {
        let cfg = host.read_to_string(&format!("{d}/config")).unwrap_or_default();
        if cfg.lines().any(|l| l.trim() == "[repository]") {
            return Some(RepoKind::Borg);
        }
    }
    None
}

/// Files the distribution keeps in `/var/backups` (package state, passwd copies): not site backups.
pub fn is_distro_backup(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "dpkg.",
        "apt.extended_states",
        "alternatives.tar",
        "passwd.bak",
        "shadow.bak",
        "group.bak",
        "gshadow.bak",
        "infodir.bak",
        "aptitude.pkgstates",
        "slapd-",
        "dpkg-",
        "debconf",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// File names that look like backup archives or dumps.
pub fn looks_like_archive(name: &str) -> bool {
    const EXT: &[&str] = &[
        ".tar", ".tgz", ".tbz2", ".txz", ".zip", ".7z", ".rar", ".sql", ".dump", ".bak", ".gz", ".bz2", ".xz", ".zst",
        ".lz4", ".img", ".gpg", ".age", ".borg",
    ];
    let n = name.to_ascii_lowercase();
    EXT.iter().any(|e| n.ends_with(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_targets_are_recognised() {
        for t in [
            "sftp:backup@nas:/srv/restic",
            "s3:s3.amazonaws.com/bucket",
            "b2:bucket:web1",
            "ssh://borg@host.example/./repo",
            "borg@host.example:repo",
            "backup@nas.example.net:/srv/offsite/web1",
            "b2crypt:web1",
            "rsync://mirror/module",
            "nas::backups",
        ] {
            assert!(is_remote(t), "{t}");
        }
        for t in [
            "/backup/web1",
            "./repo",
            "file:///backup",
            "localhost:/backup",
            "127.0.0.1:/x",
            "02:30",
            "--exclude=a:b",
            "2>&1",
            "%H:%M",
            "",
        ] {
            assert!(!is_remote(t), "{t}");
        }
    }

    #[test]
    fn cron_lines_tools_and_targets() {
        let host = Host::at("/nonexistent");
        let s = parse_crontab(
            &host,
            "/etc/cron.d/x",
            "MAILTO=root\nRESTIC_PASSWORD_FILE=/root/.restic\n# comment\n30 2 * * * root restic -r sftp:u@nas:/r backup /var/www\n0 4 * * 0 root rsync -a /backup/ nas.example:/srv/web1/ >/dev/null\n15 3 * * * root mysqldump -uroot -pSecret1 --all-databases | gzip > /var/backups/db.sql.gz\n@daily root echo hi\n",
            true,
            None,
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].tools, vec!["restic"]);
        assert_eq!(s[0].remote_targets, vec!["sftp:u@nas:/r"]);
        assert_eq!(s[0].frequency, Frequency::Daily);
        assert_eq!(s[1].frequency, Frequency::Weekly);
        assert_eq!(s[1].remote_targets, vec!["nas.example:/srv/web1/"]);
        assert!(s[2].command.contains("-p[REDACTED]"), "{}", s[2].command);
        assert!(!s[2].command.contains("Secret1"));
        assert!(s[2].remote_targets.is_empty(), "{:?}", s[2].remote_targets);
    }
}
