//! One bounded walk of each document root: files a browser can download, and web shells.
//!
//! Document roots come from the enabled nginx and Apache sites
//! ([`crate::tls::Site::roots`]). Each file is judged by its name (`.git/`,
//! `.env`, dumps, `wp-config.php` copies, `phpinfo.php`, site archives) and is a
//! finding only when some site serving the root would hand it out: a path
//! the site's configuration denies (or, on Apache, a `.htaccess` on the way)
//! is closed already. `/.well-known/` is public by design and never walked.
//! PHP files are read through [`Host::read_head`] within a per-review byte
//! budget and searched for web-shell markers ([`super::shells`]); when the
//! budget runs out the review says so. Files WordPress's own checks report in a
//! site's top directory are left to them.

use std::collections::{HashMap, HashSet};

use crate::finding::{Category, Finding, Severity};
use crate::host::Host;
use crate::tls::Site;
use crate::tls::access::{apache_rules, denied_by};
use crate::wordpress::checks::{is_config_backup, is_php_name};
use crate::wordpress::discover::{join, list_dir};

/// Bytes of PHP read per review for the web-shell search.
pub const SHELL_BYTES: u64 = 96 << 20;
/// Bytes read from the head of one PHP file.
pub const SHELL_FILE_HEAD: u64 = 256 << 10;
/// Directory entries looked at per review.
pub const ENTRY_BUDGET: usize = 300_000;
/// Deepest directory walked below a document root.
const MAX_DEPTH: usize = 14;

/// What a review's walk spent, for the facts and the "budget ran out" notice.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// PHP bytes still allowed.
    pub bytes_left: u64,
    /// Entries still allowed.
    pub entries_left: usize,
    /// PHP files read.
    pub files_read: usize,
    /// PHP files not read because the byte budget ran out.
    pub files_skipped: usize,
    /// Directories not walked because the entry budget ran out.
    pub truncated: bool,
}

impl Budget {
    /// The default per-review budget.
    pub fn new() -> Self {
        Budget { bytes_left: SHELL_BYTES, entries_left: ENTRY_BUDGET, ..Default::default() }
    }
}

/// A document root and the sites that serve it.
pub struct Root<'a> {
    /// The directory.
    pub path: String,
    /// Sites with this root.
    pub sites: Vec<&'a Site>,
}

/// What a downloadable file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Git,
    Env,
    Dump,
    ConfigBackup,
    PhpInfo,
    DbTool,
    Archive,
}

fn kind_of(name: &str, is_dir: bool, top: bool) -> Option<Kind> {
    let n = name.to_ascii_lowercase();
    if is_dir {
        return (n == ".git").then_some(Kind::Git);
    }
    if n == ".env" || n.starts_with(".env.") {
        return Some(Kind::Env);
    }
    if [".sql", ".sql.gz", ".sql.bz2", ".sql.xz", ".sql.zip", ".sql.zst"].iter().any(|x| n.ends_with(x)) {
        return Some(Kind::Dump);
    }
    if is_config_backup(&n) {
        return Some(Kind::ConfigBackup);
    }
    if n.ends_with(".php") && ["info", "phpinfo", "php_info", "i", "test", "pi"].contains(&n.trim_end_matches(".php")) {
        return Some(Kind::PhpInfo);
    }
    if n.starts_with("adminer") && n.ends_with(".php") {
        return Some(Kind::DbTool);
    }
    if top && [".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".rar", ".7z"].iter().any(|x| n.ends_with(x)) {
        return Some(Kind::Archive);
    }
    None
}

/// `.htaccess` rules of each directory, read once.
struct Htaccess<'h> {
    host: &'h Host,
    cache: HashMap<String, Vec<crate::tls::access::Rule>>,
}

impl Htaccess<'_> {
    fn rules(&mut self, dir: &str) -> &[crate::tls::access::Rule] {
        let host = self.host;
        self.cache.entry(dir.to_string()).or_insert_with(|| {
            let text = host.read_head(&join(dir, ".htaccess"), 256 << 10).unwrap_or_default();
            let lines: Vec<String> =
                text.lines().map(|l| l.trim().to_string()).filter(|l| !l.starts_with('#')).collect();
            apache_rules(&lines)
        })
    }
}

/// The rule that closes `rel` (a path under `root`) on every site serving it, or `None` when one site serves it.
fn closed_by(root: &Root, rel: &str, ht: &mut Htaccess) -> Option<String> {
    let uri = format!("/{rel}");
    let file = join(&root.path, rel);
    let mut reason = None;
    for site in &root.sites {
        let mut why = denied_by(&site.rules, &uri, &file);
        if why.is_none() && site.server == "apache" && site.htaccess {
            // Each .htaccess from the root down to the file's directory, with the URL relative to it.
            let parts: Vec<&str> = rel.split('/').collect();
            for i in 0..parts.len() {
                let dir = if i == 0 { root.path.clone() } else { join(&root.path, &parts[..i].join("/")) };
                let sub = format!("/{}", parts[i..].join("/"));
                if let Some(w) = denied_by(ht.rules(&dir), &sub, &file) {
                    why = Some(format!("{w} in {dir}/.htaccess"));
                    break;
                }
            }
        }
        match why {
            Some(w) => reason = Some(format!("{} {}: {w}", site.server, site.file)),
            None => return None,
        }
    }
    reason
}

/// True when the `.git/config` of `git_dir` carries a credential: a remote URL with one
/// (`https://user:token@…`) or an `http.extraHeader` with an `Authorization` (what CI checkouts leave).
fn git_has_credentials(host: &Host, git_dir: &str) -> bool {
    let text = host.read_head(&join(git_dir, "config"), 64 << 10).unwrap_or_default();
    text.lines().any(|l| {
        let l = l.trim();
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("extraheader") && lower.contains("authorization") {
            return true;
        }
        let Some(url) = l.strip_prefix("url").map(str::trim_start).and_then(|r| r.strip_prefix('=')) else {
            return false;
        };
        let Some((scheme, rest)) = url.trim().split_once("://") else { return false };
        let authority = rest.split('/').next().unwrap_or("");
        // `https://token@host` or `scheme://user:password@host`; `ssh://git@host` is a user name only.
        authority.rsplit_once('@').is_some_and(|(userinfo, _)| {
            !userinfo.is_empty()
                && (userinfo.contains(':')
                    || scheme.eq_ignore_ascii_case("https")
                    || scheme.eq_ignore_ascii_case("http"))
        })
    })
}

fn finding(kind: Kind, path: &str, site_names: &str, creds: bool) -> Finding {
    let (id, sev, title, why) = match kind {
        Kind::Git if creds => (
            "hardening.git-exposed",
            Severity::Critical,
            "A .git directory is downloadable, and its remote URL holds a credential",
            "the whole source history can be cloned over HTTP, and .git/config gives away a password or token for the repository host (not shown here)",
        ),
        Kind::Git => (
            "hardening.git-exposed",
            Severity::High,
            "A .git directory is downloadable from the site",
            "anyone can rebuild the source and its history (old passwords, keys, config) from /.git/",
        ),
        Kind::Env => (
            "hardening.env-exposed",
            Severity::High,
            "A .env file is downloadable from the site",
            "environment files hold database passwords, API keys and app secrets",
        ),
        Kind::Dump => (
            "hardening.database-dump",
            Severity::High,
            "A database dump is inside the web root",
            "it can be downloaded by anyone who guesses its name: every user, hash and order in it",
        ),
        Kind::ConfigBackup => (
            "hardening.config-backup",
            Severity::High,
            "A copy of wp-config.php is served as plain text",
            "not executed as PHP, so the database password is readable over HTTP",
        ),
        Kind::PhpInfo => (
            "hardening.phpinfo-exposed",
            Severity::Medium,
            "A phpinfo() page is public",
            "versions, paths and environment (sometimes secrets) for anyone",
        ),
        Kind::DbTool => (
            "hardening.db-tool-in-webroot",
            Severity::High,
            "A database admin tool is inside a web root",
            "a login page for every database on the server, open to password guessing",
        ),
        Kind::Archive => (
            "hardening.site-archive",
            Severity::High,
            "An archive is downloadable from the top of a web root",
            "archives left by migrations and backups usually hold the whole site, wp-config.php included",
        ),
    };
    let fix = match kind {
        Kind::Git => format!(
            "Deny it in the web server (nginx `location ~ /\\.git {{ deny all; }}`, Apache `<DirectoryMatch \"/\\.git\"> Require all denied </DirectoryMatch>`) or deploy without it (`git archive`); {}",
            if creds {
                "then revoke the credential in the remote URL and use a deploy key instead."
            } else {
                "then check its history for secrets."
            }
        ),
        Kind::Env => format!(
            "Move {path} above the document root (or deny `location ~ /\\.env` / `<Files \".env*\">`), then rotate the secrets in it."
        ),
        Kind::ConfigBackup => format!("Delete {path} and change the database password it contains."),
        Kind::DbTool => {
            format!("Remove {path}; reach the database over an SSH tunnel (ssh -L 3306:127.0.0.1:3306 host).")
        }
        _ => format!("Move {path} out of the web root (e.g. to /root/ or the backup directory) or delete it."),
    };
    Finding::new(id, sev, Category::Hardening, path, title)
        .evidence(format!("{path}: served at {site_names}; {why}"))
        .fix(fix)
}

/// Walk one document root: downloadable files and web shells.
pub fn scan(
    host: &Host,
    root: &Root,
    wp_top_dirs: &HashSet<String>,
    wp_db_tools: &HashSet<String>,
    wp_uploads: &[String],
    budget: &mut Budget,
    out: &mut Vec<Finding>,
) {
    let site_names = {
        let mut n: Vec<String> = root
            .sites
            .iter()
            .map(|s| {
                s.names.iter().find(|n| n.contains('.')).cloned().unwrap_or_else(|| format!("{} {}", s.server, s.file))
            })
            .collect();
        n.dedup();
        n.join(", ")
    };
    let mut ht = Htaccess { host, cache: HashMap::new() };
    let mut stack: Vec<(String, usize)> = vec![(String::new(), 0)];
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    while let Some((rel_dir, depth)) = stack.pop() {
        let dir = if rel_dir.is_empty() { root.path.clone() } else { join(&root.path, &rel_dir) };
        if let Ok(m) = host.metadata(&dir) {
            use std::os::unix::fs::MetadataExt;
            if !seen.insert((m.dev(), m.ino())) {
                continue;
            }
        }
        let Ok(entries) = list_dir(host, &dir) else { continue };
        for e in entries {
            if budget.entries_left == 0 {
                budget.truncated = true;
                return;
            }
            budget.entries_left -= 1;
            let rel = if rel_dir.is_empty() { e.name.clone() } else { format!("{rel_dir}/{}", e.name) };
            let path = join(&root.path, &rel);
            if let Some(kind) = kind_of(&e.name, e.is_dir, depth == 0) {
                let probe = if kind == Kind::Git { format!("{rel}/config") } else { rel.clone() };
                let in_wp_top = wp_top_dirs.contains(&dir);
                let wp_reports = match kind {
                    Kind::Dump | Kind::ConfigBackup | Kind::PhpInfo => in_wp_top,
                    Kind::DbTool => wp_db_tools.contains(&path),
                    _ => false,
                };
                let real = match kind {
                    Kind::Git => host.exists(&join(&path, "HEAD")),
                    Kind::PhpInfo => host.read_head(&path, 4096).unwrap_or_default().contains("phpinfo("),
                    _ => true,
                };
                if real && !wp_reports && closed_by(root, &probe, &mut ht).is_none() {
                    let creds = kind == Kind::Git && git_has_credentials(host, &path);
                    out.push(finding(kind, &path, &site_names, creds));
                }
            }
            if e.is_dir {
                let skip = matches!(e.name.as_str(), ".well-known" | ".git" | ".svn" | ".hg" | "node_modules");
                if !skip && depth < MAX_DEPTH {
                    stack.push((rel, depth + 1));
                }
                continue;
            }
            // PHP in WordPress uploads is already its own critical finding (`hardening.php-in-uploads`).
            if is_php_name(&e.name) && !wp_uploads.iter().any(|u| path.starts_with(u.as_str())) {
                shell_check(host, &path, budget, out);
            }
        }
    }
}

fn shell_check(host: &Host, path: &str, budget: &mut Budget, out: &mut Vec<Finding>) {
    if budget.bytes_left == 0 {
        budget.files_skipped += 1;
        return;
    }
    let Ok(code) = host.read_head(path, SHELL_FILE_HEAD.min(budget.bytes_left)) else { return };
    budget.bytes_left = budget.bytes_left.saturating_sub(code.len() as u64);
    budget.files_read += 1;
    let hits = super::shells::markers(&code);
    if hits.is_empty() {
        return;
    }
    let mut f = Finding::new(
        "hardening.web-shell",
        Severity::Critical,
        Category::Hardening,
        path,
        "A PHP file in a web root carries web-shell markers",
    );
    for (what, line) in hits {
        f = f.evidence(format!("{path}:{line}: {what}"));
    }
    out.push(f.fix(format!(
        "Treat the site as compromised: take a copy of {path} for analysis, remove it, look for others (same date, same owner) and for how it got in (access logs, outdated plugins), then change the site's passwords and salts."
    )));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_git_credentials() {
        assert_eq!(kind_of(".git", true, false), Some(Kind::Git));
        assert_eq!(kind_of(".env.production", false, false), Some(Kind::Env));
        assert_eq!(kind_of("shop.SQL.gz", false, false), Some(Kind::Dump));
        assert_eq!(kind_of("wp-config.php.save", false, false), Some(Kind::ConfigBackup));
        assert_eq!(kind_of("wp-config.php~", false, false), Some(Kind::ConfigBackup));
        assert_eq!(kind_of("site.tar.gz", false, true), Some(Kind::Archive));
        assert_eq!(kind_of("plugin.zip", false, false), None, "only archives at the top of the root");
        assert_eq!(kind_of("index.php", false, true), None);
        let t = tempfile::tempdir().unwrap();
        let g = t.path().join("w/.git");
        std::fs::create_dir_all(&g).unwrap();
        let host = Host::at(t.path());
        std::fs::write(
            g.join("config"),
            "[remote \"origin\"]\n\turl = https://deploy:ghp_S3cretTok3n@github.com/acme/site.git\n",
        )
        .unwrap();
        assert!(git_has_credentials(&host, "/w/.git"));
        std::fs::write(g.join("config"), "[remote \"origin\"]\n\turl = git@github.com:acme/site.git\n").unwrap();
        assert!(!git_has_credentials(&host, "/w/.git"));
        std::fs::write(g.join("config"), "[remote \"origin\"]\n\turl = https://github.com/acme/site.git\n").unwrap();
        assert!(!git_has_credentials(&host, "/w/.git"));
        std::fs::write(
            g.join("config"),
            "[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic eC1hY2Nlc3M=\n",
        )
        .unwrap();
        assert!(git_has_credentials(&host, "/w/.git"));
        let f = finding(Kind::Git, "/w/.git", "shop.test", true);
        assert!(!format!("{f:?}").contains("S3cret"));
    }
}
