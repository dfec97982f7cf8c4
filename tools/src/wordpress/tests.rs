use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;
use crate::config::Config;
use crate::testutil::{fixture, fixture_ctx, fixture_path};

fn sample_feed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wordfence/feed-sample.json")
}

/// Git keeps no permission bits but the executable one: give the fixtures the modes they describe.
fn set_modes() {
    let web1 = fixture_path("web1");
    for p in ["var/www/shop/wp-config.php", "home/client2/public_html/wp-config.php", "srv/www/client3/db-config.php"] {
        let _ = std::fs::set_permissions(web1.join(p), std::fs::Permissions::from_mode(0o644));
    }
    let _ = std::fs::set_permissions(
        web1.join("etc/wordpress/config-blog.example.com.php"),
        std::fs::Permissions::from_mode(0o640),
    );
    let _ = std::fs::set_permissions(
        fixture_path("clean").join("var/www/example.org/wp-config.php"),
        std::fs::Permissions::from_mode(0o640),
    );
}

fn with_feed(mut ctx: Ctx) -> Ctx {
    let mut cfg = (*ctx.config).clone();
    cfg.wordpress.vuln_feed = Some(sample_feed());
    ctx.config = std::sync::Arc::new(cfg);
    ctx
}

fn has(out: &Outcome<WordpressFacts>, id: &str, subject: &str) -> bool {
    out.findings.iter().any(|f| f.id == id && f.subject == subject)
}

fn ids(out: &Outcome<WordpressFacts>) -> Vec<(String, String, Severity)> {
    out.findings.iter().map(|f| (f.id.clone(), f.subject.clone(), f.severity)).collect()
}

#[test]
fn discovery_finds_every_layout() {
    let ctx = fixture_ctx("web1");
    let d = discover(&ctx);
    let paths: Vec<String> = d.sites.iter().map(Site::subject).collect();
    assert_eq!(
        paths,
        vec![
            "/home/client2/public_html",
            "/srv/www/client3/public",
            "/usr/share/wordpress [blog.example.com]",
            "/var/www/shop",
        ]
    );
    let shop = d.sites.iter().find(|s| s.path == "/var/www/shop").unwrap();
    assert_eq!(shop.core_version.as_deref(), Some("6.4.1"));
    assert_eq!(shop.host.as_deref(), Some("shop.example.com"));
    let plugins: Vec<String> = shop.plugins.iter().map(Component::short).collect();
    // akismet has no Version header: readme.txt's Stable tag; hello.php is a single-file plugin.
    assert_eq!(plugins, vec!["akismet@5.3", "contact-form-7@5.8", "hello@1.7.2", "woocommerce@8.0.2"]);
    assert_eq!(shop.mu_plugins[0].short(), "object-cache-helper@1.2");
    let themes: Vec<String> = shop.themes.iter().map(Component::short).collect();
    assert_eq!(themes, vec!["storefront@4.5.3", "twentytwentyfour@1.0"]);
    assert_eq!(shop.db.name.as_deref(), Some("shop"));
    assert_eq!(shop.db.table_prefix.as_deref(), Some("wp_"));

    // wp-config.php one level above the docroot, the password in a file it includes.
    let c3 = d.sites.iter().find(|s| s.path == "/srv/www/client3/public").unwrap();
    assert_eq!(c3.config_path.as_deref(), Some("/srv/www/client3/wp-config.php"));
    assert_eq!(c3.password_file.as_deref(), Some("/srv/www/client3/db-config.php"));
    assert_eq!(c3.db.user.as_deref(), Some("root"));

    // Debian: the host config's values win over the packaged defaults.
    let deb = d.sites.iter().find(|s| s.debian).unwrap();
    assert_eq!(deb.host.as_deref(), Some("blog.example.com"));
    assert_eq!(deb.core_version.as_deref(), Some("6.1.9"));
    assert_eq!(deb.db.user.as_deref(), Some("blog"));
    assert_eq!(deb.db.table_prefix.as_deref(), Some("wp_"));
    assert_eq!(deb.content_dir, "/var/lib/wordpress/wp-content");
    assert_eq!(deb.plugins.iter().map(Component::short).collect::<Vec<_>>(), vec!["akismet@5.0.2"]);
    assert_eq!(d.db_tools, vec!["/var/www/shop/adminer.php"]);

    // Nothing about the password in Debug or JSON.
    let dbg = format!("{:?}", d.sites);
    let json = serde_json::to_string(&d.sites).unwrap();
    for secret in ["Client1-2024!", "Client2-2024!", "vN4#tQ8"] {
        assert!(!dbg.contains(secret) && !json.contains(secret), "{secret} leaked");
    }
    assert_eq!(discover_sites(&ctx).len(), 4);
}

#[test]
fn feed_sample_parses_and_matches_like_wordpress() {
    let idx = FeedIndex::load(&sample_feed()).unwrap();
    assert_eq!(idx.stats.records, 7);
    assert_eq!(idx.stats.core, 1);
    let slugs = feed::slugs(&idx);
    assert!(!slugs.contains_key("plugin:akismet"), "informational records are not vulnerabilities: {slugs:?}");
    assert!(!slugs.contains_key("plugin:some-plugin"), "a record without ranges matches nothing");
    let hits = idx.lookup(Kind::Plugin, "woocommerce", "8.0.2");
    assert_eq!(hits.len(), 2);
    // 8.1 is 8.1.0: inside "* - 8.1.0" inclusive; 8.1.1 is not.
    assert_eq!(idx.lookup(Kind::Plugin, "woocommerce", "8.1").len(), 1);
    assert!(idx.lookup(Kind::Plugin, "woocommerce", "8.1.1").is_empty());
    assert!(idx.lookup(Kind::Plugin, "woocommerce", "8.9.3").is_empty());
    // Exclusive upper bound.
    assert_eq!(idx.lookup(Kind::Plugin, "woocommerce", "8.0.4").len(), 1);
    assert_eq!(idx.lookup(Kind::Core, "wordpress", "6.4.1")[0].fixed_in, Some("6.4.2"));
    assert!(idx.lookup(Kind::Core, "wordpress", "6.4-RC1").is_empty(), "6.4-RC1 < 6.4.0");
    assert_eq!(idx.lookup(Kind::Core, "wordpress", "6.4").len(), 1, "6.4 = 6.4.0");
    assert_eq!(validate_feed(&sample_feed()).unwrap().records, 7);
}

#[test]
fn bad_feeds_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.json");
    std::fs::write(&p, "<html>rate limited</html>").unwrap();
    let e = validate_feed(&p).unwrap_err().to_string();
    assert!(e.contains("not a Wordfence Intelligence feed"), "{e}");
    std::fs::write(&p, "{}").unwrap();
    assert!(validate_feed(&p).unwrap_err().to_string().contains("no records"));
    std::fs::write(&p, r#"{"a": {"title": "x"}, "b": {"title": "y"}}"#).unwrap();
    assert!(validate_feed(&p).unwrap_err().to_string().contains("none names affected software"));
    std::fs::write(&p, r#"{"a": {"software": [{"type": "plugin", "slug": "x", "affected_versions": {"*": {"#).unwrap();
    assert!(validate_feed(&p).is_err(), "truncated download");
    assert!(validate_feed(&dir.path().join("absent.json")).unwrap_err().to_string().contains("absent.json"));
    // The generated benchmark feed has the real shape.
    std::fs::write(&p, feed::generate_feed(50, 10, 100_000)).unwrap();
    let s = validate_feed(&p).unwrap();
    assert_eq!((s.records, s.plugins), (50, 10));
    assert!(std::fs::metadata(&p).unwrap().len() > 90_000);
}

#[tokio::test]
async fn web1_problems_are_caught() {
    set_modes();
    let ctx = with_feed(fixture_ctx("web1"));
    let out = WordpressInventory.run(&ctx, WpInput::default()).await.unwrap();
    let got = ids(&out);
    let c2 = "/home/client2/public_html";
    let c3 = "/srv/www/client3/public";
    let shop = "/var/www/shop";
    // Known vulnerabilities: WooCommerce 8.0.2 (two records) and 8.1 (= 8.1.0), core 6.4.1; CF7 5.8 is past its range.
    let woo = out.findings.iter().find(|f| f.subject == format!("{shop} plugin:woocommerce")).unwrap();
    assert_eq!(woo.id, "updates.vulnerable-plugin");
    assert_eq!(woo.severity, Severity::High);
    assert!(woo.remediation.contains("to 8.1.1 or later"), "{}", woo.remediation);
    assert!(woo.evidence.iter().any(|e| e.contains("CVE-2023-47777")), "{:?}", woo.evidence);
    assert!(has(&out, "updates.vulnerable-plugin", &format!("{c3} plugin:woocommerce")), "{got:?}");
    assert!(has(&out, "updates.vulnerable-core", shop), "{got:?}");
    assert!(!got.iter().any(|(_, s, _)| s.contains("contact-form-7")), "CF7 5.8 is not affected: {got:?}");
    assert!(!got.iter().any(|(_, s, _)| s.contains("akismet")), "{got:?}");

    // Credentials.
    for s in [shop, c2, c3] {
        assert!(has(&out, "credentials.weak-db-password", s), "{s}: {got:?}");
    }
    assert!(has(&out, "credentials.reused-db-password", &format!("{c2}, {c3}")), "{got:?}");
    let pat = out.findings.iter().find(|f| f.id == "credentials.password-pattern").unwrap();
    assert_eq!(pat.subject, format!("{c2}, {c3}, {shop}"));
    assert!(
        pat.evidence.iter().any(|e| e.contains("a word, digits, a symbol, a year, a symbol")),
        "{:?}",
        pat.evidence
    );
    assert!(has(&out, "credentials.db-root-user", c3), "{got:?}");
    assert!(has(&out, "credentials.default-salts", c3), "{got:?}");
    assert!(!has(&out, "credentials.default-salts", shop));
    assert!(
        !got.iter().any(|(id, s, _)| id.starts_with("credentials.") && s.contains("blog.example.com")),
        "the Debian site's password is strong: {got:?}"
    );

    // Hardening.
    assert!(has(&out, "hardening.wp-debug-display", c2), "{got:?}");
    assert!(!has(&out, "hardening.wp-debug-display", shop));
    assert!(has(&out, "hardening.debug-log-public", &format!("{c2}/wp-content/debug.log")), "{got:?}");
    assert!(has(&out, "hardening.php-display-errors", "/etc/php/8.2/fpm/pool.d/client2.conf"), "{got:?}");
    assert!(!has(&out, "hardening.php-display-errors", "/etc/php/8.2/fpm/php.ini"));
    assert!(!has(&out, "hardening.php-display-errors", "/etc/php/8.2/fpm/pool.d/www.conf"), "commented out");
    assert!(has(&out, "hardening.file-edit-allowed", c2), "{got:?}");
    assert!(!has(&out, "hardening.file-edit-allowed", shop));
    assert!(has(&out, "hardening.config-readable", &format!("{shop}/wp-config.php")), "{got:?}");
    assert!(has(&out, "hardening.config-readable", "/srv/www/client3/db-config.php"), "{got:?}");
    assert!(!got.iter().any(|(id, s, _)| id == "hardening.config-readable" && s.contains("/etc/wordpress")));
    assert!(has(&out, "hardening.db-tool-in-webroot", &format!("{shop}/adminer.php")), "{got:?}");
    assert!(has(&out, "hardening.phpinfo-exposed", &format!("{c3}/info.php")), "{got:?}");
    assert!(!got.iter().any(|(_, s, _)| s.ends_with("wp-config-sample.php") || s.ends_with("install.php")));

    // Integrity.
    let up = out.findings.iter().find(|f| f.id == "hardening.php-in-uploads").unwrap();
    assert_eq!((up.subject.as_str(), up.severity), (c2, Severity::Critical));
    assert_eq!(up.evidence[0], format!("{c2}/wp-content/uploads/2024/11/wp-cache.php"));
    assert!(!up.evidence.iter().any(|e| e.ends_with("uploads/index.php")), "the silence stub is fine");
    let core = out.findings.iter().find(|f| f.id == "hardening.core-modified").unwrap();
    assert_eq!(core.evidence[1..], ["modified: /usr/share/wordpress/wp-includes/load.php".to_string()]);

    // Facts: compact, with flags, never a secret.
    let shop_facts = out.facts.sites.iter().find(|s| s.site == shop).unwrap();
    assert!(shop_facts.plugins.contains(&"woocommerce@8.0.2".to_string()));
    assert!(shop_facts.plugins.contains(&"mu:object-cache-helper@1.2".to_string()));
    assert!(shop_facts.flags.contains(&"vulnerable-plugin".to_string()), "{:?}", shop_facts.flags);
    assert!(shop_facts.flags.contains(&"password-pattern".to_string()), "{:?}", shop_facts.flags);
    assert!(shop_facts.flags.contains(&"db-tool-in-webroot".to_string()), "{:?}", shop_facts.flags);
    assert_eq!(out.facts.feed.as_ref().unwrap().stats.records, 7);
    let text = serde_json::to_string(&out.findings).unwrap() + &serde_json::to_string(&out.facts).unwrap();
    for secret in ["Client1", "Client2-2024", "vN4#tQ8", "k3#Vd]n9", "put your unique phrase"] {
        assert!(!text.contains(secret), "{secret} appears in the output");
    }
}

#[tokio::test]
async fn clean_host_reports_nothing_above_info() {
    set_modes();
    let ctx = with_feed(Ctx::new(fixture("clean")));
    let out = WordpressInventory.run(&ctx, WpInput::default()).await.unwrap();
    let loud: Vec<_> = out.findings.iter().filter(|f| f.severity > Severity::Info).collect();
    assert!(loud.is_empty(), "{loud:#?}");
    assert_eq!(out.facts.sites.len(), 1);
    assert_eq!(out.facts.sites[0].core.as_deref(), Some("6.6.2"));
    assert_eq!(out.facts.sites[0].plugins, vec!["contact-form-7@5.9.8", "woocommerce@8.9.3"]);
}

#[tokio::test]
async fn without_a_feed_one_info_finding_says_how_to_get_one() {
    set_modes();
    let out = WordpressInventory.run(&Ctx::new(fixture("clean")), WpInput::default()).await.unwrap();
    let f: Vec<_> = out.findings.iter().filter(|f| f.id == "updates.no-vuln-feed").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Info);
    assert!(f[0].remediation.contains("vigil vulndb update"));
    // A feed in the state directory is picked up without configuration.
    let state = tempfile::tempdir().unwrap();
    std::fs::copy(sample_feed(), state.path().join(feed::FEED_FILE)).unwrap();
    let ctx = Ctx::new(fixture("web1")).with_state_dir(state.path());
    let out = WordpressInventory.run(&ctx, WpInput::default()).await.unwrap();
    assert!(out.findings.iter().any(|f| f.id == "updates.vulnerable-plugin"));
    // A configured feed that is missing is a check that could not run, not silence.
    let cfg =
        Config::parse("[wordpress]\nvuln_feed = \"/nonexistent/feed.json\"\n", std::path::Path::new("c")).unwrap();
    let out = WordpressInventory.run(&Ctx::new(fixture("clean")).with_config(cfg), WpInput::default()).await.unwrap();
    assert!(out.findings.iter().any(|f| f.id == "updates.check-failed" && f.severity == Severity::High));
}

#[tokio::test]
async fn site_filter_and_registry_redaction() {
    set_modes();
    let reg = crate::registry::Registry::builtin();
    let ctx = with_feed(fixture_ctx("web1"));
    let out = reg.call(&ctx, "wordpress_inventory", serde_json::json!({"site": "client2"})).await.unwrap();
    let sites = out.facts["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 1);
    assert!(out.findings.iter().all(|f| f.subject.contains("client2")), "{:?}", out.findings);
    assert!(out.findings.iter().any(|f| f.id == "credentials.reused-db-password"), "cross-site judgement kept");
    assert!(reg.call(&ctx, "wordpress_inventory", serde_json::json!({"path": "/etc"})).await.is_err());
    assert_eq!(reg.effect("wordpress_inventory"), Effect::ReadOnly);
}

#[test]
fn walk_is_bounded_and_skips_bulk_directories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A site hidden in uploads or node_modules is not a site; one nested 6 levels deep is past the bound.
    for p in [
        "var/www/a/wp-content/uploads/x/wp-includes",
        "var/www/b/node_modules/y/wp-includes",
        "var/www/1/2/3/4/5/6/wp-includes",
        "var/www/ok/blog/wp-includes",
    ] {
        std::fs::create_dir_all(root.join(p)).unwrap();
        std::fs::write(root.join(p).join("version.php"), "<?php $wp_version = '6.6';").unwrap();
    }
    std::fs::create_dir_all(root.join("var/www/a/wp-includes")).unwrap();
    std::fs::write(root.join("var/www/a/wp-includes/version.php"), "<?php $wp_version = '6.5';").unwrap();
    // A symlink loop does not hang the walk.
    std::os::unix::fs::symlink(root.join("var/www"), root.join("var/www/ok/loop")).unwrap();
    let d = discover(&Ctx::new(crate::host::Host::at(root)));
    let paths: Vec<&str> = d.sites.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, vec!["/var/www/a", "/var/www/ok/blog"]);
    let out = inventory(&Ctx::new(crate::host::Host::at(root)));
    assert!(out.findings.iter().any(|f| f.id == "hardening.wp-not-configured" && f.subject == "/var/www/a"));
}

/// In an audited image, a site directory that is an absolute symlink (`/var/www/blog ->
/// /srv/real/blog`) is the image's directory, found and read there; a FIFO planted as a
/// plugin's main file or as a file `wp-config.php` includes is never opened (the walk does
/// not hang) and is named as not read.
#[test]
fn discovery_resolves_in_the_root_and_names_fifos_it_did_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let real = root.join("srv/real/blog");
    std::fs::create_dir_all(real.join("wp-includes")).unwrap();
    std::fs::create_dir_all(real.join("wp-content/plugins/akismet")).unwrap();
    std::fs::write(real.join("wp-includes/version.php"), "<?php $wp_version = '6.5.2';\n").unwrap();
    std::fs::write(
        real.join("wp-config.php"),
        "<?php define('DB_NAME','blogdb');\nrequire __DIR__ . '/inc.php';\ndefine('DB_USER','blog');\n",
    )
    .unwrap();
    std::fs::write(real.join("wp-content/plugins/hello.php"), "<?php\n/*\nPlugin Name: Hello\nVersion: 1.7\n*/\n")
        .unwrap();
    for fifo in [real.join("inc.php"), real.join("wp-content/plugins/akismet/akismet.php")] {
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", fifo.display());
    }
    std::fs::create_dir_all(root.join("var/www")).unwrap();
    // Absolute, as written inside the image: on this machine /srv/real/blog does not exist.
    std::os::unix::fs::symlink("/srv/real/blog", root.join("var/www/blog")).unwrap();
    assert!(!std::path::Path::new("/srv/real/blog").exists());

    let ctx = Ctx::new(crate::host::Host::at(root));
    let d = discover(&ctx);
    let s = d.sites.iter().find(|s| s.path == "/var/www/blog").unwrap_or_else(|| panic!("{:?}", d.sites));
    assert_eq!(s.core_version.as_deref(), Some("6.5.2"));
    assert_eq!(s.config_files, vec!["/var/www/blog/wp-config.php".to_string()], "the FIFO include is not read");
    assert_eq!((s.db.name.as_deref(), s.db.user.as_deref()), (Some("blogdb"), Some("blog")));
    let plugins: Vec<String> = s.plugins.iter().map(|p| p.short()).collect();
    assert_eq!(plugins, vec!["hello@1.7"], "the FIFO plugin has no header to read");
    let skipped = ctx.host.skipped();
    for p in ["/var/www/blog/inc.php", "/var/www/blog/wp-content/plugins/akismet/akismet.php"] {
        assert!(skipped.iter().any(|l| l.starts_with(p) && l.contains("FIFO")), "{p} not named: {skipped:?}");
    }
}

/// A site's settings come from its own files: another user's file (named directly or
/// through a symlink) and a file outside the site's directory are not read, and say so.
#[test]
#[cfg_attr(vigil_missing = "root", ignore = "needs root (files must belong to other users)")]
fn only_the_sites_own_files_are_read() {
    vigil_testkit::require(&["root"]);
    use std::os::unix::fs::{chown, symlink};
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let (attacker, victim) = (61001, 61002);
    let mk = |site: &str, owner: u32, config: &str| {
        let d = root.join("var/www").join(site);
        std::fs::create_dir_all(d.join("wp-includes")).unwrap();
        std::fs::write(d.join("wp-includes/version.php"), "<?php $wp_version = '6.4.1';\n").unwrap();
        std::fs::write(d.join("wp-config.php"), config).unwrap();
        for p in [d.clone(), d.join("wp-includes"), d.join("wp-includes/version.php"), d.join("wp-config.php")] {
            chown(&p, Some(owner), Some(owner)).unwrap();
        }
        d
    };
    let v = mk(
        "victim",
        victim,
        "<?php define('DB_NAME','vdb'); define('DB_USER','vuser'); define('DB_PASSWORD','Victim-Secret-31x');\n",
    );
    std::fs::set_permissions(v.join("wp-config.php"), std::fs::Permissions::from_mode(0o600)).unwrap();
    mk(
        "direct",
        attacker,
        "<?php define('DB_HOST', '127.0.0.1:3399');\nrequire_once '/var/www/victim/wp-config.php';\n",
    );
    let linked = mk("linked", attacker, "<?php require_once __DIR__ . '/db.php';\n");
    // Links as a tenant writes them: absolute inside the audited system (resolved in its root).
    symlink("/var/www/victim/wp-config.php", linked.join("db.php")).unwrap();
    // The attacker's own file, but outside the site; and one inside it, which is read.
    std::fs::create_dir_all(root.join("home/atk")).unwrap();
    std::fs::write(root.join("home/atk/secrets.php"), "<?php define('DB_USER','elsewhere');\n").unwrap();
    chown(root.join("home/atk/secrets.php"), Some(attacker), Some(attacker)).unwrap();
    let own = mk(
        "own",
        attacker,
        "<?php require __DIR__ . '/local.php';\nrequire '/home/atk/secrets.php';\ndefine('DB_HOST','localhost');\n",
    );
    std::fs::write(own.join("local.php"), "<?php define('DB_NAME','owndb');\n").unwrap();
    chown(own.join("local.php"), Some(attacker), Some(attacker)).unwrap();

    // The whole wp-config.php as a symlink to the victim's.
    let whole = mk("whole", attacker, "<?php\n");
    std::fs::remove_file(whole.join("wp-config.php")).unwrap();
    symlink("/var/www/victim/wp-config.php", whole.join("wp-config.php")).unwrap();

    let ctx = Ctx::new(crate::host::Host::at(root));
    let d = discover(&ctx);
    let site = |n: &str| d.sites.iter().find(|s| s.path == format!("/var/www/{n}")).unwrap();
    for n in ["direct", "linked"] {
        let s = site(n);
        assert!(s.db_password().is_none() && s.db.user.is_none(), "{n} took the victim's settings: {s:?}");
        assert_eq!(s.refused_includes.len(), 1, "{n}: {:?}", s.refused_includes);
        let r = &s.refused_includes[0];
        assert!(r.other_owner && r.why.contains("uid 61002"), "{n}: {r:?}");
    }
    assert_eq!(site("direct").refused_includes[0].path, "/var/www/victim/wp-config.php");
    assert!(site("linked").refused_includes[0].why.contains("through a symlink to /var/www/victim/wp-config.php"));
    assert_eq!(site("direct").db.host.as_deref(), Some("127.0.0.1:3399"), "its own define stays");
    let o = site("own");
    assert_eq!(o.db.name.as_deref(), Some("owndb"), "a file of its own inside the site is read");
    assert_eq!(o.db.user, None);
    assert_eq!(o.refused_includes.len(), 1);
    assert!(!o.refused_includes[0].other_owner && o.refused_includes[0].why.contains("outside the site's directory"));
    assert_eq!(site("victim").db_password().map(|p| p.expose()), Some("Victim-Secret-31x"));
    let w = site("whole");
    assert!(w.db_password().is_none() && w.db.user.is_none(), "{w:?}");
    assert!(w.refused_includes[0].why.contains("owned by uid 61002, not by root or the owner"), "{w:?}");

    let out = inventory(&ctx);
    let f = out
        .findings
        .iter()
        .find(|f| f.id == "credentials.config-include-refused" && f.subject.starts_with("/var/www/direct"))
        .unwrap();
    assert_eq!(f.severity, Severity::High);
    assert!(
        f.evidence.iter().any(|e| e.contains("/var/www/direct/wp-config.php includes /var/www/victim/wp-config.php"))
    );
    let text =
        format!("{}{}", serde_json::to_string(&out.facts).unwrap(), serde_json::to_string(&out.findings).unwrap());
    assert!(!text.contains("Victim-Secret"), "the password never appears");
}
