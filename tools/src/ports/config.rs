//! Datastores configured to listen on every interface, read from their configuration files.
//!
//! `/proc` only shows what runs now: an image has no `/proc`, and a stopped
//! MariaDB or Redis starts tomorrow the way its file says. So the bind
//! settings are read where each daemon reads them: MariaDB/MySQL `my.cnf` with
//! its `!include`/`!includedir` files (`bind-address`, `skip-networking`),
//! Redis `bind`/`protected-mode`/`requirepass`, Memcached `-l`, MongoDB
//! `net.bindIp`/`bindIpAll`, Elasticsearch `network.host`. Whether a password is
//! set is judged, never shown.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::firewall::FirewallState;
use crate::host::Host;

/// A datastore's configured listening address, as facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfiguredBind {
    /// The product (`MariaDB/MySQL`, `Redis`…).
    pub service: String,
    /// The file (and setting) that decides it.
    pub file: String,
    /// The TCP port it listens on.
    pub port: u16,
    /// The addresses as configured (`0.0.0.0`, `127.0.0.1 -::1`, `(default: every interface)`).
    pub bind: String,
    /// True when the configuration listens beyond loopback and private addresses.
    pub public: bool,
    /// What guards it besides the address (`requirepass set`, `protected-mode yes`, `no authentication`…).
    pub guard: String,
    /// True when the configuration lets anyone who connects in without a password.
    pub unauthenticated: bool,
}

/// Is one configured address reachable from the internet (not loopback, not a private range)?
fn address_public(a: &str) -> bool {
    let a = a.trim().trim_start_matches('-').trim_matches(['[', ']', '"', '\'']);
    if a.is_empty() || a == "*" || a == "0.0.0.0" || a == "::" || a == "_global_" || a == "_site_" {
        return true;
    }
    if a == "localhost" || a.starts_with("_local") || a.starts_with('/') {
        return false;
    }
    match a.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => !(v4.is_loopback() || v4.is_private() || v4.is_link_local()),
        Ok(std::net::IpAddr::V6(v6)) => {
            let seg = v6.segments()[0];
            !(v6.is_loopback() || (seg & 0xfe00) == 0xfc00 || (seg & 0xffc0) == 0xfe80)
        }
        // A host name: resolved at start-up; assume it may be public.
        Err(_) => !a.starts_with("_"),
    }
}

fn any_public<S: AsRef<str>>(addrs: &[S]) -> bool {
    addrs.iter().any(|a| address_public(a.as_ref()))
}

/// A configured bind of an address list, guarded (`guard`) or open to whoever connects.
fn configured(
    service: &str,
    file: String,
    port: u16,
    bind: String,
    addrs: &[String],
    guard: (&str, bool),
) -> ConfiguredBind {
    ConfiguredBind {
        service: service.into(),
        file,
        port,
        public: any_public(addrs),
        bind,
        guard: guard.0.into(),
        unauthenticated: !guard.1,
    }
}

/// Every datastore configuration found on the host.
pub fn configured_binds(host: &Host) -> Vec<ConfiguredBind> {
    let mut out = Vec::new();
    out.extend(mysql(host));
    out.extend(redis(host));
    out.extend(memcached(host));
    out.extend(mongodb(host));
    out.extend(elasticsearch(host));
    out
}

/// `key = value` lines of the server sections of a MySQL option file and what it includes, in read order.
fn mysql_options(host: &Host, file: &str, depth: u8, out: &mut Vec<(String, String, Option<String>)>) {
    let Ok(text) = host.read_to_string(file) else { return };
    let mut server = false;
    for line in text.lines() {
        let l = line.trim();
        if let Some(dir) = l.strip_prefix("!includedir") {
            if depth < 8 {
                let mut files = host.glob(&format!("{}/*.cnf", dir.trim().trim_end_matches('/')));
                files.sort();
                for f in files {
                    mysql_options(host, &f, depth + 1, out);
                }
            }
            continue;
        }
        if let Some(f) = l.strip_prefix("!include") {
            if depth < 8 {
                mysql_options(host, f.trim(), depth + 1, out);
            }
            continue;
        }
        if l.starts_with('#') || l.starts_with(';') || l.is_empty() {
            continue;
        }
        if let Some(section) = l.strip_prefix('[') {
            let name = section.trim_end_matches(']').trim().to_ascii_lowercase();
            server = ["mysqld", "server", "mariadb", "mariadbd", "galera"].iter().any(|s| name == *s)
                || name.starts_with("mysqld-")
                || name.starts_with("mariadb-");
            continue;
        }
        if !server {
            continue;
        }
        let (k, v) = match l.split_once('=') {
            Some((k, v)) => (k, Some(v.split('#').next().unwrap_or("").trim().trim_matches(['"', '\'']).to_string())),
            None => (l, None),
        };
        out.push((file.to_string(), k.trim().replace('_', "-").to_ascii_lowercase(), v));
    }
}

fn mysql(host: &Host) -> Option<ConfiguredBind> {
    let main = ["/etc/mysql/my.cnf", "/etc/my.cnf"].into_iter().find(|f| host.exists(f))?;
    let server = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld", "/usr/libexec/mysqld"].iter().any(|p| host.exists(p));
    if !server {
        return None;
    }
    let mut opts = Vec::new();
    mysql_options(host, main, 0, &mut opts);
    let last = |key: &str| opts.iter().rev().find(|(_, k, _)| k == key);
    let port = last("port").and_then(|(_, _, v)| v.as_deref()?.parse().ok()).unwrap_or(3306);
    let skip = last("skip-networking").filter(|(_, _, v)| {
        !v.as_deref().is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "0" | "off" | "false"))
    });
    if let Some((file, _, _)) = skip {
        return Some(ConfiguredBind {
            service: "MariaDB/MySQL".into(),
            file: format!("{file}: skip-networking"),
            port,
            bind: "(no TCP)".into(),
            public: false,
            guard: "skip-networking".into(),
            unauthenticated: false,
        });
    }
    let (file, bind) = match last("bind-address") {
        Some((f, _, v)) => (format!("{f}: bind-address"), v.clone().unwrap_or_default()),
        None => (format!("{main} (and its includes): no bind-address"), "(default: every interface)".into()),
    };
    let addrs: Vec<String> =
        if bind.starts_with('(') { vec!["*".into()] } else { bind.split(',').map(str::to_string).collect() };
    Some(configured("MariaDB/MySQL", file, port, bind, &addrs, ("database accounts' passwords", true)))
}

/// `directive args…` lines of a Redis configuration and its `include`s.
fn redis_lines(host: &Host, file: &str, depth: u8, out: &mut Vec<(String, String, Vec<String>)>) {
    let Ok(text) = host.read_to_string(file) else { return };
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let mut w = l.split_whitespace();
        let key = w.next().unwrap_or("").to_ascii_lowercase();
        let args: Vec<String> = w.map(|a| a.trim_matches(['"', '\'']).to_string()).collect();
        if key == "include" && depth < 8 {
            for a in &args {
                for f in if a.contains('*') { host.glob(a) } else { vec![a.clone()] } {
                    redis_lines(host, &f, depth + 1, out);
                }
            }
            continue;
        }
        out.push((file.to_string(), key, args));
    }
}

/// Redis's configuration files (Sentinel's left out).
fn redis_files(host: &Host) -> Vec<String> {
    let mut files = host.glob("/etc/redis/redis*.conf");
    files.extend(host.glob("/etc/redis.conf"));
    files.retain(|f| !f.ends_with("sentinel.conf"));
    files
}

fn redis(host: &Host) -> Vec<ConfiguredBind> {
    redis_files(host)
        .into_iter()
        .map(|file| {
            let mut lines = Vec::new();
            redis_lines(host, &file, 0, &mut lines);
            let last = |key: &str| lines.iter().rev().find(|(_, k, _)| k == key);
            let port = last("port").and_then(|(_, _, a)| a.first()?.parse().ok()).unwrap_or(6379);
            let (bind, addrs): (String, Vec<String>) = match last("bind") {
                Some((_, _, a)) => (a.join(" "), a.clone()),
                None => ("(default: every interface)".into(), vec!["*".into()]),
            };
            let password = last("requirepass").is_some_and(|(_, _, a)| a.first().is_some_and(|p| !p.is_empty()))
                || lines
                    .iter()
                    .any(|(_, k, a)| k == "user" && a.iter().any(|w| w.starts_with('>') || w.starts_with('#')));
            let protected = last("protected-mode").is_none_or(|(_, _, a)| a.first().is_none_or(|v| v != "no"));
            let guard = match (password, protected) {
                (true, _) => "requirepass set".to_string(),
                (false, true) => "no password; protected-mode yes (answers only loopback clients)".to_string(),
                (false, false) => "no password and protected-mode no: anyone who connects runs any command".to_string(),
            };
            configured("Redis", format!("{file}: bind"), port, bind, &addrs, (&guard, password || protected))
        })
        .collect()
}

/// The passwords Redis's configuration sets, with where each is (`/etc/redis/redis.conf
/// requirepass`, `… user NAME`): `requirepass` and the `>password` of `user` ACL lines,
/// includes followed. Secrets: they are only ever compared through a keyed digest (`vigil
/// fleet`'s cross-server reuse), never printed or stored. `masterauth` is left out: a replica's
/// is its primary's password by design, not a reuse to report.
pub fn redis_passwords(host: &Host) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in redis_files(host) {
        let mut lines = Vec::new();
        redis_lines(host, &file, 0, &mut lines);
        for (from, key, args) in lines {
            match key.as_str() {
                "requirepass" => {
                    out.extend(args.into_iter().next().map(|pw| (format!("{from} requirepass"), pw)));
                }
                "user" => {
                    let name = args.first().cloned().unwrap_or_default();
                    out.extend(
                        args.iter()
                            .skip(1)
                            .filter_map(|a| a.strip_prefix('>'))
                            .map(|pw| (format!("{from} user {name}"), pw.to_string())),
                    );
                }
                _ => {}
            }
        }
    }
    out.retain(|(_, pw)| !pw.is_empty());
    out
}

fn memcached(host: &Host) -> Option<ConfiguredBind> {
    let file = "/etc/memcached.conf";
    let text = host.read_to_string(file).ok()?;
    let mut listen: Option<String> = None;
    let mut port = 11211;
    let mut sasl = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        let mut w = l.split_whitespace();
        let (flag, arg) = (w.next().unwrap_or(""), w.next());
        let (flag, arg) = match flag.split_once('=') {
            Some((f, a)) => (f, Some(a)),
            None => (flag, arg),
        };
        match flag {
            "-l" | "--listen" => listen = arg.map(str::to_string),
            "-p" | "--port" => port = arg.and_then(|a| a.parse().ok()).unwrap_or(port),
            "-S" | "--enable-sasl" => sasl = true,
            _ => {}
        }
    }
    let (bind, addrs) = match &listen {
        Some(l) => (l.clone(), l.split(',').map(|a| a.rsplit_once(':').map_or(a, |(h, _)| h).to_string()).collect()),
        None => ("(no -l: every interface)".to_string(), vec!["*".to_string()]),
    };
    let guard = if sasl { ("SASL authentication (-S)", true) } else { ("no authentication", false) };
    Some(configured("Memcached", format!("{file}: -l"), port, bind, &addrs, guard))
}

/// `section.key` → value of a small YAML file (block mappings by indentation, or dotted keys).
fn yaml_keys(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let code = line.split(" #").next().unwrap_or("");
        if code.trim().is_empty() || code.trim_start().starts_with('#') {
            continue;
        }
        let indent = code.len() - code.trim_start().len();
        let Some((k, v)) = code.trim().split_once(':') else { continue };
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        let mut full: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
        full.push(k.trim());
        let v = v.trim().trim_matches(['"', '\'']);
        if v.is_empty() {
            path.push((indent, k.trim().to_string()));
        } else {
            out.push((full.join("."), v.to_string()));
        }
    }
    out
}

fn yaml_list(v: &str) -> Vec<String> {
    v.trim_matches(['[', ']']).split(',').map(|a| a.trim().trim_matches(['"', '\'']).to_string()).collect()
}

fn mongodb(host: &Host) -> Option<ConfiguredBind> {
    let file = "/etc/mongod.conf";
    let keys = yaml_keys(&host.read_to_string(file).ok()?);
    let get = |k: &str| keys.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let port = get("net.port").and_then(|p| p.parse().ok()).unwrap_or(27017);
    let all = get("net.bindIpAll").is_some_and(|v| v == "true");
    let bind = if all {
        "bindIpAll: true".to_string()
    } else {
        get("net.bindIp").unwrap_or_else(|| "(default: localhost)".into())
    };
    let addrs = if all {
        vec!["*".to_string()]
    } else if bind.starts_with('(') {
        vec![]
    } else {
        yaml_list(&bind)
    };
    let auth = get("security.authorization").is_some_and(|v| v == "enabled");
    let guard = if auth { ("security.authorization: enabled", true) } else { ("no authorization", false) };
    Some(configured("MongoDB", format!("{file}: net.bindIp"), port, bind, &addrs, guard))
}

fn elasticsearch(host: &Host) -> Option<ConfiguredBind> {
    let file = "/etc/elasticsearch/elasticsearch.yml";
    let keys = yaml_keys(&host.read_to_string(file).ok()?);
    let get = |k: &str| keys.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let port = get("http.port").and_then(|p| p.split('-').next()?.parse().ok()).unwrap_or(9200);
    let bind = get("network.host").or_else(|| get("http.host")).unwrap_or_else(|| "(default: loopback)".into());
    let addrs = if bind.starts_with('(') { vec![] } else { yaml_list(&bind) };
    let security = get("xpack.security.enabled").is_none_or(|v| v != "false");
    let guard = if security { ("xpack security on", true) } else { ("xpack.security.enabled: false", false) };
    Some(configured("Elasticsearch", format!("{file}: network.host"), port, bind, &addrs, guard))
}

/// Fold the configured binds into the findings: a public configuration adds its evidence to the
/// `/proc` finding for the same port when there is one, and is a finding of its own otherwise
/// (the daemon is stopped, or this is an image). Reachable through the firewall and without
/// authentication is critical; only the firewall between it and the internet makes it lower.
pub fn fold(findings: &mut Vec<Finding>, configured: &[ConfiguredBind], fw: &FirewallState) {
    for c in configured.iter().filter(|c| c.public) {
        let allowed = crate::firewall::port_allowed(fw, "tcp", c.port);
        let blocked = allowed == Some(false);
        let reach = crate::firewall::describe_reach(fw, allowed);
        let line = format!("configuration: {} = {} ({})", c.file, c.bind, c.guard);
        let subject = format!("tcp:{}", c.port);
        if let Some(f) = findings.iter_mut().find(|f| f.id == "ports.exposed-datastore" && f.subject == subject) {
            f.evidence.push(line);
            if c.unauthenticated && !blocked {
                f.severity = Severity::Critical;
            }
            continue;
        }
        let severity = match (blocked, c.unauthenticated) {
            (false, true) => Severity::Critical,
            (false, false) => Severity::High,
            (true, true) => Severity::Medium,
            (true, false) => Severity::Low,
        };
        let title = if blocked {
            format!(
                "{} is configured to listen on every interface (port {}); only the firewall keeps it private",
                c.service, c.port
            )
        } else {
            format!(
                "{} is configured to listen on every interface (port {}) and the firewall lets it through",
                c.service, c.port
            )
        };
        findings.push(
            Finding::new("ports.datastore-config-public", severity, Category::Ports, subject, title)
                .evidence(line)
                .evidence(format!("firewall for tcp/{}: {reach}", c.port))
                .evidence("not listening now (or no /proc to tell): it listens this way as soon as it starts")
                .fix(format!(
                    "Bind {} to 127.0.0.1 in {} (e.g. {}) and restart it; if other machines need it, list their addresses in the firewall only.",
                    c.service,
                    c.file.split(':').next().unwrap_or(&c.file),
                    match c.service.as_str() {
                        "MariaDB/MySQL" => "`bind-address = 127.0.0.1` under [mysqld]",
                        "Redis" => "`bind 127.0.0.1 -::1`, `protected-mode yes` and a `requirepass`",
                        "Memcached" => "`-l 127.0.0.1`",
                        "MongoDB" => "`net.bindIp: 127.0.0.1` and `security.authorization: enabled`",
                        _ => "`network.host: 127.0.0.1`",
                    }
                )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_yaml() {
        for a in ["0.0.0.0", "::", "*", "203.0.113.5", "-::*"] {
            assert!(address_public(a), "{a}");
        }
        for a in ["127.0.0.1", "-::1", "localhost", "10.0.0.5", "192.168.1.2", "fd00::1", "_local_"] {
            assert!(!address_public(a), "{a}");
        }
        let k = yaml_keys(
            "net:\n  port: 27018\n  bindIp: 127.0.0.1, 0.0.0.0  # all\nsecurity:\n  authorization: enabled\n",
        );
        assert!(k.contains(&("net.port".into(), "27018".into())));
        assert!(k.contains(&("net.bindIp".into(), "127.0.0.1, 0.0.0.0".into())));
        assert!(k.contains(&("security.authorization".into(), "enabled".into())));
        assert_eq!(yaml_keys("network.host: 0.0.0.0\n"), [("network.host".to_string(), "0.0.0.0".to_string())]);
    }

    fn root(files: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = t.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        t
    }

    #[test]
    fn each_datastore_is_read_where_its_daemon_reads_it() {
        let t = root(&[
            ("/usr/sbin/mariadbd", ""),
            ("/etc/mysql/my.cnf", "[client]\nbind-address=127.0.0.1\n!includedir /etc/mysql/conf.d/\n"),
            ("/etc/mysql/conf.d/50-server.cnf", "[mysqld]\nbind-address = 127.0.0.1\n"),
            ("/etc/mysql/conf.d/99-remote.cnf", "[mariadb]\nbind_address = 0.0.0.0\n"),
            ("/etc/redis/redis.conf", "bind 0.0.0.0\nprotected-mode no\n# requirepass x\n"),
            ("/etc/memcached.conf", "-m 64\n-l 127.0.0.1\n"),
            ("/etc/mongod.conf", "net:\n  bindIpAll: true\n"),
            ("/etc/elasticsearch/elasticsearch.yml", "network.host: 127.0.0.1\n"),
        ]);
        let b = configured_binds(&Host::at(t.path()));
        let get = |s: &str| b.iter().find(|c| c.service == s).unwrap();
        let my = get("MariaDB/MySQL");
        assert!(my.public && my.file.contains("99-remote.cnf"), "{my:?}");
        let r = get("Redis");
        assert!(r.public && r.unauthenticated, "{r:?}");
        assert!(!get("Memcached").public);
        assert!(get("MongoDB").public);
        assert!(!get("Elasticsearch").public);

        // skip-networking wins; a Redis password is judged, never shown.
        let t = root(&[
            ("/usr/sbin/mariadbd", ""),
            ("/etc/mysql/my.cnf", "[mysqld]\nbind-address=0.0.0.0\nskip-networking\n"),
            ("/etc/redis/redis.conf", "bind 0.0.0.0\nrequirepass S3cretRedisPw\n"),
            ("/etc/memcached.conf", "-p 11211\n"),
        ]);
        let b = configured_binds(&Host::at(t.path()));
        assert!(!b.iter().find(|c| c.service == "MariaDB/MySQL").unwrap().public);
        let r = b.iter().find(|c| c.service == "Redis").unwrap();
        assert!(r.public && !r.unauthenticated);
        assert!(!format!("{b:?}").contains("S3cret"));
        assert!(b.iter().find(|c| c.service == "Memcached").unwrap().public, "no -l: every interface");
    }

    #[test]
    fn redis_passwords_are_found_with_their_place_and_masterauth_is_not() {
        let t = root(&[
            (
                "/etc/redis/redis.conf",
                "requirepass S3cretRedisPw
masterauth PrimaryPw
include /etc/redis/acl.d/*.conf
",
            ),
            (
                "/etc/redis/acl.d/app.conf",
                "user app on >AppPw1 >AppPw2 ~* +@all
user off nopass
requirepass \"\"
",
            ),
            (
                "/etc/redis/sentinel.conf",
                "requirepass SentinelPw
",
            ),
        ]);
        let mut got = redis_passwords(&Host::at(t.path()));
        got.sort();
        let want = [
            ("/etc/redis/acl.d/app.conf user app", "AppPw1"),
            ("/etc/redis/acl.d/app.conf user app", "AppPw2"),
            ("/etc/redis/redis.conf requirepass", "S3cretRedisPw"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want);
    }
}
