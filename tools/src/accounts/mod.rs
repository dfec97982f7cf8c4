//! `audit_accounts`: who can log in, who can become root, and whether anyone
//! still uses those accounts.
//!
//! Pattern 7 of `seven-mistakes.txt` is the admin account that outlived its
//! owner: a contractor in `sudo` with no expiry date, unused for months, with
//! a key still in `authorized_keys` and no second factor; or a forgotten
//! second uid-0 account. This tool joins the sources that answer it —
//! `passwd`, `shadow`, `group`, `sudoers` (+ includes), binary `wtmp` and
//! `lastlog`, `authorized_keys`, the sshd settings ([`crate::ssh`]) and the
//! PAM stack — and judges them locally: password hashes are reduced to
//! set/locked/empty on read and SSH keys to type, size, comment and
//! fingerprint; neither ever leaves this module.

mod keys;
mod nopasswd;
mod parse;
mod weakpw;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::format::{day_date, unix_date};
use crate::host::{Host, HostError};
use crate::ssh::{self, SshdConfig};
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};
use crate::users::{PasswdEntry, parse_passwd};
pub use keys::{KeyInfo, fingerprint, parse_key_line};
pub use parse::{Grantee, PwState, lastlog_record, parse_wtmp, utmp_record};

/// Groups whose members can become root (on Debian, RHEL and Ubuntu).
pub const ADMIN_GROUPS: &[&str] = &["sudo", "wheel", "admin"];

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct AuditAccounts;

/// Input of `audit_accounts`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountsInput {
    /// Only this account (login name); every account when absent.
    #[serde(default)]
    pub user: Option<String>,
}

/// One account that can log in, is privileged, or has uid 0.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AccountFact {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// How it can become root (`uid 0`, `group sudo`, `sudoers %ops (/etc/sudoers.d/ops:1)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<String>,
    /// The shell allows an interactive login.
    pub shell_login: bool,
    /// Last login date (YYYY-MM-DD), `never`, or `unknown` when no login records exist.
    pub last_login: String,
    /// Account expiry date (shadow field 8), absent = never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Password `set`, `locked`, `empty` or `unknown` (never the hash).
    pub password_state: PwState,
    /// Days since the password last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_age_days: Option<i64>,
    /// Number of authorized SSH keys.
    pub keys: usize,
    /// The password tried against the user name and the most common passwords
    /// (locally, against the shadow hash): `weak: …`, `not the user name or …`, or
    /// `not checked: why`. Never the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_check: Option<String>,
}

/// One authorized SSH key (never the key material).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct KeyFact {
    /// The account it logs in as.
    pub user: String,
    /// The authorized_keys file.
    pub file: String,
    /// Key type (`ssh-ed25519`, `ssh-rsa`…).
    #[serde(rename = "type")]
    pub key_type: String,
    /// RSA modulus size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    /// The key's comment.
    pub comment: String,
    /// `SHA256:` fingerprint, as `ssh-keygen -lf` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Option names (`from`, `command`, `restrict`…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// When the file was last modified (YYYY-MM-DD): the latest the key can have been added.
    pub file_modified: String,
    /// Days since then.
    pub age_days: i64,
}

/// Facts of `audit_accounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct AccountsFacts {
    /// Accounts that can log in, are privileged, or have uid 0.
    pub accounts: Vec<AccountFact>,
    /// System accounts without a login shell, not listed.
    pub other_accounts: usize,
    /// Authorized SSH keys of the listed accounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorized_keys: Vec<KeyFact>,
    /// What enforces a second factor for SSH logins, if anything.
    pub second_factor: String,
    /// Where last-login dates come from.
    pub login_records: String,
}

#[async_trait]
impl Tool for AuditAccounts {
    type Input = AccountsInput;
    type Output = AccountsFacts;

    fn name(&self) -> &'static str {
        "audit_accounts"
    }

    fn description(&self) -> &'static str {
        "Audit the host's user accounts: who can log in, who can become root (uid 0, sudo/wheel/admin \
         groups, sudoers rules granting ALL), when each last logged in (wtmp, lastlog), account expiry, \
         password state (set/locked/empty, never the hash) and age, authorized SSH keys (type, comment, \
         fingerprint, age) and whether admins need a second factor (sshd AuthenticationMethods, PAM). \
         Findings flag extra uid-0 accounts, empty passwords, passwords equal to the user name or among the \
         most common (tried locally against the shadow hash, never shown), passwordless sudo (NOPASSWD), one \
         SSH key authorized for several accounts, admins without expiry, unused for months or never used, \
         admins without 2FA, old passwords and weak keys. Use it for 'who has access', \
         'which admin accounts are stale' or to look at one user."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, input: AccountsInput) -> Result<Outcome<AccountsFacts>, ToolError> {
        let (mut facts, mut findings) = audit(ctx);
        if let Some(u) = &input.user {
            if !facts.accounts.iter().any(|a| &a.name == u) {
                return Err(ToolError::InvalidInput(format!(
                    "no login-capable, privileged or uid-0 account named `{u}` in /etc/passwd"
                )));
            }
            facts.accounts.retain(|a| &a.name == u);
            facts.authorized_keys.retain(|k| &k.user == u);
            findings.retain(|f| {
                f.id.ends_with(".check-failed") || f.subject == *u || f.subject.starts_with(&format!("{u} "))
            });
        }
        Ok(Outcome::new(facts, findings))
    }
}

/// Everything known about one account while judging it.
struct Acct<'a> {
    e: &'a PasswdEntry,
    pw: PwState,
    last_change: Option<i64>,
    expire: Option<i64>,
    shadow_known: bool,
    groups: Vec<String>,
    privileged: Vec<String>,
    last: LastLogin,
    keys: Vec<KeyFact>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LastLogin {
    /// Epoch seconds and where from.
    At(i64, String),
    /// lastlog exists and has no entry, wtmp none either.
    Never,
    /// Only wtmp, which starts at this time, has no login of the user.
    NotSince(i64),
    /// No records at all.
    Unknown,
}

fn could_not_check(what: &str, e: impl std::fmt::Display) -> Finding {
    Finding::could_not_check(Category::Accounts, "audit_accounts", what, e)
}

/// The password hash of each `/etc/shadow` account that has one (locked and empty ones left out),
/// by account name. A secret: it is only ever compared through a keyed digest (`vigil fleet`'s
/// cross-server reuse, where a hash copied between servers means one password on all of them),
/// never printed or stored.
pub fn password_hashes(host: &Host) -> Result<HashMap<String, String>, HostError> {
    host.read_to_string("/etc/shadow").map(|t| weakpw::shadow_hashes(&t))
}

/// Read everything and judge it. Never fails: what cannot be read becomes a finding.
pub fn audit(ctx: &Ctx) -> (AccountsFacts, Vec<Finding>) {
    let host = &ctx.host;
    let now = host.now_unix();
    let today = now.div_euclid(86_400);
    let mut findings = Vec::new();

    let passwd_text = match host.read_to_string("/etc/passwd") {
        Ok(t) => t,
        Err(e) if e.is_not_found() => {
            findings.push(
                Finding::new(
                    "accounts.no-passwd",
                    Severity::Info,
                    Category::Accounts,
                    "/etc/passwd",
                    "No /etc/passwd: accounts not audited",
                )
                .evidence(format!("{}/etc/passwd does not exist", host.root().display()))
                .fix("Point vigil at the root of a Linux system (--root DIR)."),
            );
            return (AccountsFacts::default(), findings);
        }
        Err(e) => {
            findings.push(could_not_check("/etc/passwd", e));
            return (AccountsFacts::default(), findings);
        }
    };
    let entries = parse_passwd(&passwd_text);
    let passwd_pw = parse::passwd_fields(&passwd_text);

    let mut shadow_hashes = HashMap::new();
    let shadow = match host.read_to_string("/etc/shadow") {
        Ok(t) => {
            shadow_hashes = weakpw::shadow_hashes(&t);
            Some(parse::parse_shadow(&t))
        }
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            findings.push(could_not_check("/etc/shadow", e));
            None
        }
    };
    let groups = match host.read_to_string("/etc/group") {
        Ok(t) => parse::parse_group(&t),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            findings.push(could_not_check("/etc/group", e));
            Vec::new()
        }
    };
    let sudoers = parse::read_sudoers(host);
    for (p, e) in &sudoers.unreadable {
        findings.push(could_not_check(p, e));
    }
    let sshd = ssh::effective_config(host);
    let pam_2fa = parse::pam_second_factor(host, "sshd");

    // Login records.
    let mut wtmp_logins: HashMap<String, (i64, String)> = HashMap::new();
    let mut wtmp_first: Option<i64> = None;
    let mut wtmp_count = 0usize;
    let mut wtmp_present = false;
    for path in ["/var/log/wtmp", "/var/log/wtmp.1"] {
        match host.read(path) {
            Ok(bytes) => {
                wtmp_present = true;
                let (logins, first) = parse::parse_wtmp(&bytes);
                wtmp_count += logins.len();
                if let Some(f) = first {
                    wtmp_first = Some(wtmp_first.map_or(f, |w| w.min(f)));
                }
                for l in logins {
                    let e = wtmp_logins.entry(l.user).or_insert((l.time, l.host.clone()));
                    if l.time > e.0 {
                        *e = (l.time, l.host);
                    }
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => findings.push(could_not_check(path, e)),
        }
    }
    let lastlog = match parse::Lastlog::open(host) {
        Ok(l) => l,
        Err(e) => {
            findings.push(could_not_check("/var/log/lastlog", e));
            None
        }
    };
    let login_records = match (wtmp_present, &lastlog) {
        (false, None) => "none (no /var/log/wtmp or /var/log/lastlog)".to_string(),
        (w, l) => {
            let mut parts = Vec::new();
            if w {
                parts.push(match wtmp_first {
                    Some(f) => format!("wtmp since {}, {wtmp_count} login(s)", unix_date(f)),
                    None => "wtmp (empty)".to_string(),
                });
            }
            if l.is_some() {
                parts.push("lastlog".to_string());
            }
            parts.join(", ")
        }
    };

    // Memberships and privileges.
    let member_of = parse::memberships(&groups, &entries.iter().map(|e| (e.name.clone(), e.gid)).collect::<Vec<_>>());
    let gid_name: HashMap<u32, &str> = groups.iter().map(|g| (g.gid, g.name.as_str())).collect();

    let mut key_cache: HashMap<String, Vec<KeyFact>> = HashMap::new();
    let mut unreadable_keys: Vec<String> = Vec::new();
    let mut accts: Vec<Acct> = Vec::new();
    let mut other = 0usize;
    for e in &entries {
        let my_groups = member_of.get(&e.name).cloned().unwrap_or_default();
        let mut privileged = Vec::new();
        if e.uid == 0 {
            privileged.push("uid 0".to_string());
        }
        for g in my_groups.iter().filter(|g| ADMIN_GROUPS.contains(&g.as_str())) {
            privileged.push(format!("group {g}"));
        }
        for grant in &sudoers.grants {
            let via = match &grant.who {
                Grantee::User(u) if *u == e.name => format!("sudoers {u}"),
                Grantee::Uid(u) if *u == e.uid => format!("sudoers #{u}"),
                Grantee::Group(g) if my_groups.contains(g) => format!("sudoers %{g}"),
                Grantee::Gid(g) if gid_name.get(g).is_some_and(|n| my_groups.iter().any(|m| m == n)) => {
                    format!("sudoers %#{g}")
                }
                Grantee::All => "sudoers ALL users".to_string(),
                _ => continue,
            };
            let nopw = if grant.nopasswd { ", NOPASSWD" } else { "" };
            privileged.push(format!("{via} ({}{nopw})", grant.at));
        }
        privileged.dedup();
        if !e.can_login() && e.uid != 0 && privileged.is_empty() {
            other += 1;
            continue;
        }
        let sh = shadow.as_ref().and_then(|s| s.get(&e.name));
        let pw = match passwd_pw.get(&e.name).copied().unwrap_or(PwState::Unknown) {
            PwState::Unknown => sh.map(|s| s.password).unwrap_or(PwState::Unknown),
            other => other,
        };
        let keys = if e.can_login() {
            authorized_keys(host, &sshd, e, today, &mut key_cache, &mut unreadable_keys)
        } else {
            Vec::new()
        };
        let wt = wtmp_logins.get(&e.name).cloned();
        // lastlog is indexed by uid: when several names share a uid (toor and
        // root) it cannot say which of them logged in.
        let uid_shared = entries.iter().filter(|x| x.uid == e.uid).count() > 1;
        let ll = lastlog.as_ref().filter(|_| !uid_shared).and_then(|l| l.get(e.uid));
        let last = match (wt, ll) {
            (Some(a), Some(b)) => {
                let (t, h) = if a.0 >= b.0 { a } else { b };
                LastLogin::At(t, h)
            }
            (Some((t, h)), None) | (None, Some((t, h))) => LastLogin::At(t, h),
            (None, None) if lastlog.is_some() && !uid_shared => LastLogin::Never,
            (None, None) => match wtmp_first {
                Some(f) => LastLogin::NotSince(f),
                None => LastLogin::Unknown,
            },
        };
        accts.push(Acct {
            e,
            pw,
            last_change: sh.and_then(|s| s.last_change),
            expire: sh.and_then(|s| s.expire),
            shadow_known: sh.is_some(),
            groups: my_groups,
            privileged,
            last,
            keys,
        });
    }
    if !unreadable_keys.is_empty() {
        findings.push(could_not_check("authorized_keys files", unreadable_keys.join("; ")));
    }

    let weak = guess_passwords(&accts, today, &shadow_hashes);
    drop(shadow_hashes);
    findings.extend(weak_password_findings(&accts, &weak, &sshd));
    findings.extend(nopasswd::findings(
        &sudoers,
        &accts.iter().map(|a| (a.e.name.as_str(), a.privileged.as_slice())).collect::<Vec<_>>(),
    ));
    let privileged: Vec<&str> = accts.iter().filter(|a| !a.privileged.is_empty()).map(|a| a.e.name.as_str()).collect();
    findings.extend(keys::shared_keys(&accts.iter().flat_map(|a| a.keys.iter()).collect::<Vec<_>>(), &privileged));

    let cfg = &ctx.config.review;
    let unused_days = i64::from(cfg.unused_days);
    let max_pw_age = i64::from(cfg.password_max_age_days);
    let mut any_admin = false;
    for a in &accts {
        judge_account(a, today, unused_days, max_pw_age, &sshd, pam_2fa.as_deref(), &mut findings, &mut any_admin);
    }
    if any_admin && !wtmp_present && lastlog.is_none() {
        findings.push(
            Finding::new(
                "accounts.no-login-records",
                Severity::Info,
                Category::Accounts,
                "login records",
                "No wtmp or lastlog: cannot tell when admin accounts were last used",
            )
            .evidence("neither /var/log/wtmp nor /var/log/lastlog exists")
            .fix("Keep login records (the `login` package's lastlog, or wtmpdb/lastlog2 on newer systems) so unused accounts can be found."),
        );
    }

    let second_factor = describe_second_factor(&sshd, pam_2fa.as_deref());
    let mut facts = AccountsFacts { other_accounts: other, second_factor, login_records, ..Default::default() };
    for a in accts {
        facts.accounts.push(AccountFact {
            name: a.e.name.clone(),
            uid: a.e.uid,
            privileged: (!a.privileged.is_empty()).then(|| a.privileged.join("; ")),
            shell_login: a.e.can_login(),
            last_login: match &a.last {
                LastLogin::At(t, _) => unix_date(*t),
                LastLogin::Never => "never".into(),
                LastLogin::NotSince(f) => format!("not since {}", unix_date(*f)),
                LastLogin::Unknown => "unknown".into(),
            },
            expires: a.expire.map(day_date),
            password_state: a.pw,
            password_age_days: a.last_change.filter(|d| *d > 0).map(|d| today - d),
            keys: a.keys.len(),
            password_check: weak.get(&a.e.name).map(weakpw::Verdict::describe),
        });
        facts.authorized_keys.extend(a.keys);
    }
    facts.accounts.sort_by_key(|a| (a.uid != 0, a.uid));
    (facts, findings)
}

/// Try the shadow hash of every account that can log in with a password
/// against the guesses in [`weakpw`]; privileged accounts go first so the
/// budget is spent where a hit matters most.
fn guess_passwords(accts: &[Acct], today: i64, hashes: &HashMap<String, String>) -> HashMap<String, weakpw::Verdict> {
    let mut users: Vec<&Acct> = accts
        .iter()
        .filter(|a| a.e.can_login() && a.pw == PwState::Set && a.expire.is_none_or(|d| d > today))
        .collect();
    users.sort_by_key(|a| (a.privileged.is_empty(), a.e.uid));
    weakpw::check(&users.iter().map(|a| a.e.name.as_str()).collect::<Vec<_>>(), hashes, weakpw::BUDGET)
}

fn weak_password_findings(accts: &[Acct], weak: &HashMap<String, weakpw::Verdict>, sshd: &SshdConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut unchecked: Vec<String> = accts
        .iter()
        .filter_map(|a| match weak.get(&a.e.name) {
            Some(weakpw::Verdict::NotChecked(why)) => Some(format!("{}: {why}", a.e.name)),
            _ => None,
        })
        .collect();
    if !unchecked.is_empty() {
        let n = unchecked.len();
        unchecked.truncate(5);
        out.push(
            Finding::new(
                "credentials.password-not-checked",
                Severity::Info,
                Category::Credentials,
                "password guessing",
                format!("{n} account password(s) not tried against the common-password list"),
            )
            .evidence(unchecked.join("; "))
            .fix("Nothing to fix: these passwords were not judged. Make sure each is long and random (`passwd USER`), or lock accounts that log in with keys only (`passwd -l USER`)."),
        );
    }
    for a in accts {
        let name = &a.e.name;
        let what = match weak.get(name) {
            Some(weakpw::Verdict::EqualsName) => "equals the user name".to_string(),
            Some(weakpw::Verdict::Common) => format!("is one of the {} most common passwords", weakpw::COMMON.len()),
            _ => continue,
        };
        let over_ssh = sshd.is_present() && sshd.password_authentication();
        let sev = if !a.privileged.is_empty() || over_ssh { Severity::Critical } else { Severity::High };
        let reach = if over_ssh {
            "sshd accepts passwords (PasswordAuthentication yes), so anyone on the network can try it"
        } else {
            "usable locally, with su, and by any service that logs in through PAM"
        };
        let mut f = Finding::new(
            "credentials.weak-password",
            sev,
            Category::Credentials,
            name.clone(),
            format!("{name}'s password {what}"),
        )
        .evidence(format!(
            "{name} (uid {}, shell {}): its /etc/shadow hash was tried locally and the password {what} (not shown)",
            a.e.uid, a.e.shell
        ))
        .evidence(reach.to_string());
        if !a.privileged.is_empty() {
            f = f.evidence(format!("privileged via {}", a.privileged.join("; ")));
        }
        out.push(f.fix(format!(
            "Lock it now (`passwd -l {name}`), then set a long random password (`passwd {name}`) if it needs one \
             — or keep it locked if {name} logs in with SSH keys; look for logins you do not recognise (`last {name}`)."
        )));
    }
    out
}

/// Read the account's authorized_keys files (per sshd's `AuthorizedKeysFile`).
fn authorized_keys(
    host: &Host,
    sshd: &SshdConfig,
    e: &PasswdEntry,
    today: i64,
    cache: &mut HashMap<String, Vec<KeyFact>>,
    unreadable: &mut Vec<String>,
) -> Vec<KeyFact> {
    let mut out = Vec::new();
    for pattern in sshd.authorized_keys_files() {
        let p = pattern
            .replace("%%", "\u{0}")
            .replace("%h", &e.home)
            .replace("%u", &e.name)
            .replace("%U", &e.uid.to_string());
        let p = p.replace('\u{0}', "%");
        let path = if p.starts_with('/') { p } else { format!("{}/{p}", e.home.trim_end_matches('/')) };
        if !path.starts_with('/') {
            continue;
        }
        let keys = if let Some(k) = cache.get(&path) {
            k.clone()
        } else {
            let text = match host.read_to_string(&path) {
                Ok(t) => t,
                Err(err) if err.is_not_found() => continue,
                Err(err) => {
                    unreadable.push(err.to_string());
                    continue;
                }
            };
            let modified = host
                .metadata(&path)
                .ok()
                .and_then(|m| m.modified().ok())
                .map(|t| crate::host::unix_secs(t).div_euclid(86_400))
                .unwrap_or(today);
            let keys: Vec<KeyFact> = text
                .lines()
                .filter_map(parse_key_line)
                .map(|k| KeyFact {
                    user: String::new(),
                    file: path.clone(),
                    key_type: k.key_type,
                    bits: k.bits,
                    comment: k.comment,
                    fingerprint: k.fingerprint,
                    options: k.options,
                    file_modified: day_date(modified),
                    age_days: (today - modified).max(0),
                })
                .collect();
            cache.insert(path.clone(), keys.clone());
            keys
        };
        out.extend(keys.into_iter().map(|mut k| {
            k.user = e.name.clone();
            k
        }));
    }
    out
}

/// A login chain (`publickey,keyboard-interactive`) is two-factor when it has
/// two different methods, or is keyboard-interactive through a PAM stack with
/// a second-factor module.
fn chain_is_2fa(chain: &[&str], pam_2fa: bool) -> bool {
    let mut kinds: Vec<&str> = chain.iter().map(|m| m.split(':').next().unwrap_or(m)).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds.len() >= 2 || (pam_2fa && kinds == ["keyboard-interactive"])
}

/// The login chains sshd accepts under `s` (one connection's settings): its
/// `AuthenticationMethods`, else each enabled method alone.
fn chains_for(sshd: &SshdConfig, s: &ssh::Settings) -> (Vec<Vec<String>>, String) {
    match s.setting("AuthenticationMethods").filter(|v| !v.value.trim().eq_ignore_ascii_case("any")) {
        Some(set) => {
            let block = set
                .block
                .and_then(|b| sshd.matches.get(b))
                .map(|m| format!("Match {} ({})", m.criteria, m.at))
                .unwrap_or_else(|| set.at());
            (
                set.value.split_whitespace().map(|c| c.split(',').map(str::to_string).collect()).collect(),
                format!("AuthenticationMethods {} ({block})", set.value),
            )
        }
        None => {
            let mut chains = Vec::new();
            if s.flag("PubkeyAuthentication", true) {
                chains.push(vec!["publickey".to_string()]);
            }
            if s.password_authentication() {
                chains.push(vec!["password".to_string()]);
            }
            if s.flag("KbdInteractiveAuthentication", true) {
                chains.push(vec!["keyboard-interactive".to_string()]);
            }
            let names: Vec<String> = chains.iter().map(|c| c.join(",")).collect();
            (chains, format!("AuthenticationMethods not set: any one of {} is enough", names.join(", ")))
        }
    }
}

/// Whether every login of `user` needs two factors, judged per connection as
/// sshd applies its `Match` blocks, at the worst connection (the one that
/// does not, if any).
fn has_2fa(sshd: &SshdConfig, user: &str, groups: &[String], pam_2fa: bool) -> (bool, String) {
    let account = ssh::Account { name: user.to_string(), uid: u32::MAX, groups: Some(groups.to_vec()) };
    let mut verdict = None;
    for conn in ssh::connections(sshd, &account) {
        let (chains, how) = chains_for(sshd, &sshd.for_connection(&conn));
        let ok = !chains.is_empty()
            && chains.iter().all(|c| chain_is_2fa(&c.iter().map(String::as_str).collect::<Vec<_>>(), pam_2fa));
        if !ok {
            let from = if conn.addr == ssh::PUBLIC_ADDRESS { String::new() } else { format!(" (from {})", conn.addr) };
            return (false, format!("{how}{from}"));
        }
        verdict.get_or_insert((ok, how));
    }
    verdict.unwrap_or((false, "no connection can log in".into()))
}

fn describe_second_factor(sshd: &SshdConfig, pam: Option<&str>) -> String {
    if !sshd.is_present() {
        return "no OpenSSH server configured".into();
    }
    let (ok, how) = has_2fa(sshd, "", &[], pam.is_some());
    let pam = match pam {
        Some(m) => format!("PAM sshd: {m}"),
        None => "PAM sshd: no google-authenticator/oath/u2f module".into(),
    };
    let verdict = if ok { "required for every SSH login" } else { "not required for every SSH login" };
    let per_user = if sshd.matches.iter().any(|m| m.get("AuthenticationMethods").is_some()) {
        "; some Match blocks set their own AuthenticationMethods"
    } else {
        ""
    };
    format!("{verdict}: {how}; {pam}{per_user}")
}

fn fmt_last(l: &LastLogin, today: i64) -> String {
    match l {
        LastLogin::At(t, h) => {
            let from = if h.is_empty() { String::new() } else { format!(" from {h}") };
            format!("last login {}{from} ({} days ago)", unix_date(*t), today - t.div_euclid(86_400))
        }
        LastLogin::Never => "never logged in (no wtmp or lastlog entry)".into(),
        LastLogin::NotSince(f) => format!("no login recorded since wtmp begins on {}", unix_date(*f)),
        LastLogin::Unknown => "last login unknown (no login records)".into(),
    }
}

fn key_summary(keys: &[KeyFact]) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    let list: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "{} \"{}\" {} in {} (modified {})",
                k.key_type,
                k.comment,
                k.fingerprint.as_deref().unwrap_or("(undecodable)"),
                k.file,
                k.file_modified
            )
        })
        .collect();
    Some(format!("{} authorized SSH key(s): {}", keys.len(), list.join("; ")))
}

#[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename the arguments")]
fn judge_account(
    a: &Acct,
    today: i64,
    unused_days: i64,
    max_pw_age: i64,
    sshd: &SshdConfig,
    pam_2fa: Option<&str>,
    out: &mut Vec<Finding>,
    any_admin: &mut bool,
) {
    let name = &a.e.name;
    let expired = a.expire.is_some_and(|d| d <= today);
    let login = a.e.can_login() && !expired;
    let via = a.privileged.join("; ");
    let groups = if a.groups.is_empty() { "none".to_string() } else { a.groups.join(", ") };
    let pw_changed = match a.last_change {
        Some(d) if d > 0 => format!("password last changed {} ({} days ago)", day_date(d), today - d),
        Some(_) => "password must be changed at next login".into(),
        None => "password change date unknown".into(),
    };

    if a.e.uid == 0 && name != "root" {
        let mut f = Finding::new(
            "accounts.extra-uid0",
            Severity::Critical,
            Category::Accounts,
            name.clone(),
            format!("{name} has uid 0: a second root account"),
        )
        .evidence(format!("{name} has uid 0 (gid {}, home {}, shell {}) in /etc/passwd", a.e.gid, a.e.home, a.e.shell))
        .evidence(format!("password {}; {pw_changed}; {}", pw_word(a.pw), fmt_last(&a.last, today)));
        if let Some(k) = key_summary(&a.keys) {
            f = f.evidence(k);
        }
        out.push(f.fix(format!(
            "Find out who created {name} and why. Lock it now (`usermod -L -e 1 -s /usr/sbin/nologin {name}`), \
             then delete its lines with `vipw` and `vipw -s` (userdel refuses while uid-0 processes run); \
             give anyone who needs root a named account in the sudo group."
        )));
    }

    if login && a.pw == PwState::Empty {
        let ssh_too = if sshd.flag("PermitEmptyPasswords", false) {
            " — and sshd's PermitEmptyPasswords yes lets it in over SSH"
        } else {
            " (locally, via su, and by any service using PAM)"
        };
        out.push(
            Finding::new(
                "credentials.empty-password",
                Severity::Critical,
                Category::Credentials,
                name.clone(),
                format!("{name} can log in with an empty password"),
            )
            .evidence(format!(
                "{name} (uid {}, shell {}): the password field is empty, so no password is asked{ssh_too}",
                a.e.uid, a.e.shell
            ))
            .evidence(format!("groups: {groups}; {}", fmt_last(&a.last, today)))
            .fix(format!("Lock it now (`passwd -l {name}`), then set a password (`passwd {name}`) only if the account is needed; otherwise `usermod -s /usr/sbin/nologin {name}`.")),
        );
    }

    if login && a.pw == PwState::Set {
        if let Some(d) = a.last_change.filter(|d| *d > 0) {
            let age = today - d;
            if age >= max_pw_age {
                let sev = if a.privileged.is_empty() { Severity::Low } else { Severity::Medium };
                out.push(
                    Finding::new(
                        "credentials.password-old",
                        sev,
                        Category::Credentials,
                        name.clone(),
                        format!("{name}'s password has not changed for {age} days"),
                    )
                    .evidence(format!("{name}: password last changed {} (shadow field 3), {age} days ago; limit {max_pw_age} days", day_date(d)))
                    .evidence(if via.is_empty() { format!("groups: {groups}") } else { format!("privileged via {via}") })
                    .fix(if name == "root" {
                        "Change it (`passwd root`) — or, with a named sudo admin in place, lock it (`passwd -l root`) so root is reached only through sudo.".to_string()
                    } else {
                        format!("Change it (`passwd {name}`), or lock it (`passwd -l {name}`) if the account only uses SSH keys.")
                    }),
                );
            }
        }
    }

    for k in &a.keys {
        let weak = k.key_type == "ssh-dss" || (k.key_type == "ssh-rsa" && k.bits.is_some_and(|b| b < 2048));
        if weak && login {
            let size = k.bits.map(|b| format!(" {b}-bit")).unwrap_or_default();
            out.push(
                Finding::new(
                    "accounts.weak-ssh-key",
                    Severity::Low,
                    Category::Accounts,
                    format!("{name} {}", k.fingerprint.as_deref().unwrap_or(&k.comment)),
                    format!("{name} accepts a weak{size} {} SSH key", k.key_type),
                )
                .evidence(format!("{} \"{}\" in {} (modified {})", k.key_type, k.comment, k.file, k.file_modified))
                .fix(format!(
                    "Replace it with an ed25519 key (`ssh-keygen -t ed25519`) and remove this line from {}.",
                    k.file
                )),
            );
        }
    }

    // Admin checks: privileged accounts other than uid 0 that can still log in.
    let usable = !(a.shadow_known && a.pw == PwState::Locked && a.keys.is_empty());
    if a.privileged.is_empty() || a.e.uid == 0 || !login || !usable {
        return;
    }
    *any_admin = true;
    let who = format!("{name} (uid {}): privileged via {via}", a.e.uid);
    let last = fmt_last(&a.last, today);
    let keys = key_summary(&a.keys);
    // Name the admin groups the evidence found (`group sudo`), and the sudoers grant if that is the way in.
    let groups: Vec<&str> = a.privileged.iter().filter_map(|p| p.strip_prefix("group ")).collect();
    let ungroup = match groups.as_slice() {
        [] => "remove its sudoers grant (`visudo`)".to_string(),
        gs => {
            let cmds: Vec<String> = gs.iter().map(|g| format!("`gpasswd -d {name} {g}`")).collect();
            format!(
                "remove it from {} ({})",
                if gs.len() == 1 { "the admin group" } else { "the admin groups" },
                cmds.join(", ")
            )
        }
    };
    let lock = format!(
        "If {name} no longer needs access, lock it now (`usermod -L -e 1 {name}`), {ungroup} and its keys \
         (`{}/.ssh/authorized_keys`); delete it later with `userdel -r {name}`.",
        a.e.home.trim_end_matches('/')
    );

    if a.shadow_known && a.expire.is_none() {
        let until = day_date(today + unused_days);
        let mut f = Finding::new(
            "accounts.admin-no-expiry",
            Severity::Medium,
            Category::Accounts,
            name.clone(),
            format!("Admin account {name} never expires"),
        )
        .evidence(who.clone())
        .evidence(format!("account expiry (shadow field 8): none; {last}"));
        if let Some(k) = &keys {
            f = f.evidence(k.clone());
        }
        out.push(f.fix(format!("Give the access an end date and renew it at each review: `chage -E {until} {name}`.")));
    }

    let unused_since = match &a.last {
        LastLogin::At(t, _) => Some(*t),
        LastLogin::NotSince(f) => Some(*f),
        _ => None,
    };
    if let Some(t) = unused_since {
        let days = today - t.div_euclid(86_400);
        if days >= unused_days {
            let mut f = Finding::new(
                "accounts.admin-unused",
                Severity::High,
                Category::Accounts,
                name.clone(),
                format!("Admin account {name} unused for {days} days"),
            )
            .evidence(who.clone())
            .evidence(format!("{last}; limit {unused_days} days"))
            .evidence(match a.expire {
                Some(d) => format!("account expires {}", day_date(d)),
                None => "account expiry: none".into(),
            });
            if let Some(k) = &keys {
                f = f.evidence(k.clone());
            }
            out.push(f.fix(lock.clone()));
        }
    }
    if a.last == LastLogin::Never {
        let recent = a.last_change.is_some_and(|d| d > 0 && today - d < unused_days);
        let mut f = Finding::new(
            "accounts.admin-never-used",
            if recent { Severity::Low } else { Severity::Medium },
            Category::Accounts,
            name.clone(),
            format!("Admin account {name} has never logged in"),
        )
        .evidence(who.clone())
        .evidence(format!("{last}; {pw_changed}"));
        if let Some(k) = &keys {
            f = f.evidence(k.clone());
        }
        out.push(f.fix(format!("Confirm someone still needs {name}. {lock}")));
    }

    if sshd.is_present() {
        let (ok, how) = has_2fa(sshd, name, &a.groups, pam_2fa.is_some());
        if !ok {
            let pam = match pam_2fa {
                Some(m) => format!("PAM sshd stack has {m}, but the login methods above do not all go through it"),
                None => "PAM sshd stack (/etc/pam.d/sshd and its includes): no pam_google_authenticator, pam_oath or pam_u2f".into(),
            };
            out.push(
                Finding::new(
                    "accounts.admin-no-2fa",
                    Severity::Medium,
                    Category::Accounts,
                    name.clone(),
                    format!("Admin account {name} can log in over SSH with a single factor"),
                )
                .evidence(who.clone())
                .evidence(format!("sshd: {how}"))
                .evidence(pam)
                .fix(format!(
                    "Require a second factor for admins: install libpam-google-authenticator, enrol {name} \
                     (`google-authenticator` as {name}), add `auth required pam_google_authenticator.so` to \
                     /etc/pam.d/sshd, set `KbdInteractiveAuthentication yes` and \
                     `AuthenticationMethods publickey,keyboard-interactive` (globally or in `Match Group sudo`) \
                     in /etc/ssh/sshd_config, check with `sshd -t`, reload, and test from a second session."
                )),
            );
        }
    }
}

fn pw_word(p: PwState) -> &'static str {
    match p {
        PwState::Set => "set",
        PwState::Locked => "locked",
        PwState::Empty => "EMPTY",
        PwState::Unknown => "unknown",
    }
}

/// Privileged login names, for other modules (e.g. the review's "new
/// privileged accounts" change list).
pub fn privileged_accounts(ctx: &Ctx) -> BTreeMap<String, String> {
    let (facts, _) = audit(ctx);
    facts.accounts.into_iter().filter_map(|a| a.privileged.map(|p| (a.name, p))).collect()
}

#[cfg(test)]
mod tests;
