//! `vigil fleet review`'s runner and `vigil __remote`, without ssh: each host is this
//! build's `vigil __remote` started locally ([`support::fleet::LocalExchange`]) on a
//! fixture host. A fleet review finds on each host what `vigil review` finds there, with
//! the controller's feed; a hung host is given up at its deadline while the others
//! finish; `--forks` bounds how many run at once; a malformed request is refused; the
//! run's digest key travels on stdin only and is printed nowhere.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use support::fleet::LocalExchange;
use vigil::cli::{Cli, Command, FleetAction, FleetReviewArgs};
use vigil::fleet::outcome::{FleetRun, HostOutcome, Reason, Status};
use vigil::fleet::run::{Event, Planned, Settings};

fn fixture(name: &str) -> PathBuf {
    vigil_testkit::fixture_hosts().join(name)
}

fn feed_sample() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wordfence/feed-sample.json")).unwrap()
}

/// An INI inventory in `dir`: web1 and clean as fixture hosts, shop (web1 again, a third
/// server), and `extra` lines.
fn inventory(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("hosts.ini");
    let text = format!(
        "[web]\nweb1 vigil_root={web1}\nshop vigil_root={web1}\n{extra}\n[db]\nclean vigil_root={clean}\n",
        web1 = fixture("web1").display(),
        clean = fixture("clean").display(),
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// `vigil fleet review -i INV ARGS…`, parsed as the command line parses it.
fn args(inv: &Path, extra: &[&str]) -> FleetReviewArgs {
    let mut argv = vec!["vigil", "fleet", "review", "-i", inv.to_str().unwrap()];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Some(Command::Fleet { action: FleetAction::Review(a) }) => a,
        other => panic!("not a fleet review: {other:?}"),
    }
}

fn fleet(state: &Path, inv: &Path, extra: &[&str], feed: Vec<u8>) -> (FleetRun, Arc<LocalExchange>) {
    let ex = Arc::new(LocalExchange::new(state, feed));
    let bytes = ex.feed.len() as u64;
    let run = vigil::fleet::run::review_with(&args(inv, extra), ex.clone(), bytes).unwrap();
    (run, ex)
}

fn review_of(o: &HostOutcome) -> Value {
    match &o.status {
        Status::Reviewed { review, .. } => serde_json::to_value(review).unwrap(),
        Status::Failed(f) => panic!("{} was not reviewed: {} {}", o.name, f.reason.as_str(), f.detail),
    }
}

/// `(severity, id, subject, title)` of every open finding.
fn findings(review: &Value) -> BTreeSet<(String, String, String, String)> {
    review["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("severity"), s("id"), s("subject"), s("title"))
        })
        .collect()
}

fn ids(review: &Value) -> BTreeSet<String> {
    findings(review).into_iter().map(|f| f.1).collect()
}

/// `vigil review --root ROOT --offline --format json`, with the feed when given.
fn local_review(state: &Path, root: &Path, feed: Option<&Path>) -> Value {
    let mut a = vec!["review", "--offline", "--format", "json"];
    let feed_arg;
    if let Some(f) = feed {
        feed_arg = f.display().to_string();
        a.extend(["--vuln-feed", &feed_arg]);
    }
    let r = support::run(support::vigil_cmd_at(state, None, root, &a), "");
    assert!(r.code == 1 || r.code == 0 || r.code == 3, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn a_fleet_review_finds_on_each_host_what_vigil_review_finds_there() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), "");
    let (run, _) = fleet(&t.path().join("remote"), &inv, &["--forks", "3"], feed_sample());
    let names: Vec<&str> = run.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["web1", "shop", "clean"], "inventory order, whatever order they finished in");
    assert_eq!(run.inventory, inv.display().to_string());

    let feed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wordfence/feed-sample.json");
    for (host, root) in [("web1", "web1"), ("shop", "web1"), ("clean", "clean")] {
        let o = run.hosts.iter().find(|h| h.name == host).unwrap();
        let remote = review_of(o);
        let local = local_review(&t.path().join(format!("local-{host}")), &fixture(root), Some(&feed));
        assert_eq!(findings(&remote), findings(&local), "{host}: the fleet's review differs from `vigil review`");
        assert_eq!(remote["summary"]["by_severity"], local["summary"]["by_severity"]);
        assert_eq!(remote["host"]["root"], fixture(root).display().to_string());
        assert_eq!(remote["generated_at"], "2026-11-27T00:00:00Z", "judged by the host's own clock");
        assert!(remote["sandbox"].is_object(), "confined in the worker as `vigil review` is: {}", remote["sandbox"]);
    }
    assert!(ids(&review_of(&run.hosts[0])).contains("ports.exposed-datastore"));

    // The remote keeps no history and no reports of its own: the controller keeps them per host.
    for host in ["web1", "shop", "clean"] {
        let state = t.path().join("remote").join(host);
        let kept: Vec<String> =
            walk(&state).iter().map(|p| p.strip_prefix(&state).unwrap().display().to_string()).collect();
        assert!(!kept.iter().any(|p| p.contains("reviews/") || p.contains("reports/")), "{host} kept {kept:?}");
    }
}

#[test]
fn the_feed_the_controller_sends_is_the_one_the_host_uses() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), "");
    // The hosts have no feed of their own: without the controller's, nothing is checked.
    let (without, _) = fleet(&t.path().join("a"), &inv, &["--limit", "web1"], Vec::new());
    let r = review_of(&without.hosts[0]);
    assert!(ids(&r).contains("updates.no-vuln-feed"), "{:?}", ids(&r));
    assert!(!ids(&r).contains("updates.vulnerable-plugin"));

    let (with, _) = fleet(&t.path().join("b"), &inv, &["--limit", "web1"], feed_sample());
    let r = review_of(&with.hosts[0]);
    assert!(!ids(&r).contains("updates.no-vuln-feed"), "{:?}", ids(&r));
    let woo = findings(&r).into_iter().find(|f| f.1 == "updates.vulnerable-plugin" && f.3.contains("WooCommerce"));
    assert!(woo.is_some(), "the sample feed's WooCommerce record marks the shop's plugin: {:?}", ids(&r));
    // The feed was a private copy, gone once the host answered.
    let used = r["facts"]["wordpress_inventory"]["feed"]["path"].as_str().unwrap().to_string();
    assert!(used.ends_with("feed.json"), "{used}");
    assert!(!Path::new(&used).exists(), "the remote removed its copy of the feed: {used}");
}

#[test]
fn a_hung_host_times_out_at_its_deadline_while_the_others_finish() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), "stuck ansible_host=hang\ngone ansible_host=dies");
    let timeout = 20;
    let started = Instant::now();
    let (run, _) = fleet(&t.path().join("r"), &inv, &["--timeout", &timeout.to_string()], Vec::new());
    let took = started.elapsed();
    let by = |n: &str| run.hosts.iter().find(|h| h.name == n).unwrap();
    let stuck = by("stuck");
    match &stuck.status {
        Status::Failed(f) => assert_eq!(f.reason, Reason::Timeout, "{}", f.detail),
        Status::Reviewed { .. } => panic!("a host that never answers was reviewed"),
    }
    assert!(stuck.ms >= timeout * 1000 - 100, "given its whole deadline: {} ms", stuck.ms);
    assert!(stuck.ms <= timeout * 1000 + 2000, "timeout within deadline + 2 s: {} ms", stuck.ms);
    match &by("gone").status {
        Status::Failed(f) => {
            assert_eq!(f.reason, Reason::Error);
            assert!(f.detail.contains("vigil: killed"), "the remote's own last words: {}", f.detail);
        }
        Status::Reviewed { .. } => panic!("a host that died was reviewed"),
    }
    for h in ["web1", "shop", "clean"] {
        review_of(by(h));
        assert!(by(h).ms < timeout * 1000, "{h} did not wait for the hung host: {} ms", by(h).ms);
    }
    assert!(took < Duration::from_secs(timeout + 4), "the run ends at the hung host's deadline: {took:?}");
}

/// The largest number of hosts running at once, and the progress lines.
fn observe(forks: usize, hosts: &[Planned], ex: Arc<LocalExchange>) -> (usize, Vec<HostOutcome>, Vec<String>) {
    let running = Mutex::new((0usize, 0usize, Vec::new()));
    let settings = Settings { forks, timeout: Duration::from_secs(120), feed_bytes: 0 };
    let key = vigil::fleet::run::new_key().unwrap();
    let out = vigil::fleet::run::run_hosts(ex, hosts, &settings, &key, &|e| {
        let mut r = running.lock().unwrap();
        match e {
            Event::Started(_) => {
                r.0 += 1;
                r.1 = r.1.max(r.0);
            }
            Event::Finished(o) => {
                r.0 -= 1;
                r.2.push(vigil::fleet::run::line(o));
            }
        }
    });
    let (_, most, lines) = running.into_inner().unwrap();
    (most, out, lines)
}

#[test]
fn forks_bound_the_hosts_running_at_once_and_both_finish() {
    let t = tempfile::tempdir().unwrap();
    let inv = vigil::fleet::Inventory::load(&inventory(t.path(), "")).unwrap();
    let hosts = vigil::fleet::run::plan(&inv, None).unwrap();
    let (one, serial, lines) = observe(1, &hosts, Arc::new(LocalExchange::new(&t.path().join("1"), Vec::new())));
    let (four, parallel, _) = observe(4, &hosts, Arc::new(LocalExchange::new(&t.path().join("4"), Vec::new())));
    assert_eq!(one, 1, "--forks 1 runs one host at a time");
    assert_eq!(four, 3, "--forks 4 runs all three hosts at once");
    for (a, b) in serial.iter().zip(&parallel) {
        assert_eq!(a.name, b.name);
        assert_eq!(findings(&review_of(a)), findings(&review_of(b)), "{}: same review either way", a.name);
    }
    assert_eq!(lines.len(), 3);
    let web1 = lines.iter().find(|l| l.starts_with("web1: ")).unwrap();
    assert!(web1.contains("reviewed in") && web1.contains(" critical, ") && web1.contains(" high"), "{web1}");
    assert!(web1.find(" critical").unwrap() < web1.find(" high").unwrap(), "most severe first: {web1}");
}

#[test]
fn an_inventory_problem_fails_that_host_only_and_says_why() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), "odd ansible_port=99999");
    let (run, ex) = fleet(&t.path().join("r"), &inv, &["--limit", "odd:clean"], Vec::new());
    assert_eq!(run.hosts.len(), 2);
    assert_eq!(run.limit.as_deref(), Some("odd:clean"));
    match &run.hosts[0].status {
        Status::Failed(f) => {
            assert_eq!(f.reason, Reason::Error);
            assert!(f.detail.contains("inventory") && f.detail.contains("ansible_port"), "{}", f.detail);
        }
        Status::Reviewed { .. } => panic!("a host with an impossible port was contacted"),
    }
    review_of(&run.hosts[1]);
    assert_eq!(ex.seen.lock().unwrap().len(), 1, "only the resolvable host was contacted");
    // A pattern that matches nothing is an error naming it, not an empty run.
    let e = vigil::fleet::run::review_with(&args(&inv, &["--limit", "nosuch"]), ex.clone(), 0).unwrap_err();
    assert!(format!("{e:#}").contains("nosuch"), "{e:#}");
}

fn remote(stdin: &[u8]) -> support::Run {
    let t = tempfile::tempdir().unwrap();
    let mut c = support::vigil_cmd_at(t.path(), None, &fixture("clean"), &["__remote"]);
    c.stdin(std::process::Stdio::piped());
    let mut child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_malformed_request_gets_a_clear_error_and_exit_2() {
    for (input, says) in [
        (&b"hello\n"[..], "not one this vigil understands"),
        (b"", "no request on stdin"),
        (b"{\"kind\":\"review\",\"root\":null,\"key\":null,\"feed_bytes\":1000}\n{}", "ended after 2 of 1000 bytes"),
        (b"{\"kind\":\"review\",\"root\":null,\"key\":\"00ff\",\"feed_bytes\":0}\n", "64 hex digits"),
    ] {
        let r = remote(input);
        assert_eq!(r.code, 2, "{}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: one JSON answer: {}", r.stdout));
        assert_eq!(v["answer"], "error");
        assert_eq!(v["kind"], "invalid");
        assert!(v["message"].as_str().unwrap().contains(says), "{v}");
        assert_eq!(r.stdout.lines().count(), 1, "nothing else on stdout: {}", r.stdout);
        assert!(r.stderr.contains(says), "and a line on stderr: {}", r.stderr);
    }
    let long = vec![b'x'; 2 << 20];
    let r = remote(&long);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("over the 1024 KiB limit"), "{}", r.stdout);
    // A root that is not there is an error of the request, with the variable to fix.
    let r = remote(b"{\"kind\":\"review\",\"root\":\"/nonexistent/img\",\"key\":null}\n");
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("vigil_root /nonexistent/img") && r.stdout.contains("not a directory"), "{}", r.stdout);
}

#[test]
fn the_digest_key_travels_on_stdin_only_and_is_printed_nowhere() {
    let t = tempfile::tempdir().unwrap();
    let inv = inventory(t.path(), "");
    let (first, ex) = fleet(&t.path().join("r"), &inv, &[], feed_sample());
    let seen = ex.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let key = seen[0].key.clone().expect("a review request carries the run's key");
    assert_eq!(key.len(), 64, "32 bytes, as hex");
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(seen.iter().all(|s| s.key.as_deref() == Some(key.as_str())), "one key for the run");
    let half = &key[..16];
    for s in &seen {
        assert!(s.cmdline.contains("__remote"), "the child's own argv was read: {}", s.cmdline);
        for (what, text) in
            [("argv", &s.cmdline), ("environment", &s.environ), ("stdout", &s.stdout), ("stderr", &s.stderr)]
        {
            assert!(!text.contains(half), "{}: the key is in the remote's {what}", s.host);
        }
    }
    let json = serde_json::to_string(&first).unwrap();
    assert!(!json.contains(half), "the key is in the run");
    for f in walk(&t.path().join("r")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(half), "the key is in {}", f.display());
    }
    // A new run, a new key.
    let (_, again) = fleet(&t.path().join("r2"), &inv, &["--limit", "clean"], Vec::new());
    let other = again.seen.lock().unwrap()[0].key.clone().unwrap();
    assert_ne!(other, key, "every run has its own key");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "sshd",
        vigil_missing = "ssh",
        vigil_missing = "ssh-keygen",
        vigil_missing = "sudo",
        vigil_missing = "useradd"
    ),
    ignore = "needs root, sshd, ssh, ssh-keygen, sudo, useradd (.ci/packages/ssh.txt)"
)]
fn a_fleet_review_over_real_ssh_reviews_the_good_hosts_and_names_each_failure() {
    vigil_testkit::require(vigil_testkit::sshfleet::COMPONENTS);
    use vigil_testkit::sshfleet::{Spec, SshFleet};
    let sshd = SshFleet::start(&Spec::standard());
    let t = tempfile::tempdir().unwrap();
    let inv = sshd.inventory_ini();
    let feed = feed_sample();
    let bytes = feed.len() as u64;
    let timeout = 30;
    let ssh = vigil::fleet::ssh::Ssh::new(&inv.display().to_string(), t.path(), Duration::from_secs(10))
        .unwrap()
        .with_binary(Path::new(env!("CARGO_BIN_EXE_vigil")))
        .unwrap()
        .with_feed(feed);
    let started = Instant::now();
    let run = vigil::fleet::run::review_with(&args(&inv, &["--timeout", &timeout.to_string()]), Arc::new(ssh), bytes)
        .unwrap();
    let took = started.elapsed();
    let names: Vec<&str> = run.hosts.iter().map(|h| h.name.as_str()).collect();
    let expected: Vec<&str> = sshd.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, expected, "every host, in inventory order");
    for (o, h) in run.hosts.iter().zip(sshd.hosts()) {
        match (&o.status, h.kind.expected_failure()) {
            (Status::Reviewed { review, .. }, None) => {
                let ids: BTreeSet<&str> = review.findings.iter().map(|f| f.id.as_str()).collect();
                assert_eq!(review.host.root, h.root.as_ref().unwrap().display().to_string(), "{}", o.name);
                if h.root.as_ref().unwrap().ends_with("web1") {
                    assert!(ids.contains("ports.exposed-datastore"), "{}: {ids:?}", o.name);
                    assert!(ids.contains("updates.vulnerable-plugin"), "{}: the controller's feed: {ids:?}", o.name);
                }
            }
            (Status::Failed(f), Some(reason)) => {
                assert_eq!(f.reason.as_str(), reason, "{}: {}", o.name, f.detail);
                if reason == "timeout" {
                    assert!(o.ms <= timeout * 1000 + 2000, "{}: timeout within deadline + 2 s: {} ms", o.name, o.ms);
                }
            }
            (Status::Reviewed { .. }, Some(reason)) => panic!("{} was reviewed; expected {reason}", o.name),
            (Status::Failed(f), None) => {
                panic!("{} failed: {} {}\n{}", o.name, f.reason.as_str(), f.detail, sshd.host(&o.name).log())
            }
        }
    }
    assert!(took < Duration::from_secs(timeout + 30), "the hung host held up the run: {took:?}");
}
