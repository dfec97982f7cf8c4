//! Tests of the keyed digests and cross-server reuse, down to two real fixture hosts.

use std::path::Path;

use super::*;
use crate::fleet::outcome::{Failure, FleetRun, Reason};
use crate::review::{HostInfo, Review};

fn review(name: &str) -> Box<Review> {
    Box::new(Review {
        version: crate::review::VERSION,
        host: HostInfo { name: name.into(), root: "/".into() },
        generated_at: "2026-12-04T23:00:00Z".into(),
        duration_ms: 1,
        notices: vec![],
        summary: Default::default(),
        findings: vec![],
        not_checked: vec![],
        acknowledged: vec![],
        facts: Default::default(),
        tools: Default::default(),
        changes: Default::default(),
        snapshot: Default::default(),
        model_summary: None,
        audit_head: None,
        sandbox: None,
    })
}

fn reviewed(name: &str, digests: Vec<SecretDigest>) -> HostOutcome {
    HostOutcome {
        name: name.into(),
        address: format!("{name}.example.org"),
        ms: 5,
        status: Status::Reviewed { review: review(name), digests },
    }
}

/// Digests computed the way a host does, for secrets given by hand.
fn digests(key: &RunKey, secrets: &[(&str, &str)]) -> Vec<SecretDigest> {
    let found = secrets.iter().map(|(place, s)| Found::new(place.to_string(), s.to_string())).collect();
    digest_all(found, key.bytes())
}

fn places(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(h, p)| (h.to_string(), p.to_string())).collect()
}

#[test]
fn one_secret_on_two_hosts_is_one_reuse_naming_both() {
    let key = run_key();
    let web1 = digests(
        &key,
        &[
            ("/var/www/shop/wp-config.php DB_PASSWORD", "Tr1cky-Shared-pw"),
            ("/etc/redis/redis.conf requirepass", "only-on-web1-x"),
        ],
    );
    let web2 = digests(&key, &[("/srv/www/blog/wp-config.php DB_PASSWORD", "Tr1cky-Shared-pw")]);
    let db1 = digests(&key, &[("/etc/redis/redis.conf requirepass", "only-on-db1-y")]);
    let failed = HostOutcome {
        name: "down".into(),
        address: "down.example.org".into(),
        ms: 5,
        status: Status::Failed(Failure { reason: Reason::Unreachable, detail: "no route".into() }),
    };
    let hosts = [reviewed("web1", web1), failed, reviewed("web2", web2), reviewed("db1", db1)];
    let r = reused(&hosts);
    assert_eq!(
        r,
        vec![Reuse {
            places: places(&[
                ("web1", "/var/www/shop/wp-config.php DB_PASSWORD"),
                ("web2", "/srv/www/blog/wp-config.php DB_PASSWORD")
            ])
        }]
    );
    assert_eq!(r[0].hosts(), ["web1", "web2"]);
    assert_eq!(r[0].what(), "a database password");
}

#[test]
fn a_reuse_says_what_is_shared() {
    let reuse =
        |p: &[&str]| Reuse { places: p.iter().enumerate().map(|(i, p)| (format!("h{i}"), p.to_string())).collect() };
    assert_eq!(
        reuse(&["/etc/shadow root", "/etc/shadow root"]).what(),
        "an account's password hash (copied between servers)"
    );
    assert_eq!(
        reuse(&["/etc/redis/redis.conf requirepass", "/etc/redis/redis.conf user app"]).what(),
        "a Redis password"
    );
    assert_eq!(
        reuse(&["/var/www/a/wp-config.php DB_PASSWORD", "/etc/redis/redis.conf requirepass"]).what(),
        "a password"
    );
}

#[test]
fn the_same_secret_twice_on_one_host_is_not_cross_server_reuse() {
    let key = run_key();
    let web1 = digests(
        &key,
        &[
            ("/var/www/a/wp-config.php DB_PASSWORD", "Same-On-One-Host"),
            ("/var/www/b/wp-config.php DB_PASSWORD", "Same-On-One-Host"),
        ],
    );
    // Still reported per place, with one digest.
    assert_eq!(web1.len(), 2);
    assert_eq!(web1[0].digest, web1[1].digest);
    let web2 = digests(&key, &[("/var/www/a/wp-config.php DB_PASSWORD", "Something-Else-9")]);
    assert!(reused(&[reviewed("web1", web1.clone()), reviewed("web2", web2)]).is_empty());
    // Once another host has it too, every place is named, both of web1's included.
    let web3 = digests(&key, &[("/home/c/wp-config.php DB_PASSWORD", "Same-On-One-Host")]);
    let r = reused(&[reviewed("web1", web1), reviewed("web3", web3)]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].places.len(), 3);
    assert_eq!(r[0].hosts(), ["web1", "web3"]);
}

#[test]
fn different_keys_give_different_digests_and_no_reuse() {
    let (k1, k2) = (run_key(), run_key());
    let a = digests(&k1, &[("p", "Tr1cky-Shared-pw")]);
    let b = digests(&k2, &[("p", "Tr1cky-Shared-pw")]);
    assert_ne!(a[0].digest, b[0].digest, "a digest from one run says nothing in another");
    assert!(reused(&[reviewed("web1", a.clone()), reviewed("web2", b)]).is_empty());
    // The same key gives the same digest; a different secret a different one.
    assert_eq!(a, digests(&k1, &[("p", "Tr1cky-Shared-pw")]));
    assert_ne!(a[0].digest, digests(&k1, &[("p", "Tr1cky-Shared-pw!")])[0].digest);
    assert!(well_formed(&a[0].digest), "{}", a[0].digest);
}

#[test]
fn the_digest_is_argon2id_keyed_by_the_run_key() {
    // The RFC 9106 construction computed independently (argon2's own PHC-less API with
    // the same inputs): what a host sends is exactly Argon2id(secret, SALT, key).
    let key = RunKey::from_hex(&"ab".repeat(KEY_LEN)).unwrap();
    let params = argon2::Params::new(M_COST_KIB, T_COST, P_COST, Some(OUT_LEN)).unwrap();
    let a = argon2::Argon2::new_with_secret(
        key.bytes(),
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.clone(),
    )
    .unwrap();
    let mut out = [0u8; OUT_LEN];
    a.hash_password_into(b"Tr1cky-Shared-pw", SALT, &mut out).unwrap();
    assert_eq!(digests(&key, &[("p", "Tr1cky-Shared-pw")])[0].digest, hex::encode(out));
    // Without the key (Argon2id unkeyed) the value differs: the controller cannot
    // precompute digests before the run.
    let unkeyed = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut plain = [0u8; OUT_LEN];
    unkeyed.hash_password_into(b"Tr1cky-Shared-pw", SALT, &mut plain).unwrap();
    assert_ne!(out, plain);
}

#[test]
fn a_place_never_carries_its_secret_and_empty_secrets_are_skipped() {
    let key = run_key();
    let d = digests(&key, &[("/home/hunter2hunter2/wp-config.php DB_PASSWORD", "hunter2hunter2")]);
    assert_eq!(d[0].place, "/home/[REDACTED]/wp-config.php DB_PASSWORD");
    // An empty password (`guest::` in /etc/shadow has none) is not digested.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/shadow"), "guest::19402:0:99999:7:::\nroot:$6$s$h:1::::::\n").unwrap();
    let d = collect(&Host::at(root.path()), key.bytes());
    assert_eq!(d.iter().map(|x| x.place.as_str()).collect::<Vec<_>>(), ["/etc/shadow root"]);
}

#[test]
fn a_short_or_missing_key_digests_nothing() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/shadow"), "root:$6$salt$abcdefgh:19402:0:99999:7:::\n").unwrap();
    let host = Host::at(root.path());
    assert!(collect(&host, b"").is_empty());
    assert!(collect(&host, b"0123456789").is_empty());
    assert_eq!(collect(&host, run_key().bytes()).len(), 1);
}

#[test]
fn the_run_key_is_random_round_trips_in_hex_and_never_prints() {
    let (a, b) = (run_key(), run_key());
    assert_ne!(a.bytes(), b.bytes());
    assert_ne!(a.bytes(), [0u8; KEY_LEN]);
    let hex = a.hex();
    assert_eq!(hex.len(), KEY_LEN * 2);
    assert_eq!(RunKey::from_hex(&hex).unwrap().bytes(), a.bytes());
    assert_eq!(format!("{a:?}"), "RunKey(…)");
    assert!(!format!("{a:?}").contains(&hex[..8]));
    for bad in ["", "abc", &hex[..62], &format!("{hex}00"), &"zz".repeat(KEY_LEN)] {
        let e = RunKey::from_hex(bad).unwrap_err().to_string();
        assert!(e.contains("64 hexadecimal digits"), "{e}");
        assert!(bad.is_empty() || !e.contains(bad), "the error repeats the input: {e}");
    }
}

#[test]
fn answers_that_are_not_digests_are_not_reuse() {
    let junk = |p: &str, d: &str| SecretDigest { place: p.into(), digest: d.into() };
    let hosts = [
        reviewed("web1", vec![junk("a", ""), junk("b", "zz"), junk("c", &"A".repeat(64))]),
        reviewed("web2", vec![junk("a", ""), junk("b", "zz"), junk("c", &"A".repeat(64))]),
    ];
    assert!(reused(&hosts).is_empty());
}

#[test]
fn a_fleet_run_in_json_carries_no_digest() {
    let key = run_key();
    let d = digests(&key, &[("/var/www/shop/wp-config.php DB_PASSWORD", "Tr1cky-Shared-pw")]);
    let digest = d[0].digest.clone();
    let run = FleetRun {
        inventory: "hosts.ini".into(),
        limit: None,
        started: "2026-12-04T23:00:00Z".into(),
        hosts: vec![reviewed("web1", d.clone()), reviewed("web2", d)],
    };
    let json = serde_json::to_string(&run).unwrap();
    assert!(json.contains("\"web1\"") && json.contains("\"reviewed\""), "{json}");
    assert!(!json.contains(&digest), "a digest was serialised: {json}");
    assert!(!json.contains("digests"), "{json}");
    assert!(!json.contains(&key.hex()));
    // What comes back from JSON (history, a saved report) has no digests to compare.
    let back: FleetRun = serde_json::from_str(&json).unwrap();
    assert!(reused(&back.hosts).is_empty());
}

#[test]
fn hostile_config_files_neither_hang_the_host_nor_give_up_their_password() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("web1");
    copy_web1(&root);
    // client2's wp-config.php becomes a FIFO no one writes to: opening it would block forever.
    let fifo = root.join("home/client2/public_html/wp-config.php");
    std::fs::remove_file(&fifo).unwrap();
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    // The shop's is 1.5 GiB (sparse), its DB_PASSWORD past the 1 MiB a config read takes.
    let shop = root.join("var/www/shop/wp-config.php");
    let text = std::fs::read_to_string(&shop).unwrap().replace("Client1-2024!", "Beyond-The-Cap-pw");
    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&shop).unwrap();
    std::io::Write::write_all(&mut f, b"<?php\n/*").unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(3 << 29)).unwrap();
    std::io::Write::write_all(&mut f, format!("*/\n{}", text.trim_start_matches("<?php")).as_bytes()).unwrap();
    drop(f);

    let (tx, rx) = std::sync::mpsc::channel();
    let host = Host::at(&root);
    let key = run_key();
    let key_bytes = key.bytes().to_vec();
    std::thread::spawn(move || tx.send(collect(&host, &key_bytes)).unwrap());
    let d = rx.recv_timeout(std::time::Duration::from_secs(120)).expect("collect hung on a hostile wp-config.php");
    let places: Vec<&str> = d.iter().map(|x| x.place.as_str()).collect();
    assert!(!places.iter().any(|p| p.contains("client2") || p.contains("/var/www/shop/")), "{places:?}");
    // The rest of the host is still digested.
    assert!(places.contains(&"/srv/www/client3/db-config.php DB_PASSWORD"), "{places:?}");
    assert!(!format!("{d:?}").contains("Beyond-The-Cap-pw"));
}

/// A private copy of the fixture host `web1` at `dst`.
fn copy_web1(dst: &Path) {
    let src = vigil_testkit::fixture_hosts().join("web1");
    let st = std::process::Command::new("cp").arg("-a").arg(&src).arg(dst).status().unwrap();
    assert!(st.success(), "cp -a {} {}", src.display(), dst.display());
}

/// Replace `from` by `to` in the file `rel` of the host at `root` (owner and mode kept).
fn plant(root: &Path, rel: &str, from: &str, to: &str) {
    let p = root.join(rel);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{rel} has no {from:?}");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

#[test]
fn two_fixture_hosts_sharing_one_database_password_are_found_without_it() {
    const SHARED: &str = "Pl4nted-Shared-DB-pw-7qZ";
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    copy_web1(&a);
    copy_web1(&b);
    // Host a: the shop's database password is SHARED; client2 and client3 share
    // `Client2-2024!` with each other (reuse on one host, not across servers).
    plant(&a, "var/www/shop/wp-config.php", "Client1-2024!", SHARED);
    // Host b: client2's password is SHARED; every other secret is its own.
    plant(&b, "home/client2/public_html/wp-config.php", "Client2-2024!", SHARED);
    plant(&b, "var/www/shop/wp-config.php", "Client1-2024!", "b-only-shop-x1Q");
    plant(&b, "srv/www/client3/db-config.php", "Client2-2024!", "b-only-client3-x2Q");
    // An empty password is not a secret to compare.
    plant(&b, "etc/wordpress/config-blog.example.com.php", "vN4#tQ8!rZ2@wL7$kP9%", "");
    // b was cloned from a's image: root's hash is the same; the others were changed.
    let shadow = std::fs::read_to_string(b.join("etc/shadow")).unwrap();
    let shadow: String = shadow
        .lines()
        .map(|l| if l.starts_with("root:") { l.to_string() } else { l.replace("NotARealHash", "OtherHash") })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(b.join("etc/shadow"), shadow).unwrap();
    // And both run Redis with one password.
    for root in [&a, &b] {
        std::fs::create_dir_all(root.join("etc/redis")).unwrap();
        std::fs::write(root.join("etc/redis/redis.conf"), "bind 127.0.0.1\nrequirepass Redis-Same-pw-44\n").unwrap();
    }

    let key = run_key();
    let da = collect(&Host::at(&a), key.bytes());
    let db = collect(&Host::at(&b), key.bytes());
    let on = |d: &[SecretDigest], place: &str| d.iter().any(|x| x.place == place);
    assert!(on(&da, "/var/www/shop/wp-config.php DB_PASSWORD"), "{da:#?}");
    assert!(on(&da, "/etc/redis/redis.conf requirepass"), "{da:#?}");
    assert!(on(&da, "/etc/shadow root"), "{da:#?}");
    assert!(on(&da, "/etc/wordpress/config-blog.example.com.php DB_PASSWORD"), "{da:#?}");
    assert!(!on(&db, "/etc/wordpress/config-blog.example.com.php DB_PASSWORD"), "{db:#?}");
    let run = FleetRun {
        inventory: "hosts.ini".into(),
        limit: None,
        started: "2026-12-04T23:00:00Z".into(),
        hosts: vec![reviewed("a", da.clone()), reviewed("b", db.clone())],
    };
    let r = reused(&run.hosts);
    let db_reuse: Vec<&Reuse> = r.iter().filter(|x| x.places.iter().any(|(_, p)| p.ends_with("DB_PASSWORD"))).collect();
    assert_eq!(db_reuse.len(), 1, "only SHARED crosses servers: {r:#?}");
    assert_eq!(
        db_reuse[0].places,
        places(&[
            ("a", "/var/www/shop/wp-config.php DB_PASSWORD"),
            ("b", "/home/client2/public_html/wp-config.php DB_PASSWORD")
        ])
    );
    assert!(r.iter().any(|x| x.places
        == places(&[("a", "/etc/redis/redis.conf requirepass"), ("b", "/etc/redis/redis.conf requirepass")])));
    let shadow_reuse = r.iter().find(|x| x.places.iter().any(|(_, p)| p.starts_with("/etc/shadow"))).unwrap();
    assert!(shadow_reuse.places.contains(&("b".into(), "/etc/shadow root".into())), "{shadow_reuse:?}");
    assert!(!shadow_reuse.places.iter().any(|(h, p)| h == "b" && p != "/etc/shadow root"), "{shadow_reuse:?}");
    assert_eq!(r.len(), 3, "{r:#?}");

    // No password, hash or key in anything that leaves a host or the controller.
    let json = serde_json::to_string(&run).unwrap();
    let outputs = [format!("{da:?}"), format!("{db:?}"), format!("{r:?}"), json];
    for secret in [SHARED, "Client2-2024!", "b-only-shop-x1Q", "Redis-Same-pw-44", "NotARealHash", &key.hex()] {
        for out in &outputs {
            assert!(!out.contains(secret), "{secret:?} leaked: {out}");
        }
    }
}
