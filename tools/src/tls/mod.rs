//! `check_tls`: does every public site speak TLS, with a certificate that is
//! valid, not about to expire, issued by someone other than itself, and made
//! out to the names the site answers to?
//!
//! Pattern 3 of `seed/seven-mistakes.txt`: the staging server that skipped
//! SSL ("no real users will see it") and became production; and the
//! certificate whose renewal silently stopped after a move. The enabled nginx
//! and Apache virtual hosts are read through their `include`s, and each
//! certificate they name is parsed with `x509-parser` (never its private key).

pub mod access;
mod sites;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use crate::finding::{Category, Finding, Severity};
use crate::format::unix_date;
use crate::host::Host;
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};
pub use sites::{Site, apache_sites, checkable_names, name_matches, nginx_sites};

/// A certificate expiring within this many days is flagged high.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct CheckTls;

/// Input of `check_tls`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsInput {
    /// Only the site answering to this host name (e.g. `shop.example.com`).
    #[serde(default)]
    pub name: Option<String>,
}

/// A parsed certificate, as facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CertFacts {
    /// The file.
    pub path: String,
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Last day of validity, `YYYY-MM-DD`.
    pub not_after: String,
    /// Days from now until it expires (negative: expired that many days ago).
    pub days_left: i64,
    /// True when the issuer is the subject itself.
    pub self_signed: bool,
    /// DNS names it is valid for (subject alternative names, else the common name).
    pub names: Vec<String>,
}

/// One site, as facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SiteFacts {
    /// `nginx` or `apache`.
    pub server: String,
    /// The configuration file.
    pub file: String,
    /// Names it answers to.
    pub names: Vec<String>,
    /// Listen addresses as configured.
    pub listen: Vec<String>,
    /// True when it serves TLS.
    pub tls: bool,
    /// True when it only redirects to HTTPS.
    pub redirects_to_https: bool,
    /// Its certificate, when it has one and it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertFacts>,
}

/// Facts of `check_tls`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TlsFacts {
    /// Web servers with configuration on the host (`nginx`, `apache`).
    pub web_servers: Vec<String>,
    /// Every virtual host.
    pub sites: Vec<SiteFacts>,
}

#[async_trait]
impl Tool for CheckTls {
    type Input = TlsInput;
    type Output = TlsFacts;

    fn name(&self) -> &'static str {
        "check_tls"
    }

    fn description(&self) -> &'static str {
        "Check the TLS of every nginx and Apache site (enabled virtual hosts, following includes): its \
         names, listen ports, whether it serves HTTPS or only redirects to it, and its certificate \
         (subject, issuer, expiry date and days left, self-signed or not, names covered). Findings: a \
         public site with no TLS, a certificate expired or expiring within 14 days, self-signed, not \
         matching the site's names, or unreadable. Give `name` to look at one site."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, input: TlsInput) -> Result<Outcome<TlsFacts>, ToolError> {
        let host = &ctx.host;
        let mut problems = Vec::new();
        let mut sites = sites::nginx_sites(host, &mut problems);
        sites.extend(sites::apache_sites(host, &mut problems));
        let mut findings: Vec<Finding> = problems
            .iter()
            .map(|(what, why)| Finding::could_not_check(Category::Hardening, "check_tls", what, why))
            .collect();
        let mut web_servers = Vec::new();
        if host.exists("/etc/nginx") {
            web_servers.push("nginx".to_string());
        }
        if host.exists("/etc/apache2") || host.exists("/etc/httpd") {
            web_servers.push("apache".to_string());
        }
        if let Some(n) = &input.name {
            let n = n.to_ascii_lowercase();
            sites.retain(|s| s.names.iter().any(|x| name_matches(x, &n) || *x == n));
        }
        if web_servers.is_empty() && input.name.is_none() {
            findings.push(
                Finding::new(
                    "hardening.no-web-server",
                    Severity::Info,
                    Category::Hardening,
                    "web server",
                    "No nginx or Apache configuration found: no site to check",
                )
                .evidence("no /etc/nginx, /etc/apache2 or /etc/httpd")
                .fix("Nothing to do, unless a web server runs from another location."),
            );
        }

        let mut certs: HashMap<String, Result<CertFacts, String>> = HashMap::new();
        let mut out = Vec::new();
        // Every name some enabled site serves over TLS, once (not a scan of all sites per site).
        let tls_names: HashSet<&str> =
            sites.iter().filter(|o| o.tls).flat_map(|o| o.names.iter().map(String::as_str)).collect();
        for site in &sites {
            let cert =
                site.certificate.as_ref().map(|p| certs.entry(p.clone()).or_insert_with(|| read_cert(host, p)).clone());
            findings.extend(judge_site(site, &tls_names, cert.as_ref()));
            out.push(SiteFacts {
                server: site.server.clone(),
                file: site.file.clone(),
                names: site.names.clone(),
                listen: site.listen.clone(),
                tls: site.tls,
                redirects_to_https: site.redirects_to_https,
                certificate: cert.and_then(Result::ok),
            });
        }
        // One finding per (id, subject): two server blocks for the same name say it once.
        let mut seen = std::collections::HashSet::new();
        findings.retain(|f| seen.insert(f.key()));
        Ok(Outcome::new(TlsFacts { web_servers, sites: out }, findings))
    }
}

fn subject_of(site: &Site) -> String {
    match checkable_names(site).first().or(site.names.first()) {
        Some(n) => format!("{}:{n}", site.server),
        None => format!("{}:{}", site.server, site.file),
    }
}

/// A listener without TLS (`80`, `[::]:80`, `*:80`), reachable from other machines.
fn plain_listener(site: &Site) -> Option<&String> {
    site.listen.iter().find(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        let addr = words.first().copied().unwrap_or("");
        let loopback = addr.starts_with("127.") || addr.starts_with("[::1]") || addr.starts_with("localhost");
        let tls = words.iter().any(|w| *w == "ssl" || *w == "quic") || addr.ends_with(":443") || addr == "443";
        !loopback && !addr.starts_with("unix:") && !tls
    })
}

/// Plain HTTP answering with content for names that have TLS: a visitor typing the bare
/// name, or an old link, gets the site (and its login form) unencrypted.
fn http_without_redirect(site: &Site, tls_names: &HashSet<&str>) -> Option<Finding> {
    let names = checkable_names(site);
    let has_tls = !names.is_empty() && names.iter().any(|n| tls_names.contains(n.as_str()));
    if site.internal || site.https_redirect || site.redirects_to_https || !has_tls {
        return None;
    }
    let listen = plain_listener(site)?;
    let (server, file) = (&site.server, &site.file);
    let fix = if server == "nginx" {
        format!(
            "In {file}, serve plain HTTP only as a redirect: a `server {{ listen 80; server_name {}; return 301 https://$host$request_uri; }}`              (keep a `location /.well-known/acme-challenge/` if certbot uses HTTP), then `nginx -t && systemctl reload nginx`.",
            names.join(" ")
        )
    } else {
        format!(
            "In the <VirtualHost {listen}> of {file}, replace the content with `Redirect permanent / https://{}/`, then `apache2ctl configtest && systemctl reload apache2`.",
            names[0]
        )
    };
    Some(
        Finding::new(
            "hardening.http-no-redirect",
            Severity::Medium,
            Category::Hardening,
            format!("{server}:{}:http", names[0]),
            format!("{} has TLS but plain HTTP still serves the site instead of redirecting", names.join(", ")),
        )
        .evidence(format!("{server} {file}: listen {listen} without TLS, and no redirect to https://"))
        .evidence("a visitor on plain HTTP sends cookies and passwords unencrypted; nothing sends them to HTTPS")
        .fix(fix),
    )
}

fn judge_site(site: &Site, tls_names: &HashSet<&str>, cert: Option<&Result<CertFacts, String>>) -> Vec<Finding> {
    let mut out = Vec::new();
    let subject = subject_of(site);
    let names = checkable_names(site);
    out.extend(http_without_redirect(site, tls_names));
    if !site.tls {
        // A plain-HTTP site is fine when it only redirects, or when another block serves its names over TLS.
        let covered = !names.is_empty() && names.iter().all(|n| tls_names.contains(n.as_str()));
        if !site.internal && !site.redirects_to_https && !covered && !names.is_empty() {
            out.push(
                Finding::new(
                    "hardening.no-tls",
                    Severity::Medium,
                    Category::Hardening,
                    subject.clone(),
                    format!("{} is served over plain HTTP only", names.join(", ")),
                )
                .evidence(format!("{} {}: listen {}", site.server, site.file, site.listen.join(", ")))
                .evidence("no TLS listener for these names in any enabled site")
                .fix(format!(
                    "Get a certificate and redirect HTTP to HTTPS, e.g. `certbot --{} -d {}`.",
                    site.server,
                    names.join(" -d ")
                )),
            );
        }
        return out;
    }
    let Some(path) = &site.certificate else {
        return out;
    };
    let c = match cert {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            out.push(Finding::could_not_check(Category::Hardening, "check_tls", &format!("certificate {path}"), e));
            return out;
        }
        None => return out,
    };
    let ev = format!(
        "{} {}: certificate {} (subject {}, issuer {}, valid until {})",
        site.server, site.file, c.path, c.subject, c.issuer, c.not_after
    );
    if c.days_left < 0 {
        out.push(
            Finding::new(
                "hardening.cert-expired",
                Severity::Critical,
                Category::Hardening,
                subject.clone(),
                format!("The certificate of {} expired {} days ago ({})", names.join(", "), -c.days_left, c.not_after),
            )
            .evidence(ev.clone())
            .fix("Renew it (`certbot renew`, then reload the web server) and make sure renewal runs on a timer."),
        );
    } else if c.days_left <= EXPIRY_WARNING_DAYS {
        out.push(
            Finding::new(
                "hardening.cert-expiring",
                Severity::High,
                Category::Hardening,
                subject.clone(),
                format!("The certificate of {} expires in {} days ({})", names.join(", "), c.days_left, c.not_after),
            )
            .evidence(ev.clone())
            .fix("Renew it now (`certbot renew --dry-run` shows whether automatic renewal works)."),
        );
    }
    if c.self_signed {
        out.push(
            Finding::new(
                "hardening.cert-self-signed",
                Severity::Medium,
                Category::Hardening,
                subject.clone(),
                format!("{} serves a self-signed certificate", names.join(", ").if_empty(&site.file)),
            )
            .evidence(ev.clone())
            .fix("Replace it with a certificate from a public CA, e.g. `certbot --nginx -d NAME` (Let's Encrypt)."),
        );
    }
    let uncovered: Vec<&String> = names.iter().filter(|n| !c.names.iter().any(|p| name_matches(p, n))).collect();
    if !uncovered.is_empty() {
        out.push(
            Finding::new(
                "hardening.cert-name-mismatch",
                Severity::High,
                Category::Hardening,
                subject.clone(),
                format!(
                    "The certificate of {} does not cover {}",
                    site.file,
                    uncovered.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .evidence(ev)
            .evidence(format!("certificate names: {}", c.names.join(", ").if_empty("(none)")))
            .fix("Issue a certificate for every name the site answers to, or drop the names it should not serve."),
        );
    }
    out
}

trait IfEmpty {
    fn if_empty(&self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(&self, other: &str) -> String {
        if self.is_empty() { other.to_string() } else { self.clone() }
    }
}

/// Read and parse the first certificate of a PEM (or DER) file.
pub fn read_cert(host: &Host, path: &str) -> Result<CertFacts, String> {
    let bytes = host.read(path).map_err(|e| e.to_string())?;
    parse_cert(&bytes, path, host.now_unix())
}

/// Parse the leaf (first) certificate of PEM or DER bytes, as seen at `now`.
pub fn parse_cert(bytes: &[u8], path: &str, now: i64) -> Result<CertFacts, String> {
    let der: Vec<u8> = if bytes.starts_with(b"-----BEGIN") || bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let pem = Pem::iter_from_buffer(bytes)
            .filter_map(Result::ok)
            .find(|p| p.label == "CERTIFICATE" || p.label == "TRUSTED CERTIFICATE")
            .ok_or_else(|| format!("{path}: no PEM certificate in the file"))?;
        pem.contents
    } else {
        bytes.to_vec()
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| format!("{path}: not a valid X.509 certificate: {e}"))?;
    let not_after = cert.validity().not_after.timestamp();
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for g in &san.value.general_names {
            if let GeneralName::DNSName(d) = g {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        names =
            cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_ascii_lowercase).collect();
    }
    let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
    let days_left = (not_after - now).div_euclid(86_400);
    let date = unix_date(not_after);
    Ok(CertFacts {
        path: path.to_string(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: date,
        days_left,
        self_signed,
        names,
    })
}

#[cfg(test)]
mod tests;
