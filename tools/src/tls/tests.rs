use super::*;
use crate::testutil::{FIXTURE_NOW, fixture, fixture_ctx, fixture_path};
use std::time::{Duration, SystemTime};

fn ids(findings: &[Finding]) -> Vec<(&str, &str, Severity)> {
    findings.iter().map(|f| (f.id.as_str(), f.subject.as_str(), f.severity)).collect()
}

#[tokio::test]
async fn the_staging_box_sites_are_caught() {
    let out = CheckTls.run(&fixture_ctx("web1"), TlsInput::default()).await.unwrap();
    let found = ids(&out.findings);
    assert!(found.contains(&("hardening.no-tls", "nginx:shop.example.com", Severity::Medium)), "{found:?}");
    assert!(found.contains(&("hardening.cert-expired", "nginx:blog.example.com", Severity::Critical)), "{found:?}");
    assert!(
        found.contains(&("hardening.cert-self-signed", "nginx:staging.example.com", Severity::Medium)),
        "{found:?}"
    );
    assert!(
        found.contains(&("hardening.cert-name-mismatch", "nginx:staging.example.com", Severity::High)),
        "{found:?}"
    );
    // The blog's port-80 block only redirects: not a "no TLS" site. Its valid-name cert is not a mismatch.
    assert!(!found.contains(&("hardening.no-tls", "nginx:blog.example.com", Severity::Medium)), "{found:?}");
    assert!(!found.iter().any(|(i, s, _)| *i == "hardening.cert-name-mismatch" && *s == "nginx:blog.example.com"));
    assert!(!found.iter().any(|(i, _, _)| i.ends_with("check-failed")), "{found:?}");
    assert_eq!(out.findings.len(), 4, "{found:?}");

    let expired = out.findings.iter().find(|f| f.id == "hardening.cert-expired").unwrap();
    assert!(expired.title.contains("57 days ago (2026-10-01)"), "{}", expired.title);
    assert!(
        expired.evidence[0].contains("/etc/letsencrypt/live/blog.example.com/fullchain.pem"),
        "{:?}",
        expired.evidence
    );

    let blog = out.facts.sites.iter().find(|s| s.tls && s.names == ["blog.example.com"]).unwrap();
    let c = blog.certificate.as_ref().unwrap();
    assert_eq!((c.not_after.as_str(), c.days_left, c.self_signed), ("2026-10-01", -57, false));
    assert_eq!(c.subject, "CN=blog.example.com");
    assert!(c.issuer.contains("Vigil Fixture CA"), "{}", c.issuer);
    assert_eq!(c.names, ["blog.example.com", "www.blog.example.com"]);
    // The staging certificate comes through two levels of include.
    let staging = out.facts.sites.iter().find(|s| s.names == ["staging.example.com"]).unwrap();
    assert_eq!(staging.certificate.as_ref().unwrap().names, ["localhost"]);
    let shop = out.facts.sites.iter().find(|s| s.names.contains(&"shop.example.com".to_string())).unwrap();
    assert!(!shop.tls && !shop.redirects_to_https);
    assert_eq!(out.facts.web_servers, ["nginx"]);
}

#[tokio::test]
async fn the_clean_host_is_quiet() {
    let out = CheckTls.run(&fixture_ctx("clean"), TlsInput::default()).await.unwrap();
    assert!(out.findings.iter().all(|f| f.severity == Severity::Info), "{:?}", ids(&out.findings));
    let tls = out.facts.sites.iter().find(|s| s.tls).unwrap();
    let c = tls.certificate.as_ref().unwrap();
    assert_eq!(c.not_after, "2036-09-01");
    assert!(c.days_left > 3000);
    assert!(out.facts.sites.iter().any(|s| s.names == ["_"]), "the catch-all is listed");
}

#[tokio::test]
async fn a_certificate_about_to_expire_is_high() {
    // The clean host, five days before its certificate runs out.
    let not_after = 2_103_840_000u64; // 2036-09-01T00:00:00Z
    let host =
        Host::at(fixture_path("clean")).with_now(SystemTime::UNIX_EPOCH + Duration::from_secs(not_after - 5 * 86_400));
    let out = CheckTls.run(&Ctx::new(host), TlsInput::default()).await.unwrap();
    assert_eq!(ids(&out.findings), [("hardening.cert-expiring", "nginx:example.org", Severity::High)]);
    assert!(out.findings[0].title.contains("expires in 5 days"), "{}", out.findings[0].title);
    assert!(FIXTURE_NOW < not_after);
}

#[tokio::test]
async fn apache_vhosts_are_read_too() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/apache2/sites-enabled")).unwrap();
    std::fs::create_dir_all(r.join("etc/ssl/certs")).unwrap();
    std::fs::copy(
        fixture_path("clean").join("etc/letsencrypt/archive/example.org/fullchain1.pem"),
        r.join("etc/ssl/certs/example.org.pem"),
    )
    .unwrap();
    std::fs::write(
        r.join("etc/apache2/sites-enabled/example.org.conf"),
        "<VirtualHost *:80>\n  ServerName example.org\n  ServerAlias www.example.org\n  Redirect permanent / https://example.org/\n</VirtualHost>\n\
         <IfModule mod_ssl.c>\n<VirtualHost *:443>\n  ServerName example.org\n  ServerAlias www.example.org shop.example.org\n\
         DocumentRoot /var/www/example\n  SSLEngine on\n  Include /etc/apache2/ssl-example.conf\n</VirtualHost>\n</IfModule>\n\
         <VirtualHost *:80>\n  ServerName intranet.example.org\n  DocumentRoot /var/www/intranet\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:8080>\n  ServerName status.example.org\n  DocumentRoot /var/www/status\n</VirtualHost>\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/apache2/ssl-example.conf"), "SSLCertificateFile \"/etc/ssl/certs/example.org.pem\"\n")
        .unwrap();
    let ctx = Ctx::new(Host::at(r).with_now(fixture("clean").now()));
    let out = CheckTls.run(&ctx, TlsInput::default()).await.unwrap();
    let found = ids(&out.findings);
    assert_eq!(out.facts.sites.len(), 4);
    assert!(found.contains(&("hardening.cert-name-mismatch", "apache:example.org", Severity::High)), "{found:?}");
    let mm = out.findings.iter().find(|f| f.id == "hardening.cert-name-mismatch").unwrap();
    assert!(mm.title.ends_with("does not cover shop.example.org"), "{}", mm.title);
    assert!(found.contains(&("hardening.no-tls", "apache:intranet.example.org", Severity::Medium)), "{found:?}");
    assert!(!found.iter().any(|(_, s, _)| s.contains("status.")), "loopback-only vhost: {found:?}");
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(out.facts.web_servers, ["apache"]);

    // `name` narrows to one site.
    let out = CheckTls.run(&ctx, TlsInput { name: Some("intranet.example.org".into()) }).await.unwrap();
    assert_eq!(out.facts.sites.len(), 1);
}

#[tokio::test]
async fn unreadable_certificates_and_no_web_server() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/nginx/conf.d")).unwrap();
    std::fs::create_dir_all(r.join("etc/ssl")).unwrap();
    std::fs::write(
        r.join("etc/ssl/garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        r.join("etc/nginx/conf.d/a.conf"),
        "server { listen 443 ssl; server_name a.example.com; ssl_certificate /etc/ssl/garbage.pem; }\n\
         server { listen 443 ssl; server_name b.example.com; ssl_certificate /etc/ssl/missing.pem; }\n",
    )
    .unwrap();
    let out = CheckTls.run(&Ctx::new(Host::at(r)), TlsInput::default()).await.unwrap();
    let failed: Vec<&Finding> = out.findings.iter().filter(|f| f.id == "hardening.check-failed").collect();
    assert_eq!(failed.len(), 2, "{:?}", ids(&out.findings));
    assert!(failed.iter().all(|f| f.severity == Severity::High));
    assert!(failed.iter().any(|f| f.subject.contains("/etc/ssl/missing.pem")));

    let empty = tempfile::tempdir().unwrap();
    let out = CheckTls.run(&Ctx::new(Host::at(empty.path())), TlsInput::default()).await.unwrap();
    assert_eq!(ids(&out.findings), [("hardening.no-web-server", "web server", Severity::Info)]);
}

#[tokio::test]
async fn the_registry_runs_it_read_only() {
    let reg = crate::registry::Registry::builtin();
    assert_eq!(reg.effect("check_tls"), Effect::ReadOnly);
    let out =
        reg.call(&fixture_ctx("web1"), "check_tls", serde_json::json!({"name": "blog.example.com"})).await.unwrap();
    assert_eq!(out.facts["sites"].as_array().unwrap().len(), 2);
    assert!(!out.to_value().to_string().contains("PRIVATE KEY"));
    assert!(reg.call(&fixture_ctx("web1"), "check_tls", serde_json::json!({"path": "/etc/ssl"})).await.is_err());
}

#[tokio::test]
async fn plain_http_next_to_tls_must_redirect() {
    let t = tempfile::tempdir().unwrap();
    let w = |p: &str, s: &str| {
        let p = t.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    // One block on 80 and 443 serving content: plain HTTP serves the site.
    w(
        "etc/nginx/sites-enabled/both",
        "server { listen 80; listen 443 ssl; server_name both.test; root /var/www/both; }\n",
    );
    // A block that redirects only when the scheme is http: fine.
    w(
        "etc/nginx/sites-enabled/iffed",
        "server { listen 80; listen 443 ssl; server_name iffed.test; root /var/www/iffed;\n\
         if ($scheme = http) { return 301 https://$host$request_uri; } }\n",
    );
    // Apache: a *:80 vhost with content for a name a *:443 vhost serves with TLS.
    w(
        "etc/apache2/sites-enabled/app.conf",
        "<VirtualHost *:80>\n ServerName app.test\n DocumentRoot /var/www/app\n</VirtualHost>\n\
         <VirtualHost *:443>\n ServerName app.test\n DocumentRoot /var/www/app\n SSLEngine on\n</VirtualHost>\n\
         <VirtualHost *:80>\n ServerName ok.test\n Redirect permanent / https://ok.test/\n</VirtualHost>\n\
         <VirtualHost *:443>\n ServerName ok.test\n DocumentRoot /var/www/ok\n SSLEngine on\n</VirtualHost>\n",
    );
    let out = CheckTls.run(&Ctx::new(Host::at(t.path())), TlsInput::default()).await.unwrap();
    let found: Vec<&str> =
        out.findings.iter().filter(|f| f.id == "hardening.http-no-redirect").map(|f| f.subject.as_str()).collect();
    assert_eq!(found, ["nginx:both.test:http", "apache:app.test:http"], "{:?}", out.findings);
    let apache = out.findings.iter().find(|f| f.subject == "apache:app.test:http").unwrap();
    assert!(apache.remediation.contains("Redirect permanent / https://app.test/"), "{}", apache.remediation);
    // The sites' document roots are known to the checks that walk them.
    let mut problems = Vec::new();
    let sites = apache_sites(&Host::at(t.path()), &mut problems);
    assert_eq!(sites[0].roots, ["/var/www/app"]);
    let sites = nginx_sites(&Host::at(t.path()), &mut problems);
    assert!(sites.iter().any(|s| s.roots == ["/var/www/both"]));
}
