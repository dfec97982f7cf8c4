//! The site's database, reached with the site's own credentials from
//! `wp-config.php`: they go into a 0600 option file in a private 0700
//! directory (`--defaults-extra-file`), never onto a command line, into a
//! plan or an output. The directory is removed when the handle drops.
//!
//! A dump is data whoever can write the backup directory controls, so it is
//! only ever fed to the client on stdin with `--sandbox` (no `\\!`, `system`,
//! `source`, `tee`) and `--local-infile=0`; a client without `--sandbox`
//! (MariaDB before 10.11.8 / 10.6.18 / 10.5.25, or MySQL's) loads nothing.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::exec::Proc;
use super::failed;
use crate::tool::{Ctx, ToolError};
use crate::wordpress::Site;
use crate::wordpress::dbendpoint::parse_db_host;

const DB_TIMEOUT: Duration = Duration::from_secs(3600);

/// What the plan shows instead of the option file's path.
pub const CNF_SHOWN: &str = "--defaults-extra-file=<0600 file with the site's DB credentials>";

/// The client options every dump is loaded with: client commands that reach the
/// file system or a shell are refused, and so is `LOAD DATA LOCAL`.
pub const LOAD_FLAGS: [&str; 3] = ["--sandbox", "--local-infile=0", "--batch"];

/// [`LOAD_FLAGS`] as plans show them.
pub const LOAD_SHOWN: &str = "--sandbox --local-infile=0 --batch";

/// Does `client` (a path) know `--sandbox`? Its `--help` lists every option it has,
/// so this asks the installed program rather than guessing from a version number.
pub async fn probe_sandbox(ctx: &Ctx, client: &str) -> Result<(), String> {
    let out = ctx
        .host
        .run(client, &["--no-defaults", "--help"], Duration::from_secs(30))
        .await
        .map_err(|e| format!("cannot ask {client} for its options: {e}"))?;
    if out.stdout.lines().any(|l| l.trim_start().starts_with("--sandbox ")) {
        return Ok(());
    }
    Err(format!(
        "{client} has no --sandbox option (MariaDB's client has it from 10.5.25, 10.6.18, 10.11.8 and 11.0.6 on): \
         without it a dump could run shell commands and read files as root through the client, so no dump is \
         loaded; upgrade the MariaDB client"
    ))
}

/// The first `ERROR …` line the client printed (the statement echo around it is
/// skipped), control characters escaped and cut to a readable length.
pub fn client_error(out: &crate::host::CmdOutput) -> String {
    let line = out
        .stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ERROR"))
        .map(str::to_string)
        .unwrap_or_else(|| crate::change::first_line(out));
    printable(&line, 300)
}

/// At most `max` characters of `line`, control, bidi and zero-width characters escaped
/// (`\u{1b}`), so text from a dump or a server log cannot paint the terminal.
pub fn printable(line: &str, max: usize) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    };
    let mut s = String::new();
    for c in line.chars().take(max) {
        if hidden(c) {
            s.extend(c.escape_unicode());
        } else {
            s.push(c);
        }
    }
    if line.chars().count() > max {
        s.push('…');
    }
    s
}

/// A connection to one site's database.
#[derive(Debug)]
pub struct Db {
    _dir: tempfile::TempDir,
    cnf: PathBuf,
    /// Database name.
    pub name: String,
    /// Table prefix.
    pub prefix: String,
    /// The user.
    pub user: String,
    client: String,
    dump: String,
}

/// A value in a MariaDB option file, quoted and escaped.
fn opt_value(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Quote an identifier with backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The `[client]` section for the site's credentials.
pub fn option_file(user: &str, password: &str, db_host: &str) -> String {
    let (host, port, socket) = parse_db_host(db_host);
    let mut s = format!("[client]\nuser={}\npassword={}\n", opt_value(user), opt_value(password));
    if let Some(h) = host {
        s.push_str(&format!("host={}\n", opt_value(&h)));
    }
    if let Some(p) = port {
        s.push_str(&format!("port={p}\n"));
    }
    if let Some(so) = socket {
        s.push_str(&format!("socket={}\n", opt_value(&so)));
    }
    s
}

impl Db {
    /// Open a handle on the site's database (writes the option file under `private_parent`).
    pub fn open(ctx: &Ctx, site: &Site, private_parent: &Path) -> Result<Db, ToolError> {
        let (name, user, prefix) = Self::settings(site)?;
        let password = site.db_password().ok_or_else(|| {
            ToolError::Refused(format!(
                "{}: DB_PASSWORD is not a literal in wp-config.php, so the database cannot be backed up with the \
                 site's credentials",
                site.path
            ))
        })?;
        let pick = |names: &[&str]| names.iter().find_map(|n| ctx.host.which(n));
        let client = pick(&["mariadb", "mysql"])
            .ok_or_else(|| failed("no MariaDB/MySQL client (mariadb or mysql) is installed"))?;
        let dump = pick(&["mariadb-dump", "mysqldump"])
            .ok_or_else(|| failed("no dump tool (mariadb-dump or mysqldump) is installed"))?;
        let dir = tempfile::Builder::new()
            .prefix("vigil-db-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(private_parent)
            .map_err(|e| failed(format!("cannot create a private directory in {}: {e}", private_parent.display())))?;
        let cnf = dir.path().join("client.cnf");
        // Credentials go only to the verified database server, pinned, never in clear text.
        let endpoint = crate::wordpress::dbendpoint::verify(&ctx.host, site.db.host.as_deref().unwrap_or("localhost"))
            .map_err(|e| ToolError::Refused(format!("{}: the site's database: {e}", site.path)))?;
        let text = option_file(&user, password.expose(), &endpoint.db_host()) + &endpoint.option_lines();
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&cnf)
            .map_err(|e| failed(format!("cannot write the option file: {e}")))?;
        f.write_all(text.as_bytes()).map_err(|e| failed(format!("cannot write the option file: {e}")))?;
        Ok(Db { _dir: dir, cnf, name, prefix, user, client, dump })
    }

    /// DB name, user and table prefix, checked.
    pub fn settings(site: &Site) -> Result<(String, String, String), ToolError> {
        let name =
            site.db.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
                ToolError::Refused(format!("{}: DB_NAME is not a literal in wp-config.php", site.path))
            })?;
        let user =
            site.db.user.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
                ToolError::Refused(format!("{}: DB_USER is not a literal in wp-config.php", site.path))
            })?;
        let prefix = site.db.table_prefix.clone().unwrap_or_else(|| "wp_".into());
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ToolError::Refused(format!("{}: unusual $table_prefix `{prefix}`", site.path)));
        }
        Ok((name, user, prefix))
    }

    fn cnf_arg(&self) -> String {
        format!("--defaults-extra-file={}", self.cnf.display())
    }

    /// The client command (shown with the option file hidden).
    pub fn client_cmd(&self, args: &[String]) -> Proc {
        let mut a = vec![self.cnf_arg()];
        a.extend(args.iter().cloned());
        Proc::new(&self.client, &a)
    }

    /// Run SQL in `db`; the rows, tab-separated.
    pub async fn query(&self, ctx: &Ctx, db: &str, sql: &str) -> Result<Vec<Vec<String>>, ToolError> {
        let p = self.client_cmd(&["-N".into(), "-B".into(), "-e".into(), sql.into(), db.into()]);
        let out = p.run(ctx, DB_TIMEOUT).await?;
        if !out.success() {
            return Err(failed(format!("{}: {}", shown(&p.render(), &self.cnf), crate::change::first_line(&out))));
        }
        Ok(out.stdout.lines().map(|l| l.split('\t').map(str::to_string).collect()).collect())
    }

    /// The site's tables (those with its prefix).
    pub async fn tables(&self, ctx: &Ctx, db: &str) -> Result<Vec<String>, ToolError> {
        let like = self.prefix.replace('_', "\\_");
        let sql = format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND \
             table_type = 'BASE TABLE' AND table_name LIKE '{like}%' ORDER BY table_name"
        );
        Ok(self.query(ctx, db, &sql).await?.into_iter().filter_map(|r| r.into_iter().next()).collect())
    }

    /// `mariadb-dump` of the site's tables into `out`; the dump command as the plan shows it.
    pub fn dump_cmd(&self, db: &str, tables: &[String], out: &Path) -> Proc {
        let mut a = vec![
            self.cnf_arg(),
            "--single-transaction".into(),
            "--skip-dump-date".into(),
            "--no-tablespaces".into(),
            "--default-character-set=utf8mb4".into(),
            format!("--result-file={}", out.display()),
            db.to_string(),
        ];
        a.extend(tables.iter().cloned());
        Proc::new(&self.dump, &a)
    }

    /// Dump the site's tables of `db` to `out` and check it reads back complete.
    pub async fn dump(&self, ctx: &Ctx, db: &str, out: &Path) -> Result<usize, ToolError> {
        let tables = self.tables(ctx, db).await?;
        if tables.is_empty() {
            return Err(failed(format!("database `{db}` has no tables with the prefix `{}`", self.prefix)));
        }
        let p = self.dump_cmd(db, &tables, out);
        let o = p.run(ctx, DB_TIMEOUT).await?;
        if !o.success() {
            return Err(failed(format!(
                "the database dump failed: {}: {}",
                shown(&p.render(), &self.cnf),
                crate::change::first_line(&o)
            )));
        }
        let _ = std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600));
        let created = verify_dump(out)?;
        if created != tables.len() {
            return Err(failed(format!(
                "the dump {} has {created} tables, the database {}: not a complete backup",
                out.display(),
                tables.len()
            )));
        }
        Ok(created)
    }

    /// Load a dump into `db`: the site's tables not in the dump are dropped first, so the
    /// site's tables are exactly the dump's afterwards.
    pub async fn restore(&self, ctx: &Ctx, db: &str, dump: &Path) -> Result<(), ToolError> {
        // Asked before anything is dropped, so a client that cannot load it safely changes nothing.
        probe_sandbox(ctx, &self.client)
            .await
            .map_err(|why| ToolError::Refused(format!("{} not loaded: {why}", dump.display())))?;
        let want = dump_tables(dump)?;
        let extra: Vec<String> = self.tables(ctx, db).await?.into_iter().filter(|t| !want.contains(t)).collect();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|t| ident(t)).collect();
            self.query(ctx, db, &format!("DROP TABLE {}", list.join(", "))).await?;
        }
        self.load(ctx, db, dump).await
    }

    /// The command that feeds a dump to the client in `db`: on stdin, sandboxed.
    pub fn load_cmd(&self, db: &str, dump: &Path) -> Proc {
        let mut a: Vec<String> = LOAD_FLAGS.iter().map(|f| f.to_string()).collect();
        a.push(db.to_string());
        self.client_cmd(&a).stdin(dump)
    }

    /// Feed a dump to the client in `db`; refused when the client has no `--sandbox`,
    /// failed on the first error in it.
    pub async fn load(&self, ctx: &Ctx, db: &str, dump: &Path) -> Result<(), ToolError> {
        probe_sandbox(ctx, &self.client)
            .await
            .map_err(|why| ToolError::Refused(format!("{} not loaded: {why}", dump.display())))?;
        let p = self.load_cmd(db, dump);
        let o = p.run(ctx, DB_TIMEOUT).await?;
        if !o.success() {
            return Err(failed(format!(
                "loading {} failed: {}: {}",
                dump.display(),
                shown(&p.render(), &self.cnf),
                client_error(&o)
            )));
        }
        Ok(())
    }

    /// Create a database for staging; a clear error when the site's user may not.
    pub async fn create_database(&self, ctx: &Ctx, name: &str) -> Result<(), ToolError> {
        let p = self.client_cmd(&["-e".into(), format!("CREATE DATABASE {}", ident(name))]);
        let o = p.run(ctx, DB_TIMEOUT).await?;
        if o.success() {
            return Ok(());
        }
        let why = crate::change::first_line(&o);
        if why.contains("Access denied") || why.contains("1044") {
            return Err(ToolError::Failed(format!(
                "the site's database user `{}` may not create the staging database `{name}` (no CREATE \
                 privilege): grant it, e.g. as the database admin: GRANT ALL ON `{}\\_vigil\\_stg\\_%`.* TO \
                 '{}'@'<its host>'; ({why})",
                self.user,
                self.name.replace('_', "\\_"),
                self.user
            )));
        }
        Err(failed(format!("creating the staging database `{name}` failed: {why}")))
    }

    /// Drop a staging database.
    pub async fn drop_database(&self, ctx: &Ctx, name: &str) -> Result<(), ToolError> {
        self.client_cmd(&["-e".into(), format!("DROP DATABASE IF EXISTS {}", ident(name))])
            .run_ok(ctx, DB_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| failed(e.to_string().replace(&self.cnf.display().to_string(), "<option file>")))
    }
}

/// A rendered command with the option file's path replaced by what plans show.
fn shown(rendered: &str, cnf: &Path) -> String {
    rendered.replace(&format!("--defaults-extra-file={}", cnf.display()), CNF_SHOWN)
}

/// The staging database's name: `<db>_vigil_stg_<id>`, within MariaDB's 64 characters.
pub fn staging_db_name(db: &str, id: &str) -> String {
    let suffix = format!("_vigil_stg_{id}");
    let keep: String = db.chars().take(64 - suffix.len()).collect();
    format!("{keep}{suffix}")
}

/// Tables a dump creates, in order.
#[expect(
    clippy::disallowed_methods,
    reason = "a database dump vigil itself wrote to its state or scratch directory, not a tenant file"
)]
pub fn dump_tables(path: &Path) -> Result<Vec<String>, ToolError> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line.map_err(|e| failed(format!("{}: {e}", path.display())))?;
        if let Some(rest) = line.strip_prefix(b"CREATE TABLE `") {
            if let Some(end) = rest.iter().position(|b| *b == b'`') {
                out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
    }
    Ok(out)
}

/// A dump reads to the end: it has `-- Dump completed` last. The number of tables it creates.
#[expect(
    clippy::disallowed_methods,
    reason = "a database dump vigil itself wrote to its state or scratch directory, not a tenant file"
)]
pub fn verify_dump(path: &Path) -> Result<usize, ToolError> {
    let text_tail = {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(path).map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        f.seek(SeekFrom::Start(len.saturating_sub(512))).map_err(failed)?;
        let mut b = Vec::new();
        f.read_to_end(&mut b).map_err(failed)?;
        String::from_utf8_lossy(&b).into_owned()
    };
    let last = text_tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !last.starts_with("-- Dump completed") {
        return Err(failed(format!("the dump {} is incomplete (no `-- Dump completed` at its end)", path.display())));
    }
    Ok(dump_tables(path)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{CmdOutput, Host};

    /// A stand-in client whose `--help` lists `options`.
    fn fake_client(dir: &Path, options: &str) -> String {
        let p = dir.join("mariadb");
        std::fs::write(&p, format!("#!/bin/sh\nprintf '%s\\n' 'Usage: mariadb [OPTIONS]' {options}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    #[tokio::test]
    async fn a_client_without_sandbox_loads_nothing() {
        let d = tempfile::tempdir().unwrap();
        let ctx = Ctx::new(Host::live());
        let old = fake_client(d.path(), "'  --local-infile      Enable LOAD DATA LOCAL INFILE.'");
        let e = probe_sandbox(&ctx, &old).await.unwrap_err();
        assert!(e.contains("no --sandbox option") && e.contains("no dump is loaded"), "{e}");
        let new = fake_client(d.path(), "'  --sandbox           Disallow commands that access the file system'");
        probe_sandbox(&ctx, &new).await.unwrap();
    }

    #[test]
    fn the_error_shown_is_the_clients_error_line_escaped() {
        let out = CmdOutput {
            status: 1,
            stdout: String::new(),
            stderr: "--------------\nSELECT 1\n--------------\n\nERROR 1064 (42000) at line 3: bad \u{1b}[2J\n".into(),
        };
        assert_eq!(client_error(&out), "ERROR 1064 (42000) at line 3: bad \\u{1b}[2J");
        assert_eq!(printable("Can't \u{202e}x", 300), "Can't \\u{202e}x");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
