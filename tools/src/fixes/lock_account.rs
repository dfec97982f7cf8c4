//! `lock_account`: stop an account that outlived its owner (pattern 7) from
//! logging in, reversibly.
//!
//! `usermod --lock --expiredate 1 USER` locks the password and expires the
//! account, and an expired account is refused by PAM for every login method,
//! SSH keys included, so `authorized_keys` need not be touched. The undo puts
//! back exactly what was there: the previous expiry date, and the password
//! unlocked only if it was unlocked before. It refuses root and every uid-0
//! account, the person running the session, and the last usable
//! administrator: an account in the sudo/wheel/admin groups or given ALL in
//! sudoers that is neither locked nor expired.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::change::{Cmd, check_reason, first_line};
use crate::compared::Compared;
use crate::format::format_date;
use crate::host::Host;
use crate::tool::{Change, Ctx, Outcome, Plan, ToolError};
use crate::users::{PasswdEntry, parse_passwd};

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct LockAccount;

/// Input of `lock_account`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LockInput {
    /// The login name to lock (as in /etc/passwd).
    pub user: String,
    /// Why it is being locked (e.g. "contract ended 2026-10-31"), recorded with the change.
    pub reason: String,
}

/// Facts of `lock_account`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LockFacts {
    /// The account locked.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// Why.
    pub reason: String,
    /// The commands that ran.
    pub commands: Vec<String>,
    /// The commands that undo the change (for the audit log).
    pub undo: Vec<String>,
    /// The password is locked now.
    pub password_locked: bool,
    /// The account is expired now (no login of any kind).
    pub expired: bool,
    /// The expiry date it had before (`YYYY-MM-DD`), restored by the undo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_expiry: Option<String>,
    /// Administrators who can still log in.
    pub remaining_admins: Vec<String>,
}

/// One `/etc/shadow` entry, as far as locking cares (never the hash itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowState {
    /// The password field starts with `!` (locked by `usermod --lock`/`passwd -l`) .
    pub locked: bool,
    /// The password field holds a usable hash (not empty, `*`, `!`…).
    pub has_password: bool,
    /// A real password hash locked with `!` (`!$6$…`), as opposed to never having had one (`!`, `*`).
    pub locked_hash: bool,
    /// The account expiry, in days since 1970-01-01.
    pub expire_days: Option<i64>,
}

/// Parse `/etc/shadow` into name → state.
pub fn parse_shadow(text: &str) -> HashMap<String, ShadowState> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 8 {
                return None;
            }
            let pw = f[1];
            Some((
                f[0].to_string(),
                ShadowState {
                    locked: pw.starts_with('!'),
                    has_password: !pw.is_empty() && !pw.starts_with('!') && !pw.starts_with('*'),
                    locked_hash: pw.starts_with('!') && {
                        let h = pw.trim_start_matches('!');
                        !h.is_empty() && !h.starts_with('*')
                    },
                    expire_days: f[7].trim().parse().ok(),
                },
            ))
        })
        .collect()
}

/// An administrator: how they became one, and whether they can still log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Login name.
    pub name: String,
    /// Why they are an administrator (group, sudoers line).
    pub via: String,
    /// Neither locked nor expired, with a login shell and a password or SSH key.
    pub usable: bool,
}

/// Every administrator of the host: members of sudo/wheel/admin, and users or groups given
/// `ALL` in `/etc/sudoers` or `/etc/sudoers.d/*`.
pub fn admins(host: &Host, passwd: &[PasswdEntry], shadow: &HashMap<String, ShadowState>) -> Vec<Admin> {
    let groups = host.read_optional("/etc/group").ok().flatten().unwrap_or_default();
    let mut by_group: HashMap<String, (u32, Vec<String>)> = HashMap::new();
    for l in groups.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 {
            let members = f[3].split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect();
            by_group.insert(f[0].to_string(), (f[2].parse().unwrap_or(u32::MAX), members));
        }
    }
    let mut admin_groups: BTreeSet<String> = ["sudo", "wheel", "admin"].iter().map(|s| s.to_string()).collect();
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut texts: Vec<String> = host.read_optional("/etc/sudoers").ok().flatten().into_iter().collect();
    for f in host.read_dir("/etc/sudoers.d").unwrap_or_default() {
        if !f.contains('.') && !f.ends_with('~') {
            if let Ok(Some(t)) = host.read_optional(&format!("/etc/sudoers.d/{f}")) {
                texts.push(t);
            }
        }
    }
    for t in &texts {
        for l in t.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('@') || l.starts_with("Defaults") {
                continue;
            }
            let Some((who, rest)) = l.split_once(char::is_whitespace) else { continue };
            if who.ends_with("_Alias") || !rest.contains('=') {
                continue;
            }
            let grants_all =
                rest.rsplit(|c: char| c == ',' || c == ':' || c == ')' || c.is_whitespace()).find(|w| !w.is_empty())
                    == Some("ALL");
            if !grants_all {
                continue;
            }
            for w in who.split(',') {
                match w.strip_prefix('%') {
                    Some(g) => {
                        admin_groups.insert(g.to_string());
                    }
                    None => {
                        named.insert(w.to_string());
                    }
                }
            }
        }
    }
    let mut found: Vec<Admin> = Vec::new();
    let mut add = |name: &str, via: String| {
        if found.iter().any(|a| a.name == name) {
            return;
        }
        let Some(entry) = passwd.iter().find(|p| p.name == name) else { return };
        found.push(Admin { name: name.to_string(), via, usable: usable(host, entry, shadow.get(name)) });
    };
    for g in &admin_groups {
        if let Some((gid, members)) = by_group.get(g) {
            for m in members {
                add(m, format!("group {g}"));
            }
            for p in passwd.iter().filter(|p| p.gid == *gid) {
                add(&p.name, format!("primary group {g}"));
            }
        }
    }
    for n in &named {
        add(n, "ALL in sudoers".to_string());
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

fn today_days(host: &Host) -> i64 {
    host.now_unix().div_euclid(86_400)
}

/// Can this account still log in: not expired, a login shell, and a password or an SSH key?
fn usable(host: &Host, p: &PasswdEntry, s: Option<&ShadowState>) -> bool {
    let Some(s) = s else { return false };
    if s.expire_days.is_some_and(|d| d <= today_days(host)) || !p.can_login() {
        return false;
    }
    if s.has_password {
        return true;
    }
    // No usable password: a key-only account, unless its password was locked on purpose.
    let keys = format!("{}/.ssh/authorized_keys", p.home.trim_end_matches('/'));
    !s.locked_hash
        && host
            .read_optional(&keys)
            .ok()
            .flatten()
            .is_some_and(|t| t.lines().any(|l| !l.trim().is_empty() && !l.trim().starts_with('#')))
}

fn check_user(name: &str) -> Result<(), ToolError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if ok { Ok(()) } else { Err(ToolError::InvalidInput(format!("user: `{name}` is not a login name"))) }
}

/// What the plan was computed from, handed unchanged to the change that runs it.
#[derive(Debug, Clone)]
pub struct Prepared {
    entry: PasswdEntry,
    lock: Cmd,
    undo: Cmd,
    previous_expiry: Option<String>,
    remaining: Vec<String>,
}

async fn prepare(ctx: &Ctx, input: &LockInput) -> Result<Prepared, ToolError> {
    check_user(&input.user)?;
    check_reason(&input.reason)?;
    let host = &ctx.host;
    let passwd = parse_passwd(&host.read_to_string("/etc/passwd")?);
    let Some(entry) = passwd.iter().find(|p| p.name == input.user).cloned() else {
        return Err(ToolError::InvalidInput(format!(
            "user: there is no account named `{}` in /etc/passwd",
            input.user
        )));
    };
    if entry.name == "root" || entry.uid == 0 {
        return Err(ToolError::Refused(format!(
            "`{}` has uid 0: locking a root account is refused (remove the extra uid-0 account by hand if it should not exist)",
            entry.name
        )));
    }
    if ctx.session.user.as_deref() == Some(entry.name.as_str()) {
        return Err(ToolError::Refused(format!(
            "`{}` is the account running this session: locking it would lock you out",
            entry.name
        )));
    }
    let shadow_text = host.read_to_string("/etc/shadow").map_err(|e| {
        ToolError::Refused(format!("cannot read /etc/shadow ({e}): the other administrators cannot be checked"))
    })?;
    let shadow = parse_shadow(&shadow_text);
    let Some(state) = shadow.get(&entry.name).cloned() else {
        return Err(ToolError::Failed(format!("`{}` has no /etc/shadow entry", entry.name)));
    };
    let today = today_days(host);
    if state.locked && state.expire_days.is_some_and(|d| d <= today) {
        return Err(ToolError::Refused(format!("`{}` is already locked and expired: nothing to change", entry.name)));
    }
    let all = admins(host, &passwd, &shadow);
    let is_admin = all.iter().find(|a| a.name == entry.name);
    let remaining: Vec<String> =
        all.iter().filter(|a| a.usable && a.name != entry.name).map(|a| format!("{} ({})", a.name, a.via)).collect();
    if let Some(a) = is_admin {
        if a.usable && remaining.is_empty() {
            return Err(ToolError::Refused(format!(
                "`{}` is the last administrator who can still log in ({}): locking it would leave no one able \
                 to administer the host. Give someone else sudo first.",
                entry.name, a.via
            )));
        }
    }
    if !host.is_live() {
        return Err(ToolError::Refused(format!(
            "the audited root {} is not the live system: usermod cannot run there",
            host.root().display()
        )));
    }
    let previous_expiry = state
        .expire_days
        .and_then(|d| time::Date::from_julian_day(2_440_588 + i32::try_from(d).ok()?).ok())
        .map(format_date);
    let lock = Cmd::new("usermod", &["--lock", "--expiredate", "1", &entry.name]);
    let mut undo_args: Vec<&str> = Vec::new();
    if !state.locked {
        undo_args.push("--unlock");
    }
    undo_args.extend(["--expiredate", previous_expiry.as_deref().unwrap_or(""), &entry.name]);
    let undo = Cmd::new("usermod", &undo_args);
    Ok(Prepared { entry, lock, undo, previous_expiry, remaining })
}

fn render_plan(ctx: &Ctx, input: &LockInput, p: &Prepared) -> Plan {
    Plan::new("lock_account", format!("lock the account `{}` (uid {}): {}", p.entry.name, p.entry.uid, input.reason.trim()))
        .step(
            format!(
                "lock the password of `{}` and expire the account (expiry 1970-01-02), so neither passwords nor SSH keys log in",
                p.entry.name
            ),
            Some(p.lock.shown(ctx)),
            Some(p.undo.shown(ctx)),
        )
        .warn(format!(
            "Sessions and processes `{}` already has keep running: end them with `pkill -KILL -u {}` if needed.",
            p.entry.name, p.entry.name
        ))
        .warn(format!("Cron jobs of `{}` stop running while the account is expired.", p.entry.name))
}

#[async_trait]
impl Change for LockAccount {
    type Input = LockInput;
    type Output = LockFacts;
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "lock_account"
    }

    fn description(&self) -> &'static str {
        "Lock a local account so nobody can log in with it any more (password locked and account expired, \
         which also stops SSH key logins), reversibly: the undo restores the previous expiry and password \
         state. Changes the host: the administrator sees the exact command and its undo and must confirm. \
         Refuses root and any uid-0 account, the account running this session, and the last administrator \
         (sudo/wheel/admin or ALL in sudoers) who can still log in. Use it for an account that outlived its \
         owner, e.g. a contractor whose project ended, after audit_accounts flagged it."
    }

    async fn prepare(&self, ctx: &Ctx, input: &LockInput) -> Result<(Plan, Prepared), ToolError> {
        let p = prepare(ctx, input).await?;
        Ok((render_plan(ctx, input, &p), p))
    }

    async fn execute(
        &self,
        ctx: &Ctx,
        input: LockInput,
        p: Prepared,
        _proof: Compared,
    ) -> Result<Outcome<LockFacts>, ToolError> {
        let out = p.lock.run(ctx).await?;
        let after = ctx.host.read_to_string("/etc/shadow").ok().map(|t| parse_shadow(&t));
        let state = after.as_ref().and_then(|s| s.get(&p.entry.name));
        let locked = state.is_some_and(|s| s.locked);
        let expired = state.is_some_and(|s| s.expire_days == Some(1));
        if !out.success() || !locked || !expired {
            let what = if out.success() {
                format!("`{}` ran but /etc/shadow does not show the account locked and expired", p.lock.render())
            } else {
                format!("`{}` failed (exit {}): {}", p.lock.render(), out.status, first_line(&out))
            };
            let undone = match p.undo.run_ok(ctx).await {
                Ok(_) => format!("undone with `{}`; the account is as it was", p.undo.render()),
                Err(e) => format!("UNDO FAILED, run by hand: `{}` ({e})", p.undo.render()),
            };
            return Err(ToolError::Failed(format!("{what}; {undone}")));
        }
        Ok(Outcome::new(
            LockFacts {
                user: p.entry.name.clone(),
                uid: p.entry.uid,
                reason: input.reason.trim().to_string(),
                commands: vec![p.lock.shown(ctx)],
                undo: vec![p.undo.shown(ctx)],
                password_locked: locked,
                expired,
                previous_expiry: p.previous_expiry,
                remaining_admins: p.remaining,
            },
            Vec::new(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::fixture;

    /// A fixture root: `boss` (sudo), `ops` (%wheel via sudoers.d, expired), `dev` (plain),
    /// `keyadm` (ALL in sudoers, key-only).
    fn root(ops_expired: bool, keyadm_keys: bool) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, t: &str| {
            let real = d.path().join(p);
            std::fs::create_dir_all(real.parent().unwrap()).unwrap();
            std::fs::write(real, t).unwrap();
        };
        w(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nboss:x:1000:1000::/home/boss:/bin/bash\nops:x:1001:1001::/home/ops:/bin/bash\ndev:x:1002:1002::/home/dev:/bin/bash\nkeyadm:x:1003:1003::/home/keyadm:/bin/bash\n",
        );
        w("etc/group", "root:x:0:\nsudo:x:27:boss\nwheel:x:10:ops\nboss:x:1000:\n");
        let exp = if ops_expired { "20000" } else { "" };
        w(
            "etc/shadow",
            &format!(
                "root:*:20000:0:99999:7:::\ntoor:*:20000:0:99999:7:::\nboss:$6$salt$hash:20000:0:99999:7:::\nops:$6$salt$hash:20000:0:99999:7::{exp}:\ndev:$6$salt$hash:20000:0:99999:7:::\nkeyadm:!:20000:0:99999:7:::\n"
            ),
        );
        w(
            "etc/sudoers",
            "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\nkeyadm ALL=(ALL) NOPASSWD: ALL\n@includedir /etc/sudoers.d\n",
        );
        w("etc/sudoers.d/wheel", "%wheel ALL=(ALL) ALL\n");
        w("etc/sudoers.d/backup", "dev ALL=(root) /usr/bin/rsync\n");
        if keyadm_keys {
            w("home/keyadm/.ssh/authorized_keys", "ssh-ed25519 AAAAC3Nza keyadm@laptop\n");
        }
        d
    }

    fn ctx(d: &tempfile::TempDir) -> Ctx {
        Ctx::new(Host::at(d.path()).with_now(fixture("web1").now()))
    }

    fn input(user: &str) -> LockInput {
        LockInput { user: user.into(), reason: "contract ended".into() }
    }

    #[test]
    fn admins_come_from_groups_and_sudoers() {
        let d = root(true, false);
        let h = Host::at(d.path()).with_now(fixture("web1").now());
        let passwd = parse_passwd(&h.read_to_string("/etc/passwd").unwrap());
        let shadow = parse_shadow(&h.read_to_string("/etc/shadow").unwrap());
        let a = admins(&h, &passwd, &shadow);
        let names: Vec<(&str, bool)> = a.iter().map(|a| (a.name.as_str(), a.usable)).collect();
        assert_eq!(names, vec![("boss", true), ("keyadm", false), ("ops", false), ("root", false)], "{a:?}");
        let d = root(false, true);
        let h = Host::at(d.path()).with_now(fixture("web1").now());
        let shadow = parse_shadow(&h.read_to_string("/etc/shadow").unwrap());
        let a = admins(&h, &passwd, &shadow);
        assert!(a.iter().all(|a| a.usable || a.name == "root"), "{a:?}");
    }

    #[tokio::test]
    async fn the_last_administrator_is_not_locked() {
        // ops is expired and keyadm has no key: boss is the last one who can log in.
        let d = root(true, false);
        let e = LockAccount.prepare(&ctx(&d), &input("boss")).await.unwrap_err();
        assert!(matches!(e, ToolError::Refused(ref m) if m.contains("last administrator")), "{e}");
        // With ops usable again, boss may be locked (here refused only because the root is not live).
        let d = root(false, false);
        let e = LockAccount.prepare(&ctx(&d), &input("boss")).await.unwrap_err();
        assert!(matches!(e, ToolError::Refused(ref m) if m.contains("not the live system")), "{e}");
        // A key-only admin counts as one who can log in.
        let d = root(true, true);
        let e = LockAccount.prepare(&ctx(&d), &input("boss")).await.unwrap_err();
        assert!(matches!(e, ToolError::Refused(ref m) if m.contains("not the live system")), "{e}");
    }

    #[tokio::test]
    async fn root_uid0_self_and_unknown_users_are_refused() {
        let d = root(false, false);
        for u in ["root", "toor"] {
            let e = LockAccount.prepare(&ctx(&d), &input(u)).await.unwrap_err();
            assert!(matches!(e, ToolError::Refused(ref m) if m.contains("uid 0")), "{u}: {e}");
        }
        let mut c = ctx(&d);
        c.session.user = Some("dev".into());
        let e = LockAccount.prepare(&c, &input("dev")).await.unwrap_err();
        assert!(matches!(e, ToolError::Refused(ref m) if m.contains("running this session")), "{e}");
        let e = LockAccount.prepare(&ctx(&d), &input("ghost")).await.unwrap_err();
        assert!(matches!(e, ToolError::InvalidInput(ref m) if m.contains("no account named `ghost`")), "{e}");
        let e = LockAccount.prepare(&ctx(&d), &input("../etc")).await.unwrap_err();
        assert!(matches!(e, ToolError::InvalidInput(_)), "{e}");
        let e = crate::Registry::builtin()
            .call(&ctx(&d), "lock_account", serde_json::to_value(input("dev")).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, ToolError::Refused(_)), "off the live root nothing runs: {e}");
    }
}
