//! The fleet report, from real reviews: `vigil review --offline --format json` of
//! the fixture hosts (web1 three times, web1 without `/proc` for a partial
//! review, the clean host) put into fleet runs with hosts that failed, then
//! `fleet::report::finish` in every format — the rows and reasons, the folded
//! fleet-wide rows naming their hosts, Prometheus parsed by the reference
//! client with escaped labels and replaced atomically, JSON lines — the
//! history per host across two runs, `vigil fleet status` from that history,
//! and `vigil schedule install --fleet`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use vigil::app::App;
use vigil::cli::{FleetFormat, FleetReviewArgs, Global};
use vigil::fleet::outcome::{Failure, FleetRun, HostOutcome, Reason, SecretDigest, Status};
use vigil::review::Review;

/// A digest a host returned: it must never be written anywhere.
const DIGEST: &str = "9f2c51d0e4a7b3c8aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55";

struct Reviews {
    web: Review,
    partial: Review,
    clean: Review,
}

/// The real reviews, made once: web1 (with the sample vulnerability feed), web1 without
/// its `/proc` (partial: the listening sockets cannot be read), and the clean host.
fn reviews() -> &'static Reviews {
    static R: OnceLock<Reviews> = OnceLock::new();
    R.get_or_init(|| {
        let hosts = vigil_testkit::fixture_hosts();
        let t = tempfile::tempdir().unwrap();
        let feed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wordfence/feed-sample.json");
        let partial_root = t.path().join("web1-no-proc");
        assert!(Command::new("cp").arg("-a").arg(hosts.join("web1")).arg(&partial_root).status().unwrap().success());
        std::fs::remove_dir_all(partial_root.join("proc")).unwrap();
        let review = |root: &Path, state: &str| -> Review {
            let c = support::vigil_cmd_at(
                &t.path().join(state),
                None,
                root,
                &["--vuln-feed", feed.to_str().unwrap(), "review", "--offline", "--format", "json"],
            );
            let r = support::run(c, "");
            assert!(matches!(r.code, 0 | 3), "{}", r.stderr);
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stderr))
        };
        let web = review(&hosts.join("web1"), "a");
        let partial = review(&partial_root, "b");
        let clean = review(&hosts.join("clean"), "c");
        assert!(partial.partial() && !web.partial() && !clean.partial());
        Reviews { web, partial, clean }
    })
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn rfc3339(secs: i64) -> String {
    vigil_tools::format::rfc3339(secs)
}

/// A review as if made `days` ago (the controller's clock decides what is overdue).
fn aged(r: &Review, days: i64) -> Review {
    let mut r = r.clone();
    r.generated_at = rfc3339(now() - days * 86_400);
    r
}

fn ok(name: &str, n: u8, r: &Review) -> HostOutcome {
    HostOutcome {
        name: name.into(),
        address: format!("10.0.0.{n}"),
        ms: 1_500,
        status: Status::Reviewed { review: Box::new(r.clone()), digests: Vec::new() },
    }
}

fn failed(name: &str, n: u8, reason: Reason, detail: &str) -> HostOutcome {
    HostOutcome {
        name: name.into(),
        address: format!("10.0.0.{n}"),
        ms: 10_000,
        status: Status::Failed(Failure { reason, detail: detail.into() }),
    }
}

fn run_of(inventory: &Path, hosts: Vec<HostOutcome>) -> FleetRun {
    FleetRun { inventory: inventory.display().to_string(), limit: None, started: rfc3339(now()), hosts }
}

fn app(state: &Path, root: Option<&Path>) -> App {
    App::new(Global {
        root: root.map(Path::to_path_buf),
        config: None,
        state_dir: Some(state.to_path_buf()),
        vuln_feed: None,
        model: None,
        no_color: true,
        no_sandbox: false,
        verbose: 0,
    })
    .unwrap()
}

fn args(inventory: &Path, format: FleetFormat, out: &Path, fail_on: Option<&str>) -> FleetReviewArgs {
    FleetReviewArgs {
        inventory: inventory.to_path_buf(),
        limit: None,
        forks: 16,
        timeout: 600,
        format,
        out: Some(out.to_path_buf()),
        fail_on: fail_on.map(str::to_string),
        scheduled: false,
    }
}

fn inventory(dir: &Path, hosts: &[&str]) -> PathBuf {
    let p = dir.join("hosts.ini");
    std::fs::write(&p, format!("[web]\n{}\n", hosts.join("\n"))).unwrap();
    p
}

/// The test fleet: web1 on three servers (one with its key in the digests), the partial
/// copy, and three that failed — one with terminal controls and markup in ssh's words.
fn fleet(inv: &Path) -> FleetRun {
    let r = reviews();
    let mut a = ok("web-a", 1, &r.web);
    if let Status::Reviewed { digests, .. } = &mut a.status {
        digests.push(SecretDigest { place: "/var/www/shop/wp-config.php DB_PASSWORD".into(), digest: DIGEST.into() });
    }
    run_of(
        inv,
        vec![
            a,
            ok("web-b", 2, &r.web),
            ok("web-c", 3, &r.web),
            ok("web-p", 4, &r.partial),
            failed("db-down", 9, Reason::Unreachable, "ssh: connect to host 10.0.0.9 port 22: Connection refused"),
            failed("old-box", 8, Reason::AuthFailed, "Permission denied (publickey).\u{1b}]0;pwned\u{7}"),
            failed("odd\"name\\x", 7, Reason::Timeout, "<script>alert(1)</script> no answer in 600 s"),
        ],
    )
}

/// The hosts of `run` whose review has the finding `(id, subject)`, in order.
fn hosts_with(run: &FleetRun, id: &str, subject: impl Fn(&str) -> bool) -> Vec<String> {
    run.hosts
        .iter()
        .filter(|h| match &h.status {
            Status::Reviewed { review, .. } => review.findings.iter().any(|f| f.id == id && subject(&f.subject)),
            Status::Failed(_) => false,
        })
        .map(|h| h.name.clone())
        .collect()
}

fn finish(state: &Path, inv: &Path, run: FleetRun, format: FleetFormat, fail_on: Option<&str>) -> (u8, String) {
    let out = state.join(format!("out.{format:?}"));
    let code = block(vigil::fleet::report::finish(&app(state, None), &args(inv, format, &out, fail_on), run)).unwrap();
    (code, std::fs::read_to_string(&out).unwrap())
}

/// No format and no saved file carries a digest or a planted password.
fn assert_no_secrets(text: &str) {
    assert!(!text.contains(DIGEST), "a keyed digest was written");
    assert!(!text.contains(support::PLANTED), "a planted password was written");
}

#[test]
fn text_md_and_json_show_each_host_the_fleet_wide_rows_and_each_review() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), &["web-a", "web-b", "web-c", "web-p", "db-down", "old-box"]);
    let run = fleet(&inv);
    let datastore = hosts_with(&run, "ports.exposed-datastore", |s| s == "tcp:9200");
    let woo = hosts_with(&run, "updates.vulnerable-plugin", |s| s.ends_with(" plugin:woocommerce"));
    assert!(datastore.len() >= 3 && woo.len() == 4, "{datastore:?} {woo:?}");

    let state = t.path().join("text");
    let (code, text) = finish(&state, &inv, run.clone(), FleetFormat::Text, None);
    assert_eq!(code, 3, "hosts failed and one is partial: exit 3 as `vigil review` does");
    assert_no_secrets(&text);
    let line = |host: &str| text.lines().find(|l| l.trim_start().starts_with(&format!("{host} "))).unwrap().to_string();
    assert!(line("web-a").contains(" reviewed ") && line("web-a").contains(" first "), "{}", line("web-a"));
    let crit = reviews().web.count_at_least(vigil_tools::Severity::Critical);
    assert!(line("web-a").split_whitespace().nth(2) == Some(&crit.to_string()), "{}", line("web-a"));
    assert!(line("web-p").contains(" partial "), "{}", line("web-p"));
    assert!(line("db-down").contains(" unreachable ") && line("db-down").contains("never  OVERDUE"), "{text}");
    assert!(line("old-box").contains(" auth-failed "), "{text}");
    assert!(text.contains("why: ssh: connect to host 10.0.0.9 port 22: Connection refused"), "{text}");
    assert!(
        text.contains("why: Permission denied (publickey).") && !text.contains('\u{1b}'),
        "controls reach the terminal"
    );
    assert!(text.contains("7 hosts: 3 reviewed, 1 partial, 3 failed;"), "{text}");
    // Fleet-wide: one row per finding on several servers, naming them.
    let fw = |needle: &str| {
        text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}:\n{text}")).to_string()
    };
    let port = fw("[ports.exposed-datastore] tcp:9200 on ");
    assert!(port.contains(&format!("on {} servers: {}", datastore.len(), datastore.join(", "))), "{port}");
    let plugin = fw("[updates.vulnerable-plugin] plugin:woocommerce on ");
    assert!(plugin.contains(&format!("on 8 sites across {} servers", woo.len())), "{plugin}");
    assert!(plugin.contains(": web-a (/srv/www/client3/public, /var/www/shop), web-b ("), "{plugin}");
    fw("[accounts.extra-uid0] toor on 4 servers: web-a, web-b, web-c, web-p");
    assert!(text.contains("\n      toor has uid 0: a second root account\n"), "a shared subject stays in the title");
    // Admins: contractor-jane and mike are unused on every reviewed server; alice logs in.
    let admins = text.split("USED ON NONE").nth(1).unwrap().split("====").next().unwrap();
    assert!(
        admins.contains("contractor-jane on all 4 reviewed servers") && admins.contains("mike on all 4"),
        "{admins}"
    );
    assert!(!admins.contains("alice"), "{admins}");
    assert!(text.contains("PASSWORDS REUSED ACROSS SERVERS\n"), "{text}");
    // Then each host's own review.
    assert_eq!(text.matches("vigil review of ").count(), 4, "one review per reviewed host");
    assert!(text.contains("==== web-c (10.0.0.3) ===="), "{text}");

    // With the clean host in the fleet, no admin is on every server.
    let mut with_clean = run.clone();
    with_clean.hosts.push(ok("clean", 5, &reviews().clean));
    assert!(vigil::fleet::report::unused_admins(&with_clean).is_empty());

    let (code, md) = finish(&t.path().join("md"), &inv, run.clone(), FleetFormat::Md, Some("critical"));
    assert_eq!(code, 1, "web1 has critical findings: --fail-on critical wins over the failures");
    assert_no_secrets(&md);
    assert!(md.contains("| db-down | **unreachable**: ssh: connect to host"), "{md}");
    assert!(md.contains("## Fleet-wide") && md.contains("`ports.exposed-datastore` tcp:9200"), "{md}");
    assert_eq!(md.matches("\n# vigil review: ").count(), 4);

    let (_, json) = finish(&t.path().join("json"), &inv, run.clone(), FleetFormat::Json, None);
    assert_no_secrets(&json);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(!json.contains("\"digests\""), "digests are serde(skip)");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[4]["status"], "unreachable");
    assert_eq!(rows[3]["status"], "partial");
    assert_eq!(rows[4]["overdue"], true);
    let port = v["fleet_wide"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "ports.exposed-datastore" && f["what"] == "tcp:9200")
        .unwrap();
    let named: Vec<&str> = port["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(named, datastore);
    assert_eq!(v["run"]["hosts"][0]["review"]["host"]["name"], reviews().web.host.name);
    assert_eq!(v["run"]["hosts"][4]["reason"], "unreachable");
    assert!(v["run"]["hosts"][0]["review"]["changes"].is_object());
    // Nothing saved in the history carries the digest either.
    for e in walk(&t.path().join("json")) {
        assert_no_secrets(&String::from_utf8_lossy(&std::fs::read(&e).unwrap()));
    }

    // Every host reviewed completely: exit 0.
    let all_ok = run_of(&inv, vec![ok("web-a", 1, &reviews().clean), ok("web-b", 2, &reviews().clean)]);
    let (code, _) = finish(&t.path().join("ok"), &inv, all_ok, FleetFormat::Text, Some("high"));
    assert_eq!(code, 0);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn html_is_one_self_contained_file_with_each_host_and_its_trend() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), &["web-a"]);
    let state = t.path().join("s");
    // A month of history for web-a first, so its trend has two points.
    let earlier = run_of(&inv, vec![ok("web-a", 1, &aged(&reviews().clean, 40))]);
    finish(&state, &inv, earlier, FleetFormat::Text, None);
    let (_, html) = finish(&state, &inv, fleet(&inv), FleetFormat::Html, None);
    assert_no_secrets(&html);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("default-src 'none'"));
    assert!(
        !html.contains("<script") && html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "hostile detail escaped"
    );
    assert_eq!(html.matches("<section class=\"host\"").count(), 4);
    assert!(html.contains("<a href=\"#host-0\">web-a</a>"));
    let web_a = html.split("id=\"host-0\"").nth(1).unwrap().split("<section class=\"host\"").next().unwrap();
    assert!(web_a.contains("<h2>Trend</h2><svg"), "web-a's trend from its history");
    assert!(!html.split("id=\"host-1\"").nth(1).unwrap().contains("<h2>Trend</h2>"), "web-b has one review: no trend");
    assert!(html.contains("<section id=\"fleet-wide\">") && html.contains("tcp:9200"));
}

#[test]
#[cfg_attr(
    vigil_missing = "py:prometheus_client",
    ignore = "needs py:prometheus_client (.ci/packages/fleet-report.txt)"
)]
fn prometheus_parses_with_escaped_labels_and_is_replaced_atomically() {
    vigil_testkit::require(&["py:prometheus_client"]);
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), &["web-a"]);
    let state = t.path().join("s");
    let out = t.path().join("vigil.prom");
    std::fs::write(&out, "old\n").unwrap();
    let old = std::fs::File::open(&out).unwrap();
    let old_inode = old.metadata().unwrap().ino();
    let a = app(&state, None);
    let code = block(vigil::fleet::report::finish(&a, &args(&inv, FleetFormat::Prometheus, &out, None), fleet(&inv)));
    let code = code.unwrap();
    assert_eq!(code, 3);
    // Replaced by a rename (a reader never sees half a file), readable by node_exporter.
    let m = std::fs::metadata(&out).unwrap();
    assert_ne!(m.ino(), old_inode, "written in place, not renamed over");
    assert_eq!(m.mode() & 0o777, 0o644);
    assert_eq!(std::io::read_to_string(old).unwrap(), "old\n");
    assert!(std::fs::read_dir(t.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_no_secrets(&text);
    assert!(text.contains("vigil_host_up{host=\"odd\\\"name\\\\x\"} 0"), "{text}");
    // The reference parser reads every sample back, the odd host name intact.
    let py = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let o = Command::new("/usr/bin/python3").args(["-c", py]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let samples: Vec<(String, std::collections::BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&o.stdout).unwrap();
    let get = |name: &str, host: &str, sev: Option<&str>| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && l["host"] == host && sev.is_none_or(|s| l.get("severity").map(String::as_str) == Some(s))
            })
            .map(|s| s.2)
    };
    let crit = reviews().web.count_at_least(vigil_tools::Severity::Critical) as f64;
    assert_eq!(get("vigil_findings", "web-a", Some("critical")), Some(crit));
    assert_eq!(get("vigil_host_up", "web-a", None), Some(1.0));
    assert_eq!(get("vigil_host_up", "db-down", None), Some(0.0));
    assert_eq!(get("vigil_host_up", "odd\"name\\x", None), Some(0.0));
    assert_eq!(get("vigil_findings", "db-down", Some("critical")), None, "no counts for a host not reviewed");
    let ts = get("vigil_last_review_timestamp_seconds", "web-a", None).unwrap();
    assert_eq!(ts as i64, vigil::fleet::history::unix_of(&reviews().web.generated_at).unwrap());
}

#[test]
fn jsonl_is_one_finding_per_line_with_its_host() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), &["web-a"]);
    let run = fleet(&inv);
    let findings: usize = run
        .hosts
        .iter()
        .map(|h| match &h.status {
            Status::Reviewed { review, .. } => review.findings.len(),
            Status::Failed(_) => 0,
        })
        .sum();
    let (_, text) = finish(&t.path().join("s"), &inv, run, FleetFormat::Jsonl, None);
    assert_no_secrets(&text);
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(lines.iter().filter(|v| v["event"] == "finding").count(), findings);
    assert!(lines.iter().all(|v| v["host"].is_string() && v["time"].is_string()));
    let port = lines.iter().find(|v| v["host"] == "web-b" && v["id"] == "ports.exposed-datastore").unwrap();
    assert_eq!(port["address"], "10.0.0.2");
    assert!(port["severity"].is_string() && port["title"].is_string());
    let down = lines.iter().find(|v| v["host"] == "db-down").unwrap();
    assert_eq!((down["event"].as_str(), down["reason"].as_str()), (Some("host-failed"), Some("unreachable")));
}

fn vigil(state: &Path, args: &[&str]) -> support::Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.arg("--state-dir").arg(state).args(args).env_clear();
    c.env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("HOME", state).env("NO_COLOR", "1");
    support::run(c, "")
}

#[test]
fn a_second_run_shows_new_and_resolved_per_host_and_status_reads_the_history() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), &["web-a", "web-b", "db-down", "old-box"]);
    let state = t.path().join("state");
    let without = |r: &Review, id: &str, subject: &str| {
        let mut r = r.clone();
        r.findings.retain(|f| !(f.id == id && f.subject == subject));
        r
    };
    let web = &reviews().web;
    // First run: web-a without the firewall finding, old-box reviewed two months ago.
    let first = run_of(
        &inv,
        vec![
            ok("web-a", 1, &aged(&without(web, "hardening.firewall-off", "firewall"), 2)),
            ok("web-b", 2, &aged(&reviews().clean, 2)),
            failed("db-down", 9, Reason::Unreachable, "ssh: connect to host 10.0.0.9 port 22: No route to host"),
            ok("old-box", 8, &aged(&reviews().clean, 60)),
        ],
    );
    let (_, text) = finish(&state, &inv, first, FleetFormat::Text, None);
    assert!(text.contains("first review of this host"), "{text}");
    // A month later: the firewall is off on web-a (new), port 9200 is closed (resolved);
    // old-box no longer answers in time.
    let second = run_of(
        &inv,
        vec![
            ok("web-a", 1, &aged(&without(web, "ports.exposed-datastore", "tcp:9200"), 1)),
            ok("web-b", 2, &aged(&reviews().clean, 1)),
            failed("db-down", 9, Reason::Unreachable, "ssh: connect to host 10.0.0.9 port 22: No route to host"),
            failed("old-box", 8, Reason::Timeout, "no answer within 600 s"),
        ],
    );
    let (_, json) = finish(&state, &inv, second.clone(), FleetFormat::Json, None);
    let v: Value = serde_json::from_str(&json).unwrap();
    let row = |i: usize| &v["rows"][i];
    assert_eq!((row(0)["new"].as_u64(), row(0)["resolved"].as_u64()), (Some(1), Some(1)), "{}", row(0));
    assert!(row(0)["since"].is_string());
    assert_eq!((row(1)["new"].as_u64(), row(1)["resolved"].as_u64()), (Some(0), Some(0)));
    let changes = &v["run"]["hosts"][0]["review"]["changes"];
    assert_eq!(changes["new"][0]["id"], "hardening.firewall-off");
    assert_eq!(changes["resolved"][0]["subject"], "tcp:9200");
    assert_eq!(row(3)["status"], "timeout");
    assert_eq!(row(3)["overdue"], true, "old-box's last review is 60 days old");
    assert_eq!(row(2)["overdue"], true, "db-down was never reviewed");
    assert_eq!(row(0)["overdue"], false);
    // The text of a third identical run says so per host, in its own review.
    let (_, text) = finish(&t.path().join("state"), &inv, second, FleetFormat::Text, None);
    assert!(text.contains("0 new and 0 resolved since"), "{text}");

    // `fleet status`: from the saved history alone.
    let r = vigil(&state, &["fleet", "status", "-i", inv.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    let host = |name: &str| s.as_array().unwrap().iter().find(|h| h["host"] == name).unwrap().clone();
    assert_eq!(host("web-a")["overdue"], false);
    assert_eq!(host("web-a")["last_attempt"]["result"], "reviewed");
    assert_eq!(host("old-box")["overdue"], true);
    assert_eq!(host("old-box")["last_attempt"]["result"], "timeout");
    assert_eq!(host("old-box")["last_review"].as_str().unwrap()[..10], rfc3339(now() - 60 * 86_400)[..10]);
    assert!(host("db-down")["last_review"].is_null());
    assert_eq!(host("db-down")["last_failure"]["detail"], "ssh: connect to host 10.0.0.9 port 22: No route to host");
    let r = vigil(&state, &["fleet", "status", "-i", inv.to_str().unwrap(), "--limit", "old*"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 hosts, 1 overdue, 1 failed at their last attempt"), "{}", r.stdout);
    assert!(
        r.stdout.contains("old-box  OVERDUE") && r.stdout.contains(": timeout (no answer within 600 s)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("web-a"), "--limit applies");
}

#[test]
fn schedule_install_fleet_runs_the_fleet_review_and_refuses_an_inventory_others_can_write() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("proc/net")).unwrap();
    let state = t.path().join("state");
    let invdir = t.path().join("ansible");
    std::fs::create_dir_all(invdir.join("host_vars")).unwrap();
    std::fs::set_permissions(&invdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let inv = inventory(&invdir, &["web-a", "db-down"]);
    let vars = invdir.join("host_vars/web-a.yml");
    std::fs::write(&vars, "ansible_port: 2222\n").unwrap();
    let (root_s, state_s) = (root.to_str().unwrap(), state.to_str().unwrap());
    let install = |inv: &str| {
        let r = vigil(&state, &["--root", root_s, "schedule", "install", "--monthly", "--fleet", inv]);
        (r.code, r.stdout + &r.stderr)
    };

    // Others can write the inventory, or a host_vars file beside it: refused, nothing installed.
    for (p, mode) in [(&inv, 0o666), (&vars, 0o664), (&invdir, 0o777)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, out) = install(inv.to_str().unwrap());
        assert_ne!(code, 0, "{out}");
        assert!(
            out.contains(&format!("{} can be changed by other users", p.display())) && out.contains("chmod go-w"),
            "{out}"
        );
        assert!(!root.join("etc/cron.d/vigil").exists());
        let back = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(back)).unwrap();
    }

    // Relative path given: the job gets the absolute one.
    let (url, hook) = support::http_server(200, 2, "/hook/T0KEN");
    let rel = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(&invdir)
        .args(["--state-dir", state_s, "--root", root_s, "schedule", "install", "--monthly", "--fleet", "hosts.ini"])
        .args(["--notify", &url])
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&rel.stdout).into_owned() + &String::from_utf8_lossy(&rel.stderr);
    assert!(rel.status.success(), "{out}");
    assert!(out.contains("fleet review of"), "{out}");
    let cron = std::fs::read_to_string(root.join("etc/cron.d/vigil")).unwrap();
    let line = cron.lines().find(|l| l.contains(" root ")).unwrap();
    let abs = std::fs::canonicalize(&inv).unwrap();
    assert!(line.ends_with(&format!("fleet review -i {} --scheduled >/dev/null 2>&1", abs.display())), "{line}");
    let r = vigil(&state, &["--root", root_s, "schedule", "status"]);
    assert!(r.stdout.contains(&format!("Fleet:    every server of {}", abs.display())), "{}", r.stdout);

    // What the job runs, as a scheduled run: every format kept, the run recorded for `schedule status`.
    let a = app(&state, Some(&root));
    let mut sargs = args(&abs, FleetFormat::Text, &t.path().join("unused"), None);
    sargs.out = None;
    sargs.scheduled = true;
    let run = run_of(
        &abs,
        vec![ok("web-a", 1, &reviews().clean), failed("db-down", 9, Reason::NoSudo, "sudo: a password is required")],
    );
    assert_eq!(block(vigil::fleet::report::finish(&a, &sargs, run)).unwrap(), 3);
    // The notification: the hosts and fleet-wide rows, sent to the schedule's --notify target.
    let body = hook.recv_timeout(std::time::Duration::from_secs(10)).expect("the webhook got the notification");
    let note: Value = serde_json::from_str(&body).unwrap();
    assert!(note["headline"].as_str().unwrap().contains("2 hosts: 1 reviewed, 0 partial, 1 failed"), "{note}");
    assert_eq!(note["rows"][1]["status"], "no-sudo", "{note}");
    assert!(note["reports"].as_array().unwrap().len() == 6, "{note}");
    let reports = state.join("fleet").join(vigil::fleet::history::inventory_id(&abs)).join("reports");
    let mut exts: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().path().extension().unwrap().to_string_lossy().into_owned())
        .collect();
    exts.sort();
    assert_eq!(exts, ["html", "json", "jsonl", "md", "prom", "txt"]);
    let r = vigil(&state, &["--root", root_s, "schedule", "status", "--json"]);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(s["installed"]["fleet"], abs.display().to_string());
    assert_eq!(s["last_run"]["exit"], 3);
    assert!(s["last_run"]["headline"].as_str().unwrap().contains("2 hosts: 1 reviewed, 0 partial, 1 failed"), "{s}");
    let r = vigil(&state, &["--root", root_s, "schedule", "remove"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!root.join("etc/cron.d/vigil").exists());
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn the_test_fleet_over_real_ssh_one_report_then_history_and_status() {
    vigil_testkit::require(vigil_testkit::sshfleet::COMPONENTS);
    use vigil_testkit::sshfleet::{Spec, SshFleet};
    let sshd = SshFleet::start(&Spec::standard());
    let inv = sshd.inventory_ini();
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let review = |format: &str, out: &Path| {
        let r = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("--state-dir")
            .arg(&state)
            .args([
                "fleet",
                "review",
                "-i",
                inv.to_str().unwrap(),
                "--timeout",
                "20",
                "--forks",
                "1",
                "--format",
                format,
                "--out",
            ])
            .arg(out)
            .env_remove("ANTHROPIC_API_KEY")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            r.status.code(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
            std::fs::read_to_string(out).unwrap_or_default(),
        )
    };
    let (code, err, text) = review("text", &t.path().join("fleet.txt"));
    if let Ok(keep) = std::env::var("VIGIL_FLEET_REPORT_SAMPLE") {
        std::fs::write(keep, &text).unwrap();
    }
    assert_eq!(code, Some(3), "hosts failed: exit 3\n{err}\n{text}");
    let row = |host: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("  {host} ")))
            .unwrap_or_else(|| panic!("{host}:\n{text}"))
            .to_string()
    };
    for h in sshd.hosts() {
        let want = h.kind.expected_failure().unwrap_or("reviewed");
        assert!(row(&h.name).contains(&format!(" {want} ")), "{}: {}", h.name, row(&h.name));
    }
    // web1's mistakes on the two servers whose root is web1 fold into one row naming both.
    let port =
        text.lines().find(|l| l.contains("[ports.exposed-datastore] tcp:9200 on ")).unwrap_or_else(|| panic!("{text}"));
    assert!(port.contains("on 2 servers: web1, sudo"), "{port}");
    assert!(text.contains("==== web1 (") && text.contains("==== sudo (") && text.contains("==== clean ("), "{text}");
    // With the clean host in the fleet, no admin is on every server.
    assert!(text.contains("USED ON NONE\n  none\n"), "{text}");

    // A second run: each reviewed host is compared with its own first review.
    let (code, err, json) = review("json", &t.path().join("fleet.json"));
    assert_eq!(code, Some(3), "{err}");
    let v: Value = serde_json::from_str(&json).unwrap();
    let web1 = v["rows"].as_array().unwrap().iter().find(|r| r["host"] == "web1").unwrap();
    assert!(web1["since"].is_string() && web1["new"] == 0 && web1["resolved"] == 0, "{web1}");
    let r = vigil(&state, &["fleet", "status", "-i", inv.to_str().unwrap(), "--json"]);
    let s: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stderr));
    let of = |name: &str| s.as_array().unwrap().iter().find(|h| h["host"] == name).unwrap().clone();
    assert_eq!(of("down")["last_attempt"]["result"], "unreachable");
    assert_eq!(of("down")["overdue"], true);
    assert_eq!(of("clean")["overdue"], false);
    assert!(of("clean")["last_review"].is_string());
}
