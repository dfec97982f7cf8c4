//! `vigil review` end to end, with the real binary: the model's summary on top
//! of the deterministic review (and the review surviving any model failure),
//! the HTML report parsed and rendered in headless Chromium, the golden JSON
//! review of fixtures/hosts/web1, and what the fixture hosts must catch.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{FakeApi, KEY, PLANTED, Reply, text_sse};

const SUMMARY: &str = "1. First close tcp:9200 (ports.exposed-datastore).\n2. Then remove toor.\n3. Then fix backups.";

/// Git keeps neither modification times nor modes: give the fixture hosts the ones they describe.
fn prepare_fixtures() {
    vigil_testkit::fixture_hosts();
}

fn fixture_host(name: &str) -> PathBuf {
    vigil_testkit::fixture_hosts().join(name)
}

/// `vigil --root ROOT ARGS…` with a clean environment (no key unless `api`).
fn cmd(state: &Path, root: &Path, api: Option<&FakeApi>, args: &[&str]) -> Command {
    support::vigil_cmd_at(state, api, root, args)
}

/// `vigil --root ROOT review ARGS…`.
fn review_cmd(state: &Path, root: &Path, api: Option<&FakeApi>, args: &[&str]) -> Command {
    let mut a = vec!["review"];
    a.extend_from_slice(args);
    cmd(state, root, api, &a)
}

fn run(c: Command) -> support::Run {
    support::run(c, "")
}

/// The saved reports of a scheduled run, by extension.
fn reports(state: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(state.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.extension().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

#[test]
fn the_model_summary_comes_after_the_counts_in_every_format() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    let api = FakeApi::start(vec![Reply::Sse(text_sse(SUMMARY))]);
    let r = run(review_cmd(t.path(), &fixture_host("web1"), Some(&api), &["--scheduled", "--fail-on", "critical"]));
    assert_eq!(r.code, 1, "web1 has critical findings: {}", r.stderr);

    // One request: streamed, no tools, system prompt plus the instruction, the review as compact JSON.
    let got = api.received();
    assert_eq!(got.len(), 1, "one request for the summary");
    let req = &got[0];
    assert_eq!(req.headers.get("x-api-key").map(String::as_str), Some(KEY));
    assert!(!req.raw.contains(KEY), "the key is in the body");
    assert!(!req.raw.contains(PLANTED), "the planted password reached the API");
    let b = &req.body;
    assert_eq!(b["stream"], true);
    assert!(b.get("tools").is_none(), "the summary needs no tools: {}", b["tools"]);
    let sys = b["system"].as_array().unwrap();
    assert!(sys[0]["text"].as_str().unwrap().contains("vigil"));
    assert!(sys.last().unwrap()["text"].as_str().unwrap().contains("what to do first"));
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    let input: Value = serde_json::from_str(msgs[0]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(input["findings"].as_array().unwrap().iter().any(|f| f["id"] == "ports.exposed-datastore"));
    assert!(input.get("changes").is_some() && input.get("facts").is_none(), "findings and changes, never facts");
    assert!(req.raw.len() < 120_000, "compact input: {} bytes", req.raw.len());

    let rep = reports(t.path());
    let after_headline = |text: &str, headline: &str, summary: &str| {
        let h = text.find(headline).unwrap_or_else(|| panic!("no headline {headline:?} in\n{text}"));
        let s = text.find(summary).unwrap_or_else(|| panic!("no summary {summary:?} in\n{text}"));
        assert!(h < s, "the summary comes after the headline");
    };
    let json: Value = serde_json::from_str(&rep["json"]).unwrap();
    let headline = "critical,";
    assert_eq!(json["model_summary"]["text"], SUMMARY);
    assert_eq!(json["model_summary"]["model"], "claude-sonnet-4-5");
    assert!(json["model_summary"].get("error").is_none());
    after_headline(&rep["json"], "\"summary\"", "\"model_summary\"");
    after_headline(&rep["txt"], headline, "1. First close tcp:9200");
    after_headline(&rep["md"], headline, "1. First close tcp:9200");
    after_headline(&rep["html"], headline, "1. First close tcp:9200");
    // Before the findings, too: a reader sees the plan before the long table.
    assert!(rep["txt"].find("1. First close").unwrap() < rep["txt"].find("CRITICAL (").unwrap());
    let html = scraper::Html::parse_document(&rep["html"]);
    let advice = html.select(&sel("#model-summary .advice")).next().expect("the summary section");
    assert_eq!(advice.text().collect::<String>(), SUMMARY);
    // Saved with the review, so `vigil report` shows it.
    let saved = run(cmd(t.path(), &fixture_host("web1"), None, &["report", "--format", "json"]));
    assert!(saved.stdout.contains("First close tcp:9200"), "{}{}", saved.stdout, saved.stderr);
}

#[test]
fn an_unreachable_api_never_loses_the_scheduled_review() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = review_cmd(t.path(), &fixture_host("web1"), None, &["--scheduled", "--fail-on", "high"]);
    c.env("ANTHROPIC_API_KEY", KEY).env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}"));
    let started = std::time::Instant::now();
    let r = run(c);
    assert_eq!(r.code, 1, "the review's own exit code (high findings, --fail-on high): {}", r.stderr);
    assert!(started.elapsed().as_secs() < 30, "bounded retries: {:?}", started.elapsed());
    let rep = reports(t.path());
    assert_eq!(rep.keys().cloned().collect::<Vec<_>>(), ["html", "json", "md", "txt"]);
    let json: Value = serde_json::from_str(&rep["json"]).unwrap();
    let err = json["model_summary"]["error"].as_str().expect("the failure is recorded");
    assert!(err.contains("connection") || err.contains("gave up"), "{err}");
    assert!(json["model_summary"].get("text").is_none());
    assert!(json["findings"].as_array().unwrap().len() > 20, "the findings are all there");
    assert!(rep["html"].contains("No model summary"), "shown in the report");
    assert!(rep["txt"].contains("no model summary"));
    assert!(r.stderr.contains("no model summary"), "{}", r.stderr);
    assert!(!r.stderr.contains(KEY));

    // The API answering 401: same, with the API's message.
    let t = tempfile::tempdir().unwrap();
    let api = FakeApi::start(vec![Reply::Status(
        401,
        vec![("request-id", "req_401")],
        support::error_body("authentication_error", "invalid x-api-key"),
    )]);
    let r = run(review_cmd(t.path(), &fixture_host("web1"), Some(&api), &["--format", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(json["model_summary"]["error"].as_str().unwrap().contains("invalid x-api-key"), "{json:#}");
}

#[test]
fn offline_asks_nothing_and_no_key_says_so_once() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    let api = FakeApi::start(vec![Reply::Sse(text_sse(SUMMARY))]);
    let r = run(review_cmd(t.path(), &fixture_host("web1"), Some(&api), &["--offline", "--format", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(api.received().len(), 0, "--offline makes no request at all");
    let json: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(json.get("model_summary").is_none());
    assert!(!r.stderr.contains("model summary"), "{}", r.stderr);

    // No key, not offline: the review runs, and stderr says once how to add the summary.
    let r = run(review_cmd(t.path(), &fixture_host("web1"), None, &["--format", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(json.get("model_summary").is_none());
    assert_eq!(r.stderr.matches("no model summary").count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("vigil auth login") && r.stderr.contains("--offline"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// The HTML report

fn sel(s: &str) -> scraper::Selector {
    scraper::Selector::parse(s).unwrap()
}

/// Every property a self-contained, script-free, escaped report must have.
fn check_html(text: &str) -> scraper::Html {
    let doc = scraper::Html::parse_document(text);
    let csp = doc
        .select(&sel("meta[http-equiv=\"Content-Security-Policy\"]"))
        .next()
        .expect("a CSP meta element")
        .value()
        .attr("content")
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "no script source allowed: {csp}");
    assert_eq!(
        doc.select(&sel("script, iframe, object, embed, link, img, form")).count(),
        0,
        "nothing active or loaded"
    );
    for el in doc.root_element().descendants().filter_map(scraper::ElementRef::wrap) {
        for (name, value) in el.value().attrs() {
            assert!(!name.starts_with("on"), "event handler {name} on <{}>", el.value().name());
            if ["src", "href", "xlink:href", "action", "srcset", "poster", "data"].contains(&name) {
                let v = value.trim().to_ascii_lowercase();
                // A link the reader may click loads nothing by itself; only http(s) ones are made.
                let link = el.value().name() == "a" && name == "href";
                assert!(
                    v.starts_with('#') || (link && (v.starts_with("https://") || v.starts_with("http://"))),
                    "external or script URL in {name}={value:?}"
                );
            }
        }
    }
    for style in doc.select(&sel("style")) {
        let css = style.text().collect::<String>();
        assert!(!css.contains("url(") && !css.contains("@import"), "the CSS loads nothing");
    }
    doc
}

/// The counts of the summary section: card label → number.
fn cards(doc: &scraper::Html) -> std::collections::BTreeMap<String, usize> {
    let section = doc.select(&sel("section#summary")).next().expect("a summary section");
    section
        .select(&sel(".card"))
        .map(|c| {
            let n: usize = c.select(&sel("b")).next().unwrap().text().collect::<String>().parse().unwrap();
            let label = c.text().collect::<String>().trim_start_matches(char::is_numeric).to_string();
            (label, n)
        })
        .collect()
}

#[test]
fn html_report_is_self_contained_escaped_and_counts_match() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    let evil = "<script>alert(1)</script>";
    let reason = format!("{evil} \"quoted\" & 'single'");
    let ack = run(cmd(t.path(), &fixture_host("web1"), None, &["ack", "ports.exposed-datastore", "--reason", &reason]));
    assert_eq!(ack.code, 0, "{}", ack.stderr);
    let r = run(review_cmd(t.path(), &fixture_host("web1"), None, &["--offline", "--format", "html"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = check_html(&r.stdout);
    assert!(!r.stdout.contains(evil), "the planted markup is escaped");
    assert!(r.stdout.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // It reads back as the text it was.
    let acked: String = doc.select(&sel("li")).map(|l| l.text().collect::<String>()).collect::<Vec<_>>().join("\n");
    assert!(acked.contains(&format!("{evil} \"quoted\" & 'single'")), "{acked}");

    // The counts equal the JSON review's.
    let j = run(review_cmd(t.path(), &fixture_host("web1"), None, &["--offline", "--format", "json"]));
    let json: Value = serde_json::from_str(&j.stdout).unwrap();
    let got = cards(&doc);
    for sev in ["critical", "high", "medium", "low", "info"] {
        assert_eq!(got[sev], json["summary"]["by_severity"][sev].as_u64().unwrap() as usize, "{sev}: {got:?}");
    }
    assert!(got["critical"] > 0 && got.contains_key("new") && got.contains_key("resolved"), "{got:?}");
    let headline = doc.select(&sel("section#summary strong")).next().unwrap().text().collect::<String>();
    assert!(headline.starts_with(&format!("{} critical, {} high", got["critical"], got["high"])), "{headline}");
    let rows = doc.select(&sel("table.findings tr")).count() - 1;
    let mut kinds: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(rows, kinds.len(), "one row per kind of open finding: repeats are folded");
    let weak = doc
        .select(&sel("table.findings tr"))
        .map(|r| r.inner_html())
        .find(|h| h.contains("credentials.weak-db-password"))
        .expect("the weak passwords row");
    assert_eq!(weak.matches("/wp-config.php").count(), 3, "one row names the three sites' files: {weak}");
    // "Fix first": five rows, each with a fix, commands copyable as <code>.
    let first: Vec<String> = doc.select(&sel("section#fix-first li")).map(|l| l.inner_html()).collect();
    assert_eq!(first.len(), 5, "{first:?}");
    assert!(first.iter().all(|l| l.contains("Fix: ")), "{first:?}");
    assert!(first.iter().any(|l| l.contains("<code>passwd -l guest</code>")), "{first:?}");
    assert!(first[0].contains("critical"), "the most severe first: {}", first[0]);
    assert_eq!(doc.select(&sel("#legend .badge")).count(), 5, "a severity legend");
    let links: Vec<&str> = doc.select(&sel("a")).filter_map(|a| a.value().attr("href")).collect();
    assert!(links.contains(&"https://api.wordpress.org/secret-key/1.1/salt/"), "URLs in fixes are links: {links:?}");
    assert_eq!(doc.select(&sel("svg")).count(), 0, "no trend with a single month");
}

#[test]
fn html_escapes_a_hostile_host_name_and_draws_the_trend() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("proc/net")).unwrap();
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    std::fs::write(root.join("etc/hostname"), format!("{evil}\n")).unwrap();
    let state = t.path().join("state");
    for month in ["2026-09-27T00:00:00Z", "2026-10-27T00:00:00Z", "2026-11-27T00:00:00Z"] {
        let mut c = review_cmd(&state, &root, None, &["--offline", "--scheduled"]);
        c.env("VIGIL_NOW", month);
        let r = run(c);
        assert!(r.code == 0 || r.code == 1, "{month}: {}", r.stderr);
    }
    let rep = std::fs::read_dir(state.join("reports")).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    let html_files: Vec<&PathBuf> = rep.iter().filter(|p| p.extension().is_some_and(|e| e == "html")).collect();
    assert_eq!(html_files.len(), 3, "one report per run, the host name made a safe file name: {rep:?}");
    assert!(html_files.iter().all(|p| p.parent() == Some(&state.join("reports"))));
    let newest = html_files.iter().max().unwrap();
    let text = std::fs::read_to_string(newest).unwrap();
    let doc = check_html(&text);
    assert!(!text.contains("<script>") && !text.contains("<img"), "escaped");
    let title = doc.select(&sel("h1")).next().unwrap().text().collect::<String>();
    assert!(title.contains(evil), "{title}");
    // The trend: an inline SVG, one label per month, a line per severity.
    let svg = doc.select(&sel("svg")).next().expect("a trend chart with three months");
    let labels: Vec<String> = svg.select(&sel("text")).map(|t| t.text().collect()).collect();
    for m in ["2026-09", "2026-10", "2026-11"] {
        assert!(labels.iter().any(|l| l == m), "{m} in {labels:?}");
    }
    assert_eq!(svg.select(&sel("polyline")).count(), 4);
}

#[test]
#[cfg_attr(vigil_missing = "chromium", ignore = "needs chromium (.ci/packages/report.txt)")]
fn html_report_renders_in_headless_chromium_without_console_errors() {
    vigil_testkit::require(&["chromium"]);
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    // Two months of reviews, so the trend chart is drawn too, and a model summary section.
    let mut c = review_cmd(&state, &fixture_host("web1"), None, &["--offline"]);
    c.env("VIGIL_NOW", "2026-10-27T00:00:00Z");
    assert_eq!(run(c).code, 0);
    let api = FakeApi::start(vec![Reply::Sse(text_sse(SUMMARY))]);
    let page = t.path().join("web1.html");
    let r = run(review_cmd(
        &state,
        &fixture_host("web1"),
        Some(&api),
        &["--format", "html", "--out", &page.display().to_string()],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let profile = t.path().join("chromium");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    // The DOM came back rendered, with the summary, the trend and the model's section.
    assert!(dom.contains("id=\"summary\"") && dom.contains("<svg") && dom.contains("id=\"model-summary\""), "{dom}");
    assert!(dom.contains("ports.exposed-datastore"));
    // No console message at all, no CSP violation, nothing refused or failed to load.
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Refused to")
                || l.contains("Content Security Policy")
                || l.contains("Uncaught")
                || l.contains("net::ERR")
        })
        .collect();
    assert!(bad.is_empty(), "console errors:\n{}", bad.join("\n"));
    // VIGIL_SCREENSHOT=FILE.png keeps a picture of the page, to look at.
    if let Some(png) = std::env::var_os("VIGIL_SCREENSHOT") {
        let st = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--window-size=1280,2000")
            .arg(format!("--screenshot={}", PathBuf::from(&png).display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(st.status.success() && std::fs::metadata(&png).unwrap().len() > 10_000);
    }
}

// ---------------------------------------------------------------------------------------------
// The golden review and what the fixture hosts catch

/// The review exactly as printed, with what differs from run to run replaced: timings, the checkout's path,
/// the audit chain head's hash.
fn normalise(text: &str) -> String {
    let root = fixture_host("web1").display().to_string();
    let timings = regex::Regex::new(r#""(duration_ms|ms)": \d+"#).unwrap();
    let text = timings.replace_all(&text.replace(&root, "fixtures/hosts/web1"), "\"$1\": 0").into_owned();
    // The audit chain head's hash covers the entries' wall-clock times.
    let head = regex::Regex::new(r#""hash": "[0-9a-f]{64}""#).unwrap();
    head.replace_all(&text, "\"hash\": \"(audit chain head)\"").into_owned()
}

fn offline_text(state: &Path, host: &str) -> String {
    let r = run(review_cmd(state, &fixture_host(host), None, &["--offline", "--format", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

fn offline_json(state: &Path, host: &str) -> Value {
    serde_json::from_str(&offline_text(state, host)).unwrap()
}

#[test]
fn golden_web1_review() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    let text = normalise(&offline_text(t.path(), "web1"));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/web1-review.json");
    if std::env::var("VIGIL_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &text).unwrap();
        println!("blessed {}", golden.display());
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!("{}: {e} (VIGIL_BLESS=1 cargo test --test review golden writes it)", golden.display())
    });
    if want != text {
        let diff: Vec<String> = want
            .lines()
            .zip(text.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(20)
            .map(|(i, (a, b))| format!("line {}:\n  want {a}\n  got  {b}", i + 1))
            .collect();
        panic!(
            "the review of web1 differs from {} ({} vs {} lines); if the change is intended, rerun with VIGIL_BLESS=1\n{}",
            golden.display(),
            want.lines().count(),
            text.lines().count(),
            diff.join("\n")
        );
    }
    // A second run gives the same review (nothing else varies).
    let t2 = tempfile::tempdir().unwrap();
    assert_eq!(normalise(&offline_text(t2.path(), "web1")), text);
}

#[test]
fn web1_catches_every_pattern_but_containers() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    let v = offline_json(t.path(), "web1");
    let cats: BTreeSet<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| f["category"].as_str().unwrap())
        .collect();
    for c in ["credentials", "updates", "hardening", "backups", "ports", "accounts"] {
        assert!(cats.contains(c), "no {c} finding on web1: {cats:?}");
    }
    for id in ["ports.exposed-datastore", "accounts.extra-uid0"] {
        assert!(v["findings"].as_array().unwrap().iter().any(|f| f["id"] == id), "{id}");
    }
    assert!(v["tools"].as_object().unwrap().values().all(|t| t["ok"] == true), "{:#}", v["tools"]);
}

#[test]
fn the_clean_host_has_nothing_above_info() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    // The first review makes the host's state directory; a well-run server's restores were tested last week.
    offline_json(t.path(), "clean");
    let hosts: Vec<PathBuf> = std::fs::read_dir(t.path().join("hosts")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(hosts.len(), 1);
    let week_ago = 1_795_737_600 - 7 * 86_400; // 2026-11-27T00:00Z minus a week
    let record = serde_json::json!({
        "nightly-db": {"at": week_ago, "ok": true, "archive": "/var/backups/mariadb/app-2026-11-19.sql.gz", "files": 12, "detail": "restored and read to the end"},
        "nightly-files": {"at": week_ago, "ok": true, "archive": "/backup/clean/files/site-2026-11-19.tar.gz", "files": 1480, "detail": "restored and read to the end"},
    });
    let p = hosts[0].join("restore-tests.json");
    std::fs::write(&p, record.to_string()).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let v = offline_json(t.path(), "clean");
    let loud: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| format!("{} {} {}", f["severity"], f["id"], f["subject"]))
        .collect();
    assert!(loud.is_empty(), "the clean host cries wolf:\n{}", loud.join("\n"));
    assert!(v["tools"].as_object().unwrap().values().all(|t| t["ok"] == true), "{:#}", v["tools"]);
}

#[test]
fn the_text_report_says_what_to_fix_first_and_folds_repeats() {
    prepare_fixtures();
    let t = tempfile::tempdir().unwrap();
    let r = run(review_cmd(t.path(), &fixture_host("web1"), None, &["--offline"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = &r.stdout;
    let first = text.split("FIX FIRST\n").nth(1).expect("a FIX FIRST section").split("\n\n").next().unwrap();
    let items: Vec<&str> = first.lines().filter(|l| l.trim_start().starts_with(char::is_numeric)).collect();
    assert_eq!(items.len(), 5, "{first}");
    assert!(
        items[0].contains("[ports.exposed-datastore] tcp:9200"),
        "critical and open to the internet first: {first}"
    );
    assert_eq!(first.matches("\n     fix: ").count() + usize::from(first.starts_with("     fix: ")), 5, "{first}");
    assert!(text.find("FIX FIRST") < text.find("CRITICAL ("), "Fix first comes before the full list");
    assert!(text.contains("3 subjects [credentials.weak-db-password] Weak database password for …"), "{text}");
    assert_eq!(text.matches("[credentials.weak-db-password]").count(), 1, "one row for the three sites");
    assert!(text.contains("fix: Run `vigil vulndb update`"), "notes show their fix as the HTML does: {text}");
}
