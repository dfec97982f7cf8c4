//! Unit tests of the pieces that need no WordPress: package safety, checksums,
//! the staging wp-config rewrite, option files, swaps and approvals.
#![expect(clippy::disallowed_methods, reason = "tests read back files they wrote in their own temporary directories")]

use std::collections::BTreeMap;
use std::io::Write;

use super::UpdateKind;
use super::approval::{self, Approval};
use super::db::{option_file, staging_db_name};
use super::files::{Unit, UnitState};
use super::package::{check_plugin_checksums, unpack};
use super::stage::staging_config;
use crate::tool::ToolError;
use crate::wordpress::dbendpoint::parse_db_host;

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in entries {
        if name.ends_with('/') {
            w.add_directory(name.trim_end_matches('/'), zip::write::SimpleFileOptions::default()).unwrap();
        } else {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(body).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn unsafe_packages_are_refused_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    for (name, why) in [
        ("akismet/../../evil.php", "`..`"),
        ("/etc/cron.d/evil", "absolute"),
        ("other/evil.php", "outside the package's directory"),
    ] {
        let z = d.path().join("p.zip");
        std::fs::write(&z, zip_of(&[("akismet/akismet.php", b"<?php"), (name, b"x")])).unwrap();
        let dest = d.path().join("out");
        let e = unpack(&z, UpdateKind::Plugin, "akismet", &dest).unwrap_err();
        assert!(matches!(e, ToolError::Refused(ref m) if m.contains(why)), "{name}: {e}");
        assert!(!dest.exists(), "nothing unpacked for {name}");
    }
    assert!(!d.path().join("evil.php").exists());
    let z = d.path().join("ok.zip");
    std::fs::write(
        &z,
        zip_of(&[("akismet/", b""), ("akismet/akismet.php", b"<?php\n/*\nPlugin Name: A\nVersion: 5.0.3\n*/")]),
    )
    .unwrap();
    let u = unpack(&z, UpdateKind::Plugin, "akismet", &d.path().join("ok")).unwrap();
    assert_eq!(u.files.len(), 1);
    assert_eq!(
        super::package::package_version(UpdateKind::Plugin, "akismet", &d.path().join("ok")).as_deref(),
        Some("5.0.3")
    );
}

#[test]
fn plugin_checksums_must_all_match() {
    let mut files = BTreeMap::new();
    files.insert("a.php".to_string(), "aa".to_string());
    files.insert("b.php".to_string(), "bb".to_string());
    let good = br#"{"files":{"a.php":{"md5":"x","sha256":"AA"},"b.php":{"sha256":["zz","bb"]}}}"#;
    assert_eq!(check_plugin_checksums(good, &files), Ok(2));
    let bad = br#"{"files":{"a.php":{"sha256":"ab"},"b.php":{"sha256":"bb"},"c.php":{"sha256":"cc"}}}"#;
    let e = check_plugin_checksums(bad, &files).unwrap_err();
    assert!(e.contains("a.php: SHA-256 differs") && e.contains("c.php is missing"), "{e}");
    files.insert("evil.php".into(), "ee".into());
    assert!(check_plugin_checksums(good, &files).unwrap_err().contains("evil.php is not in"));
}

#[test]
fn staging_config_points_only_at_staging() {
    let prod = "<?php\ndefine( 'DB_NAME', 'shop' );\ndefine('DB_USER', 'shop');\ndefine(\"WP_HOME\", 'https://shop.example');\n$table_prefix = 'wp_';\nrequire_once ABSPATH . 'wp-settings.php';\n";
    let s = staging_config(prod, "shop_vigil_stg_0a1b2c3d", "http://127.0.0.1:4567").unwrap();
    assert!(s.contains("define('DB_NAME', 'shop_vigil_stg_0a1b2c3d');"), "{s}");
    assert!(!s.contains("'shop' )"), "{s}");
    assert!(s.contains("define('DB_USER', 'shop');"));
    assert!(s.contains("WP_HTTP_BLOCK_EXTERNAL"));
    // Values with `;` inside quotes are replaced whole, never left half-written.
    let semi = "<?php\ndefine('DB_NAME', 'a;b');\ndefine('WP_SITEURL', \"https://x;y\");\n";
    let s = staging_config(semi, "x_vigil_stg_1", "http://127.0.0.1:1").unwrap();
    assert!(!s.contains("b')") && !s.contains("y\")"), "{s}");
    assert_eq!(staging_db_name("wp", "0a1b2c3d"), "wp_vigil_stg_0a1b2c3d");
    assert_eq!(staging_db_name(&"d".repeat(80), "0a1b2c3d").len(), 64);
}

#[test]
fn credentials_go_into_an_escaped_option_file() {
    let f = option_file("wp", "p\"a\\ss word", "127.0.0.1:3307");
    assert!(f.contains("password=\"p\\\"a\\\\ss word\"\n"), "{f}");
    assert!(f.contains("port=3307"));
    assert_eq!(parse_db_host("localhost:/run/mysqld/mysqld.sock").2.as_deref(), Some("/run/mysqld/mysqld.sock"));
    assert_eq!(parse_db_host("[::1]:3306"), (Some("::1".into()), Some(3306), None));
    assert_eq!(parse_db_host("db.example"), (Some("db.example".into()), None, None));
}

#[test]
fn a_swap_undoes_from_any_point() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("akismet");
    for stop_after in 0..3 {
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("v"), "old").unwrap();
        let mut u = Unit::new(d.path(), &target, "0a1b2c3d").unwrap();
        std::fs::create_dir_all(&u.new).unwrap();
        std::fs::write(u.new.join("v"), "new").unwrap();
        if stop_after >= 1 {
            u.move_old(d.path()).unwrap();
        }
        if stop_after >= 2 {
            u.put_new(d.path()).unwrap();
            assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "new");
        }
        // The journal may lag one step behind the filesystem.
        u.state = UnitState::Prepared;
        u.undo(d.path()).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "old", "stop after {stop_after}");
        assert!(!u.new.exists() && !u.old.exists());
    }
}

#[test]
fn approvals_are_single_use_and_bound_to_the_plan() {
    let d = tempfile::tempdir().unwrap();
    let a = Approval {
        tool: "wordpress_apply_update".into(),
        site: "/var/www/shop".into(),
        staged_id: "0a1b2c3d".into(),
        plan_digest: "d1".repeat(32),
        issued_at: 1,
        at: "03:00".into(),
    };
    let t = approval::issue(d.path(), &a).unwrap();
    let e = approval::redeem(d.path(), &t, "wordpress_apply_update", "/var/www/shop", "0a1b2c3d", &"ff".repeat(32))
        .unwrap_err();
    assert!(e.contains("plan changed"), "{e}");
    let e = approval::redeem(d.path(), &t, "wordpress_apply_update", "/var/www/shop", "0a1b2c3d", &a.plan_digest)
        .unwrap_err();
    assert!(e.contains("already used"), "a refused token is spent too: {e}");
    let t = approval::issue(d.path(), &a).unwrap();
    assert!(
        approval::redeem(d.path(), &t, "wordpress_apply_update", "/var/www/shop", "0a1b2c3d", &a.plan_digest).is_ok()
    );
    assert!(
        approval::redeem(d.path(), &t, "wordpress_apply_update", "/var/www/shop", "0a1b2c3d", &a.plan_digest).is_err()
    );
    assert!(approval::redeem(d.path(), "nope", "wordpress_apply_update", "/var/www/shop", "0a1b2c3d", "x").is_err());
}

#[tokio::test]
async fn sites_must_be_discovered_and_fixtures_are_not_live() {
    let ctx = crate::testutil::fixture_ctx("web1");
    let input = super::StageInput {
        site: "/var/www/shop".into(),
        updates: vec![super::UpdateSpec {
            kind: UpdateKind::Plugin,
            slug: "akismet".into(),
            version: Some("5.0.3".into()),
        }],
    };
    use crate::tool::Change;
    let e = super::WordpressStageUpdate.prepare(&ctx, &input).await.map(|_| ()).unwrap_err();
    assert!(matches!(e, ToolError::Refused(ref m) if m.contains("live root")), "{e}");
}
