//! PHP-FPM pools: who PHP runs as for each site, and what it is allowed to do.
//!
//! A pool is the boundary between tenants: a pool running as root hands every
//! site the machine; several sites in one pool user's hands means one hacked
//! plugin reads every neighbour's `wp-config.php`. Pools come from
//! `/etc/php/*/fpm/pool.d/*.conf` (and Red Hat's `/etc/php-fpm.d`), with the
//! version's `php.ini` as the default of each setting a pool leaves alone;
//! which sites a pool serves comes from the web server's `fastcgi_pass` /
//! `SetHandler "proxy:unix:…"` matched with the pool's `listen`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::host::Host;
use crate::tls::Site;

/// Functions that run programs: a pool should disable them unless a site needs one.
pub const EXEC_FUNCTIONS: [&str; 6] = ["exec", "passthru", "shell_exec", "system", "proc_open", "popen"];

/// One pool, as facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pool {
    /// `[name]` of the pool.
    pub name: String,
    /// The file it is defined in.
    pub file: String,
    /// The PHP branch (`8.2`), from the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub php: Option<String>,
    /// The user PHP runs as (`root` when unset: FPM's master user).
    pub user: String,
    /// Where it listens (socket path or `address:port`).
    pub listen: String,
    /// `open_basedir` in force (pool or php.ini), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_basedir: Option<String>,
    /// Functions disabled (pool or php.ini).
    pub disable_functions: Vec<String>,
    /// `allow_url_include` on.
    pub allow_url_include: bool,
    /// The sites (`server:name` or config file) whose PHP goes to this pool.
    pub sites: Vec<String>,
}

/// `key = value` of an ini-style text, `;`/`#` comments dropped, by section.
fn ini(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with(';') || l.starts_with('#') || l.is_empty() {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_string();
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            let v = v.split(" ;").next().unwrap_or("").trim().trim_matches(['"', '\'']);
            out.push((section.clone(), k.trim().to_ascii_lowercase(), v.to_string()));
        }
    }
    out
}

fn on(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "true" | "yes")
}

/// The settings of php.ini that pools inherit: (open_basedir, disable_functions, allow_url_include).
fn ini_defaults(host: &Host, php: Option<&str>) -> (Option<String>, Vec<String>, bool) {
    let mut files = Vec::new();
    if let Some(v) = php {
        files.push(format!("/etc/php/{v}/fpm/php.ini"));
        files.extend(host.glob(&format!("/etc/php/{v}/fpm/conf.d/*.ini")));
    } else {
        files.push("/etc/php.ini".into());
        files.extend(host.glob("/etc/php.d/*.ini"));
    }
    let (mut basedir, mut disabled, mut url_include) = (None, Vec::new(), false);
    for f in files {
        let Ok(text) = host.read_to_string(&f) else { continue };
        for (_, k, v) in ini(&text) {
            match k.as_str() {
                "open_basedir" => basedir = Some(v).filter(|v| !v.is_empty()),
                "disable_functions" => disabled = split_list(&v),
                "allow_url_include" => url_include = on(&v),
                _ => {}
            }
        }
    }
    (basedir, disabled, url_include)
}

fn split_list(v: &str) -> Vec<String> {
    v.split([',', ' ']).map(|f| f.trim().to_ascii_lowercase()).filter(|f| !f.is_empty()).collect()
}

/// Every pool on the host.
pub fn read_pools(host: &Host) -> Vec<Pool> {
    let mut files = host.glob("/etc/php/*/fpm/pool.d/*.conf");
    files.extend(host.glob("/etc/php-fpm.d/*.conf"));
    let mut pools = Vec::new();
    for file in files {
        let Ok(text) = host.read_to_string(&file) else { continue };
        let php = file.strip_prefix("/etc/php/").and_then(|r| r.split('/').next()).map(str::to_string);
        let (basedir, disabled, url_include) = ini_defaults(host, php.as_deref());
        let mut cur: Option<Pool> = None;
        let mut pending = Vec::new();
        for (section, k, v) in ini(&text) {
            if section.eq_ignore_ascii_case("global") || section.is_empty() {
                continue;
            }
            if cur.as_ref().is_none_or(|p| p.name != section) {
                pending.extend(cur.take());
                cur = Some(Pool {
                    name: section.clone(),
                    file: file.clone(),
                    php: php.clone(),
                    user: "root".into(),
                    listen: String::new(),
                    open_basedir: basedir.clone(),
                    disable_functions: disabled.clone(),
                    allow_url_include: url_include,
                    sites: Vec::new(),
                });
            }
            let Some(p) = cur.as_mut() else { continue };
            let setting = k.split_once('[').map(|(_, s)| s.trim_end_matches(']').to_string());
            match (k.as_str(), setting.as_deref()) {
                ("user", _) => p.user = v,
                ("listen", _) => p.listen = v,
                (_, Some("open_basedir")) => p.open_basedir = Some(v).filter(|v| !v.is_empty()),
                (_, Some("disable_functions")) => {
                    // php_admin_value adds to php.ini's list.
                    p.disable_functions.extend(split_list(&v));
                }
                (_, Some("allow_url_include")) => p.allow_url_include = on(&v),
                _ => {}
            }
        }
        pending.extend(cur);
        pools.extend(pending);
    }
    pools
}

/// Does a web server's FastCGI target (`unix:/run/php/x.sock`, `127.0.0.1:9000`) reach this pool?
fn serves(pool: &Pool, target: &str) -> bool {
    let t = target.trim_start_matches("unix:").trim_end_matches(':');
    let l = pool.listen.as_str();
    if l.is_empty() {
        return false;
    }
    if t == l {
        return true;
    }
    // `9000` listens on every address: `127.0.0.1:9000` reaches it.
    !l.contains(':') && !l.starts_with('/') && t.rsplit_once(':').is_some_and(|(_, port)| port == l)
}

/// Fill each pool's `sites` from the web server sites.
pub fn attach_sites(pools: &mut [Pool], sites: &[Site]) {
    for p in pools.iter_mut() {
        for s in sites {
            if s.fastcgi.iter().any(|t| serves(p, t)) {
                // A site is its document root: its port-80 and port-443 blocks are one site.
                let name = s.names.first().cloned().unwrap_or_else(|| s.file.clone());
                let label = s.roots.first().cloned().unwrap_or_else(|| format!("{}:{name}", s.server));
                if !p.sites.contains(&label) {
                    p.sites.push(label);
                }
            }
        }
    }
}

fn f(id: &str, sev: Severity, subject: impl Into<String>, title: impl Into<String>) -> Finding {
    let cat = if id.starts_with("updates.") { Category::Updates } else { Category::Hardening };
    Finding::new(id, sev, cat, subject, title)
}

/// The findings about pools; `today` for the EOL of their PHP branch.
pub fn judge(pools: &[Pool], today: time::Date) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in pools {
        let subject = format!("{}[{}]", p.file, p.name);
        let serving = if p.sites.is_empty() { "no enabled site found".to_string() } else { p.sites.join(", ") };
        if p.user == "root" || p.user == "0" {
            out.push(
                f("hardening.fpm-pool-root", Severity::Critical, &subject, format!("PHP-FPM pool [{}] runs PHP as root", p.name))
                    .evidence(format!("{}: user = {} (sites: {serving})", p.file, p.user))
                    .evidence("any bug in any PHP file of these sites runs code as root: the whole machine")
                    .fix(format!("Set `user = <site user>` and `group = <site user>` in {} (one user per site), then `systemctl reload php{}-fpm`.", p.file, p.php.as_deref().unwrap_or(""))),
            );
        }
        if p.allow_url_include {
            out.push(
                f("hardening.fpm-allow-url-include", Severity::High, &subject, format!("PHP pool [{}] allows include() of URLs", p.name))
                    .evidence(format!("{}: allow_url_include on (sites: {serving})", p.file))
                    .evidence("a file-inclusion bug becomes remote code execution from any web server")
                    .fix(format!("Remove allow_url_include (or set `php_admin_flag[allow_url_include] = off`) in {} and reload PHP-FPM.", p.file)),
            );
        }
        if p.sites.is_empty() {
            // Unused pools are not judged on isolation settings: nothing runs in them.
            continue;
        }
        if p.open_basedir.is_none() {
            out.push(
                f(
                    "hardening.fpm-no-open-basedir",
                    Severity::Low,
                    &subject,
                    format!("PHP pool [{}] can open any file on the host", p.name),
                )
                .evidence(format!("{}: no open_basedir in the pool or php.ini (sites: {serving})", p.file))
                .fix(format!(
                    "Add `php_admin_value[open_basedir] = /var/www/<site>/:/tmp/` to {} and reload PHP-FPM.",
                    p.file
                )),
            );
        }
        let missing: Vec<&str> =
            EXEC_FUNCTIONS.iter().copied().filter(|x| !p.disable_functions.iter().any(|d| d == x)).collect();
        if missing.len() == EXEC_FUNCTIONS.len() {
            out.push(
                f("hardening.fpm-exec-allowed", Severity::Low, &subject, format!("PHP pool [{}] may run programs (exec, system… not disabled)", p.name))
                    .evidence(format!("{}: disable_functions does not list {} (sites: {serving})", p.file, missing.join(", ")))
                    .evidence("a web shell dropped in these sites can run any command as the pool user")
                    .fix(format!("Add `php_admin_value[disable_functions] = {}` to {} (keep any a site really needs) and reload PHP-FPM.", EXEC_FUNCTIONS.join(","), p.file)),
            );
        }
        if let Some(v) = &p.php {
            if let Some(eol) = crate::updates::eol::php_eol(v).filter(|d| today > *d) {
                out.push(
                    f("updates.fpm-pool-eol-php", Severity::Medium, &subject, format!("Sites run on PHP {v}, past its end of life"))
                        .evidence(format!("{}: PHP {v} pool, upstream security support ended {eol} (sites: {serving})", p.file))
                        .fix(format!("Move the pool to a supported PHP (`apt-get install php<new>-fpm`, copy {} into its pool.d, point the site's fastcgi_pass at it), test the sites, then remove php{v}-fpm.", p.file)),
                );
            }
        }
    }
    // One user for several sites: PHP of one site can read and write the others'.
    let mut by_user: std::collections::BTreeMap<&str, Vec<&Pool>> = std::collections::BTreeMap::new();
    for p in pools.iter().filter(|p| !p.sites.is_empty()) {
        by_user.entry(p.user.as_str()).or_default().push(p);
    }
    for (user, ps) in by_user {
        let mut sites: Vec<&String> = ps.iter().flat_map(|p| p.sites.iter()).collect();
        sites.sort();
        sites.dedup();
        if sites.len() < 2 {
            continue;
        }
        let pools: Vec<String> = ps.iter().map(|p| format!("{}[{}]", p.file, p.name)).collect();
        out.push(
            f("hardening.fpm-shared-user", Severity::Medium, format!("php-fpm user {user}"), format!("{} sites run their PHP as the same user ({user})", sites.len()))
                .evidence(format!("pools: {}", pools.join(", ")))
                .evidence(format!("sites: {}", sites.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))
                .evidence("a hacked plugin on one site reads the others' wp-config.php and writes their files")
                .fix("Give each site its own pool file with its own `user`/`group`, `listen = /run/php/<site>.sock` and open_basedir, point each site's fastcgi_pass at its socket, reload PHP-FPM and the web server."),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_inherit_php_ini_and_map_to_sites() {
        let t = tempfile::tempdir().unwrap();
        let w = |p: &str, s: &str| {
            let p = t.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        w("etc/php/7.4/fpm/php.ini", "disable_functions = pcntl_fork\nallow_url_include = Off\n");
        w(
            "etc/php/7.4/fpm/pool.d/www.conf",
            "[www]\nuser = root\nlisten = /run/php/php7.4-fpm.sock\n[shop]\nuser = shop\nlisten = 9001\n\
             php_admin_value[open_basedir] = /srv/shop/\nphp_admin_value[disable_functions] = exec,passthru,shell_exec,system,proc_open,popen\n\
             php_admin_flag[allow_url_include] = on\n",
        );
        let mut pools = read_pools(&Host::at(t.path()));
        assert_eq!(pools.len(), 2);
        let site = |name: &str, pass: &str| Site {
            server: "nginx".into(),
            names: vec![name.into()],
            fastcgi: vec![pass.into()],
            ..Default::default()
        };
        attach_sites(
            &mut pools,
            &[
                site("a.test", "unix:/run/php/php7.4-fpm.sock"),
                site("b.test", "unix:/run/php/php7.4-fpm.sock"),
                site("shop.test", "127.0.0.1:9001"),
            ],
        );
        assert_eq!(pools[0].sites, ["nginx:a.test", "nginx:b.test"]);
        assert_eq!(pools[1].sites, ["nginx:shop.test"]);
        let today = time::macros::date!(2026 - 12 - 04);
        let found = judge(&pools, today);
        let ids: Vec<(&str, String)> = found.iter().map(|f| (f.id.as_str(), f.subject.clone())).collect();
        let has = |id: &str, pool: &str| ids.iter().any(|(i, s)| *i == id && s.ends_with(&format!("[{pool}]")));
        assert!(has("hardening.fpm-pool-root", "www"));
        assert!(has("hardening.fpm-no-open-basedir", "www") && !has("hardening.fpm-no-open-basedir", "shop"));
        assert!(has("hardening.fpm-exec-allowed", "www") && !has("hardening.fpm-exec-allowed", "shop"));
        assert!(has("hardening.fpm-allow-url-include", "shop") && !has("hardening.fpm-allow-url-include", "www"));
        assert!(has("updates.fpm-pool-eol-php", "shop"));
        assert!(ids.iter().any(|(i, s)| *i == "hardening.fpm-shared-user" && s == "php-fpm user root"), "{ids:?}");
    }
}
