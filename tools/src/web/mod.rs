//! `check_web`: the web side of a hosting server, judged from files only.
//!
//! What a careful hosting administrator looks at beyond certificates and
//! WordPress versions: files a browser can download from a document root
//! (`.git/`, `.env`, dumps, config copies, `phpinfo.php`, site archives) unless
//! the server configuration denies them; web-shell markers in PHP anywhere in a
//! document root (bounded by a per-review byte budget); PHP-FPM pools (root,
//! shared users, no `open_basedir`, `allow_url_include`, exec functions, EOL
//! PHP); and WordPress core or `wp-config.php` the PHP user can rewrite. Sites
//! and document roots come from the enabled nginx/Apache configuration
//! ([`crate::tls::nginx_sites`]); nothing is requested from a site and no tenant
//! code runs. Every file is read through [`crate::host::Host`].

pub mod docroot;
pub mod pools;
pub mod shells;
pub mod writable;

use std::collections::HashSet;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::tool::{Ctx, Effect, NoInput, Outcome, Tool, ToolError};

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct CheckWeb;

/// A document root, as facts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DocRootFacts {
    /// The directory.
    pub path: String,
    /// The sites serving it (`server:name`).
    pub sites: Vec<String>,
}

/// Facts of `check_web`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct WebFacts {
    /// Document roots of the enabled sites.
    pub docroots: Vec<DocRootFacts>,
    /// PHP-FPM pools.
    pub pools: Vec<pools::Pool>,
    /// PHP files searched for web-shell markers.
    pub php_files_read: usize,
    /// PHP files not searched because the per-review byte budget ran out.
    pub php_files_skipped: usize,
}

#[async_trait]
impl Tool for CheckWeb {
    type Input = NoInput;
    type Output = WebFacts;

    fn name(&self) -> &'static str {
        "check_web"
    }

    fn description(&self) -> &'static str {
        "Check the web side of the host from its files: files a browser can download from each document root \
         of the enabled nginx/Apache sites (.git/ with credentials in its remote, .env, SQL dumps, wp-config.php \
         copies, phpinfo.php, adminer.php, site archives) unless the server configuration denies them; web-shell \
         markers in PHP files (eval($_POST…), packed base64/gzinflate code, preg_replace /e); PHP-FPM pools \
         (running as root, several sites sharing one user, no open_basedir, allow_url_include, exec functions not \
         disabled, end-of-life PHP); WordPress core or wp-config.php writable by the PHP user. Never requests a page \
         and never runs site code."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, _input: NoInput) -> Result<Outcome<WebFacts>, ToolError> {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || check(&ctx))
            .await
            .map_err(|e| ToolError::Failed(format!("the web check stopped: {e}")))
    }
}

fn check(ctx: &Ctx) -> Outcome<WebFacts> {
    let host = &ctx.host;
    let mut problems = Vec::new();
    let mut sites = crate::tls::nginx_sites(host, &mut problems);
    sites.extend(crate::tls::apache_sites(host, &mut problems));
    let mut findings: Vec<Finding> = problems
        .iter()
        .map(|(what, why)| Finding::could_not_check(Category::Hardening, "check_web", what, why))
        .collect();
    let mut facts = WebFacts::default();

    let mut pools = pools::read_pools(host);
    pools::attach_sites(&mut pools, &sites);
    let today = time::OffsetDateTime::from_unix_timestamp(host.now_unix()).map(|t| t.date()).unwrap_or(time::Date::MIN);
    findings.extend(pools::judge(&pools, today));

    let wp = crate::wordpress::discover::discover(ctx);
    findings.extend(writable::check(host, &wp.sites, &pools));

    // Document roots, each with every site that serves it.
    let mut roots: Vec<docroot::Root> = Vec::new();
    for s in sites.iter().filter(|s| !s.internal) {
        for r in &s.roots {
            match roots.iter_mut().find(|x| x.path == *r) {
                Some(x) => x.sites.push(s),
                None => roots.push(docroot::Root { path: r.clone(), sites: vec![s] }),
            }
        }
    }
    let wp_top: HashSet<String> = wp.sites.iter().map(|s| s.path.clone()).collect();
    let wp_tools: HashSet<String> = wp.db_tools.iter().cloned().collect();
    let wp_uploads: Vec<String> =
        wp.sites.iter().map(|s| format!("{}/uploads/", s.content_dir.trim_end_matches('/'))).collect();
    let mut budget = docroot::Budget::new();
    let mut found = Vec::new();
    for r in &roots {
        docroot::scan(host, r, &wp_top, &wp_tools, &wp_uploads, &mut budget, &mut found);
        let mut labels: Vec<String> = r
            .sites
            .iter()
            .map(|s| format!("{}:{}", s.server, s.names.first().map_or(s.file.as_str(), |n| n)))
            .collect();
        labels.dedup();
        facts.docroots.push(DocRootFacts { path: r.path.clone(), sites: labels });
    }
    // A root nested in another (or served twice) is walked twice: one finding per file.
    let mut seen = HashSet::new();
    found.retain(|f: &Finding| seen.insert(f.key()));
    findings.extend(found);
    if budget.files_skipped > 0 || budget.truncated {
        findings.push(
            Finding::new(
                "hardening.web-scan-incomplete",
                Severity::Low,
                Category::Hardening,
                "document roots",
                "The web-shell search ran out of its budget: part of the document roots was not read",
            )
            .evidence(format!(
                "{} PHP files read ({} MiB budget), {} not read{}",
                budget.files_read,
                docroot::SHELL_BYTES >> 20,
                budget.files_skipped,
                if budget.truncated { format!("; the walk stopped after {} entries", docroot::ENTRY_BUDGET) } else { String::new() }
            ))
            .fix("Run `vigil tools run check_web` on its own, or search the remaining files with a malware scanner (e.g. `clamscan -r` or `maldet`)."),
        );
    }
    facts.php_files_read = budget.files_read;
    facts.php_files_skipped = budget.files_skipped;
    facts.pools = pools;
    Outcome::new(facts, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;

    fn write(root: &std::path::Path, p: &str, s: &str) {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[tokio::test]
    async fn htaccess_closes_a_file_on_apache_and_hostile_files_do_not_stop_the_walk() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "etc/apache2/sites-enabled/s.conf",
            "<VirtualHost *:80>\n ServerName s.test\n DocumentRoot /srv/s\n <Directory /srv/s>\n  AllowOverride All\n </Directory>\n</VirtualHost>\n",
        );
        write(r, "srv/s/.htaccess", "<Files \"closed.sql\">\n Require all denied\n</Files>\n");
        write(r, "srv/s/closed.sql", "-- dump\n");
        write(r, "srv/s/open.sql", "-- dump\n");
        write(r, "srv/s/private/.htaccess", "Deny from all\n");
        write(r, "srv/s/private/.env", "X=1\n");
        // Hostile: a FIFO named like PHP, a huge PHP file whose marker is past the head, a link out of the root.
        let fifo = r.join("srv/s/wait.php");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let mut huge = "<?php\n".to_string() + &" ".repeat(docroot::SHELL_FILE_HEAD as usize + 10);
        huge.push_str("eval($_POST['x']);\n");
        write(r, "srv/s/huge.php", &huge);
        std::os::unix::fs::symlink("/etc/shadow", r.join("srv/s/.env")).unwrap();
        write(r, "etc/shadow", "root:$6$secret:1::::::\n");
        let host = Host::at(r);
        let out = CheckWeb.run(&Ctx::new(host.clone()), NoInput {}).await.unwrap();
        let subjects: Vec<(&str, &str)> = out.findings.iter().map(|f| (f.id.as_str(), f.subject.as_str())).collect();
        assert!(subjects.contains(&("hardening.database-dump", "/srv/s/open.sql")), "{subjects:?}");
        assert!(
            !subjects.iter().any(|(_, s)| *s == "/srv/s/closed.sql" || *s == "/srv/s/private/.env"),
            "{subjects:?}"
        );
        // The link is the image's /etc/shadow, served as /.env: a finding, its content never shown.
        assert!(subjects.contains(&("hardening.env-exposed", "/srv/s/.env")), "{subjects:?}");
        assert!(!format!("{:?}", out.findings).contains("$6$secret"), "{:?}", out.findings);
        assert!(!subjects.iter().any(|(id, _)| *id == "hardening.web-shell"), "only the head of a huge file is read");
        assert!(host.skipped().iter().any(|l| l.contains("wait.php")), "{:?}", host.skipped());
        assert_eq!(out.facts.docroots[0].path, "/srv/s");
    }

    #[test]
    fn the_byte_budget_runs_out_and_says_so() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..5 {
            write(t.path(), &format!("w/p{i}.php"), "<?php echo 'hello world';\n");
        }
        let host = Host::at(t.path());
        let site = crate::tls::Site { server: "nginx".into(), roots: vec!["/w".into()], ..Default::default() };
        let root = docroot::Root { path: "/w".into(), sites: vec![&site] };
        let mut budget = docroot::Budget { bytes_left: 40, entries_left: 100, ..Default::default() };
        let mut out = Vec::new();
        docroot::scan(&host, &root, &HashSet::new(), &HashSet::new(), &[], &mut budget, &mut out);
        assert_eq!((budget.files_read, budget.files_skipped), (2, 3), "{budget:?}");
    }
}
