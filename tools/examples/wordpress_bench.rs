//! Benchmark for `wordpress_inventory`: N generated sites with 20 plugins each, and a
//! generated Wordfence feed of ~160 MB / 42,000 records.
//!
//! ```text
//! cargo run --release -p vigil-tools --example wordpress_bench -- sites 1000
//! cargo run --release -p vigil-tools --example wordpress_bench -- gen-feed /tmp/feed.json
//! /usr/bin/time -v target/release/examples/wordpress_bench feed /tmp/feed.json
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark: a failure should stop it")]

use std::path::Path;
use std::time::Instant;

use vigil_tools::wordpress::{discover, feed, inventory};
use vigil_tools::{Ctx, Host};

fn w(p: &Path, text: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

fn gen_sites(root: &Path, n: usize) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let charset: Vec<char> = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#%&*+-=?@^_".chars().collect();
    for i in 0..n {
        let site = root.join(format!("var/www/site{i:04}.example.com/public"));
        w(&site.join("wp-includes/version.php"), "<?php\n/** @global string $wp_version */\n$wp_version = '6.5.3';\n");
        w(&site.join("wp-settings.php"), "<?php\n");
        w(&site.join("index.php"), "<?php\nrequire __DIR__ . '/wp-blog-header.php';\n");
        std::fs::create_dir_all(site.join("wp-admin")).unwrap();
        let pw: String = (0..20).map(|_| charset[(rnd() % charset.len() as u64) as usize]).collect();
        let salts: String = (0..8)
            .map(|k| {
                let s: String = (0..64).map(|_| charset[(rnd() % charset.len() as u64) as usize]).collect();
                format!("define('KEY_{k}', '{s}');\n")
            })
            .collect();
        w(
            &site.join("wp-config.php"),
            &format!(
                "<?php\ndefine('DB_NAME', 'site{i}');\ndefine('DB_USER', 'site{i}');\ndefine('DB_PASSWORD', '{pw}');\n\
                 define('DB_HOST', 'localhost');\n{salts}$table_prefix = 'wp_';\ndefine('WP_DEBUG', false);\n\
                 require_once ABSPATH . 'wp-settings.php';\n"
            ),
        );
        for p in 0..20 {
            let slug = format!("plugin-{}", (i * 7 + p * 13) % 400);
            let dir = site.join(format!("wp-content/plugins/{slug}"));
            w(
                &dir.join(format!("{slug}.php")),
                &format!(
                    "<?php\n/**\n * Plugin Name: Plugin {p}\n * Version: {}.{}.{}\n * Requires PHP: 7.4\n */\n",
                    1 + p % 9,
                    p % 13,
                    i % 7
                ),
            );
            w(&dir.join("readme.txt"), &format!("=== Plugin {p} ===\nStable tag: 1.0\n"));
            w(&dir.join("includes/class-main.php"), "<?php class Main {}\n");
        }
        for t in ["twentytwentyfour", "storefront"] {
            w(
                &site.join(format!("wp-content/themes/{t}/style.css")),
                &format!("/*\nTheme Name: {t}\nVersion: 1.1\n*/\n"),
            );
        }
        w(&site.join("wp-content/uploads/index.php"), "<?php\n// Silence is golden.\n");
        for m in 1..=3 {
            w(&site.join(format!("wp-content/uploads/2026/0{m}/photo.jpg")), "jpeg");
        }
    }
}

/// CPU time of this process (all threads), user + system: steadier than wall time on a busy machine.
fn cpu() -> std::time::Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| std::time::Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    us(ru.ru_utime) + us(ru.ru_stime)
}

#[expect(clippy::disallowed_methods, reason = "the benchmark's own /proc/self/status, not an audited file")]
fn vm_hwm_kib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM")).map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sites") => {
            let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
            let dir = tempfile::tempdir().unwrap();
            let t = Instant::now();
            gen_sites(dir.path(), n);
            println!("generated {n} sites x 20 plugins in {:.2?}", t.elapsed());
            let ctx = Ctx::new(Host::at(dir.path()));
            for round in 1..=3 {
                let (t, c) = (Instant::now(), cpu());
                let d = discover(&ctx);
                let (discover_time, discover_cpu) = (t.elapsed(), cpu() - c);
                let plugins: usize = d.sites.iter().map(|s| s.plugins.len()).sum();
                let (t, c) = (Instant::now(), cpu());
                let out = inventory(&ctx);
                println!(
                    "round {round}: discovery+versions {discover_time:.2?} wall / {discover_cpu:.2?} cpu ({} sites, {plugins} plugins); \
                     full inventory (all checks, no feed) {:.2?} wall / {:.2?} cpu, {} findings",
                    d.sites.len(),
                    t.elapsed(),
                    cpu() - c,
                    out.findings.len()
                );
            }
            // The password judgement alone (zxcvbn and the template checks), 1,000 random passwords.
            let pws: Vec<String> = (0..n).map(|i| format!("k{i}#Vd]n9Zr)u~2QpL!x8T")).collect();
            let (t, c) = (Instant::now(), cpu());
            let weak = pws.iter().filter(|p| vigil_tools::wordpress::creds::judge(p, &["site_db"]).weak()).count();
            println!(
                "judging {n} passwords (single thread): {:.2?} wall / {:.2?} cpu ({weak} weak)",
                t.elapsed(),
                cpu() - c
            );
            // With a feed covering the generated slugs.
            let feed_path = dir.path().join("feed.json");
            std::fs::write(&feed_path, feed::generate_feed(42_000, 400, 20_000_000)).unwrap();
            let mut cfg = vigil_tools::Config::default();
            cfg.wordpress.vuln_feed = Some(feed_path);
            let ctx = ctx.with_config(cfg);
            let _ = inventory(&ctx); // parse the feed once
            let t = Instant::now();
            let out = inventory(&ctx);
            println!(
                "full inventory with a 42,000-record feed (indexed, cached): {:.2?}, {} findings",
                t.elapsed(),
                out.findings.len()
            );
        }
        Some("gen-feed") => {
            let path = args.get(2).expect("gen-feed FILE");
            let records: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(42_000);
            let bytes: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(160_000_000);
            let t = Instant::now();
            std::fs::write(path, feed::generate_feed(records, 12_000, bytes)).unwrap();
            println!("wrote {path}: {} bytes in {:.2?}", std::fs::metadata(path).unwrap().len(), t.elapsed());
        }
        Some("feed") => {
            let path = Path::new(args.get(2).expect("feed FILE"));
            let (t, c) = (Instant::now(), cpu());
            let idx = feed::FeedIndex::load(path).unwrap();
            let parse = t.elapsed();
            println!("parse cpu {:.2?}", cpu() - c);
            let t = Instant::now();
            let hits = idx.lookup(feed::Kind::Plugin, "plugin-7", "1.0.0").len();
            println!(
                "parsed and indexed {} records ({} plugin slugs, {} ranges) in {parse:.2?}; one lookup {:.2?} ({hits} hits); VmHWM {} KiB",
                idx.stats.records,
                idx.stats.plugins,
                idx.stats.ranges,
                t.elapsed(),
                vm_hwm_kib()
            );
        }
        Some("inventory") => {
            // The tool's output for a root (default: this machine), e.g. a fixture host.
            let root = args.get(2).map_or("/", String::as_str);
            let out = inventory(&Ctx::new(Host::at(root)));
            let v = serde_json::json!({"facts": out.facts, "findings": out.findings});
            println!("{}", serde_json::to_string_pretty(&vigil_tools::Redactor::global().value(v)).unwrap());
        }
        _ => {
            eprintln!("usage: wordpress_bench sites N | gen-feed FILE [records] [bytes] | feed FILE | inventory [ROOT]")
        }
    }
}
