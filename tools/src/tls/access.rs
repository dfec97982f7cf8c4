//! Which URLs a site's web server refuses to serve, from its configuration.
//!
//! A `.git/` or a dump in a document root is only a leak when a browser can
//! fetch it: a site whose nginx `location ~ /\.git { deny all; }` or Apache
//! `<DirectoryMatch "/\.git"> Require all denied` covers the path has already
//! closed it. This module keeps the rules [`super::sites`] reads (nginx
//! locations, Apache sections, `RedirectMatch`/`RewriteRule … [F]`) and
//! answers "is this path denied, and by what?" the way each server chooses:
//! nginx picks one location (exact, longest prefix, `^~`, first regex);
//! Apache merges sections, the longest `<Directory>` deciding for directories.

use regex::RegexBuilder;

use crate::host::wildcard_match;

/// One access rule of a site's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// An nginx `location [modifier] pattern { … }` at the server level.
    NginxLocation {
        /// `=`, `^~`, `~`, `~*` or empty (a prefix).
        modifier: String,
        /// The URI pattern.
        pattern: String,
        /// Whether it answers `deny all;` or `return 403/404/410/444`.
        denies: bool,
    },
    /// An Apache `<Directory>` (`regex`: `<DirectoryMatch>` / `<Directory ~>`), matched on the file's directory.
    ApacheDirectory {
        /// The path glob or regex.
        pattern: String,
        /// A regular expression rather than a glob.
        regex: bool,
        /// `Require all denied` / `Deny from all` inside.
        denies: bool,
    },
    /// An Apache `<Files>` / `<FilesMatch>`, matched on the file name.
    ApacheFiles {
        /// The name glob or regex.
        pattern: String,
        /// A regular expression rather than a glob.
        regex: bool,
        /// `Require all denied` / `Deny from all` inside.
        denies: bool,
    },
    /// An Apache `<Location>` / `<LocationMatch>`, `RedirectMatch 403|404|410` or `RewriteRule … [F]`, matched on the URL.
    ApacheUrl {
        /// The URL prefix or regex.
        pattern: String,
        /// A regular expression rather than a prefix.
        regex: bool,
        /// Whether it refuses the request.
        denies: bool,
    },
}

impl Rule {
    /// The rule as an administrator would recognise it in the configuration.
    pub fn describe(&self) -> String {
        match self {
            Rule::NginxLocation { modifier, pattern, .. } if modifier.is_empty() => format!("location {pattern}"),
            Rule::NginxLocation { modifier, pattern, .. } => format!("location {modifier} {pattern}"),
            Rule::ApacheDirectory { pattern, regex, .. } => {
                format!("<Directory{} {pattern}>", if *regex { "Match" } else { "" })
            }
            Rule::ApacheFiles { pattern, regex, .. } => {
                format!("<Files{} {pattern}>", if *regex { "Match" } else { "" })
            }
            Rule::ApacheUrl { pattern, regex, .. } => {
                format!("<Location{} {pattern}>", if *regex { "Match" } else { "" })
            }
        }
    }
}

fn compiles_and_matches(pattern: &str, text: &str, case_insensitive: bool) -> Option<bool> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .ok()
        .map(|re| re.is_match(text))
}

/// PCRE's match, as far as the `regex` crate can tell. One negative lookahead, the
/// common `location ~ /\.(?!well-known)`, is read as "matches without it, and not
/// with its text in its place"; another pattern the crate cannot compile never denies.
fn regex_matches(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    if let Some(m) = compiles_and_matches(pattern, text, case_insensitive) {
        return m;
    }
    let Some(start) = pattern.find("(?!") else { return false };
    let Some(len) = pattern[start + 3..].find(')') else { return false };
    let inner = &pattern[start + 3..start + 3 + len];
    if inner.contains('(') {
        return false;
    }
    let rest = &pattern[start + 3 + len + 1..];
    let without = format!("{}{rest}", &pattern[..start]);
    let with = format!("{}(?:{inner}){rest}", &pattern[..start]);
    compiles_and_matches(&without, text, case_insensitive) == Some(true)
        && compiles_and_matches(&with, text, case_insensitive) == Some(false)
}

/// The nginx location chosen for `uri` among `rules` (nginx's order), when one matches.
fn nginx_choice<'a>(rules: &'a [Rule], uri: &str) -> Option<&'a Rule> {
    let locs = || {
        rules.iter().filter_map(|r| match r {
            Rule::NginxLocation { modifier, pattern, .. } => Some((r, modifier.as_str(), pattern.as_str())),
            _ => None,
        })
    };
    if let Some((r, _, _)) = locs().find(|(_, m, p)| *m == "=" && *p == uri) {
        return Some(r);
    }
    let prefix =
        locs().filter(|(_, m, p)| (m.is_empty() || *m == "^~") && uri.starts_with(p)).max_by_key(|(_, _, p)| p.len());
    if let Some((r, "^~", _)) = prefix {
        return Some(r);
    }
    let regex = locs().find(|(_, m, p)| (*m == "~" || *m == "~*") && regex_matches(p, uri, *m == "~*"));
    regex.or(prefix).map(|(r, _, _)| r)
}

/// Does `<Directory pattern>` (a glob, matched component by component as a prefix) cover `dir`?
fn directory_covers(pattern: &str, dir: &str) -> Option<usize> {
    let pat: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    if pat.len() > parts.len() {
        return None;
    }
    pat.iter().zip(&parts).all(|(p, d)| wildcard_match(p, d)).then_some(pat.len())
}

/// The rule of `rules` that refuses `uri` (the URL path, `/x/y`) served from the file `file`, if any.
pub fn denied_by(rules: &[Rule], uri: &str, file: &str) -> Option<String> {
    if let Some(r @ Rule::NginxLocation { denies: true, .. }) = nginx_choice(rules, uri) {
        return Some(r.describe());
    }
    let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
    // Plain <Directory>: the longest matching one decides.
    let longest = rules
        .iter()
        .filter_map(|r| match r {
            Rule::ApacheDirectory { pattern, regex: false, denies } => {
                directory_covers(pattern, dir).map(|n| (n, *denies, r))
            }
            _ => None,
        })
        .max_by_key(|(n, _, _)| *n);
    if let Some((_, true, r)) = longest {
        return Some(r.describe());
    }
    let trimmed = uri.trim_start_matches('/');
    rules
        .iter()
        .find(|r| match r {
            Rule::ApacheDirectory { pattern, regex: true, denies: true } => regex_matches(pattern, dir, false),
            Rule::ApacheFiles { pattern, regex, denies: true } => {
                if *regex {
                    regex_matches(pattern, name, false)
                } else {
                    wildcard_match(pattern, name)
                }
            }
            Rule::ApacheUrl { pattern, regex, denies: true } => {
                if *regex {
                    regex_matches(pattern, uri, false) || regex_matches(pattern, trimmed, false)
                } else {
                    uri.starts_with(pattern.as_str())
                }
            }
            _ => false,
        })
        .map(Rule::describe)
}

/// Whether an Apache directive line refuses access (`Require all denied`, `Deny from all`).
pub fn apache_denies(line: &str) -> bool {
    let l = line.split_whitespace().map(str::to_ascii_lowercase).collect::<Vec<_>>().join(" ");
    l == "require all denied" || l == "deny from all"
}

/// The rules of an Apache configuration (a `.htaccess`, or a site's lines): sections, `RedirectMatch`
/// with a refusing status and `RewriteRule … [F]` not guarded by a `RewriteCond`.
pub fn apache_rules(lines: &[String]) -> Vec<Rule> {
    let mut out = Vec::new();
    // Open sections: (kind, pattern, regex, denies).
    let mut open: Vec<(String, String, bool, bool)> = Vec::new();
    let mut cond = false;
    for line in lines {
        let l = line.trim();
        let mut w = l.split_whitespace();
        let key = w.next().unwrap_or("").to_ascii_lowercase();
        let args: Vec<&str> = w.collect();
        if let Some(tag) = key.strip_prefix("</") {
            let tag = tag.trim_end_matches('>');
            if let Some(pos) = open.iter().rposition(|(k, ..)| k == tag) {
                let (kind, pattern, regex, denies) = open.remove(pos);
                let rule = match kind.as_str() {
                    "directory" | "directorymatch" => Rule::ApacheDirectory { pattern, regex, denies },
                    "files" | "filesmatch" => Rule::ApacheFiles { pattern, regex, denies },
                    "location" | "locationmatch" => Rule::ApacheUrl { pattern, regex, denies },
                    _ => continue,
                };
                out.push(rule);
            }
            continue;
        }
        if let Some(tag) = key.strip_prefix('<') {
            let rest = args.join(" ");
            let rest = rest.trim_end_matches('>').trim();
            let (tilde, pat) = match rest.strip_prefix('~') {
                Some(p) => (true, p.trim()),
                None => (false, rest),
            };
            let regex = tilde || tag.ends_with("match");
            open.push((tag.to_string(), pat.trim_matches('"').to_string(), regex, false));
            continue;
        }
        if apache_denies(l) {
            if let Some(last) = open.last_mut() {
                last.3 = true;
            } else {
                // At the top level of a .htaccess: the whole directory.
                out.push(Rule::ApacheUrl { pattern: "/".into(), regex: false, denies: true });
            }
            continue;
        }
        match key.as_str() {
            "rewritecond" => cond = true,
            "rewriterule" => {
                let flags = args.get(2).map(|f| f.to_ascii_uppercase()).unwrap_or_default();
                let refuses = flags.trim_matches(['[', ']']).split(',').any(|f| f == "F" || f == "G");
                if refuses && !cond {
                    if let Some(p) = args.first() {
                        out.push(Rule::ApacheUrl {
                            pattern: p.trim_matches('"').to_string(),
                            regex: true,
                            denies: true,
                        });
                    }
                }
                cond = false;
            }
            "redirectmatch" if args.len() >= 2 => {
                let status = args[0].to_ascii_lowercase();
                if matches!(status.as_str(), "403" | "404" | "410" | "gone") {
                    out.push(Rule::ApacheUrl {
                        pattern: args[1].trim_matches('"').to_string(),
                        regex: true,
                        denies: true,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(m: &str, p: &str, denies: bool) -> Rule {
        Rule::NginxLocation { modifier: m.into(), pattern: p.into(), denies }
    }

    #[test]
    fn nginx_picks_one_location_as_nginx_does() {
        let rules = vec![
            loc("", "/", false),
            loc("~", "/\\.well-known", false),
            loc("~", "/\\.", true),
            loc("~", "\\.php$", false),
            loc("^~", "/static/", false),
        ];
        assert_eq!(denied_by(&rules, "/.git/config", "/w/.git/config").as_deref(), Some("location ~ /\\."));
        assert_eq!(denied_by(&rules, "/.env", "/w/.env").as_deref(), Some("location ~ /\\."));
        // The first matching regex wins: .well-known stays public.
        assert_eq!(denied_by(&rules, "/.well-known/acme-challenge/x", "/w/x"), None);
        assert_eq!(denied_by(&rules, "/static/.env", "/w/static/.env"), None, "^~ stops the regex search");
        assert_eq!(denied_by(&rules, "/dump.sql", "/w/dump.sql"), None);
        // The hardened configs' favourite, with a lookahead PCRE has and the regex crate lacks.
        let rules = vec![loc("~", "/\\.(?!well-known).*", true)];
        assert!(denied_by(&rules, "/.git/config", "/w/.git/config").is_some());
        assert_eq!(denied_by(&rules, "/.well-known/acme-challenge/x", "/w/x"), None);
        assert_eq!(denied_by(&rules, "/index.php", "/w/index.php"), None);
    }

    #[test]
    fn apache_sections_and_the_longest_directory() {
        let lines: Vec<String> = [
            "<Directory />",
            "Require all denied",
            "</Directory>",
            "<Directory /var/www/>",
            "Require all granted",
            "</Directory>",
            "<DirectoryMatch \"/\\.git\">",
            "Require all denied",
            "</DirectoryMatch>",
            "<FilesMatch \"\\.(sql|env)$\">",
            "Deny from all",
            "</FilesMatch>",
            "RewriteCond %{REMOTE_ADDR} !^10\\.",
            "RewriteRule ^backup - [F]",
            "RedirectMatch 404 /\\.svn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let rules = apache_rules(&lines);
        assert_eq!(denied_by(&rules, "/index.html", "/var/www/html/index.html"), None);
        assert!(denied_by(&rules, "/etc/passwd", "/etc/passwd").is_some(), "outside /var/www");
        assert!(denied_by(&rules, "/.git/config", "/var/www/html/.git/config").is_some());
        assert!(denied_by(&rules, "/db.sql", "/var/www/html/db.sql").is_some());
        assert!(denied_by(&rules, "/.svn/entries", "/var/www/html/.svn/entries").is_some());
        assert_eq!(denied_by(&rules, "/backup.zip", "/var/www/html/backup.zip"), None, "guarded by a condition");
        // A .htaccess that refuses everything.
        let all = apache_rules(&["Require all denied".to_string()]);
        assert!(denied_by(&all, "/x.sql", "/d/x.sql").is_some());
    }
}
