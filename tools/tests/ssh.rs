//! `check_ssh` reads sshd_config the way the real sshd does: the effective
//! values `effective_config` computes (Include globs, first value wins,
//! `Keyword=value`, comments, Match blocks, defaults) are compared with what
//! `sshd -T` prints for the same files, and the per-connection values
//! `SshdConfig::for_connection` computes with what `sshd -T -C user=…,addr=…`
//! prints, over a generated corpus of configurations (see `corpus`).
//!
//! Needs root, `/usr/sbin/sshd`, `ssh-keygen` (.ci/packages/ssh.txt) and
//! `unshare`/`mount` (util-linux, essential on Debian). Starts no server:
//! `sshd -T` only parses and prints.

#![expect(clippy::unwrap_used, reason = "test helpers: a failed setup step should fail the test")]
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use vigil_tools::ssh::{Account, CheckSsh, Connection, Settings, SshdConfig, effective_config, login_accounts};
use vigil_tools::tool::NoInput;
use vigil_tools::{Ctx, Host, Tool};

#[path = "ssh/corpus.rs"]
mod corpus;

const SSHD: &str = "/usr/sbin/sshd";

/// A root whose absolute paths also resolve inside it: `sshd` reads
/// `R/etc/...` for real, `Host::at(R)` reads `/R/etc/...` as `R/R/etc/...`,
/// which a relative symlink points back at `R` (`..` up to the root: an absolute
/// target would be resolved inside the root, and point at itself).
fn mirrored_root() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().canonicalize().unwrap();
    let mirror = r.join(r.strip_prefix("/").unwrap());
    std::fs::create_dir_all(mirror.parent().unwrap()).unwrap();
    let up = r.components().count().saturating_sub(2).max(1);
    std::os::unix::fs::symlink(vec![".."; up].join("/"), &mirror).unwrap();
    hostkey(&r);
    (dir, r.display().to_string())
}

fn sshd_t(config: &str) -> BTreeMap<String, Vec<String>> {
    // sshd refuses to run, even for -T, without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").ok();
    let out = Command::new(SSHD).args(["-T", "-f", config]).output().unwrap();
    assert!(out.status.success(), "sshd -T failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once(' ') {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    m
}

fn yn(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn compare(ours: &SshdConfig, real: &BTreeMap<String, Vec<String>>, explicit: &[&str]) {
    let one = |k: &str| real.get(k).and_then(|v| v.first()).cloned().unwrap_or_default();
    let prl = ours.permit_root_login().replace("prohibit-password", "without-password");
    assert_eq!(prl, one("permitrootlogin"), "PermitRootLogin");
    assert_eq!(yn(ours.password_authentication()), one("passwordauthentication"), "PasswordAuthentication");
    assert_eq!(yn(ours.flag("PermitEmptyPasswords", false)), one("permitemptypasswords"));
    assert_eq!(yn(ours.flag("X11Forwarding", false)), one("x11forwarding"));
    assert_eq!(yn(ours.flag("AllowAgentForwarding", true)), one("allowagentforwarding"));
    assert_eq!(yn(ours.flag("AllowTcpForwarding", true)), one("allowtcpforwarding"));
    let ports: Vec<String> = ours.ports().iter().map(u16::to_string).collect();
    let mut real_ports = real.get("port").cloned().unwrap_or_default();
    real_ports.sort_by_key(|p| p.parse::<u16>().unwrap_or(0));
    assert_eq!(ports, real_ports, "Port");
    assert_eq!(ours.get("AuthenticationMethods").unwrap_or("any"), one("authenticationmethods"));
    assert_eq!(ours.authorized_keys_files().join(" "), one("authorizedkeysfile"));
    for k in explicit {
        assert_eq!(ours.get(k), Some(one(&k.to_ascii_lowercase()).as_str()), "{k}");
    }
}

#[test]
#[cfg_attr(
    any(vigil_missing = "sshd", vigil_missing = "ssh-keygen"),
    ignore = "needs sshd, ssh-keygen (.ci/packages/ssh.txt)"
)]
fn effective_values_match_sshd_t() {
    vigil_testkit::require(&["sshd", "ssh-keygen"]);
    let (_dir, r) = mirrored_root();
    let w = |p: &str, text: &str| {
        let path = format!("{r}{p}");
        std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    w(
        "/etc/ssh/sshd_config",
        &format!(
            "# PermitRootLogin no  (a comment, not a setting)\n\
             HostKey {r}/hostkey\n\
             Include {r}/etc/ssh/sshd_config.d/*.conf {r}/etc/ssh/absent.conf\n\
             PermitRootLogin yes\n\
             Port 2222\nPort 2223\n\
             PasswordAuthentication=no\n\
             x11forwarding yes\n\
             Ciphers aes256-ctr\n\
             AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/keys/%u\n\
             Match User nobody\n  PermitRootLogin no\n  X11Forwarding no\n"
        ),
    );
    w(
        "/etc/ssh/sshd_config.d/10-first.conf",
        "permitrootlogin prohibit-password\nCiphers aes128-cbc,aes256-ctr\nAllowTcpForwarding no\n",
    );
    w(
        "/etc/ssh/sshd_config.d/20-second.conf",
        "PermitRootLogin no\nMACs hmac-sha2-256,hmac-md5\nAuthenticationMethods publickey,keyboard-interactive\n",
    );
    // A Match opened in an included file ends with that file: the main file's
    // settings after the Include stay global.
    w("/etc/ssh/sshd_config.d/30-match.conf", "Match User nobody\n  PasswordAuthentication yes\n");
    w("/etc/ssh/sshd_config.d/README", "PermitEmptyPasswords yes\n");
    let ours = effective_config(&Host::at(&r));
    assert!(ours.unreadable.is_empty(), "{:?}", ours.unreadable);
    assert_eq!(ours.matches.len(), 2);
    compare(&ours, &sshd_t(&format!("{r}/etc/ssh/sshd_config")), &["Ciphers", "MACs"]);
}

#[test]
#[cfg_attr(
    any(vigil_missing = "sshd", vigil_missing = "ssh-keygen"),
    ignore = "needs sshd, ssh-keygen (.ci/packages/ssh.txt)"
)]
fn defaults_match_sshd_t() {
    vigil_testkit::require(&["sshd", "ssh-keygen"]);
    let (_dir, r) = mirrored_root();
    std::fs::create_dir_all(format!("{r}/etc/ssh")).unwrap();
    std::fs::write(format!("{r}/etc/ssh/sshd_config"), format!("HostKey {r}/hostkey\n")).unwrap();
    let ours = effective_config(&Host::at(&r));
    compare(&ours, &sshd_t(&format!("{r}/etc/ssh/sshd_config")), &[]);
}

/// Accounts of the corpus, added to this machine's own `passwd`/`group`
/// (sshd needs its `sshd` user) inside a private mount namespace only.
const TEST_PASSWD: &str = "alice:x:4101:4101::/home/alice:/bin/bash\nbob:x:4102:4102::/home/bob:/bin/bash\n\
                           deploy:x:4103:4110::/home/deploy:/bin/sh\n";
const TEST_GROUP: &str = "alice:x:4101:\nbob:x:4102:\nvadmins:x:4108:alice\nvweb:x:4109:bob,deploy\nvdeploy:x:4110:\n";

/// How many generated configurations, and connections asked per configuration.
const CONFIGS: usize = 300;
const SPECS_PER_CONFIG: usize = 3;
const SEED: u64 = 0x5eed_0016;

/// A connection as `-C` takes it.
fn spec(c: &Connection) -> String {
    format!("user={},host={},addr={},laddr={},lport={}", c.user, c.host, c.addr, c.laddr, c.lport)
}

fn random_connection(rng: &mut corpus::Rng, accounts: &[Account]) -> Connection {
    let user = *rng.pick(&["root", "alice", "bob", "deploy", "ghost"]);
    let addr = *rng.pick(&["203.0.113.7", "10.1.2.3", "192.168.1.20", "2001:db8::5", "127.0.0.1", "203.0.113.200"]);
    let host = match rng.below(3) {
        0 => addr.to_string(),
        1 => "web.example.com".to_string(),
        _ => "gw.internal".to_string(),
    };
    Connection {
        user: user.to_string(),
        groups: accounts.iter().find(|a| a.name == user).and_then(|a| a.groups.clone()),
        host,
        addr: addr.to_string(),
        laddr: rng.pick(&["10.0.0.1", "192.0.2.10", "198.51.100.4"]).to_string(),
        lport: *rng.pick(&[22, 2222]),
    }
}

/// What `sshd -T` prints for the keywords vigil judges, computed by vigil.
fn ours_printed(s: &Settings) -> Vec<(&'static str, String)> {
    let allow_tcp = match s.get("AllowTcpForwarding").map(str::to_ascii_lowercase).as_deref() {
        None | Some("all") | Some("yes") => "yes".to_string(),
        Some(v) => v.to_string(),
    };
    vec![
        ("permitrootlogin", s.permit_root_login().replace("prohibit-password", "without-password")),
        ("passwordauthentication", yn(s.password_authentication())),
        ("kbdinteractiveauthentication", yn(s.flag("KbdInteractiveAuthentication", true))),
        ("usepam", yn(s.flag("UsePAM", false))),
        ("authenticationmethods", s.get("AuthenticationMethods").unwrap_or("any").to_string()),
        ("pubkeyauthentication", yn(s.flag("PubkeyAuthentication", true))),
        ("permitemptypasswords", yn(s.flag("PermitEmptyPasswords", false))),
        ("maxauthtries", s.get("MaxAuthTries").unwrap_or("6").to_string()),
        ("x11forwarding", yn(s.flag("X11Forwarding", false))),
        ("allowtcpforwarding", allow_tcp),
        ("allowagentforwarding", yn(s.flag("AllowAgentForwarding", true))),
    ]
}

/// The ports sshd listens on, from its `listenaddress host:port` lines.
fn real_ports(real: &BTreeMap<String, Vec<String>>) -> Vec<u16> {
    let mut p: Vec<u16> = real
        .get("listenaddress")
        .into_iter()
        .flatten()
        .filter_map(|l| l.split_whitespace().next()?.rsplit_once(':')?.1.parse().ok())
        .collect();
    p.sort_unstable();
    p.dedup();
    p
}

fn parse_t(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    m
}

/// Runs `sshd -T -C SPEC` for every line of `ROOT/specs`, for each root, writing
/// `ROOT/out.N` and `ROOT/err.N` (and `ROOT/err.N.rc` when sshd refused). sshd
/// reads the real `/etc/ssh` and resolves groups with the real `/etc/group`, so
/// it runs in a private mount namespace where `T/etc` (with the test's
/// `passwd` and `group`) is bind-mounted over `/etc`, and each root's `etc/ssh`
/// over `/etc/ssh`, one root after another. The whole directory, not single
/// files: a `useradd` elsewhere on the machine renames a new `/etc/passwd`
/// into place, which detaches a file mounted over the old one.
fn run_sshd_t_c(t: &Path, roots: &[&Path], key: &Path) {
    let list: String = roots.iter().map(|r| format!("{}\n", r.display())).collect();
    std::fs::write(t.join("roots"), list).unwrap();
    std::fs::create_dir_all(t.join("etc/ssh")).unwrap();
    for f in ["nsswitch.conf", "ld.so.cache", "hosts", "localtime"] {
        if Path::new("/etc").join(f).exists() {
            std::fs::copy(Path::new("/etc").join(f), t.join("etc").join(f)).unwrap();
        }
    }
    let script = format!(
        "set -e\nmkdir -p /run/sshd\nmount --bind {t}/etc /etc\n\
         while read -r d; do\n  mount --bind \"$d/etc/ssh\" /etc/ssh\n  n=0\n  while read -r spec; do\n    \
         {SSHD} -T -f /etc/ssh/sshd_config -h {key} -C \"$spec\" >\"$d/out.$n\" 2>\"$d/err.$n\" || echo failed >\"$d/err.$n.rc\"\n    \
         n=$((n+1))\n  done <\"$d/specs\"\n  umount /etc/ssh\ndone <{t}/roots\n",
        t = t.display(),
        key = key.display(),
    );
    let out =
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    assert!(out.status.success(), "the sshd -T batch failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// What `run_sshd_t_c` got for spec `n` of `root`: sshd's printed settings, or its error.
fn real_t_c(root: &Path, n: usize) -> Result<BTreeMap<String, Vec<String>>, String> {
    let err = std::fs::read_to_string(root.join(format!("err.{n}"))).unwrap_or_default();
    if root.join(format!("err.{n}.rc")).exists() {
        return Err(err);
    }
    Ok(parse_t(&std::fs::read_to_string(root.join(format!("out.{n}"))).unwrap()))
}

fn hostkey(t: &Path) -> std::path::PathBuf {
    let key = t.join("hostkey");
    let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
    assert!(st.success());
    key
}

/// The differential test of issue 16: a generated corpus of configurations,
/// each asked for several connections, and every judged keyword compared
/// with what the real `sshd -T -C` prints (see `run_sshd_t_c`); vigil reads
/// the same files through `Host`.
#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "sshd", vigil_missing = "ssh-keygen", vigil_missing = "unshare"),
    ignore = "needs root, sshd, ssh-keygen, unshare (.ci/packages/ssh.txt)"
)]
fn match_evaluation_matches_sshd_t_c_over_a_generated_corpus() {
    vigil_testkit::require(&["root", "sshd", "ssh-keygen", "unshare"]);
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(t.join("etc")).unwrap();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap() + TEST_PASSWD;
    let group = std::fs::read_to_string("/etc/group").unwrap() + TEST_GROUP;
    std::fs::write(t.join("etc/passwd"), &passwd).unwrap();
    std::fs::write(t.join("etc/group"), &group).unwrap();
    let key = hostkey(&t);

    let mut rng = corpus::Rng::new(SEED);
    let mut cases = Vec::new();
    for i in 0..CONFIGS {
        let root = t.join(format!("c{i:03}"));
        let g = corpus::generate(&mut rng);
        for (p, text) in &g.files {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::hard_link(t.join("etc/passwd"), root.join("etc/passwd")).unwrap();
        std::fs::hard_link(t.join("etc/group"), root.join("etc/group")).unwrap();
        let host = Host::at(&root);
        let accounts = login_accounts(&host);
        let conns: Vec<Connection> = (0..SPECS_PER_CONFIG).map(|_| random_connection(&mut rng, &accounts)).collect();
        let specs: String = conns.iter().map(|c| spec(c) + "\n").collect();
        std::fs::write(root.join("specs"), specs).unwrap();
        cases.push((root, g, conns));
    }
    let roots: Vec<&Path> = cases.iter().map(|(r, _, _)| r.as_path()).collect();
    run_sshd_t_c(&t, &roots, &key);

    let mut failures = Vec::new();
    let mut compared = 0usize;
    let mut decided_by_block = 0usize;
    for (root, g, conns) in &cases {
        let cfg = effective_config(&Host::at(root));
        assert!(cfg.unreadable.is_empty(), "{:?}\n{}", cfg.unreadable, g.dump());
        for (n, conn) in conns.iter().enumerate() {
            let real = match real_t_c(root, n) {
                Ok(r) => r,
                Err(e) => panic!("sshd refused a generated configuration (a corpus bug): {e}\n{}", g.dump()),
            };
            let ours = cfg.for_connection(conn);
            let global = ours_printed(&cfg);
            for (i, (k, v)) in ours_printed(&ours).into_iter().enumerate() {
                if global[i].1 != v {
                    decided_by_block += 1;
                }
                let theirs = real.get(k).and_then(|v| v.first()).cloned().unwrap_or_default();
                compared += 1;
                if v != theirs {
                    failures.push(format!("{}: {k}: vigil {v:?}, sshd -T -C {theirs:?}\n{}", spec(conn), g.dump()));
                }
            }
            compared += 1;
            if cfg.ports() != real_ports(&real) {
                failures.push(format!("ports: vigil {:?}, sshd {:?}\n{}", cfg.ports(), real_ports(&real), g.dump()));
            }
        }
    }
    for (root, g, _) in &cases {
        worst_case_misses_nothing(root, g, &mut failures);
    }
    println!(
        "compared {compared} values over {CONFIGS} configurations x {SPECS_PER_CONFIG} connections; \
         {decided_by_block} differ from the global value (a Match block decided them)"
    );
    assert!(decided_by_block > CONFIGS / 2, "the corpus barely exercises Match blocks: {decided_by_block}");
    assert!(
        failures.is_empty(),
        "{} mismatches with sshd -T -C; the first:\n{}",
        failures.len(),
        failures.iter().take(3).cloned().collect::<Vec<_>>().join("\n----\n")
    );
}

/// The worst-case judgement is sound: for every connection of a dense set
/// (addresses inside and outside what the corpus names, every local address,
/// every port sshd listens on) where the settings sshd applies (the values
/// compared above) let a password in, or let root in with one, `judge` has
/// flagged that account. It may not pick its connections from a list of
/// known answers: it derives them from the configuration.
fn worst_case_misses_nothing(root: &Path, g: &corpus::Generated, failures: &mut Vec<String>) {
    const ADDRS: &[&str] = &[
        "203.0.113.7",
        "203.0.113.200",
        "8.8.8.8",
        "10.1.2.3",
        "10.0.0.1",
        "192.168.1.20",
        "192.168.1.10",
        "2001:db8::5",
        "127.0.0.1",
    ];
    let host = Host::at(root);
    let cfg = effective_config(&host);
    let accounts = login_accounts(&host);
    let (facts, findings) = vigil_tools::ssh::judge(&cfg, &accounts);
    let root_flagged = findings.iter().any(|f| f.id == "hardening.ssh-root-login");
    for a in accounts.iter().filter(|a| ["root", "alice", "bob", "deploy"].contains(&a.name.as_str())) {
        for addr in ADDRS {
            for laddr in ["10.0.0.1", "192.0.2.10", "198.51.100.4"] {
                for lport in cfg.ports() {
                    let conn = Connection {
                        user: a.name.clone(),
                        groups: a.groups.clone(),
                        host: addr.to_string(),
                        addr: addr.to_string(),
                        laddr: laddr.to_string(),
                        lport,
                    };
                    let s = cfg.for_connection(&conn);
                    let root_yes = a.uid == 0 && s.permit_root_login() == "yes";
                    let password = s.password_login().is_some() && (a.uid != 0 || root_yes);
                    if password && !facts.password_login_accounts.contains(&a.name) {
                        failures.push(format!("{}: a password logs in, not flagged\n{}", spec(&conn), g.dump()));
                        return;
                    }
                    if root_yes && !root_flagged {
                        failures.push(format!("{}: PermitRootLogin yes, not flagged\n{}", spec(&conn), g.dump()));
                        return;
                    }
                }
            }
        }
    }
}

/// Debian's own configuration, from a root built with mmdebstrap, reviewed
/// offline; then a hosting admin's edits planted in a copy of its `/etc`: a
/// `Match User root Address …` that re-opens root, and a drop-in that gives
/// the web group passwords. vigil names both, for the right accounts, and
/// agrees with the real `sshd -T -C` on the same files.
#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "sshd",
        vigil_missing = "ssh-keygen",
        vigil_missing = "unshare",
        vigil_missing = "mmdebstrap"
    ),
    ignore = "needs root, sshd, ssh-keygen, unshare, mmdebstrap (.ci/packages/ssh.txt, dist.txt)"
)]
async fn debian_root_match_blocks_are_judged_per_account_as_sshd_applies_them() {
    vigil_testkit::require(&["root", "sshd", "ssh-keygen", "unshare", "mmdebstrap"]);
    let debian = vigil_testkit::debroot();
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().canonicalize().unwrap();
    let root = t.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let st = Command::new("cp").arg("-a").arg(debian.join("etc")).arg(root.join("etc")).status().unwrap();
    assert!(st.success(), "cp -a {}/etc", debian.display());

    // Stock Debian 12: only root has a shell, and root's password is refused
    // (prohibit-password), so no password logs in; X11Forwarding yes is Debian's.
    let ctx = Ctx::new(Host::at(&root));
    let out = CheckSsh.run(&ctx, NoInput {}).await.unwrap();
    let ids: Vec<&str> = out.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, vec!["hardening.ssh-forwarding"], "{:#?}", out.findings);
    assert!(out.facts.password_login_accounts.is_empty());
    assert!(out.findings[0].evidence[0].contains("X11Forwarding yes (/etc/ssh/sshd_config:"), "{:?}", out.findings[0]);

    // The plants: a web admin in www-data, a drop-in for the web group, a Match for root.
    let etc = root.join("etc");
    let add = |p: &str, text: &str| {
        let mut s = std::fs::read_to_string(etc.join(p)).unwrap();
        s.push_str(text);
        std::fs::write(etc.join(p), s).unwrap();
    };
    add("passwd", "webadmin:x:1500:1500:Web admin:/home/webadmin:/bin/bash\n");
    let group =
        std::fs::read_to_string(etc.join("group")).unwrap().replace("www-data:x:33:\n", "www-data:x:33:webadmin\n");
    std::fs::write(etc.join("group"), group + "webadmin:x:1500:\n").unwrap();
    std::fs::write(
        etc.join("ssh/sshd_config.d/50-hosting.conf"),
        "Match Group www-data\n    PasswordAuthentication yes\n",
    )
    .unwrap();
    add("ssh/sshd_config", "Match User root Address 192.168.0.0/16\n    PermitRootLogin yes\n");

    let out = CheckSsh.run(&ctx, NoInput {}).await.unwrap();
    let find =
        |id: &str| out.findings.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no {id}: {:#?}", out.findings));
    let root_login = find("hardening.ssh-root-login");
    let ev = root_login.evidence.join("\n");
    assert!(
        ev.contains("root from 192.168.0.0")
            && ev.contains("`Match User root Address 192.168.0.0/16` (/etc/ssh/sshd_config:"),
        "{ev}"
    );
    let pw = find("hardening.ssh-password-auth");
    // Root too: from 192.168.0.0/16, PermitRootLogin yes meets PasswordAuthentication's default yes.
    assert_eq!(out.facts.password_login_accounts, vec!["root", "webadmin"]);
    assert!(
        pw.evidence.join("\n").contains("`Match Group www-data` (/etc/ssh/sshd_config.d/50-hosting.conf:1)"),
        "{:?}",
        pw.evidence
    );

    // The same files through the real sshd.
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::copy(etc.join("passwd"), t.join("etc/passwd")).unwrap();
    std::fs::copy(etc.join("group"), t.join("etc/group")).unwrap();
    let accounts = login_accounts(&Host::at(&root));
    let conns: Vec<Connection> = [("root", "192.168.7.7"), ("root", "203.0.113.7"), ("webadmin", "203.0.113.7")]
        .iter()
        .map(|(user, addr)| Connection {
            user: user.to_string(),
            groups: accounts.iter().find(|a| a.name == *user).and_then(|a| a.groups.clone()),
            host: addr.to_string(),
            addr: addr.to_string(),
            laddr: "192.0.2.1".into(),
            lport: 22,
        })
        .collect();
    std::fs::write(root.join("specs"), conns.iter().map(|c| spec(c) + "\n").collect::<String>()).unwrap();
    run_sshd_t_c(&t, &[root.as_path()], &hostkey(&t));
    let cfg = effective_config(&Host::at(&root));
    for (n, conn) in conns.iter().enumerate() {
        let real = real_t_c(&root, n).unwrap_or_else(|e| panic!("sshd -T -C {}: {e}", spec(conn)));
        for (k, v) in ours_printed(&cfg.for_connection(conn)) {
            assert_eq!(Some(&v), real.get(k).and_then(|v| v.first()), "{}: {k}", spec(conn));
        }
    }
    let prl = |n: usize| real_t_c(&root, n).unwrap()["permitrootlogin"][0].clone();
    assert_eq!((prl(0), prl(1)), ("yes".to_string(), "without-password".to_string()));
}

/// [`worst_case_misses_nothing`] over a larger corpus of its own seed: it
/// needs no sshd (the settings it checks are those the differential test ties
/// to sshd), so it runs everywhere, as any user.
#[test]
fn worst_case_judgement_is_sound_over_a_larger_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let passwd =
        format!("root:x:0:0:root:/root:/bin/bash\nsshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n{TEST_PASSWD}");
    let group = format!("root:x:0:\nnogroup:x:65534:\n{TEST_GROUP}");
    let mut rng = corpus::Rng::new(SEED.rotate_left(17) ^ 0x9e37_79b9);
    let mut failures = Vec::new();
    for i in 0..1000 {
        let root = t.join(format!("w{i:04}"));
        let g = corpus::generate(&mut rng);
        for (p, text) in g
            .files
            .iter()
            .chain([("etc/passwd".to_string(), passwd.clone()), ("etc/group".to_string(), group.clone())].iter())
        {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        worst_case_misses_nothing(&root, &g, &mut failures);
        std::fs::remove_dir_all(&root).unwrap();
    }
    assert!(failures.is_empty(), "{} misses; the first:\n{}", failures.len(), failures[0]);
}
