//! A throwaway MariaDB server for tests: its own data, temporary directory and
//! socket under a directory the test owns, no configuration files read, shut
//! down (and waited for) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::{ok, sh, wait_for};

/// A running server. Needs `mariadbd`, `mariadb-install-db`, `mariadb` and `mariadb-admin`.
pub struct MariaDb {
    /// Its directory: `data/`, `tmp/`, `mysqld.sock`, `err` (the error log).
    pub dir: PathBuf,
    /// Its socket.
    pub sock: String,
    /// Its TCP port on 127.0.0.1, when it listens there.
    pub port: Option<u16>,
    child: Option<Child>,
}

impl MariaDb {
    /// Start a server in `dir` (created) run as `user` (`root`, or `mysql` for a
    /// server that must not be root's); on 127.0.0.1 too when `tcp`, else socket only.
    /// `root@localhost` logs in over the socket with socket authentication.
    pub fn start(dir: &Path, user: &str, tcp: bool) -> MariaDb {
        let d = dir.display();
        // Each server gets its own tmpdir: two bootstraps sharing /tmp collide on temp table names.
        ok(&format!("mkdir -p {d}/tmp && chmod 755 {d}"));
        if user != "root" {
            ok(&format!("chown -R {user}:{user} {d}"));
        }
        ok(&format!(
            "mariadb-install-db --no-defaults --user={user} --datadir={d}/data --tmpdir={d}/tmp \
             --auth-root-authentication-method=socket --skip-test-db >/dev/null"
        ));
        let sock = format!("{d}/mysqld.sock");
        let port = tcp.then(crate::free_port);
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--user={user}"),
            format!("--datadir={d}/data"),
            format!("--socket={sock}"),
            format!("--pid-file={d}/mysqld.pid"),
            format!("--log-error={d}/err"),
            format!("--tmpdir={d}/tmp"),
        ];
        match port {
            Some(p) => args.extend(["--bind-address=127.0.0.1".to_string(), format!("--port={p}")]),
            None => args.push("--skip-networking".to_string()),
        }
        let child = Command::new("mariadbd").args(&args).spawn().unwrap();
        let db = MariaDb { dir: dir.to_path_buf(), sock, port, child: Some(child) };
        let ping = format!("mariadb-admin --no-defaults --socket={} ping", db.sock);
        wait_for(&format!("MariaDB to start (log: {d}/err)"), || sh(&ping).0 == 0);
        db
    }

    /// Run SQL as root over the socket (`-N -B`); it must succeed. Returns its output.
    pub fn sql(&self, q: &str) -> String {
        ok(&format!("mariadb --no-defaults --socket={} -N -B -e \"{}\"", self.sock, q.replace('"', "\\\"")))
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Shut the server down and wait for it (also done on drop).
    pub fn shutdown(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("mariadb-admin")
                .args(["--no-defaults", &format!("--socket={}", self.sock), "shutdown"])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.shutdown();
    }
}
