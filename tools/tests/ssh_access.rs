//! `AllowUsers`, `DenyUsers`, `AllowGroups` and `DenyGroups` judged as sshd
//! applies them, against real password logins.
//!
//! `sshd -T -C` prints these lists but does not apply them, so the oracle here
//! is a real sshd on a loopback port and a real `ssh` client typing the right
//! password: for a generated corpus of configurations (user patterns with
//! `*`/`?`, `USER@HOST` with addresses, CIDR networks, host-name patterns and
//! `!` negation, group lists, the same lists set again in `Match` blocks), each
//! test account logs in from 127.0.0.1, 127.0.0.2 and ::1, and whether it got
//! a shell must be what `ssh::refusal` says for that connection. Then the
//! review's own judgement must name every account that did log in.
//!
//! sshd resolves accounts with the real `/etc`, so it runs in a private mount
//! namespace where a directory with the test's `passwd`, `group` and `shadow`
//! is bind-mounted over `/etc`; the machine's own accounts are never touched.
//! Needs root, `/usr/sbin/sshd`, `ssh`, `ssh-keygen`, `openssl` (for the
//! password hash) and `unshare` (.ci/packages/ssh.txt).

#![expect(clippy::unwrap_used, reason = "test helpers: a failed setup step should fail the test")]
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vigil_tools::Host;
use vigil_tools::ssh::{Connection, effective_config, judge, login_accounts, refusal};

#[path = "ssh/corpus.rs"]
#[allow(dead_code, reason = "only its random numbers are used here")]
mod corpus;

const SSHD: &str = "/usr/sbin/sshd";
const PASSWORD: &str = "Corr3ct-Horse-Battery";
const CONFIGS: usize = 24;
const SEED: u64 = 0x5eed_a11d;

/// The test accounts: `vzed`'s primary group does not exist, so it is in no group at all.
const PASSWD: &str = "vtina:x:4201:4201::/tmp:/bin/sh\nvtom:x:4202:4202::/tmp:/bin/sh\n\
                      vtess:x:4203:4203::/tmp:/bin/sh\nvzed:x:4204:4299::/tmp:/bin/sh\n";
const GROUP: &str = "vtina:x:4201:\nvtom:x:4202:\nvtess:x:4203:\nvweb:x:4210:vtina,vtess\nvadmins:x:4211:vtom,vtess\n";
const USERS: [&str; 4] = ["vtina", "vtom", "vtess", "vzed"];
const SOURCES: [(&str, &str); 3] = [("127.0.0.1", "127.0.0.1"), ("127.0.0.2", "127.0.0.1"), ("::1", "::1")];

const USER_PATTERNS: &[&str] = &["vtina", "vt?m", "vte*", "*", "vt*", "vzed", "nobody", "VTINA", "!vtina"];
const HOST_PATTERNS: &[&str] = &[
    "127.0.0.1",
    "127.0.0.2",
    "127.0.0.0/8",
    "127.0.0.2/32",
    "127.0.0.0/8,!127.0.0.2",
    "127.0.0.*",
    "::1",
    "::1/128",
    "!127.0.0.1,*",
    "localhost",
    "127.0.0.?",
    "10.0.0.0/8",
];
const GROUP_PATTERNS: &[&str] = &["vweb", "vadm*", "*", "vtess", "vw?b", "nogroup", "!vweb", "vtina"];
const BLOCKS: &[&str] =
    &["User vtess", "Address 127.0.0.2", "Group vadmins", "User vt*,!vtom", "Address 127.0.0.0/8,!127.0.0.1"];

fn list_line(rng: &mut corpus::Rng, keyword: &str) -> String {
    let words: Vec<String> = (0..1 + rng.below(3))
        .map(|_| {
            if keyword.ends_with("Groups") {
                rng.pick(GROUP_PATTERNS).to_string()
            } else if rng.below(100) < 40 {
                format!("{}@{}", rng.pick(USER_PATTERNS), rng.pick(HOST_PATTERNS))
            } else {
                rng.pick(USER_PATTERNS).to_string()
            }
        })
        .collect();
    format!("{keyword} {}\n", words.join(" "))
}

/// One configuration: password logins on, then some of the four lists, maybe a `Match` block setting some again.
fn generate(rng: &mut corpus::Rng, hostkey: &Path) -> String {
    const LISTS: [&str; 4] = ["DenyUsers", "AllowUsers", "DenyGroups", "AllowGroups"];
    let mut text = format!(
        "HostKey {}\nPidFile none\nUsePAM no\nKbdInteractiveAuthentication no\nPasswordAuthentication yes\n\
         MaxStartups 100\nLogLevel VERBOSE\n",
        hostkey.display()
    );
    for k in LISTS {
        if rng.below(100) < 40 {
            text.push_str(&list_line(rng, k));
        }
    }
    if rng.below(100) < 40 {
        text.push_str(&format!("Match {}\n", rng.pick(BLOCKS)));
        for _ in 0..1 + rng.below(2) {
            let k = *rng.pick(&LISTS);
            text.push_str(&format!("  {}", list_line(rng, k)));
        }
    }
    text
}

/// `T/etc` for sshd: only root, sshd's privilege-separation account, nobody and the test accounts.
fn private_etc(t: &Path) {
    let etc = t.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let keep = |file: &str, names: &[&str]| -> String {
        std::fs::read_to_string(Path::new("/etc").join(file))
            .unwrap()
            .lines()
            .filter(|l| names.iter().any(|n| l.starts_with(&format!("{n}:"))))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let hash = vigil_testkit::ok(&format!("openssl passwd -6 '{PASSWORD}'"));
    let shadow: String = USERS.iter().map(|u| format!("{u}:{}:19000:0:99999:7:::\n", hash.trim())).collect();
    std::fs::write(etc.join("passwd"), keep("passwd", &["root", "sshd", "nobody"]) + PASSWD).unwrap();
    std::fs::write(etc.join("group"), keep("group", &["root", "nogroup"]) + GROUP).unwrap();
    std::fs::write(etc.join("shadow"), keep("shadow", &["root", "sshd", "nobody"]) + &shadow).unwrap();
    for f in ["nsswitch.conf", "ld.so.cache", "hosts", "localtime"] {
        if Path::new("/etc").join(f).exists() {
            std::fs::copy(Path::new("/etc").join(f), etc.join(f)).unwrap();
        }
    }
}

/// Did `user` get a shell from `src` with the right password?
fn logs_in(t: &Path, port: u16, user: &str, src: &str, dst: &str) -> bool {
    let out = Command::new("ssh")
        .args(["-F", "/dev/null", "-b", src, "-p", &port.to_string()])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"])
        .args(["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"])
        .args(["-o", "NumberOfPasswordPrompts=1"])
        .arg(format!("{user}@{dst}"))
        .arg("echo logged-in")
        .env("SSH_ASKPASS", t.join("askpass"))
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("Permission denied"),
        "{user} from {src}: ssh failed for another reason than a refusal: {stderr}"
    );
    out.status.success() && stdout.trim() == "logged-in"
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "sshd",
        vigil_missing = "ssh",
        vigil_missing = "ssh-keygen",
        vigil_missing = "openssl",
        vigil_missing = "unshare"
    ),
    ignore = "needs root, sshd, ssh, ssh-keygen, openssl, unshare (.ci/packages/ssh.txt)"
)]
fn allow_and_deny_lists_refuse_exactly_the_logins_sshd_refuses() {
    /// sshd, stopped however the test ends: one left behind (a failed wait) would hold the
    /// test runner's output open and keep it from finishing.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    vigil_testkit::require(&["root", "sshd", "ssh", "ssh-keygen", "openssl", "unshare"]);
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().canonicalize().unwrap();
    private_etc(&t);
    std::fs::write(t.join("askpass"), format!("#!/bin/sh\necho '{PASSWORD}'\n")).unwrap();
    std::fs::set_permissions(t.join("askpass"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let hostkey = t.join("hostkey");
    let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&hostkey).status().unwrap();
    assert!(st.success());
    std::fs::create_dir_all("/run/sshd").unwrap();

    let mut rng = corpus::Rng::new(SEED);
    let mut failures = Vec::new();
    let (mut allowed, mut refused) = (0, 0);
    let mut reasons = std::collections::BTreeSet::new();
    for i in 0..CONFIGS {
        // A root vigil reads: the configuration, and the same passwd and group sshd sees.
        let root = t.join(format!("c{i:02}"));
        std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
        let config = generate(&mut rng, &hostkey);
        std::fs::write(root.join("etc/ssh/sshd_config"), &config).unwrap();
        for f in ["passwd", "group"] {
            std::fs::copy(t.join("etc").join(f), root.join("etc").join(f)).unwrap();
        }
        let log = root.join("sshd.log");
        // A port free on 127.0.0.1 may still be taken on `::` (sshd listens on both) by
        // whatever else runs on the machine: then sshd is started again on another one.
        let mut started = None;
        for _ in 0..5 {
            let port = vigil_testkit::free_port();
            let mut sshd = Reap(
                Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(format!(
                        "mount --bind {etc} /etc && exec {SSHD} -D -e -f {cfg} -p {port}",
                        etc = t.join("etc").display(),
                        cfg = root.join("etc/ssh/sshd_config").display()
                    ))
                    .stderr(std::fs::File::create(&log).unwrap())
                    .spawn()
                    .unwrap(),
            );
            let since = std::time::Instant::now();
            let listening = loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(sshd.0.try_wait().unwrap().is_none(), "sshd refused the configuration:\n{config}\n{text}");
                if text.matches("Server listening on").count() >= 2 {
                    break true;
                }
                if text.contains("Bind to port") || since.elapsed() > Duration::from_secs(20) {
                    eprintln!("sshd did not listen on both families at port {port}, trying another:\n{text}");
                    break false;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if listening {
                started = Some((sshd, port));
                break;
            }
        }
        let (sshd, port) = started.expect("sshd listening on 127.0.0.1 and ::1 within 5 ports");

        let host = Host::at(&root);
        let cfg = effective_config(&host);
        let accounts = login_accounts(&host);
        let cases: Vec<(&str, &str, &str)> =
            USERS.iter().flat_map(|u| SOURCES.iter().map(move |(src, dst)| (*u, *src, *dst))).collect();
        let real: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = cases.iter().map(|(u, src, dst)| s.spawn(|| logs_in(&t, port, u, src, dst))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        drop(sshd);

        let (facts, _) = judge(&cfg, &accounts);
        for ((user, src, dst), got_in) in cases.iter().zip(&real) {
            let account = accounts.iter().find(|a| a.name == *user).unwrap();
            let conn = Connection {
                user: user.to_string(),
                groups: account.groups.clone(),
                host: src.to_string(),
                addr: src.to_string(),
                laddr: dst.to_string(),
                lport: port,
            };
            let ours = refusal(&cfg.for_connection(&conn), &conn);
            if *got_in {
                allowed += 1;
            } else {
                refused += 1;
            }
            if let Some(r) = &ours {
                reasons.insert(r.split([' ', '(']).take(2).collect::<Vec<_>>().join(" "));
            }
            if ours.is_none() != *got_in {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let sshd_says: Vec<&str> = log.lines().filter(|l| l.contains(user)).collect();
                failures.push(format!(
                    "{user} from {src}: sshd {}, vigil {ours:?}\n{config}sshd: {sshd_says:?}",
                    if *got_in { "let it in" } else { "refused it" }
                ));
            }
            if *got_in && !facts.password_login_accounts.iter().any(|a| a == user) {
                failures.push(format!(
                    "{user} logged in with a password from {src}, but the review does not say so \
                     (refused: {:?})\n{config}",
                    facts.refused_accounts
                ));
            }
        }
    }
    println!("{allowed} logins let in, {refused} refused over {CONFIGS} configurations; vigil's reasons: {reasons:?}");
    assert!(allowed > 40 && refused > 40, "the corpus barely exercises both outcomes: {allowed} in, {refused} refused");
    for r in ["DenyUsers", "not listed", "DenyGroups", "in none", "in no"] {
        assert!(reasons.iter().any(|x| x.starts_with(r)), "no login was refused by {r}: {reasons:?}");
    }
    assert!(
        failures.is_empty(),
        "{} mismatches; the first:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n----\n")
    );
}
