//! verify_backup_restore against hostile backups, for real: whoever can write a
//! backup tries to run commands, write files, read /etc/shadow, redirect the
//! server's log and load a plugin through a SQL dump (plain, gzipped and inside a
//! tar) loaded into a real throwaway MariaDB; an empty archive and a 30,000-member
//! tar on a small tmpfs try to pass or exhaust the scratch filesystem. Each attack
//! must fail, leave nothing behind and be reported as a failed restore test with
//! its reason. Packages: `.ci/packages/fixes.txt` (mariadb-server, util-linux).
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use vigil_testkit::sh;
use vigil_tools::{Config, Ctx, Host, Registry};

mod approve;
use approve::approved;

/// A directory of backups and a state directory; jobs by glob.
struct Backups {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Backups {
    fn new() -> Backups {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        Backups { dir, state }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, body: &[u8]) -> PathBuf {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        p
    }
    fn ctx(&self, jobs: &[(&str, &str, Option<u64>)]) -> Ctx {
        let mut toml = String::new();
        for (name, glob, max) in jobs {
            toml.push_str(&format!("[[backups]]\nname = \"{name}\"\npath = \"{}\"\n", self.p(glob).display()));
            if let Some(m) = max {
                toml.push_str(&format!("max_members = {m}\n"));
            }
        }
        let cfg = Config::parse(&toml, Path::new("test.toml")).unwrap();
        Ctx::new(Host::live()).with_config(cfg).with_state_dir(&self.state)
    }
    fn record(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.state.join("restore-tests.json")).unwrap()).unwrap()
    }
}

async fn restore(ctx: &Ctx, job: &str) -> Value {
    let reg = Registry::builtin();
    let out = approved(&reg, ctx, "verify_backup_restore", json!({"job": job})).await.unwrap();
    let mut v = out.facts.clone();
    v["findings"] = serde_json::to_value(&out.findings).unwrap();
    v
}

/// A restore that must have failed, with a reason, a finding and a record saying so.
fn assert_failed(b: &Backups, job: &str, v: &Value, reason: &str) {
    let detail = v["detail"].as_str().unwrap();
    assert_eq!(v["ok"], false, "{job}: {v:#}");
    assert!(detail.contains(reason), "{job}: the reason should say `{reason}`: {detail}");
    assert_eq!(v["scratch_removed"], true, "{job}");
    assert_eq!(v["findings"][0]["id"], "backups.restore-failed", "{job}");
    assert_eq!(b.record()[job]["ok"], false, "{job}: recorded as failed");
    println!("{job}: {detail}");
}

fn dump(body: &str) -> String {
    format!(
        "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n\
         -- Host: localhost    Database: shop\n/*!40101 SET NAMES utf8mb4 */;\n\
         DROP TABLE IF EXISTS `wp_options`;\n\
         CREATE TABLE `wp_options` (`option_id` bigint unsigned NOT NULL, `option_value` longtext NOT NULL, \
         PRIMARY KEY (`option_id`)) ENGINE=InnoDB;\n\
         INSERT INTO `wp_options` VALUES (1,'https://shop.example');\n\
         {body}\n\
         CREATE TABLE `wp_posts` (`ID` bigint unsigned NOT NULL, PRIMARY KEY (`ID`)) ENGINE=InnoDB;\n\
         -- Dump completed on 2026-11-26  3:00:01\n"
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, data).unwrap();
    e.finish().unwrap()
}

/// A tar of the site: a page and `backup/db.sql`.
fn tar_with(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, body) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, *body).unwrap();
    }
    t.into_inner().unwrap()
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "@mariadb",
        vigil_missing = "unshare",
        vigil_missing = "setpriv",
        vigil_missing = "tar"
    ),
    ignore = "needs root, MariaDB, unshare, setpriv, tar (.ci/packages/fixes.txt)"
)]
async fn hostile_dumps_gain_nothing_and_fail_the_test() {
    vigil_testkit::require(&["root", "@mariadb", "unshare", "setpriv", "tar"]);
    // Where the attacks write: world-writable, so only vigil's confinement can stop them.
    let drop_dir = tempfile::Builder::new().prefix("vigil-hostile-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(drop_dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let x = |n: &str| drop_dir.path().join(n).display().to_string();
    let attacks: Vec<(&str, String, &str)> = vec![
        ("shell", format!("\\! id > {}", x("X1")), "sandbox"),
        ("system", format!("system touch {}", x("X2")), "sandbox"),
        ("outfile", format!("SELECT 'x' INTO OUTFILE '{}';", x("X3")), "FILE privilege"),
        (
            "shadow",
            "CREATE TABLE `leak` (`x` longblob NOT NULL);\nINSERT INTO `leak` SELECT LOAD_FILE('/etc/shadow');"
                .to_string(),
            "cannot be null",
        ),
        ("genlog", format!("SET GLOBAL general_log_file='{}';\nSET GLOBAL general_log=1;", x("X4")), "SUPER"),
        ("plugin", "INSTALL SONAME 'x';".to_string(), "Can't open shared library"),
    ];
    let b = Backups::new();
    let mut jobs = Vec::new();
    for (name, attack, _) in &attacks {
        let text = dump(attack);
        b.write(&format!("{name}/sql/shop.sql"), text.as_bytes());
        b.write(&format!("{name}/gz/shop.sql.gz"), &gzip(text.as_bytes()));
        b.write(
            &format!("{name}/tar/site.tar"),
            &tar_with(&[("site/index.php", b"<?php echo 1;\n"), ("site/backup/db.sql", text.as_bytes())]),
        );
        for kind in ["sql", "gz", "tar"] {
            jobs.push((format!("{name}-{kind}"), format!("{name}/{kind}/*")));
        }
    }
    let job_refs: Vec<(&str, &str, Option<u64>)> = jobs.iter().map(|(n, g)| (n.as_str(), g.as_str(), None)).collect();
    let ctx = b.ctx(&job_refs);
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    for (name, _, reason) in &attacks {
        for kind in ["sql", "gz", "tar"] {
            let job = format!("{name}-{kind}");
            let t = std::time::Instant::now();
            let v = restore(&ctx, &job).await;
            println!("{job} took {:?}", t.elapsed());
            assert_failed(&b, &job, &v, reason);
            let text = v.to_string();
            for line in shadow.lines().filter(|l| l.len() > 8) {
                assert!(!text.contains(line), "{job}: /etc/shadow content in the result");
            }
        }
    }
    for f in ["X1", "X2", "X3", "X4"] {
        assert!(!drop_dir.path().join(f).exists(), "{f} was created by the hostile dump");
    }
    let left: Vec<_> = std::fs::read_dir(drop_dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing written by the dumps: {left:?}");
    assert_eq!(orphan_servers(), Vec::<String>::new(), "no throwaway server left running");
}

/// Throwaway servers still running whose scratch directory is already gone (other
/// tests' servers, still in use, keep theirs).
pub fn orphan_servers() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let Some(at) = cmd.find("--datadir=/var/tmp/vigil-mariadb-") else { continue };
        let dir = cmd[at + "--datadir=".len()..].split(' ').next().unwrap_or("").to_string();
        if cmd.contains("mariadbd") && !Path::new(&dir).exists() {
            out.push(cmd);
        }
    }
    out
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "@mariadb",
        vigil_missing = "unshare",
        vigil_missing = "setpriv",
        vigil_missing = "tar"
    ),
    ignore = "needs root, MariaDB, unshare, setpriv, tar (.ci/packages/fixes.txt)"
)]
async fn archives_that_restore_nothing_fail() {
    vigil_testkit::require(&["root", "@mariadb", "unshare", "setpriv", "tar"]);
    // As a scheduled run has it (systemd's UMask=0077): the server must still read what it needs.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o077) };
    let b = Backups::new();
    b.write("empty/site.tar", &tar_with(&[]));
    b.write("dirsonly/site.zip", &{
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.add_directory("site/", zip::write::SimpleFileOptions::default()).unwrap();
        z.finish().unwrap().into_inner()
    });
    b.write("blank/shop.sql", b"");
    // CREATE TABLE only inside a comment: read-through sees one, the server makes none.
    b.write(
        "notables/shop.sql",
        b"-- MariaDB dump 10.19\n/*\nCREATE TABLE t (a int);\n*/\nSELECT 1;\n-- Dump completed on 2026-11-26\n",
    );
    // A normal dump inside a site tar still passes, its tables counted.
    let good = dump("INSERT INTO `wp_options` VALUES (2,'Shop');");
    b.write(
        "good/site.tar",
        &tar_with(&[("site/index.php", b"<?php echo 1;\n"), ("site/backup/db.sql", good.as_bytes())]),
    );
    let ctx = b.ctx(&[
        ("empty", "empty/*", None),
        ("dirsonly", "dirsonly/*", None),
        ("blank", "blank/*", None),
        ("notables", "notables/*", None),
        ("good", "good/*", None),
    ]);
    assert_failed(&b, "empty", &restore(&ctx, "empty").await, "restores nothing");
    assert_failed(&b, "dirsonly", &restore(&ctx, "dirsonly").await, "restores nothing");
    assert_failed(&b, "blank", &restore(&ctx, "blank").await, "restores nothing");
    assert_failed(&b, "notables", &restore(&ctx, "notables").await, "created no tables");
    let v = restore(&ctx, "good").await;
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["files"], 2);
    assert_eq!(v["tables"], 2, "{v:#}");
    assert_eq!(orphan_servers(), Vec::<String>::new(), "no throwaway server left running");
    assert!(v["detail"].as_str().unwrap().contains("loaded into a throwaway MariaDB: 2 tables"), "{v:#}");
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "mount", vigil_missing = "umount"),
    ignore = "needs root, mount, umount (.ci/packages/fixes.txt)"
)]
async fn thirty_thousand_members_stop_at_the_inode_floor() {
    vigil_testkit::require(&["root", "mount", "umount"]);
    let b = Backups::new();
    std::fs::create_dir_all(&b.state).unwrap();
    let (rc, o) = sh(&format!("mount -t tmpfs -o size=64m,nr_inodes=5000,mode=0700 tmpfs {}", b.state.display()));
    assert_eq!(rc, 0, "mount: {o}");
    let _mount = Tmpfs(b.state.clone());
    let members: Vec<(String, Vec<u8>)> =
        (0..30_000).map(|i| (format!("site/wp-content/uploads/{}/f{i}.txt", i / 1000), b"x".to_vec())).collect();
    let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    b.write("many/site.tar", &tar_with(&refs));
    b.write("capped/site.tar", &tar_with(&refs[..300]));
    let ctx = b.ctx(&[("many", "many/*", None), ("capped", "capped/*", Some(200))]);
    let free_before = inodes_free(&b.state);

    let t = std::time::Instant::now();
    let v = restore(&ctx, "many").await;
    println!("30,000-member tar on a 5,000-inode tmpfs stopped after {:?}", t.elapsed());
    assert_failed(&b, "many", &v, "free inodes");
    assert!(v["files"].as_u64().unwrap() < 5_000, "{v:#}");
    // The scratch directory is gone: every inode it took is free again (the record takes one).
    assert!(inodes_free(&b.state) + 2 >= free_before, "inodes given back");

    let v = restore(&ctx, "capped").await;
    assert_failed(&b, "capped", &v, "more than 200 members");
}

fn inodes_free(dir: &Path) -> u64 {
    let (_, o) = sh(&format!("stat -f -c %d {}", dir.display()));
    o.trim().parse().unwrap()
}

/// A MariaDB server for the site's database, run by the test on a private socket.
struct SiteDb {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl SiteDb {
    fn start() -> SiteDb {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let (rc, o) = sh(&format!(
            "mkdir -p {d}/tmp && mariadb-install-db --no-defaults --user=root --datadir={d}/db --tmpdir={d}/tmp \
             --auth-root-authentication-method=socket --skip-test-db"
        ));
        assert_eq!(rc, 0, "{o}");
        let child = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--skip-networking"])
            .arg(format!("--datadir={d}/db"))
            .arg(format!("--tmpdir={d}/tmp"))
            .arg(format!("--socket={d}/mysqld.sock"))
            .arg(format!("--pid-file={d}/mysqld.pid"))
            .arg(format!("--log-error={d}/db.err"))
            .spawn()
            .unwrap();
        let db = SiteDb { dir, child };
        for _ in 0..100 {
            if sh(&format!("mariadb-admin --no-defaults --socket={} ping", db.sock())).0 == 0 {
                return db;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("MariaDB did not start: {}", std::fs::read_to_string(format!("{d}/db.err")).unwrap_or_default());
    }
    fn sock(&self) -> String {
        format!("{}/mysqld.sock", self.dir.path().display())
    }
    fn sql(&self, q: &str) -> String {
        let sock = format!("--socket={}", self.sock());
        let o = Command::new("mariadb").args(["--no-defaults", &sock, "-N", "-B", "-e", q]).output().unwrap();
        assert!(o.status.success(), "{q}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for SiteDb {
    fn drop(&mut self) {
        let _ = Command::new("mariadb-admin")
            .args(["--no-defaults", &format!("--socket={}", self.sock()), "shutdown"])
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "@mariadb"),
    ignore = "needs root, MariaDB (.ci/packages/fixes.txt)"
)]
async fn wp_stage_and_rollback_load_hostile_dumps_sandboxed() {
    use vigil_tools::wpupdate::db::Db;
    vigil_testkit::require(&["root", "@mariadb"]);
    let db = SiteDb::start();
    db.sql("CREATE DATABASE wp; CREATE USER 'wp'@'localhost' IDENTIFIED BY 'S3cret-pass'; GRANT ALL ON wp.* TO 'wp'@'localhost'");
    let t = tempfile::tempdir().unwrap();
    let site = t.path().join("www/shop");
    std::fs::create_dir_all(site.join("wp-includes")).unwrap();
    std::fs::write(site.join("wp-includes/version.php"), "<?php\n$wp_version = '6.1.9';\n").unwrap();
    std::fs::write(
        site.join("wp-config.php"),
        format!(
            "<?php\ndefine('DB_NAME', 'wp');\ndefine('DB_USER', 'wp');\ndefine('DB_PASSWORD', 'S3cret-pass');\n\
             define('DB_HOST', 'localhost:{}');\n$table_prefix = 'wp_';\n",
            db.sock()
        ),
    )
    .unwrap();
    let cfg = Config::parse(
        &format!("[wordpress]\nweb_roots = [\"{}\"]\n", t.path().join("www").display()),
        Path::new("test.toml"),
    )
    .unwrap();
    let ctx = Ctx::new(Host::live()).with_config(cfg);
    let found = vigil_tools::wordpress::discover_sites(&ctx);
    let s = found.iter().find(|s| s.path == site.display().to_string()).unwrap_or_else(|| panic!("{found:#?}"));
    let private = t.path().join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let handle = Db::open(&ctx, s, &private).unwrap();

    let drop_dir = tempfile::Builder::new().prefix("vigil-hostile-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(drop_dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let x = |n: &str| drop_dir.path().join(n).display().to_string();
    for (name, attack) in [("shell", format!("\\! id > {}", x("X1"))), ("system", format!("system touch {}", x("X2")))]
    {
        let f = t.path().join(format!("{name}.sql"));
        std::fs::write(&f, dump(&attack)).unwrap();
        // The staging load and the rollback's restore both go through the sandboxed client.
        let e = handle.load(&ctx, "wp", &f).await.unwrap_err().to_string();
        assert!(e.contains("sandbox"), "{name}: {e}");
        let e = handle.restore(&ctx, "wp", &f).await.unwrap_err().to_string();
        assert!(e.contains("sandbox"), "{name}: {e}");
        assert!(!e.contains("S3cret-pass"), "the password is never in an error");
    }
    assert!(!drop_dir.path().join("X1").exists() && !drop_dir.path().join("X2").exists(), "no command ran");
    // A plain dump still loads.
    let f = t.path().join("good.sql");
    std::fs::write(&f, dump("INSERT INTO `wp_options` VALUES (2,'Shop');")).unwrap();
    handle.restore(&ctx, "wp", &f).await.unwrap();
    assert_eq!(db.sql("SELECT COUNT(*) FROM wp.wp_options").trim(), "2");
}
