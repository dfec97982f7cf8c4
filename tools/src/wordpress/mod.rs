//! `wordpress_inventory`: every WordPress site, what it runs, and what is wrong with it.
//!
//! Most hosting servers run many WordPress sites, and three of the seven
//! breach patterns live in them: one password template on every database
//! ("ClientName2024!"), plugins left on versions with published exploits, and
//! debug output left on when staging became production. This tool finds the
//! sites under the web roots (Debian's `/etc/wordpress/config-<host>.php`
//! layout included), reads versions from headers without executing PHP,
//! matches them against a Wordfence Intelligence feed, judges database
//! passwords locally (never reporting them), and checks debug, permissions,
//! leftovers in the web root and PHP dropped into uploads.

pub mod admins;
pub mod checks;
pub mod creds;
pub mod dbendpoint;
pub mod discover;
pub mod feed;
pub mod phpconf;
pub mod version;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use discover::{Component, DbPassword, DbSettings, Discovery, RefusedInclude, Site, discover, discover_sites};
pub use feed::{FeedError, FeedIndex, FeedStats, Kind, validate_feed};

use crate::finding::{Category, Finding, Severity};
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};

const TOOL: &str = "wordpress_inventory";

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct WordpressInventory;

/// Input of `wordpress_inventory`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WpInput {
    /// Only sites whose directory or host name contains this text (e.g. `shop` or `example.com`);
    /// every site when absent. Password reuse is still judged across all sites.
    #[serde(default)]
    pub site: Option<String>,
}

/// One site, compactly.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SiteFacts {
    /// WordPress directory (with `[host]` for Debian per-host configs).
    pub site: String,
    /// Host name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Site URL, when written in wp-config.php.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// WordPress version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core: Option<String>,
    /// Plugins as `slug@version` (must-use ones prefixed `mu:`).
    pub plugins: Vec<String>,
    /// Themes as `slug@version`.
    pub themes: Vec<String>,
    /// Database name and user (`user@name`), never the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// What the findings say about this site, in short (`wp-debug-display`, `vulnerable-plugin`…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Administrator logins in the site's database (live host, read with the site's own credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins: Option<Vec<String>>,
    /// Why the administrators could not be listed (database unreachable, no client, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins_unavailable: Option<String>,
}

/// The feed used.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FeedFacts {
    /// Where it was read from.
    pub path: String,
    /// What is in it.
    #[serde(flatten)]
    pub stats: FeedStats,
}

/// Facts of `wordpress_inventory`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct WordpressFacts {
    /// The sites found.
    pub sites: Vec<SiteFacts>,
    /// Web roots that exist and were searched.
    pub web_roots: Vec<String>,
    /// The vulnerability feed, when one was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<FeedFacts>,
}

#[async_trait]
impl Tool for WordpressInventory {
    type Input = WpInput;
    type Output = WordpressFacts;

    fn name(&self) -> &'static str {
        TOOL
    }

    fn description(&self) -> &'static str {
        "Inventory every WordPress site on the host (web roots /var/www, /srv/www, /home/*/public_html, \
         /home/*/htdocs, /usr/share/wordpress with Debian's /etc/wordpress/config-<host>.php, plus configured \
         roots): core, plugin (incl. must-use) and theme versions, matched against the Wordfence vulnerability \
         feed when one is available. Judges database passwords locally (weak, identical across sites, one \
         template such as Name+Year+! across sites; never returns them), DB_USER root, default salts; \
         WP_DEBUG and display_errors left on, debug.log in the web root, DISALLOW_FILE_EDIT, wp-config.php \
         permissions, dumps, installers and Adminer/phpMyAdmin in web roots, PHP files in uploads, administrator \
         accounts new since the last review (live host, read with the site's own DB credentials), modified \
         packaged core. Use it for 'which sites are outdated/vulnerable', 'is debug on anywhere', \
         'are database passwords reused'."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, input: WpInput) -> Result<Outcome<WordpressFacts>, ToolError> {
        let bg = ctx.clone();
        let (mut out, sites) = tokio::task::spawn_blocking(move || inventory_sites(&bg))
            .await
            .map_err(|e| ToolError::Failed(format!("wordpress_inventory stopped: {e}")))?;
        let filter = input.site.filter(|s| !s.trim().is_empty());
        if ctx.host.is_live() && !sites.is_empty() {
            let chosen: Vec<usize> = (0..sites.len())
                .filter(|i| {
                    let s = &sites[*i];
                    filter
                        .as_deref()
                        .is_none_or(|f| s.subject().contains(f) || s.host.as_deref().is_some_and(|h| h.contains(f)))
                })
                .collect();
            let listed = admins::list(&ctx.host, &sites, &chosen).await;
            let found = admins::compare_and_record(ctx, &sites, &listed);
            add_admins(&mut out, listed, found);
        }
        let Some(filter) = filter else {
            return Ok(out);
        };
        let Outcome { mut facts, findings } = out;
        facts.sites.retain(|s| s.site.contains(&filter) || s.host.as_deref().is_some_and(|h| h.contains(&filter)));
        let keep: Vec<&str> = facts.sites.iter().map(|s| s.site.as_str()).collect();
        let findings = findings
            .into_iter()
            .filter(|f| f.subject.contains(&filter) || keep.iter().any(|k| f.subject.contains(k)))
            .collect();
        Ok(Outcome::new(facts, findings))
    }
}

/// Where the feed is: `--vuln-feed` / `[wordpress] vuln_feed`, else the state directory's copy.
pub fn feed_path(ctx: &Ctx) -> Option<(PathBuf, bool)> {
    if let Some(p) = &ctx.config.wordpress.vuln_feed {
        return Some((p.clone(), true));
    }
    let p = ctx.state_dir.as_ref()?.join(feed::FEED_FILE);
    p.is_file().then_some((p, false))
}

/// Administrators listed (facts) and new ones (findings), merged into the inventory's outcome.
fn add_admins(
    out: &mut Outcome<WordpressFacts>,
    listed: Vec<(usize, admins::Admins)>,
    found: Vec<(Option<usize>, Finding)>,
) {
    for (i, a) in listed {
        if let Some(sf) = out.facts.sites.get_mut(i) {
            match a {
                admins::Admins::Listed(l) => sf.admins = Some(l),
                admins::Admins::Unavailable(why) => sf.admins_unavailable = Some(why),
            }
        }
    }
    for (i, f) in found {
        if let Some(sf) = i.and_then(|i| out.facts.sites.get_mut(i)) {
            let kind = f.id.split_once('.').map_or(f.id.as_str(), |(_, k)| k).to_string();
            if !sf.flags.contains(&kind) {
                sf.flags.push(kind);
                sf.flags.sort();
            }
        }
        out.findings.push(f);
    }
    out.findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.key().cmp(&b.key())));
}

/// The whole inventory, synchronously (the tool runs it on a blocking thread).
pub fn inventory(ctx: &Ctx) -> Outcome<WordpressFacts> {
    inventory_sites(ctx).0
}

/// [`inventory`], also returning the sites found (in the order of `facts.sites`).
pub fn inventory_sites(ctx: &Ctx) -> (Outcome<WordpressFacts>, Vec<Site>) {
    let host = &ctx.host;
    let d = discover(ctx);
    let sites = &d.sites;
    // (site index or None, finding)
    let mut found: Vec<(Option<usize>, Finding)> = Vec::new();
    if let Some(first) = d.unreadable.first() {
        let mut f = Finding::could_not_check(Category::Hardening, TOOL, "directories under the web roots", first);
        for e in d.unreadable.iter().skip(1).take(9) {
            f = f.evidence(e.to_string());
        }
        if d.unreadable.len() > 10 {
            f = f.evidence(format!("… and {} more", d.unreadable.len() - 10));
        }
        found.push((None, f));
    }

    // Vulnerabilities.
    let mut feed_facts = None;
    match feed_path(ctx) {
        _ if sites.is_empty() => {}
        None => found.push((
            None,
            Finding::new(
                "updates.no-vuln-feed",
                Severity::Info,
                Category::Updates,
                "wordpress_inventory: vulnerability feed",
                "WordPress versions were not checked against known vulnerabilities (no feed)",
            )
            .evidence(format!("{} site(s) found; no Wordfence Intelligence feed configured or downloaded", sites.len()))
            .fix(
                "Run `vigil vulndb update` (free Wordfence Intelligence API key in WORDFENCE_API_KEY or the keyring), \
                  or pass --vuln-feed FILE / set [wordpress] vuln_feed to a downloaded production feed.",
            ),
        )),
        Some((path, _)) => match feed::load_cached(&path) {
            Ok(idx) => {
                feed_facts = Some(FeedFacts { path: path.display().to_string(), stats: idx.stats.clone() });
                let per_site = discover::par_map(sites, |s| vuln_findings(s, &idx));
                for (i, fs) in per_site.into_iter().enumerate() {
                    found.extend(fs.into_iter().map(|f| (Some(i), f)));
                }
            }
            Err(e) => found.push((
                None,
                Finding::could_not_check(
                    Category::Updates,
                    TOOL,
                    &format!("the vulnerability feed {}", path.display()),
                    e,
                ),
            )),
        },
    }

    // Credentials.
    found.extend(credential_findings(sites));
    found.extend(sites.iter().enumerate().flat_map(|(i, s)| refused_include_findings(s).map(move |f| (Some(i), f))));

    // Hardening and integrity.
    for (i, fs) in discover::par_map(sites, |s| checks::site_checks(host, s)).into_iter().enumerate() {
        found.extend(fs.into_iter().map(|f| (Some(i), f)));
    }
    found.extend(checks::php_display_errors(host, sites).into_iter().map(|f| (None, f)));
    found.extend(checks::packaged_core_modified(host, sites).into_iter().map(|f| (None, f)));
    found.extend(checks::db_tools(&d.db_tools).into_iter().map(|f| (None, f)));

    // One finding per (id, subject); flags per site.
    let mut seen = HashSet::new();
    let mut flags: Vec<BTreeSet<String>> = vec![BTreeSet::new(); sites.len()];
    let by_path = checks::by_path(sites);
    let mut findings = Vec::new();
    for (site, f) in found {
        let kind = f.id.split_once('.').map_or(f.id.as_str(), |(_, k)| k).to_string();
        match site {
            Some(i) => {
                if let Some(set) = flags.get_mut(i) {
                    set.insert(kind);
                }
            }
            None => {
                // Host-level findings about a file inside a site (db tools, php.ini in .user.ini) flag that site.
                for (path, idxs) in &by_path {
                    if f.subject.starts_with(&format!("{path}/")) {
                        for i in idxs {
                            flags[*i].insert(kind.clone());
                        }
                    }
                }
            }
        }
        if !f.subject.is_empty() && seen.insert(f.key()) {
            findings.push(f);
        }
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.key().cmp(&b.key())));

    let facts = WordpressFacts {
        sites: sites
            .iter()
            .zip(flags)
            .map(|(s, fl)| SiteFacts {
                site: s.subject(),
                host: s.host.clone(),
                url: s.url.clone(),
                core: s.core_version.clone(),
                plugins: s
                    .plugins
                    .iter()
                    .map(Component::short)
                    .chain(s.mu_plugins.iter().map(|m| format!("mu:{}", m.short())))
                    .collect(),
                themes: s.themes.iter().map(Component::short).collect(),
                db: match (&s.db.user, &s.db.name) {
                    (Some(u), Some(n)) => Some(format!("{u}@{n}")),
                    (None, Some(n)) => Some(n.clone()),
                    _ => None,
                },
                flags: fl.into_iter().collect(),
                admins: None,
                admins_unavailable: None,
            })
            .collect(),
        web_roots: d.web_roots,
        feed: feed_facts,
    };
    (Outcome::new(facts, findings), d.sites)
}

fn wordfence_link(id: &str) -> String {
    format!("https://www.wordfence.com/threat-intel/vulnerabilities/id/{id}")
}

/// One finding per vulnerable component of a site.
pub fn vuln_findings(site: &Site, idx: &FeedIndex) -> Vec<Finding> {
    let mut out = Vec::new();
    let subj = site.subject();
    let mut check = |kind: Kind, slug: &str, name: &str, installed: &str, subject: String| {
        let mut hits = idx.lookup(kind, slug, installed);
        if hits.is_empty() {
            return;
        }
        hits.sort_by(|a, b| b.vuln.severity.cmp(&a.vuln.severity).then_with(|| a.vuln.title.cmp(&b.vuln.title)));
        let worst = hits[0].vuln.severity;
        let target = hits.iter().filter_map(|h| h.fixed_in).max_by(|a, b| version::compare(a, b)).map(str::to_string);
        let unfixed = hits.iter().filter(|h| h.fixed_in.is_none()).count();
        let what = match kind {
            Kind::Core => "WordPress core".to_string(),
            _ => format!("{name} ({slug})"),
        };
        let mut f = Finding::new(
            format!("updates.vulnerable-{}", kind.as_str()),
            worst,
            Category::Updates,
            subject,
            format!(
                "{what} {installed} on {subj} has {} known vulnerabilit{} (worst: {worst})",
                hits.len(),
                if hits.len() == 1 { "y" } else { "ies" }
            ),
        );
        for h in hits.iter().take(8) {
            let v = h.vuln;
            let cvss = v
                .score
                .map(|s| format!("CVSS {s:.1} {}", v.severity))
                .unwrap_or_else(|| format!("severity {}", v.severity));
            let fix = h.fixed_in.map(|p| format!("fixed in {p}")).unwrap_or_else(|| "no fix published".into());
            f = f.evidence(format!(
                "{} [{}; {cvss}; {fix}] {}",
                v.title,
                v.cve.as_deref().unwrap_or("no CVE"),
                wordfence_link(&v.id)
            ));
        }
        if hits.len() > 8 {
            f = f.evidence(format!("… and {} more", hits.len() - 8));
        }
        let how = match kind {
            Kind::Core if site.path == "/usr/share/wordpress" => {
                "apt-get update && apt-get install --only-upgrade wordpress".to_string()
            }
            Kind::Core => {
                format!("wp core update --version={} --path={}", target.as_deref().unwrap_or("latest"), site.path)
            }
            Kind::Plugin => format!(
                "wp plugin update {slug}{} --path={}",
                target.as_deref().map(|t| format!(" --version={t}")).unwrap_or_default(),
                site.path
            ),
            Kind::Theme => format!(
                "wp theme update {slug}{} --path={}",
                target.as_deref().map(|t| format!(" --version={t}")).unwrap_or_default(),
                site.path
            ),
        };
        let mut fix = match &target {
            Some(t) => format!(
                "Update {what} from {installed} to {t} or later (back up first; stage it with wordpress_stage_update, or `{how}`)."
            ),
            None => String::new(),
        };
        if unfixed > 0 {
            if !fix.is_empty() {
                fix.push(' ');
            }
            fix.push_str(&format!(
                "{unfixed} of these have no patched version: deactivate and remove {what} or replace it."
            ));
        }
        out.push(f.fix(fix));
    };
    if let Some(v) = &site.core_version {
        check(Kind::Core, "wordpress", "WordPress", v, subj.clone());
    }
    for c in site.plugins.iter().chain(site.mu_plugins.iter()).chain(site.themes.iter()) {
        let Some(v) = &c.version else {
            continue;
        };
        let kind_word = if c.kind == Kind::Theme { "theme" } else { "plugin" };
        check(c.kind, &c.slug, c.name.as_deref().unwrap_or(&c.slug), v, format!("{subj} {kind_word}:{}", c.slug));
    }
    out
}

const SALT_NAMES: [&str; 8] = [
    "AUTH_KEY",
    "SECURE_AUTH_KEY",
    "LOGGED_IN_KEY",
    "NONCE_KEY",
    "AUTH_SALT",
    "SECURE_AUTH_SALT",
    "LOGGED_IN_SALT",
    "NONCE_SALT",
];

fn group_subject(sites: &[Site], members: &[usize]) -> String {
    let mut names: Vec<String> = members.iter().filter_map(|i| sites.get(*i)).map(Site::subject).collect();
    names.sort();
    names.join(", ")
}

fn site_line(s: &Site) -> String {
    let db = match (&s.db.user, &s.db.name) {
        (Some(u), Some(n)) => format!(" (database {n}, user {u})"),
        (None, Some(n)) => format!(" (database {n})"),
        _ => String::new(),
    };
    format!("{}{db}: {}", s.subject(), s.password_file.as_deref().unwrap_or("?"))
}

/// Password strength, reuse and templates; DB_USER root; salts.
fn credential_findings(sites: &[Site]) -> Vec<(Option<usize>, Finding)> {
    let mut out = Vec::new();
    // Debian per-host sites may share one config; judge each password file once.
    let mut pw: Vec<(usize, &str)> = Vec::new();
    let mut files_seen = HashSet::new();
    for (i, s) in sites.iter().enumerate() {
        let Some(p) = s.db_password() else {
            continue;
        };
        if files_seen.insert(s.password_file.clone().unwrap_or_else(|| s.subject())) {
            pw.push((i, p.expose()));
        }
    }
    let judged = discover::par_map(&pw, |(i, p)| {
        let s = &sites[*i];
        let base = s.path.rsplit('/').next().unwrap_or("");
        let ctx: Vec<&str> = [s.db.name.as_deref(), s.db.user.as_deref(), s.host.as_deref(), Some(base)]
            .into_iter()
            .flatten()
            .filter(|c| !c.is_empty())
            .collect();
        creds::judge(p, &ctx)
    });
    for ((i, _), j) in pw.iter().zip(judged) {
        let (i, s) = (*i, &sites[*i]);
        let file = s.password_file.clone().unwrap_or_else(|| s.subject());
        if j.weak() {
            let mut f = Finding::new(
                "credentials.weak-db-password",
                if j.guessable { Severity::High } else { Severity::Medium },
                Category::Credentials,
                s.subject(),
                format!("Weak database password for {}", s.subject()),
            )
            .evidence(format!("DB_PASSWORD in {file} (judged locally; the value is not shown)"));
            for r in &j.reasons {
                f = f.evidence(r.clone());
            }
            out.push((
                Some(i),
                f.fix(format!(
                    "Generate a random password (`openssl rand -base64 24`), set it for the database user \
                     (ALTER USER '{}'@'{}' IDENTIFIED BY 'NEW-PASSWORD';) and in {file}; keep it in a password manager.",
                    s.db.user.as_deref().unwrap_or("wp"),
                    db_client_host(s)
                )),
            ));
        }
    }
    for g in creds::identical(&pw) {
        let mut f = Finding::new(
            "credentials.reused-db-password",
            Severity::High,
            Category::Credentials,
            group_subject(sites, &g),
            format!("{} sites use the same database password", g.len()),
        );
        for i in &g {
            if let Some(s) = sites.get(*i) {
                f = f.evidence(site_line(s));
            }
        }
        f = f.evidence("compared by keyed hashes in memory; one leaked wp-config.php opens every database here");
        let flagged = g.clone();
        out.push((None, f.fix("Give each site its own database user with a unique random password (`openssl rand -base64 24`), then update each wp-config.php.")));
        for i in flagged {
            out.push((
                Some(i),
                Finding::new("credentials.reused-db-password", Severity::High, Category::Credentials, "", ""),
            ));
        }
    }
    for g in creds::patterns(&pw) {
        let mut how = Vec::new();
        if let Some(t) = &g.template {
            how.push(format!("the same structure: {}", creds::describe_template(t)));
        }
        if g.likeness.contains(&creds::Likeness::Prefix) {
            how.push("the same first characters".to_string());
        }
        if g.likeness.contains(&creds::Likeness::Suffix) {
            how.push("the same last characters".to_string());
        }
        let mut f = Finding::new(
            "credentials.password-pattern",
            Severity::High,
            Category::Credentials,
            group_subject(sites, &g.members),
            format!("{} sites' database passwords follow one pattern", g.members.len()),
        )
        .evidence(format!("different passwords built alike: {}", how.join("; ")));
        for i in &g.members {
            if let Some(s) = sites.get(*i) {
                f = f.evidence(site_line(s));
            }
        }
        f = f.evidence("an attacker who reads one wp-config.php tries the variations on every other database");
        out.push((None, f.fix("Replace every one of these with an independent random password (`openssl rand -base64 24`), one per site, stored in a password manager.")));
        for i in &g.members {
            out.push((
                Some(*i),
                Finding::new("credentials.password-pattern", Severity::High, Category::Credentials, "", ""),
            ));
        }
    }
    for (i, s) in sites.iter().enumerate() {
        if s.db.user.as_deref() == Some("root") {
            out.push((
                Some(i),
                Finding::new(
                    "credentials.db-root-user",
                    Severity::High,
                    Category::Credentials,
                    s.subject(),
                    format!("{} connects to the database as root", s.subject()),
                )
                .evidence(format!("DB_USER is 'root' in {}", s.password_file.as_deref().or(s.config_path.as_deref()).unwrap_or("wp-config.php")))
                .evidence("a SQL injection or a leaked wp-config.php then reaches every database on the server")
                .fix(format!(
                    "CREATE USER '{0}'@'localhost' IDENTIFIED BY 'NEW-PASSWORD'; GRANT ALL ON `{0}`.* TO '{0}'@'localhost'; then set DB_USER/DB_PASSWORD in wp-config.php.",
                    s.db.name.as_deref().unwrap_or("site")
                )),
            ));
        }
        if s.config_path.is_none() || (s.debian && s.host.is_none()) {
            continue;
        }
        let mut missing = Vec::new();
        let mut default = Vec::new();
        for n in SALT_NAMES {
            match s.define(n) {
                None => missing.push(n),
                Some(phpconf::PhpValue::Str(v))
                    if v.trim().is_empty() || v.contains("put your unique phrase here") || v.chars().count() < 32 =>
                {
                    default.push(n)
                }
                _ => {}
            }
        }
        if !missing.is_empty() || !default.is_empty() {
            let mut f = Finding::new(
                "credentials.default-salts",
                Severity::Medium,
                Category::Credentials,
                s.subject(),
                "Authentication keys and salts are missing or left at their defaults",
            );
            if !default.is_empty() {
                f = f.evidence(format!("default, empty or short: {}", default.join(", ")));
            }
            if !missing.is_empty() {
                f = f.evidence(format!("not defined: {}", missing.join(", ")));
            }
            out.push((
                Some(i),
                f.fix(format!(
                    "Replace the eight keys in {} with fresh random values (https://api.wordpress.org/secret-key/1.1/salt/ or `wp config shuffle-salts`); every user is logged out once.",
                    s.config_path.as_deref().unwrap_or("wp-config.php")
                )),
            ));
        }
    }
    // Findings with an empty subject only mark a site's flags; `inventory` drops them.
    out
}

/// Config files a site's `wp-config.php` names that are not the site's own: not read, said so.
fn refused_include_findings(s: &Site) -> impl Iterator<Item = Finding> + '_ {
    s.refused_includes.iter().map(move |r| {
        let (severity, title) = if r.other_owner {
            (Severity::High, format!("{} reads another user's file for its settings; it was not followed", s.subject()))
        } else {
            (Severity::Medium, format!("{} reads settings from outside its directory; they were not followed", s.subject()))
        };
        Finding::new("credentials.config-include-refused", severity, Category::Credentials, format!("{}: {}", s.subject(), r.path), title)
            .evidence(format!("{} includes {}: {}", r.from, r.path, r.why))
            .evidence(
                "a site's database settings are taken only from its own files, so one site owner cannot make vigil \
                 read (and send on) another site's password; this site's database checks use only what its own files say",
            )
            .fix(format!(
                "If {path} is meant to be part of this site, move its settings into a file inside the site's directory \
                 owned by the site's user. If nobody on your side wrote that include, treat it as an attempt to read \
                 another site's configuration: check who changed {from} and when, and change the database password \
                 of the site whose file it names.",
                path = r.path,
                from = r.from,
            ))
    })
}

fn db_client_host(s: &Site) -> String {
    match s.db.host.as_deref() {
        None | Some("localhost") | Some("") => "localhost".into(),
        Some(h) if h.starts_with("127.") || h.starts_with("localhost:") => "localhost".into(),
        Some(h) => h.split(':').next().unwrap_or(h).to_string(),
    }
}

/// Site subjects and their facts, for other tools.
pub fn site_index(sites: &[Site]) -> BTreeMap<String, &Site> {
    sites.iter().map(|s| (s.subject(), s)).collect()
}

/// Shared feed for callers outside this module.
pub fn load_feed(path: &std::path::Path) -> Result<Arc<FeedIndex>, FeedError> {
    feed::load_cached(path)
}

#[cfg(test)]
mod tests;
