//! `vigil vulndb update` against a local HTTP server: the feed lands 0600 in
//! the state directory and the next review uses it; a server error, a cut
//! download or a body that is not a feed keeps the old one and exits 2; the
//! key goes only into the bearer header.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use support::{run, vigil_cmd};

const WF_KEY: &str = "wf-TESTKEY-0123456789abcdefWFKEY";

fn sample() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wordfence/feed-sample.json")).unwrap()
}

/// What the server answers.
#[derive(Clone)]
enum Answer {
    /// 200 with this body and its length.
    Ok(Vec<u8>),
    /// This status, a short body.
    Status(u16),
    /// 200 announcing the whole length, half sent, then closed.
    ShortLength(Vec<u8>),
    /// 200 chunked, half sent, no final chunk, then closed.
    ShortChunked(Vec<u8>),
    /// 200 delimited by closing the connection, half sent (only the JSON parse can tell).
    ShortClose(Vec<u8>),
}

struct Server {
    url: String,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

impl Server {
    fn start(answer: Answer) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/intelligence/v3/vulnerabilities/production", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(answer));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (answer.clone(), requests.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match sock.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => break,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let headers = text
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                r.lock().unwrap().push(headers);
                let answer = a.lock().unwrap().clone();
                let _ = respond(&mut sock, answer);
            }
        });
        Server { url, answer, requests }
    }

    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn last_request(&self) -> HashMap<String, String> {
        self.requests.lock().unwrap().last().cloned().expect("a request")
    }
}

fn respond(sock: &mut std::net::TcpStream, answer: Answer) -> std::io::Result<()> {
    match answer {
        Answer::Ok(body) => {
            write!(
                sock,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )?;
            sock.write_all(&body)
        }
        Answer::Status(code) => {
            let body = r#"{"message":"internal error"}"#;
            write!(sock, "HTTP/1.1 {code} Oops\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
        }
        Answer::ShortLength(body) => {
            write!(sock, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len())?;
            sock.write_all(&body[..body.len() / 2])
        }
        Answer::ShortChunked(body) => {
            write!(sock, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")?;
            write!(sock, "{:x}\r\n", body.len())?;
            sock.write_all(&body[..body.len() / 2])
        }
        Answer::ShortClose(body) => {
            write!(sock, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")?;
            sock.write_all(&body[..body.len() / 2])
        }
    }
}

fn update(state: &Path, server: &Server) -> support::Run {
    let mut c = vigil_cmd(state, None, &["vulndb", "update", "--url", &server.url]);
    c.env("WORDFENCE_API_KEY", WF_KEY);
    c.env("VIGIL_KEYRING_SERVICE", format!("vigil-test-vulndb-{}", std::process::id()));
    run(c, "")
}

fn review_ids(state: &Path) -> String {
    let r = run(vigil_cmd(state, None, &["review", "--offline", "--format", "json"]), "");
    assert!(r.code == 0, "review: {}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string() + "\n").collect()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

fn assert_key_nowhere(state: &Path, outputs: &[&support::Run]) {
    for r in outputs {
        assert!(!r.stdout.contains(WF_KEY) && !r.stderr.contains(WF_KEY), "the key was printed");
        assert!(!r.stdout.contains("TESTKEY") && !r.stderr.contains("TESTKEY"), "part of the key was printed");
    }
    for f in files(state) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("TESTKEY"), "the key is in {}", f.display());
    }
}

#[test]
fn a_downloaded_feed_is_private_and_the_next_review_uses_it() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path();
    assert!(review_ids(state).contains("updates.no-vuln-feed\n"));

    let server = Server::start(Answer::Ok(sample()));
    let r = update(state, &server);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("7 records") && r.stdout.contains("11.8 kB"), "{}", r.stdout);
    let req = server.last_request();
    assert_eq!(req.get("authorization").map(String::as_str), Some(format!("Bearer {WF_KEY}").as_str()));

    let feed = state.join("wordfence-vulnerabilities.json");
    assert_eq!(std::fs::read(&feed).unwrap(), sample());
    assert_eq!(std::fs::metadata(&feed).unwrap().permissions().mode() & 0o777, 0o600);
    let ids = review_ids(state);
    assert!(ids.contains("updates.vulnerable-plugin\n"), "{ids}");
    assert!(!ids.contains("updates.no-vuln-feed\n"), "{ids}");

    let log = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    assert!(log.contains("vulndb-update"), "the update is in the audit log");
    let v = run(vigil_cmd(state, None, &["log", "verify"]), "");
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert_key_nowhere(state, &[&r]);
}

#[test]
fn a_failed_download_keeps_the_old_feed() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path();
    let server = Server::start(Answer::Ok(sample()));
    assert_eq!(update(state, &server).code, 0);
    let feed = state.join("wordfence-vulnerabilities.json");
    let before = std::fs::read(&feed).unwrap();
    let mtime = std::fs::metadata(&feed).unwrap().modified().unwrap();

    let cases: Vec<(&str, Answer, &str)> = vec![
        ("500", Answer::Status(500), "HTTP 500"),
        ("401", Answer::Status(401), "the API key was refused"),
        ("short content-length", Answer::ShortLength(sample()), "broke off"),
        ("short chunked", Answer::ShortChunked(sample()), "broke off"),
        ("short close-delimited", Answer::ShortClose(sample()), "not a usable feed"),
        ("invalid JSON", Answer::Ok(b"<html>maintenance</html>".to_vec()), "not a usable feed"),
        ("JSON but no feed", Answer::Ok(br#"{"error": "quota"}"#.to_vec()), "not a usable feed"),
    ];
    let mut runs = Vec::new();
    for (name, answer, want) in cases {
        server.set(answer);
        let r = update(state, &server);
        assert_eq!(r.code, 2, "{name}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(want), "{name}: wanted {want:?} in {}", r.stderr);
        assert!(r.stderr.contains("is kept"), "{name}: {}", r.stderr);
        assert_eq!(std::fs::read(&feed).unwrap(), before, "{name}: the old feed changed");
        assert_eq!(std::fs::metadata(&feed).unwrap().modified().unwrap(), mtime, "{name}");
        let leftovers: Vec<_> = files(state).into_iter().filter(|p| p.to_string_lossy().ends_with(".part")).collect();
        assert!(leftovers.is_empty(), "{name}: temporary file left: {leftovers:?}");
        runs.push(r);
    }
    let log = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    assert_eq!(log.matches(r#""ok":false"#).count(), 7, "every failure is in the audit log");
    let refs: Vec<&support::Run> = runs.iter().collect();
    assert_key_nowhere(state, &refs);
}

#[test]
fn without_a_key_nothing_is_downloaded() {
    let t = tempfile::tempdir().unwrap();
    let server = Server::start(Answer::Ok(sample()));
    let mut c = vigil_cmd(t.path(), None, &["vulndb", "update", "--url", &server.url]);
    c.env("VIGIL_KEYRING_SERVICE", format!("vigil-test-vulndb-none-{}", std::process::id()));
    let r = run(c, "");
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("WORDFENCE_API_KEY") && r.stderr.contains("auth login --wordfence"), "{}", r.stderr);
    assert!(server.requests.lock().unwrap().is_empty(), "no request without a key");
    assert!(!t.path().join("wordfence-vulnerabilities.json").exists());
}

/// `vigil auth login --wordfence` stores the key in the kernel keyring and `vulndb update` sends it.
#[test]
#[cfg_attr(vigil_missing = "keyctl", ignore = "needs keyctl (.ci/packages/base.txt)")]
fn the_key_from_the_keyring_is_sent_as_a_bearer_token() {
    vigil_testkit::require(&["keyctl"]);
    let t = tempfile::tempdir().unwrap();
    let server = Server::start(Answer::Ok(sample()));
    let v = env!("CARGO_BIN_EXE_vigil");
    let s = t.path().display();
    let script = format!(
        "echo {WF_KEY} | {v} --state-dir {s} auth login --wordfence && {v} --state-dir {s} auth status; \
         {v} --state-dir {s} vulndb update --url {url} && {v} --state-dir {s} auth logout --wordfence",
        url = server.url
    );
    let out = std::process::Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &script])
        .env("VIGIL_KEYRING", "kernel")
        .env("VIGIL_KEYRING_SERVICE", format!("vigil-test-wf-{}", std::process::id()))
        .env_remove("WORDFENCE_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Stored the Wordfence API key in the kernel"), "{stdout}");
    assert!(stdout.contains("Wordfence API key: from the OS keyring"), "{stdout}");
    assert!(stdout.contains("Updated the Wordfence feed: 7 records"), "{stdout}");
    assert!(stdout.contains("Removed the Wordfence API key"), "{stdout}");
    assert!(!stdout.contains("TESTKEY") && !stderr.contains("TESTKEY"), "the key was printed");
    let req = server.last_request();
    assert_eq!(req.get("authorization").map(String::as_str), Some(format!("Bearer {WF_KEY}").as_str()));
    for f in files(t.path()) {
        assert!(!String::from_utf8_lossy(&std::fs::read(&f).unwrap()).contains("TESTKEY"), "{}", f.display());
    }
}
