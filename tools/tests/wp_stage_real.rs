//! Staged WordPress updates against the real thing: Debian's WordPress 6.1 with
//! Akismet 5.0.2, PHP 8.2 and MariaDB, all started by the test on loopback, and
//! a local HTTP server (in the test) playing downloads.wordpress.org with zips
//! built from the installed Akismet: a good 5.0.3 (with its checksum file), one
//! whose main file dies with a PHP fatal error, and one with `../` members.
//! Covers: a bad zip is refused; the fatal package is caught on staging and
//! production stays byte-identical; an apply killed with SIGKILL at its health
//! check is undone by `recover` to identical files and tables; apply and
//! rollback (which first says what it discards); stage and apply while the site's
//! owner swaps files, directories and vigil's own new directories for symlinks to
//! root's files; site code cannot type into the terminal, outlive the check, or
//! write outside its staging copy. Packages: `.ci/packages/wpstage.txt`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vigil_testkit::mariadb::MariaDb;
use vigil_testkit::racer;
use vigil_testkit::{free_port, ok};
use vigil_tools::{Config, Ctx, Host, Registry};

mod approve;
use approve::{approved, approver};

const OWNER: u32 = 45678;

/// A WordPress site on a private MariaDB; everything stopped and removed on drop.
struct Wp {
    dir: PathBuf,
    db: MariaDb,
    downloads: u16,
}

/// The configuration every process of a test uses for the site under `dir`.
fn config_for(dir: &Path, downloads: impl std::fmt::Display) -> Config {
    let mut c = Config::default();
    c.wordpress.web_roots = vec![dir.join("www").display().to_string()];
    c.wordpress.download_base = Some(format!("http://127.0.0.1:{downloads}"));
    c.wordpress.staging_dir = Some(dir.join("staging").display().to_string());
    c.wordpress.key_pages = vec!["/?p=1".into()];
    c
}

impl Wp {
    fn site(&self) -> PathBuf {
        self.dir.join("www/site")
    }
    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn sql(&self, q: &str) -> String {
        self.db.sql(&format!("USE wp; {q}"))
    }

    /// The site's tables, as a dump without dates.
    fn tables(&self) -> String {
        ok(&format!("mariadb-dump --no-defaults --socket={} --skip-dump-date --skip-comments wp", self.db.sock))
    }

    fn config(&self) -> Config {
        config_for(&self.dir, self.downloads)
    }

    fn ctx(&self) -> Ctx {
        Ctx::new(Host::live()).with_config(self.config()).with_state_dir(self.state())
    }

    /// Kill any process still running from our directory (a killed apply's PHP server).
    fn kill_leftovers(&self) {
        let me = self.dir.display().to_string();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&me) && Some(pid as u32) != self.db.pid() {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }
}

impl Drop for Wp {
    fn drop(&mut self) {
        self.kill_leftovers();
        self.db.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup(downloads: u16) -> Wp {
    let t0 = Instant::now();
    let dir = PathBuf::from(format!("/tmp/vigil-wp-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(dir.join("www")).unwrap();
    ok(&format!("chmod 755 {0} {0}/www", dir.display()));
    let d = dir.display();
    let db = MariaDb::start(&dir.join("db"), "root", true);
    let port = db.port.unwrap();
    let sock = db.sock.clone();
    let wp = Wp { dir: dir.clone(), db, downloads };
    ok(&format!(
        "mariadb --no-defaults --socket={sock} -e \"CREATE DATABASE wp; CREATE USER 'wp'@'127.0.0.1' IDENTIFIED BY \
         'S3cret pass\\\"x'; GRANT ALL ON \\`wp%\\`.* TO 'wp'@'127.0.0.1';\""
    ));
    ok(&format!("cp -rL /usr/share/wordpress {d}/www/site && rm -f {d}/www/site/wp-config.php"));
    std::fs::write(
        wp.site().join("wp-config.php"),
        format!(
            "<?php\ndefine('DB_NAME', 'wp');\ndefine('DB_USER', 'wp');\ndefine('DB_PASSWORD', 'S3cret pass\"x');\n\
             define('DB_HOST', '127.0.0.1:{port}');\ndefine('DB_CHARSET', 'utf8mb4');\ndefine('DB_COLLATE', '');\n\
             define('WP_HOME', 'http://site.test');\ndefine('WP_SITEURL', 'http://site.test');\n\
             define('DISABLE_WP_CRON', true);\ndefine('WP_HTTP_BLOCK_EXTERNAL', true);\n$table_prefix = 'wp_';\n\
             if ( ! defined( 'ABSPATH' ) ) {{ define( 'ABSPATH', __DIR__ . '/' ); }}\n\
             require_once ABSPATH . 'wp-settings.php';\n"
        ),
    )
    .unwrap();
    ok(&format!("chown -R {OWNER}:{OWNER} {d}/www/site"));
    // Install through the real installer, as the site's owner.
    let php_port = free_port();
    let mut php = Command::new("setpriv")
        .args([
            &format!("--reuid={OWNER}"),
            &format!("--regid={OWNER}"),
            "--clear-groups",
            "php",
            "-S",
            &format!("127.0.0.1:{php_port}"),
            "-t",
            &format!("{d}/www/site"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", php_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let code = ok(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: site.test' --data-urlencode weblog_title=Shop \
         --data-urlencode user_name=admin --data-urlencode admin_password=pw-Very-long-1 --data-urlencode \
         admin_password2=pw-Very-long-1 --data pw_weak=1 --data-urlencode admin_email=a@example.com \
         'http://127.0.0.1:{php_port}/wp-admin/install.php?step=2'"
    ));
    assert_eq!(code.trim(), "200", "install");
    wp.sql("UPDATE wp_options SET option_value='a:1:{i:0;s:19:\"akismet/akismet.php\";}' WHERE option_name='active_plugins'");
    // Warm up as the health check would, so later checks write nothing new.
    for p in ["/", "/wp-login.php", "/?p=1", "/", "/wp-login.php", "/?p=1"] {
        ok(&format!("curl -s -o /dev/null -H 'Host: site.test' 'http://127.0.0.1:{php_port}{p}'"));
    }
    let _ = php.kill();
    let _ = php.wait();
    wp.kill_leftovers();
    println!("TIMING setup (MariaDB + WordPress install): {} ms", t0.elapsed().as_millis());
    wp
}

/// path → sha256 of every file under the site (symlinks by target).
fn checksums(dir: &Path) -> BTreeMap<String, String> {
    fn rec(base: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if ft.is_symlink() {
                out.insert(rel, format!("-> {}", std::fs::read_link(&p).unwrap().display()));
            } else if ft.is_dir() {
                out.insert(rel.clone(), "dir".into());
                rec(base, &p, out);
            } else {
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    let mut m = BTreeMap::new();
    rec(dir, dir, &mut m);
    m
}

/// Akismet from the site, zipped as WordPress.org would, with `edit` applied to akismet.php.
fn akismet_zip(
    site: &Path,
    edit: impl Fn(String) -> String,
    extra: &[(&str, &[u8])],
) -> (Vec<u8>, BTreeMap<String, String>) {
    let src = site.join("wp-content/plugins/akismet");
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut sums = BTreeMap::new();
    let mut stack = vec![src.clone()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files.sort();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        let mut body = std::fs::read(&f).unwrap();
        if rel == "akismet.php" {
            body = edit(String::from_utf8(body).unwrap()).into_bytes();
        }
        sums.insert(rel.clone(), hex::encode(Sha256::digest(&body)));
        w.start_file(format!("akismet/{rel}"), zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(&body).unwrap();
    }
    for (name, body) in extra {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(body).unwrap();
    }
    (w.finish().unwrap().into_inner(), sums)
}

fn bump(to: &'static str) -> impl Fn(String) -> String {
    move |s: String| s.replace("Version: 5.0.2", &format!("Version: {to}")).replace("'5.0.2'", &format!("'{to}'"))
}

/// A tiny HTTP server for the packages.
async fn serve(files: Arc<HashMap<String, Vec<u8>>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { continue };
            let files = files.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let resp = match files.get(&path) {
                    Some(b) => {
                        let mut r =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())
                                .into_bytes();
                        r.extend_from_slice(b);
                        r
                    }
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                let _ = s.write_all(&resp).await;
            });
        }
    });
    port
}

async fn gated(ctx: &Ctx, tool: &str, input: Value) -> Result<Value, String> {
    let r = Registry::builtin();
    let plan = r.plan(ctx, tool, input.clone()).await.map_err(|e| e.to_string())?;
    println!("{}", plan.plan.render());
    approved(&r, ctx, tool, input).await.map(|o| o.to_value()).map_err(|e| e.to_string())
}

fn timings(v: &Value) -> String {
    v["facts"]["timings"]
        .as_array()
        .map(|a| {
            a.iter().map(|t| format!("{} {} ms", t[0].as_str().unwrap_or(""), t[1])).collect::<Vec<_>>().join(", ")
        })
        .unwrap_or_default()
}

fn site_version(site: &Path) -> String {
    let t = std::fs::read_to_string(site.join("wp-content/plugins/akismet/akismet.php")).unwrap();
    t.lines().find_map(|l| l.trim().strip_prefix("Version: ")).unwrap_or("?").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    vigil_missing = "@wpstage",
    ignore = "needs root, Debian's WordPress, MariaDB, php, setpriv, unshare, curl, python3 (.ci/packages/wpstage.txt)"
)]
async fn stage_apply_kill_recover_rollback_on_real_wordpress() {
    vigil_testkit::require(&["@wpstage"]);
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let site_src = Path::new("/usr/share/wordpress");
    let (good, good_sums) = akismet_zip(site_src, bump("5.0.3"), &[]);
    let (fatal, _) =
        akismet_zip(site_src, |s| format!("{}\nakismet_vigil_no_such_function();\n", bump("5.0.4")(s)), &[]);
    let (evil, _) = akismet_zip(site_src, bump("5.0.5"), &[("akismet/../../../evil.php", b"<?php echo 1;")]);
    let (tampered, mut t_sums) = akismet_zip(site_src, bump("5.0.6"), &[]);
    t_sums.insert("akismet.php".into(), "00".repeat(32));
    let checks = |sums: &BTreeMap<String, String>| {
        let files: serde_json::Map<String, Value> =
            sums.iter().map(|(k, v)| (k.clone(), json!({"md5": "x", "sha256": v}))).collect();
        serde_json::to_vec(&json!({"plugin": "akismet", "files": files})).unwrap()
    };
    files.insert("/plugin/akismet.5.0.3.zip".into(), good);
    files.insert("/plugin-checksums/akismet/5.0.3.json".into(), checks(&good_sums));
    files.insert("/plugin/akismet.5.0.4.zip".into(), fatal);
    files.insert("/plugin/akismet.5.0.5.zip".into(), evil);
    files.insert("/plugin/akismet.5.0.6.zip".into(), tampered);
    files.insert("/plugin-checksums/akismet/5.0.6.json".into(), checks(&t_sums));
    let port = serve(Arc::new(files)).await;
    let wp = tokio::task::spawn_blocking(move || setup(port)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ctx = wp.ctx();
    let site = wp.site().display().to_string();
    let before_files = checksums(&wp.site());
    let before_db = wp.tables();
    let stage = |v: &str| json!({"site": site, "updates": [{"kind": "plugin", "slug": "akismet", "version": v}]});

    // A zip with `../` members and one whose files differ from the published checksums: refused.
    let e = gated(&ctx, "wordpress_stage_update", stage("5.0.5")).await.unwrap_err();
    assert!(e.contains("unsafe") && e.contains("`..`"), "{e}");
    assert!(!wp.dir.join("evil.php").exists() && !Path::new("/tmp/evil.php").exists());
    let e = gated(&ctx, "wordpress_stage_update", stage("5.0.6")).await.unwrap_err();
    assert!(e.contains("akismet.php: SHA-256 differs"), "{e}");
    // A site that is not a discovered one is not an input.
    let e = gated(
        &ctx,
        "wordpress_stage_update",
        json!({"site": "/etc", "updates": [{"kind": "plugin", "slug": "akismet"}]}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("not a WordPress site vigil found"), "{e}");

    // The fatal-error package is caught on staging; production never sees it.
    let t = Instant::now();
    let out = gated(&ctx, "wordpress_stage_update", stage("5.0.4")).await.unwrap();
    println!("TIMING stage (fatal package): {} ms: {}", t.elapsed().as_millis(), timings(&out));
    let f = &out["facts"];
    assert_eq!(f["ok"], false, "{out:#}");
    assert_eq!(f["baseline"]["ok"], true, "{out:#}");
    assert!(
        f["health"]["pages"].to_string().contains("critical error") || f["health"]["pages"].to_string().contains("500"),
        "{out:#}"
    );
    assert!(f["health"]["log_errors"].to_string().contains("akismet_vigil_no_such_function"), "{out:#}");
    assert_eq!(out["findings"][0]["id"], "updates.staged-update-breaks-site");
    assert_eq!(f["staging"]["removed"], true);
    let bad_id = f["id"].as_str().unwrap().to_string();
    assert_eq!(checksums(&wp.site()), before_files, "production files unchanged");
    assert_eq!(wp.tables(), before_db, "production tables unchanged");
    assert_eq!(wp.sql("SHOW DATABASES LIKE 'wp_vigil%'").trim(), "", "staging database dropped");
    let e = gated(&ctx, "wordpress_apply_update", json!({"site": site, "staged_id": bad_id})).await.unwrap_err();
    assert!(e.contains("never applied"), "{e}");

    // The good one stages cleanly.
    let t = Instant::now();
    let out = gated(&ctx, "wordpress_stage_update", stage("5.0.3")).await.unwrap();
    println!("TIMING stage (5.0.2 → 5.0.3): {} ms: {}", t.elapsed().as_millis(), timings(&out));
    let f = &out["facts"];
    assert_eq!(f["ok"], true, "{out:#}");
    assert_eq!(f["updates"][0]["from"], "5.0.2");
    assert_eq!(f["updates"][0]["to"], "5.0.3");
    assert!(f["updates"][0]["checksum"].as_str().unwrap().contains("SHA-256 of all"), "{out:#}");
    assert!(f["health"]["linted"].as_u64().unwrap() > 5, "{out:#}");
    assert!(!f.to_string().contains("S3cret"), "the password never appears");
    let id = f["id"].as_str().unwrap().to_string();
    assert_eq!(checksums(&wp.site()), before_files);
    assert_eq!(wp.tables(), before_db);

    // A deferred apply needs a scheduler and a way to start vigil again; here it has neither, and says so.
    let e =
        gated(&ctx, "wordpress_apply_update", json!({"site": site, "staged_id": id, "at": "03:00"})).await.unwrap_err();
    assert!(e.contains("neither is available") || e.contains("start vigil again"), "{e}");

    // An apply killed (SIGKILL) during its health check is undone by recover.
    let journal = wp.state().join("wp-journal");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_apply", "--ignored", "--nocapture"])
        .env("VIGIL_WP_CHILD", json!({"dir": wp.dir, "downloads": port, "id": id}).to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut killed = false;
    while t.elapsed() < Duration::from_secs(120) {
        let j = std::fs::read_dir(&journal)
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok().filter(|e| e.file_name().to_string_lossy().ends_with(".json"))));
        if let Some(j) = j {
            let text = std::fs::read_to_string(j.path()).unwrap_or_default();
            if text.contains("\"phase\": \"check\"") {
                child.kill().unwrap();
                killed = true;
                break;
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.wait();
    assert!(killed, "the child apply reached its health check and was killed");
    wp.kill_leftovers();
    assert_eq!(site_version(&wp.site()), "5.0.3", "killed with the new version in place");
    let e = gated(&ctx, "wordpress_apply_update", json!({"site": site, "staged_id": id})).await.unwrap_err();
    assert!(e.contains("run `vigil wp recover"), "{e}");
    let t = Instant::now();
    let out = gated(&ctx, "wordpress_apply_update", json!({"site": site, "action": "recover"})).await.unwrap();
    println!("TIMING recover after kill -9: {} ms: {}", t.elapsed().as_millis(), timings(&out));
    assert_eq!(out["facts"]["result"], "recovered-rolled-back", "{out:#}");
    assert_eq!(checksums(&wp.site()), before_files, "files identical after recover");
    assert_eq!(wp.tables(), before_db, "tables identical after recover");

    // Apply for real.
    let t = Instant::now();
    let out = gated(&ctx, "wordpress_apply_update", json!({"site": site, "staged_id": id})).await.unwrap();
    println!("TIMING apply: {} ms: {}", t.elapsed().as_millis(), timings(&out));
    assert_eq!(out["facts"]["result"], "applied", "{out:#}");
    assert_eq!(out["facts"]["health"]["ok"], true, "{out:#}");
    assert_eq!(site_version(&wp.site()), "5.0.3");
    let after_apply = checksums(&wp.site());
    assert!(after_apply.keys().all(|k| !k.contains(".vigil-")), "no leftovers");
    let e = gated(&ctx, "wordpress_apply_update", json!({"site": site, "staged_id": id})).await.unwrap_err();
    assert!(e.contains("already applied"), "{e}");

    // A customer comments; the rollback plan says it is discarded.
    wp.sql("INSERT INTO wp_comments (comment_post_ID, comment_author, comment_content, comment_date, comment_date_gmt, comment_approved) VALUES (1, 'x', 'after the update', UTC_TIMESTAMP(), UTC_TIMESTAMP(), '1')");
    let r = Registry::builtin();
    let rb = json!({"site": site, "staged_id": id, "action": "rollback"});
    let planned = r.plan(&ctx, "wordpress_apply_update", rb.clone()).await.unwrap();
    let text = planned.plan.render();
    assert!(text.contains("DISCARDS") && text.contains("1 comments written since"), "{text}");
    let t = Instant::now();
    let approval = approver().approve(&planned);
    let out = r.run_approved(&ctx, "wordpress_apply_update", rb, approval).await.unwrap().to_value();
    println!("TIMING rollback: {} ms: {}", t.elapsed().as_millis(), timings(&out));
    assert_eq!(out["facts"]["result"], "rolled-back", "{out:#}");
    assert_eq!(site_version(&wp.site()), "5.0.2");
    assert_eq!(checksums(&wp.site()), before_files, "files as before the update");
    assert_eq!(wp.tables(), before_db, "tables as before the update (the comment is gone)");
}

/// The apply the test above kills: run in a child process (not a test on its own).
#[tokio::test]
#[ignore = "run by stage_apply_kill_recover_rollback_on_real_wordpress in a child process"]
async fn child_apply() {
    let Ok(spec) = std::env::var("VIGIL_WP_CHILD") else { return };
    let v: Value = serde_json::from_str(&spec).unwrap();
    let dir = PathBuf::from(v["dir"].as_str().unwrap());
    let ctx = Ctx::new(Host::live()).with_config(config_for(&dir, &v["downloads"])).with_state_dir(dir.join("state"));
    let input = json!({"site": dir.join("www/site").display().to_string(), "staged_id": v["id"]});
    let r = Registry::builtin();
    let _ = approved(&r, &ctx, "wordpress_apply_update", input).await;
}

/// Site code that attacks the administrator's terminal (issue 13, item 1): every
/// request runs a helper that forks one process staying in PHP's session and one
/// that double-forks and calls `setsid()`; both try `TIOCSTI` on `/dev/tty` and on
/// every descriptor they hold, record the outcome and their environment, and keep
/// trying for minutes. `VIGIL_SITE_MARKER` in their command line finds them in `/proc`.
const TIOCSTI_HELPER: &str = r#"
import fcntl, json, os, socket, sys, termios, time

# Reports go to the test over loopback: site code may write nowhere outside its staging copy.
report_port, marker = int(sys.argv[1]), sys.argv[2]

def send(report):
    try:
        with socket.create_connection(("127.0.0.1", report_port), timeout=2) as s:
            s.sendall((json.dumps(report) + "\n").encode())
    except OSError:
        pass

def sti(fd):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        return "INJECTED"
    except OSError as e:
        return "failed: " + (e.strerror or str(e))

def attempts():
    out = []
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as e:
        out.append(["/dev/tty", "open failed: " + (e.strerror or str(e))])
    else:
        out.append(["/dev/tty", sti(fd)])
        os.close(fd)
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        out.append(["fd %s (%s)" % (name, target), sti(int(name))])
    return out

if os.fork() > 0:
    os._exit(0)
role = "session"
if os.fork() == 0:
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    role = "setsid"
report = {"role": role, "pid": os.getpid(), "env": dict(os.environ), "rounds": 0, "first": None, "last": None, "injected": 0}
for _ in range(3000):
    r = attempts()
    report["rounds"] += 1
    report["first"] = report["first"] or r
    report["last"] = r
    report["injected"] += sum(1 for a in r if a[1] == "INJECTED")
    send(report)
    time.sleep(0.1)
"#;

/// A pseudo-terminal pair: (master, slave), the slave in raw mode so anything typed
/// into it (or pushed with `TIOCSTI`) waits, uncooked and unechoed, in its input queue.
fn raw_pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty writes two descriptors; name, termios and winsize may be null.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here.
    let (m, s) = unsafe { (std::os::fd::OwnedFd::from_raw_fd(m), std::os::fd::OwnedFd::from_raw_fd(s)) };
    // SAFETY: tcgetattr/cfmakeraw/tcsetattr on our own terminal, into a zeroed struct.
    unsafe {
        use std::os::fd::AsRawFd;
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(s.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(s.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    (m, s)
}

/// Bytes waiting in a terminal's input queue (what the shell would read next).
fn pending_input(fd: &std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = -1;
    // SAFETY: FIONREAD writes one int.
    assert_eq!(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) }, 0);
    n
}

/// Processes whose command line contains `marker`: (pid, command line).
fn processes_with(marker: &str) -> Vec<(i32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(|pid| {
            let cmd = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?).replace('\0', " ");
            cmd.contains(marker).then_some((pid, cmd))
        })
        .collect()
}

/// Issue 13, item 1, performed for real: the site's PHP starts a helper that tries to
/// type into the administrator's terminal (`TIOCSTI`) and to outlive the check
/// (double fork + `setsid()`), while `wordpress_stage_update` runs on a real pty that
/// is its controlling terminal, with secrets in its environment. Nothing is typed,
/// every attempt fails, no secret reaches the site code, and no helper survives the stage.
/// Issue 15: the same plugin writes into a world-writable directory outside the
/// staging copy (which the site's user may write): its Landlock domain refuses, while
/// writing inside the staging copy still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    vigil_missing = "@wpstage",
    ignore = "needs root, Debian's WordPress, MariaDB, php, setpriv, unshare, curl, python3 (.ci/packages/wpstage.txt)"
)]
async fn site_code_cannot_type_into_the_terminal_or_outlive_the_check() {
    vigil_testkit::require(&["@wpstage"]);
    let site_src = Path::new("/usr/share/wordpress");
    let (good, good_sums) = akismet_zip(site_src, bump("5.0.3"), &[]);
    let files: serde_json::Map<String, Value> =
        good_sums.iter().map(|(k, v)| (k.clone(), json!({"md5": "x", "sha256": v}))).collect();
    let mut served: HashMap<String, Vec<u8>> = HashMap::new();
    served.insert("/plugin/akismet.5.0.3.zip".into(), good);
    served.insert(
        "/plugin-checksums/akismet/5.0.3.json".into(),
        serde_json::to_vec(&json!({"plugin": "akismet", "files": files})).unwrap(),
    );
    let port = serve(Arc::new(served)).await;
    let wp = tokio::task::spawn_blocking(move || setup(port)).await.unwrap();

    // The attacker's code: a must-use plugin, loaded on every request, starting the helper
    // and trying to write outside the staging copy, into a world-writable directory (which
    // the site's user may write: only the site code's Landlock domain stands in the way).
    let marker = format!("VIGIL_SITE_MARKER_{}", std::process::id());
    let attack = wp.dir.join("attack");
    std::fs::create_dir_all(attack.join("world")).unwrap();
    std::fs::write(attack.join("helper.py"), TIOCSTI_HELPER).unwrap();
    ok(&format!("chmod 755 {0} && chmod 644 {0}/helper.py && chmod 1777 {0}/world", attack.display()));
    let control = attack.join("world/control");
    ok(&format!("setpriv --reuid={OWNER} --regid={OWNER} --clear-groups touch {}", control.display()));
    assert!(control.exists(), "the site's user can write the world-writable directory: the attack is real");
    let (report_port, reports_rx) = report_listener();
    let mu = wp.site().join("wp-content/mu-plugins");
    std::fs::create_dir_all(&mu).unwrap();
    std::fs::write(
        mu.join("helper.php"),
        format!(
            "<?php\nexec('/usr/bin/python3 {a}/helper.py {report_port} {marker} </dev/null >/dev/null 2>&1 &');\n\
             $out = @file_put_contents('{a}/world/planted', 'owned') !== false ? 'written' : error_get_last()['message'];\n\
             $in = @file_put_contents(__DIR__ . '/inside.txt', 'fine') !== false ? 'written' : error_get_last()['message'];\n\
             $s = @fsockopen('127.0.0.1', {report_port});\n\
             if ($s) {{ fwrite($s, json_encode(['role' => 'php', 'outside' => $out, 'inside' => $in]) . \"\\n\"); fclose($s); }}\n",
            a = attack.display(),
        ),
    )
    .unwrap();
    ok(&format!("chown -R {OWNER}:{OWNER} {}", mu.display()));

    // The administrator's terminal: a pty that is the stage's controlling terminal,
    // its stdin, stdout and stderr; secrets in the environment the stage inherits.
    let (master, slave) = raw_pty();
    let mut drain = std::fs::File::from(master.try_clone().unwrap());
    let screen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut drain, &mut buf) {
            if n == 0 {
                break;
            }
            seen.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let outcome = wp.dir.join("stage-outcome.json");
    let spec = json!({"dir": wp.dir, "downloads": port, "out": outcome});
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_stage", "--ignored", "--nocapture"])
        .env("VIGIL_SITE_CHILD", spec.to_string())
        .env("ANTHROPIC_API_KEY", "sk-ant-site-code-test-key")
        .env("MYSQL_PWD", "site-code-test-mysql-pwd")
        .env("LD_PRELOAD", "/nonexistent/vigil-site-code-preload.so")
        .stdin(std::process::Stdio::from(slave.try_clone().unwrap()))
        .stdout(std::process::Stdio::from(slave.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the pty's slave by now.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    println!("TIMING stage on a pty with hostile site code: {} ms", t.elapsed().as_millis());
    let screen_text = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    assert!(status.success(), "the staging child failed: {status}\n{screen_text}");

    // Give any survivor time to act: the helpers try ten times a second.
    std::thread::sleep(Duration::from_secs(2));
    let survivors = processes_with(&marker);
    let typed = pending_input(&slave);
    // The last report of each helper process, and what the plugin's PHP saw.
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    let mut php_writes = Vec::new();
    for r in reports_rx.try_iter() {
        if r["role"] == "php" {
            php_writes.push(r);
        } else {
            latest.insert(format!("{}-{}", r["role"], r["pid"]), r);
        }
    }
    let reports: Vec<Value> = latest.into_values().collect();
    wp.kill_leftovers();
    println!("site code's writes: {php_writes:?}");
    assert!(!php_writes.is_empty(), "the plugin ran and reported");
    for w in &php_writes {
        assert!(w["outside"].as_str().unwrap().contains("Permission denied"), "{w}");
        assert_eq!(w["inside"], "written", "site code may still write its staging copy: {w}");
    }
    assert!(!attack.join("world/planted").exists(), "site code wrote outside the staging copy");
    assert!(!mu.join("inside.txt").exists(), "the production site was written");
    for role in ["session", "setsid"] {
        if let Some(r) = reports.iter().find(|r| r["role"] == role) {
            println!("site code ({role}, {} rounds, {} injected): {}", r["rounds"], r["injected"], r["first"]);
        }
    }
    println!("{} helper reports, {typed} byte(s) typed into the terminal, survivors {survivors:?}", reports.len());
    assert!(survivors.is_empty(), "site code outlived the check: {survivors:?}");
    assert_eq!(typed, 0, "characters were pushed into the administrator's terminal");
    let roles: Vec<&str> = reports.iter().filter_map(|r| r["role"].as_str()).collect();
    assert!(roles.contains(&"session") && roles.contains(&"setsid"), "the site code ran: {roles:?}");
    for r in &reports {
        assert_eq!(r["injected"], 0, "a TIOCSTI succeeded: {r:#}");
        for round in [&r["first"], &r["last"]] {
            let tries = round.as_array().unwrap();
            let tty = tries.iter().find(|a| a[0] == "/dev/tty").unwrap();
            assert!(tty[1].as_str().unwrap().contains("failed"), "{r:#}");
            assert!(tries.iter().all(|a| a[1].as_str().unwrap().contains("failed")), "{r:#}");
        }
        let env = r["env"].as_object().unwrap();
        for secret in ["ANTHROPIC_API_KEY", "MYSQL_PWD", "LD_PRELOAD"] {
            assert!(!env.contains_key(secret), "{secret} reached site code: {env:?}");
        }
        assert!(!r["env"].to_string().contains("site-code-test"), "{env:?}");
    }
    // And the check itself still works with such a site.
    let out: Value = serde_json::from_str(&std::fs::read_to_string(&outcome).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no stage outcome ({e}):\n{screen_text}"));
    assert_eq!(out["facts"]["ok"], true, "{out}");
}

/// A loopback listener collecting one JSON report per line from site code.
fn report_listener() -> (u16, std::sync::mpsc::Receiver<Value>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            for line in std::io::BufRead::lines(std::io::BufReader::new(s)).map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        }
    });
    (port, rx)
}

/// The stage the test above runs on a pty: run in a child process (not a test on its own).
#[tokio::test]
#[ignore = "run by site_code_cannot_type_into_the_terminal_or_outlive_the_check in a child process"]
async fn child_stage() {
    let Ok(spec) = std::env::var("VIGIL_SITE_CHILD") else { return };
    let v: Value = serde_json::from_str(&spec).unwrap();
    let dir = PathBuf::from(v["dir"].as_str().unwrap());
    let ctx = Ctx::new(Host::live()).with_config(config_for(&dir, &v["downloads"])).with_state_dir(dir.join("state"));
    let site = dir.join("www/site").display().to_string();
    let input = json!({"site": site, "updates": [{"kind": "plugin", "slug": "akismet", "version": "5.0.3"}]});
    let out = gated(&ctx, "wordpress_stage_update", input).await.unwrap();
    std::fs::write(v["out"].as_str().unwrap(), out.to_string()).unwrap();
}

/// `wordpress_inventory` lists the site's administrators with the site's own credentials
/// (MariaDB over TCP, password in `MYSQL_PWD`), records them, and flags one added by SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    vigil_missing = "@wpstage",
    ignore = "needs root, Debian's WordPress, MariaDB, php, setpriv, unshare, curl, python3 (.ci/packages/wpstage.txt)"
)]
async fn inventory_lists_admins_and_flags_a_new_one() {
    vigil_testkit::require(&["@wpstage"]);
    let wp = tokio::task::spawn_blocking(|| setup(0)).await.unwrap();
    let ctx = wp.ctx();
    let site = wp.site().display().to_string();
    let r = Registry::builtin();
    let inventory = || async { r.call(&ctx, "wordpress_inventory", json!({})).await.unwrap().to_value() };
    let ours = |out: &Value| {
        out["facts"]["sites"].as_array().unwrap().iter().find(|s| s["site"] == site.as_str()).cloned().unwrap()
    };
    let added = |out: &Value| -> Vec<String> {
        out["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == "accounts.wp-admin-added")
            .map(|f| f["subject"].as_str().unwrap().to_string())
            .collect()
    };

    let t = Instant::now();
    let first = inventory().await;
    println!("TIMING inventory with admin listing: {} ms", t.elapsed().as_millis());
    assert_eq!(ours(&first)["admins"], json!(["admin"]), "{:#}", ours(&first));
    assert!(added(&first).is_empty(), "first review only records: {first:#}");
    let state = wp.state().join("wp-admins.json");
    let recorded = std::fs::read_to_string(&state).unwrap();
    assert!(recorded.contains("\"admin\""), "{recorded}");

    wp.sql(
        "INSERT INTO wp_users (user_login, user_pass, user_nicename, user_email, user_registered, display_name) \
         VALUES ('wp-support', 'x', 'wp-support', 'x@example.com', UTC_TIMESTAMP(), 'wp-support'); \
         INSERT INTO wp_usermeta (user_id, meta_key, meta_value) SELECT ID, 'wp_capabilities', \
         'a:1:{s:13:\"administrator\";b:1;}' FROM wp_users WHERE user_login = 'wp-support';",
    );
    let second = inventory().await;
    assert_eq!(ours(&second)["admins"], json!(["admin", "wp-support"]), "{:#}", ours(&second));
    assert_eq!(added(&second), vec![format!("{site}:wp-support")], "{second:#}");
    assert!(ours(&second)["flags"].to_string().contains("wp-admin-added"));
    let third = inventory().await;
    assert!(added(&third).is_empty(), "reported once, then part of the record: {third:#}");

    // The site's database down: a note in the facts, no finding, no error.
    ok(&format!("mariadb-admin --no-defaults --socket={} shutdown", wp.db.sock));
    let down = inventory().await;
    let note = ours(&down)["admins_unavailable"].as_str().unwrap_or_default().to_string();
    assert!(note.contains("not reached"), "{:#}", ours(&down));
    assert!(added(&down).is_empty());

    for text in [first.to_string(), second.to_string(), third.to_string(), down.to_string(), recorded] {
        assert!(!text.contains("S3cret"), "the database password never appears");
    }
}

/// The site's owner races `wp stage` and `wp apply`: a process running as the owner (setpriv)
/// swaps files and directories in the site for symlinks to a root-owned file and a root-owned
/// directory outside it, in a tight loop, and replaces every `.vigil-` directory vigil makes
/// beside the plugin (in production, and in the staging copy it finds through its PHP server's
/// command line) with a link to that directory. The root-owned targets stay exactly as they
/// were, and the backups hold the links as links, never the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    vigil_missing = "@wpstage",
    ignore = "needs root, Debian's WordPress, MariaDB, php, setpriv, unshare, curl, python3 (.ci/packages/wpstage.txt)"
)]
async fn stage_and_apply_hold_while_the_owner_races_symlinks() {
    vigil_testkit::require(&["@wpstage"]);
    const SECRET: &str = "root:$6$vigil-e2e-shadow:20000:0:99999:7:::\n";
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let (good, sums) = akismet_zip(Path::new("/usr/share/wordpress"), bump("5.0.3"), &[]);
    let listed: serde_json::Map<String, Value> =
        sums.iter().map(|(k, v)| (k.clone(), json!({"md5": "x", "sha256": v}))).collect();
    files.insert("/plugin/akismet.5.0.3.zip".into(), good);
    files.insert(
        "/plugin-checksums/akismet/5.0.3.json".into(),
        serde_json::to_vec(&json!({"plugin": "akismet", "files": listed})).unwrap(),
    );
    let port = serve(Arc::new(files)).await;
    let wp = tokio::task::spawn_blocking(move || setup(port)).await.unwrap();
    let ctx = wp.ctx();
    let site = wp.site();
    // Root's targets, outside the site.
    let victim = wp.dir.join("victim");
    std::fs::create_dir_all(victim.join("dir")).unwrap();
    std::fs::write(victim.join("secret"), SECRET).unwrap();
    std::fs::write(victim.join("dir/inside"), "root's file\n").unwrap();
    ok(&format!("chmod 755 {0} {0}/dir; chmod 644 {0}/secret {0}/dir/inside", victim.display()));
    let snapshot = || {
        let mut m = BTreeMap::new();
        for p in [victim.join("secret"), victim.join("dir"), victim.join("dir/inside")] {
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::symlink_metadata(&p).unwrap();
            let body = if md.is_dir() {
                let mut n: Vec<String> =
                    std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
                n.sort();
                n.join(",")
            } else {
                std::fs::read_to_string(&p).unwrap()
            };
            m.insert(p.display().to_string(), format!("{}:{} {:o} {body}", md.uid(), md.gid(), md.mode() & 0o7777));
        }
        m
    };
    let before = snapshot();
    // The owner's tree under attack, and two links planted in advance.
    let race = site.join("wp-content/uploads/race");
    let mut flip = Vec::new();
    for d in 0..3 {
        std::fs::create_dir_all(race.join(format!("d{d}/sub"))).unwrap();
        std::fs::write(race.join(format!("d{d}/sub/x.txt")), "tenant data\n").unwrap();
        flip.push(race.join(format!("d{d}/sub")));
        for f in 0..4 {
            std::fs::write(race.join(format!("d{d}/f{f}.txt")), "tenant data\n").unwrap();
            flip.push(race.join(format!("d{d}/f{f}.txt")));
        }
    }
    std::os::unix::fs::symlink(victim.join("secret"), race.join("shadow")).unwrap();
    std::os::unix::fs::symlink(victim.join("dir"), race.join("etc")).unwrap();
    ok(&format!("chown -hR {OWNER}:{OWNER} {}", site.join("wp-content/uploads").display()));
    let racer_log = wp.dir.join("racer.log");
    // `staging`: where to look for the staging copy (None: production only).
    let start_racer = |staging: Option<&Path>| {
        racer::start(&racer::Attack {
            uid: OWNER,
            gid: OWNER,
            secret: &victim.join("secret"),
            victim_dir: &victim.join("dir"),
            flip: &flip,
            hunt: std::slice::from_ref(&site.join("wp-content/plugins")),
            staging,
            log: &racer_log,
        })
    };
    let stop = |r: racer::Racer| {
        let stolen = r.stop();
        wp.kill_leftovers();
        stolen
    };
    let site_s = site.display().to_string();
    let input = json!({"site": site_s, "updates": [{"kind": "plugin", "slug": "akismet", "version": "5.0.3"}]});
    let shown = |r: &Result<Value, String>, k: &str| {
        r.as_ref().map(|v| v["facts"][k].to_string()).unwrap_or_else(|e| e.clone())
    };

    // 1. Staging under attack: the copy, the backup, and the update inside the copy.
    let racer = start_racer(Some(&wp.dir.join("staging")));
    let staged = gated(&ctx, "wordpress_stage_update", input.clone()).await;
    let stolen_staging = stop(racer);
    println!("stage under attack: {}; the racer: {}", shown(&staged, "ok"), stolen_staging.trim());
    assert_eq!(snapshot(), before, "the root-owned file and directory are unchanged after staging");
    assert!(
        stolen_staging.contains("/staging/"),
        "the racer never got at the staging copy: the test did not test anything"
    );

    // 2. Apply under attack: the backup, the unpack beside production and the swap.
    let staged = gated(&ctx, "wordpress_stage_update", input).await.unwrap();
    assert_eq!(staged["facts"]["ok"], true, "{staged:#}");
    let id = staged["facts"]["id"].as_str().unwrap().to_string();
    let racer = start_racer(None);
    let applied = gated(&ctx, "wordpress_apply_update", json!({"site": site_s, "staged_id": id})).await;
    let stolen = stop(racer);
    println!("apply under attack: {}; the racer: {}", shown(&applied, "result"), stolen.trim());
    assert_eq!(snapshot(), before, "the root-owned file and directory are unchanged");
    assert!(
        stolen.contains(".vigil-"),
        "the racer never got at a directory vigil made: the test did not test anything"
    );
    // Every backup taken holds the owner's links as links and never the secret's bytes.
    let mut links = 0;
    for b in std::fs::read_dir(wp.state().join("wp-backups")).unwrap().flatten() {
        for f in std::fs::read_dir(b.path())
            .unwrap()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().ends_with(".tar.gz"))
        {
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(f.path()).unwrap()));
            for e in ar.entries().unwrap() {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                assert!(!name.ends_with("/inside"), "the victim directory was archived as {name}");
                if e.header().entry_type().is_symlink() {
                    links += 1;
                } else if e.header().entry_type().is_file() {
                    let mut s = Vec::new();
                    std::io::Read::read_to_end(&mut e, &mut s).unwrap();
                    assert_ne!(s, SECRET.as_bytes(), "the secret was archived as {name}");
                }
            }
        }
    }
    assert!(links >= 2, "the planted links are archived as links ({links})");
}
