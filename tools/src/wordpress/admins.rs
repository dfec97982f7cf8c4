//! Administrator accounts in each site's database, compared between reviews.
//!
//! An attacker who gets into a WordPress site (a vulnerable plugin, a reused
//! database password) usually leaves a second administrator behind: it
//! survives plugin updates and password resets of the known accounts. The
//! list of administrators is read on the live host with the site's own
//! credentials from `wp-config.php` (the password goes to the client in
//! `MYSQL_PWD`, never on its command line), only once `DB_HOST` has been
//! verified to be the real database server ([`super::dbendpoint::verify`]:
//! never a remote host or a listener someone else runs), with a client that
//! cannot be switched to clear-text authentication, bounded in time per site, and
//! kept in `wp-admins.json` under the state directory so the next review
//! names any login that was not an administrator before. A database that
//! cannot be reached is a note in the facts, not a finding.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::Site;
use super::dbendpoint::{self, Endpoint};
use crate::finding::{Category, Finding, Severity};
use crate::host::Host;
use crate::tool::Ctx;

/// The state file's name under `ctx.state_dir`.
pub const STATE_FILE: &str = "wp-admins.json";
/// At most this many sites' databases are queried per review.
pub const MAX_SITES: usize = 50;
/// Time allowed for one site's query (connection included).
pub const PER_SITE: Duration = Duration::from_secs(3);
/// Sites queried at once.
const PARALLEL: usize = 4;

/// What was learnt about one site's administrators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admins {
    /// The administrators' logins, sorted.
    Listed(Vec<String>),
    /// Why they could not be listed.
    Unavailable(String),
}

/// The administrators of every site at the last review that could list them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AdminState {
    /// Site subject → its administrators.
    pub sites: BTreeMap<String, SiteAdmins>,
}

/// One site's administrators when last listed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SiteAdmins {
    /// Logins, sorted.
    pub logins: Vec<String>,
    /// When they were listed (Unix seconds).
    pub checked: i64,
}

/// The table prefix, when it is safe to put into SQL.
pub fn safe_prefix(site: &Site) -> Result<String, String> {
    let p = site.db.table_prefix.clone().unwrap_or_else(|| "wp_".into());
    if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(p)
    } else {
        Err("the $table_prefix has characters other than letters, digits and `_`; not put into SQL".into())
    }
}

/// The query listing a site's administrators.
pub fn admin_query(prefix: &str) -> String {
    format!(
        "SELECT u.user_login FROM `{prefix}users` u JOIN `{prefix}usermeta` m ON m.user_id = u.ID \
         WHERE m.meta_key = '{prefix}capabilities' AND m.meta_value LIKE '%\"administrator\"%' ORDER BY 1"
    )
}

/// The client's arguments for a site whose database is at the verified `endpoint`
/// (no password: that goes in `MYSQL_PWD`).
pub fn client_args(site: &Site, endpoint: &Endpoint) -> Result<Vec<String>, String> {
    let user = site.db.user.as_deref().filter(|u| !u.is_empty()).ok_or("DB_USER is not a literal in wp-config.php")?;
    let name = site.db.name.as_deref().filter(|n| !n.is_empty()).ok_or("DB_NAME is not a literal in wp-config.php")?;
    let prefix = safe_prefix(site)?;
    let mut a = vec![
        "--no-defaults".to_string(),
        "--batch".into(),
        "--skip-column-names".into(),
        format!("--connect-timeout={}", PER_SITE.as_secs().saturating_sub(1).max(1)),
    ];
    a.extend(endpoint.client_args());
    a.push(format!("--user={user}"));
    a.push(format!("--database={name}"));
    a.push("-e".into());
    a.push(admin_query(&prefix));
    Ok(a)
}

/// Ask one site's database for its administrators.
pub async fn site_admins(host: &Host, client: &str, site: &Site) -> Admins {
    // Who is at DB_HOST is settled before anything is sent there.
    let db_host = site.db.host.clone().unwrap_or_else(|| "localhost".into());
    let h = host.clone();
    // Bounded: a server too busy to accept would otherwise hold the review.
    let check = tokio::task::spawn_blocking(move || dbendpoint::verify(&h, &db_host));
    let endpoint = match tokio::time::timeout(PER_SITE, check).await {
        Ok(Ok(Ok(e))) => e,
        Ok(Ok(Err(why))) => return Admins::Unavailable(why.to_string()),
        Ok(Err(e)) => return Admins::Unavailable(format!("not checked: the database check stopped: {e}")),
        Err(_) => {
            return Admins::Unavailable(format!(
                "database not reached: who serves DB_HOST was not settled within {} s",
                PER_SITE.as_secs()
            ));
        }
    };
    let Some(pw) = site.db_password() else {
        return Admins::Unavailable("DB_PASSWORD is not a literal in wp-config.php".into());
    };
    let args = match client_args(site, &endpoint) {
        Ok(a) => a,
        Err(e) => return Admins::Unavailable(e),
    };
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = match host.run_env(client, &argv, &[("MYSQL_PWD", pw.expose())], PER_SITE).await {
        Ok(o) => o,
        Err(e) => return Admins::Unavailable(format!("database not reached: {e}")),
    };
    if !out.success() {
        let first = out.stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        let mut why: String = first.chars().take(200).collect();
        if !pw.expose().is_empty() && why.contains(pw.expose()) {
            why = "the client failed (its message is withheld: it contained the password)".into();
        }
        return Admins::Unavailable(format!("database not reached with the site's credentials: {why}"));
    }
    let set: BTreeSet<String> =
        out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    Admins::Listed(set.into_iter().collect())
}

/// List the administrators of `chosen` sites (indices into `sites`), in order.
pub async fn list(host: &Host, sites: &[Site], chosen: &[usize]) -> Vec<(usize, Admins)> {
    let Some(client) = ["mariadb", "mysql"].iter().find_map(|n| host.which(n)) else {
        return chosen
            .iter()
            .map(|i| (*i, Admins::Unavailable("no MariaDB/MySQL client (mariadb or mysql) is installed".into())))
            .collect();
    };
    let checked: Vec<(usize, Admins)> = futures::stream::iter(chosen.iter().take(MAX_SITES).copied())
        .map(|i| {
            let client = client.clone();
            async move { (i, site_admins(host, &client, &sites[i]).await) }
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    let skipped = chosen.iter().skip(MAX_SITES).map(|i| {
        (
            *i,
            Admins::Unavailable(format!(
                "not checked: only the first {MAX_SITES} sites' databases are queried per review"
            )),
        )
    });
    checked.into_iter().chain(skipped).collect()
}

/// Load the previous review's administrators (`None` when there is no usable history).
#[expect(
    clippy::disallowed_methods,
    reason = "vigil's own state file in its state directory (written 0600 by write_atomic), not a tenant file"
)]
pub fn load(ctx: &Ctx) -> Option<AdminState> {
    let dir = ctx.state_dir.as_ref()?;
    let text = std::fs::read(dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Compare with the previous review, record this one, and return `(site index, finding)` for new admins
/// (`None`: a finding about the record itself).
pub fn compare_and_record(ctx: &Ctx, sites: &[Site], listed: &[(usize, Admins)]) -> Vec<(Option<usize>, Finding)> {
    let Some(dir) = &ctx.state_dir else {
        return Vec::new();
    };
    let path = dir.join(STATE_FILE);
    let had_file = path.exists();
    let previous = load(ctx);
    let mut state = previous.clone().unwrap_or_default();
    let now = ctx.host.now_unix();
    let mut out = Vec::new();
    for (i, a) in listed {
        let Admins::Listed(logins) = a else {
            continue;
        };
        let site = &sites[*i];
        let subject = site.subject();
        if let Some(prev) = previous.as_ref().and_then(|p| p.sites.get(&subject)) {
            for login in logins.iter().filter(|l| !prev.logins.contains(l)) {
                out.push((Some(*i), added(site, login, logins, prev, now)));
            }
        }
        state.sites.insert(subject, SiteAdmins { logins: logins.clone(), checked: now });
    }
    let written = serde_json::to_vec_pretty(&state)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::create_dir_all(dir).and_then(|()| crate::atomic::write_atomic(&path, &b)));
    if let Err(e) = written {
        out.push((
            None,
            Finding::could_not_check(Category::Accounts, super::TOOL, &format!("recording {}", path.display()), e),
        ));
    } else if had_file && previous.is_none() {
        out.push((
            None,
            Finding::new(
                "accounts.wp-admin-history-reset",
                Severity::Info,
                Category::Accounts,
                path.display().to_string(),
                "The record of WordPress administrators was unreadable and was started again",
            )
            .evidence("new administrators since the previous review could not be told apart this time")
            .fix("Nothing to do; the next review compares against the record written now."),
        ));
    }
    out
}

fn sql_str(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "''")
}

fn added(site: &Site, login: &str, now_all: &[String], prev: &SiteAdmins, now: i64) -> Finding {
    let subject = site.subject();
    let prefix = safe_prefix(site).unwrap_or_else(|_| "wp_".into());
    let db = match (&site.db.name, &site.db.user) {
        (Some(n), Some(u)) => format!(" (database {n}, user {u})"),
        (Some(n), None) => format!(" (database {n})"),
        _ => String::new(),
    };
    let before = if prev.logins.is_empty() { "none".to_string() } else { prev.logins.join(", ") };
    Finding::new(
        "accounts.wp-admin-added",
        Severity::High,
        Category::Accounts,
        format!("{subject}:{login}"),
        format!("New WordPress administrator `{login}` on {subject}"),
    )
    .evidence(format!("site: {subject}{db}"))
    .evidence(format!(
        "first seen in this review ({}); not an administrator at the previous review ({}), when they were: {before}",
        crate::format::date_time_secs(now),
        crate::format::date_time_secs(prev.checked)
    ))
    .evidence(format!("administrators now: {}", now_all.join(", ")))
    .fix(format!(
        "Verify who created `{login}` and when: `SELECT ID, user_login, user_email, user_registered FROM `{prefix}users` \
         WHERE user_login = '{l}';`. List every administrator with `wp user list --role=administrator --path={path}` \
         (or: {q}). If nobody on your side created it, remove it with `wp user delete {login} --reassign=<your admin> \
         --path={path}`, change the other administrators' passwords and the database password, and look for how it got \
         in (outdated plugins, PHP files in uploads, the access log around user_registered).",
        l = sql_str(login),
        path = site.path,
        q = admin_query(&prefix),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wordpress::{DbPassword, DbSettings};

    fn site(path: &str, host: &str, prefix: &str) -> Site {
        Site {
            path: path.into(),
            config_path: Some(format!("{path}/wp-config.php")),
            config_files: vec![],
            refused_includes: vec![],
            password_file: Some(format!("{path}/wp-config.php")),
            host: None,
            url: None,
            core_version: Some("6.4".into()),
            db: DbSettings {
                name: Some("shop".into()),
                user: Some("shopuser".into()),
                host: Some(host.into()),
                table_prefix: Some(prefix.into()),
            },
            content_dir: format!("{path}/wp-content"),
            plugins: vec![],
            mu_plugins: vec![],
            themes: vec![],
            debian: false,
            password: Some(DbPassword("Tr0ub4dor&3-secret".into())),
            defines: Default::default(),
        }
    }

    #[test]
    fn arguments_follow_the_verified_endpoint_and_never_carry_the_password() {
        let sock = Endpoint {
            target: dbendpoint::Target::Socket("/run/mysqld/m.sock".into()),
            pid: 1,
            program: "mariadbd".into(),
            user: "mysql".into(),
        };
        let a = client_args(&site("/var/www/shop", "localhost:/run/mysqld/m.sock", "wp_"), &sock).unwrap();
        assert!(a.contains(&"--socket=/run/mysqld/m.sock".to_string()), "{a:?}");
        assert!(a.contains(&"--host=localhost".to_string()) && a.contains(&"--user=shopuser".to_string()));
        assert!(a.contains(&"--default-auth=mysql_native_password".to_string()), "{a:?}");
        assert_eq!(a[0], "--no-defaults");
        let tcp = Endpoint { target: dbendpoint::Target::Tcp("127.0.0.1:3307".parse().unwrap()), ..sock };
        let a = client_args(&site("/var/www/shop", "127.0.0.1:3307", "shop_"), &tcp).unwrap();
        assert!(a.contains(&"--port=3307".to_string()) && a.contains(&"--host=127.0.0.1".to_string()), "{a:?}");
        assert!(a.last().unwrap().contains("`shop_usermeta`") && a.last().unwrap().contains("'shop_capabilities'"));
        assert!(!a.join(" ").contains("secret"));
    }

    #[test]
    fn an_odd_table_prefix_is_refused_not_put_into_sql() {
        let ep = Endpoint {
            target: dbendpoint::Target::Socket("/run/mysqld/mysqld.sock".into()),
            pid: 1,
            program: "mariadbd".into(),
            user: "mysql".into(),
        };
        let e = client_args(&site("/var/www/shop", "localhost", "wp_`; DROP TABLE x; -- "), &ep).unwrap_err();
        assert!(e.contains("$table_prefix"), "{e}");
    }

    #[tokio::test]
    async fn off_the_live_root_nothing_is_queried() {
        let host = Host::at("/tmp/nonexistent-root");
        let sites = vec![site("/var/www/shop", "localhost", "wp_")];
        let out = list(&host, &sites, &[0]).await;
        assert!(matches!(&out[0].1, Admins::Unavailable(w) if w.contains("no MariaDB")), "{out:?}");
    }

    #[test]
    fn a_new_admin_stands_out_on_the_second_review_only() {
        let state = tempfile::tempdir().unwrap();
        let ctx = Ctx::new(Host::at("/tmp/nonexistent-root")).with_state_dir(state.path());
        let sites = vec![site("/var/www/shop", "localhost", "wp_")];
        let first = compare_and_record(&ctx, &sites, &[(0, Admins::Listed(vec!["alice".into()]))]);
        assert!(first.is_empty(), "first review only records: {first:?}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(state.path().join(STATE_FILE)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // Unreachable this time: nothing reported, the record kept.
        let none = compare_and_record(&ctx, &sites, &[(0, Admins::Unavailable("down".into()))]);
        assert!(none.is_empty());
        let same = compare_and_record(&ctx, &sites, &[(0, Admins::Listed(vec!["alice".into()]))]);
        assert!(same.is_empty(), "{same:?}");
        let two = vec!["alice".to_string(), "wp-support".to_string()];
        let found = compare_and_record(&ctx, &sites, &[(0, Admins::Listed(two.clone()))]);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0].1;
        assert_eq!((f.id.as_str(), f.subject.as_str()), ("accounts.wp-admin-added", "/var/www/shop:wp-support"));
        assert_eq!(f.severity, Severity::High);
        assert!(f.remediation.contains("wp user delete wp-support"), "{}", f.remediation);
        let again = compare_and_record(&ctx, &sites, &[(0, Admins::Listed(two))]);
        assert!(again.is_empty(), "reported once: {again:?}");
        // Without a state directory there is no comparison.
        let bare = Ctx::new(Host::at("/tmp/nonexistent-root"));
        assert!(compare_and_record(&bare, &sites, &[(0, Admins::Listed(vec!["mallory".into()]))]).is_empty());
    }
}
