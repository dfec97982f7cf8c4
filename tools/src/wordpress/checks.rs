//! Per-site hardening and integrity checks: debug settings, PHP error display,
//! file permissions, leftovers in the web root, PHP in uploads, modified core.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use md5::{Digest, Md5};

use super::discover::{Entry, Site, join, list_dir, read_head};
use crate::finding::{Category, Finding, Severity};
use crate::host::Host;

const TOOL: &str = "wordpress_inventory";

/// Most files looked at under one site's uploads directory.
const UPLOADS_BUDGET: usize = 50_000;

fn f(id: &str, sev: Severity, subject: impl Into<String>, title: impl Into<String>) -> Finding {
    let cat = match id.split('.').next() {
        Some("credentials") => Category::Credentials,
        Some("updates") => Category::Updates,
        Some("accounts") => Category::Accounts,
        _ => Category::Hardening,
    };
    Finding::new(id, sev, cat, subject, title)
}

/// Debug, file editing, permissions, leftovers, uploads.
pub fn site_checks(host: &Host, site: &Site) -> Vec<Finding> {
    let mut out = Vec::new();
    let subj = site.subject();
    let Some(config) = &site.config_path else {
        out.push(
            f("hardening.wp-not-configured", Severity::High, &subj, format!("WordPress at {} has no wp-config.php", site.path))
                .evidence(format!("{}/wp-includes/version.php exists, no wp-config.php in {} or the directory above", site.path, site.path))
                .fix(format!("Anyone reaching it can run the installer (wp-admin/setup-config.php) and take the site over: remove {} if unused, or configure it now.", site.path)),
        );
        return out;
    };
    if site.debian && site.host.is_none() {
        out.push(
            f("hardening.debian-no-host-config", Severity::Info, &subj, "Debian's WordPress package is installed but serves no site")
                .evidence(format!("{config} looks for /etc/wordpress/config-<host>.php and none exists: every request gets a 404"))
                .fix("Nothing to do if it is unused (`apt-get remove wordpress` removes it); to use it, create the host config with `/usr/share/doc/wordpress/examples/setup-mysql`."),
        );
        return out;
    }
    let cfg = site.password_file.clone().unwrap_or_else(|| config.clone());

    // Debug settings.
    if site.is_on("WP_DEBUG") {
        let display_off = site.define("WP_DEBUG_DISPLAY").and_then(|v| v.truthy()) == Some(false);
        if display_off {
            out.push(
                f("hardening.wp-debug", Severity::Low, &subj, "WP_DEBUG is on (display off)")
                    .evidence(format!("{cfg}: WP_DEBUG true, WP_DEBUG_DISPLAY false"))
                    .fix(format!("Set define('WP_DEBUG', false); in {cfg} on production.")),
            );
        } else {
            out.push(
                f("hardening.wp-debug-display", Severity::High, &subj, "WP_DEBUG shows errors and stack traces to visitors")
                    .evidence(format!("{cfg}: WP_DEBUG true, WP_DEBUG_DISPLAY not set to false"))
                    .evidence("PHP notices, paths and SQL errors are printed into pages for anyone to read")
                    .fix(format!("In {cfg} set define('WP_DEBUG', false); (or at least define('WP_DEBUG_DISPLAY', false); and @ini_set('display_errors', 0);).")),
            );
        }
    }
    let mut logs = vec![join(&site.content_dir, "debug.log"), join(&site.path, "debug.log")];
    if let Some(p) = site.define("WP_DEBUG_LOG").and_then(|v| v.as_str()).filter(|p| p.starts_with('/')) {
        if p.starts_with(&format!("{}/", site.path.trim_end_matches('/'))) || p.starts_with(&site.content_dir) {
            logs.push(p.to_string());
        }
    }
    logs.dedup();
    for log in logs {
        if let Ok(m) = host.metadata(&log) {
            if m.is_file() {
                out.push(
                    f("hardening.debug-log-public", Severity::High, &log, "debug.log inside the web root")
                        .evidence(format!("{log} ({} bytes) is served with the site: anyone can download it", m.len()))
                        .fix(format!("Delete {log}; if a log is needed, set define('WP_DEBUG_LOG', '/var/log/wordpress/{}.log'); outside the web root.", site.db.name.as_deref().unwrap_or("site"))),
                );
            }
        }
    }
    if !site.is_on("DISALLOW_FILE_EDIT") && !site.is_on("DISALLOW_FILE_MODS") {
        out.push(
            f("hardening.file-edit-allowed", Severity::Low, &subj, "The dashboard can edit PHP files (DISALLOW_FILE_EDIT not set)")
                .evidence(format!("{cfg}: DISALLOW_FILE_EDIT is not defined true"))
                .fix(format!("Add define('DISALLOW_FILE_EDIT', true); to {cfg}: a stolen admin login then cannot write PHP through the theme/plugin editor.")),
        );
    }
    // Permissions of the file holding the password.
    if site.password.is_some() {
        if let Ok(m) = host.metadata(&cfg) {
            if m.mode() & 0o004 != 0 {
                out.push(
                    f(
                        "hardening.config-readable",
                        Severity::Medium,
                        &cfg,
                        "wp-config.php is readable by every local user",
                    )
                    .evidence(format!("{cfg}: mode {:04o}, owner uid {}", m.mode() & 0o7777, m.uid()))
                    .evidence("any local account or another site's PHP can read the database password")
                    .fix(format!("chmod 640 {cfg} (owner the site user, group the web server's)")),
                );
            }
        }
    }
    out.extend(leftovers(host, site));
    out.extend(php_in_uploads(host, site));
    out
}

/// A copy of `wp-config.php` a web server would serve as text (`.bak`, `.save`, `.orig`, `~`…).
pub fn is_config_backup(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n != "wp-config.php"
        && n != "wp-config-sample.php"
        && (n.starts_with("wp-config.php") || (n.starts_with("wp-config") && !n.ends_with(".php")))
}

/// Files left in the site's top directory that should not be there.
fn leftovers(host: &Host, site: &Site) -> Vec<Finding> {
    let Ok(entries) = list_dir(host, &site.path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for Entry { name, is_dir, .. } in entries {
        if is_dir {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let path = join(&site.path, &name);
        if lower.ends_with(".sql")
            || lower.ends_with(".sql.gz")
            || lower.ends_with(".sql.zip")
            || lower.ends_with(".sql.bz2")
        {
            out.push(
                f("hardening.database-dump", Severity::High, &path, "A database dump is inside the web root")
                    .evidence(format!("{path} can be downloaded by anyone who guesses its name"))
                    .fix(format!(
                        "Move {path} out of the web root (e.g. to /root/ or the backup directory) or delete it."
                    )),
            );
        } else if is_config_backup(&name) {
            out.push(
                f("hardening.config-backup", Severity::High, &path, "A copy of wp-config.php is served as plain text")
                    .evidence(format!("{path}: not executed as PHP, so the database password is readable over HTTP"))
                    .fix(format!("Delete {path} and change the database password it contains.")),
            );
        } else if ["installer.php", "installer-backup.php", "importbuddy.php", "searchreplacedb2.php", "srdb.php"]
            .contains(&lower.as_str())
        {
            out.push(
                f("hardening.installer-left", Severity::High, &path, "A migration installer was left in the web root")
                    .evidence(format!("{path}: migration tools like this can overwrite the site or its database"))
                    .fix(format!("Delete {path} (and any archive next to it).")),
            );
        } else if lower.ends_with(".php")
            && ["info", "phpinfo", "php_info", "i", "test", "pi"].contains(&lower.trim_end_matches(".php"))
        {
            let head = read_head(host, &path, 4096).unwrap_or_default();
            if head.contains("phpinfo(") {
                out.push(
                    f("hardening.phpinfo-exposed", Severity::Medium, &path, "A phpinfo() page is public")
                        .evidence(format!("{path} calls phpinfo(): versions, paths and environment for anyone"))
                        .fix(format!("Delete {path}.")),
                );
            }
        }
    }
    out
}

const PHP_EXT: [&str; 9] = [".php", ".phtml", ".php3", ".php4", ".php5", ".php7", ".php8", ".phar", ".pht"];

/// A name PHP may run, in every form: any case, a double extension (`x.php.jpg`, which Apache's
/// `AddHandler` runs), a hidden name (`.x.php`), trailing dots or spaces (`x.php.`).
pub fn is_php_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let lower = lower.trim_end_matches(['.', ' ']);
    PHP_EXT.iter().any(|x| lower.ends_with(x) || lower.contains(&format!("{x}.")))
}

/// A `.htaccess` or `.user.ini` that makes other files run as PHP (`AddHandler`/`AddType`/`SetHandler`
/// to PHP, `auto_prepend_file`/`auto_append_file`): a web shell disguised as an image.
fn turns_on_php(name: &str, text: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.starts_with(';')).find_map(|l| {
        let ll = l.to_ascii_lowercase();
        let hit = if lower == ".user.ini" {
            ll.starts_with("auto_prepend_file") || ll.starts_with("auto_append_file")
        } else {
            // The handler or type (the first argument) runs PHP; `AddType text/plain .php` protects.
            let mut w = ll.split_whitespace();
            let directive = w.next().unwrap_or("");
            let handler = w.next().unwrap_or("").trim_matches('"');
            (matches!(directive, "addhandler" | "addtype" | "sethandler" | "forcetype")
                && (handler.contains("php") || handler.starts_with("proxy:")))
                || ll.starts_with("php_value auto_")
        };
        hit.then(|| l.chars().take(120).collect())
    })
}

/// PHP under `wp-content/uploads`: the classic web shell.
fn php_in_uploads(host: &Host, site: &Site) -> Vec<Finding> {
    let uploads = join(&site.content_dir, "uploads");
    let mut found = Vec::new();
    let mut budget = UPLOADS_BUDGET;
    let mut stack = vec![(uploads.clone(), 0usize)];
    let mut truncated = false;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = list_dir(host, &dir) else {
            continue;
        };
        for e in entries {
            if budget == 0 {
                truncated = true;
                break;
            }
            budget -= 1;
            let path = join(&dir, &e.name);
            if e.is_dir {
                if depth < 8 {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            let lower = e.name.to_ascii_lowercase();
            if lower == ".htaccess" || lower == ".user.ini" {
                if let Some(line) = turns_on_php(&lower, &read_head(host, &path, 64 << 10).unwrap_or_default()) {
                    found.push(format!("{path} (makes other files run as PHP: {line})"));
                }
                continue;
            }
            if !is_php_name(&e.name) {
                continue;
            }
            if lower == "index.php" {
                // The "Silence is golden." stub plugins drop to stop directory listings.
                let head = read_head(host, &path, 512).unwrap_or_default();
                let code: String = head.replace("<?php", "").replace("?>", "");
                let code = code.trim();
                if head.len() < 200
                    && (code.is_empty() || code.starts_with("//") || code.starts_with("/*") || code.starts_with('#'))
                {
                    continue;
                }
            }
            found.push(path);
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    found.sort();
    let mut fi = f(
        "hardening.php-in-uploads",
        Severity::Critical,
        site.subject(),
        format!("{} PHP file(s) in the uploads directory (a web shell is typically dropped here)", found.len()),
    );
    for p in found.iter().take(10) {
        fi = fi.evidence(p.clone());
    }
    if found.len() > 10 {
        fi = fi.evidence(format!("… and {} more", found.len() - 10));
    }
    if truncated {
        fi = fi.evidence(format!("{uploads} has more than {UPLOADS_BUDGET} entries: only part of it was looked at"));
    }
    vec![fi.fix(format!(
        "Inspect and remove these files (uploads never needs PHP), then find how they got there (outdated plugins, access logs). \
         Block PHP in {uploads}: nginx `location ~* /wp-content/uploads/.*\\.ph(p|ar|tml) {{ deny all; }}`, \
         Apache `<FilesMatch \"\\.ph(p[0-9]?|tml|ar)$\"> Require all denied </FilesMatch>` in {uploads}/.htaccess."
    ))]
}

fn ini_on(v: &str) -> bool {
    let v = v.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
    matches!(v.as_str(), "on" | "1" | "true" | "yes" | "stdout" | "stderr")
}

/// The `display_errors` setting a PHP ini or FPM pool file leaves in force, if it sets one.
fn display_errors_in(text: &str, pool: bool) -> Option<bool> {
    let mut last = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with(';') || l.starts_with('#') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.split(';').next().unwrap_or("");
        let hit = if pool {
            matches!(
                k.as_str(),
                "php_admin_flag[display_errors]"
                    | "php_flag[display_errors]"
                    | "php_admin_value[display_errors]"
                    | "php_value[display_errors]"
            )
        } else {
            k == "display_errors"
        };
        if hit {
            last = Some(ini_on(v));
        }
    }
    last
}

/// `display_errors = On` in the PHP configuration that serves the sites.
pub fn php_display_errors(host: &Host, sites: &[Site]) -> Vec<Finding> {
    if sites.is_empty() {
        return Vec::new();
    }
    let mut on: Vec<(String, &'static str)> = Vec::new();
    for pat in [
        "/etc/php/*/fpm/php.ini",
        "/etc/php/*/apache2/php.ini",
        "/etc/php/*/fpm/conf.d/*.ini",
        "/etc/php/*/apache2/conf.d/*.ini",
    ] {
        for p in host.glob(pat) {
            if let Ok(t) = host.read_to_string(&p) {
                if display_errors_in(&t, false) == Some(true) {
                    on.push((p, "the PHP configuration every site on this PHP version uses"));
                }
            }
        }
    }
    for p in host.glob("/etc/php/*/fpm/pool.d/*.conf") {
        if let Ok(t) = host.read_to_string(&p) {
            if display_errors_in(&t, true) == Some(true) {
                on.push((p, "a PHP-FPM pool: the sites it serves"));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for s in sites {
        if !seen.insert(s.path.clone()) {
            continue;
        }
        for n in [".user.ini", ".htaccess"] {
            let p = join(&s.path, n);
            if let Ok(Some(t)) = host.read_optional(&p) {
                let set = if n == ".htaccess" {
                    t.lines().any(|l| {
                        let l = l.trim().to_ascii_lowercase();
                        !l.starts_with('#')
                            && (l.starts_with("php_flag") || l.starts_with("php_value"))
                            && l.contains("display_errors")
                            && ini_on(l.rsplit(' ').next().unwrap_or(""))
                    })
                } else {
                    display_errors_in(&t, false) == Some(true)
                };
                if set {
                    on.push((p, "this site's own PHP settings"));
                }
            }
        }
    }
    on.into_iter()
        .map(|(p, scope)| {
            f(
                "hardening.php-display-errors",
                Severity::Medium,
                &p,
                "PHP shows errors to visitors (display_errors = On)",
            )
            .evidence(format!("{p}: display_errors on ({scope})"))
            .evidence("fatal errors print file paths and query details into pages even with WP_DEBUG off")
            .fix(format!("Set display_errors = Off (log_errors = On) in {p} and reload PHP-FPM / the web server."))
        })
        .collect()
}

/// Core files that differ from Debian's package checksums (only the packaged directory).
pub fn packaged_core_modified(host: &Host, sites: &[Site]) -> Vec<Finding> {
    const PKG_DIR: &str = "/usr/share/wordpress";
    if !sites.iter().any(|s| s.path == PKG_DIR) {
        return Vec::new();
    }
    let sums = match host.read_optional("/var/lib/dpkg/info/wordpress.md5sums") {
        Ok(Some(s)) => s,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![Finding::could_not_check(Category::Hardening, TOOL, "Debian's WordPress checksums", e)],
    };
    let mut changed = Vec::new();
    let mut checked = 0usize;
    let mut unreadable = Vec::new();
    for line in sums.lines() {
        let Some((sum, rel)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let rel = rel.trim_start();
        if !rel.starts_with("usr/share/wordpress/") {
            continue;
        }
        let path = format!("/{rel}");
        match host.read(&path) {
            Ok(bytes) => {
                checked += 1;
                if hex::encode(Md5::digest(&bytes)) != sum.to_ascii_lowercase() {
                    changed.push(path);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(_) => unreadable.push(path),
        }
    }
    let mut out = Vec::new();
    if !changed.is_empty() {
        let mut fi = f(
            "hardening.core-modified",
            Severity::High,
            PKG_DIR,
            format!("{} WordPress core file(s) differ from the Debian package", changed.len()),
        )
        .evidence(format!("{checked} files compared with /var/lib/dpkg/info/wordpress.md5sums"));
        for p in changed.iter().take(10) {
            fi = fi.evidence(format!("modified: {p}"));
        }
        if changed.len() > 10 {
            fi = fi.evidence(format!("… and {} more", changed.len() - 10));
        }
        out.push(fi.fix("Compare the files with the package (`dpkg --verify wordpress`), look for injected code, then reinstall: `apt-get install --reinstall wordpress`."));
    }
    if !unreadable.is_empty() {
        out.push(Finding::could_not_check(
            Category::Hardening,
            TOOL,
            "WordPress core checksums",
            format!("{} packaged files could not be read, e.g. {}", unreadable.len(), unreadable[0]),
        ));
    }
    out
}

/// Adminer / phpMyAdmin found inside a web root.
pub fn db_tools(tools: &[String]) -> Vec<Finding> {
    tools
        .iter()
        .map(|p| {
            f("hardening.db-tool-in-webroot", Severity::High, p, "A database admin tool is inside a web root")
                .evidence(format!("{p}: a login page for every database on the server, open to the internet and to password guessing"))
                .fix(format!("Remove {p}; reach the database over an SSH tunnel (ssh -L 3306:127.0.0.1:3306 host) or restrict it to known addresses with authentication in front."))
        })
        .collect()
}

/// Group site indices by path (Debian's per-host sites share one directory).
pub fn by_path(sites: &[Site]) -> HashMap<&str, Vec<usize>> {
    let mut m: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in sites.iter().enumerate() {
        m.entry(s.path.as_str()).or_default().push(i);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_ini_and_pool_settings() {
        assert_eq!(display_errors_in("display_errors = On\n", false), Some(true));
        assert_eq!(display_errors_in("display_errors = On\ndisplay_errors = Off ; later wins\n", false), Some(false));
        assert_eq!(display_errors_in(";display_errors = On\n", false), None);
        assert_eq!(display_errors_in("display_errors = stderr\n", false), Some(true));
        assert_eq!(display_errors_in("php_admin_flag[display_errors] = on\n", true), Some(true));
        assert_eq!(display_errors_in("php_admin_value[display_errors] = 0\n", true), Some(false));
        assert!(is_config_backup("wp-config.php.bak"));
        assert!(is_config_backup("wp-config.php~"));
        assert!(is_config_backup("wp-config.txt"));
        assert!(!is_config_backup("wp-config-sample.php"));
        assert!(!is_config_backup("wp-config.php"));
    }

    #[test]
    fn php_in_every_form() {
        for n in
            ["x.php", "X.PHP", ".cache.php", "img.php.jpg", "a.phtml", "a.phar", "a.php7", "a.pht", "a.php.", "a.php "]
        {
            assert!(is_php_name(n), "{n}");
        }
        for n in ["photo.jpg", "php.png", "notes.phps.txt.gz", "readme.txt"] {
            assert!(!is_php_name(n), "{n}");
        }
        assert!(turns_on_php(".htaccess", "AddHandler application/x-httpd-php .jpg\n").is_some());
        assert!(
            turns_on_php(".htaccess", "<FilesMatch \"\\.jpg$\">\nSetHandler application/x-httpd-php\n</FilesMatch>")
                .is_some()
        );
        assert!(turns_on_php(".user.ini", "auto_prepend_file = /var/www/s/wp-content/uploads/x.gif\n").is_some());
        assert!(turns_on_php(".htaccess", "Options -Indexes\nDeny from all\n").is_none());
        // What protective uploads/.htaccess files say.
        assert!(
            turns_on_php(
                ".htaccess",
                "AddType text/plain .php .phtml\nRemoveHandler .php\nSetHandler none\nphp_flag engine off\n"
            )
            .is_none()
        );
    }
}
