//! Finding WordPress sites and what they run, fast and without executing PHP.
//!
//! The web roots (defaults plus `[wordpress] web_roots`) are walked to a
//! bounded depth, never into `wp-content`, `wp-includes`, `wp-admin`,
//! `node_modules`, `.git` or other bulk directories: a site is a directory
//! holding `wp-includes/version.php`, configured by the `wp-config.php` in it
//! or one level above (WordPress's own rule), or by Debian's
//! `/etc/wordpress/config-<host>.php` (one site per host config). Sites are
//! then read in parallel: core version, plugins (normal and must-use) and
//! themes from their headers (the first 8 KiB, as WordPress reads them),
//! `readme.txt` `Stable tag` as a fallback.
//! Every file is read through [`Host`]: resolved inside the audited root (an
//! image's absolute symlink means the image's file), a FIFO or device never
//! opened (it is named in the review instead), reads capped.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use schemars::JsonSchema;
use serde::Serialize;

use super::feed::Kind;
use super::phpconf::{self, PhpValue, Stmt};
use crate::host::{Host, HostError};
use crate::tool::Ctx;

/// Web roots searched besides `[wordpress] web_roots`.
pub const DEFAULT_WEB_ROOTS: [&str; 5] =
    ["/var/www", "/srv/www", "/home/*/public_html", "/home/*/htdocs", "/usr/share/wordpress"];

/// How deep below a web root sites are looked for.
pub const MAX_DEPTH: usize = 5;

/// Directories never walked into while looking for sites.
const SKIP_DIRS: [&str; 14] = [
    "wp-content",
    "wp-includes",
    "wp-admin",
    "node_modules",
    "vendor",
    "cache",
    "uploads",
    "logs",
    "tmp",
    "cgi-bin",
    "phpmyadmin",
    "phpMyAdmin",
    "lost+found",
    "bower_components",
];

/// A database password, kept in memory only: never printed, never serialised.
#[derive(Clone)]
pub struct DbPassword(pub(crate) String);

impl DbPassword {
    /// The value, for the one caller that must use it (a local database client via `MYSQL_PWD`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DbPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbPassword([hidden])")
    }
}

/// Where a site's database is, without its password.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct DbSettings {
    /// `DB_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `DB_USER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `DB_HOST`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `$table_prefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_prefix: Option<String>,
}

/// A plugin, must-use plugin or theme.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Component {
    /// Directory (or file) name, the slug the feed uses.
    pub slug: String,
    /// `Plugin Name` / `Theme Name` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version from the header, else `readme.txt` `Stable tag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Plugin or theme.
    pub kind: Kind,
    /// A must-use plugin (`mu-plugins`, always active).
    pub must_use: bool,
    /// Where it is.
    pub path: String,
}

impl Component {
    /// `slug@version` (`slug@?` when unknown).
    pub fn short(&self) -> String {
        format!("{}@{}", self.slug, self.version.as_deref().unwrap_or("?"))
    }
}

/// One WordPress site.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Site {
    /// The WordPress directory (`ABSPATH`).
    pub path: String,
    /// The `wp-config.php` in use (in `path` or one level above), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    /// Every config file read (the main one and what it includes).
    pub config_files: Vec<String>,
    /// Config files not read because they are not the site's own (another user's, or outside
    /// the site's directory): their settings are not the site's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused_includes: Vec<RefusedInclude>,
    /// The file that defines `DB_PASSWORD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Host name, from Debian's `config-<host>.php` or the site URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `WP_HOME` / `WP_SITEURL` when written literally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `$wp_version` from `wp-includes/version.php`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core_version: Option<String>,
    /// Database settings (never the password).
    pub db: DbSettings,
    /// `WP_CONTENT_DIR`.
    pub content_dir: String,
    /// Plugins.
    pub plugins: Vec<Component>,
    /// Must-use plugins.
    pub mu_plugins: Vec<Component>,
    /// Themes.
    pub themes: Vec<Component>,
    /// Debian's multi-host layout (`/etc/wordpress/config-<host>.php`); `host` is `None`
    /// when no host config exists (the package then serves no site).
    pub debian: bool,
    #[serde(skip)]
    pub(crate) password: Option<DbPassword>,
    #[serde(skip)]
    pub(crate) defines: BTreeMap<String, PhpValue>,
}

impl Site {
    /// How findings name the site: its path, with the host for Debian's per-host configs.
    pub fn subject(&self) -> String {
        match (&self.host, self.debian) {
            (Some(h), true) => format!("{} [{h}]", self.path),
            _ => self.path.clone(),
        }
    }

    /// The database password, when `wp-config.php` has it as a literal.
    pub fn db_password(&self) -> Option<&DbPassword> {
        self.password.as_ref()
    }

    /// A `define()` of the site's configuration (values may be secrets: judge, never print).
    pub fn define(&self, name: &str) -> Option<&PhpValue> {
        self.defines.get(name)
    }

    /// True when a constant is defined to something truthy.
    pub fn is_on(&self, name: &str) -> bool {
        self.define(name).and_then(PhpValue::truthy).unwrap_or(false)
    }
}

/// What the walk saw besides sites.
#[derive(Debug, Default)]
pub struct Discovery {
    /// The sites, by path.
    pub sites: Vec<Site>,
    /// Web roots that exist and were walked.
    pub web_roots: Vec<String>,
    /// Database tools (Adminer, phpMyAdmin) seen inside web roots.
    pub db_tools: Vec<String>,
    /// Directories that could not be read.
    pub unreadable: Vec<HostError>,
}

/// Every WordPress site on the host, with versions and database settings.
pub fn discover_sites(ctx: &Ctx) -> Vec<Site> {
    discover(ctx).sites
}

/// Walk the web roots and read every site found.
pub fn discover(ctx: &Ctx) -> Discovery {
    let host = &ctx.host;
    let mut patterns: Vec<String> = DEFAULT_WEB_ROOTS.iter().map(|s| s.to_string()).collect();
    patterns.extend(ctx.config.wordpress.web_roots.iter().cloned());
    let mut roots: Vec<String> = Vec::new();
    for p in &patterns {
        for r in host.glob(p) {
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
    }
    let mut d = Discovery { web_roots: roots.clone(), ..Default::default() };
    // Loops only come through symlinks (and overlapping roots): only those are stat'ed and remembered.
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut dirs: Vec<String> = Vec::new();
    let mut stack: Vec<(String, usize, bool)> = roots.into_iter().rev().map(|r| (r, 0, true)).collect();
    while let Some((dir, depth, check)) = stack.pop() {
        if check {
            match host.metadata(&dir) {
                Ok(m) if seen.insert((m.dev(), m.ino())) => {}
                _ => continue,
            }
        }
        let entries = match list_dir(host, &dir) {
            Ok(e) => e,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                d.unreadable.push(e);
                continue;
            }
        };
        let has = |n: &str, want_dir: bool| entries.iter().any(|e| e.name == n && e.is_dir == want_dir);
        if has("wp-includes", true) && host.exists(&format!("{dir}/wp-includes/version.php")) {
            dirs.push(dir.clone());
        }
        let mut children = Vec::new();
        for e in &entries {
            let lower = e.name.to_ascii_lowercase();
            if (!e.is_dir && lower.starts_with("adminer") && lower.ends_with(".php"))
                || (e.is_dir && (lower.starts_with("phpmyadmin") || lower == "adminer"))
            {
                d.db_tools.push(join(&dir, &e.name));
            }
            if e.is_dir && depth < MAX_DEPTH && !e.name.starts_with('.') && !SKIP_DIRS.contains(&e.name.as_str()) {
                children.push((join(&dir, &e.name), depth + 1, e.link));
            }
        }
        stack.extend(children.into_iter().rev());
    }
    dirs.sort();
    dirs.dedup();
    d.db_tools.sort();
    d.db_tools.dedup();
    d.sites = read_sites(host, &dirs);
    d
}

fn read_sites(host: &Host, dirs: &[String]) -> Vec<Site> {
    let mut sites: Vec<Site> = par_map(dirs, |d| load_sites(host, d)).into_iter().flatten().collect();
    sites.sort_by_key(|a| a.subject());
    sites
}

/// `f` over `items` on a few threads (the work is file reads and hashing), results in order.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    if items.len() < 16 || threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> =
            items.chunks(chunk).map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// A directory entry with its type (symlinks followed, inside the root).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub is_dir: bool,
    pub link: bool,
}

fn host_err(path: &str, e: std::io::Error) -> HostError {
    match e.kind() {
        std::io::ErrorKind::NotFound => HostError::NotFound { path: path.to_string() },
        std::io::ErrorKind::PermissionDenied => HostError::PermissionDenied { path: path.to_string() },
        _ => HostError::Io { path: path.to_string(), source: e },
    }
}

/// Names and types in a directory, each judged inside the audited root: a symlink is
/// followed there (an image's `/var/www/site -> /srv/site` is the image's `/srv/site`,
/// not this machine's), so whether it is a directory is the image's answer.
pub(crate) fn list_dir(host: &Host, dir: &str) -> Result<Vec<Entry>, HostError> {
    let mut out = Vec::new();
    for name in host.read_dir(dir)? {
        let path = join(dir, &name);
        let Ok(meta) = host.symlink_metadata(&path) else {
            continue;
        };
        let link = meta.file_type().is_symlink();
        let is_dir = if link { host.metadata(&path).map(|m| m.is_dir()).unwrap_or(false) } else { meta.is_dir() };
        out.push(Entry { name, is_dir, link });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The first `n` bytes of a file, lossily decoded (through [`Host::read_head`]: a FIFO or
/// device is not opened, and is named in the review).
pub(crate) fn read_head(host: &Host, path: &str, n: usize) -> Result<String, HostError> {
    host.read_head(path, n as u64)
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') { format!("{dir}{name}") } else { format!("{dir}/{name}") }
}

/// An include (or a `wp-config.php`) that was not read because it is not the site's own file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RefusedInclude {
    /// The file whose `require`/`include` named it (the file itself for a `wp-config.php`).
    pub from: String,
    /// The path that was not followed.
    pub path: String,
    /// Why (owner or location; never its contents).
    pub why: String,
    /// The file belongs to another user (not only somewhere else).
    pub other_owner: bool,
}

/// Who may have written the files a site's settings come from.
struct Trust {
    /// Owners trusted everywhere: root and the owner of the audited system's `/`.
    root_uids: [u32; 2],
    /// The site's directory (where its `wp-config.php` is), canonical, inside the audited system.
    site_root: String,
}

impl Trust {
    fn is_root(&self, uid: u32) -> bool {
        self.root_uids.contains(&uid)
    }

    fn inside(&self, path: &str) -> bool {
        path == self.site_root || path.starts_with(&format!("{}/", self.site_root.trim_end_matches('/')))
    }
}

/// A config file opened once: its text, the owner of what was opened (a symlink counts as
/// its target) and where it really is.
struct Opened {
    text: String,
    uid: u32,
    real: String,
}

/// The largest config file read: a `wp-config.php` is a few KiB.
const MAX_CONFIG: u64 = 1024 * 1024;

/// Open a config file through [`Host::open_file_located`] (resolved inside the root, checked
/// on an `O_PATH` descriptor so a FIFO planted as `wp-config.php` is never opened and is
/// named in the review, then read non-blocking and capped) and judge it by that descriptor:
/// its owner and its place are the opened file's, never a symlink's. `Ok(None)` when absent
/// or not a regular file.
fn open_config(host: &Host, path: &str) -> Result<Option<Opened>, HostError> {
    let (f, meta, real) = match host.open_file_located(path) {
        Ok(o) => o,
        Err(e) if e.is_not_found() || matches!(e, HostError::NotRegular { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let real = phpconf::normalize(&real).unwrap_or(real);
    let mut buf = Vec::new();
    f.take(MAX_CONFIG).read_to_end(&mut buf).map_err(|e| host_err(path, e))?;
    Ok(Some(Opened { text: String::from_utf8_lossy(&buf).into_owned(), uid: meta.uid(), real }))
}

/// A config file and what it includes, `define`s first-wins as PHP does.
#[derive(Default)]
struct Loaded {
    defines: BTreeMap<String, PhpValue>,
    table_prefix: Option<String>,
    files: Vec<String>,
    password_file: Option<String>,
    debian: bool,
    refused: Vec<RefusedInclude>,
}

impl Loaded {
    fn refuse(&mut self, from: &str, path: &str, why: String, other_owner: bool) {
        let r = RefusedInclude { from: from.to_string(), path: path.to_string(), why, other_owner };
        if !self.refused.contains(&r) {
            self.refused.push(r);
        }
    }

    /// Read the site's `wp-config.php` (owned by root or the owner of the site's directory) and
    /// what it includes.
    fn load_main(&mut self, host: &Host, config: &str, dir: &str, debian_host: Option<&str>) {
        let Ok(Some(opened)) = open_config(host, config) else {
            return;
        };
        let root_owner = host.metadata("/").map(|m| m.uid()).unwrap_or(0);
        let site_owner = host.metadata(dir).map(|m| m.uid()).ok();
        let trust = Trust { root_uids: [0, root_owner], site_root: phpconf::parent(&opened.real).to_string() };
        if !trust.is_root(opened.uid) && Some(opened.uid) != site_owner {
            let owner = site_owner.map_or_else(|| "unknown".to_string(), |u| format!("uid {u}"));
            self.refuse(
                config,
                config,
                format!("owned by uid {}, not by root or the owner of {dir} ({owner})", opened.uid),
                true,
            );
            return;
        }
        let abspath = format!("{}/", dir.trim_end_matches('/'));
        self.read(host, config, opened, &abspath, 0, debian_host, &trust);
    }

    /// Follow an include of `path` from `from` (owned by `from_uid`) if it is the site's own file.
    #[allow(clippy::too_many_arguments)]
    fn include(
        &mut self,
        host: &Host,
        from: &str,
        from_uid: u32,
        path: &str,
        abspath: &str,
        depth: usize,
        trust: &Trust,
    ) {
        if depth > 4 || self.files.iter().any(|f| f == path) {
            return;
        }
        let Ok(Some(opened)) = open_config(host, path) else {
            return;
        };
        let by_root = trust.is_root(from_uid) && trust.is_root(opened.uid);
        if !trust.is_root(opened.uid) && opened.uid != from_uid {
            let via =
                if opened.real != path { format!(" (through a symlink to {})", opened.real) } else { String::new() };
            let why = format!("owned by uid {}, another user than {from} (uid {from_uid}){via}", opened.uid);
            self.refuse(from, path, why, true);
        } else if trust.inside(&opened.real) || (by_root && !trust.inside(path)) {
            // The site's own file, or root's layout outside it (Debian's /etc/wordpress).
            self.read(host, path, opened, abspath, depth, None, trust);
        } else {
            let via =
                if trust.inside(path) { format!(" (through a symlink to {})", opened.real) } else { String::new() };
            self.refuse(from, path, format!("outside the site's directory {}{via}", trust.site_root), false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &mut self,
        host: &Host,
        file: &str,
        opened: Opened,
        abspath: &str,
        depth: usize,
        debian_host: Option<&str>,
        trust: &Trust,
    ) {
        self.files.push(file.to_string());
        let dir = phpconf::parent(file).to_string();
        for st in phpconf::parse(&opened.text) {
            match st {
                Stmt::Define(name, value) => {
                    if name == "DB_PASSWORD" && !self.defines.contains_key("DB_PASSWORD") {
                        self.password_file = Some(file.to_string());
                    }
                    self.defines.entry(name).or_insert(value);
                }
                Stmt::TablePrefix(p) => {
                    self.table_prefix.get_or_insert(p);
                }
                Stmt::Include(pieces) => {
                    if let Some(p) = phpconf::resolve(&pieces, &dir, abspath) {
                        if !p.ends_with("/wp-settings.php") {
                            self.include(host, file, opened.uid, &p, abspath, depth + 1, trust);
                        }
                    }
                }
                Stmt::DebianHostConfig => {
                    self.debian = true;
                    if let Some(h) = debian_host {
                        let p = format!("/etc/wordpress/config-{h}.php");
                        self.include(host, file, opened.uid, &p, abspath, depth + 1, trust);
                    }
                }
            }
        }
    }
}

fn config_for(host: &Host, dir: &str) -> Option<String> {
    let here = join(dir, "wp-config.php");
    if host.exists(&here) {
        return Some(here);
    }
    // WordPress also loads wp-config.php one level up, unless that directory is another install.
    let up = phpconf::parent(dir);
    let above = join(up, "wp-config.php");
    (up != dir && host.exists(&above) && !host.exists(&join(up, "wp-settings.php"))).then_some(above)
}

/// The sites in one WordPress directory: one, or one per Debian host config.
fn load_sites(host: &Host, dir: &str) -> Vec<Site> {
    let config = config_for(host, dir);
    let mut probe = Loaded::default();
    if let Some(c) = &config {
        probe.load_main(host, c, dir, None);
    }
    if !probe.debian {
        return vec![build_site(host, dir, config, probe, None)];
    }
    let hosts: Vec<String> = host
        .glob("/etc/wordpress/config-*.php")
        .iter()
        .filter_map(|p| p.strip_prefix("/etc/wordpress/config-")?.strip_suffix(".php").map(str::to_string))
        .collect();
    if hosts.is_empty() {
        // Debian's package without any host config: it answers every request with a 404.
        let mut s = build_site(host, dir, config, probe, None);
        s.debian = true;
        return vec![s];
    }
    hosts
        .into_iter()
        .map(|h| {
            let mut l = Loaded::default();
            if let Some(c) = &config {
                l.load_main(host, c, dir, Some(&h));
            }
            build_site(host, dir, config.clone(), l, Some(h))
        })
        .collect()
}

fn literal(defines: &BTreeMap<String, PhpValue>, name: &str) -> Option<String> {
    defines.get(name).and_then(|v| v.as_str()).map(str::to_string)
}

fn build_site(host: &Host, dir: &str, config: Option<String>, l: Loaded, debian_host: Option<String>) -> Site {
    let defines = l.defines;
    let abs = |name: &str| literal(&defines, name).filter(|p| p.starts_with('/')).and_then(|p| phpconf::normalize(&p));
    let own_content = join(dir, "wp-content");
    let content_dir = abs("WP_CONTENT_DIR").unwrap_or_else(|| own_content.clone());
    let plugin_dir = abs("WP_PLUGIN_DIR").unwrap_or_else(|| join(&content_dir, "plugins"));
    let mu_dir = abs("WPMU_PLUGIN_DIR").unwrap_or_else(|| join(&content_dir, "mu-plugins"));
    let mut plugins = scan_plugins(host, &plugin_dir);
    let mut themes = scan_themes(host, &join(&content_dir, "themes"));
    if content_dir != own_content {
        // Debian keeps the packaged plugins and themes in the WordPress directory and links
        // them into WP_CONTENT_DIR; count them once.
        for p in scan_plugins(host, &join(&own_content, "plugins")) {
            if !plugins.iter().any(|q| q.slug == p.slug) {
                plugins.push(p);
            }
        }
        for t in scan_themes(host, &join(&own_content, "themes")) {
            if !themes.iter().any(|q| q.slug == t.slug) {
                themes.push(t);
            }
        }
    }
    let url = literal(&defines, "WP_HOME").or_else(|| literal(&defines, "WP_SITEURL"));
    let host_name = debian_host.clone().or_else(|| url.as_deref().and_then(url_host));
    let password = match defines.get("DB_PASSWORD") {
        Some(PhpValue::Str(s)) => Some(DbPassword(s.clone())),
        _ => None,
    };
    Site {
        path: dir.to_string(),
        config_path: config,
        config_files: l.files,
        refused_includes: l.refused,
        password_file: l.password_file,
        host: host_name,
        url,
        core_version: core_version(host, dir),
        db: DbSettings {
            name: literal(&defines, "DB_NAME"),
            user: literal(&defines, "DB_USER"),
            host: literal(&defines, "DB_HOST"),
            table_prefix: l.table_prefix,
        },
        content_dir,
        plugins,
        mu_plugins: scan_mu_plugins(host, &mu_dir),
        themes,
        debian: debian_host.is_some(),
        password,
        defines,
    }
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let h = rest.split(['/', ':', '?']).next()?.trim();
    (!h.is_empty()).then(|| h.to_ascii_lowercase())
}

/// `$wp_version = '6.1.9';`
pub(crate) fn core_version(host: &Host, dir: &str) -> Option<String> {
    let text = read_head(host, &format!("{dir}/wp-includes/version.php"), 16 * 1024).ok()?;
    // The doc comment above names `$wp_version` too: take the occurrence that is an assignment.
    text.match_indices("$wp_version").find_map(|(at, m)| {
        let rest = text[at + m.len()..].trim_start().strip_prefix('=')?.trim_start();
        let q = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let end = rest[1..].find(q)?;
        Some(rest[1..1 + end].to_string())
    })
}

/// A header field the way WordPress's `get_file_data()` reads it.
pub(crate) fn header_field(text: &str, field: &str) -> Option<String> {
    for line in text.lines() {
        let mut l = line.trim_start();
        if let Some(r) = l.strip_prefix("<?php") {
            l = r;
        }
        let l = l.trim_start_matches([' ', '\t', '/', '*', '#', '@']);
        if l.len() > field.len() && l.is_char_boundary(field.len()) && l[..field.len()].eq_ignore_ascii_case(field) {
            if let Some(v) = l[field.len()..].strip_prefix(':') {
                let v = v.split("*/").next().unwrap_or("").split("?>").next().unwrap_or("").trim();
                if !v.is_empty() {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

fn stable_tag(host: &Host, dir: &str) -> Option<String> {
    ["readme.txt", "README.txt"]
        .iter()
        .find_map(|n| read_head(host, &join(dir, n), 8192).ok())
        .and_then(|t| header_field(&t, "Stable tag"))
        .filter(|v| !v.eq_ignore_ascii_case("trunk"))
}

fn plugin_from_file(host: &Host, file: &str, slug: &str, dir: Option<&str>) -> Option<Component> {
    let head = read_head(host, file, 8192).ok()?;
    let name = header_field(&head, "Plugin Name")?;
    let version = header_field(&head, "Version").or_else(|| dir.and_then(|d| stable_tag(host, d)));
    Some(Component {
        slug: slug.to_string(),
        name: Some(name),
        version,
        kind: Kind::Plugin,
        must_use: false,
        path: dir.unwrap_or(file).to_string(),
    })
}

fn scan_plugins(host: &Host, pdir: &str) -> Vec<Component> {
    let Ok(entries) = list_dir(host, pdir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        if e.name.starts_with('.') {
            continue;
        }
        if !e.is_dir {
            if let Some(stem) = e.name.strip_suffix(".php") {
                out.extend(plugin_from_file(host, &join(pdir, &e.name), stem, None));
            }
            continue;
        }
        let dir = join(pdir, &e.name);
        // WordPress's convention first (slug/slug.php), then every top-level PHP file.
        if let Some(c) = plugin_from_file(host, &format!("{dir}/{}.php", e.name), &e.name, Some(&dir)) {
            out.push(c);
            continue;
        }
        let Ok(files) = list_dir(host, &dir) else {
            continue;
        };
        if let Some(c) = files
            .iter()
            .filter(|f| !f.is_dir && f.name.ends_with(".php") && f.name != format!("{}.php", e.name))
            .find_map(|f| plugin_from_file(host, &join(&dir, &f.name), &e.name, Some(&dir)))
        {
            out.push(c);
        }
    }
    out
}

fn scan_mu_plugins(host: &Host, dir: &str) -> Vec<Component> {
    let Ok(entries) = list_dir(host, dir) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter(|e| !e.is_dir && e.name.ends_with(".php"))
        .map(|e| {
            let path = join(dir, &e.name);
            let head = read_head(host, &path, 8192).unwrap_or_default();
            Component {
                slug: e.name.trim_end_matches(".php").to_string(),
                name: header_field(&head, "Plugin Name"),
                version: header_field(&head, "Version"),
                kind: Kind::Plugin,
                must_use: true,
                path,
            }
        })
        .collect()
}

fn scan_themes(host: &Host, tdir: &str) -> Vec<Component> {
    let Ok(entries) = list_dir(host, tdir) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter(|e| e.is_dir && !e.name.starts_with('.'))
        .filter_map(|e| {
            let dir = join(tdir, &e.name);
            let head = read_head(host, &join(&dir, "style.css"), 8192).ok()?;
            let name = header_field(&head, "Theme Name")?;
            let version = header_field(&head, "Version").or_else(|| stable_tag(host, &dir));
            Some(Component { slug: e.name, name: Some(name), version, kind: Kind::Theme, must_use: false, path: dir })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_as_wordpress_reads_them() {
        let php = "<?php\n/**\n * Plugin Name: WooCommerce\n * Version: 8.0.2 */\n * WC requires at least: 7.0\n";
        assert_eq!(header_field(php, "Plugin Name").as_deref(), Some("WooCommerce"));
        assert_eq!(header_field(php, "Version").as_deref(), Some("8.0.2"));
        assert_eq!(header_field("<?php /* Plugin Name: Tiny */", "Plugin Name").as_deref(), Some("Tiny"));
        assert_eq!(header_field("=== X ===\nStable tag: 5.3.2\n", "Stable tag").as_deref(), Some("5.3.2"));
        assert_eq!(header_field("Versions: 2", "Version"), None);
        assert_eq!(url_host("https://Shop.Example.com:8443/x").as_deref(), Some("shop.example.com"));
    }
}
