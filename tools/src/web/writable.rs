//! WordPress core and `wp-config.php` the PHP user can rewrite.
//!
//! When the user PHP runs as (`www-data`, or the site's FPM pool user) owns or
//! can write core files and `wp-config.php`, any upload or plugin bug becomes
//! a permanent backdoor in files nobody looks at. The PHP users of a site are
//! the users of the pools serving its document root, and `www-data` when no
//! pool is known to serve it (mod_php, or PHP passed to a socket we could not
//! match). Ownership and modes come from the files' own metadata in the root.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use super::pools::Pool;
use crate::finding::{Category, Finding, Severity};
use crate::host::Host;
use crate::wordpress::discover::{Site, join};

/// A user's uid and every group it is in.
#[derive(Debug, Clone)]
struct Account {
    name: String,
    uid: u32,
    gids: Vec<u32>,
}

fn accounts(host: &Host) -> HashMap<String, Account> {
    let mut out = HashMap::new();
    let passwd = host.read_to_string("/etc/passwd").unwrap_or_default();
    for e in crate::users::parse_passwd(&passwd) {
        out.entry(e.name.clone()).or_insert(Account { name: e.name, uid: e.uid, gids: vec![e.gid] });
    }
    let group = host.read_to_string("/etc/group").unwrap_or_default();
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        let (Some(gid), Some(members)) = (f.get(2).and_then(|g| g.parse::<u32>().ok()), f.get(3)) else { continue };
        for m in members.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            if let Some(a) = out.get_mut(m) {
                a.gids.push(gid);
            }
        }
    }
    out
}

/// How `who` can change a file with this metadata, if it can.
fn can_write(meta: &std::fs::Metadata, who: &Account) -> Option<&'static str> {
    let mode = meta.mode();
    if meta.uid() == who.uid {
        Some("owns it")
    } else if mode & 0o020 != 0 && who.gids.contains(&meta.gid()) {
        Some("can write it through its group")
    } else if mode & 0o002 != 0 {
        Some("can write it (world-writable)")
    } else {
        None
    }
}

/// `path: user how` for each of `paths` that `acct` can change.
fn writable_by(host: &Host, paths: impl IntoIterator<Item = String>, acct: &Account) -> Vec<String> {
    paths
        .into_iter()
        .filter_map(|p| {
            let how = host.metadata(&p).ok().and_then(|m| can_write(&m, acct))?;
            Some(format!("{p}: {} {how}", acct.name))
        })
        .collect()
}

/// The PHP users of a WordPress site at `path`.
fn php_users(path: &str, pools: &[Pool]) -> Vec<String> {
    let covers =
        |root: &str| path == root || path.starts_with(&format!("{root}/")) || root.starts_with(&format!("{path}/"));
    let mut users: Vec<String> = pools
        .iter()
        .filter(|p| p.sites.iter().any(|s| s.starts_with('/') && covers(s)))
        .map(|p| p.user.clone())
        .collect();
    if users.is_empty() {
        users.push("www-data".into());
    }
    users.sort();
    users.dedup();
    users
}

/// Findings for every WordPress site whose core or `wp-config.php` its PHP user can rewrite.
pub fn check(host: &Host, sites: &[Site], pools: &[Pool]) -> Vec<Finding> {
    let accounts = accounts(host);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for site in sites {
        if !seen.insert(site.path.clone()) {
            continue;
        }
        for user in php_users(&site.path, pools) {
            // root PHP is its own (critical) finding; every file is writable to it.
            let Some(acct) = accounts.get(&user).filter(|a| a.uid != 0) else { continue };
            let mut configs: Vec<String> = site.config_path.iter().chain(site.password_file.iter()).cloned().collect();
            configs.dedup();
            let config_hits = writable_by(host, configs.iter().cloned(), acct);
            if !config_hits.is_empty() {
                let mut f = Finding::new(
                    "hardening.wp-config-writable",
                    Severity::High,
                    Category::Hardening,
                    site.subject(),
                    format!("PHP (as {user}) can rewrite wp-config.php"),
                );
                for h in &config_hits {
                    f = f.evidence(h.clone());
                }
                out.push(
                    f.evidence("any plugin bug or upload can plant code in the file every request runs first")
                        .fix(format!("chown root:{user} {0} && chmod 640 {0} (readable by PHP, written by the administrator only)", configs.join(" "))),
                );
            }
            let core =
                ["wp-includes/version.php", "wp-login.php", "wp-settings.php", "index.php", "wp-includes", "wp-admin"];
            let core_hits = writable_by(host, core.iter().map(|c| join(&site.path, c)), acct);
            if !core_hits.is_empty() {
                let mut f = Finding::new(
                    "hardening.wp-core-writable",
                    Severity::Medium,
                    Category::Hardening,
                    site.subject(),
                    format!("PHP (as {user}) can rewrite WordPress core"),
                );
                for h in core_hits.iter().take(6) {
                    f = f.evidence(h.clone());
                }
                out.push(
                    f.evidence("a web shell can hide in core files and survive plugin clean-ups")
                        .fix(format!(
                            "Give the files to a deploy user PHP does not run as: `chown -R deploy:deploy {0} && chown -R deploy:{user} {0}/wp-content/uploads && chmod -R g+w {0}/wp-content/uploads`; update WordPress as that user (or with vigil's staged update).",
                            site.path
                        )),
                );
            }
        }
    }
    out
}
