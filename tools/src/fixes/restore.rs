//! `verify_backup_restore`: turn "backups run every night" into "last month's
//! backup restored" (pattern 4: a backup never restored is a hope).
//!
//! It takes a job by name from `[[backups]]` (never a path from the model),
//! restores the newest archive (tar, tar.gz/tgz, zip, sql, sql.gz) into a
//! scratch directory it creates (0700, under the state directory or
//! /var/tmp) and always removes, checks it reads to the end (a truncated
//! archive fails: sizes, gzip trailers, zip CRCs, the tar end marker), counts
//! files and bytes, and loads a SQL dump into a throwaway MariaDB server on a
//! private socket (`--skip-networking`) when one is installed. Members with
//! absolute paths or `..` are refused and extraction stops before the scratch
//! filesystem runs low. The result goes to `STATE/restore-tests.json`
//! (`{"JOB": {"at", "ok", "archive", "files", "detail"}}`), which
//! `check_backups` reads. Nothing else on the host changes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_plan, remember_plan};
use crate::backups::restore_record::{self, RestoreTest};
use crate::config::BackupJob;
use crate::finding::{Category, Finding, Severity};
use crate::tool::{Ctx, Outcome, Plan, Tool, ToolError};

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct VerifyBackupRestore;

/// Input of `verify_backup_restore`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreInput {
    /// The backup job to test, by its `name` in the `[[backups]]` configuration.
    pub job: String,
}

/// Archive formats it restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `.tar`
    Tar,
    /// `.tar.gz` / `.tgz`
    TarGz,
    /// `.zip`
    Zip,
    /// `.sql`
    Sql,
    /// `.sql.gz`
    SqlGz,
}

impl Format {
    /// The format of a file name, by its extension.
    pub fn of(name: &str) -> Option<Format> {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Some(Format::TarGz)
        } else if n.ends_with(".tar") {
            Some(Format::Tar)
        } else if n.ends_with(".zip") {
            Some(Format::Zip)
        } else if n.ends_with(".sql.gz") {
            Some(Format::SqlGz)
        } else if n.ends_with(".sql") {
            Some(Format::Sql)
        } else {
            None
        }
    }

    fn is_sql(self) -> bool {
        matches!(self, Format::Sql | Format::SqlGz)
    }
}

/// Facts of `verify_backup_restore`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RestoreFacts {
    /// The job.
    pub job: String,
    /// The archive restored (path on the audited host).
    pub archive: String,
    /// Its format.
    pub format: Format,
    /// True when it restored completely (and, for a SQL dump, loaded when a server was available).
    pub ok: bool,
    /// Files restored (a SQL dump counts as one).
    pub files: u64,
    /// Bytes restored.
    pub bytes: u64,
    /// Tables a SQL dump created in the throwaway MariaDB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<u64>,
    /// What happened, in words.
    pub detail: String,
    /// The scratch directory used.
    pub scratch: String,
    /// The scratch directory is gone.
    pub scratch_removed: bool,
    /// Where the result was recorded (absent when there is no state directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_in: Option<String>,
}

#[derive(Debug, Clone)]
struct Prepared {
    job: BackupJob,
    archive: String,
    real: PathBuf,
    size: u64,
    mtime: i64,
    format: Format,
    parent: PathBuf,
    db: Option<DbTools>,
    why_no_db: Option<String>,
}

#[derive(Debug, Clone)]
struct DbTools {
    server: String,
    install: String,
    client: String,
    admin: String,
}

fn scratch_parent(ctx: &Ctx) -> PathBuf {
    ctx.state_dir.clone().unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

fn prepare(ctx: &Ctx, input: &RestoreInput) -> Result<Prepared, ToolError> {
    let jobs = &ctx.config.backups;
    let Some(job) = jobs.iter().find(|j| j.name == input.job).cloned() else {
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        return Err(ToolError::InvalidInput(if names.is_empty() {
            format!("job: no backup jobs are configured ([[backups]] in the config), so `{}` is unknown", input.job)
        } else {
            format!("job: no backup job named `{}`; configured: {}", input.job, names.join(", "))
        }));
    };
    let mut newest: Option<(i64, String, u64)> = None;
    let mut unsupported = 0;
    for p in ctx.host.glob(&job.path) {
        let Ok(meta) = ctx.host.metadata(&p) else { continue };
        if !meta.is_file() {
            continue;
        }
        if Format::of(&p).is_none() {
            unsupported += 1;
            continue;
        }
        if newest.as_ref().is_none_or(|(t, n, _)| (meta.mtime(), &p) > (*t, n)) {
            newest = Some((meta.mtime(), p, meta.len()));
        }
    }
    let Some((mtime, archive, size)) = newest else {
        return Err(ToolError::Failed(if unsupported > 0 {
            format!(
                "job {}: {unsupported} file(s) match {} but none is a tar, tar.gz, tgz, zip, sql or sql.gz archive",
                job.name, job.path
            )
        } else {
            format!("job {}: no archive matches {}", job.name, job.path)
        }));
    };
    let format = Format::of(&archive).ok_or_else(|| ToolError::Failed("unsupported archive".into()))?;
    let real = ctx.host.path(&archive)?;
    let (db, why_no_db) = if !format.is_sql() {
        (None, None)
    } else if !ctx.host.is_live() {
        (None, Some("not loaded into MariaDB: servers only run when auditing the live root".to_string()))
    } else {
        let pick = |names: &[&str]| names.iter().find_map(|n| ctx.host.which(n));
        match (
            pick(&["mariadbd", "mysqld"]),
            pick(&["mariadb-install-db", "mysql_install_db"]),
            pick(&["mariadb", "mysql"]),
            pick(&["mariadb-admin", "mysqladmin"]),
        ) {
            (Some(server), Some(install), Some(client), Some(admin)) => {
                (Some(DbTools { server, install, client, admin }), None)
            }
            _ => (None, Some("not loaded: no MariaDB/MySQL server (mariadbd + mariadb-install-db) installed".into())),
        }
    };
    Ok(Prepared { job, archive, real, size, mtime, format, parent: scratch_parent(ctx), db, why_no_db })
}

fn render_plan(ctx: &Ctx, p: &Prepared) -> Plan {
    let scratch = p.parent.join("vigil-restore-XXXXXX");
    let s = scratch.display();
    let when = time::OffsetDateTime::from_unix_timestamp(p.mtime)
        .map(|t| format!("{} {:02}:{:02} UTC", crate::config::format_date(t.date()), t.hour(), t.minute()))
        .unwrap_or_default();
    let mut plan = Plan::new(
        "verify_backup_restore",
        format!(
            "test-restore the newest archive of backup job `{}` ({}) into a scratch directory; nothing on the host \
             changes except the record file",
            p.job.name, p.archive
        ),
    )
    .step(format!("read {} ({:?}, {} bytes, modified {when})", p.archive, p.format, p.size), None, None)
    .step(
        format!("create the scratch directory {s} (mode 0700; XXXXXX is random)"),
        None,
        Some(format!("{s} is removed afterwards, also when the restore fails")),
    )
    .step(
        "restore every member into it and read the archive to the end (truncation, gzip and zip checksum \
         errors fail the test); members with absolute paths or `..` are refused; extraction stops before the \
         scratch filesystem runs low; count files and bytes"
            .to_string(),
        None,
        None,
    );
    if let Some(db) = &p.db {
        plan = plan.step(
            "load the dump into a throwaway MariaDB server on a private socket in the scratch directory (no \
             network), count its tables, shut it down",
            Some(format!(
                "{} --no-defaults --datadir={s}/db --skip-test-db; {} --no-defaults --datadir={s}/db \
                 --socket={s}/mysqld.sock --skip-networking --skip-grant-tables; {} --no-defaults \
                 --socket={s}/mysqld.sock -e 'CREATE DATABASE restore_check; USE restore_check; SOURCE {s}/dump.sql'; \
                 {} --no-defaults --socket={s}/mysqld.sock shutdown",
                db.install, db.server, db.client, db.admin
            )),
            Some("the server is stopped and its data removed with the scratch directory".into()),
        );
    } else if let Some(why) = &p.why_no_db {
        plan = plan.warn(format!("SQL dump {why}; it is only decompressed and read to the end"));
    }
    match &ctx.state_dir {
        Some(d) => plan.step(
            format!("record the result for `{}` in {}", p.job.name, restore_record::path(d).display()),
            None,
            Some(format!("the previous entry for `{}` is replaced", p.job.name)),
        ),
        None => plan.warn("no state directory: the result is not recorded, so check_backups will not see it"),
    }
}

#[async_trait]
impl Tool for VerifyBackupRestore {
    type Input = RestoreInput;
    type Output = RestoreFacts;

    fn name(&self) -> &'static str {
        "verify_backup_restore"
    }

    fn description(&self) -> &'static str {
        "Test-restore the newest archive of a configured backup job (by job name from [[backups]]; tar, \
         tar.gz/tgz, zip, sql, sql.gz) into a private scratch directory that is removed afterwards: checks the \
         archive reads to the end (a truncated or corrupt archive fails), counts files and bytes, and loads a SQL \
         dump into a throwaway MariaDB server (no network) and counts its tables when MariaDB is installed. \
         Records the date and result so check_backups can report when a restore was last tested. Nothing else on \
         the host changes. Use it when check_backups says a job was never restore-tested."
    }

    async fn plan(&self, ctx: &Ctx, input: &RestoreInput) -> Result<Plan, ToolError> {
        let p = prepare(ctx, input)?;
        let plan = render_plan(ctx, &p);
        remember_plan(ctx, input, &plan);
        Ok(plan)
    }

    async fn run(&self, ctx: &Ctx, input: RestoreInput) -> Result<Outcome<RestoreFacts>, ToolError> {
        let p = prepare(ctx, &input)?;
        check_plan(ctx, &input, &render_plan(ctx, &p))?;
        std::fs::create_dir_all(&p.parent)
            .map_err(|e| ToolError::Failed(format!("cannot create the scratch parent {}: {e}", p.parent.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("vigil-restore-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&p.parent)
            .map_err(|e| {
                ToolError::Failed(format!("cannot create a scratch directory in {}: {e}", p.parent.display()))
            })?;
        let scratch = dir.path().to_path_buf();
        let result = restore_into(ctx, &p, &scratch).await;
        // Always removed, whatever happened above.
        let close = dir.close();
        let removed = !scratch.exists();
        let (ok, files, bytes, tables, mut detail) = match result {
            Ok(r) => (true, r.files, r.bytes, r.tables, r.detail),
            Err(f) => (false, f.files, f.bytes, None, f.detail),
        };
        if let Err(e) = close {
            detail.push_str(&format!("; the scratch directory {} could not be removed: {e}", scratch.display()));
        }
        let record =
            RestoreTest { at: ctx.host.now_unix(), ok, archive: p.archive.clone(), files, detail: detail.clone() };
        let recorded_in = match &ctx.state_dir {
            Some(d) => Some(
                restore_record::record(d, &p.job.name, record)
                    .map(|()| restore_record::path(d))
                    .map_err(|e| {
                        ToolError::Failed(format!(
                            "restore {}; recording it in {} failed: {e}",
                            if ok { "succeeded" } else { "failed" },
                            d.display()
                        ))
                    })?
                    .display()
                    .to_string(),
            ),
            None => None,
        };
        let mut findings = Vec::new();
        if !ok {
            findings.push(
                Finding::new(
                    "backups.restore-failed",
                    Severity::High,
                    Category::Backups,
                    p.job.name.clone(),
                    format!("The newest backup of `{}` does not restore", p.job.name),
                )
                .evidence(format!("{}: {detail}", p.archive))
                .fix(format!(
                    "Run the `{}` backup by hand now, check its log for errors, and test-restore the new archive \
                     (verify_backup_restore job={})",
                    p.job.name, p.job.name
                )),
            );
        }
        Ok(Outcome::new(
            RestoreFacts {
                job: p.job.name.clone(),
                archive: p.archive.clone(),
                format: p.format,
                ok,
                files,
                bytes,
                tables,
                detail,
                scratch: scratch.display().to_string(),
                scratch_removed: removed,
                recorded_in,
            },
            findings,
        ))
    }
}

#[derive(Debug, Default)]
struct Restored {
    files: u64,
    bytes: u64,
    links: u64,
    tables: Option<u64>,
    detail: String,
}

/// A failed restore: how far it got and why.
#[derive(Debug)]
struct Failure {
    files: u64,
    bytes: u64,
    detail: String,
}

async fn restore_into(ctx: &Ctx, p: &Prepared, scratch: &Path) -> Result<Restored, Failure> {
    let cap = extraction_cap(scratch);
    let (real, format, dest) = (p.real.clone(), p.format, scratch.to_path_buf());
    let files_dir = if format.is_sql() { dest.clone() } else { dest.join("files") };
    let joined = tokio::task::spawn_blocking(move || {
        let mut c = Counter { cap, ..Default::default() };
        let r = extract(&real, format, &files_dir, &mut c);
        (c, r)
    })
    .await;
    let (c, r) = joined.map_err(|e| Failure { files: 0, bytes: 0, detail: format!("the restore task failed: {e}") })?;
    let fail = |detail: String| Failure { files: c.files, bytes: c.bytes, detail };
    r.map_err(fail)?;
    let mut out = Restored { files: c.files, bytes: c.bytes, links: c.links, tables: None, detail: String::new() };
    let mut detail = match format {
        Format::Sql | Format::SqlGz => format!("SQL dump read to the end ({} bytes)", c.bytes),
        _ => format!("{} files, {} bytes restored and read to the end", c.files, c.bytes),
    };
    if out.links > 0 {
        detail.push_str(&format!("; {} links not recreated", out.links));
    }
    if format.is_sql() {
        let dump = scratch.join("dump.sql");
        let scan = scan_dump(&dump).map_err(|e| fail(format!("cannot read the restored dump: {e}")))?;
        if scan.create_tables == 0 {
            return Err(fail(format!("{detail}, but it has no CREATE TABLE statement: it restores nothing")));
        }
        detail.push_str(&format!(", {} CREATE TABLE statements", scan.create_tables));
        if scan.mysqldump && !scan.completed {
            return Err(fail(format!(
                "{detail}, but it has no `-- Dump completed` line at the end: the dump was cut off"
            )));
        }
        match &p.db {
            Some(db) => {
                let tables =
                    load_into_mariadb(ctx, db, scratch, &dump).await.map_err(|e| fail(format!("{detail}; {e}")))?;
                detail.push_str(&format!("; loaded into a throwaway MariaDB: {tables} tables"));
                out.tables = Some(tables);
            }
            None => detail.push_str(&format!("; {}", p.why_no_db.clone().unwrap_or_default())),
        }
    }
    out.detail = detail;
    Ok(out)
}

/// Bytes extraction may write: the scratch filesystem's free space less a reserve
/// (512 MiB or a tenth of it, whichever is less).
fn extraction_cap(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return 0 };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    free.saturating_sub((512 << 20).min(free / 10))
}

#[derive(Debug, Default)]
struct Counter {
    files: u64,
    bytes: u64,
    links: u64,
    cap: u64,
}

/// A member's path, made relative; absolute paths and `..` are refused.
pub(crate) fn safe_rel(name: &str) -> Result<PathBuf, String> {
    let p = Path::new(name);
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => rel.push(s),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "member `{name}` has an absolute path: refused (nothing is written outside the scratch directory)"
                ));
            }
            Component::ParentDir => {
                return Err(format!(
                    "member `{name}` contains `..`: refused (nothing is written outside the scratch directory)"
                ));
            }
        }
    }
    Ok(rel)
}

/// Write one member under `dest`, checking it has the size its header promised and the cap holds.
fn write_member(
    dest: &Path,
    rel: &Path,
    name: &str,
    r: &mut dyn Read,
    expected: Option<u64>,
    c: &mut Counter,
) -> Result<(), String> {
    if let Some(e) = expected {
        if c.bytes.saturating_add(e) > c.cap {
            return Err(over_cap(c));
        }
    }
    let path = dest.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut f = File::create(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let room = c.cap - c.bytes;
    let n = io::copy(&mut r.take(room.saturating_add(1)), &mut f).map_err(|e| format!("member `{name}`: {e}"))?;
    if n > room {
        return Err(over_cap(c));
    }
    c.bytes += n;
    c.files += 1;
    if let Some(e) = expected {
        if n != e {
            return Err(format!("member `{name}` is truncated: {e} bytes expected, {n} read"));
        }
    }
    Ok(())
}

fn over_cap(c: &Counter) -> String {
    format!(
        "restoring would leave the scratch filesystem nearly full (limit {} bytes, {} already written): stopped",
        c.cap, c.bytes
    )
}

fn extract(real: &Path, format: Format, dest: &Path, c: &mut Counter) -> Result<(), String> {
    let open = || File::open(real).map_err(|e| format!("cannot open {}: {e}", real.display()));
    std::fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    match format {
        Format::Tar => {
            extract_tar(BufReader::new(open()?), dest, c)?;
            tar_end_marker(&mut open()?)
        }
        Format::TarGz => {
            let mut gz = flate2::read::MultiGzDecoder::new(BufReader::new(open()?));
            extract_tar(&mut gz, dest, c)?;
            // Read the rest, so the gzip trailer (CRC and length) is checked too.
            io::copy(&mut gz, &mut io::sink()).map_err(|e| format!("gzip stream: {e}"))?;
            Ok(())
        }
        Format::Zip => extract_zip(open()?, dest, c),
        Format::Sql => write_member(dest, Path::new("dump.sql"), "dump.sql", &mut BufReader::new(open()?), None, c),
        Format::SqlGz => {
            let mut gz = flate2::read::MultiGzDecoder::new(BufReader::new(open()?));
            write_member(dest, Path::new("dump.sql"), "dump.sql", &mut gz, None, c)
                .map_err(|e| e.replace("member `dump.sql`", "gzip stream"))
        }
    }
}

fn extract_tar<R: Read>(r: R, dest: &Path, c: &mut Counter) -> Result<(), String> {
    let mut ar = tar::Archive::new(r);
    let entries = ar.entries().map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let mut e = entry.map_err(|e| format!("tar archive unreadable after {} files: {e}", c.files))?;
        let name = e.path().map_err(|e| format!("bad member name: {e}"))?.to_string_lossy().into_owned();
        let rel = safe_rel(&name)?;
        let kind = e.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(dest.join(&rel)).map_err(|e| format!("cannot create {name}: {e}"))?;
        } else if kind.is_file() || kind.is_contiguous() {
            let size = e.size();
            write_member(dest, &rel, &name, &mut e, Some(size), c)?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            // Never recreated: a link could point a later member outside the scratch directory.
            c.links += 1;
        }
    }
    Ok(())
}

/// A plain tar ends with zero blocks; a file cut at a member boundary does not.
fn tar_end_marker(f: &mut File) -> Result<(), String> {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < 1024 {
        return Err("tar archive has no end-of-archive marker: it was cut off".into());
    }
    let mut tail = [0u8; 1024];
    f.seek(SeekFrom::Start(len - 1024))
        .and_then(|_| f.read_exact(&mut tail))
        .map_err(|e| format!("tar archive: {e}"))?;
    if tail.iter().all(|b| *b == 0) {
        Ok(())
    } else {
        Err("tar archive has no end-of-archive marker: it was cut off".into())
    }
}

fn extract_zip(f: File, dest: &Path, c: &mut Counter) -> Result<(), String> {
    let mut ar =
        zip::ZipArchive::new(BufReader::new(f)).map_err(|e| format!("zip archive unreadable (truncated?): {e}"))?;
    for i in 0..ar.len() {
        let mut m = ar.by_index(i).map_err(|e| format!("zip member {i}: {e}"))?;
        let name = m.name().to_string();
        let rel = safe_rel(&name)?;
        if m.is_dir() {
            std::fs::create_dir_all(dest.join(&rel)).map_err(|e| format!("cannot create {name}: {e}"))?;
            continue;
        }
        let size = m.size();
        write_member(dest, &rel, &name, &mut m, Some(size), c)?;
    }
    Ok(())
}

#[derive(Debug, Default)]
struct DumpScan {
    create_tables: u64,
    mysqldump: bool,
    completed: bool,
}

fn scan_dump(path: &Path) -> io::Result<DumpScan> {
    let mut s = DumpScan::default();
    let mut last = String::new();
    for line in BufReader::new(File::open(path)?).split(b'\n') {
        let line = line?;
        let l = String::from_utf8_lossy(&line);
        let t = l.trim_start();
        if t.len() >= 12 && t[..12].eq_ignore_ascii_case("create table") {
            s.create_tables += 1;
        }
        if t.starts_with("-- MySQL dump") || t.starts_with("-- MariaDB dump") {
            s.mysqldump = true;
        }
        if !t.trim().is_empty() {
            last = t.trim().to_string();
        }
    }
    s.completed = last.starts_with("-- Dump completed");
    Ok(s)
}

/// Load `dump` into a throwaway server on a socket in `scratch`; the number of tables it made.
async fn load_into_mariadb(ctx: &Ctx, db: &DbTools, scratch: &Path, dump: &Path) -> Result<u64, String> {
    let d = scratch.display().to_string();
    let sock = format!("{d}/mysqld.sock");
    if sock.len() > 100 {
        return Err(format!("not loaded: the socket path {sock} is too long for a unix socket"));
    }
    let datadir = format!("--datadir={d}/db");
    // A private tmpdir: servers bootstrapping at the same time in /tmp collide on temp table names.
    std::fs::create_dir_all(format!("{d}/tmp")).map_err(|e| format!("not loaded: cannot create {d}/tmp: {e}"))?;
    let tmpdir = format!("--tmpdir={d}/tmp");
    let root = unsafe { libc::geteuid() } == 0;
    let mut install =
        vec!["--no-defaults", &datadir, &tmpdir, "--auth-root-authentication-method=socket", "--skip-test-db"];
    if root {
        install.push("--user=root");
    }
    let out = ctx
        .host
        .run(&db.install, &install, Duration::from_secs(180))
        .await
        .map_err(|e| format!("mariadb-install-db: {e}"))?;
    if !out.success() {
        return Err(format!("mariadb-install-db failed: {}", super::first_line(&out)));
    }
    let socket = format!("--socket={sock}");
    let pid = format!("--pid-file={d}/mysqld.pid");
    let log = format!("--log-error={d}/mysqld.err");
    let mut server_args =
        vec!["--no-defaults", &datadir, &tmpdir, &socket, &pid, &log, "--skip-networking", "--skip-grant-tables"];
    if root {
        server_args.push("--user=root");
    }
    let server = ctx.host.run(&db.server, &server_args, Duration::from_secs(3600));
    tokio::pin!(server);
    let shutting_down = std::sync::atomic::AtomicBool::new(false);
    let client = async {
        let mut ready = false;
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(o) = ctx.host.run(&db.admin, &["--no-defaults", &socket, "ping"], Duration::from_secs(5)).await {
                if o.success() {
                    ready = true;
                    break;
                }
            }
        }
        if !ready {
            return Err("the throwaway MariaDB did not start within 30 s".to_string());
        }
        let source = format!("CREATE DATABASE restore_check; USE restore_check; SOURCE {};", dump.display());
        let r = async {
            let o = ctx
                .host
                .run(&db.client, &["--no-defaults", &socket, "--batch", "-e", &source], Duration::from_secs(3600))
                .await
                .map_err(|e| format!("loading the dump: {e}"))?;
            // The client does not fail on errors inside a SOURCEd file: it prints them.
            if let Some(err) = o.stderr.lines().find(|l| l.starts_with("ERROR")) {
                return Err(format!("the dump does not load: {err}"));
            }
            if !o.success() {
                return Err(format!("the dump does not load: {}", super::first_line(&o)));
            }
            let q = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN \
                     ('mysql','information_schema','performance_schema','sys')";
            let o = ctx
                .host
                .run(&db.client, &["--no-defaults", &socket, "-N", "-B", "-e", q], Duration::from_secs(60))
                .await
                .map_err(|e| format!("counting tables: {e}"))?;
            o.stdout.trim().parse::<u64>().map_err(|_| format!("counting tables: {}", super::first_line(&o)))
        }
        .await;
        shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = ctx.host.run(&db.admin, &["--no-defaults", &socket, "shutdown"], Duration::from_secs(60)).await;
        r
    };
    tokio::pin!(client);
    tokio::select! {
        exited = &mut server => {
            if shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                // It stopped because we asked it to: the client's answer is the result.
                return client.await;
            }
            let tail = std::fs::read_to_string(format!("{d}/mysqld.err")).unwrap_or_default();
            let last = tail.lines().rev().find(|l| l.contains("ERROR")).unwrap_or("").to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> Counter {
        Counter { cap: 1 << 30, ..Default::default() }
    }

    fn raw_tar(name: &str, body: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut v = h.as_bytes().to_vec();
        v.extend_from_slice(body);
        v.resize(v.len().div_ceil(512) * 512, 0);
        v.extend_from_slice(&[0u8; 1024]);
        v
    }

    #[test]
    fn members_escaping_the_scratch_dir_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for evil in ["../escape.txt", "/etc/cron.d/evil", "a/../../b"] {
            let p = d.path().join("a.tar");
            std::fs::write(&p, raw_tar(evil, b"x")).unwrap();
            let dest = d.path().join("out");
            let e = extract(&p, Format::Tar, &dest, &mut counter()).unwrap_err();
            assert!(e.contains("refused"), "{evil}: {e}");
        }
        assert!(!d.path().join("escape.txt").exists());
        assert!(safe_rel("./site/index.php").is_ok());
    }

    #[test]
    fn the_cap_stops_extraction() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.tar");
        std::fs::write(&p, raw_tar("big.bin", &[7u8; 4096])).unwrap();
        let mut c = Counter { cap: 1000, ..Default::default() };
        let e = extract(&p, Format::Tar, &d.path().join("out"), &mut c).unwrap_err();
        assert!(e.contains("nearly full"), "{e}");
        let mut c = counter();
        extract(&p, Format::Tar, &d.path().join("out2"), &mut c).unwrap();
        assert_eq!((c.files, c.bytes), (1, 4096));
    }

    #[test]
    fn formats_and_records() {
        assert_eq!(Format::of("/b/site-2026.tgz"), Some(Format::TarGz));
        assert_eq!(Format::of("/b/db.SQL.gz"), Some(Format::SqlGz));
        assert_eq!(Format::of("/b/x.tar.zst"), None);
    }

    #[tokio::test]
    async fn unknown_jobs_are_input_errors() {
        let ctx = crate::testutil::fixture_ctx("web1");
        let e = VerifyBackupRestore.plan(&ctx, &RestoreInput { job: "nope".into() }).await.unwrap_err();
        assert!(matches!(e, ToolError::InvalidInput(ref m) if m.contains("nope")), "{e}");
    }
}
