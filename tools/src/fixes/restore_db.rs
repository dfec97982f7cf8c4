//! The throwaway MariaDB that `verify_backup_restore` loads SQL dumps into.
//!
//! A dump is written by whoever can write the backup directory, so it is
//! hostile input run by root. Nothing in it may reach the host: the dump goes
//! to the client on stdin with `--sandbox` (no `\!`, `system`, `source`, `tee`)
//! and `--local-infile=0`, and a client without `--sandbox` loads nothing. The
//! server and the client run as an unprivileged user (`mysql`, else `nobody`;
//! never root) through `setpriv`, each in a network namespace of its own
//! (`unshare --net`) besides `--skip-networking`. The dump is loaded as an
//! account without FILE, SUPER, RELOAD, SHUTDOWN or any admin privilege, so
//! `INTO OUTFILE`, `LOAD_FILE`, `SET GLOBAL general_log_file` fail twice over
//! (`--secure-file-priv` is a directory in the server's scratch, logs are off
//! and inside it); plugins load only from an empty root-owned directory and
//! `DATA DIRECTORY` is ignored (`--skip-symbolic-links`). The server's scratch
//! directory lives under /var/tmp because the state directory is 0700 root and
//! the server's user must be able to enter its own: `/var/tmp/vigil-mariadb-X`
//! (0711 root, enter-only) holds `run/` (0700, the server's user: data, socket,
//! logs, secure-file-priv), `plugins/` (empty, root) and `init.sql` (root); the
//! extracted backup stays in the 0700 root scratch, out of the server's reach.
//! Loading stops when that filesystem nears its free-space or free-inode floor.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::tool::Ctx;
use crate::wpupdate::db::{LOAD_FLAGS, LOAD_SHOWN, client_error, printable, probe_sandbox};
use crate::wpupdate::exec::Proc;

/// Where the server's scratch directory is made: a directory every user can enter.
pub(crate) const SERVER_PARENT: &str = "/var/tmp";

/// The account the dump is loaded as: data and schema privileges only.
const LOADER: &str = "vigil_restore";

/// What the loader may do: no FILE, SUPER, RELOAD, SHUTDOWN, PROCESS, CREATE USER,
/// GRANT, binlog, replication or connection admin.
const LOADER_GRANTS: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, \
                             LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, \
                             TRIGGER, REFERENCES, SET USER, DELETE HISTORY, SHOW DATABASES";

/// The unprivileged user the server runs as.
#[derive(Debug, Clone)]
pub(crate) struct ServerUser {
    /// Its name.
    pub name: String,
    uid: u32,
    gid: u32,
}

/// The programs a load needs, found on the live host.
#[derive(Debug, Clone)]
pub(crate) struct DbTools {
    server: String,
    install: String,
    client: String,
    admin: String,
    unshare: String,
    setpriv: String,
    /// Who the server and the client run as.
    pub user: ServerUser,
}

/// The user from /etc/passwd: `mysql`, else `nobody`. Root is never chosen.
#[expect(
    clippy::disallowed_methods,
    reason = "the live machine's own root-owned /etc/passwd, naming the user vigil's restore database server runs as; not a tenant file"
)]
fn server_user() -> Option<ServerUser> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    ["mysql", "nobody"].iter().find_map(|want| {
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0] != *want {
                return None;
            }
            let (uid, gid) = (f[2].parse().ok()?, f[3].parse().ok()?);
            (uid != 0 && gid != 0).then(|| ServerUser { name: want.to_string(), uid, gid })
        })
    })
}

/// The tools, or why a dump cannot be loaded here (a note, not a failed restore).
pub(crate) fn find_tools(ctx: &Ctx) -> Result<DbTools, String> {
    if !ctx.host.is_live() {
        return Err("not loaded into MariaDB: servers only run when auditing the live root".into());
    }
    if !crate::wpupdate::exec::is_root() {
        return Err("not loaded into MariaDB: the throwaway server runs as an unprivileged user in its own network \
                    namespace, which needs vigil to run as root"
            .into());
    }
    let pick = |names: &[&str]| names.iter().find_map(|n| ctx.host.which(n));
    let (Some(server), Some(install), Some(client), Some(admin)) = (
        pick(&["mariadbd", "mysqld"]),
        pick(&["mariadb-install-db", "mysql_install_db"]),
        pick(&["mariadb", "mysql"]),
        pick(&["mariadb-admin", "mysqladmin"]),
    ) else {
        return Err("not loaded: no MariaDB/MySQL server (mariadbd + mariadb-install-db) installed".into());
    };
    let (Some(unshare), Some(setpriv)) = (pick(&["unshare"]), pick(&["setpriv"])) else {
        return Err("not loaded: unshare and setpriv (util-linux) are needed to confine the throwaway server".into());
    };
    let user = server_user()
        .ok_or("not loaded: neither a `mysql` nor a `nobody` user exists to run the throwaway server as")?;
    Ok(DbTools { server, install, client, admin, unshare, setpriv, user })
}

/// `program args` as the server's user, in a new network namespace, with a clean environment.
fn confined(db: &DbTools, program: &str, args: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--net".into(),
        "--".into(),
        db.setpriv.clone(),
        format!("--reuid={}", db.user.uid),
        format!("--regid={}", db.user.gid),
        "--clear-groups".into(),
        "--no-new-privs".into(),
        "--bounding-set=-all".into(),
        "--reset-env".into(),
        "--".into(),
        program.to_string(),
    ];
    a.extend(args.iter().cloned());
    a
}

/// The server's options for a scratch directory `w` (`w/run` is the user's).
fn server_args(w: &str) -> Vec<String> {
    let r = format!("{w}/run");
    [
        "--no-defaults".to_string(),
        format!("--datadir={r}/data"),
        format!("--tmpdir={r}/tmp"),
        format!("--socket={r}/mysqld.sock"),
        format!("--pid-file={r}/mysqld.pid"),
        format!("--log-error={r}/mysqld.err"),
        "--skip-networking".into(),
        format!("--secure-file-priv={r}/priv"),
        format!("--plugin-dir={w}/plugins"),
        "--skip-symbolic-links".into(),
        "--innodb-file-per-table=0".into(),
        "--local-infile=0".into(),
        "--general-log=0".into(),
        format!("--general-log-file={r}/general.log"),
        "--slow-query-log=0".into(),
        format!("--slow-query-log-file={r}/slow.log"),
        "--skip-log-bin".into(),
        format!("--init-file={w}/init.sql"),
    ]
    .to_vec()
}

/// The commands, as the plan shows them (`W` is the server's scratch directory).
pub(crate) fn plan_commands(db: &DbTools) -> String {
    let w = format!("{SERVER_PARENT}/vigil-mariadb-XXXXXX");
    let as_user = format!(
        "{} --net -- {} --reuid={} --regid={} --clear-groups --no-new-privs --bounding-set=-all --reset-env --",
        db.unshare, db.setpriv, db.user.uid, db.user.gid
    );
    format!(
        "{as_user} {} --no-defaults --datadir={w}/run/data --tmpdir={w}/run/tmp --auth-root-authentication-method=socket \
         --skip-test-db; {as_user} {} {}; {as_user} {} --no-defaults --socket={w}/run/mysqld.sock --user={LOADER} \
         {LOAD_SHOWN} restore_check_N < DUMP; {} --no-defaults --socket={w}/run/mysqld.sock --user=root shutdown",
        db.install,
        db.server,
        server_args(&w).join(" "),
        db.client,
        db.admin
    )
}

/// Free bytes and inodes a filesystem must keep; checked while writing to it.
#[derive(Debug, Clone)]
pub(crate) struct Floor {
    dir: PathBuf,
    bytes: u64,
    inodes: u64,
}

/// Free bytes, free inodes and total inodes (0 on filesystems without an inode table) of `dir`'s filesystem.
pub(crate) fn fs_free(dir: &Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(((st.f_bavail as u64).saturating_mul(st.f_frsize as u64), st.f_favail as u64, st.f_files as u64))
}

impl Floor {
    /// The floor of `dir`'s filesystem as it is now: a tenth of what is free, at most
    /// 512 MiB and 50,000 inodes (no inode floor where the filesystem has no inode table).
    pub(crate) fn at(dir: &Path) -> Floor {
        let (bytes, inodes, total) = fs_free(dir).unwrap_or((0, 0, 0));
        Floor {
            dir: dir.to_path_buf(),
            bytes: (512 << 20).min(bytes / 10),
            inodes: if total == 0 { 0 } else { 50_000.min(inodes / 10) },
        }
    }

    /// An error when the filesystem is down to its floor.
    pub(crate) fn check(&self) -> Result<(), String> {
        let Some((bytes, inodes, total)) = fs_free(&self.dir) else {
            return Err(format!("cannot check the free space of {}: stopped", self.dir.display()));
        };
        if total > 0 && inodes <= self.inodes {
            return Err(format!(
                "the filesystem of {} is down to {inodes} free inodes (floor {}): stopped before it runs out",
                self.dir.display(),
                self.inodes
            ));
        }
        if bytes <= self.bytes {
            return Err(format!(
                "the filesystem of {} is down to {bytes} free bytes (floor {}): stopped before it fills up",
                self.dir.display(),
                self.bytes
            ));
        }
        Ok(())
    }
}

/// How much the server may take of its filesystem while loading `dump_bytes` of dumps:
/// twenty times their size, at least 1 GiB (tables, indexes, undo and temporary files of
/// a real dump fit; a dump that multiplies rows to fill the disk does not).
fn growth_budget(dump_bytes: u64) -> u64 {
    dump_bytes.saturating_mul(20).max(1 << 30)
}

/// The server's scratch directory, laid out as the module comment says; removed on drop.
fn server_dir(user: &ServerUser) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("vigil-mariadb-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(SERVER_PARENT)
        .map_err(|e| format!("not loaded: cannot create a scratch directory in {SERVER_PARENT}: {e}"))?;
    let w = dir.path();
    let mk = |p: &Path, mode: u32| {
        std::fs::DirBuilder::new()
            .mode(mode)
            .create(p)
            .map_err(|e| format!("not loaded: cannot create {}: {e}", p.display()))
    };
    let run = w.join("run");
    mk(&run, 0o700)?;
    for sub in ["tmp", "priv"] {
        mk(&run.join(sub), 0o700)?;
    }
    mk(&w.join("plugins"), 0o755)?;
    let init =
        format!("CREATE USER '{LOADER}'@'localhost';\nGRANT {LOADER_GRANTS} ON *.* TO '{LOADER}'@'localhost';\n");
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(w.join("init.sql"))
        .map_err(|e| format!("not loaded: cannot write init.sql: {e}"))?;
    f.write_all(init.as_bytes()).map_err(|e| format!("not loaded: cannot write init.sql: {e}"))?;
    // Explicit modes: a scheduled run's umask (systemd's UMask=0077) would leave them root-only.
    for (p, mode) in [(w.join("plugins"), 0o755), (w.join("init.sql"), 0o644)] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("not loaded: cannot set the mode of {}: {e}", p.display()))?;
    }
    for p in [run.join("tmp"), run.join("priv"), run.clone()] {
        std::os::unix::fs::chown(&p, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("not loaded: cannot give {} to {}: {e}", p.display(), user.name))?;
    }
    // Enter-only for everyone: the server's user reaches run/, nobody lists the directory.
    std::fs::set_permissions(w, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| format!("not loaded: cannot open {} for the server's user: {e}", w.display()))?;
    Ok(dir)
}

/// The last `ERROR` line of the server's log (a file its user owns: never followed
/// through a link, only its last 64 KiB read), control characters escaped.
fn server_log_error(path: &Path) -> String {
    let Ok(mut f) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
    else {
        return String::new();
    };
    let Ok(meta) = f.metadata() else { return String::new() };
    if !meta.is_file() {
        return String::new();
    }
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(meta.len().saturating_sub(64 << 10))).is_err()
        || f.take(64 << 10).read_to_end(&mut buf).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().rev().find(|l| l.contains("ERROR")).unwrap_or("");
    printable(line, 300)
}

/// Load each of `dumps` into its own database of a throwaway server; the tables they made.
pub(crate) async fn load(ctx: &Ctx, db: &DbTools, dumps: &[PathBuf]) -> Result<u64, String> {
    probe_sandbox(ctx, &db.client).await.map_err(|e| format!("not loaded: {e}"))?;
    let dir = server_dir(&db.user)?;
    let r = run_server(ctx, db, dir.path(), dumps).await;
    let w = dir.path().to_path_buf();
    match (r, dir.close()) {
        (Ok(n), Ok(())) => Ok(n),
        (Ok(_), Err(e)) => Err(format!("the throwaway server's directory {} could not be removed: {e}", w.display())),
        (Err(e), _) => Err(e),
    }
}

async fn run_server(ctx: &Ctx, db: &DbTools, w: &Path, dumps: &[PathBuf]) -> Result<u64, String> {
    let wd = w.display().to_string();
    let sock = format!("{wd}/run/mysqld.sock");
    if sock.len() > 100 {
        return Err(format!("not loaded: the socket path {sock} is too long for a unix socket"));
    }
    let floor = Floor::at(w);
    let run_as = |program: &str, args: &[String]| confined(db, program, args);
    let install = run_as(
        &db.install,
        &[
            "--no-defaults".into(),
            format!("--datadir={wd}/run/data"),
            format!("--tmpdir={wd}/run/tmp"),
            "--auth-root-authentication-method=socket".into(),
            "--skip-test-db".into(),
        ],
    );
    let out = Proc::new(&db.unshare, &install)
        .run(ctx, Duration::from_secs(180))
        .await
        .map_err(|e| format!("mariadb-install-db: {e}"))?;
    if !out.success() {
        return Err(format!("mariadb-install-db failed: {}", crate::change::first_line(&out)));
    }
    let server = Proc::new(&db.unshare, &run_as(&db.server, &server_args(&wd)));
    let server = server.run(ctx, Duration::from_secs(3600));
    tokio::pin!(server);
    let socket = format!("--socket={sock}");
    let shutting_down = std::sync::atomic::AtomicBool::new(false);
    let client = async {
        let socket = socket.as_str();
        let admin = |cmd: &'static str, secs| async move {
            let args = ["--no-defaults", socket, "--user=root", cmd];
            ctx.host.run(&db.admin, &args, Duration::from_secs(secs)).await
        };
        let mut ready = false;
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if admin("ping", 5).await.is_ok_and(|o| o.success()) {
                ready = true;
                break;
            }
        }
        if !ready {
            return Err("the throwaway MariaDB did not start within 30 s".to_string());
        }
        let dump_bytes: u64 = dumps.iter().filter_map(|d| std::fs::metadata(d).ok()).map(|m| m.len()).sum();
        let budget = growth_budget(dump_bytes);
        let free_at_start = fs_free(w).map_or(0, |f| f.0);
        let watch = async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Err(e) = floor.check() {
                    return e;
                }
                let used = free_at_start.saturating_sub(fs_free(w).map_or(0, |f| f.0));
                if used > budget {
                    return format!(
                        "the throwaway MariaDB took {used} bytes of {}, more than {budget} (20 times the dumps' \
                         {dump_bytes} bytes, at least 1 GiB): stopped",
                        w.display()
                    );
                }
            }
        };
        let r = tokio::select! {
            r = load_all(ctx, db, socket, dumps) => r,
            e = watch => Err(format!("loading the dump: {e}")),
        };
        shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = admin("shutdown", 60).await;
        r
    };
    tokio::pin!(client);
    tokio::select! {
        exited = &mut server => {
            if shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                // It stopped because we asked it to: the client's answer is the result.
                return client.await;
            }
            let last = server_log_error(&w.join("run/mysqld.err"));
            let how = match exited {
                Ok(o) => format!("exit {}", o.status),
                Err(e) => e.to_string(),
            };
            Err(format!("the throwaway MariaDB stopped unexpectedly ({how}): {last}"))
        }
        r = &mut client => {
            // Give the server time to shut down cleanly; dropping it kills it otherwise.
            let _ = tokio::time::timeout(Duration::from_secs(30), &mut server).await;
            r
        }
    }
}

/// The client as the loader account, confined like the server.
fn client(db: &DbTools, socket: &str, args: &[&str]) -> Proc {
    let mut a = vec!["--no-defaults".to_string(), socket.to_string(), format!("--user={LOADER}")];
    a.extend(args.iter().map(|s| s.to_string()));
    Proc::new(&db.unshare, &confined(db, &db.client, &a))
}

async fn load_all(ctx: &Ctx, db: &DbTools, socket: &str, dumps: &[PathBuf]) -> Result<u64, String> {
    for (i, dump) in dumps.iter().enumerate() {
        let name = format!("restore_check_{}", i + 1);
        let o = client(db, socket, &["-e", &format!("CREATE DATABASE {name}")])
            .run(ctx, Duration::from_secs(60))
            .await
            .map_err(|e| format!("creating {name}: {e}"))?;
        if !o.success() {
            return Err(format!("creating {name}: {}", client_error(&o)));
        }
        let mut args: Vec<&str> = LOAD_FLAGS.to_vec();
        args.push(&name);
        let o = client(db, socket, &args)
            .stdin(dump)
            .run(ctx, Duration::from_secs(3600))
            .await
            .map_err(|e| format!("loading the dump: {e}"))?;
        if !o.success() {
            return Err(format!("the dump does not load: {}", client_error(&o)));
        }
    }
    let q = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN \
             ('mysql','information_schema','performance_schema','sys')";
    let o = client(db, socket, &["-N", "-B", "-e", q])
        .run(ctx, Duration::from_secs(60))
        .await
        .map_err(|e| format!("counting tables: {e}"))?;
    let n = o.stdout.trim().parse::<u64>().map_err(|_| format!("counting tables: {}", client_error(&o)))?;
    if n == 0 {
        return Err("the dump loaded but created no tables: it restores nothing".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_never_runs_as_root_and_keeps_its_files_in_scratch() {
        let u = ServerUser { name: "mysql".into(), uid: 102, gid: 105 };
        let db = DbTools {
            server: "/usr/sbin/mariadbd".into(),
            install: "/usr/bin/mariadb-install-db".into(),
            client: "/usr/bin/mariadb".into(),
            admin: "/usr/bin/mariadb-admin".into(),
            unshare: "/usr/bin/unshare".into(),
            setpriv: "/usr/bin/setpriv".into(),
            user: u,
        };
        let a = confined(&db, "/usr/sbin/mariadbd", &server_args("/var/tmp/w"));
        assert_eq!(&a[..3], ["--net", "--", "/usr/bin/setpriv"]);
        assert!(a.contains(&"--reuid=102".to_string()) && a.contains(&"--no-new-privs".to_string()));
        // Every path the server is given is inside its scratch directory.
        for arg in server_args("/var/tmp/w") {
            if let Some((_, v)) = arg.split_once('=') {
                if v.starts_with('/') {
                    assert!(v.starts_with("/var/tmp/w/"), "{arg}");
                }
            }
        }
        let plan = plan_commands(&db);
        assert!(plan.contains("--sandbox --local-infile=0") && plan.contains("--secure-file-priv="), "{plan}");
        assert!(!plan.contains("--user=root --") && !plan.contains("skip-grant-tables"), "{plan}");
    }

    #[tokio::test]
    async fn a_client_without_sandbox_fails_the_test_before_any_server_starts() {
        let d = tempfile::tempdir().unwrap();
        let client = d.path().join("mariadb");
        std::fs::write(&client, "#!/bin/sh\necho '  --local-infile      Enable LOAD DATA LOCAL INFILE.'\n").unwrap();
        std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = DbTools {
            server: "/nonexistent/mariadbd".into(),
            install: "/nonexistent/mariadb-install-db".into(),
            client: client.display().to_string(),
            admin: "/nonexistent/mariadb-admin".into(),
            unshare: "/nonexistent/unshare".into(),
            setpriv: "/nonexistent/setpriv".into(),
            user: ServerUser { name: "nobody".into(), uid: 65534, gid: 65534 },
        };
        let ctx = Ctx::new(crate::host::Host::live());
        let e = load(&ctx, &db, &[d.path().join("dump.sql")]).await.unwrap_err();
        assert!(e.starts_with("not loaded: ") && e.contains("--sandbox"), "{e}");
    }

    #[test]
    fn a_dump_may_grow_twenty_times_at_least_a_gibibyte() {
        assert_eq!(growth_budget(0), 1 << 30);
        assert_eq!(growth_budget(200 << 20), 4000 << 20);
        assert_eq!(growth_budget(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_floor_is_a_tenth_of_what_is_free() {
        let d = tempfile::tempdir().unwrap();
        let f = Floor::at(d.path());
        assert!(f.check().is_ok());
        let (bytes, _, _) = fs_free(d.path()).unwrap();
        assert!(f.bytes <= bytes / 10 + 1 && f.bytes <= 512 << 20);
        let full = Floor { dir: d.path().to_path_buf(), bytes: u64::MAX, inodes: 0 };
        assert!(full.check().unwrap_err().contains("stopped"));
    }
}
