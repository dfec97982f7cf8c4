//! Parsers of the account databases and login records `audit_accounts` reads:
//! `shadow` (judged on the spot: a hash never leaves this file), `group`,
//! `sudoers` with its includes and aliases, binary `wtmp`/`lastlog`, and the
//! PAM auth stack.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use crate::host::{Host, HostError};
pub use crate::users::{memberships, parse_group};

/// What the password field says, judged locally; the hash itself is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PwState {
    /// A password hash is set.
    Set,
    /// `!`/`*`-prefixed: no password login.
    Locked,
    /// Empty: no password at all.
    Empty,
    /// Not known (shadow unreadable or absent).
    Unknown,
}

/// Judge a password field (`/etc/shadow` field 2, or `/etc/passwd` field 2).
pub fn judge_hash(field: &str) -> PwState {
    if field.is_empty() {
        PwState::Empty
    } else if field.starts_with('!') || field.starts_with('*') {
        PwState::Locked
    } else {
        PwState::Set
    }
}

/// One `/etc/shadow` line without its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    /// Login name.
    pub name: String,
    /// The judged password field.
    pub password: PwState,
    /// Day (since 1970-01-01) the password last changed; `None` when empty, 0 = must change.
    pub last_change: Option<i64>,
    /// Day the account expires; `None` = never.
    pub expire: Option<i64>,
}

/// Parse `/etc/shadow`; the hash is judged and dropped here.
pub fn parse_shadow(text: &str) -> HashMap<String, ShadowEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 2 {
                return None;
            }
            let num = |i: usize| f.get(i).and_then(|v| v.trim().parse::<i64>().ok());
            Some((
                f[0].to_string(),
                ShadowEntry { name: f[0].to_string(), password: judge_hash(f[1]), last_change: num(2), expire: num(7) },
            ))
        })
        .collect()
}

/// The password field of each `/etc/passwd` line (`x` normally), judged.
pub fn passwd_fields(text: &str) -> HashMap<String, PwState> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let pw = f.next()?;
            let state = match pw {
                "x" => PwState::Unknown,
                other => judge_hash(other),
            };
            Some((name.to_string(), state))
        })
        .collect()
}

/// Who a sudoers rule granting `ALL` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grantee {
    /// A user by name.
    User(String),
    /// A user by uid (`#1000`).
    Uid(u32),
    /// A group by name (`%sudo`).
    Group(String),
    /// A group by gid (`%#27`).
    Gid(u32),
    /// Every user (`ALL`).
    All,
}

/// A sudoers rule that lets someone run any command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Who.
    pub who: Grantee,
    /// `file:line`.
    pub at: String,
    /// `NOPASSWD` was given.
    pub nopasswd: bool,
}

/// What reading sudoers found.
#[derive(Debug, Clone, Default)]
pub struct Sudoers {
    /// Rules granting `ALL`.
    pub grants: Vec<Grant>,
    /// Files read.
    pub files: Vec<String>,
    /// Files that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
    /// `Defaults[:who] !authenticate` lines (sudo asks no password at all): (`file:line`, scope).
    /// The scope is the text after `Defaults:` (empty for every user).
    pub no_authenticate: Vec<(String, String)>,
}

const SUDO_TAGS: &[&str] = &[
    "PASSWD",
    "NOPASSWD",
    "EXEC",
    "NOEXEC",
    "SETENV",
    "NOSETENV",
    "LOG_INPUT",
    "NOLOG_INPUT",
    "LOG_OUTPUT",
    "NOLOG_OUTPUT",
    "MAIL",
    "NOMAIL",
    "FOLLOW",
    "NOFOLLOW",
    "INTERCEPT",
    "NOINTERCEPT",
];

/// Read `/etc/sudoers` and what it includes. Absent sudoers: no grants.
pub fn read_sudoers(host: &Host) -> Sudoers {
    let mut s = Sudoers::default();
    let mut aliases = Aliases::default();
    let mut rules = Vec::new();
    read_sudoers_file(host, "/etc/sudoers", 0, &mut s, &mut aliases, &mut rules);
    for (users, cmnds, at, nopasswd) in rules {
        if !cmnds_grant_all(&cmnds, &aliases.cmnd) {
            continue;
        }
        let mut who = Vec::new();
        expand_users(&users, &aliases.user, 0, &mut who);
        for w in who {
            s.grants.push(Grant { who: w, at: at.clone(), nopasswd });
        }
    }
    s
}

#[derive(Default)]
struct Aliases {
    user: HashMap<String, Vec<String>>,
    cmnd: HashMap<String, Vec<String>>,
}

/// (user list, command part, `file:line`, NOPASSWD)
type Rule = (Vec<String>, String, String, bool);

fn read_sudoers_file(
    host: &Host,
    path: &str,
    depth: usize,
    s: &mut Sudoers,
    aliases: &mut Aliases,
    rules: &mut Vec<Rule>,
) {
    if depth > 8 {
        return;
    }
    let text = match host.read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return,
        Err(e) => {
            s.unreadable.push((path.to_string(), e.to_string()));
            return;
        }
    };
    s.files.push(path.to_string());
    let dir = path.rsplit_once('/').map(|(d, _)| if d.is_empty() { "/" } else { d }).unwrap_or("/").to_string();
    let resolve = |p: &str| if p.starts_with('/') { p.to_string() } else { format!("{dir}/{p}") };
    // Join continuation lines, remembering where each logical line starts.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(stripped) = raw.strip_suffix('\\') {
            acc.push_str(stripped);
            acc.push(' ');
            pending = Some((start, acc));
        } else {
            acc.push_str(raw);
            logical.push((start, acc));
        }
    }
    logical.extend(pending);
    for (lineno, line) in logical {
        let t = line.trim();
        let directive = t.strip_prefix('@').or_else(|| t.strip_prefix('#').filter(|r| r.starts_with("include")));
        if let Some(d) = directive {
            let mut parts = d.split_whitespace();
            let kw = parts.next().unwrap_or("");
            let arg = parts.collect::<Vec<_>>().join(" ");
            let arg = arg.trim_matches('"');
            if kw == "include" {
                read_sudoers_file(host, &resolve(arg), depth + 1, s, aliases, rules);
            } else if kw == "includedir" {
                let d = resolve(arg);
                match host.read_dir(&d) {
                    Ok(names) => {
                        for n in names.iter().filter(|n| !n.ends_with('~') && !n.contains('.')) {
                            read_sudoers_file(host, &format!("{d}/{n}"), depth + 1, s, aliases, rules);
                        }
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => s.unreadable.push((d.clone(), e.to_string())),
                }
            }
            continue;
        }
        let t = strip_sudo_comment(t);
        if let Some(rest) = t.strip_prefix("Defaults") {
            // `Defaults:alice !authenticate`, `Defaults !authenticate`; host/command/runas scopes
            // (`@`, `!`, `>`) are rare and read as global.
            let (scope, opts) = match rest.strip_prefix(':') {
                Some(r) => r.split_once(char::is_whitespace).unwrap_or((r, "")),
                None => ("", rest),
            };
            if opts.split(',').any(|o| o.trim() == "!authenticate") {
                s.no_authenticate.push((format!("{path}:{lineno}"), scope.trim().to_string()));
            }
            continue;
        }
        if t.is_empty() {
            continue;
        }
        let at = format!("{path}:{lineno}");
        let first = t.split_whitespace().next().unwrap_or("");
        match first {
            "User_Alias" | "Cmnd_Alias" | "Cmd_Alias" => {
                let rest = t[first.len()..].trim();
                for def in rest.split(':') {
                    if let Some((name, list)) = def.split_once('=') {
                        let items = list.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect();
                        let map = if first == "User_Alias" { &mut aliases.user } else { &mut aliases.cmnd };
                        map.insert(name.trim().to_string(), items);
                    }
                }
            }
            "Runas_Alias" | "Host_Alias" => {}
            _ => {
                let Some((left, right)) = t.split_once('=') else {
                    continue;
                };
                // "alice, %ops  ALL" → user list, host list
                let left = left.replace(", ", ",").replace(" ,", ",");
                let users: Vec<String> = left
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|u| u.trim().trim_matches('"').to_string())
                    .filter(|u| !u.is_empty())
                    .collect();
                let nopasswd = right.contains("NOPASSWD");
                rules.push((users, right.to_string(), at, nopasswd));
            }
        }
    }
}

/// Remove a trailing `# comment` (but not `#1000`, a uid).
fn strip_sudo_comment(t: &str) -> &str {
    if t.starts_with('#') && !t[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return "";
    }
    let b = t.as_bytes();
    for i in 1..b.len() {
        if b[i] == b'#' && b[i - 1].is_ascii_whitespace() && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
            return t[..i].trim_end();
        }
    }
    t
}

/// True when the command part of a rule (`(ALL:ALL) NOPASSWD: ALL`) lets any command run.
fn cmnds_grant_all(right: &str, cmnd_aliases: &HashMap<String, Vec<String>>) -> bool {
    // Drop runas lists `( … )`.
    let mut s = String::new();
    let mut depth = 0;
    for c in right.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 => s.push(c),
            _ => {}
        }
    }
    // Drop tags (`NOPASSWD:`) and options (`CWD=/`).
    let mut cleaned = Vec::new();
    for tok in s.split_whitespace() {
        let mut tagless = tok;
        while let Some(tag) = SUDO_TAGS.iter().find(|t| tagless.strip_prefix(**t).is_some_and(|r| r.starts_with(':'))) {
            tagless = &tagless[tag.len() + 1..];
        }
        if tagless.is_empty() {
            continue;
        }
        if ["CWD=", "CHROOT=", "ROLE=", "TYPE=", "TIMEOUT=", "NOTBEFORE=", "NOTAFTER="]
            .iter()
            .any(|p| tagless.starts_with(p))
        {
            continue;
        }
        cleaned.push(tagless);
    }
    let s = cleaned.join(" ");
    // `cmnds [: host = cmnds]…`
    s.split(':').enumerate().any(|(i, seg)| {
        let cmnds = if i == 0 { seg } else { seg.split_once('=').map(|(_, c)| c).unwrap_or("") };
        cmnds.split(',').map(str::trim).any(|c| cmnd_is_all(c, cmnd_aliases, 0))
    })
}

fn cmnd_is_all(c: &str, aliases: &HashMap<String, Vec<String>>, depth: usize) -> bool {
    if c == "ALL" {
        return true;
    }
    if depth > 8 || c.starts_with('!') {
        return false;
    }
    aliases.get(c).is_some_and(|items| items.iter().any(|i| cmnd_is_all(i, aliases, depth + 1)))
}

fn expand_users(users: &[String], aliases: &HashMap<String, Vec<String>>, depth: usize, out: &mut Vec<Grantee>) {
    for u in users {
        let u = u.as_str();
        if u.starts_with('!') || u.starts_with('+') || u.starts_with("%:") || depth > 8 {
            continue;
        }
        if u == "ALL" {
            out.push(Grantee::All);
        } else if let Some(g) = u.strip_prefix("%#") {
            out.extend(g.parse().ok().map(Grantee::Gid));
        } else if let Some(g) = u.strip_prefix('%') {
            out.push(Grantee::Group(g.to_string()));
        } else if let Some(id) = u.strip_prefix('#') {
            out.extend(id.parse().ok().map(Grantee::Uid));
        } else if let Some(items) = aliases.get(u) {
            expand_users(items, aliases, depth + 1, out);
        } else {
            out.push(Grantee::User(u.to_string()));
        }
    }
}

/// Size of one `struct utmp` record on x86_64 Linux.
pub const UTMP_SIZE: usize = 384;
/// `ut_type` of a user login.
pub const USER_PROCESS: i32 = 7;
/// Size of one `struct lastlog` record.
pub const LASTLOG_SIZE: usize = 292;

/// One login from `wtmp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Login name.
    pub user: String,
    /// Where from (host or address), may be empty.
    pub host: String,
    /// Seconds since the epoch.
    pub time: i64,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    i32::from_le_bytes(a)
}

/// The logins in a `wtmp` file and the time of its first record (any type).
/// A trailing partial record is ignored.
pub fn parse_wtmp(bytes: &[u8]) -> (Vec<Login>, Option<i64>) {
    let mut logins = Vec::new();
    let mut first = None;
    for r in bytes.chunks_exact(UTMP_SIZE) {
        let ty = i32_at(r, 0);
        let time = i64::from(i32_at(r, 340));
        if time > 0 {
            first = Some(first.map_or(time, |f: i64| f.min(time)));
        }
        if ty != USER_PROCESS {
            continue;
        }
        let user = cstr(&r[44..76]);
        if user.is_empty() {
            continue;
        }
        logins.push(Login { user, host: cstr(&r[76..332]), time });
    }
    (logins, first)
}

/// Build one utmp record (tests and the fixture generator).
pub fn utmp_record(ty: i32, pid: i32, line: &str, user: &str, host: &str, time: i32) -> Vec<u8> {
    let mut r = vec![0u8; UTMP_SIZE];
    r[0..4].copy_from_slice(&ty.to_le_bytes());
    r[4..8].copy_from_slice(&pid.to_le_bytes());
    let put = |r: &mut Vec<u8>, off: usize, max: usize, s: &str| {
        let b = s.as_bytes();
        let n = b.len().min(max);
        r[off..off + n].copy_from_slice(&b[..n]);
    };
    put(&mut r, 8, 32, line);
    put(&mut r, 40, 4, line.trim_start_matches("pts/"));
    put(&mut r, 44, 32, user);
    put(&mut r, 76, 256, host);
    r[340..344].copy_from_slice(&time.to_le_bytes());
    r
}

/// Build one lastlog record (tests and the fixture generator).
pub fn lastlog_record(time: i32, line: &str, host: &str) -> Vec<u8> {
    let mut r = vec![0u8; LASTLOG_SIZE];
    r[0..4].copy_from_slice(&time.to_le_bytes());
    let l = line.as_bytes();
    r[4..4 + l.len().min(32)].copy_from_slice(&l[..l.len().min(32)]);
    let h = host.as_bytes();
    r[36..36 + h.len().min(256)].copy_from_slice(&h[..h.len().min(256)]);
    r
}

/// The `lastlog` file, read by uid with positioned reads (it is sparse and
/// can be huge when high uids exist).
#[derive(Debug)]
pub struct Lastlog {
    file: std::fs::File,
    len: u64,
}

impl Lastlog {
    /// Open `ROOT/var/log/lastlog`: `Ok(None)` when absent.
    pub fn open(host: &Host) -> Result<Option<Lastlog>, HostError> {
        let path = "/var/log/lastlog";
        // Sparse and sized by the highest uid: read by offset, never whole.
        let (file, meta) = match host.open_file(path) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(Lastlog { file, len: meta.len() }))
    }

    /// Last login time (epoch seconds) and host of `uid`; `None` when never.
    pub fn get(&self, uid: u32) -> Option<(i64, String)> {
        let off = u64::from(uid) * LASTLOG_SIZE as u64;
        if off + LASTLOG_SIZE as u64 > self.len {
            return None;
        }
        let mut buf = [0u8; LASTLOG_SIZE];
        self.file.read_exact_at(&mut buf, off).ok()?;
        let t = i64::from(i32_at(&buf, 0));
        (t > 0).then(|| (t, cstr(&buf[36..])))
    }
}

/// The second-factor PAM modules we recognise.
pub const PAM_2FA: &[&str] = &["pam_google_authenticator", "pam_oath", "pam_u2f", "pam_duo", "pam_yubico"];

/// Find a second-factor module in the `auth` stack of `/etc/pam.d/SERVICE`,
/// following `@include` and `include`/`substack`. Returns `module (file:line)`.
pub fn pam_second_factor(host: &Host, service: &str) -> Option<String> {
    pam_walk(host, &format!("/etc/pam.d/{service}"), 0)
}

fn pam_walk(host: &Host, path: &str, depth: usize) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let text = host.read_to_string(path).ok()?;
    let sub = |name: &str| if name.starts_with('/') { name.to_string() } else { format!("/etc/pam.d/{name}") };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(inc) = line.strip_prefix("@include") {
            if let Some(found) = pam_walk(host, &sub(inc.trim()), depth + 1) {
                return Some(found);
            }
            continue;
        }
        let mut parts = line.split_whitespace();
        let Some(ty) = parts.next() else {
            continue;
        };
        if ty.trim_start_matches('-') != "auth" {
            continue;
        }
        // The control may be `[success=1 default=ignore]`, spanning words.
        let rest: Vec<&str> = parts.collect();
        let mut idx = 0;
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            while idx < rest.len() && !rest[idx].ends_with(']') {
                idx += 1;
            }
        }
        let control = rest.get(..=idx).map(|w| w.join(" ")).unwrap_or_default();
        let Some(module) = rest.get(idx + 1) else {
            continue;
        };
        if control == "include" || control == "substack" {
            if let Some(found) = pam_walk(host, &sub(module), depth + 1) {
                return Some(found);
            }
            continue;
        }
        let base = module.rsplit('/').next().unwrap_or(module).trim_end_matches(".so");
        if PAM_2FA.contains(&base) {
            return Some(format!("{base} ({path}:{})", i + 1));
        }
    }
    None
}
