//! Staged WordPress updates: `wordpress_stage_update` and `wordpress_apply_update`
//! (pattern 2 of `seven-mistakes.txt`: the update put off "until after the
//! holidays", then applied in a panic on production).
//!
//! The seed's answer is a routine that makes updating boring: back up, try
//! the update on a staging copy, check the site still works, apply it to
//! production at a quiet time, and roll back at once when it breaks.
//! `wordpress_stage_update` backs the site up (files as tar.gz, the database
//! with the site's own credentials, both read back), clones it to a staging
//! directory and database, fetches the packages from WordPress.org (or a
//! configured mirror), verifies them (safe unzip, published checksums),
//! applies them to staging and health-checks it with PHP's built-in server
//! as the site's owner, never root, with mail disabled. `wordpress_apply_update`
//! applies exactly those verified packages to production, now or at a given
//! time (a single-use approval bound to the confirmed plan), health-checks
//! production and restores files and database on any failure. Every step is
//! journalled (fsync'd) so an interrupted apply is finished or rolled back by
//! `vigil wp recover SITE`; `action: rollback` restores the pre-update backup
//! and says first what it discards.

pub mod apply;
pub mod approval;
pub mod db;
pub mod exec;
pub mod files;
pub mod health;
pub mod journal;
pub mod package;
pub mod stage;
pub mod tree;

#[cfg(test)]
mod tenant_tests;
#[cfg(test)]
mod tests;

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use apply::{ApplyAction, ApplyInput, WordpressApplyUpdate};
pub use stage::{StageInput, WordpressStageUpdate};

use crate::tool::{Ctx, ToolError};
use crate::wordpress::{Site, discover_sites};

/// What an update replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    /// WordPress itself (everything but `wp-content` and `wp-config.php`).
    Core,
    /// A plugin directory under `wp-content/plugins`.
    Plugin,
    /// A theme directory under `wp-content/themes`.
    Theme,
}

impl UpdateKind {
    /// `core`, `plugin`, `theme`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateKind::Core => "core",
            UpdateKind::Plugin => "plugin",
            UpdateKind::Theme => "theme",
        }
    }
}

/// One update asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// `core`, `plugin` or `theme`.
    pub kind: UpdateKind,
    /// The plugin or theme slug as `wordpress_inventory` reports it (e.g. `woocommerce`); ignored for core.
    #[serde(default)]
    pub slug: String,
    /// The version to install (e.g. `9.1.2`); the latest WordPress.org release when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The state files this feature keeps, under the per-host state directory.
pub const STAGED_DIR: &str = "wp-staged";
/// Backups taken before staging, applying and rolling back.
pub const BACKUP_DIR: &str = "wp-backups";
/// Journals of applies in progress, one per site.
pub const JOURNAL_DIR: &str = "wp-journal";
/// Single-use approvals of deferred applies.
pub const APPROVAL_DIR: &str = "wp-approvals";

/// Default parent of staging copies. Not under the state directory: that is
/// 0700 root, and the copy is served by the site's owner, who must read it.
pub const DEFAULT_STAGING_DIR: &str = "/var/lib/vigil-staging";

pub(crate) fn failed(e: impl std::fmt::Display) -> ToolError {
    ToolError::Failed(e.to_string())
}

/// The state directory, which staged updates cannot work without.
pub(crate) fn state_dir(ctx: &Ctx) -> Result<PathBuf, ToolError> {
    ctx.state_dir.clone().ok_or_else(|| {
        ToolError::Refused("staged updates need a state directory (for backups, records and the journal)".into())
    })
}

/// A short hash naming a site in file names.
pub fn site_hash(site: &str) -> String {
    hex::encode(&Sha256::digest(site.as_bytes())[..8])
}

/// The site the input names: it must be one `wordpress_inventory` discovers, never an arbitrary path.
pub(crate) fn resolve_site(ctx: &Ctx, site: &str) -> Result<Site, ToolError> {
    if !ctx.host.is_live() {
        return Err(ToolError::Refused(format!(
            "staged updates change a live site; {} is not the live root",
            ctx.host.root().display()
        )));
    }
    let sites = discover_sites(ctx);
    let want = site.trim().trim_end_matches('/');
    let found: Vec<&Site> =
        sites.iter().filter(|s| s.path.trim_end_matches('/') == want || s.subject() == site.trim()).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let known: Vec<String> = sites.iter().map(Site::subject).collect();
            Err(ToolError::InvalidInput(if known.is_empty() {
                format!("site: `{site}` is not a WordPress site vigil found (no sites found in the web roots)")
            } else {
                format!("site: `{site}` is not a WordPress site vigil found; sites: {}", known.join(", "))
            }))
        }
        many => Err(ToolError::InvalidInput(format!(
            "site: `{site}` serves several hosts; name one: {}",
            many.iter().map(|s| s.subject()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Slugs as WordPress.org writes them.
pub(crate) fn check_slug(slug: &str) -> Result<(), ToolError> {
    let ok = !slug.is_empty()
        && slug.len() <= 100
        && slug.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && !slug.contains("..");
    if ok {
        Ok(())
    } else {
        Err(ToolError::InvalidInput(format!("slug `{slug}`: lowercase letters, digits, - _ . only")))
    }
}

/// Versions as WordPress.org writes them (`9.1.2`, `6.5-RC1`).
pub(crate) fn check_version(v: &str) -> Result<(), ToolError> {
    let ok = !v.is_empty()
        && v.len() <= 40
        && v.chars().next().is_some_and(|c| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "-._+".contains(c))
        && !v.contains("..");
    if ok { Ok(()) } else { Err(ToolError::InvalidInput(format!("version `{v}`: not a version like 9.1.2"))) }
}

/// Who the site belongs to, and who PHP runs as for it (never root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunAs {
    /// User id PHP runs as.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// User name, when the uid has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why this user (the owner, or a stand-in for a root-owned site).
    pub why: String,
}

/// The user to run the site's PHP as: the owner of its directory, or for a root-owned
/// site the web server's user (`www-data`), else `nobody`.
pub(crate) fn run_as(ctx: &Ctx, site: &Site) -> Result<RunAs, ToolError> {
    let meta = ctx.host.metadata(&site.path)?;
    let names = crate::users::uid_names(&ctx.host);
    if meta.uid() != 0 {
        return Ok(RunAs {
            uid: meta.uid(),
            gid: meta.gid(),
            name: names.get(&meta.uid()).cloned(),
            why: "the owner of the site directory".into(),
        });
    }
    let passwd = ctx.host.read_optional("/etc/passwd")?.unwrap_or_default();
    let entries = crate::users::parse_passwd(&passwd);
    for want in ["www-data", "nobody"] {
        if let Some(e) = entries.iter().find(|e| e.name == want && e.uid != 0) {
            return Ok(RunAs {
                uid: e.uid,
                gid: e.gid,
                name: Some(e.name.clone()),
                why: format!("the site directory belongs to root and PHP is never run as root: using `{want}` instead"),
            });
        }
    }
    Err(ToolError::Refused(format!(
        "{} belongs to root and there is no www-data or nobody user to run PHP as; PHP is never run as root",
        site.path
    )))
}

/// Create `dir` (and parents) with `mode`, refusing a symlink at `dir`.
pub(crate) fn mkdir_private(dir: &Path, mode: u32) -> Result<(), ToolError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    if m.file_type().is_symlink() || !m.is_dir() {
        return Err(ToolError::Refused(format!("{} is not a plain directory: refusing to use it", dir.display())));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(ToolError::Refused(format!(
            "{} belongs to uid {}, not to us: refusing to use it",
            dir.display(),
            m.uid()
        )));
    }
    if m.mode() & 0o7777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| failed(format!("cannot chmod {}: {e}", dir.display())))?;
    }
    Ok(())
}

pub(crate) use crate::atomic::write_atomic;

/// A short random hex id.
pub(crate) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 4]>())
}

pub(crate) use crate::format::date_time_secs as fmt_time;

/// One update as staged: what it replaces, with what, verified how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StagedUpdate {
    /// Core, plugin or theme.
    pub kind: UpdateKind,
    /// Slug (`wordpress` for core).
    pub slug: String,
    /// The version production had when it was staged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The version staged.
    pub to: String,
    /// Where the package came from.
    pub url: String,
    /// SHA-256 of the package as verified.
    pub sha256: String,
    /// How it was verified (`sha256 of every file matches WordPress.org's checksums`, `no checksums published`…).
    pub checksum: String,
    /// The production path it replaces (one directory, or core's files).
    pub target: String,
    /// PHP files it changes.
    pub php_files: usize,
}

/// A staged update as recorded in `STATE/wp-staged/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StagedRecord {
    /// The id (`vigil wp apply SITE ID`).
    pub id: String,
    /// The site's path.
    pub site: String,
    /// When it was staged (unix seconds).
    pub staged_at: i64,
    /// The updates.
    pub updates: Vec<StagedUpdate>,
    /// The staging health check passed.
    pub ok: bool,
    /// What the health check saw, in short.
    pub health: Vec<String>,
    /// The backup taken before staging.
    pub stage_backup: files::BackupRef,
    /// When it was applied to production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<i64>,
    /// The backup taken right before applying (what a rollback restores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_backup: Option<files::BackupRef>,
    /// When it was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_at: Option<i64>,
    /// A deferred apply scheduled for this update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<String>,
}

impl StagedRecord {
    /// `STATE/wp-staged/<id>.json`.
    pub fn path(state: &Path, id: &str) -> PathBuf {
        state.join(STAGED_DIR).join(format!("{id}.json"))
    }

    /// Where its verified packages are kept.
    pub fn package_dir(state: &Path, id: &str) -> PathBuf {
        state.join(STAGED_DIR).join(id)
    }

    /// Load a record by id, checking it is for `site`.
    #[expect(
        clippy::disallowed_methods,
        reason = "vigil's own record in its state directory (STATE/wp-staged, 0700), not a tenant file"
    )]
    pub fn load(state: &Path, site: &str, id: &str) -> Result<StagedRecord, ToolError> {
        if id.len() != 8 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ToolError::InvalidInput(format!(
                "staged_id `{id}`: 8 hex digits, as wordpress_stage_update reported"
            )));
        }
        let p = Self::path(state, id);
        let bytes = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ToolError::InvalidInput(format!("staged_id `{id}`: no staged update with that id"))
            } else {
                failed(format!("{}: {e}", p.display()))
            }
        })?;
        let r: StagedRecord = serde_json::from_slice(&bytes).map_err(|e| failed(format!("{}: {e}", p.display())))?;
        if r.site.trim_end_matches('/') != site.trim_end_matches('/') {
            return Err(ToolError::InvalidInput(format!("staged_id `{id}` was staged for {}, not {site}", r.site)));
        }
        Ok(r)
    }

    /// Save it (atomically, 0600).
    pub fn save(&self, state: &Path) -> Result<(), ToolError> {
        mkdir_private(&state.join(STAGED_DIR), 0o700)?;
        let p = Self::path(state, &self.id);
        let bytes = serde_json::to_vec_pretty(self).map_err(failed)?;
        write_atomic(&p, &bytes).map_err(|e| failed(format!("cannot write {}: {e}", p.display())))
    }
}

/// The version a component has on the site now.
pub(crate) fn installed_version(site: &Site, kind: UpdateKind, slug: &str) -> Option<String> {
    match kind {
        UpdateKind::Core => site.core_version.clone(),
        UpdateKind::Plugin => site.plugins.iter().find(|p| p.slug == slug).and_then(|p| p.version.clone()),
        UpdateKind::Theme => site.themes.iter().find(|p| p.slug == slug).and_then(|p| p.version.clone()),
    }
}

/// The production directory an update replaces (plugin and theme) or the site (core).
pub(crate) fn target_of(site: &Site, kind: UpdateKind, slug: &str) -> Result<String, ToolError> {
    let list = match kind {
        UpdateKind::Core => return Ok(site.path.clone()),
        UpdateKind::Plugin => &site.plugins,
        UpdateKind::Theme => &site.themes,
    };
    let Some(c) = list.iter().find(|c| c.slug == slug && !c.must_use) else {
        let have: Vec<&str> = list.iter().map(|c| c.slug.as_str()).collect();
        return Err(ToolError::InvalidInput(format!(
            "{} `{slug}` is not installed on {} (installed: {}); vigil updates what is installed",
            kind.as_str(),
            site.path,
            if have.is_empty() { "none".to_string() } else { have.join(", ") }
        )));
    };
    let inside = format!("{}/", site.path.trim_end_matches('/'));
    if !c.path.starts_with(&inside) || c.path.ends_with(".php") {
        return Err(ToolError::Refused(format!(
            "{} `{slug}` lives at {}, outside the site directory or as a single file: not supported",
            kind.as_str(),
            c.path
        )));
    }
    Ok(c.path.clone())
}
