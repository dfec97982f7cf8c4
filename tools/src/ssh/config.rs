//! Reading sshd's configuration files the way sshd reads them.
//!
//! What sshd does with a setting depends on where the line is: which file,
//! which `Include`, which `Match` block. So the files are kept as sshd's
//! structure (a tree of lines, `Include`s expanded in place, relative to
//! `/etc/ssh`, globs sorted), and [`super::matcher`] replays sshd's two passes
//! over it: once with no connection (the global settings) and once per
//! connection (what `sshd -T -C user=…,addr=…` prints). Keywords are
//! case-insensitive, `ChallengeResponseAuthentication` is the old name of
//! `KbdInteractiveAuthentication`, and the first value of a keyword wins except
//! for the few that accumulate. Every read goes through [`Host`], inside the
//! audited root.

use std::collections::BTreeMap;

use crate::host::{Host, HostError, wildcard_match};

/// The main sshd configuration file.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";

/// Keywords sshd accumulates instead of keeping the first value.
const MULTI: &[&str] = &[
    "port",
    "listenaddress",
    "hostkey",
    "acceptenv",
    "allowusers",
    "denyusers",
    "allowgroups",
    "denygroups",
    "subsystem",
    "setenv",
    "hostcertificate",
];

/// Old keyword names sshd still accepts, and the keyword they set.
const ALIASES: &[(&str, &str)] = &[
    ("challengeresponseauthentication", "kbdinteractiveauthentication"),
    ("pubkeyacceptedkeytypes", "pubkeyacceptedalgorithms"),
    ("hostbasedacceptedkeytypes", "hostbasedacceptedalgorithms"),
];

/// How deep `Include`s may nest (sshd's own limit).
const MAX_INCLUDE_DEPTH: usize = 16;

/// The key a keyword is stored under: lower case, old names mapped to the current one.
pub(crate) fn canonical(keyword: &str) -> String {
    let lower = keyword.to_ascii_lowercase();
    ALIASES.iter().find(|(old, _)| *old == lower).map(|(_, new)| (*new).to_string()).unwrap_or(lower)
}

/// One keyword as sshd would see it, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The keyword as written (`PermitRootLogin`).
    pub keyword: String,
    /// The value (arguments joined by one space, quotes removed).
    pub value: String,
    /// The file that set it.
    pub file: String,
    /// Its line number in that file.
    pub line: usize,
    /// The `Match` block (index into [`SshdConfig::matches`]) the line is in, if any.
    pub block: Option<usize>,
}

impl Setting {
    /// `file:line`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A `Match` block: settings that apply only to the connections it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchBlock {
    /// The criteria after `Match` (`User deploy`, `Address 10.0.0.0/8`).
    pub criteria: String,
    /// Where the block starts.
    pub at: String,
    /// Its settings in order.
    pub settings: Vec<Setting>,
}

impl MatchBlock {
    /// True when this block applies to every login of `user` (member of
    /// `groups`): its criteria are only `User`/`Group` lists and they match.
    /// Blocks that depend on the connection (`Address`, `Host`…) do not count.
    pub fn applies_to_user(&self, user: &str, groups: &[String]) -> bool {
        let w: Vec<&str> = self.criteria.split_whitespace().collect();
        if w.is_empty() || w.len() % 2 != 0 {
            return false;
        }
        w.chunks(2).all(|c| match c[0].to_ascii_lowercase().as_str() {
            "user" => pattern_list(user, c[1], false) == Some(true),
            "group" => group_list(groups, c[1]),
            _ => false,
        })
    }

    /// The value this block sets for `keyword`, if any.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        let k = canonical(keyword);
        self.settings.iter().find(|s| canonical(&s.keyword) == k).map(|s| s.value.as_str())
    }
}

/// A set of effective settings: the global ones, or those of one connection.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    map: BTreeMap<String, Vec<Setting>>,
}

impl Settings {
    /// The effective value of a keyword (case-insensitive), `None` when unset.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.setting(keyword).map(|s| s.value.as_str())
    }

    /// The effective setting of a keyword with where it was set.
    pub fn setting(&self, keyword: &str) -> Option<&Setting> {
        self.map.get(&canonical(keyword)).and_then(|v| v.first())
    }

    /// Every value of an accumulating keyword (`Port`, `ListenAddress`…).
    pub fn all(&self, keyword: &str) -> &[Setting] {
        self.map.get(&canonical(keyword)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A yes/no keyword with sshd's default when unset.
    pub fn flag(&self, keyword: &str, default: bool) -> bool {
        match self.get(keyword).map(str::to_ascii_lowercase).as_deref() {
            Some("yes") | Some("all") => true,
            Some(v) if keyword.eq_ignore_ascii_case("AllowTcpForwarding") => v == "local" || v == "remote",
            Some(_) => false,
            None => default,
        }
    }

    /// `PermitRootLogin` in sshd's spelling (default `prohibit-password` since OpenSSH 7.0;
    /// `without-password` is its old name).
    pub fn permit_root_login(&self) -> String {
        match self.get("PermitRootLogin").map(str::to_ascii_lowercase) {
            Some(v) if v == "without-password" => "prohibit-password".into(),
            Some(v) => v,
            None => "prohibit-password".into(),
        }
    }

    /// `PasswordAuthentication` (default yes).
    pub fn password_authentication(&self) -> bool {
        self.flag("PasswordAuthentication", true)
    }

    /// Keyboard-interactive login that asks for the password: `KbdInteractiveAuthentication`
    /// (or its old name `ChallengeResponseAuthentication`, default yes) backed by PAM
    /// (`UsePAM yes`, default no), whose default conversation asks for the password.
    pub fn kbd_interactive_password(&self) -> bool {
        self.flag("KbdInteractiveAuthentication", true) && self.flag("UsePAM", false)
    }

    /// `AuthenticationMethods` as chains of methods (`publickey,keyboard-interactive`
    /// is one chain of two). `None` when unset or `any`: one method suffices.
    pub fn authentication_methods(&self) -> Option<Vec<Vec<String>>> {
        let v = self.get("AuthenticationMethods")?;
        if v.eq_ignore_ascii_case("any") {
            return None;
        }
        Some(v.split_whitespace().map(|c| c.split(',').map(str::to_string).collect()).collect())
    }

    /// Whether a password alone logs in, judged as sshd does from `PasswordAuthentication`,
    /// keyboard-interactive through PAM and `AuthenticationMethods` together: some allowed
    /// chain must consist only of enabled password methods. Returns the keyword that lets
    /// the password in. (Root's `PermitRootLogin` is judged separately.)
    pub fn password_login(&self) -> Option<&'static str> {
        let pw = self.password_authentication();
        let kbd = self.kbd_interactive_password();
        let Some(chains) = self.authentication_methods() else {
            return if pw { Some("PasswordAuthentication") } else { kbd.then_some("KbdInteractiveAuthentication") };
        };
        let mut via = None;
        for chain in &chains {
            let mut uses = None;
            let all_password = chain.iter().all(|m| match m.split(':').next().unwrap_or(m) {
                "password" if pw => {
                    uses = uses.or(Some("PasswordAuthentication"));
                    true
                }
                "keyboard-interactive" if kbd => {
                    uses = uses.or(Some("KbdInteractiveAuthentication"));
                    true
                }
                _ => false,
            });
            if all_password {
                via = via.or(uses);
            }
        }
        via
    }

    /// True when every allowed login needs two different methods.
    pub fn requires_two_methods(&self) -> bool {
        self.get("AuthenticationMethods").is_some_and(two_methods)
    }

    /// `AuthorizedKeysFile` patterns (default `.ssh/authorized_keys .ssh/authorized_keys2`).
    pub fn authorized_keys_files(&self) -> Vec<String> {
        match self.get("AuthorizedKeysFile") {
            Some(v) if !v.eq_ignore_ascii_case("none") => v.split_whitespace().map(str::to_string).collect(),
            Some(_) => Vec::new(),
            None => vec![".ssh/authorized_keys".into(), ".ssh/authorized_keys2".into()],
        }
    }

    /// Record a line sshd applies: the first value wins unless the keyword accumulates.
    pub(crate) fn put(&mut self, s: &Setting) {
        let k = canonical(&s.keyword);
        let multi = MULTI.contains(&k.as_str());
        let e = self.map.entry(k).or_default();
        if e.is_empty() || multi {
            e.push(s.clone());
        }
    }

    /// Replace this set's values with `over`'s for the keywords `keep` accepts
    /// (a matching `Match` block overrides the global value).
    pub(crate) fn override_with(&mut self, over: Settings, keep: impl Fn(&str) -> bool) {
        for (k, v) in over.map {
            if keep(&k) {
                self.map.insert(k, v);
            }
        }
    }
}

/// True when an `AuthenticationMethods` value makes every login use two
/// different methods (`publickey,keyboard-interactive`); `any` does not.
pub fn two_methods(value: &str) -> bool {
    if value.trim().eq_ignore_ascii_case("any") {
        return false;
    }
    let chains: Vec<&str> = value.split_whitespace().collect();
    !chains.is_empty()
        && chains.iter().all(|c| {
            let mut kinds: Vec<&str> = c.split(',').map(|m| m.split(':').next().unwrap_or(m)).collect();
            kinds.sort_unstable();
            kinds.dedup();
            kinds.len() >= 2
        })
}

/// One line of a configuration file, as sshd's passes see it.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A keyword line.
    Set(Setting),
    /// `Match …`: the criteria words (`["User", "root"]`).
    Match(Vec<String>),
    /// `Include …`: the files it read, in order.
    Include(Vec<Vec<Item>>),
}

/// The server configuration sshd would use, read from all its files.
#[derive(Debug, Clone, Default)]
pub struct SshdConfig {
    present: bool,
    pub(crate) global: Settings,
    /// `Match` blocks in file order (`Match all` ends a block and opens none).
    pub matches: Vec<MatchBlock>,
    /// Every file read, in order.
    pub files: Vec<String>,
    /// Files that exist but could not be read (each becomes a could-not-check finding).
    pub unreadable: Vec<(String, String)>,
    /// The main file's lines, `Include`s expanded in place.
    pub(crate) tree: Vec<Item>,
}

impl std::ops::Deref for SshdConfig {
    type Target = Settings;

    /// The global settings (no `Match` block applied).
    fn deref(&self) -> &Settings {
        &self.global
    }
}

impl SshdConfig {
    /// True when `sshd_config` exists (an OpenSSH server is configured).
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// The TCP ports sshd listens on, as sshd decides them: a `ListenAddress` with its own
    /// port listens on that port only; one without uses every `Port` (default 22); with no
    /// `ListenAddress` at all, every `Port`. So `Port 22` with only `ListenAddress
    /// 0.0.0.0:2200` listens on 2200 alone. Empty when no server is configured.
    pub fn ports(&self) -> Vec<u16> {
        if !self.present {
            return Vec::new();
        }
        let mut port_lines: Vec<u16> =
            self.all("Port").iter().flat_map(|s| s.value.split_whitespace()).filter_map(|p| p.parse().ok()).collect();
        if port_lines.is_empty() {
            port_lines.push(22);
        }
        let listen = self.all("ListenAddress");
        let mut ports = Vec::new();
        if listen.is_empty() {
            ports = port_lines.clone();
        }
        for la in listen {
            match listen_address(&la.value).1 {
                Some(p) => ports.push(p),
                None => ports.extend(&port_lines),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// A `ListenAddress` value split into its address and its own port, if any
/// (`0.0.0.0:2200`, `[::1]:2201`, `::1`, `10.0.0.1 rdomain r`).
pub(crate) fn listen_address(value: &str) -> (&str, Option<u16>) {
    let addr = value.split_whitespace().next().unwrap_or("");
    if let Some(rest) = addr.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((a, tail)) => (a, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        };
    }
    if addr.matches(':').count() == 1 {
        if let Some((a, p)) = addr.split_once(':') {
            return (a, p.parse().ok());
        }
    }
    (addr, None)
}

/// Split a config line into words, honouring double quotes; a word starting
/// with `#` ends the line.
pub(crate) fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word && !quoted => break,
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `Keyword value`, `Keyword=value` or `Keyword = value` → (keyword, args).
fn split_keyword(line: &str) -> Option<(String, Vec<String>)> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let end = t.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(t.len());
    let keyword = t[..end].to_string();
    let mut rest = t[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r;
    }
    Some((keyword, words(rest)))
}

/// The files of `host`'s sshd configuration, parsed (`Include`s expanded) but with no
/// global settings computed yet: [`super::effective_config`] adds them.
pub(super) fn read_files(host: &Host) -> SshdConfig {
    let mut cfg = SshdConfig::default();
    match host.read_to_string(SSHD_CONFIG) {
        Ok(text) => {
            cfg.present = true;
            cfg.tree = parse_file(host, &mut cfg, SSHD_CONFIG, &text, 0, None);
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            cfg.present = true;
            cfg.unreadable.push((SSHD_CONFIG.into(), e.to_string()));
        }
    }
    cfg
}

/// Parse one file's text into its lines. `outer` is the `Match` block the
/// `Include` that read this file is in (its lines belong to that block until
/// the file opens its own); a `Match` opened in a file ends with that file.
fn parse_file(
    host: &Host,
    cfg: &mut SshdConfig,
    file: &str,
    text: &str,
    depth: usize,
    outer: Option<usize>,
) -> Vec<Item> {
    cfg.files.push(file.to_string());
    let mut items = Vec::new();
    let mut block = outer;
    for (i, raw) in text.lines().enumerate() {
        let Some((keyword, args)) = split_keyword(raw) else {
            continue;
        };
        let lower = keyword.to_ascii_lowercase();
        if lower == "match" {
            let criteria = args.join(" ");
            block = if criteria.eq_ignore_ascii_case("all") {
                None
            } else {
                cfg.matches.push(MatchBlock { criteria, at: format!("{file}:{}", i + 1), settings: Vec::new() });
                Some(cfg.matches.len() - 1)
            };
            items.push(Item::Match(args));
            continue;
        }
        if lower == "include" {
            if depth >= MAX_INCLUDE_DEPTH {
                cfg.unreadable.push((file.to_string(), "Include nested too deeply".into()));
                continue;
            }
            let mut files = Vec::new();
            for pattern in &args {
                let pattern = if pattern.starts_with('/') { pattern.clone() } else { format!("/etc/ssh/{pattern}") };
                let paths = if pattern.contains(['*', '?']) { host.glob(&pattern) } else { vec![pattern.clone()] };
                for p in paths {
                    match host.read_to_string(&p) {
                        Ok(t) => files.push(parse_file(host, cfg, &p, &t, depth + 1, block)),
                        Err(e) if e.is_not_found() => {}
                        Err(HostError::NotRegular { kind: "directory", .. }) => {}
                        Err(e) => cfg.unreadable.push((p.clone(), e.to_string())),
                    }
                }
            }
            items.push(Item::Include(files));
            continue;
        }
        let s = Setting { keyword, value: args.join(" "), file: file.to_string(), line: i + 1, block };
        if let Some(m) = block.and_then(|b| cfg.matches.get_mut(b)) {
            m.settings.push(s.clone());
        }
        items.push(Item::Set(s));
    }
    items
}

/// `match_pattern_list`: `Some(true)` when a pattern matches, `Some(false)`
/// when a `!pattern` matches (which wins), `None` when none does.
pub(crate) fn pattern_list(name: &str, list: &str, lower: bool) -> Option<bool> {
    let mut positive = None;
    for pat in list.split(',') {
        let (neg, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        let pat = if lower { pat.to_ascii_lowercase() } else { pat.to_string() };
        if wildcard_match(&pat, name) {
            if neg {
                return Some(false);
            }
            positive = Some(true);
        }
    }
    positive
}

/// `ga_match_pattern_list`: a group matching a `!pattern` rejects, else any match accepts.
pub(crate) fn group_list(groups: &[String], list: &str) -> bool {
    let mut found = false;
    for g in groups {
        match pattern_list(g, list, false) {
            Some(false) => return false,
            Some(true) => found = true,
            None => {}
        }
    }
    found
}
