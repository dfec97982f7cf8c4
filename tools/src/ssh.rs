//! `check_ssh`: the OpenSSH server settings that decide who can get a shell.
//!
//! A password-guessable root login or an `Include`d drop-in that re-enables
//! 3DES is exactly the "staging setting that became production" of pattern 3,
//! and it is invisible unless someone reads every file sshd reads. This module
//! reads `ROOT/etc/ssh/sshd_config` the way sshd does — `Include` globs
//! expanded in place (relative to `/etc/ssh`), keywords case-insensitive, the
//! first value of a keyword wins, `Match` blocks kept apart — and judges the
//! global settings. [`effective_config`] is public so other tools use the same
//! reading: `audit_accounts` needs `AuthenticationMethods`, the firewall fix
//! needs the SSH port.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::host::{Host, HostError};
use crate::tool::{Ctx, Effect, NoInput, Outcome, Tool, ToolError};

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

/// How deep `Include`s may nest (sshd's own limit).
const MAX_INCLUDE_DEPTH: usize = 16;

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
}

impl Setting {
    /// `file:line`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A `Match` block: conditional settings, noted but not judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchBlock {
    /// The criteria after `Match` (`User deploy`, `Address 10.0.0.0/8`).
    pub criteria: String,
    /// Where the block starts.
    pub at: String,
    /// Its settings in order.
    pub settings: Vec<Setting>,
}

/// The server configuration sshd would use, read from all its files.
#[derive(Debug, Clone, Default)]
pub struct SshdConfig {
    present: bool,
    global: BTreeMap<String, Vec<Setting>>,
    /// `Match` blocks in file order.
    pub matches: Vec<MatchBlock>,
    /// Every file read, in order.
    pub files: Vec<String>,
    /// Files that exist but could not be read (each becomes a could-not-check finding).
    pub unreadable: Vec<(String, String)>,
}

impl SshdConfig {
    /// True when `sshd_config` exists (an OpenSSH server is configured).
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// The effective global value of a keyword (case-insensitive), `None` when unset.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.setting(keyword).map(|s| s.value.as_str())
    }

    /// The effective global setting of a keyword with where it was set.
    pub fn setting(&self, keyword: &str) -> Option<&Setting> {
        self.global.get(&keyword.to_ascii_lowercase()).and_then(|v| v.first())
    }

    /// Every global value of an accumulating keyword (`Port`, `ListenAddress`…).
    pub fn all(&self, keyword: &str) -> &[Setting] {
        self.global.get(&keyword.to_ascii_lowercase()).map(Vec::as_slice).unwrap_or(&[])
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
            let addr = la.value.split_whitespace().next().unwrap_or("");
            let port: Option<u16> = if let Some(rest) = addr.strip_prefix('[') {
                rest.split_once("]:").and_then(|(_, p)| p.parse().ok())
            } else if addr.matches(':').count() == 1 {
                addr.split_once(':').and_then(|(_, p)| p.parse().ok())
            } else {
                None
            };
            match port {
                Some(p) => ports.push(p),
                None => ports.extend(&port_lines),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Whether a password can log in, judged as sshd does: `PasswordAuthentication`, or
    /// keyboard-interactive (`KbdInteractiveAuthentication`, or its old name
    /// `ChallengeResponseAuthentication`, default yes) backed by PAM (`UsePAM yes`), whose
    /// default conversation asks for the password. Returns the keyword that lets it in.
    pub fn password_login(&self) -> Option<&'static str> {
        if self.password_authentication() {
            return Some("PasswordAuthentication");
        }
        let kbd = match self.get("KbdInteractiveAuthentication").or_else(|| self.get("ChallengeResponseAuthentication"))
        {
            Some(v) => v.eq_ignore_ascii_case("yes"),
            None => true,
        };
        (kbd && self.flag("UsePAM", false)).then_some("KbdInteractiveAuthentication")
    }

    /// A password alone can log in (so it can be guessed from the network): [`Self::password_login`],
    /// unless `AuthenticationMethods` puts a key before every chain. The keyword that lets it in.
    pub fn guessable_password_login(&self) -> Option<&'static str> {
        let key_only = self
            .authentication_methods()
            .is_some_and(|chains| chains.iter().all(|c| c.iter().any(|m| m.starts_with("publickey"))));
        self.password_login().filter(|_| !key_only)
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

    /// True when every allowed login needs two different methods.
    pub fn requires_two_methods(&self) -> bool {
        self.get("AuthenticationMethods").is_some_and(two_methods)
    }

    /// `PermitRootLogin` (default `prohibit-password` since OpenSSH 7.0).
    pub fn permit_root_login(&self) -> String {
        self.get("PermitRootLogin").map(str::to_ascii_lowercase).unwrap_or_else(|| "prohibit-password".into())
    }

    /// `PasswordAuthentication` (default yes).
    pub fn password_authentication(&self) -> bool {
        self.flag("PasswordAuthentication", true)
    }

    /// `AuthorizedKeysFile` patterns (default `.ssh/authorized_keys .ssh/authorized_keys2`).
    pub fn authorized_keys_files(&self) -> Vec<String> {
        match self.get("AuthorizedKeysFile") {
            Some(v) if !v.eq_ignore_ascii_case("none") => v.split_whitespace().map(str::to_string).collect(),
            Some(_) => Vec::new(),
            None => vec![".ssh/authorized_keys".into(), ".ssh/authorized_keys2".into()],
        }
    }

    fn put(&mut self, s: Setting) {
        let k = s.keyword.to_ascii_lowercase();
        let e = self.global.entry(k.clone()).or_default();
        if e.is_empty() || MULTI.contains(&k.as_str()) {
            e.push(s);
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
            "user" => pattern_list_matches(c[1], &[user]),
            "group" => pattern_list_matches(c[1], groups),
            _ => false,
        })
    }

    /// The value this block sets for `keyword`, if any.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.settings.iter().find(|s| s.keyword.eq_ignore_ascii_case(keyword)).map(|s| s.value.as_str())
    }
}

/// sshd pattern lists: `a*,!bad` — a negated match rejects, else any match accepts.
fn pattern_list_matches<S: AsRef<str>>(list: &str, names: &[S]) -> bool {
    let mut positive = false;
    for pat in list.split(',') {
        let (neg, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if names.iter().any(|n| crate::host::wildcard_match(pat, n.as_ref())) {
            if neg {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// Split a config line into words, honouring double quotes; a word starting
/// with `#` ends the line.
fn words(line: &str) -> Vec<String> {
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

/// Read the sshd configuration of `host` as sshd would. Never fails: an absent
/// `sshd_config` gives a config with [`SshdConfig::is_present`] false, and
/// unreadable files are listed in [`SshdConfig::unreadable`].
pub fn effective_config(host: &Host) -> SshdConfig {
    let mut cfg = SshdConfig::default();
    match host.read_to_string(SSHD_CONFIG) {
        Ok(text) => {
            cfg.present = true;
            let mut block = None;
            parse_file(host, &mut cfg, SSHD_CONFIG, &text, 0, &mut block);
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            cfg.present = true;
            cfg.unreadable.push((SSHD_CONFIG.into(), e.to_string()));
        }
    }
    cfg
}

/// Parse one file's text. `block` is the index of the `Match` block the lines
/// belong to (an `Include` inside a `Match` stays in it); a `Match` opened in
/// a file ends with that file.
fn parse_file(host: &Host, cfg: &mut SshdConfig, file: &str, text: &str, depth: usize, outer: &mut Option<usize>) {
    cfg.files.push(file.to_string());
    let mut block = *outer;
    for (i, raw) in text.lines().enumerate() {
        let Some((keyword, args)) = split_keyword(raw) else {
            continue;
        };
        let lower = keyword.to_ascii_lowercase();
        if lower == "match" {
            let criteria = args.join(" ");
            if criteria.eq_ignore_ascii_case("all") {
                block = None;
                continue;
            }
            cfg.matches.push(MatchBlock { criteria, at: format!("{file}:{}", i + 1), settings: Vec::new() });
            block = Some(cfg.matches.len() - 1);
            continue;
        }
        if lower == "include" {
            if depth >= MAX_INCLUDE_DEPTH {
                cfg.unreadable.push((file.to_string(), "Include nested too deeply".into()));
                continue;
            }
            for pattern in &args {
                let pattern = if pattern.starts_with('/') { pattern.clone() } else { format!("/etc/ssh/{pattern}") };
                let paths = if pattern.contains(['*', '?']) { host.glob(&pattern) } else { vec![pattern.clone()] };
                for p in paths {
                    match host.read_to_string(&p) {
                        Ok(t) => {
                            let mut inner = block;
                            parse_file(host, cfg, &p, &t, depth + 1, &mut inner);
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(HostError::NotRegular { kind: "directory", .. }) => {}
                        Err(e) => cfg.unreadable.push((p.clone(), e.to_string())),
                    }
                }
            }
            continue;
        }
        let s = Setting { keyword, value: args.join(" "), file: file.to_string(), line: i + 1 };
        match block {
            Some(b) => {
                if let Some(m) = cfg.matches.get_mut(b) {
                    m.settings.push(s);
                }
            }
            None => cfg.put(s),
        }
    }
}

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct CheckSsh;

/// A `Match` block as the model sees it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MatchFacts {
    /// The criteria (`User deploy`).
    pub criteria: String,
    /// `file:line`.
    pub at: String,
    /// `Keyword value` lines it sets.
    pub settings: Vec<String>,
}

/// Facts of `check_ssh`: the effective global settings that matter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct SshFacts {
    /// An OpenSSH server configuration exists.
    pub configured: bool,
    /// Files read, main file first, then `Include`s in the order sshd reads them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// TCP ports sshd listens on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// `PermitRootLogin` (effective, with default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permit_root_login: Option<String>,
    /// `PasswordAuthentication` (effective, default yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_authentication: Option<bool>,
    /// `PermitEmptyPasswords` (default no).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permit_empty_passwords: Option<bool>,
    /// `AuthenticationMethods`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_methods: Option<String>,
    /// Every login needs two different methods (a second factor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_two_methods: Option<bool>,
    /// `X11Forwarding` (default no).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x11_forwarding: Option<bool>,
    /// `AllowAgentForwarding` (default yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_forwarding: Option<bool>,
    /// `AllowTcpForwarding` (default yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_forwarding: Option<bool>,
    /// `Ciphers`, `MACs`, `KexAlgorithms` where set explicitly.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub algorithms: BTreeMap<String, String>,
    /// `Match` blocks (conditional settings, not judged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_blocks: Vec<MatchFacts>,
}

/// Algorithm name fragments considered weak.
const WEAK_ALGORITHMS: &[&str] = &[
    "cbc",
    "arcfour",
    "3des",
    "hmac-md5",
    "hmac-sha1-96",
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group-exchange-sha1",
];

/// The weak algorithms a `Ciphers`/`MACs`/`KexAlgorithms` value enables
/// (a `-list` removes, so it enables nothing).
pub fn weak_algorithms(value: &str) -> Vec<String> {
    if value.starts_with('-') {
        return Vec::new();
    }
    value
        .trim_start_matches(['+', '^'])
        .split(',')
        .map(str::trim)
        .filter(|a| WEAK_ALGORITHMS.iter().any(|w| a.to_ascii_lowercase().contains(w)))
        .map(str::to_string)
        .collect()
}

#[async_trait]
impl Tool for CheckSsh {
    type Input = NoInput;
    type Output = SshFacts;

    fn name(&self) -> &'static str {
        "check_ssh"
    }

    fn description(&self) -> &'static str {
        "Read the OpenSSH server configuration (sshd_config and every Include'd file, first value wins \
         like sshd) and judge the global settings: root login, password authentication (on by default), \
         empty passwords, X11/agent/TCP forwarding, weak ciphers, MACs and key exchange, and whether \
         AuthenticationMethods demands a second factor. Returns the effective settings with the files \
         they came from, the SSH ports and any Match blocks (noted, not judged)."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, _input: NoInput) -> Result<Outcome<SshFacts>, ToolError> {
        let cfg = effective_config(&ctx.host);
        let (facts, findings) = judge(&cfg);
        Ok(Outcome::new(facts, findings))
    }
}

fn where_set(cfg: &SshdConfig, keyword: &str) -> String {
    match cfg.setting(keyword) {
        Some(s) => format!("{} {} ({})", s.keyword, s.value, s.at()),
        None => format!("{keyword} not set in {}: sshd's default applies", cfg.files.join(", ")),
    }
}

fn overrides(cfg: &SshdConfig, keyword: &str) -> Vec<String> {
    cfg.matches
        .iter()
        .flat_map(|m| {
            m.settings
                .iter()
                .filter(|s| s.keyword.eq_ignore_ascii_case(keyword))
                .map(move |s| format!("Match {} sets {} {} ({})", m.criteria, s.keyword, s.value, s.at()))
        })
        .collect()
}

/// Judge an effective configuration: facts and findings.
pub fn judge(cfg: &SshdConfig) -> (SshFacts, Vec<Finding>) {
    let mut findings: Vec<Finding> =
        cfg.unreadable.iter().map(|(p, e)| Finding::could_not_check(Category::Hardening, "check_ssh", p, e)).collect();
    if !cfg.is_present() {
        findings.push(
            Finding::new(
                "hardening.ssh-not-configured",
                Severity::Info,
                Category::Hardening,
                "sshd",
                "No OpenSSH server configured",
            )
            .evidence(format!("{SSHD_CONFIG} does not exist"))
            .fix("Nothing to do if this host is not administered over SSH."),
        );
        return (SshFacts::default(), findings);
    }
    if cfg.files.is_empty() {
        // sshd_config itself unreadable: nothing below would be true.
        return (SshFacts { configured: true, ..Default::default() }, findings);
    }
    let mut facts = SshFacts {
        configured: true,
        files: cfg.files.clone(),
        ports: cfg.ports(),
        permit_root_login: Some(cfg.permit_root_login()),
        password_authentication: Some(cfg.password_authentication()),
        permit_empty_passwords: Some(cfg.flag("PermitEmptyPasswords", false)),
        authentication_methods: cfg.get("AuthenticationMethods").map(str::to_string),
        requires_two_methods: Some(cfg.requires_two_methods()),
        x11_forwarding: Some(cfg.flag("X11Forwarding", false)),
        agent_forwarding: Some(cfg.flag("AllowAgentForwarding", true)),
        tcp_forwarding: Some(cfg.flag("AllowTcpForwarding", true)),
        algorithms: BTreeMap::new(),
        match_blocks: cfg
            .matches
            .iter()
            .map(|m| MatchFacts {
                criteria: m.criteria.clone(),
                at: m.at.clone(),
                settings: m.settings.iter().map(|s| format!("{} {}", s.keyword, s.value)).collect(),
            })
            .collect(),
    };
    let reload = "then check with `sshd -t` and reload (`systemctl reload ssh`)";

    if cfg.permit_root_login() == "yes" {
        let mut f = Finding::new(
            "hardening.ssh-root-login",
            Severity::High,
            Category::Hardening,
            "sshd:PermitRootLogin",
            "SSH allows root to log in with a password",
        )
        .evidence(where_set(cfg, "PermitRootLogin"));
        for o in overrides(cfg, "PermitRootLogin") {
            f = f.evidence(o);
        }
        findings.push(f.fix(format!(
            "Set `PermitRootLogin prohibit-password` (or `no`) in {SSHD_CONFIG}, log in as a named admin \
             and use sudo; {reload}."
        )));
    }

    if let Some(via) = cfg.guessable_password_login() {
        let mut f = Finding::new(
            "hardening.ssh-password-auth",
            Severity::Medium,
            Category::Hardening,
            "sshd:PasswordAuthentication",
            "SSH accepts passwords, so passwords can be guessed from the internet",
        )
        .evidence(where_set(cfg, "PasswordAuthentication"));
        for o in overrides(cfg, "PasswordAuthentication") {
            f = f.evidence(o);
        }
        let fix = if via == "KbdInteractiveAuthentication" {
            f = f
                .evidence(format!(
                    "PasswordAuthentication is off, but keyboard-interactive login is on with UsePAM yes: PAM asks for \
                     the password there ({})",
                    where_set(cfg, "KbdInteractiveAuthentication")
                ))
                .evidence(where_set(cfg, "UsePAM"));
            format!(
                "Set `KbdInteractiveAuthentication no` in {SSHD_CONFIG} as well (keep it only with \
                 `AuthenticationMethods publickey,keyboard-interactive` for a second factor); {reload}."
            )
        } else {
            format!(
                "Give every admin an SSH key, then set `PasswordAuthentication no` and \
                 `KbdInteractiveAuthentication no` in {SSHD_CONFIG} (before any Include that could override them); {reload}."
            )
        };
        findings.push(f.fix(fix));
    }

    if cfg.flag("PermitEmptyPasswords", false) {
        findings.push(
            Finding::new(
                "hardening.ssh-empty-passwords",
                Severity::Critical,
                Category::Hardening,
                "sshd:PermitEmptyPasswords",
                "SSH lets accounts with an empty password log in",
            )
            .evidence(where_set(cfg, "PermitEmptyPasswords"))
            .fix(format!("Set `PermitEmptyPasswords no` in {SSHD_CONFIG}; {reload}.")),
        );
    }

    for (keyword, what) in [
        ("X11Forwarding", "X11 forwarding"),
        ("AllowAgentForwarding", "agent forwarding"),
        ("AllowTcpForwarding", "TCP forwarding (tunnels into the host's network)"),
    ] {
        // Only an explicit yes: the defaults of agent/TCP forwarding are on
        // everywhere and flagging every stock server would be crying wolf.
        if cfg.get(keyword).is_some() && cfg.flag(keyword, false) {
            findings.push(
                Finding::new(
                    "hardening.ssh-forwarding",
                    Severity::Low,
                    Category::Hardening,
                    format!("sshd:{keyword}"),
                    format!("SSH allows {what}"),
                )
                .evidence(where_set(cfg, keyword))
                .fix(format!(
                    "Unless someone needs it, set `{keyword} no` in {SSHD_CONFIG} (or allow it only in a \
                     `Match User` block for the people who do); {reload}."
                )),
            );
        }
    }

    for keyword in ["Ciphers", "MACs", "KexAlgorithms"] {
        let Some(s) = cfg.setting(keyword) else {
            continue;
        };
        facts.algorithms.insert(keyword.to_string(), s.value.clone());
        let weak = weak_algorithms(&s.value);
        if !weak.is_empty() {
            findings.push(
                Finding::new(
                    "hardening.ssh-weak-crypto",
                    Severity::Medium,
                    Category::Hardening,
                    format!("sshd:{keyword}"),
                    format!("SSH offers weak {keyword}: {}", weak.join(", ")),
                )
                .evidence(format!("{keyword} set at {}", s.at()))
                .evidence(format!("weak: {}", weak.join(", ")))
                .fix(format!(
                    "Remove the `{keyword}` line at {} to use OpenSSH's modern defaults (or list only \
                     strong ones, e.g. chacha20-poly1305@openssh.com, aes256-gcm@openssh.com, \
                     hmac-sha2-256-etm@openssh.com, curve25519-sha256); {reload}.",
                    s.at()
                )),
            );
        }
    }
    (facts, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::fixture_ctx;

    fn host_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let real = dir.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(real.parent().unwrap()).unwrap();
            std::fs::write(real, text).unwrap();
        }
        let h = Host::at(dir.path());
        (dir, h)
    }

    fn ids(f: &[Finding]) -> Vec<(&str, &str, Severity)> {
        f.iter().map(|f| (f.id.as_str(), f.subject.as_str(), f.severity)).collect()
    }

    #[test]
    fn first_value_wins_across_includes_and_comments() {
        let (_d, h) = host_with(&[
            (
                "/etc/ssh/sshd_config",
                "# PermitRootLogin yes\nInclude sshd_config.d/*.conf\n  permitrootlogin=no # trailing\n\
                 Port 22\nPort 2222\nListenAddress [::1]:2200\nPasswordAuthentication \"no\"\n",
            ),
            ("/etc/ssh/sshd_config.d/10-first.conf", "PermitRootLogin prohibit-password\n"),
            ("/etc/ssh/sshd_config.d/20-second.conf", "PermitRootLogin yes\nPasswordAuthentication yes\n"),
            ("/etc/ssh/sshd_config.d/README", "PermitEmptyPasswords yes\n"),
        ]);
        let c = effective_config(&h);
        assert!(c.is_present());
        assert_eq!(c.get("PermitRootLogin"), Some("prohibit-password"));
        assert_eq!(c.setting("permitrootlogin").unwrap().file, "/etc/ssh/sshd_config.d/10-first.conf");
        // The included file came first, so its `PasswordAuthentication yes` wins over the main file.
        assert!(c.password_authentication());
        // A ListenAddress with its own port listens there only: the Port lines apply to none.
        assert_eq!(c.ports(), vec![2200]);
        assert!(!c.flag("PermitEmptyPasswords", false), "README does not match *.conf");
        assert_eq!(c.files.len(), 3);
    }

    #[test]
    fn match_blocks_are_kept_apart_and_end_with_their_file() {
        let (_d, h) = host_with(&[
            (
                "/etc/ssh/sshd_config",
                "Include /etc/ssh/extra.conf\nMatch User deploy\n  PasswordAuthentication yes\n\
                 Include inmatch.conf\nMatch all\nPasswordAuthentication no\n",
            ),
            ("/etc/ssh/extra.conf", "Match Address 10.0.0.0/8\nPermitRootLogin yes\n"),
            ("/etc/ssh/inmatch.conf", "X11Forwarding yes\n"),
        ]);
        let c = effective_config(&h);
        assert_eq!(c.matches.len(), 2);
        assert_eq!(c.matches[0].criteria, "Address 10.0.0.0/8");
        assert_eq!(c.matches[1].settings.len(), 2, "{:?}", c.matches[1]);
        assert_eq!(c.get("PermitRootLogin"), None);
        assert!(!c.password_authentication());
        assert!(!c.flag("X11Forwarding", false));
        let (facts, findings) = judge(&c);
        assert_eq!(facts.match_blocks.len(), 2);
        assert!(findings.is_empty(), "{:?}", ids(&findings));
    }

    #[test]
    fn ports_follow_listen_addresses_as_sshd_does() {
        let ports = |text: &str| {
            let (_d, h) = host_with(&[("/etc/ssh/sshd_config", text)]);
            effective_config(&h).ports()
        };
        assert_eq!(ports("Port 22\nListenAddress 0.0.0.0:2200\n"), vec![2200]);
        assert_eq!(ports("Port 22\nPort 2222\nListenAddress 10.0.0.1\n"), vec![22, 2222]);
        assert_eq!(ports("ListenAddress 10.0.0.1\nListenAddress [::1]:2201\n"), vec![22, 2201]);
        assert_eq!(ports("Port 2222\n"), vec![2222]);
        assert_eq!(ports("PermitRootLogin no\n"), vec![22]);
    }

    #[test]
    fn keyboard_interactive_through_pam_is_a_password_login() {
        let judge_of = |text: &str| {
            let (_d, h) = host_with(&[("/etc/ssh/sshd_config", text)]);
            judge(&effective_config(&h)).1
        };
        let f = judge_of("PasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes\n");
        let pw = f.iter().find(|f| f.id == "hardening.ssh-password-auth").expect("passwords still log in");
        assert!(pw.evidence.iter().any(|e| e.contains("keyboard-interactive")), "{:?}", pw.evidence);
        assert!(pw.remediation.contains("KbdInteractiveAuthentication no"), "{}", pw.remediation);
        // The old name, and the default (keyboard-interactive is on unless turned off).
        assert!(
            ids(&judge_of("PasswordAuthentication no\nChallengeResponseAuthentication yes\nUsePAM yes\n"))
                .iter()
                .any(|(id, _, _)| *id == "hardening.ssh-password-auth")
        );
        assert!(
            ids(&judge_of("PasswordAuthentication no\nUsePAM yes\n"))
                .iter()
                .any(|(id, _, _)| *id == "hardening.ssh-password-auth")
        );
        // Debian's own default and PAM off are not password logins.
        for ok in [
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n",
            "PasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM no\n",
            "PasswordAuthentication no\nUsePAM yes\nAuthenticationMethods publickey,keyboard-interactive\n",
        ] {
            assert!(!ids(&judge_of(ok)).iter().any(|(id, _, _)| *id == "hardening.ssh-password-auth"), "{ok}");
        }
    }

    #[test]
    fn password_authentication_defaults_to_yes() {
        let (_d, h) = host_with(&[("/etc/ssh/sshd_config", "PermitRootLogin no\n")]);
        let (facts, f) = judge(&effective_config(&h));
        assert_eq!(facts.password_authentication, Some(true));
        let pw = f.iter().find(|f| f.id == "hardening.ssh-password-auth").unwrap();
        assert!(pw.evidence[0].contains("default"), "{:?}", pw.evidence);
        assert_eq!(facts.ports, vec![22]);
    }

    #[test]
    fn missing_config_is_info_and_missing_include_is_ignored() {
        let (_d, h) = host_with(&[]);
        let (facts, f) = judge(&effective_config(&h));
        assert!(!facts.configured);
        assert_eq!(ids(&f), vec![("hardening.ssh-not-configured", "sshd", Severity::Info)]);
        assert!(effective_config(&h).ports().is_empty());
        let (_d, h) = host_with(&[(
            "/etc/ssh/sshd_config",
            "Include /etc/ssh/nothere.conf sshd_config.d/*.conf\nPasswordAuthentication no\n",
        )]);
        let (_, f) = judge(&effective_config(&h));
        assert!(f.is_empty(), "{:?}", ids(&f));
    }

    #[test]
    fn unreadable_include_is_a_could_not_check() {
        // A symlink loop cannot be read even by root (ELOOP).
        let (d, h) = host_with(&[("/etc/ssh/sshd_config", "Include /etc/ssh/loop.conf\nPasswordAuthentication no\n")]);
        std::os::unix::fs::symlink("loop.conf", d.path().join("etc/ssh/loop.conf")).unwrap();
        let c = effective_config(&h);
        assert!(!c.password_authentication(), "the rest of the file is still read");
        let (_, f) = judge(&c);
        assert_eq!(ids(&f), vec![("hardening.check-failed", "check_ssh: /etc/ssh/loop.conf", Severity::High)]);
    }

    #[test]
    fn weak_algorithms_are_recognised() {
        assert_eq!(weak_algorithms("aes256-ctr,aes128-cbc,3des-cbc"), vec!["aes128-cbc", "3des-cbc"]);
        assert_eq!(weak_algorithms("+hmac-sha1-96"), vec!["hmac-sha1-96"]);
        assert!(weak_algorithms("-3des-cbc,aes128-cbc").is_empty());
        assert!(weak_algorithms("curve25519-sha256,diffie-hellman-group14-sha256").is_empty());
        assert_eq!(weak_algorithms("diffie-hellman-group14-sha1"), vec!["diffie-hellman-group14-sha1"]);
    }

    #[test]
    fn authentication_method_chains() {
        let (_d, h) = host_with(&[("/etc/ssh/sshd_config", "AuthenticationMethods publickey,password publickey\n")]);
        assert!(!effective_config(&h).requires_two_methods());
        let (_d, h) = host_with(&[(
            "/etc/ssh/sshd_config",
            "AuthenticationMethods publickey,keyboard-interactive:pam publickey,password\n",
        )]);
        let c = effective_config(&h);
        assert!(c.requires_two_methods());
        assert_eq!(c.authentication_methods().unwrap()[0], vec!["publickey", "keyboard-interactive:pam"]);
        let (_d, h) = host_with(&[("/etc/ssh/sshd_config", "AuthenticationMethods any\n")]);
        assert!(!effective_config(&h).requires_two_methods());
        let m = |c: &str| MatchBlock { criteria: c.into(), at: String::new(), settings: Vec::new() };
        let groups = vec!["sudo".to_string(), "alice".to_string()];
        assert!(m("Group sudo,wheel").applies_to_user("alice", &groups));
        assert!(m("User al* Group sudo").applies_to_user("alice", &groups));
        assert!(!m("User *,!alice").applies_to_user("alice", &groups));
        assert!(!m("Address 10.0.0.0/8").applies_to_user("alice", &groups));
        assert!(!m("Group wheel").applies_to_user("alice", &groups));
    }

    #[tokio::test]
    async fn web1_plants_are_caught() {
        let out = CheckSsh.run(&fixture_ctx("web1"), NoInput {}).await.unwrap();
        let got = ids(&out.findings);
        for want in [
            ("hardening.ssh-root-login", "sshd:PermitRootLogin", Severity::High),
            ("hardening.ssh-password-auth", "sshd:PasswordAuthentication", Severity::Medium),
            ("hardening.ssh-weak-crypto", "sshd:Ciphers", Severity::Medium),
            ("hardening.ssh-weak-crypto", "sshd:MACs", Severity::Medium),
            ("hardening.ssh-forwarding", "sshd:X11Forwarding", Severity::Low),
        ] {
            assert!(got.contains(&want), "missing {want:?} in {got:?}");
        }
        let weak = out.findings.iter().find(|f| f.subject == "sshd:Ciphers").unwrap();
        assert!(weak.evidence[0].contains("/etc/ssh/sshd_config.d/"), "{:?}", weak.evidence);
        assert_eq!(out.facts.ports, vec![22]);
    }

    #[tokio::test]
    async fn clean_host_is_quiet() {
        let out = CheckSsh.run(&fixture_ctx("clean"), NoInput {}).await.unwrap();
        assert!(out.findings.iter().all(|f| f.severity == Severity::Info), "{:?}", ids(&out.findings));
        assert_eq!(out.facts.requires_two_methods, Some(true));
        assert_eq!(out.facts.permit_root_login.as_deref(), Some("no"));
    }

    #[tokio::test]
    async fn live_host_does_not_fail() {
        let out = CheckSsh.run(&Ctx::new(Host::live()), NoInput {}).await;
        assert!(out.is_ok(), "{:?}", out.err());
    }
}
