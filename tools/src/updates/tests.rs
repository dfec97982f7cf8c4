use super::*;
use crate::testutil::{fixture, fixture_ctx};

fn ids(out: &Outcome<UpdatesFacts>) -> Vec<(String, String, Severity)> {
    out.findings.iter().map(|f| (f.id.clone(), f.subject.clone(), f.severity)).collect()
}

#[tokio::test]
async fn web1_pending_security_updates_are_computed_from_the_lists() {
    let out = CheckOsUpdates.run(&fixture_ctx("web1"), NoInput {}).await.unwrap();
    let f = &out.facts;
    assert_eq!(f.package_manager, "dpkg");
    assert_eq!(f.installed_packages, 12, "the deinstalled exim4-base does not count");
    assert_eq!((f.lists, f.security_lists), (2, 1), "{:?}", f.unreadable_lists);
    let pending: Vec<(&str, &str, &str)> =
        f.security_pending.iter().map(|p| (p.package.as_str(), p.installed.as_str(), p.candidate.as_str())).collect();
    // openssl/libssl3 are behind; libc6 u10 > u9 and mariadb's epoch make the security versions older;
    // exim4-base is not installed; the arm64 openssl is another architecture.
    assert_eq!(
        pending,
        vec![("libssl3", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2"), ("openssl", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2"),]
    );
    assert_eq!(f.security_pending_total, 2);
    assert_eq!(f.upgradable_total, 3, "curl has a non-security update in the gzip-compressed main list");
    let sec = out.findings.iter().find(|f| f.id == "updates.security-pending").unwrap();
    assert_eq!(sec.severity, Severity::High);
    assert!(
        sec.evidence.iter().any(|e| e.contains("openssl: 3.0.15-1~deb12u1 installed, 3.0.17-1~deb12u2")),
        "{sec:?}"
    );
}

#[tokio::test]
async fn web1_reboot_unattended_php_and_os() {
    let out = CheckOsUpdates.run(&fixture_ctx("web1"), NoInput {}).await.unwrap();
    let ids = ids(&out);
    assert!(ids.contains(&("updates.reboot-required".into(), "reboot".into(), Severity::Medium)), "{ids:?}");
    assert_eq!(out.facts.reboot_packages, vec!["libssl3", "linux-image-6.1.0-28-amd64"]);
    let uu = out.findings.iter().find(|f| f.id == "updates.unattended-off").unwrap();
    assert!(uu.evidence[0].contains("\"0\" in /etc/apt/apt.conf.d/20auto-upgrades"), "{uu:?}");
    assert!(out.facts.unattended_upgrades.installed && !out.facts.unattended_upgrades.enabled);
    // PHP 7.4 from a third-party repository: upstream EOL and nobody patches it.
    assert!(ids.contains(&("updates.php-eol".into(), "php:7.4".into(), Severity::High)), "{ids:?}");
    let php = &out.facts.php[0];
    assert_eq!((php.branch.as_str(), php.packages, php.is_eol), ("7.4", 3, true));
    // Debian 12 is in its LTS phase on 2026-11-27: worth planning, not an alarm.
    assert!(ids.contains(&("updates.os-extended-support".into(), "os:debian-12".into(), Severity::Low)), "{ids:?}");
    assert_eq!(out.facts.os.support, "extended");
    assert!(!ids.iter().any(|(id, ..)| id == "updates.lists-stale"), "{ids:?}");
    assert_eq!(out.facts.lists_updated.as_deref(), Some("2026-11-25"), "the security Release date");
    assert_eq!(out.facts.lists_age_days, Some(2));
}

#[tokio::test]
async fn clean_host_reports_nothing_above_info() {
    let out = CheckOsUpdates.run(&fixture_ctx("clean"), NoInput {}).await.unwrap();
    let loud: Vec<_> = out.findings.iter().filter(|f| f.severity > Severity::Info).collect();
    assert!(loud.is_empty(), "{loud:#?}");
    let f = &out.facts;
    // The security mirror's name does not say "security": its Release does. Its list is lz4-compressed.
    assert_eq!((f.lists, f.security_lists), (2, 1), "{:?}", f.unreadable_lists);
    assert_eq!(f.security_pending_total, 0);
    assert!(f.unattended_upgrades.enabled);
    assert_eq!(f.os.support, "supported");
    assert!(!f.reboot_required);
    assert_eq!(f.php[0].branch, "8.4");
}

fn write(root: &std::path::Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn set_mtime(path: &std::path::Path, secs: i64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let ts = libc::timespec { tv_sec: secs, tv_nsec: 0 };
    let times = [ts, ts];
    // SAFETY: a valid NUL-terminated path and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

#[tokio::test]
async fn stale_lists_eol_os_and_missing_unattended_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(r, "etc/os-release", "ID=debian\nVERSION_ID=\"10\"\nPRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\n");
    write(
        r,
        "var/lib/dpkg/status",
        "Package: php7.3-cli\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.3.31-1~deb10u7\n",
    );
    let rel = "var/lib/apt/lists/deb.debian.org_debian_dists_buster_InRelease";
    write(r, rel, "Origin: Debian\nSuite: oldoldstable\nDate: Sat, 10 Oct 2026 00:00:00 UTC\n");
    set_mtime(&r.join(rel), 1_791_590_400); // 2026-10-10
    let list = "var/lib/apt/lists/deb.debian.org_debian_dists_buster_main_binary-amd64_Packages";
    write(r, list, "Package: php7.3-cli\nVersion: 7.3.31-1~deb10u7\nArchitecture: amd64\n");
    set_mtime(&r.join(list), 1_791_590_400);
    write(r, "usr/bin/php5.6", "");
    let host = Host::at(r).with_now(fixture("web1").now());
    let out = review(&host).await;
    let ids = ids(&out);
    assert!(ids.contains(&("updates.lists-stale".into(), "apt-lists".into(), Severity::Medium)), "{ids:?}");
    assert!(ids.contains(&("updates.os-eol".into(), "os:debian-10".into(), Severity::High)), "{ids:?}");
    let uu = out.findings.iter().find(|f| f.id == "updates.unattended-off").unwrap();
    assert!(uu.evidence[0].contains("not installed"), "{uu:?}");
    // Debian 10 shipped PHP 7.3, but Debian 10 itself is past LTS: nobody patches it.
    assert!(ids.contains(&("updates.php-eol".into(), "php:7.3".into(), Severity::High)), "{ids:?}");
    // A PHP binary without a package is found too.
    assert!(ids.contains(&("updates.php-eol".into(), "php:5.6".into(), Severity::High)), "{ids:?}");
}

#[tokio::test]
async fn distro_php_past_upstream_eol_is_low_while_the_distro_patches_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(r, "etc/os-release", "ID=ubuntu\nVERSION_ID=\"22.04\"\n");
    write(
        r,
        "var/lib/dpkg/status",
        "Package: php8.1-cli\nStatus: install ok installed\nArchitecture: amd64\nVersion: 8.1.2-1ubuntu2.22\n",
    );
    let out = review(&Host::at(r).with_now(fixture("web1").now())).await;
    let php = out.findings.iter().find(|f| f.id == "updates.php-eol").unwrap();
    assert_eq!(php.severity, Severity::Low, "{php:?}");
    assert!(out.findings.iter().any(|f| f.id == "updates.no-lists"), "{:?}", out.findings);
}

#[tokio::test]
async fn no_dpkg_is_info_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = review(&Host::at(dir.path())).await;
    assert_eq!(out.facts.package_manager, "none");
    assert!(out.findings.iter().all(|f| f.severity == Severity::Info), "{:?}", out.findings);
}

#[test]
fn apt_conf_flat_and_nested() {
    let kv = parse_apt_conf(
        "// comment\nAPT::Periodic::Unattended-Upgrade \"1\";\n/* block\n */ APT { Periodic { Enable \"0\"; }; };\n#clear X;\nDPkg::Options { \"--force-confdef\"; };\n",
    );
    assert!(kv.contains(&("apt::periodic::unattended-upgrade".into(), "1".into())), "{kv:?}");
    assert!(kv.contains(&("apt::periodic::enable".into(), "0".into())), "{kv:?}");
    assert!(!kv.iter().any(|(k, _)| k.starts_with("dpkg")), "list items are not keys: {kv:?}");
}

#[test]
fn release_dates_and_security_suites() {
    assert_eq!(parse_rfc2822("Thu, 26 Nov 2026 02:22:30 UTC"), Some(1_795_659_750));
    let r = parse_release("x_dists_trixie_updates_InRelease", "Suite: stable-security\n");
    assert!(r.security);
    assert_eq!(r.prefix, "x_dists_trixie_updates_");
    assert!(!parse_release("x_InRelease", "Suite: stable\nLabel: Debian\n").security);
}

#[tokio::test]
async fn live_review_is_fast() {
    let started = std::time::Instant::now();
    let out = review(&Host::live()).await;
    let took = started.elapsed();
    eprintln!(
        "live check_os_updates: {took:?}, {} installed, {} lists, {} security pending, {} upgradable",
        out.facts.installed_packages, out.facts.lists, out.facts.security_pending_total, out.facts.upgradable_total
    );
    if out.facts.package_manager == "dpkg" {
        assert!(out.facts.installed_packages > 0);
    }
}

#[test]
fn every_dpkg_state_with_files_on_disk_counts_as_installed() {
    let mut status = String::new();
    for (i, state) in [
        "installed",
        "triggers-pending",
        "triggers-awaited",
        "half-configured",
        "unpacked",
        "half-installed",
        "config-files",
        "not-installed",
    ]
    .iter()
    .enumerate()
    {
        status.push_str(&format!("Package: p{i}\nStatus: install ok {state}\nArchitecture: amd64\nVersion: 1.{i}\n\n"));
    }
    let got = parse_status(status.as_bytes());
    for i in 0..6 {
        assert!(got.contains_key(&format!("p{i}")), "state {i} has files on disk: {got:?}");
    }
    assert!(!got.contains_key("p6") && !got.contains_key("p7"), "config-files and not-installed have no program");
}
