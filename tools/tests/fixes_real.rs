//! The three fixes against the real system: firewall_deny_port with real nft,
//! iptables and ufw inside network namespaces this test creates and deletes
//! (never the machine's own firewall), lock_account on a throwaway user it
//! creates and removes, verify_backup_restore on real archives and a real
//! throwaway MariaDB. Packages: `.ci/packages/fixes.txt`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use vigil_testkit::sh;
use vigil_tools::fixes::deny_port::{Backend, DenyPortInput, FirewallDenyPort, Proto};
use vigil_tools::{Change, Config, Ctx, Host, Outcome, Plan, Registry, SessionInfo, ToolError};

mod approve;
use approve::{approved, approver};

/// A change as the gate drives it: `plan` is what the administrator is shown, `run` what
/// happens after an immediate yes (the registry plans, the plan is approved, the registry
/// computes it again and runs exactly that). Facts come back typed.
trait Approved: Change
where
    Self::Input: serde::Serialize,
    Self::Output: serde::de::DeserializeOwned,
{
    async fn plan(&self, ctx: &Ctx, input: &Self::Input) -> Result<Plan, ToolError> {
        self.prepare(ctx, input).await.map(|(plan, _)| plan)
    }

    async fn run(&self, ctx: &Ctx, input: Self::Input) -> Result<Outcome<Self::Output>, ToolError> {
        let input = serde_json::to_value(&input).map_err(|e| ToolError::Failed(e.to_string()))?;
        let out = approved(&Registry::builtin(), ctx, self.name(), input).await?;
        let facts = serde_json::from_value(out.facts).map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(Outcome::new(facts, out.findings))
    }
}

impl<T: Change> Approved for T
where
    T::Input: serde::Serialize,
    T::Output: serde::de::DeserializeOwned,
{
}

static N: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted (with its ufw config) when dropped.
struct Netns(String);

impl Netns {
    fn new(with_ufw: bool) -> Netns {
        let name = format!("vigil-fx-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        assert_eq!(sh(&format!("ip netns add {name} && ip netns exec {name} ip link set lo up")).0, 0);
        if with_ufw {
            let (rc, out) = sh(&format!("mkdir -p /etc/netns/{name} && cp -a /etc/ufw /etc/netns/{name}/ufw"));
            assert_eq!(rc, 0, "{out}");
        }
        Netns(name)
    }

    fn exec(&self, cmd: &str) -> (i32, String) {
        sh(&format!("ip netns exec {} sh -c '{}'", self.0, cmd.replace('\'', r"'\''")))
    }

    fn ctx(&self, ssh_port: Option<u16>) -> Ctx {
        Ctx::new(Host::live()).with_session(SessionInfo {
            ssh_server_port: ssh_port,
            user: Some("nobody-at-keyboard".into()),
            netns: Some(self.0.clone()),
            ..Default::default()
        })
    }

    /// Inside the namespace, does a TCP connect to 127.0.0.1:port time out (dropped)
    /// rather than get refused at once (no listener, not filtered)?
    fn dropped(&self, port: u16) -> bool {
        self.exec(&format!("timeout 2 bash -c \"echo > /dev/tcp/127.0.0.1/{port}\"")).0 == 124
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {0}; rm -rf /etc/netns/{0}", self.0));
    }
}

fn deny(port: u16) -> DenyPortInput {
    DenyPortInput { port, proto: Proto::Tcp, reason: "forgotten debug port".into() }
}

/// Run the undo commands the tool reported, as an administrator would paste them.
fn undo(cmds: &[String]) {
    for c in cmds {
        let (rc, out) = sh(c);
        assert_eq!(rc, 0, "undo `{c}` failed: {out}");
    }
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "ip",
        vigil_missing = "nft",
        vigil_missing = "bash",
        vigil_missing = "timeout"
    ),
    ignore = "needs root, ip, nft, bash, timeout (.ci/packages/fixes.txt)"
)]
async fn nft_rule_is_added_really_drops_and_undoes() {
    vigil_testkit::require(&["root", "ip", "nft", "bash", "timeout"]);
    let ns = Netns::new(false);
    assert_eq!(ns.exec("nft add table inet filter").0, 0, "an inet table makes nft the backend");
    let ctx = ns.ctx(Some(22));
    assert!(!ns.dropped(9200), "nothing filters 9200 yet");

    let plan = FirewallDenyPort.plan(&ctx, &deny(9200)).await.unwrap();
    let text = plan.render();
    assert!(text.contains(&format!("ip netns exec {} nft 'add table inet vigil'", ns.0)), "{text}");
    assert!(text.contains("priority -10"), "{text}");
    assert!(text.contains("tcp dport 9200 drop comment \"vigil: forgotten debug port\""), "{text}");
    assert!(text.contains("delete rule inet vigil input handle N"), "{text}");

    let out = FirewallDenyPort.run(&ctx, deny(9200)).await.unwrap();
    assert_eq!(out.facts.backend, Backend::Nft);
    let (_, ruleset) = ns.exec("nft -a list ruleset");
    assert!(ruleset.contains("tcp dport 9200 drop comment \"vigil: forgotten debug port\""), "{ruleset}");
    assert!(out.facts.undo[0].contains("delete rule inet vigil input handle"), "{:?}", out.facts.undo);
    assert_eq!(out.facts.undo.len(), 3, "rule, chain, table: {:?}", out.facts.undo);
    assert!(ns.dropped(9200), "the rule really drops traffic");

    // Blocking it again is refused; so is cutting the SSH session's port, with nothing changed.
    let e = FirewallDenyPort.plan(&ctx, &deny(9200)).await.unwrap_err();
    assert!(matches!(e, ToolError::Refused(ref m) if m.contains("already")), "{e}");
    let e = FirewallDenyPort.plan(&ctx, &deny(22)).await.unwrap_err();
    assert!(matches!(e, ToolError::Refused(ref m) if m.contains("SSH port of the session")), "{e}");
    let e = FirewallDenyPort.run(&ctx, deny(22)).await.unwrap_err();
    assert!(matches!(e, ToolError::Refused(_)), "{e}");
    assert_eq!(ns.exec("nft -a list ruleset").1, ruleset, "a refusal changes nothing");

    undo(&out.facts.undo);
    let (_, after) = ns.exec("nft list ruleset");
    assert!(!after.contains("vigil"), "undo removed rule, chain and table: {after}");
    assert!(!ns.dropped(9200));
}

#[tokio::test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "ip", vigil_missing = "nft"),
    ignore = "needs root, ip, nft (.ci/packages/fixes.txt)"
)]
async fn a_host_that_changed_after_the_plan_is_refused() {
    vigil_testkit::require(&["root", "ip", "nft"]);
    let ns = Netns::new(false);
    assert_eq!(ns.exec("nft add table inet filter").0, 0);
    let ctx = ns.ctx(None);
    let reg = Registry::builtin();
    let input = serde_json::to_value(deny(9300)).unwrap();
    let planned = reg.plan(&ctx, "firewall_deny_port", input.clone()).await.unwrap();
    let approval = approver().approve(&planned);
    // Someone creates vigil's table between the plan and the confirmation.
    assert_eq!(ns.exec("nft add table inet vigil").0, 0);
    let e = reg.run_approved(&ctx, "firewall_deny_port", input.clone(), approval).await.unwrap_err();
    assert!(matches!(e, ToolError::Refused(ref m) if m.contains("changed since the plan")), "{e}");
    assert!(e.to_string().contains("nothing was done"), "{e}");
    assert!(!ns.exec("nft list ruleset").1.contains("9300"), "nothing was run");
    // And a change run without an approval is refused.
    let e = reg.call(&ctx, "firewall_deny_port", input).await.unwrap_err();
    assert!(matches!(e, ToolError::Refused(ref m) if m.contains("only with an approval")), "{e}");
    assert!(!ns.exec("nft list ruleset").1.contains("9300"), "nothing was run");
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "ip",
        vigil_missing = "iptables",
        vigil_missing = "ip6tables",
        vigil_missing = "bash",
        vigil_missing = "timeout"
    ),
    ignore = "needs root, ip, iptables, ip6tables, bash, timeout (.ci/packages/fixes.txt)"
)]
async fn iptables_rules_for_both_families_and_their_undo() {
    vigil_testkit::require(&["root", "ip", "iptables", "ip6tables", "bash", "timeout"]);
    let ns = Netns::new(false);
    let ctx = ns.ctx(Some(2222));
    let out = Registry::builtin().call(&ctx, "firewall_deny_port", serde_json::to_value(deny(9200)).unwrap()).await;
    assert!(matches!(out, Err(ToolError::Refused(_))), "run without an approval: {out:?}");
    let plan = FirewallDenyPort.plan(&ctx, &deny(9200)).await.unwrap();
    assert_eq!(plan.steps.len(), 2, "{}", plan.render());
    assert!(
        plan.render().contains(
            "iptables -I INPUT -p tcp --dport 9200 -m comment --comment 'vigil: forgotten debug port' -j DROP"
        ),
        "{}",
        plan.render()
    );
    let out = FirewallDenyPort.run(&ctx, deny(9200)).await.unwrap();
    assert_eq!(out.facts.backend, Backend::Iptables);
    for prog in ["iptables", "ip6tables"] {
        let (_, s) = ns.exec(&format!("{prog} -S INPUT"));
        assert!(s.contains("--dport 9200 -m comment --comment \"vigil: forgotten debug port\" -j DROP"), "{prog}: {s}");
    }
    assert!(ns.dropped(9200));
    assert_eq!(out.facts.undo.len(), 2);
    assert!(out.facts.undo[0].contains("ip6tables -D INPUT"), "{:?}", out.facts.undo);
    undo(&out.facts.undo);
    for prog in ["iptables", "ip6tables"] {
        assert!(!ns.exec(&format!("{prog} -S INPUT")).1.contains("9200"), "{prog} rule removed");
    }
    assert!(!ns.dropped(9200));
    // udp works the same way and is not confused with the tcp SSH port.
    let udp = DenyPortInput { port: 2222, proto: Proto::Udp, reason: "stray udp".into() };
    FirewallDenyPort.plan(&ctx, &udp).await.unwrap();
    let out = FirewallDenyPort.run(&ctx, udp).await.unwrap();
    assert!(ns.exec("iptables -S INPUT").1.contains("-p udp -m udp --dport 2222"));
    undo(&out.facts.undo);
}

#[tokio::test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "ip", vigil_missing = "ufw"),
    ignore = "needs root, ip, ufw (.ci/packages/fixes.txt)"
)]
async fn ufw_replaces_the_forgotten_allow_and_the_undo_restores_it() {
    vigil_testkit::require(&["root", "ip", "ufw"]);
    let ns = Netns::new(true);
    let (rc, o) = ns.exec("ufw --force enable && ufw allow 80/tcp && ufw allow 9200/tcp comment \"es debug\"");
    assert_eq!(rc, 0, "{o}");
    let before = ns.exec("ufw show added").1;
    let ctx = ns.ctx(Some(22));
    let plan = FirewallDenyPort.plan(&ctx, &deny(9200)).await.unwrap();
    let text = plan.render();
    assert!(text.contains("ufw delete allow 9200/tcp"), "{text}");
    assert!(text.contains("ufw insert 1 deny 9200/tcp comment 'vigil: forgotten debug port'"), "{text}");
    let out = FirewallDenyPort.run(&ctx, deny(9200)).await.unwrap();
    assert_eq!(out.facts.backend, Backend::Ufw);
    let status = ns.exec("ufw status numbered").1;
    let first = status.lines().find(|l| l.starts_with("[ 1]")).unwrap_or_default();
    assert!(
        first.contains("9200/tcp") && first.contains("DENY IN") && first.contains("vigil: forgotten debug port"),
        "{status}"
    );
    assert!(!status.contains("ALLOW IN    Anywhere                   # es debug"), "{status}");
    assert!(status.contains("80/tcp"), "other rules stay: {status}");
    assert_eq!(
        out.facts.undo,
        vec![
            format!("ip netns exec {} ufw delete deny 9200/tcp", ns.0),
            format!("ip netns exec {} ufw allow 9200/tcp comment 'es debug'", ns.0)
        ]
    );
    undo(&out.facts.undo);
    let after = ns.exec("ufw show added").1;
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&after), sorted(&before), "the undo restores the original rules");
    let e = FirewallDenyPort.plan(&ctx, &deny(22)).await.unwrap_err();
    assert!(matches!(e, ToolError::Refused(_)), "{e}");
}

/// A throwaway account, removed when dropped.
struct TempUser(String);

impl TempUser {
    fn new() -> TempUser {
        let name = format!("vgtmp{}x{}", std::process::id() % 100_000, N.fetch_add(1, Ordering::SeqCst));
        let (rc, o) = sh(&format!("useradd -m -s /bin/bash {name} && echo '{name}:Zq7-throwaway-Pw' | chpasswd"));
        assert_eq!(rc, 0, "{o}");
        TempUser(name)
    }

    fn status(&self) -> String {
        sh(&format!("passwd -S {}", self.0)).1.split_whitespace().nth(1).unwrap_or("").to_string()
    }

    fn expiry(&self) -> String {
        sh(&format!("getent shadow {}", self.0)).1.trim().split(':').nth(7).unwrap_or("?").to_string()
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = sh(&format!("userdel -r {} 2>/dev/null", self.0));
    }
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "usermod",
        vigil_missing = "passwd",
        vigil_missing = "chpasswd",
        vigil_missing = "getent"
    ),
    ignore = "needs root, useradd, userdel, usermod, passwd, chpasswd, getent (.ci/packages/fixes.txt)"
)]
async fn lock_account_locks_and_expires_a_throwaway_user_and_undoes() {
    vigil_testkit::require(&["root", "useradd", "userdel", "usermod", "passwd", "chpasswd", "getent"]);
    let u = TempUser::new();
    assert_eq!(u.status(), "P");
    let reg = Registry::builtin();
    let ctx =
        Ctx::new(Host::live()).with_session(SessionInfo { user: Some("someone-else".into()), ..Default::default() });
    let input = json!({"user": u.0, "reason": "contract ended 2026-10-31"});
    let planned = reg.plan(&ctx, "lock_account", input.clone()).await.unwrap();
    let plan = &planned.plan;
    assert_eq!(plan.steps[0].command.as_deref(), Some(format!("usermod --lock --expiredate 1 {}", u.0).as_str()));
    assert_eq!(plan.steps[0].undo.as_deref(), Some(format!("usermod --unlock --expiredate '' {}", u.0).as_str()));
    let out = reg.run_approved(&ctx, "lock_account", input.clone(), approver().approve(&planned)).await.unwrap();
    assert_eq!(u.status(), "L", "password locked");
    assert_eq!(u.expiry(), "1", "account expired");
    assert_eq!(out.facts["expired"], true);
    let undo_cmds: Vec<String> =
        out.facts["undo"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    // Locking again is refused, nothing to do.
    let e = reg.plan(&ctx, "lock_account", input.clone()).await.unwrap_err();
    assert!(e.to_string().contains("already locked"), "{e}");
    undo(&undo_cmds);
    assert_eq!(u.status(), "P", "unlocked again");
    assert_eq!(u.expiry(), "", "expiry cleared as before");

    // The account running the session is refused, and nothing changes.
    let mine = Ctx::new(Host::live()).with_session(SessionInfo { user: Some(u.0.clone()), ..Default::default() });
    let e = reg.plan(&mine, "lock_account", input).await.unwrap_err();
    assert!(e.to_string().contains("running this session"), "{e}");
    assert_eq!(u.status(), "P");
    let e = reg.plan(&ctx, "lock_account", json!({"user": "root", "reason": "x"})).await.unwrap_err();
    assert!(e.to_string().contains("uid 0"), "{e}");
    let e = reg.plan(&ctx, "lock_account", json!({"user": "no-such-user-here", "reason": "x"})).await.unwrap_err();
    assert!(e.to_string().contains("no account named"), "{e}");
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "usermod",
        vigil_missing = "passwd",
        vigil_missing = "chpasswd",
        vigil_missing = "getent"
    ),
    ignore = "needs root, useradd, userdel, usermod, passwd, chpasswd, getent (.ci/packages/fixes.txt)"
)]
async fn an_expiry_date_is_restored_by_the_undo() {
    vigil_testkit::require(&["root", "useradd", "userdel", "usermod", "passwd", "chpasswd", "getent"]);
    let u = TempUser::new();
    assert_eq!(sh(&format!("usermod --expiredate 2031-05-01 {}", u.0)).0, 0);
    let before = u.expiry();
    let ctx = Ctx::new(Host::live()).with_session(SessionInfo::default());
    let input = vigil_tools::fixes::lock_account::LockInput { user: u.0.clone(), reason: "left".into() };
    vigil_tools::fixes::LockAccount.plan(&ctx, &input).await.unwrap();
    let out = vigil_tools::fixes::LockAccount.run(&ctx, input).await.unwrap();
    assert_eq!(out.facts.previous_expiry.as_deref(), Some("2031-05-01"));
    undo(&out.facts.undo);
    assert_eq!(u.expiry(), before);
    assert_eq!(u.status(), "P");
}

// ---- verify_backup_restore ----

struct Backups {
    dir: tempfile::TempDir,
}

impl Backups {
    fn new() -> Backups {
        Backups { dir: tempfile::tempdir().unwrap() }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn ctx(&self, jobs: &[(&str, &str)]) -> Ctx {
        let mut toml = String::new();
        for (name, glob) in jobs {
            toml.push_str(&format!("[[backups]]\nname = \"{name}\"\npath = \"{}\"\n", self.p(glob).display()));
        }
        let cfg = Config::parse(&toml, Path::new("test.toml")).unwrap();
        Ctx::new(Host::live()).with_config(cfg).with_state_dir(self.p("state"))
    }
    fn record(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.p("state/restore-tests.json")).unwrap()).unwrap()
    }
    fn scratch_left(&self) -> bool {
        std::fs::read_dir(self.p("state"))
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("vigil-restore-")))
            .unwrap_or(false)
    }
}

async fn restore(ctx: &Ctx, job: &str) -> vigil_tools::ToolResult {
    let reg = Registry::builtin();
    let planned = reg.plan(ctx, "verify_backup_restore", json!({"job": job})).await.unwrap();
    let summary = &planned.plan.summary;
    assert!(summary.contains("nothing on the host changes except the record file"), "{summary}");
    reg.run_approved(ctx, "verify_backup_restore", json!({"job": job}), approver().approve(&planned)).await.unwrap()
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "tar",
        vigil_missing = "gzip",
        vigil_missing = "touch",
        vigil_missing = "truncate"
    ),
    ignore = "needs root, tar, gzip, touch, truncate (.ci/packages/fixes.txt)"
)]
async fn tar_gz_and_zip_restore_and_truncation_is_caught() {
    vigil_testkit::require(&["root", "tar", "gzip", "touch", "truncate"]);
    let b = Backups::new();
    let (rc, o) = sh(&format!(
        "set -e; cd {d}; mkdir -p src/site/wp-content site zip broken plain; \
         for i in 1 2 3 4 5; do head -c 20000 /dev/urandom > src/site/wp-content/f$i.bin; done; echo '<?php' > src/site/index.php; \
         tar -C src -czf site/site-old.tar.gz site/index.php; touch -d '2026-01-01' site/site-old.tar.gz; \
         tar -C src -czf site/site-new.tar.gz site; \
         cp site/site-new.tar.gz broken/site.tar.gz; truncate -s 50000 broken/site.tar.gz; \
         tar -C src -cf plain/site.tar site/index.php site/wp-content/f1.bin; \
         tar -C src -cf plain/cut.tar site/index.php site/wp-content/f1.bin; truncate -s 1024 plain/cut.tar",
        d = b.dir.path().display()
    ));
    assert_eq!(rc, 0, "{o}");
    {
        let f = std::fs::File::create(b.p("zip/site.zip")).unwrap();
        let mut z = zip::ZipWriter::new(f);
        for i in 0..3 {
            z.start_file(format!("site/page{i}.html"), zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut z, &vec![b'a' + i as u8; 30_000]).unwrap();
        }
        z.finish().unwrap();
        std::fs::copy(b.p("zip/site.zip"), b.p("broken/site.zip")).unwrap();
        let len = std::fs::metadata(b.p("broken/site.zip")).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(b.p("broken/site.zip")).unwrap().set_len(len - 200).unwrap();
    }
    let ctx = b.ctx(&[
        ("site", "site/*.tar.gz"),
        ("zip", "zip/*.zip"),
        ("broken", "broken/*.tar.gz"),
        ("brokenzip", "broken/*.zip"),
        ("plain", "plain/site.tar"),
        ("cut", "plain/cut.tar"),
    ]);

    let t = std::time::Instant::now();
    let out = restore(&ctx, "site").await;
    println!("tar.gz restore of 6 files took {:?}", t.elapsed());
    assert_eq!(out.facts["ok"], true, "{}", out.facts);
    assert!(out.facts["archive"].as_str().unwrap().ends_with("site-new.tar.gz"), "newest archive: {}", out.facts);
    assert_eq!(out.facts["files"], 6);
    assert_eq!(out.facts["bytes"], 100_006);
    assert_eq!(out.facts["scratch_removed"], true);
    assert!(out.findings.is_empty());
    assert!(!b.scratch_left());
    let rec = b.record();
    assert_eq!(rec["site"]["ok"], true);
    assert_eq!(rec["site"]["files"], 6);
    assert!(rec["site"]["at"].as_i64().unwrap() > 1_700_000_000);

    let out = restore(&ctx, "zip").await;
    assert_eq!(out.facts["ok"], true, "{}", out.facts);
    assert_eq!(out.facts["files"], 3);
    assert_eq!(out.facts["bytes"], 90_000);

    let out = restore(&ctx, "plain").await;
    assert_eq!(out.facts["ok"], true, "{}", out.facts);
    assert_eq!(out.facts["files"], 2);

    for job in ["broken", "brokenzip", "cut"] {
        let out = restore(&ctx, job).await;
        assert_eq!(out.facts["ok"], false, "{job}: {}", out.facts);
        assert_eq!(out.facts["scratch_removed"], true);
        assert_eq!(out.findings[0].id, "backups.restore-failed", "{job}");
        assert_eq!(b.record()[job]["ok"], false, "{job}");
        println!("{job}: {}", out.facts["detail"]);
    }
    assert!(!b.scratch_left(), "scratch directories removed, also on failure");
    assert_eq!(b.record()["site"]["ok"], true, "other jobs' records are kept");
}

const DUMP: &str = "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n\
--\n-- Host: localhost    Database: shop\n\
/*!40101 SET NAMES utf8mb4 */;\n\
DROP TABLE IF EXISTS `wp_options`;\n\
CREATE TABLE `wp_options` (\n  `option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n  `option_name` varchar(191) NOT NULL DEFAULT '',\n  `option_value` longtext NOT NULL,\n  PRIMARY KEY (`option_id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
INSERT INTO `wp_options` VALUES (1,'siteurl','https://shop.example'),(2,'blogname','Shop');\n\
CREATE TABLE `wp_posts` (\n  `ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n  `post_title` text NOT NULL,\n  PRIMARY KEY (`ID`)\n) ENGINE=InnoDB;\n\
INSERT INTO `wp_posts` VALUES (1,'Hello');\n\
CREATE TABLE `wc_orders` (`id` int NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;\n\
-- Dump completed on 2026-11-26  3:00:01\n";

#[tokio::test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "gzip", vigil_missing = "@mariadb"),
    ignore = "needs root, gzip, MariaDB (.ci/packages/fixes.txt)"
)]
async fn a_sql_dump_loads_into_a_throwaway_mariadb() {
    vigil_testkit::require(&["root", "gzip", "@mariadb"]);
    let b = Backups::new();
    std::fs::create_dir_all(b.p("db")).unwrap();
    std::fs::create_dir_all(b.p("bad")).unwrap();
    std::fs::create_dir_all(b.p("cut")).unwrap();
    std::fs::write(b.p("db/shop.sql"), DUMP).unwrap();
    assert_eq!(sh(&format!("gzip {}", b.p("db/shop.sql").display())).0, 0);
    std::fs::write(b.p("bad/shop.sql"), DUMP.replace("INSERT INTO `wp_posts`", "INSERT INTO `wp_missing`")).unwrap();
    std::fs::write(b.p("cut/shop.sql"), &DUMP[..DUMP.find("CREATE TABLE `wc_orders`").unwrap()]).unwrap();
    let ctx = b.ctx(&[("db", "db/*.sql.gz"), ("bad", "bad/*.sql"), ("cut", "cut/*.sql")]);

    let t = std::time::Instant::now();
    let out = restore(&ctx, "db").await;
    println!("sql.gz load into a throwaway MariaDB took {:?}: {}", t.elapsed(), out.facts["detail"]);
    assert_eq!(out.facts["ok"], true, "{}", out.facts);
    assert_eq!(out.facts["tables"], 3);
    assert_eq!(out.facts["scratch_removed"], true);
    assert_eq!(b.record()["db"]["ok"], true);

    let out = restore(&ctx, "bad").await;
    assert_eq!(out.facts["ok"], false, "{}", out.facts);
    assert!(out.facts["detail"].as_str().unwrap().contains("does not load"), "{}", out.facts);

    let out = restore(&ctx, "cut").await;
    assert_eq!(out.facts["ok"], false, "{}", out.facts);
    assert!(out.facts["detail"].as_str().unwrap().contains("cut off"), "{}", out.facts);
    assert!(!b.scratch_left());
    // The throwaway servers run in /var/tmp/vigil-mariadb-*: none outlives its directory.
    let (_, ps) = sh("for p in $(pgrep mariadbd); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done");
    for l in ps.lines().filter(|l| l.contains("--datadir=/var/tmp/vigil-mariadb-")) {
        let dir = l.split("--datadir=").nth(1).unwrap().split(' ').next().unwrap();
        assert!(Path::new(dir).exists(), "a throwaway server outlived its directory: {l}");
    }
}
