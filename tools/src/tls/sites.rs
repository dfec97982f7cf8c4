//! Web server virtual hosts from nginx and Apache configuration: names,
//! listen addresses, whether they speak TLS, which certificate they serve,
//! whether a plain-HTTP site only redirects to HTTPS, where its files are
//! (document roots), which paths it refuses ([`super::access`]) and which
//! PHP-FPM sockets it passes PHP to.

use super::access::{self, Rule};
use crate::host::Host;

/// One virtual host (an nginx `server {}` or an Apache `<VirtualHost>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// `nginx` or `apache`.
    pub server: String,
    /// The file it is defined in.
    pub file: String,
    /// `server_name` / `ServerName` + `ServerAlias`, lowercase.
    pub names: Vec<String>,
    /// Listen specifications as written (`443 ssl`, `[::]:80`, `*:443`).
    pub listen: Vec<String>,
    /// True when it serves TLS.
    pub tls: bool,
    /// True when every listener is loopback-only (not a public site).
    pub internal: bool,
    /// True when it only redirects to `https://`.
    pub redirects_to_https: bool,
    /// The certificate file, when it has one.
    pub certificate: Option<String>,
    /// Document roots (nginx `root` of the server or of a location, Apache `DocumentRoot`).
    pub roots: Vec<String>,
    /// Access rules: nginx locations, Apache sections (global ones included).
    pub rules: Vec<Rule>,
    /// Apache reads `.htaccess` files in the document root (`AllowOverride` other than `None`).
    pub htaccess: bool,
    /// FastCGI sockets PHP is handed to (`fastcgi_pass unix:…`, `SetHandler "proxy:unix:…"`).
    pub fastcgi: Vec<String>,
    /// Some directive of the site redirects to `https://` (a `return`, `rewrite`, `Redirect`, `RewriteRule`).
    pub https_redirect: bool,
}

/// Words of nginx configuration: tokens, `{`, `}`, `;`, comments removed.
fn nginx_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut comment = false;
    for c in text.chars() {
        if comment {
            if c == '\n' {
                comment = false;
            }
            continue;
        }
        if let Some(q) = quote {
            if c == q {
                quote = None;
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '#' if cur.is_empty() => comment = true,
            '"' | '\'' if cur.is_empty() => quote = Some(c),
            '{' | '}' | ';' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Tokens of `file` with every `include` replaced by the tokens of the files it names.
fn nginx_expand(host: &Host, file: &str, depth: u8, problems: &mut Vec<(String, String)>) -> Vec<String> {
    let text = match host.read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Vec::new(),
        Err(e) => {
            problems.push((file.to_string(), e.to_string()));
            return Vec::new();
        }
    };
    let toks = nginx_tokens(&text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i] == "include" && toks.get(i + 2).map(String::as_str) == Some(";") && depth < 10 {
            let target = &toks[i + 1];
            let path = if target.starts_with('/') { target.clone() } else { format!("/etc/nginx/{target}") };
            let files = if path.contains(['*', '?']) { host.glob(&path) } else { vec![path] };
            for f in files {
                out.extend(nginx_expand(host, &f, depth + 1, problems));
            }
            i += 3;
            continue;
        }
        out.push(toks[i].clone());
        i += 1;
    }
    out
}

/// Every `server {}` block of the enabled nginx sites.
pub fn nginx_sites(host: &Host, problems: &mut Vec<(String, String)>) -> Vec<Site> {
    let mut files = host.glob("/etc/nginx/sites-enabled/*");
    files.extend(host.glob("/etc/nginx/conf.d/*.conf"));
    let mut sites = Vec::new();
    for file in files {
        let toks = nginx_expand(host, &file, 0, problems);
        let mut i = 0;
        while i < toks.len() {
            if toks[i] == "server" && toks.get(i + 1).map(String::as_str) == Some("{") {
                let end = block_end(&toks, i + 1);
                sites.push(nginx_server(&toks[i + 2..end], &file));
                i = end + 1;
            } else {
                i += 1;
            }
        }
    }
    sites
}

fn block_end(toks: &[String], open: usize) -> usize {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

fn nginx_server(toks: &[String], file: &str) -> Site {
    let mut s = Site { server: "nginx".into(), file: file.into(), ..Default::default() };
    let mut ssl_on = false;
    let mut only_redirect = true;
    let mut has_content = false;
    // Directives at the server level (depth 0) and the `location /` return.
    let mut depth = 0;
    let mut stmt: Vec<&str> = Vec::new();
    // The server-level location being read: (modifier, pattern, denies).
    let mut location: Option<(String, String, bool)> = None;
    for t in toks {
        match t.as_str() {
            "{" => {
                depth += 1;
                if depth == 1 && stmt.first() == Some(&"location") && stmt.len() >= 2 {
                    let pattern = stmt[stmt.len() - 1].to_string();
                    let modifier = if stmt.len() >= 3 { stmt[1].to_string() } else { String::new() };
                    location = Some((modifier, pattern, false));
                }
                stmt.clear();
            }
            "}" => {
                if depth == 1 {
                    if let Some((modifier, pattern, denies)) = location.take() {
                        s.rules.push(Rule::NginxLocation { modifier, pattern, denies });
                    }
                }
                depth -= 1;
                stmt.clear();
            }
            ";" => {
                if depth == 1 {
                    let refuses = stmt == ["deny", "all"]
                        || (stmt.first() == Some(&"return")
                            && stmt.get(1).is_some_and(|c| matches!(*c, "403" | "404" | "410" | "444")));
                    if let Some(l) = location.as_mut().filter(|_| refuses) {
                        l.2 = true;
                    }
                }
                match (depth, stmt.first().copied()) {
                    (_, Some("root")) if stmt.len() > 1 => {
                        let root = stmt[1].trim_end_matches('/').to_string();
                        if !s.roots.contains(&root) && !root.is_empty() {
                            s.roots.push(root);
                        }
                        if !stmt.iter().any(|w| w.contains("letsencrypt") || w.contains("acme")) {
                            has_content = true;
                        }
                    }
                    (_, Some("fastcgi_pass")) if stmt.len() > 1 => s.fastcgi.push(stmt[1].to_string()),
                    _ => {}
                }
                if stmt.iter().any(|w| w.starts_with("https://"))
                    && matches!(stmt.first(), Some(&"return" | &"rewrite"))
                {
                    s.https_redirect = true;
                }
                match (depth, stmt.first().copied()) {
                    (0, Some("listen")) => s.listen.push(stmt[1..].join(" ")),
                    (0, Some("server_name")) => s.names.extend(stmt[1..].iter().map(|n| n.to_ascii_lowercase())),
                    (0, Some("ssl_certificate")) if stmt.len() > 1 => s.certificate = Some(stmt[1].to_string()),
                    (0, Some("ssl")) => ssl_on = stmt.get(1) == Some(&"on"),
                    (_, Some("return")) => {
                        let to_https = stmt.iter().any(|w| w.starts_with("https://"));
                        let closes = stmt.get(1) == Some(&"444");
                        if !(to_https || closes) {
                            only_redirect = false;
                        }
                    }
                    (_, Some("rewrite")) if stmt.iter().any(|w| w.starts_with("https://")) => {}
                    // The ACME challenge location may serve files without making the site plain HTTP.
                    (_, Some("proxy_pass" | "fastcgi_pass" | "try_files" | "alias" | "uwsgi_pass"))
                        if !stmt.iter().any(|w| w.contains("letsencrypt") || w.contains("acme")) =>
                    {
                        has_content = true;
                    }
                    _ => {}
                }
                stmt.clear();
            }
            w => stmt.push(w),
        }
    }
    if s.listen.is_empty() {
        s.listen.push("80".into());
    }
    let tls_listen = |l: &String| l.split_whitespace().any(|w| w == "ssl" || w == "quic");
    s.tls = s.listen.iter().any(tls_listen) || (ssl_on && s.certificate.is_some());
    s.internal = s.listen.iter().all(|l| is_loopback_listen(l));
    s.redirects_to_https = !s.tls && only_redirect && !has_content;
    s
}

fn is_loopback_listen(l: &str) -> bool {
    let addr = l.split_whitespace().next().unwrap_or("");
    addr.starts_with("127.") || addr.starts_with("[::1]") || addr.starts_with("localhost") || addr.starts_with("unix:")
}

/// Every `<VirtualHost>` of the enabled Apache sites (Debian and Red Hat layouts).
pub fn apache_sites(host: &Host, problems: &mut Vec<(String, String)>) -> Vec<Site> {
    let mut files = host.glob("/etc/apache2/sites-enabled/*");
    files.extend(host.glob("/etc/httpd/conf.d/*.conf"));
    // The server-wide part of the main configuration (everything outside a <VirtualHost>).
    let mut main = Vec::new();
    for f in ["/etc/apache2/apache2.conf", "/etc/httpd/conf/httpd.conf"] {
        apache_expand(host, f, 0, problems, &mut main);
    }
    let mut global = Vec::new();
    let mut inside = false;
    for l in main {
        let key = l.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        match key.as_str() {
            "<virtualhost" => inside = true,
            "</virtualhost>" => inside = false,
            _ if !inside => global.push(l),
            _ => {}
        }
    }
    let global_rules = access::apache_rules(&global);
    let mut sites = Vec::new();
    for file in files {
        let mut lines = Vec::new();
        apache_expand(host, &file, 0, problems, &mut lines);
        let mut cur: Option<(Site, bool, bool, Vec<String>)> = None; // site, SSLEngine on, serves content, its lines
        for line in lines {
            let l = line.trim();
            let mut w = l.split_whitespace();
            let key = w.next().unwrap_or("").to_ascii_lowercase();
            let args: Vec<&str> = w.collect();
            if key == "<virtualhost" {
                let addrs: Vec<String> =
                    args.iter().map(|a| a.trim_end_matches('>').to_string()).filter(|a| !a.is_empty()).collect();
                let site = Site { server: "apache".into(), file: file.clone(), listen: addrs, ..Default::default() };
                cur = Some((site, false, false, Vec::new()));
                continue;
            }
            let Some((site, ssl, content, own)) = cur.as_mut() else { continue };
            if key != "</virtualhost>" {
                own.push(l.to_string());
            }
            match key.as_str() {
                "</virtualhost>" => {
                    if let Some((mut s, ssl, content, own)) = cur.take() {
                        s.tls = ssl;
                        s.internal = !s.listen.is_empty() && s.listen.iter().all(|l| is_loopback_listen(l));
                        s.https_redirect = s.redirects_to_https;
                        s.redirects_to_https = !s.tls && !content && s.redirects_to_https;
                        s.rules = global_rules.clone();
                        s.rules.extend(access::apache_rules(&own));
                        let all: Vec<&String> = global.iter().chain(own.iter()).collect();
                        s.fastcgi = all.iter().filter_map(|l| fcgi_socket(l)).collect();
                        s.htaccess = s.roots.first().is_some_and(|r| allows_override(&all, r));
                        sites.push(s);
                    }
                }
                "servername" | "serveralias" => site.names.extend(args.iter().map(|n| n.to_ascii_lowercase())),
                "sslengine" => *ssl = args.first().is_some_and(|a| a.eq_ignore_ascii_case("on")),
                "sslcertificatefile" => site.certificate = args.first().map(|a| a.trim_matches('"').to_string()),
                "redirect" | "redirectmatch" | "rewriterule" if args.iter().any(|a| a.starts_with("https://")) => {
                    site.redirects_to_https = true;
                }
                "documentroot" => {
                    *content = true;
                    if let Some(r) = args.first() {
                        site.roots.push(r.trim_matches('"').trim_end_matches('/').to_string());
                    }
                }
                "proxypass" | "scriptalias" | "wsgiscriptalias" => *content = true,
                _ => {}
            }
        }
    }
    sites
}

/// The PHP-FPM socket of `SetHandler "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost"`.
fn fcgi_socket(line: &str) -> Option<String> {
    let l = line.trim();
    let rest = l.get(..10).filter(|k| k.eq_ignore_ascii_case("sethandler")).map(|_| &l[10..])?;
    let target = rest.trim().trim_matches('"');
    let sock = target.strip_prefix("proxy:unix:")?;
    Some(sock.split('|').next().unwrap_or(sock).to_string())
}

/// Whether the longest `<Directory>` covering `root` lets `.htaccess` files change access
/// (`AllowOverride` other than `None`; Apache 2.4's default is `None`).
fn allows_override(lines: &[&String], root: &str) -> bool {
    let mut best: Option<(usize, bool)> = None;
    let mut current: Option<String> = None;
    for l in lines {
        let mut w = l.split_whitespace();
        let key = w.next().unwrap_or("").to_ascii_lowercase();
        let arg = w.next().unwrap_or("").trim_end_matches('>').trim_matches('"').to_string();
        match key.as_str() {
            "<directory" => current = Some(arg),
            "</directory>" => current = None,
            "allowoverride" => {
                if let Some(dir) = &current {
                    let d = dir.trim_end_matches('/');
                    let covers = root == d || root.starts_with(&format!("{d}/")) || d.is_empty();
                    if covers && best.is_none_or(|(n, _)| d.len() >= n) {
                        best = Some((d.len(), !arg.eq_ignore_ascii_case("none")));
                    }
                }
            }
            _ => {}
        }
    }
    best.is_some_and(|(_, on)| on)
}

fn apache_expand(host: &Host, file: &str, depth: u8, problems: &mut Vec<(String, String)>, out: &mut Vec<String>) {
    let text = match host.read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return,
        Err(e) => {
            problems.push((file.to_string(), e.to_string()));
            return;
        }
    };
    // Continuation lines joined, comments dropped.
    let joined = text.replace("\\\n", " ");
    for line in joined.lines() {
        let l = line.trim();
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let mut w = l.split_whitespace();
        let key = w.next().unwrap_or("").to_ascii_lowercase();
        if (key == "include" || key == "includeoptional") && depth < 10 {
            if let Some(target) = w.next() {
                let target = target.trim_matches('"');
                let root = if host.exists("/etc/httpd") && !host.exists("/etc/apache2") {
                    "/etc/httpd"
                } else {
                    "/etc/apache2"
                };
                let path = if target.starts_with('/') { target.to_string() } else { format!("{root}/{target}") };
                let files = if path.contains(['*', '?']) { host.glob(&path) } else { vec![path] };
                for f in files {
                    apache_expand(host, &f, depth + 1, problems, out);
                }
            }
            continue;
        }
        out.push(l.to_string());
    }
}

/// Is `name` covered by the certificate name `pattern` (RFC 6125: a `*` is
/// one whole left-most label)?
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = p.strip_prefix("*.") {
        return match n.split_once('.') {
            Some((label, tail)) => !label.is_empty() && tail == rest,
            None => false,
        };
    }
    p == n
}

/// Names a site answers to that a certificate should cover (catch-alls,
/// regular expressions and bare `localhost` left out).
pub fn checkable_names(site: &Site) -> Vec<String> {
    site.names
        .iter()
        .filter(|n| {
            !n.is_empty()
                && *n != "_"
                && *n != "localhost"
                && !n.starts_with('~')
                && !n.starts_with('$')
                && n.contains('.')
                && n.parse::<std::net::IpAddr>().is_err()
        })
        .map(|n| n.trim_start_matches('.').to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_exactly_one_label() {
        assert!(name_matches("*.example.com", "shop.example.com"));
        assert!(name_matches("*.EXAMPLE.com", "Shop.example.com."));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "shop.example.org"));
        assert!(name_matches("example.com", "example.com"));
        assert!(!name_matches("www.example.com", "example.com"));
    }

    #[test]
    fn nginx_tokens_handle_quotes_and_comments() {
        let t = nginx_tokens("server_name \"a.example\" b; # comment { \nlisten 443 ssl;");
        assert_eq!(t, ["server_name", "a.example", "b", ";", "listen", "443", "ssl", ";"]);
    }
}
