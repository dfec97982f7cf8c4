//! "Could not check" is not a finding, and a partial review is not a clean one:
//! through the real binary, on a real Debian 12 root built with mmdebstrap
//! (`scripts/debroot`: no `/proc`, Debian's absolute `sites-enabled` symlinks),
//! on a fixture host whose `/proc` is gone, and as an ordinary user
//! (`setpriv --reuid=65534`) on this machine.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use support::{Run, run, vigil_cmd_at, web1};

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

fn ids(v: &Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

/// Severity counts add up to the findings: nothing not checked is counted.
fn assert_counts_are_the_findings(v: &Value) {
    let counted: u64 = v["summary"]["by_severity"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(counted as usize, v["findings"].as_array().unwrap().len());
    assert!(!ids(v).iter().any(|id| id.ends_with(".check-failed")), "{:?}", ids(v));
}

fn not_checked<'a>(v: &'a Value, check: &str) -> Vec<&'a Value> {
    v["not_checked"].as_array().unwrap().iter().filter(|g| g["check"] == check).collect()
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "mmdebstrap"),
    ignore = "needs root, mmdebstrap (scripts/debroot)"
)]
fn the_debian_root_reviewed_offline_is_partial_not_high() {
    vigil_testkit::require(&["root", "mmdebstrap"]);
    let root = vigil_testkit::debroot();
    // Debian's own sites-enabled links are absolute: they must resolve inside the image.
    let link = std::fs::read_link(root.join("etc/nginx/sites-enabled/default")).unwrap();
    assert!(link.is_absolute(), "{}", link.display());
    let t = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let r = run(vigil_cmd_at(t.path(), None, &root, &["review", "--offline", "--format", "json"]), "");
    eprintln!("review of {} took {} ms", root.display(), started.elapsed().as_millis());
    assert_eq!(r.code, 3, "partial, and no --fail-on to make it 1: {}", r.stderr);
    let v = json(&r);
    let sites: Vec<&str> =
        v["facts"]["check_tls"]["sites"].as_array().unwrap().iter().map(|s| s["file"].as_str().unwrap()).collect();
    assert!(sites.contains(&"/etc/nginx/sites-enabled/default"), "{sites:?}");
    assert!(sites.contains(&"/etc/apache2/sites-enabled/000-default.conf"), "{sites:?}");
    // No /proc in an image: not a HIGH "run vigil as root", a not-checked entry with the real fix.
    assert_counts_are_the_findings(&v);
    let ports = not_checked(&v, "list_open_ports");
    assert_eq!(ports.len(), 1, "{}", v["not_checked"]);
    let fix = ports[0]["fix"].as_str().unwrap();
    assert!(fix.contains("offline image") && !fix.contains("as root"), "{fix}");
    // An image with no apt lists: pending updates were not computed, which is not a finding either.
    let updates = not_checked(&v, "check_os_updates");
    assert_eq!(updates.len(), 1, "{}", v["not_checked"]);
    assert!(updates[0]["fix"].as_str().unwrap().contains("apt-get update"), "{}", updates[0]);
    assert!(!ids(&v).iter().any(|id| id == "updates.no-lists"), "{:?}", ids(&v));
    let notices = v["notices"].as_array().unwrap();
    assert!(notices[0].as_str().unwrap().starts_with("Partial review"), "{notices:?}");
    // With --fail-on, real findings make it 1; without any at that level it stays 3, never 0.
    let r = run(vigil_cmd_at(t.path(), None, &root, &["review", "--offline", "--fail-on", "high"]), "");
    assert_eq!(r.code, 1, "the image has high findings (no firewall): {}", r.stdout);
    let r = run(vigil_cmd_at(t.path(), None, &root, &["review", "--offline", "--fail-on", "critical"]), "");
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.starts_with("!! Partial review"), "{}", r.stdout);
    assert!(r.stdout.contains("NOT CHECKED (2; not counted above)"), "{}", r.stdout);
}

/// A copy of web1 without its `/proc` (an image taken from a server that was not running).
fn web1_without_proc() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("cp").arg("-a").arg(format!("{}/.", web1().display())).arg(dir.path()).status().unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(dir.path().join("proc")).unwrap();
    dir
}

#[test]
fn every_format_has_a_not_checked_section_and_patterns_left_unchecked_never_read_zero() {
    let t = tempfile::tempdir().unwrap();
    // A complete review: the section is there, and empty.
    let r = run(vigil_cmd_at(t.path(), None, &web1(), &["review", "--offline", "--format", "json"]), "");
    assert!(r.code == 0, "{}", r.stderr);
    assert_eq!(json(&r)["not_checked"], serde_json::json!([]));
    let md = run(vigil_cmd_at(t.path(), None, &web1(), &["review", "--offline", "--format", "md"]), "").stdout;
    assert!(md.contains("## Not checked\n\nNothing"), "{md}");

    let root = web1_without_proc();
    let r = run(vigil_cmd_at(t.path(), None, root.path(), &["review", "--offline", "--format", "json"]), "");
    assert_eq!(r.code, 3, "{}", r.stderr);
    let v = json(&r);
    assert_counts_are_the_findings(&v);
    assert_eq!(not_checked(&v, "list_open_ports").len(), 1, "{}", v["not_checked"]);
    assert!(!ids(&v).contains(&"ports.exposed-datastore".to_string()), "no sockets were read");
    for (format, section) in [
        ("md", "| `list_open_ports` | listening sockets"),
        ("html", "<section id=\"not-checked\">"),
        ("text", "  [list_open_ports] listening sockets and their processes"),
    ] {
        let r = run(vigil_cmd_at(t.path(), None, root.path(), &["review", "--offline", "--format", format]), "");
        assert_eq!(r.code, 3);
        assert!(r.stdout.contains(section), "{format}:\n{}", r.stdout);
        assert!(!r.stdout.contains("Could not check"), "{format}:\n{}", r.stdout);
        if format != "text" {
            // The ports pattern was not checked: its row never reads a reassuring 0.
            let row = r
                .stdout
                .split(['\n'])
                .flat_map(|l| l.split("<tr>"))
                .find(|l| l.contains("Forgotten open ports"))
                .unwrap();
            assert!(row.contains("not checked"), "{format}: {row}");
        }
    }
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "setpriv"),
    ignore = "needs root, setpriv (running the review as another user)"
)]
fn an_ordinary_user_is_told_once_that_the_review_is_partial() {
    vigil_testkit::require(&["root", "setpriv"]);
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(t.path(), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    // The live machine, as `nobody`: /etc/shadow, the firewall's rules and others' processes are root's.
    let inner = vigil_cmd_at(&state, None, Path::new("/"), &["review", "--offline", "--format", "json"]);
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(inner.get_program());
    c.args(inner.get_args()).env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let r = run(c, "");
    assert_eq!(r.code, 3, "{}", r.stderr);
    let v = json(&r);
    assert_counts_are_the_findings(&v);
    let notices: Vec<&str> = v["notices"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let partial: Vec<&&str> = notices.iter().filter(|n| n.contains("Partial review")).collect();
    assert_eq!(partial.len(), 1, "{notices:?}");
    assert!(partial[0].contains("not running as root"), "{notices:?}");
    // The firewall's backends (ufw, nft, iptables and ip6tables, nf_tables and legacy) fold into one entry.
    let fw = not_checked(&v, "check_firewall");
    assert_eq!(fw.len(), 1, "{}", v["not_checked"]);
    assert!(fw[0]["what"].as_array().unwrap().len() >= 2, "{}", fw[0]);
    assert!(fw[0]["fix"].as_str().unwrap().contains("as root"), "{}", fw[0]);
    let titles: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["title"].as_str().unwrap()).collect();
    assert!(!titles.iter().any(|t| t.starts_with("Could not check")), "{titles:?}");
}
