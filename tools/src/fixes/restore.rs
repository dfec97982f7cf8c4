//! `verify_backup_restore`: turn "backups run every night" into "last month's
//! backup restored" (pattern 4: a backup never restored is a hope).
//!
//! It takes a job by name from `[[backups]]` (never a path from the model),
//! restores the newest archive (tar, tar.gz/tgz, zip, sql, sql.gz) into a
//! scratch directory it creates (0700, under the state directory or
//! /var/tmp) and always removes, checks it reads to the end (a truncated
//! archive fails: sizes, gzip trailers, zip CRCs, the tar end marker), counts
//! files and bytes, and loads a SQL dump (a `.sql`/`.sql.gz` archive, or `.sql`
//! members of a tar or zip that start like `mariadb-dump` output) into a
//! confined throwaway MariaDB server when one is installed (`restore_db`).
//! Members with absolute paths or `..` are refused; extraction stops after
//! `max_members` members or before the scratch filesystem nears its free-space
//! or free-inode floor. An archive with no files, a dump without tables, a dump
//! that errors or one the installed client cannot load sandboxed is a failed
//! test. The result goes to `STATE/restore-tests.json`
//! (`{"JOB": {"at", "ok", "archive", "files", "detail"}}`), which
//! `check_backups` reads. Nothing else on the host changes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::restore_db::{self, DbTools, Floor};
use crate::archive_path::safe_rel;
use crate::backups::restore_record::{self, RestoreTest};
use crate::compared::Compared;
use crate::config::BackupJob;
use crate::finding::{Category, Finding, Severity};
use crate::tool::{Change, Ctx, Outcome, Plan, ToolError};

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

/// What the plan was computed from, handed unchanged to the change that runs it.
#[derive(Debug, Clone)]
pub struct Prepared {
    job: BackupJob,
    archive: String,
    size: u64,
    mtime: i64,
    format: Format,
    parent: PathBuf,
    db: Option<DbTools>,
    why_no_db: Option<String>,
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
    let (db, why_no_db) = match restore_db::find_tools(ctx) {
        Ok(t) => (Some(t), None),
        Err(why) => (None, Some(why)),
    };
    Ok(Prepared { job, archive, size, mtime, format, parent: scratch_parent(ctx), db, why_no_db })
}

fn render_plan(ctx: &Ctx, p: &Prepared) -> Plan {
    let scratch = p.parent.join("vigil-restore-XXXXXX");
    let s = scratch.display();
    let when = crate::format::date_time(p.mtime);
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
        format!(
            "restore every member into it and read the archive to the end (truncation, gzip and zip checksum \
         errors fail the test); members with absolute paths or `..` are refused; extraction stops after {} \
         members or before the scratch filesystem nears its free-space or free-inode floor; count files and \
         bytes; no files at all fails the test",
            max_members(&p.job)
        ),
        None,
        None,
    );
    let dumps = if p.format.is_sql() {
        "the dump".to_string()
    } else {
        format!("each SQL dump found in it (at most {MAX_DUMPS} `.sql` members that start like mariadb-dump output)")
    };
    if let Some(db) = &p.db {
        plan = plan.step(
            format!(
                "load {dumps} into a throwaway MariaDB server run as `{}` (never root) in its own network namespace, \
                 its files in its own scratch directory under {}: the dump goes to a sandboxed client on stdin as \
                 an account without FILE or admin privileges; an error in it, or no tables, fails the test",
                db.user.name,
                restore_db::SERVER_PARENT
            ),
            Some(restore_db::plan_commands(db)),
            Some("the server is stopped and its directory removed, also when loading fails".into()),
        );
    } else if let Some(why) = &p.why_no_db {
        let what = if p.format.is_sql() { "the SQL dump is" } else { "SQL dumps in it, if any, are" };
        plan = plan.warn(format!("{what} {why}; only decompressed and read to the end"));
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
impl Change for VerifyBackupRestore {
    type Input = RestoreInput;
    type Output = RestoreFacts;
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "verify_backup_restore"
    }

    fn description(&self) -> &'static str {
        "Test-restore the newest archive of a configured backup job (by job name from [[backups]]; tar, \
         tar.gz/tgz, zip, sql, sql.gz) into a private scratch directory that is removed afterwards: checks the \
         archive reads to the end (a truncated or corrupt archive fails; so does one with no files), counts files \
         and bytes, and loads a SQL dump (or the mariadb-dump `.sql` files inside the archive) into a sandboxed \
         throwaway MariaDB server (unprivileged user, no network) and counts its tables when MariaDB is installed. \
         Records the date and result so check_backups can report when a restore was last tested. Nothing else on \
         the host changes. Use it when check_backups says a job was never restore-tested."
    }

    async fn prepare(&self, ctx: &Ctx, input: &RestoreInput) -> Result<(Plan, Prepared), ToolError> {
        let p = prepare(ctx, input)?;
        Ok((render_plan(ctx, &p), p))
    }

    async fn execute(
        &self,
        ctx: &Ctx,
        _input: RestoreInput,
        p: Prepared,
        _proof: Compared,
    ) -> Result<Outcome<RestoreFacts>, ToolError> {
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

/// Members restored before `verify_backup_restore` stops, unless the job says otherwise.
pub const DEFAULT_MAX_MEMBERS: u64 = 1_000_000;

/// Dumps found inside one archive that are loaded; more are counted in the detail.
const MAX_DUMPS: usize = 8;

fn max_members(job: &BackupJob) -> u64 {
    job.max_members.unwrap_or(DEFAULT_MAX_MEMBERS)
}

async fn restore_into(ctx: &Ctx, p: &Prepared, scratch: &Path) -> Result<Restored, Failure> {
    let (host, archive, format, dest) = (ctx.host.clone(), p.archive.clone(), p.format, scratch.to_path_buf());
    let files_dir = if format.is_sql() { dest.clone() } else { dest.join("files") };
    let mut c = Counter::new(extraction_cap(scratch), max_members(&p.job));
    c.floor = Some(Floor::at(scratch));
    let joined = tokio::task::spawn_blocking(move || {
        // The backup may sit where a tenant writes: opened through the one reader (in the
        // root, a FIFO or device refused on an O_PATH descriptor, never opened).
        let open = || host.open_file(&archive).map(|(f, _)| f).map_err(|e| format!("cannot open the archive: {e}"));
        let r = extract(&open, format, &files_dir, &mut c);
        (c, r)
    })
    .await;
    let (c, r) = joined.map_err(|e| Failure { files: 0, bytes: 0, detail: format!("the restore task failed: {e}") })?;
    let fail = |detail: String| Failure { files: c.files, bytes: c.bytes, detail };
    r.map_err(fail)?;
    if c.files == 0 {
        return Err(fail(format!(
            "the archive has no files ({} members, {} links): it restores nothing",
            c.members, c.links
        )));
    }
    let mut out = Restored { files: c.files, bytes: c.bytes, links: c.links, tables: None, detail: String::new() };
    let mut detail = match format {
        Format::Sql | Format::SqlGz => format!("SQL dump read to the end ({} bytes)", c.bytes),
        _ => format!("{} files, {} bytes restored and read to the end", c.files, c.bytes),
    };
    if out.links > 0 {
        detail.push_str(&format!("; {} links not recreated", out.links));
    }
    let dumps: Vec<PathBuf> = if format.is_sql() {
        vec![scratch.join("dump.sql")]
    } else {
        c.dumps.iter().map(|r| scratch.join("files").join(r)).filter(|d| looks_like_dump(d)).collect()
    };
    if dumps.is_empty() {
        out.detail = detail;
        return Ok(out);
    }
    let mut creates = 0;
    for dump in &dumps {
        let shown = if format.is_sql() {
            String::new()
        } else {
            format!(" {}", dump.strip_prefix(scratch.join("files")).unwrap_or(dump).display())
        };
        let scan = scan_dump(dump).map_err(|e| fail(format!("cannot read the restored dump{shown}: {e}")))?;
        if scan.create_tables == 0 {
            return Err(fail(format!(
                "{detail}, but the dump{shown} has no CREATE TABLE statement: it restores nothing"
            )));
        }
        if scan.mysqldump && !scan.completed {
            return Err(fail(format!(
                "{detail}, but the dump{shown} has no `-- Dump completed` line at the end: the dump was cut off"
            )));
        }
        creates += scan.create_tables;
    }
    if format.is_sql() {
        detail.push_str(&format!(", {creates} CREATE TABLE statements"));
    } else {
        detail.push_str(&format!("; {} SQL dumps with {creates} CREATE TABLE statements", dumps.len()));
        if c.dumps_over > 0 {
            detail.push_str(&format!(" ({} more `.sql` members not loaded)", c.dumps_over));
        }
    }
    match &p.db {
        Some(db) => {
            let tables = restore_db::load(ctx, db, &dumps).await.map_err(|e| fail(format!("{detail}; {e}")))?;
            detail.push_str(&format!("; loaded into a throwaway MariaDB: {tables} tables"));
            out.tables = Some(tables);
        }
        None => detail.push_str(&format!("; {}", p.why_no_db.clone().unwrap_or_default())),
    }
    out.detail = detail;
    Ok(out)
}

/// Does this `.sql` member start like `mariadb-dump`/`mysqldump` output?
#[expect(
    clippy::disallowed_methods,
    reason = "a member vigil itself extracted into its private restore scratch directory, not a tenant path"
)]
fn looks_like_dump(path: &Path) -> bool {
    let Ok(f) = File::open(path) else { return false };
    let mut head = Vec::new();
    if f.take(4096).read_to_end(&mut head).is_err() {
        return false;
    }
    String::from_utf8_lossy(&head).lines().any(|l| l.starts_with("-- MySQL dump") || l.starts_with("-- MariaDB dump"))
}

/// Bytes extraction may write: the scratch filesystem's free space less a reserve
/// (512 MiB or a tenth of it, whichever is less).
fn extraction_cap(dir: &Path) -> u64 {
    let free = restore_db::fs_free(dir).map_or(0, |f| f.0);
    free.saturating_sub((512 << 20).min(free / 10))
}

#[derive(Debug, Default)]
struct Counter {
    files: u64,
    bytes: u64,
    links: u64,
    cap: u64,
    /// Members seen (files, directories, links, anything else).
    members: u64,
    max_members: u64,
    /// The scratch filesystem's floor, checked before every member.
    floor: Option<Floor>,
    /// `.sql` members written, relative to the extraction directory.
    dumps: Vec<PathBuf>,
    dumps_over: u64,
}

impl Counter {
    fn new(cap: u64, max_members: u64) -> Counter {
        Counter { cap, max_members, ..Default::default() }
    }

    /// One more member: within the member cap and above the filesystem's floor?
    fn member(&mut self) -> Result<(), String> {
        self.members += 1;
        if self.members > self.max_members {
            return Err(format!(
                "the archive has more than {} members (max_members of the job): stopped after {} files",
                self.max_members, self.files
            ));
        }
        match &self.floor {
            Some(f) => f.check().map_err(|e| format!("after {} members, {e}", self.members - 1)),
            None => Ok(()),
        }
    }

    /// Remember a restored member that may be a SQL dump.
    fn maybe_dump(&mut self, rel: &Path) {
        if !rel.to_string_lossy().to_ascii_lowercase().ends_with(".sql") {
            return;
        }
        if self.dumps.len() < MAX_DUMPS {
            self.dumps.push(rel.to_path_buf());
        } else {
            self.dumps_over += 1;
        }
    }
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
    c.maybe_dump(rel);
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

/// Extract the archive `open` opens (called again where it must be read twice, for a tar's end marker).
fn extract(
    open: &dyn Fn() -> Result<File, String>,
    format: Format,
    dest: &Path,
    c: &mut Counter,
) -> Result<(), String> {
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
        Format::Sql => {
            c.member()?;
            write_member(dest, Path::new("dump.sql"), "dump.sql", &mut BufReader::new(open()?), None, c)
        }
        Format::SqlGz => {
            c.member()?;
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
        c.member()?;
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
    if ar.len() as u64 > c.max_members {
        return Err(format!(
            "the zip archive has {} members, more than {} (max_members of the job): not restored",
            ar.len(),
            c.max_members
        ));
    }
    for i in 0..ar.len() {
        c.member()?;
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

#[expect(
    clippy::disallowed_methods,
    reason = "the dump vigil itself extracted into its private restore scratch directory, not a tenant path"
)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(clippy::disallowed_methods, reason = "the test's own archive in its temp directory")]
    fn opener(p: &Path) -> impl Fn() -> Result<File, String> + '_ {
        move || File::open(p).map_err(|e| e.to_string())
    }

    fn counter() -> Counter {
        Counter::new(1 << 30, DEFAULT_MAX_MEMBERS)
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
            let e = extract(&opener(&p), Format::Tar, &dest, &mut counter()).unwrap_err();
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
        let mut c = Counter::new(1000, DEFAULT_MAX_MEMBERS);
        let e = extract(&opener(&p), Format::Tar, &d.path().join("out"), &mut c).unwrap_err();
        assert!(e.contains("nearly full"), "{e}");
        let mut c = counter();
        extract(&opener(&p), Format::Tar, &d.path().join("out2"), &mut c).unwrap();
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
        let e = VerifyBackupRestore.prepare(&ctx, &RestoreInput { job: "nope".into() }).await.unwrap_err();
        assert!(matches!(e, ToolError::InvalidInput(ref m) if m.contains("nope")), "{e}");
    }
}
