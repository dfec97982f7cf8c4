//! Tests of `audit_accounts` on the fixture hosts.
//!
//! The binary login records `fixtures/hosts/{web1,clean}/var/log/{wtmp,lastlog}`
//! are produced by the generators below; after changing one, rewrite the files with
//! `cargo test -p vigil-tools accounts::tests::regenerate_login_fixtures -- --ignored`.
//! `login_fixtures_match_their_generator` keeps them in step.

use super::*;
use crate::config::Config;
use crate::testutil::{fixture, fixture_ctx, fixture_path, host_with};

const BOOT_TIME: i32 = 2;
const DEAD_PROCESS: i32 = 8;

fn web1_wtmp() -> Vec<u8> {
    [
        utmp_record(BOOT_TIME, 0, "~", "reboot", "6.1.0-28-amd64", 1_767_340_800), // 2026-01-02
        utmp_record(parse::USER_PROCESS, 2101, "pts/0", "contractor-jane", "203.0.113.50", 1_774_628_400), // 2026-03-27
        utmp_record(DEAD_PROCESS, 2101, "pts/0", "", "", 1_774_632_000),
        utmp_record(parse::USER_PROCESS, 3200, "pts/1", "root", "192.0.2.10", 1_790_848_800), // 2026-10-01
        utmp_record(parse::USER_PROCESS, 4100, "pts/0", "alice", "198.51.100.7", 1_793_521_800), // 2026-11-01
        utmp_record(parse::USER_PROCESS, 4500, "pts/0", "alice", "198.51.100.7", 1_795_597_920), // 2026-11-25
    ]
    .concat()
}

fn clean_wtmp() -> Vec<u8> {
    [
        utmp_record(BOOT_TIME, 0, "~", "reboot", "6.1.0-28-amd64", 1_793_602_800), // 2026-11-02
        utmp_record(parse::USER_PROCESS, 900, "pts/0", "sam", "198.51.100.20", 1_795_183_500), // 2026-11-20
    ]
    .concat()
}

/// A lastlog file with records for these `(uid, time, line, host)`; other uids zero.
fn lastlog_file(entries: &[(u32, i32, &str, &str)]) -> Vec<u8> {
    let max = entries.iter().map(|e| e.0).max().unwrap_or(0) as usize;
    let mut out = vec![0u8; (max + 1) * parse::LASTLOG_SIZE];
    for (uid, t, line, host) in entries {
        let off = *uid as usize * parse::LASTLOG_SIZE;
        out[off..off + parse::LASTLOG_SIZE].copy_from_slice(&lastlog_record(*t, line, host));
    }
    out
}

fn web1_lastlog() -> Vec<u8> {
    lastlog_file(&[
        (0, 1_790_848_800, "pts/1", "192.0.2.10"),
        (1000, 1_795_597_920, "pts/0", "198.51.100.7"),
        (1001, 1_774_628_400, "pts/0", "203.0.113.50"),
    ])
}

fn clean_lastlog() -> Vec<u8> {
    lastlog_file(&[(1000, 1_795_183_500, "pts/0", "198.51.100.20")])
}

fn login_fixtures() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("web1", "var/log/wtmp", web1_wtmp()),
        ("web1", "var/log/lastlog", web1_lastlog()),
        ("clean", "var/log/wtmp", clean_wtmp()),
        ("clean", "var/log/lastlog", clean_lastlog()),
    ]
}

#[test]
#[ignore = "writes the fixture files; run by hand after changing a generator"]
fn regenerate_login_fixtures() {
    for (host, path, bytes) in login_fixtures() {
        std::fs::write(fixture_path(host).join(path), bytes).unwrap();
    }
}

#[test]
fn login_fixtures_match_their_generator() {
    for (host, path, bytes) in login_fixtures() {
        let on_disk = std::fs::read(fixture_path(host).join(path)).unwrap();
        assert!(on_disk == bytes, "{host}/{path} is stale: run the ignored regenerate_login_fixtures test");
    }
}

fn ids(f: &[Finding]) -> Vec<(&str, &str, Severity)> {
    f.iter().map(|f| (f.id.as_str(), f.subject.as_str(), f.severity)).collect()
}

fn find<'a>(f: &'a [Finding], id: &str, subject: &str) -> Option<&'a Finding> {
    f.iter().find(|f| f.id == id && f.subject == subject)
}

#[tokio::test]
async fn web1_plants_are_caught() {
    let out = AuditAccounts.run(&fixture_ctx("web1"), AccountsInput::default()).await.unwrap();
    let f = &out.findings;
    let got = ids(f);
    for want in [
        ("accounts.extra-uid0", "toor", Severity::Critical),
        ("credentials.empty-password", "guest", Severity::Critical),
        ("accounts.admin-unused", "contractor-jane", Severity::High),
        ("accounts.admin-no-expiry", "contractor-jane", Severity::Medium),
        ("accounts.admin-no-2fa", "contractor-jane", Severity::Medium),
        ("accounts.admin-never-used", "mike", Severity::Medium),
        ("accounts.admin-no-2fa", "mike", Severity::Medium),
        ("accounts.admin-no-expiry", "alice", Severity::Medium),
        ("credentials.password-old", "root", Severity::Medium),
    ] {
        assert!(got.contains(&want), "missing {want:?} in {got:?}");
    }

    // The contractor: names the user, the group, the dates and the key.
    let jane = find(f, "accounts.admin-unused", "contractor-jane").unwrap();
    let ev = jane.evidence.join("\n");
    assert!(ev.contains("group sudo"), "{ev}");
    assert!(ev.contains("2026-03-27") && ev.contains("203.0.113.50") && ev.contains("245 days"), "{ev}");
    assert!(ev.contains("jane@freelance-laptop") && ev.contains("SHA256:0FAemopkqJDWjt5lzgyxIGFCeMFWmkSsQUlUkDNjGVo"));
    assert!(jane.remediation.contains("usermod -L -e 1 contractor-jane"), "{}", jane.remediation);

    // Privilege through a sudoers.d group rule, and an expiry date that is set.
    let mike = find(f, "accounts.admin-never-used", "mike").unwrap();
    assert!(mike.evidence[0].contains("sudoers %ops (/etc/sudoers.d/ops:2, NOPASSWD)"), "{:?}", mike.evidence);
    assert!(find(f, "accounts.admin-no-expiry", "mike").is_none());

    let root = find(f, "credentials.password-old", "root").unwrap();
    assert!(root.evidence[0].contains("2023-02-14"), "{:?}", root.evidence);

    // Alice logged in two days ago: not unused. Only her missing expiry and 2FA are flagged.
    assert!(!got.iter().any(|(id, s, _)| *s == "alice" && (id.contains("unused") || id.contains("never"))));
    // deploy: a one-command sudo rule is not admin; its 1024-bit key is weak.
    assert!(!got.iter().any(|(id, s, _)| *s == "deploy" && id.starts_with("accounts.admin")), "{got:?}");
    assert!(got.contains(&(
        "accounts.weak-ssh-key",
        "deploy SHA256:kUU9GQ5iddhMs+I/xK8icODoMWBRTejIVyEBtrc07vg",
        Severity::Low
    )));
    // `old.rules.bak` contains a dot: sudo skips it, so guest is not an admin.
    assert!(!got.iter().any(|(id, s, _)| *s == "guest" && id.starts_with("accounts.admin")), "{got:?}");
    // toor is uid 0: its own critical finding, not the admin checks again.
    assert_eq!(got.iter().filter(|(_, s, _)| *s == "toor").count(), 1, "{got:?}");
    let toor = find(f, "accounts.extra-uid0", "toor").unwrap();
    assert!(toor.evidence[0].starts_with("toor has uid 0"), "{:?}", toor.evidence);
    // lastlog is by uid, shared with root: only wtmp (by name) can speak for toor.
    assert!(toor.evidence[1].contains("no login recorded since wtmp begins on 2026-01-02"), "{:?}", toor.evidence);
    // Nothing could-not-check on a complete fixture.
    assert!(!got.iter().any(|(id, _, _)| id.ends_with("check-failed")), "{got:?}");
}

#[tokio::test]
async fn web1_facts_are_compact_and_secret_free() {
    let reg = crate::registry::Registry::builtin();
    let out = reg.call(&fixture_ctx("web1"), "audit_accounts", serde_json::json!({})).await.unwrap();
    let text = out.to_value().to_string();
    assert!(!text.contains("$y$") && !text.contains("NotARealHash"), "a password hash leaked");
    assert!(!text.contains("AAAAC3NzaC1lZDI1NTE5"), "key material leaked");
    assert!(!text.contains("[REDACTED]"), "our own wording trips the redactor: {text}");
    let accounts = out.facts["accounts"].as_array().unwrap();
    let names: Vec<&str> = accounts.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["root", "toor", "alice", "contractor-jane", "mike", "guest", "deploy"]);
    assert_eq!(out.facts["other_accounts"], 5);
    let jane = &accounts[3];
    assert_eq!(jane["last_login"], "2026-03-27");
    assert_eq!(jane["keys"], 1);
    assert_eq!(jane["password_state"], "set");
    assert_eq!(jane["password_age_days"], 326);
    assert!(jane.get("expires").is_none());
    assert_eq!(jane["privileged"], "group sudo; sudoers %sudo (/etc/sudoers:12)");
    assert_eq!(accounts[4]["last_login"], "never");
    assert_eq!(accounts[4]["expires"], "2027-06-30");
    assert_eq!(accounts[5]["password_state"], "empty");
    let keys = out.facts["authorized_keys"].as_array().unwrap();
    // root's key counts for root and for toor (same home).
    assert_eq!(keys.iter().filter(|k| k["file"] == "/root/.ssh/authorized_keys").count(), 2);
    let dk = keys.iter().find(|k| k["user"] == "deploy").unwrap();
    assert_eq!(dk["bits"], 1024);
    assert_eq!(dk["options"], serde_json::json!(["from", "no-pty"]));
    assert!(out.facts["second_factor"].as_str().unwrap().starts_with("not required"), "{}", out.facts["second_factor"]);
}

#[tokio::test]
async fn clean_host_reports_nothing_above_info() {
    let out = AuditAccounts.run(&fixture_ctx("clean"), AccountsInput::default()).await.unwrap();
    assert!(out.findings.iter().all(|f| f.severity == Severity::Info), "{:?}", ids(&out.findings));
    let sam = out.facts.accounts.iter().find(|a| a.name == "sam").unwrap();
    assert_eq!(sam.last_login, "2026-11-20");
    assert_eq!(sam.expires.as_deref(), Some("2027-03-31"));
    assert_eq!(sam.keys, 1);
    assert!(sam.privileged.as_deref().unwrap().contains("group sudo"));
    let root = &out.facts.accounts[0];
    assert_eq!((root.name.as_str(), root.password_state), ("root", PwState::Locked));
    assert!(out.facts.second_factor.starts_with("required"), "{}", out.facts.second_factor);
    assert!(out.facts.second_factor.contains("pam_google_authenticator"), "{}", out.facts.second_factor);
}

#[tokio::test]
async fn thresholds_come_from_the_config() {
    let cfg = Config::parse("[review]\nunused_days = 300\npassword_max_age_days = 2000\n", std::path::Path::new("c"))
        .unwrap();
    let ctx = Ctx::new(fixture("web1")).with_config(cfg);
    let out = AuditAccounts.run(&ctx, AccountsInput::default()).await.unwrap();
    assert!(find(&out.findings, "accounts.admin-unused", "contractor-jane").is_none());
    assert!(find(&out.findings, "credentials.password-old", "root").is_none());
}

#[tokio::test]
async fn one_user_and_bad_input() {
    let reg = crate::registry::Registry::builtin();
    let ctx = fixture_ctx("web1");
    let out = reg.call(&ctx, "audit_accounts", serde_json::json!({"user": "contractor-jane"})).await.unwrap();
    assert_eq!(out.facts["accounts"].as_array().unwrap().len(), 1);
    assert!(out.findings.iter().all(|f| f.subject == "contractor-jane"));
    assert_eq!(out.findings.len(), 3);
    let err = reg.call(&ctx, "audit_accounts", serde_json::json!({"user": "nobody-here"})).await.unwrap_err();
    assert!(err.to_string().contains("nobody-here"), "{err}");
    assert!(reg.call(&ctx, "audit_accounts", serde_json::json!({"path": "/etc/shadow"})).await.is_err());
}

/// Copy a fixture host into a temporary directory so a test can change it.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let t = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &t);
            } else if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), &t).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture_path(name), dir.path());
    dir
}

fn at(dir: &tempfile::TempDir) -> Ctx {
    Ctx::new(
        Host::at(dir.path())
            .with_now(std::time::UNIX_EPOCH + std::time::Duration::from_secs(crate::testutil::FIXTURE_NOW)),
    )
}

#[tokio::test]
async fn unreadable_shadow_is_reported_and_the_rest_still_checked() {
    let dir = copy_fixture("web1");
    let shadow = dir.path().join("etc/shadow");
    std::fs::remove_file(&shadow).unwrap();
    // A symlink loop cannot be read even by root, like a 0640 shadow for a normal user.
    std::os::unix::fs::symlink("shadow", &shadow).unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    let got = ids(&out.findings);
    assert!(got.contains(&("accounts.check-failed", "audit_accounts: /etc/shadow", Severity::High)), "{got:?}");
    assert!(got.contains(&("accounts.extra-uid0", "toor", Severity::Critical)), "{got:?}");
    assert!(got.contains(&("accounts.admin-unused", "contractor-jane", Severity::High)), "{got:?}");
    // Without shadow, expiry and password age are unknown: not guessed.
    assert!(!got.iter().any(|(id, _, _)| *id == "accounts.admin-no-expiry" || *id == "credentials.password-old"));
    assert!(out.facts.accounts.iter().all(|a| a.password_state == PwState::Unknown || a.name == "guest"));
}

#[tokio::test]
async fn second_factor_variants() {
    let dir = copy_fixture("web1");
    let sshd = dir.path().join("etc/ssh/sshd_config");
    let base = std::fs::read_to_string(&sshd).unwrap();
    let has_2fa_finding =
        |out: &Outcome<AccountsFacts>, u: &str| find(&out.findings, "accounts.admin-no-2fa", u).is_some();

    // 2FA for the sudo group only, through a Match block: alice and jane pass, mike (ops) does not.
    std::fs::write(&sshd, format!("{base}\nMatch Group sudo\n  AuthenticationMethods publickey,password\n")).unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    assert!(!has_2fa_finding(&out, "alice") && !has_2fa_finding(&out, "contractor-jane"));
    assert!(has_2fa_finding(&out, "mike"));

    // A block that also depends on the address: from anywhere else, one factor is enough.
    std::fs::write(
        &sshd,
        format!("{base}\nMatch Group sudo Address 10.0.0.0/8\n  AuthenticationMethods publickey,password\n"),
    )
    .unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    let f = find(&out.findings, "accounts.admin-no-2fa", "alice").expect("alice from a public address");
    assert!(f.evidence.iter().any(|e| e.contains("any one of publickey, password")), "{:?}", f.evidence);
    // …and a block for every address, IPv4 and IPv6, is every login (as sshd applies it).
    std::fs::write(
        &sshd,
        format!("{base}\nMatch Address 0.0.0.0/0,::/0\n  AuthenticationMethods publickey,password\n"),
    )
    .unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    assert!(!has_2fa_finding(&out, "alice") && !has_2fa_finding(&out, "mike"), "{:?}", ids(&out.findings));

    // A TOTP module in PAM alone is not enough: publickey logins skip PAM auth.
    std::fs::write(dir.path().join("etc/pam.d/common-auth"), "auth required pam_google_authenticator.so\n").unwrap();
    std::fs::write(&sshd, &base).unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    let f = find(&out.findings, "accounts.admin-no-2fa", "alice").unwrap();
    assert!(
        f.evidence.iter().any(|e| e.contains("pam_google_authenticator (/etc/pam.d/common-auth:1)")),
        "{:?}",
        f.evidence
    );

    // keyboard-interactive only, through that PAM stack: two factors.
    std::fs::write(&sshd, "PasswordAuthentication no\nPubkeyAuthentication no\nKbdInteractiveAuthentication yes\n")
        .unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    assert!(!has_2fa_finding(&out, "alice"), "{:?}", ids(&out.findings));

    // No sshd at all: no remote logins, no 2FA findings.
    std::fs::remove_file(&sshd).unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    assert!(!out.findings.iter().any(|f| f.id == "accounts.admin-no-2fa"));
    assert_eq!(out.facts.second_factor, "no OpenSSH server configured");
}

#[tokio::test]
async fn missing_login_records_are_not_never() {
    let dir = copy_fixture("web1");
    std::fs::remove_file(dir.path().join("var/log/wtmp")).unwrap();
    std::fs::remove_file(dir.path().join("var/log/lastlog")).unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    let got = ids(&out.findings);
    assert!(!got.iter().any(|(id, _, _)| id.contains("never-used") || id.contains("unused")), "{got:?}");
    assert!(got.contains(&("accounts.no-login-records", "login records", Severity::Info)), "{got:?}");
    assert_eq!(out.facts.accounts[0].last_login, "unknown");

    // wtmp only (rotated, begins 2026-01-02): mike has no login since then.
    std::fs::write(dir.path().join("var/log/wtmp"), web1_wtmp()).unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    let mike = find(&out.findings, "accounts.admin-unused", "mike").unwrap();
    assert!(mike.evidence[1].contains("since wtmp begins on 2026-01-02"), "{:?}", mike.evidence);
}

#[tokio::test]
async fn missing_passwd_is_info() {
    let dir = tempfile::tempdir().unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    assert_eq!(ids(&out.findings), vec![("accounts.no-passwd", "/etc/passwd", Severity::Info)]);
}

#[test]
fn wtmp_and_lastlog_parsing() {
    let mut bytes = web1_wtmp();
    bytes.extend_from_slice(&[7, 0, 0]); // a torn trailing record
    let (logins, first) = parse_wtmp(&bytes);
    assert_eq!(logins.len(), 4, "boot and dead-process records are not logins");
    assert_eq!(logins[0].user, "contractor-jane");
    assert_eq!(logins[0].host, "203.0.113.50");
    assert_eq!(first, Some(1_767_340_800));
    // A 32-character user name fills ut_user with no terminating NUL.
    let long = "u".repeat(40);
    let (l, _) = parse_wtmp(&utmp_record(parse::USER_PROCESS, 1, "pts/9", &long, "h", 5));
    assert_eq!(l[0].user.len(), 32);

    let h = fixture("web1");
    let ll = parse::Lastlog::open(&h).unwrap().unwrap();
    assert_eq!(ll.get(1001), Some((1_774_628_400, "203.0.113.50".to_string())));
    assert_eq!(ll.get(1002), None, "beyond the end of the file");
    assert_eq!(ll.get(5), None, "a zero record");
    assert!(parse::Lastlog::open(&Host::at("/nonexistent-root")).unwrap().is_none());
}

#[test]
fn sudoers_edge_cases() {
    let (_d, h) = host_with(&[
        (
            "/etc/sudoers",
            "# comment with ALL = ALL\nDefaults env_reset\nUser_Alias ADMINS = bob, %devs, \\\n   carol\n\
             Cmnd_Alias EVERYTHING = ALL\nCmnd_Alias SAFE = /bin/ls\n\
             ADMINS ALL = (ALL) EVERYTHING\n\
             dave ALL = (root) SAFE, /usr/bin/apt\n\
             eve, #1005 ALL=(ALL:ALL) NOPASSWD:SETENV: ALL # admin\n\
             frank ALL = /bin/ls : ALL = ALL\n\
             %#2000 ALL=ALL\n\
             !gina ALL=ALL\n\
             #include /etc/sudoers.local\n#includedir /etc/sudoers.d\n",
        ),
        ("/etc/sudoers.local", "harry ALL=(ALL) ALL\n"),
        ("/etc/sudoers.d/ivan", "ivan ALL=(ALL) ALL\n"),
        ("/etc/sudoers.d/judy~", "judy ALL=(ALL) ALL\n"),
    ]);
    let s = parse::read_sudoers(&h);
    let who: Vec<Grantee> = s.grants.iter().map(|g| g.who.clone()).collect();
    let u = |n: &str| Grantee::User(n.to_string());
    assert_eq!(
        who,
        vec![
            u("bob"),
            Grantee::Group("devs".into()),
            u("carol"),
            u("eve"),
            Grantee::Uid(1005),
            u("frank"),
            Grantee::Gid(2000),
            u("harry"),
            u("ivan"),
        ]
    );
    assert!(s.grants.iter().find(|g| g.who == u("eve")).unwrap().nopasswd);
    assert_eq!(s.grants[0].at, "/etc/sudoers:7");
    assert_eq!(s.files, vec!["/etc/sudoers", "/etc/sudoers.local", "/etc/sudoers.d/ivan"]);
}

#[test]
fn shadow_and_passwd_fields() {
    let s = parse::parse_shadow("a:$6$x$y:19000:0:99999:7:::\nb:!$6$x:19000::::::\nc::19000:::::20000:\nd:*:::::::\n");
    assert_eq!(s["a"].password, PwState::Set);
    assert_eq!(s["b"].password, PwState::Locked);
    assert_eq!(s["c"].password, PwState::Empty);
    assert_eq!(s["c"].expire, Some(20000));
    assert_eq!(s["d"].last_change, None);
    let p = parse::passwd_fields("a:x:1:1::/:/bin/sh\nb::2:2::/:/bin/sh\n");
    assert_eq!(p["a"], PwState::Unknown);
    assert_eq!(p["b"], PwState::Empty);
}

#[tokio::test]
async fn empty_passwd_field_is_an_empty_password() {
    let dir = copy_fixture("clean");
    let p = dir.path().join("etc/passwd");
    let text = std::fs::read_to_string(&p).unwrap() + "kiosk::1500:1500::/home/kiosk:/bin/sh\n";
    std::fs::write(&p, text).unwrap();
    let out = AuditAccounts.run(&at(&dir), AccountsInput::default()).await.unwrap();
    assert!(find(&out.findings, "credentials.empty-password", "kiosk").is_some(), "{:?}", ids(&out.findings));
}

#[tokio::test]
async fn live_host_smoke() {
    let out = AuditAccounts.run(&Ctx::new(Host::live()), AccountsInput::default()).await;
    let out = out.expect("audit_accounts on the live host");
    assert!(out.facts.accounts.iter().any(|a| a.uid == 0));
}
