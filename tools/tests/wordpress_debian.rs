//! `wordpress_inventory` against Debian's real `wordpress` package (6.1.9 with
//! Akismet 5.0.2), through its `/etc/wordpress/config-<host>.php` indirection
//! and its `md5sums`. Needs the packages in `.ci/packages/wordpress.txt`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test setup: a failure should stop the test")]

use std::path::Path;

use vigil_tools::wordpress::{WordpressInventory, WpInput, discover_sites};
use vigil_tools::{Ctx, Host, Severity, Tool};

const PKG: &str = "/usr/share/wordpress";

/// The package copied into the root (a symlink to this machine's copy would be resolved inside the root).
fn copy_package(dst: &Path) {
    let st = std::process::Command::new("cp").args(["-a", PKG]).arg(dst).status().unwrap();
    assert!(st.success());
}

/// A root holding the packaged WordPress (`wp` copies it to /usr/share/wordpress),
/// dpkg's checksums and one generated host config.
fn root_with(wp: impl FnOnce(&Path)) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir_all(r.join("usr/share")).unwrap();
    wp(&r.join("usr/share/wordpress"));
    std::fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
    // Copied, not linked: an absolute symlink in an audited root means the root's own file.
    std::fs::copy("/var/lib/dpkg/info/wordpress.md5sums", r.join("var/lib/dpkg/info/wordpress.md5sums")).unwrap();
    std::fs::create_dir_all(r.join("etc/wordpress")).unwrap();
    let salts: String = [
        "AUTH_KEY",
        "SECURE_AUTH_KEY",
        "LOGGED_IN_KEY",
        "NONCE_KEY",
        "AUTH_SALT",
        "SECURE_AUTH_SALT",
        "LOGGED_IN_SALT",
        "NONCE_SALT",
    ]
    .iter()
    .enumerate()
    .map(|(i, k)| format!("define('{k}', 'x{i}Hq8#Lr2!vN6$wZ0@pT4%yK9^mB3&cF7*dJ1(gS5)uA8-eW2');\n"))
    .collect();
    std::fs::write(
        r.join("etc/wordpress/config-blog.test.php"),
        format!(
            "<?php\ndefine('DB_NAME', 'blogtest');\ndefine('DB_USER', 'blogtest');\ndefine('DB_PASSWORD', 'Zt7#qW2!mR9$kV4@xL8%');\n\
             define('DB_HOST', 'localhost');\n{salts}define('DISALLOW_FILE_EDIT', true);\n"
        ),
    )
    .unwrap();
    // As Debian's setup-mysql writes it: root:www-data 0640.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(r.join("etc/wordpress/config-blog.test.php"), std::fs::Permissions::from_mode(0o640))
        .unwrap();
    t
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "/usr/share/wordpress/wp-includes/version.php",
        vigil_missing = "/var/lib/dpkg/info/wordpress.md5sums"
    ),
    ignore = "needs /usr/share/wordpress/wp-includes/version.php, /var/lib/dpkg/info/wordpress.md5sums (.ci/packages/wordpress.txt)"
)]
async fn debian_package_through_its_host_config() {
    vigil_testkit::require(&["/usr/share/wordpress/wp-includes/version.php", "/var/lib/dpkg/info/wordpress.md5sums"]);
    let t = root_with(copy_package);
    let ctx = Ctx::new(Host::at(t.path()));
    let sites = discover_sites(&ctx);
    assert_eq!(sites.len(), 1, "{sites:?}");
    let s = &sites[0];
    assert_eq!(s.path, PKG);
    assert!(s.debian);
    assert_eq!(s.host.as_deref(), Some("blog.test"));
    assert_eq!(s.core_version.as_deref(), Some("6.1.9"));
    assert_eq!(s.db.name.as_deref(), Some("blogtest"), "the host config wins over Debian's defaults");
    assert_eq!(s.db.table_prefix.as_deref(), Some("wp_"), "Debian's default prefix");
    assert_eq!(s.content_dir, "/var/lib/wordpress/wp-content", "Debian's default WP_CONTENT_DIR");
    let plugins: Vec<String> = s.plugins.iter().map(|p| p.short()).collect();
    assert!(plugins.contains(&"akismet@5.0.2".to_string()), "{plugins:?}");

    let out = WordpressInventory.run(&ctx, WpInput::default()).await.unwrap();
    let loud: Vec<_> = out.findings.iter().filter(|f| f.severity > Severity::Info).collect();
    // The pristine package matches its checksums; the config is sound.
    assert!(loud.is_empty(), "{loud:#?}");
    assert_eq!(out.facts.sites[0].site, "/usr/share/wordpress [blog.test]");
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "/usr/share/wordpress/wp-includes/version.php",
        vigil_missing = "/var/lib/dpkg/info/wordpress.md5sums"
    ),
    ignore = "needs /usr/share/wordpress/wp-includes/version.php, /var/lib/dpkg/info/wordpress.md5sums (.ci/packages/wordpress.txt)"
)]
async fn the_package_without_a_host_config_is_one_info_finding() {
    vigil_testkit::require(&["/usr/share/wordpress/wp-includes/version.php", "/var/lib/dpkg/info/wordpress.md5sums"]);
    let t = root_with(copy_package);
    std::fs::remove_file(t.path().join("etc/wordpress/config-blog.test.php")).unwrap();
    let out = WordpressInventory.run(&Ctx::new(Host::at(t.path())), WpInput::default()).await.unwrap();
    let ids: Vec<(&str, Severity)> = out.findings.iter().map(|f| (f.id.as_str(), f.severity)).collect();
    assert!(ids.contains(&("hardening.debian-no-host-config", Severity::Info)), "{ids:?}");
    assert!(
        ids.iter().all(|(_, s)| *s == Severity::Info),
        "no salts/file-edit noise for a site that does not exist: {ids:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    any(
        vigil_missing = "/usr/share/wordpress/wp-includes/version.php",
        vigil_missing = "/var/lib/dpkg/info/wordpress.md5sums"
    ),
    ignore = "needs /usr/share/wordpress/wp-includes/version.php, /var/lib/dpkg/info/wordpress.md5sums (.ci/packages/wordpress.txt)"
)]
async fn a_modified_packaged_core_file_is_named() {
    vigil_testkit::require(&["/usr/share/wordpress/wp-includes/version.php", "/var/lib/dpkg/info/wordpress.md5sums"]);
    let t = root_with(|dst| {
        let st = std::process::Command::new("cp").args(["-a", PKG]).arg(dst).status().unwrap();
        assert!(st.success());
        let f = dst.join("wp-includes/load.php");
        let mut text = std::fs::read_to_string(&f).unwrap();
        text.push_str("\n@eval($_POST['x']);\n");
        std::fs::write(&f, text).unwrap();
    });
    let ctx = Ctx::new(Host::at(t.path()));
    let out = WordpressInventory.run(&ctx, WpInput::default()).await.unwrap();
    let f = out.findings.iter().find(|f| f.id == "hardening.core-modified").expect("core-modified");
    assert_eq!(f.subject, PKG);
    assert!(f.evidence.iter().any(|e| e == "modified: /usr/share/wordpress/wp-includes/load.php"), "{:?}", f.evidence);
    assert_eq!(f.evidence.iter().filter(|e| e.starts_with("modified:")).count(), 1, "{:?}", f.evidence);
}
