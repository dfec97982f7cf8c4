//! `check_ssh`: the OpenSSH server settings that decide who can get a shell.
//!
//! A password-guessable root login or an `Include`d drop-in that re-enables
//! 3DES is exactly the "staging setting that became production" of pattern 3,
//! and it is invisible unless someone reads every file sshd reads, the way
//! sshd reads them. The module is split by what each part does:
//!
//! - [`config`]: the files as sshd reads them (`Include` globs relative to
//!   `/etc/ssh`, case-insensitive keywords, first value wins, `Match` blocks).
//! - [`matcher`]: which lines apply to which login — sshd's `Match` rules, as
//!   `sshd -T -C user=…,addr=…` applies them — and the connections worth judging.
//! - [`access`]: who sshd lets try at all (`AllowUsers`, `DenyUsers`,
//!   `AllowGroups`, `DenyGroups`): an account they turn away logs in with nothing.
//! - [`judge`]: the findings, per account at its worst connection.
//!
//! [`effective_config`] is public so other tools use the same reading:
//! `audit_accounts` needs `AuthenticationMethods`, the firewall fix needs the
//! SSH port.

pub mod access;
pub mod config;
pub mod judge;
pub mod matcher;

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use access::refusal;
pub use config::{MatchBlock, SSHD_CONFIG, Setting, Settings, SshdConfig, two_methods};
pub use judge::{judge, weak_algorithms};
pub use matcher::{Account, Connection, PUBLIC_ADDRESS};

use crate::host::Host;
use crate::tool::{Ctx, Effect, NoInput, Outcome, Tool, ToolError};
use crate::users::{memberships, parse_group, parse_passwd};

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
    /// Accounts a password alone logs in (at their worst connection; root only
    /// with `PermitRootLogin yes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub password_login_accounts: Vec<String>,
    /// Accounts sshd turns away from every connection judged (`AllowUsers`,
    /// `DenyUsers`, `AllowGroups`, `DenyGroups`), with the line that decides it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_accounts: Vec<String>,
    /// `Ciphers`, `MACs`, `KexAlgorithms` where set explicitly.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub algorithms: BTreeMap<String, String>,
    /// `Match` blocks (judged per account through [`SshdConfig::for_connection`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_blocks: Vec<MatchFacts>,
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
         like sshd, Match blocks applied as sshd applies them) and judge it for root and every account \
         that can log in, at the worst connection (any address a Match names, a public one, every SSH \
         port): root login, password login (password, keyboard-interactive through PAM and \
         AuthenticationMethods together; accounts AllowUsers/DenyUsers/AllowGroups/DenyGroups turn away \
         are left out), empty passwords, X11/agent/TCP forwarding, weak ciphers, MACs \
         and key exchange, and whether AuthenticationMethods demands a second factor. Returns the \
         effective global settings with the files they came from, the SSH ports, the accounts a password \
         logs in and the Match blocks."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, _input: NoInput) -> Result<Outcome<SshFacts>, ToolError> {
        let cfg = effective_config(&ctx.host);
        let (facts, findings) = judge(&cfg, &login_accounts(&ctx.host));
        Ok(Outcome::new(facts, findings))
    }
}

/// Read the sshd configuration of `host` as sshd would. Never fails: an absent
/// `sshd_config` gives a config with [`SshdConfig::is_present`] false, and
/// unreadable files are listed in [`SshdConfig::unreadable`].
pub fn effective_config(host: &Host) -> SshdConfig {
    let mut cfg = config::read_files(host);
    cfg.global = matcher::global_settings(&cfg.tree);
    cfg
}

/// The accounts a password alone can log in to over SSH, judged as `check_ssh` judges
/// them (per account and connection, `Match` blocks included).
pub fn password_login_accounts(host: &Host, cfg: &SshdConfig) -> Vec<String> {
    judge::judge(cfg, &login_accounts(host)).0.password_login_accounts
}

/// The accounts sshd may log in, as the audited root lists them: root, every
/// other uid 0, and every account whose shell allows a login, with its groups
/// (primary and from `/etc/group`). Without a readable `/etc/passwd` the
/// accounts are unknown, so root and a stand-in for any other account are judged.
pub fn login_accounts(host: &Host) -> Vec<Account> {
    let entries = host.read_to_string("/etc/passwd").map(|t| parse_passwd(&t)).unwrap_or_default();
    let groups = host.read_to_string("/etc/group").map(|t| parse_group(&t)).unwrap_or_default();
    let member_of = memberships(&groups, &entries.iter().map(|e| (e.name.clone(), e.gid)).collect::<Vec<_>>());
    let mut out: Vec<Account> = entries
        .iter()
        .filter(|e| e.uid == 0 || e.can_login())
        .map(|e| Account {
            name: e.name.clone(),
            uid: e.uid,
            groups: Some(member_of.get(&e.name).cloned().unwrap_or_default()),
        })
        .collect();
    if !out.iter().any(|a| a.name == "root") {
        out.insert(0, Account { name: "root".into(), uid: 0, groups: None });
    }
    if entries.is_empty() {
        out.push(Account { name: "(any other account)".into(), uid: 65_534, groups: None });
    }
    out
}

/// The connections worth judging for `account` ([`matcher::connections`]), the
/// addresses named in `AllowUsers`/`DenyUsers` entries included.
pub fn connections(cfg: &SshdConfig, account: &Account) -> Vec<Connection> {
    matcher::connections(cfg, account, &access::host_patterns(&cfg.global, &cfg.matches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Finding, Severity};
    use crate::testutil::{fixture_ctx, host_with};

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
        // Judged per account at its worst connection: root from 10.0.0.0/8 gets
        // `PermitRootLogin yes`; nobody here is named deploy, so no password login.
        let (facts, findings) = judge(&c, &login_accounts(&h));
        assert_eq!(facts.match_blocks.len(), 2);
        assert_eq!(ids(&findings), vec![("hardening.ssh-root-login", "sshd:PermitRootLogin", Severity::High)]);
        let ev = findings[0].evidence.join("\n");
        assert!(
            ev.contains("root from 10.0.0.0") && ev.contains("`Match Address 10.0.0.0/8` (/etc/ssh/extra.conf:1)"),
            "{ev}"
        );
        assert!(facts.password_login_accounts.is_empty(), "{:?}", facts.password_login_accounts);
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n\
                          deploy:x:1001:1001::/home/deploy:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\ndeploy:x:1001:\nwww-data:x:33:deploy\n";

    fn judged(sshd_config: &str) -> (SshFacts, Vec<Finding>) {
        let (_d, h) =
            host_with(&[("/etc/ssh/sshd_config", sshd_config), ("/etc/passwd", PASSWD), ("/etc/group", GROUP)]);
        judge(&effective_config(&h), &login_accounts(&h))
    }

    #[test]
    fn match_user_root_permit_root_login_is_the_same_finding_as_a_global_one() {
        let (_, global) = judged("PermitRootLogin yes\nPasswordAuthentication no\n");
        let (_, f) = judged("PermitRootLogin no\nPasswordAuthentication no\nMatch User root\n  PermitRootLogin yes\n");
        assert_eq!(ids(&f), ids(&global));
        assert_eq!(ids(&f), vec![("hardening.ssh-root-login", "sshd:PermitRootLogin", Severity::High)]);
        assert!(
            f[0].evidence.iter().any(|e| e.contains(
                "PermitRootLogin yes (/etc/ssh/sshd_config:4) in `Match User root` (/etc/ssh/sshd_config:3)"
            )),
            "{:?}",
            f[0].evidence
        );
        // The other way round: a global yes that a Match takes back for root is no finding.
        let (_, f) = judged("PermitRootLogin yes\nPasswordAuthentication no\nMatch User root\n  PermitRootLogin no\n");
        assert!(f.is_empty(), "{:?}", ids(&f));
        // A block for an address root may come from counts; one for another user does not.
        let (_, f) =
            judged("PasswordAuthentication no\nMatch Address 192.168.0.0/16,!192.168.9.9\n  PermitRootLogin yes\n");
        assert_eq!(ids(&f).len(), 1, "{:?}", ids(&f));
        let (_, f) = judged("PasswordAuthentication no\nMatch User alice\n  PermitRootLogin yes\n");
        assert!(f.is_empty(), "{:?}", ids(&f));
    }

    #[test]
    fn password_login_is_raised_for_the_accounts_it_applies_to() {
        let cfg = "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n\
                   Match Group www-data\n  PasswordAuthentication yes\n\
                   Match User alice Address 10.0.0.0/8\n  KbdInteractiveAuthentication yes\n";
        let (facts, f) = judged(cfg);
        assert_eq!(facts.password_login_accounts, vec!["alice", "deploy"]);
        let pw = f.iter().find(|f| f.id == "hardening.ssh-password-auth").expect("two accounts take passwords");
        assert!(pw.title.contains("alice, deploy"), "{}", pw.title);
        let ev = pw.evidence.join("\n");
        assert!(ev.contains("deploy from 203.0.113.7") && ev.contains("`Match Group www-data`"), "{ev}");
        assert!(ev.contains("alice from 10.0.0.0") && ev.contains("KbdInteractiveAuthentication yes"), "{ev}");
        // Root is not among them: prohibit-password (the default) refuses root's password.
        let (facts, _) = judged("PasswordAuthentication yes\n");
        assert_eq!(facts.password_login_accounts, vec!["alice", "deploy"]);
        let (facts, _) = judged("PasswordAuthentication yes\nPermitRootLogin yes\n");
        assert_eq!(facts.password_login_accounts, vec!["root", "alice", "deploy"]);
        // A key first in every chain keeps passwords out, per account too.
        let (facts, f) = judged("Match User deploy\n  AuthenticationMethods publickey,password\n");
        assert_eq!(facts.password_login_accounts, vec!["alice"]);
        assert!(
            f.iter().any(|f| f.id == "hardening.ssh-password-auth" && f.title.contains("for alice,")),
            "{:?}",
            ids(&f)
        );
    }

    #[test]
    fn accounts_the_allow_and_deny_lists_turn_away_log_in_with_nothing() {
        let (facts, f) = judged("PasswordAuthentication yes\nPermitRootLogin yes\nAllowUsers alice\n");
        assert_eq!(facts.password_login_accounts, vec!["alice"]);
        assert!(!f.iter().any(|f| f.id == "hardening.ssh-root-login"), "root is not listed: {:?}", ids(&f));
        assert!(
            facts.refused_accounts.iter().any(|r| r.starts_with("deploy: not listed in AllowUsers")),
            "{:?}",
            facts.refused_accounts
        );
        // From one network only, and not its first address: still a password login, from there.
        let (facts, _) = judged("PasswordAuthentication yes\nAllowUsers deploy@10.0.0.0/8,!10.0.0.0\n");
        assert_eq!(facts.password_login_accounts, vec!["deploy"]);
        let (facts, _) = judged("PasswordAuthentication yes\nDenyUsers deploy@*\nDenyGroups sudo\n");
        assert!(facts.password_login_accounts.is_empty(), "{:?}", facts.password_login_accounts);
        // A Match block's list replaces the global one for the connections it matches.
        let (facts, _) =
            judged("PasswordAuthentication yes\nAllowUsers alice\nMatch Address 192.168.0.0/16\n  AllowUsers deploy\n");
        assert_eq!(facts.password_login_accounts, vec!["alice", "deploy"]);
        // The routing domain of a login is unknown: a `Match RDomain` block never applies.
        let (facts, _) = judged(
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch RDomain vrf1\n  PasswordAuthentication yes\n",
        );
        assert!(facts.password_login_accounts.is_empty());
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
            judge(&effective_config(&h), &login_accounts(&h)).1
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
        let (facts, f) = judge(&effective_config(&h), &login_accounts(&h));
        assert_eq!(facts.password_authentication, Some(true));
        let pw = f.iter().find(|f| f.id == "hardening.ssh-password-auth").unwrap();
        assert!(pw.evidence[0].contains("default"), "{:?}", pw.evidence);
        assert_eq!(facts.ports, vec![22]);
    }

    #[test]
    fn missing_config_is_info_and_missing_include_is_ignored() {
        let (_d, h) = host_with(&[]);
        let (facts, f) = judge(&effective_config(&h), &login_accounts(&h));
        assert!(!facts.configured);
        assert_eq!(ids(&f), vec![("hardening.ssh-not-configured", "sshd", Severity::Info)]);
        assert!(effective_config(&h).ports().is_empty());
        let (_d, h) = host_with(&[(
            "/etc/ssh/sshd_config",
            "Include /etc/ssh/nothere.conf sshd_config.d/*.conf\nPasswordAuthentication no\n",
        )]);
        let (_, f) = judge(&effective_config(&h), &login_accounts(&h));
        assert!(f.is_empty(), "{:?}", ids(&f));
    }

    #[test]
    fn unreadable_include_is_a_could_not_check() {
        // A symlink loop cannot be read even by root (ELOOP).
        let (d, h) = host_with(&[("/etc/ssh/sshd_config", "Include /etc/ssh/loop.conf\nPasswordAuthentication no\n")]);
        std::os::unix::fs::symlink("loop.conf", d.path().join("etc/ssh/loop.conf")).unwrap();
        let c = effective_config(&h);
        assert!(!c.password_authentication(), "the rest of the file is still read");
        let (_, f) = judge(&c, &login_accounts(&h));
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
