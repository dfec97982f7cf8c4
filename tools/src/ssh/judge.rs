//! Judging sshd's settings as they apply to each account.
//!
//! A finding must follow what sshd would do for a real login, not what the
//! global lines say: `Match User root` with `PermitRootLogin yes` lets root in
//! with a password whatever the line above it says, and `Match User deploy`
//! with `PasswordAuthentication yes` opens exactly one account to guessing.
//! So each account that can log in is judged at the worst connection an
//! attacker can choose ([`super::matcher::connections`]), and the evidence
//! names the block and line that decided it.

use std::collections::BTreeMap;

use super::access::refusal;
use super::config::{SSHD_CONFIG, Settings, SshdConfig};
use super::connections;
use super::matcher::{Account, Connection};
use super::{MatchFacts, SshFacts};
use crate::finding::{Category, Finding, Severity};

/// How many accounts a finding names one by one before summing up the rest.
const MAX_NAMED: usize = 10;

const RELOAD: &str = "then check with `sshd -t` and reload (`systemctl reload ssh`)";

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

/// One account's settings at every connection that can differ.
struct Evaluated<'a> {
    account: &'a Account,
    at: Vec<(Connection, Settings)>,
}

/// An account for which a condition holds, at the first connection where it does.
struct Hit<'a> {
    account: &'a Account,
    conn: &'a Connection,
    settings: &'a Settings,
}

fn hits<'a>(evals: &'a [Evaluated<'a>], holds: impl Fn(&Account, &Settings) -> bool) -> Vec<Hit<'a>> {
    evals
        .iter()
        .filter_map(|e| {
            e.at.iter().find(|(_, s)| holds(e.account, s)).map(|(conn, settings)| Hit {
                account: e.account,
                conn,
                settings,
            })
        })
        .collect()
}

/// Where the effective value of `keyword` comes from, for evidence.
fn where_set(cfg: &SshdConfig, s: &Settings, keyword: &str) -> String {
    match s.setting(keyword) {
        Some(set) => {
            let block = set
                .block
                .and_then(|b| cfg.matches.get(b))
                .map(|m| format!(" in `Match {}` ({})", m.criteria, m.at))
                .unwrap_or_default();
            format!("{} {} ({}){block}", set.keyword, set.value, set.at())
        }
        None => format!("{keyword} not set in {}: sshd's default applies", cfg.files.join(", ")),
    }
}

/// True when the value came from a `Match` block rather than the global lines.
fn from_block(s: &Settings, keyword: &str) -> bool {
    s.setting(keyword).is_some_and(|set| set.block.is_some())
}

/// Evidence for a condition that holds for some accounts: the global setting
/// when every account has it from there, else one line per account (the
/// first [`MAX_NAMED`]) naming the connection and the block.
fn account_evidence(cfg: &SshdConfig, hits: &[Hit], keyword: &str) -> Vec<String> {
    let mut out = Vec::new();
    let global: Vec<&Hit> = hits.iter().filter(|h| !from_block(h.settings, keyword)).collect();
    if !global.is_empty() {
        out.push(where_set(cfg, &cfg.global, keyword));
    }
    for h in hits.iter().filter(|h| from_block(h.settings, keyword)).take(MAX_NAMED) {
        out.push(format!("for {}: {}", h.conn.describe(), where_set(cfg, h.settings, keyword)));
    }
    let named = hits.iter().filter(|h| from_block(h.settings, keyword)).count();
    if named > MAX_NAMED {
        out.push(format!("and {} more account(s) through Match blocks", named - MAX_NAMED));
    }
    out
}

/// ` and in the Match blocks that set it` when a block decided `keyword` for some hit.
fn and_blocks(hits: &[Hit], keywords: &[&str]) -> &'static str {
    if hits.iter().any(|h| keywords.iter().any(|k| from_block(h.settings, k))) {
        " and in every `Match` block that sets it"
    } else {
        ""
    }
}

/// `finding` with the [`account_evidence`] of `hits` for `keyword`.
fn account_finding(cfg: &SshdConfig, hits: &[Hit], keyword: &str, finding: Finding) -> Finding {
    account_evidence(cfg, hits, keyword).into_iter().fold(finding, Finding::evidence)
}

fn names(hits: &[Hit]) -> String {
    let mut n: Vec<&str> = hits.iter().map(|h| h.account.name.as_str()).take(MAX_NAMED).collect();
    if hits.len() > MAX_NAMED {
        n.push("…");
    }
    n.join(", ")
}

/// Judge a configuration for `accounts` (root and every account that can log
/// in): facts and findings.
pub fn judge(cfg: &SshdConfig, accounts: &[Account]) -> (SshFacts, Vec<Finding>) {
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
    // A connection sshd turns away (AllowUsers, DenyUsers, AllowGroups,
    // DenyGroups) gets no password prompt: only the others are judged.
    let mut refused = Vec::new();
    let evals: Vec<Evaluated> = accounts
        .iter()
        .map(|a| {
            let mut why = None;
            let at: Vec<(Connection, Settings)> = connections(cfg, a)
                .into_iter()
                .map(|c| {
                    let s = cfg.for_connection(&c);
                    (c, s)
                })
                .filter(|(c, s)| match refusal(s, c) {
                    Some(r) => {
                        why.get_or_insert(r);
                        false
                    }
                    None => true,
                })
                .collect();
            if let (true, Some(r)) = (at.is_empty(), why) {
                refused.push(format!("{}: {r}", a.name));
            }
            Evaluated { account: a, at }
        })
        .collect();
    let root_login = |a: &Account, s: &Settings| a.uid == 0 && s.permit_root_login() == "yes";
    let password = |a: &Account, s: &Settings| s.password_login().is_some() && (a.uid != 0 || root_login(a, s));
    let password_hits = hits(&evals, password);

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
        password_login_accounts: password_hits.iter().map(|h| h.account.name.clone()).collect(),
        refused_accounts: refused,
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

    let root = hits(&evals, root_login);
    if !root.is_empty() {
        findings.push(
            account_finding(
                cfg,
                &root,
                "PermitRootLogin",
                Finding::new(
                    "hardening.ssh-root-login",
                    Severity::High,
                    Category::Hardening,
                    "sshd:PermitRootLogin",
                    "SSH allows root to log in with a password",
                ),
            )
            .fix(format!(
                "Set `PermitRootLogin prohibit-password` (or `no`) in {SSHD_CONFIG}{}, log in as a named \
                     admin and use sudo; {RELOAD}.",
                and_blocks(&root, &["PermitRootLogin"])
            )),
        );
    }

    if !password_hits.is_empty() {
        findings.push(password_finding(cfg, &password_hits, evals.len()));
    }

    let empty = hits(&evals, |_, s| s.flag("PermitEmptyPasswords", false));
    if !empty.is_empty() {
        findings.push(
            account_finding(
                cfg,
                &empty,
                "PermitEmptyPasswords",
                Finding::new(
                    "hardening.ssh-empty-passwords",
                    Severity::Critical,
                    Category::Hardening,
                    "sshd:PermitEmptyPasswords",
                    "SSH lets accounts with an empty password log in",
                ),
            )
            .fix(format!(
                "Set `PermitEmptyPasswords no` in {SSHD_CONFIG}{}; {RELOAD}.",
                and_blocks(&empty, &["PermitEmptyPasswords"])
            )),
        );
    }

    for (keyword, what) in [
        ("X11Forwarding", "X11 forwarding"),
        ("AllowAgentForwarding", "agent forwarding"),
        ("AllowTcpForwarding", "TCP forwarding (tunnels into the host's network)"),
    ] {
        // Only an explicit yes: the defaults of agent/TCP forwarding are on
        // everywhere and flagging every stock server would be crying wolf.
        let on = hits(&evals, |_, s| s.get(keyword).is_some() && s.flag(keyword, false));
        if on.is_empty() {
            continue;
        }
        findings.push(
            account_finding(
                cfg,
                &on,
                keyword,
                Finding::new(
                    "hardening.ssh-forwarding",
                    Severity::Low,
                    Category::Hardening,
                    format!("sshd:{keyword}"),
                    format!("SSH allows {what}"),
                ),
            )
            .fix(format!(
                "Unless someone needs it, set `{keyword} no` in {SSHD_CONFIG} (or allow it only in a \
                     `Match User` block for the people who do); {RELOAD}."
            )),
        );
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
                     hmac-sha2-256-etm@openssh.com, curve25519-sha256); {RELOAD}.",
                    s.at()
                )),
            );
        }
    }
    (facts, findings)
}

/// The password-login finding: which accounts, and through which keyword.
fn password_finding(cfg: &SshdConfig, hits: &[Hit], judged: usize) -> Finding {
    let title = if hits.len() == judged {
        "SSH accepts passwords, so passwords can be guessed from the internet".to_string()
    } else {
        format!("SSH accepts passwords for {}, so their passwords can be guessed from the internet", names(hits))
    };
    let kbd = hits.iter().any(|h| h.settings.password_login() == Some("KbdInteractiveAuthentication"));
    let mut f = Finding::new(
        "hardening.ssh-password-auth",
        Severity::Medium,
        Category::Hardening,
        "sshd:PasswordAuthentication",
        title,
    );
    let pw: Vec<Hit> = hits
        .iter()
        .filter(|h| h.settings.password_login() == Some("PasswordAuthentication"))
        .map(|h| Hit { ..*h })
        .collect();
    if !pw.is_empty() {
        for e in account_evidence(cfg, &pw, "PasswordAuthentication") {
            f = f.evidence(e);
        }
    }
    if kbd {
        let k: Vec<Hit> = hits
            .iter()
            .filter(|h| h.settings.password_login() == Some("KbdInteractiveAuthentication"))
            .map(|h| Hit { ..*h })
            .collect();
        f = f.evidence(format!(
            "PasswordAuthentication is off for {}, but keyboard-interactive login is on with UsePAM yes: PAM asks \
             for the password there",
            names(&k)
        ));
        for e in account_evidence(cfg, &k, "KbdInteractiveAuthentication") {
            f = f.evidence(e);
        }
        f = f.evidence(where_set(cfg, &cfg.global, "UsePAM"));
    }
    if hits.len() < judged {
        f = f.evidence(format!("accounts that can log in with a password: {}", names(hits)));
    }
    let blocks = and_blocks(hits, &["PasswordAuthentication", "KbdInteractiveAuthentication", "AuthenticationMethods"]);
    f.fix(if kbd && pw.is_empty() {
        format!(
            "Set `KbdInteractiveAuthentication no` in {SSHD_CONFIG}{blocks} as well (keep it only with \
             `AuthenticationMethods publickey,keyboard-interactive` for a second factor); {RELOAD}."
        )
    } else {
        format!(
            "Give every admin an SSH key, then set `PasswordAuthentication no` and `KbdInteractiveAuthentication no` \
             in {SSHD_CONFIG} (before any Include that could override them){blocks}; {RELOAD}."
        )
    })
}
