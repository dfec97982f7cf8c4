//! `wordpress_stage_update`: back up, clone to staging, fetch and verify the
//! packages, apply them to staging and health-check it. Production is never
//! changed; the staging copy and its database are removed at the end; the
//! backup, the verified packages and the record stay for `wordpress_apply_update`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::db::{CNF_SHOWN, Db, LOAD_SHOWN, staging_db_name};
use super::files::{self, BackupRef, Unit};
use super::health::{self, Health};
use super::package::{self, Verified};
use super::tree;
use super::{
    BACKUP_DIR, DEFAULT_STAGING_DIR, RunAs, StagedRecord, StagedUpdate, UpdateKind, UpdateSpec, failed, mkdir_private,
    new_id, resolve_site, run_as, state_dir,
};
use crate::change::quote;
use crate::compared::Compared;
use crate::finding::{Category, Finding, Severity};
use crate::tool::{Change, Ctx, Outcome, Plan, ToolError};
use crate::wordpress::Site;

const TOOL: &str = "wordpress_stage_update";

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct WordpressStageUpdate;

/// Input of `wordpress_stage_update`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    /// The site's directory exactly as `wordpress_inventory` reports it (e.g. `/var/www/shop`).
    pub site: String,
    /// The updates to try together, e.g. `[{"kind": "plugin", "slug": "woocommerce", "version": "9.1.2"}]`.
    pub updates: Vec<UpdateSpec>,
}

/// One update, resolved against the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub kind: UpdateKind,
    pub slug: String,
    pub version: Option<String>,
    pub from: Option<String>,
    /// Production path replaced (the site for core).
    pub target: String,
}

/// What the plan was computed from, handed unchanged to the staging run.
pub struct Prepared {
    site: Site,
    who: RunAs,
    state: PathBuf,
    staging_root: PathBuf,
    db_name: String,
    wanted: Vec<Wanted>,
    php: String,
}

/// Where staging copies go.
pub(crate) fn staging_root(ctx: &Ctx) -> PathBuf {
    PathBuf::from(ctx.config.wordpress.staging_dir.clone().unwrap_or_else(|| DEFAULT_STAGING_DIR.into()))
}

/// The wp-config.php of a site must hold its database settings itself (not in an include),
/// so a staging copy can be pointed elsewhere with certainty.
fn config_text(ctx: &Ctx, site: &Site) -> Result<String, ToolError> {
    let Some(cfg) = &site.config_path else {
        return Err(ToolError::Refused(format!("{}: no wp-config.php found", site.path)));
    };
    if site.password_file.as_deref() != Some(cfg.as_str()) {
        return Err(ToolError::Refused(format!(
            "{}: the database settings live in {} (an included file), not in {cfg}: staging needs them in \
             wp-config.php itself",
            site.path,
            site.password_file.as_deref().unwrap_or("no file")
        )));
    }
    Ok(ctx.host.read_to_string(cfg)?)
}

pub(crate) fn prepare(ctx: &Ctx, input: &StageInput) -> Result<Prepared, ToolError> {
    if input.updates.is_empty() {
        return Err(ToolError::InvalidInput("updates: name at least one update".into()));
    }
    if input.updates.len() > 20 {
        return Err(ToolError::InvalidInput("updates: at most 20 at a time".into()));
    }
    let site = resolve_site(ctx, &input.site)?;
    let state = state_dir(ctx)?;
    let mut wanted: Vec<Wanted> = Vec::new();
    for u in &input.updates {
        let slug = if u.kind == UpdateKind::Core { "wordpress".to_string() } else { u.slug.trim().to_string() };
        super::check_slug(&slug)?;
        if let Some(v) = &u.version {
            super::check_version(v)?;
        }
        if wanted.iter().any(|w| w.kind == u.kind && w.slug == slug) {
            return Err(ToolError::InvalidInput(format!("updates: {} `{slug}` is named twice", u.kind.as_str())));
        }
        let target = super::target_of(&site, u.kind, &slug)?;
        let from = super::installed_version(&site, u.kind, &slug);
        if u.version.is_some() && u.version == from {
            return Err(ToolError::InvalidInput(format!(
                "{} `{slug}` is already at {} on {}",
                u.kind.as_str(),
                from.unwrap_or_default(),
                site.path
            )));
        }
        wanted.push(Wanted { kind: u.kind, slug, version: u.version.clone(), from, target });
    }
    let (db_name, _, _) = Db::settings(&site)?;
    if site.db_password().is_none() {
        return Err(ToolError::Refused(format!(
            "{}: DB_PASSWORD is not a literal in wp-config.php; the database cannot be backed up with the site's \
             credentials",
            site.path
        )));
    }
    config_text(ctx, &site)?;
    let who = run_as(ctx, &site)?;
    let php = health::php(ctx)?;
    Ok(Prepared { site, who, state, staging_root: staging_root(ctx), db_name, wanted, php })
}

fn render_plan(ctx: &Ctx, p: &Prepared) -> Result<Plan, ToolError> {
    let b = p.state.join(BACKUP_DIR).join("<id>");
    let stg = p.staging_root.join("<id>");
    let stg_db = staging_db_name(&p.db_name, "<id>");
    let prefix = p.site.db.table_prefix.clone().unwrap_or_else(|| "wp_".into());
    let names: Vec<String> = p
        .wanted
        .iter()
        .map(|w| {
            format!(
                "{} {} {} → {}",
                w.kind.as_str(),
                w.slug,
                w.from.as_deref().unwrap_or("?"),
                w.version.as_deref().unwrap_or("latest")
            )
        })
        .collect();
    let mut plan = Plan::new(
        TOOL,
        format!(
            "try {} on a staging copy of {} and health-check it; production is not changed",
            names.join(", "),
            p.site.path
        ),
    );
    for w in &p.wanted {
        let url = package::zip_url(ctx, w.kind, &w.slug, w.version.as_deref());
        let sums = match (w.kind, &w.version) {
            (UpdateKind::Theme, _) => "WordPress.org publishes no theme checksums".to_string(),
            (k, Some(v)) => format!("checksums from {}", package::checksum_url(ctx, k, &w.slug, v).unwrap_or_default()),
            (_, None) => "WordPress.org's checksums for the version it declares".to_string(),
        };
        plan = plan.step(
            format!(
                "fetch {} {} from {url} and verify it: it unpacks safely (no absolute paths, `..` or symlinks; size \
                 cap), declares the version asked for; {sums}",
                w.kind.as_str(),
                w.slug
            ),
            None,
            None,
        );
    }
    plan = plan
        .step(
            format!(
                "back up the files: tar.gz of {} → {} (0600), read back to the end",
                p.site.path,
                b.join("files.tar.gz").display()
            ),
            None,
            Some("the backup is kept (it is what a failed apply restores)".into()),
        )
        .step(
            format!(
                "back up the database `{}` (the site's `{prefix}*` tables) with the site's own credentials",
                p.db_name
            ),
            Some(format!(
                "mariadb-dump {CNF_SHOWN} --single-transaction --skip-dump-date --no-tablespaces \
             --default-character-set=utf8mb4 --result-file={} {} <the {prefix}* tables>",
                quote(&b.join("db.sql").display().to_string()),
                quote(&p.db_name)
            )),
            None,
        )
        .step(
            format!("copy {} to {} (owners and modes kept)", p.site.path, stg.join("site").display()),
            None,
            Some(format!("rm -rf {} (done at the end)", stg.display())),
        )
        .step(
            format!("create the staging database `{stg_db}` and load the dump into it"),
            Some(format!(
                "mariadb {CNF_SHOWN} -e {}; mariadb {CNF_SHOWN} {LOAD_SHOWN} {} < {}",
                quote(&format!("CREATE DATABASE `{stg_db}`")),
                quote(&stg_db),
                quote(&b.join("db.sql").display().to_string())
            )),
            Some(format!("mariadb {CNF_SHOWN} -e {} (done at the end)", quote(&format!("DROP DATABASE `{stg_db}`")))),
        )
        .step(
            format!(
                "point the staging wp-config.php at `{stg_db}`, with WP_HOME/WP_SITEURL = http://127.0.0.1:<port>, \
             WP_HTTP_BLOCK_EXTERNAL and DISABLE_WP_CRON (staging calls nothing outside)"
            ),
            None,
            None,
        );
    let serve =
        health::serve_cmd(&p.php, &p.who, &stg.join("site"), "<port>", &stg.join("<log>/php-errors.log"), true)?;
    let pages = health::pages(ctx).join(", ");
    plan = plan
        .step(
            format!(
                "health-check staging before the update (baseline): serve it as {} and GET {pages}",
                who_name(&p.who)
            ),
            Some(serve.render()),
            Some("the server is stopped after the check".into()),
        )
        .step(
            format!(
                "apply to staging: replace {} in the copy by the verified packages",
                p.wanted.iter().map(|w| rel_target(&p.site, w)).collect::<Vec<_>>().join(", ")
            ),
            None,
            None,
        )
        .step(
            format!(
                "health-check staging again: GET {pages} (Host: 127.0.0.1:<port>): no 5xx, no PHP fatal or parse \
                 error in a page or the PHP log; php -l on every changed .php file, as {}",
                who_name(&p.who)
            ),
            None,
            None,
        )
        .step(
            format!(
                "remove the staging copy and database; keep the backup and the verified packages; record the result \
                 in {}",
                p.state.join(super::STAGED_DIR).join("<id>.json").display()
            ),
            None,
            None,
        );
    if p.who.why.contains("root") {
        plan = plan.warn(p.who.why.clone());
    }
    Ok(plan.warn(
        "the staging copy holds a full copy of the site's data (customers, orders) while it exists; PHP's mail is \
         disabled and outgoing HTTP is blocked there",
    ))
}

fn who_name(w: &RunAs) -> String {
    w.name.clone().unwrap_or_else(|| format!("uid {}", w.uid))
}

fn rel_target(site: &Site, w: &Wanted) -> String {
    if w.kind == UpdateKind::Core {
        "WordPress core (everything but wp-content and wp-config.php)".into()
    } else {
        w.target.strip_prefix(&format!("{}/", site.path.trim_end_matches('/'))).unwrap_or(&w.target).to_string()
    }
}

/// Staging copy, database and address.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StagingFacts {
    /// The staging directory (removed at the end).
    pub dir: String,
    /// The staging database (dropped at the end).
    pub database: String,
    /// The staging address.
    pub url: String,
    /// PHP ran as this user.
    pub php_user: String,
    /// Removed afterwards.
    pub removed: bool,
    /// What the copy left out (FIFOs, sockets, devices are never opened; names removed meanwhile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// Facts of `wordpress_stage_update`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StageFacts {
    /// The staged update's id: `wordpress_apply_update {site, staged_id}`.
    pub id: String,
    /// The site.
    pub site: String,
    /// True when every package verified and staging passed its health check.
    pub ok: bool,
    /// What changes (old → new), from where, verified how.
    pub updates: Vec<StagedUpdate>,
    /// Staging's health before the update.
    pub baseline: Option<Health>,
    /// Staging's health after the update.
    pub health: Option<Health>,
    /// Why it is not ok, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The backup taken first.
    pub backup: BackupRef,
    /// The staging copy.
    pub staging: StagingFacts,
    /// What applying would do.
    pub apply_would: Vec<String>,
    /// Milliseconds per step.
    pub timings: Vec<(String, u64)>,
    /// The record file.
    pub record: String,
}

/// Replace the units of one update inside `root` (a copy or production): unpack the verified
/// zip beside each target, owned like the target. Returns the units and the PHP files to lint.
/// `root` belongs to the site's owner, who may change it meanwhile: every step goes through
/// descriptors opened without following links, the new tree is built in a directory that is
/// root's (0700) until it is complete, and each file gets its owner on the descriptor that
/// created it.
pub(crate) fn build_units(
    kind: UpdateKind,
    slug: &str,
    zip: &Path,
    root: &Path,
    target: &Path,
    id: &str,
) -> Result<(Vec<Unit>, Vec<PathBuf>), ToolError> {
    let ctx = |e: std::io::Error| failed(format!("preparing the new {}: {e}", target.display()));
    let site = tree::Dir::open(root).map_err(ctx)?;
    let mut units = Vec::new();
    let mut lint = Vec::new();
    if kind != UpdateKind::Core {
        let (parent, name) = files::open_parent(root, target).map_err(ctx)?;
        let u = Unit::new(root, target, id).map_err(ctx)?;
        // Owned like what it replaces (never through a link), else like the directory it goes in.
        let st = match parent.lstat(&name).map_err(ctx)? {
            Some(st) => st,
            None => parent.stat().map_err(ctx)?,
        };
        let new_name = u.new.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        u.clear(root).map_err(ctx)?;
        let top = parent.mkdir(&new_name, 0o700).map_err(ctx)?;
        let unpacked = package::unpack_into(zip, kind, slug, &top, Some((st.st_uid, st.st_gid)))?;
        top.set_owner_mode(st.st_uid, st.st_gid, 0o755).map_err(ctx)?;
        lint.extend(unpacked.files.keys().filter(|f| f.ends_with(".php")).map(|f| target.join(f)));
        units.push(u);
        return Ok((units, lint));
    }
    let scratch = std::ffi::OsString::from(format!(".wordpress.vigil-core-{id}"));
    site.remove(&scratch).map_err(ctx)?;
    let r = (|| {
        let st = site.stat().map_err(ctx)?;
        let dir = site.mkdir(&scratch, 0o700).map_err(ctx)?;
        let unpacked = package::unpack_into(zip, kind, slug, &dir, Some((st.st_uid, st.st_gid)))?;
        for n in dir.names().map_err(ctx)? {
            if n == "wp-content" || n == "wp-config.php" {
                continue;
            }
            let u = Unit::new(root, &root.join(&n), id).map_err(ctx)?;
            let new_name = u.new.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            u.clear(root).map_err(ctx)?;
            dir.rename(&n, &site, &new_name).map_err(ctx)?;
            let top = n.to_string_lossy().into_owned();
            lint.extend(
                unpacked
                    .files
                    .keys()
                    .filter(|f| f.ends_with(".php") && (*f == &top || f.starts_with(&format!("{top}/"))))
                    .map(|f| root.join(f)),
            );
            units.push(u);
        }
        Ok::<_, ToolError>(())
    })();
    let _ = site.remove(&scratch);
    r?;
    Ok((units, lint))
}

/// Rewrite a wp-config.php for staging: our defines first, the production ones of the same
/// names neutralised; then check the result really points at the staging database.
pub(crate) fn staging_config(text: &str, db: &str, url: &str) -> Result<String, ToolError> {
    const NAMES: [&str; 5] = ["DB_NAME", "WP_HOME", "WP_SITEURL", "WP_HTTP_BLOCK_EXTERNAL", "DISABLE_WP_CRON"];
    let re = regex::Regex::new(
        r#"(?m)\bdefine\s*\(\s*['"](DB_NAME|WP_HOME|WP_SITEURL|WP_HTTP_BLOCK_EXTERNAL|DISABLE_WP_CRON)['"]\s*,(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^;'"])*;"#,
    )
    .map_err(failed)?;
    let body = re.replace_all(text, "/* vigil staging: replaced $1 */");
    let Some(at) = body.find("<?php") else {
        return Err(ToolError::Refused("wp-config.php does not start with <?php".into()));
    };
    let esc = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let header = format!(
        "<?php\n/* vigil staging copy: database and address replaced */\ndefine('DB_NAME', '{}');\n\
         define('WP_HOME', '{}');\ndefine('WP_SITEURL', '{}');\ndefine('WP_HTTP_BLOCK_EXTERNAL', true);\n\
         define('DISABLE_WP_CRON', true);\n",
        esc(db),
        esc(url),
        esc(url)
    );
    let out = format!("{}{header}{}", &body[..at], &body[at + 5..]);
    // The parser the inventory uses must see exactly our values, once.
    let stmts = crate::wordpress::phpconf::parse(&out);
    for name in NAMES {
        let defs: Vec<_> = stmts
            .iter()
            .filter_map(|s| match s {
                crate::wordpress::phpconf::Stmt::Define(n, v) if n == name => Some(v),
                _ => None,
            })
            .collect();
        let ok = defs.len() == 1
            && match name {
                "DB_NAME" => defs[0].as_str() == Some(db),
                "WP_HOME" | "WP_SITEURL" => defs[0].as_str() == Some(url),
                _ => true,
            };
        if !ok {
            return Err(ToolError::Refused(format!(
                "could not point the staging wp-config.php at the staging database with certainty ({name} is \
                 defined {} times or in a form vigil cannot rewrite): refused, so staging can never touch \
                 production's database",
                defs.len()
            )));
        }
    }
    Ok(out)
}

/// Timer for the report.
pub(crate) struct Timings(Vec<(String, u64)>, Instant);

impl Timings {
    pub fn new() -> Self {
        Timings(Vec::new(), Instant::now())
    }
    pub fn lap(&mut self, what: &str) {
        self.0.push((what.to_string(), self.1.elapsed().as_millis() as u64));
        self.1 = Instant::now();
    }
    pub fn into_inner(self) -> Vec<(String, u64)> {
        self.0
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| failed(format!("worker stopped: {e}")))?
}

#[async_trait]
impl Change for WordpressStageUpdate {
    type Input = StageInput;
    type Output = StageFacts;
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        TOOL
    }

    fn description(&self) -> &'static str {
        "Try WordPress core, plugin or theme updates on a staging copy of a site before production sees them. \
         Backs the site up (files as tar.gz, database with the site's own credentials; both read back), copies it \
         and its database to staging, fetches each package from WordPress.org (or the configured mirror) and \
         verifies it (safe unzip, version, published checksums), applies it to staging and health-checks it with \
         PHP's built-in server on loopback as the site's owner with mail disabled: front page, wp-login.php and \
         the configured key pages (cart, checkout) must answer without 5xx or PHP fatal errors, and changed PHP \
         files must parse. Production is not changed; staging is removed afterwards. Returns a staged id for \
         wordpress_apply_update, what changes (old → new), the health check, and what applying would do. `site` \
         is the path wordpress_inventory reports."
    }

    async fn prepare(&self, ctx: &Ctx, input: &StageInput) -> Result<(Plan, Prepared), ToolError> {
        let p = prepare(ctx, input)?;
        Ok((render_plan(ctx, &p)?, p))
    }

    async fn execute(
        &self,
        ctx: &Ctx,
        _input: StageInput,
        p: Prepared,
        _proof: Compared,
    ) -> Result<Outcome<StageFacts>, ToolError> {
        stage(ctx, p).await
    }
}

async fn stage(ctx: &Ctx, p: Prepared) -> Result<Outcome<StageFacts>, ToolError> {
    let mut t = Timings::new();
    let id = new_id();
    let bdir = p.state.join(BACKUP_DIR).join(&id);
    mkdir_private(&p.state.join(BACKUP_DIR), 0o700)?;
    mkdir_private(&bdir, 0o700)?;
    let pkgdir = StagedRecord::package_dir(&p.state, &id);
    mkdir_private(&p.state.join(super::STAGED_DIR), 0o700)?;
    mkdir_private(&pkgdir, 0o700)?;

    // 1. Fetch and verify first: a bad package costs no backup.
    let mut fetched: Vec<(Verified, &Wanted)> = Vec::new();
    for w in &p.wanted {
        let v = match package::fetch_verified(ctx, w.kind, &w.slug, w.version.as_deref(), &pkgdir).await {
            Ok(v) => v,
            Err(e) => {
                let _ = files::remove_any(&pkgdir);
                let _ = files::remove_any(&bdir);
                return Err(e);
            }
        };
        if v.version.as_str() == w.from.as_deref().unwrap_or("") {
            return Err(ToolError::InvalidInput(format!(
                "{} `{}` is already at {}",
                w.kind.as_str(),
                w.slug,
                v.version
            )));
        }
        fetched.push((v, w));
    }
    t.lap("fetch and verify packages");

    // 2. Back up.
    let backup = backup_site(ctx, &p.site, &bdir, "").await?;
    t.lap("backup (files + database)");

    // 2–4. Staging.
    mkdir_private(&p.staging_root, 0o711)?;
    let stg = p.staging_root.join(&id);
    mkdir_private(&stg, 0o711)?;
    let db = Db::open(ctx, &p.site, &bdir)?;
    let stg_db = staging_db_name(&db.name, &id);
    let port = health::free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut db_created = false;
    let mut updates: Vec<StagedUpdate> = Vec::new();
    let mut baseline = None;
    let mut after = None;
    let mut copy_skipped: Vec<String> = Vec::new();
    let r: Result<Option<String>, ToolError> = async {
        let (src, dst) = (PathBuf::from(&p.site.path), stg.join("site"));
        let copied = blocking(move || files::copy_tree(&src, &dst)).await?;
        copy_skipped = copied.skipped;
        db.create_database(ctx, &stg_db).await?;
        db_created = true;
        db.load(ctx, &stg_db, Path::new(&backup.db)).await?;
        // The configuration comes from the copy (read without following a link: the copy keeps a
        // symlinked wp-config.php as a link, and another file's contents never reach staging).
        let stg_site = tree::Dir::open(&stg.join("site")).map_err(failed)?;
        let cfg_text = stg_site
            .read_regular(std::ffi::OsStr::new("wp-config.php"), 1 << 20)
            .map_err(|e| ToolError::Refused(format!("staging needs the site's own wp-config.php: {e}")))?;
        let cfg = staging_config(&String::from_utf8_lossy(&cfg_text), &stg_db, &url)?;
        stg_site
            .replace_file(std::ffi::OsStr::new("wp-config.php"), cfg.as_bytes(), &format!("tmp-{id}"))
            .map_err(|e| failed(format!("cannot write the staging wp-config.php: {e}")))?;
        t.lap("staging copy (files + database)");

        let host = format!("127.0.0.1:{port}");
        let site_dir = stg.join("site");
        let b = health::check(ctx, &p.who, &site_dir, &host, port, &stg, true, &[]).await?;
        let base_ok = b.ok;
        baseline = Some(b);
        t.lap("baseline health check");
        if !base_ok {
            return Ok(Some(
                "the staging copy fails its health check before any update: production probably has the same \
                 problem; fix that first"
                    .into(),
            ));
        }
        let mut lint = Vec::new();
        for (v, w) in &fetched {
            let rel = Path::new(&w.target).strip_prefix(&p.site.path).map(Path::to_path_buf).unwrap_or_default();
            let target = site_dir.join(rel);
            let (units, l) = build_units(w.kind, &w.slug, &v.zip, &site_dir, &target, &id)?;
            for mut u in units {
                u.move_old(&site_dir).map_err(|e| failed(format!("staging swap {}: {e}", u.target.display())))?;
                u.put_new(&site_dir).map_err(|e| failed(format!("staging swap {}: {e}", u.target.display())))?;
                u.finish(&site_dir).map_err(failed)?;
            }
            lint.extend(l);
            updates.push(StagedUpdate {
                kind: w.kind,
                slug: w.slug.clone(),
                from: w.from.clone(),
                to: v.version.clone(),
                url: v.url.clone(),
                sha256: v.sha256.clone(),
                checksum: v.checksum.clone(),
                target: w.target.clone(),
                php_files: v.php_files,
            });
        }
        t.lap("apply to staging");
        let h = health::check(ctx, &p.who, &site_dir, &host, port, &stg, true, &lint).await?;
        let ok = h.ok;
        after = Some(h);
        t.lap("health check after the update");
        Ok((!ok).then(|| "the site breaks on staging with this update: it was not applied anywhere else".into()))
    }
    .await;

    // Always clean staging up.
    let mut removed = true;
    if db_created {
        removed &= db.drop_database(ctx, &stg_db).await.is_ok();
    }
    removed &= files::remove_any(&stg).is_ok();
    drop(db);
    t.lap("remove staging");
    let problem = match r {
        Ok(pr) => pr,
        Err(e) => {
            let _ = files::remove_any(&pkgdir);
            return Err(e);
        }
    };
    let ok = problem.is_none();
    let health_lines: Vec<String> = after.as_ref().or(baseline.as_ref()).map(Health::summary).unwrap_or_default();
    let rec = StagedRecord {
        id: id.clone(),
        site: p.site.path.clone(),
        staged_at: ctx.host.now_unix(),
        updates: updates.clone(),
        ok,
        health: health_lines,
        stage_backup: backup.clone(),
        applied_at: None,
        apply_backup: None,
        rolled_back_at: None,
        scheduled: None,
    };
    rec.save(&p.state)?;
    let mut apply_would: Vec<String> = Vec::new();
    if ok {
        apply_would.push(format!("back up {} and its database again", p.site.path));
        for u in &updates {
            apply_would.push(format!(
                "replace {} ({} {} → {}) by two renames, the old copy kept aside until the check passes",
                u.target,
                u.slug,
                u.from.as_deref().unwrap_or("?"),
                u.to
            ));
        }
        apply_would
            .push("health-check production the same way; on any failure restore files and database at once".into());
        apply_would.push(format!("run: vigil wp apply {} {id} [--at TIME]", quote(&p.site.path)));
    }
    let mut findings = Vec::new();
    if let Some(pr) = &problem {
        let detail = after.as_ref().or(baseline.as_ref()).map(|h| h.summary().join("; ")).unwrap_or_default();
        findings.push(
            Finding::new(
                "updates.staged-update-breaks-site",
                Severity::High,
                Category::Updates,
                p.site.path.clone(),
                format!(
                    "Staged update of {} fails its health check on staging",
                    p.wanted.iter().map(|w| w.slug.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .evidence(format!("{pr}: {detail}"))
            .fix("Do not apply it; check the plugin's changelog and support forum, or stage a different version."),
        );
    }
    Ok(Outcome::new(
        StageFacts {
            id: id.clone(),
            site: p.site.path.clone(),
            ok,
            updates,
            baseline,
            health: after,
            problem,
            backup,
            staging: StagingFacts {
                dir: stg.display().to_string(),
                database: stg_db,
                url,
                php_user: who_name(&p.who),
                removed,
                skipped: copy_skipped,
            },
            apply_would,
            timings: t.into_inner(),
            record: StagedRecord::path(&p.state, &id).display().to_string(),
        },
        findings,
    ))
}

/// Back up a site's files and database into `dir` (names prefixed by `tag`).
pub(crate) async fn backup_site(ctx: &Ctx, site: &Site, dir: &Path, tag: &str) -> Result<BackupRef, ToolError> {
    let at = ctx.host.now_unix();
    let files_path = dir.join(format!("{tag}files.tar.gz"));
    let db_path = dir.join(format!("{tag}db.sql"));
    let (src, out) = (PathBuf::from(&site.path), files_path.clone());
    let (file_count, skipped) = blocking(move || files::backup_dir(&src, &out)).await?;
    let db = Db::open(ctx, site, dir)?;
    let tables = db.dump(ctx, &db.name, &db_path).await?;
    Ok(BackupRef {
        at,
        files: files_path.display().to_string(),
        file_count,
        db: db_path.display().to_string(),
        tables,
        skipped,
    })
}
