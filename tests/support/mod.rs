//! Test support: a fake Messages API on 127.0.0.1, the real binary, a pseudo-terminal.
//!
//! The fake API answers each request with the next scripted [`Reply`] and
//! records what it got. [`FakeApi::check`] then asserts, on every request,
//! what the real API relies on: the headers, a streamed body with cached
//! system prompt and tools, every `tool_use` answered by exactly one
//! `tool_result` with its id, the previous assistant turn echoed verbatim, and
//! no secret anywhere in the body.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support: a failed unwrap is a failed test")]

pub mod fleet;
pub mod pty;

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The API key the tests use.
pub const KEY: &str = "sk-ant-api03-TESTKEYtestkeyTESTKEY0123456789";
/// The Redis password planted in fixtures/hosts/web1 (must never reach the API).
pub const PLANTED: &str = "Company2024!";

/// A fixture stream from fixtures/claude/.
pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/claude").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The messy fixture host.
pub fn web1() -> PathBuf {
    vigil_testkit::fixture_hosts().join("web1")
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this event stream, then close.
    Sse(String),
    /// An error status with headers and a body.
    Status(u16, Vec<(&'static str, &'static str)>, String),
    /// 200, chunked, then the connection is cut in the middle of a chunk.
    Drop(String),
    /// 200 with this stream, closed cleanly without `message_stop`.
    Cut(String),
    /// 200 with this start, then nothing for up to 20 s.
    Stall(String),
}

/// An error body as the API sends it.
pub fn error_body(kind: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}

/// What the fake API received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    /// The raw body.
    pub raw: String,
    /// The body as JSON.
    pub body: Value,
    /// The reply it got.
    pub reply: Option<Reply>,
}

#[derive(Default)]
struct State {
    replies: VecDeque<Reply>,
    received: Vec<Received>,
}

/// The fake Messages API.
pub struct FakeApi {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// Serve `replies` in order (a request beyond them gets a 500 that the checks flag).
    pub fn start(replies: Vec<Reply>) -> FakeApi {
        FakeApi::start_in(replies, None)
    }

    /// Serve `replies` on 127.0.0.1 inside the network namespace `netns` (`/run/netns/NAME`),
    /// for a binary run with `ip netns exec NAME`.
    pub fn start_in_netns(replies: Vec<Reply>, netns: &str) -> FakeApi {
        FakeApi::start_in(replies, Some(Path::new("/run/netns").join(netns)))
    }

    fn start_in(replies: Vec<Reply>, netns: Option<PathBuf>) -> FakeApi {
        let state = Arc::new(Mutex::new(State { replies: replies.into(), received: Vec::new() }));
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            if let Some(ns) = netns {
                // Only this thread enters the namespace; sockets it creates live there.
                let f = std::fs::File::open(&ns).unwrap_or_else(|e| panic!("{}: {e}", ns.display()));
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a valid namespace descriptor, for this thread only.
                let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {}: {}", ns.display(), std::io::Error::last_os_error());
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((sock, _)) = listener.accept().await else { return };
                    tokio::spawn(serve(sock, st.clone()));
                }
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).expect("fake API started");
        FakeApi { url: format!("http://{addr}"), state }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Assert the invariants on every request; returns them.
    pub fn check(&self) -> Vec<Received> {
        let got = self.received();
        let mut echo_due: Option<(Value, Vec<String>)> = None;
        for (n, r) in got.iter().enumerate() {
            let at = format!("request {}", n + 1);
            assert_eq!(r.headers.get("x-api-key").map(String::as_str), Some(KEY), "{at}: x-api-key");
            assert_eq!(r.headers.get("anthropic-version").map(String::as_str), Some("2023-06-01"), "{at}");
            assert!(r.headers.get("content-type").is_some_and(|c| c.starts_with("application/json")), "{at}");
            assert!(!r.raw.contains(KEY), "{at}: the API key is in the body");
            assert!(!r.raw.contains(PLANTED), "{at}: the planted password reached the API");
            let b = &r.body;
            assert_eq!(b["stream"], true, "{at}: not streamed");
            assert!(b["model"].as_str().is_some_and(|m| !m.is_empty()), "{at}: model");
            assert!(b["max_tokens"].as_u64().is_some_and(|m| m > 0), "{at}: max_tokens");
            let sys = b["system"].as_array().expect("system blocks");
            assert_eq!(sys.last().unwrap()["cache_control"]["type"], "ephemeral", "{at}: system not cached");
            let tools = b["tools"].as_array().expect("tools");
            assert!(tools.iter().any(|t| t["name"] == "list_open_ports"), "{at}: tools");
            assert_eq!(tools.last().unwrap()["cache_control"]["type"], "ephemeral", "{at}: tools not cached");
            for t in tools {
                assert!(t["description"].is_string() && t["input_schema"]["type"] == "object", "{at}: {t}");
            }
            let msgs = b["messages"].as_array().expect("messages");
            assert_eq!(msgs.first().map(|m| &m["role"]), Some(&Value::from("user")), "{at}: starts with user");
            check_tool_pairs(msgs, &at);
            if let Some((content, ids)) = echo_due.take() {
                // A turn dropped after a cancel has no results in this request and need not be echoed.
                let results = tool_results(b);
                let kept = ids.is_empty() || ids.iter().any(|id| results.contains_key(id));
                assert!(
                    !kept || msgs.iter().any(|m| m["role"] == "assistant" && m["content"] == content),
                    "{at}: the previous assistant turn was not echoed verbatim:\n{content:#}\nin\n{msgs:#?}"
                );
            }
            if let Some(Reply::Sse(s)) = &r.reply {
                let Ok(resp) = vigil::claude::stream::assemble(s.as_bytes()) else { continue };
                let stop = resp.stop_reason.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default();
                if stop == "tool_use" || stop == "pause_turn" {
                    let ids = resp
                        .content
                        .iter()
                        .filter_map(|c| match c {
                            vigil::claude::ContentBlock::ToolUse { id, .. } => Some(id.clone()),
                            _ => None,
                        })
                        .collect::<Vec<_>>();
                    echo_due = Some((Value::Array(resp.content.iter().map(|c| c.to_value()).collect()), ids));
                }
            }
        }
        got
    }
}

/// Every `tool_use` answered by exactly one `tool_result` with its id, in the next message, results first.
fn check_tool_pairs(msgs: &[Value], at: &str) {
    let mut answered: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let content = m["content"].as_array().cloned().unwrap_or_default();
        let results: Vec<String> = content
            .iter()
            .filter(|c| c["type"] == "tool_result")
            .map(|c| c["tool_use_id"].as_str().unwrap_or_default().to_string())
            .collect();
        if !results.is_empty() {
            let first_non_result = content.iter().position(|c| c["type"] != "tool_result").unwrap_or(content.len());
            assert!(
                content[..first_non_result].len() == results.len(),
                "{at}: message {i}: tool_result blocks must come first"
            );
            for id in &results {
                assert!(answered.contains(id), "{at}: message {i}: tool_result {id} answers no tool_use before it");
            }
        }
        if m["role"] != "assistant" {
            continue;
        }
        let uses: Vec<String> = content
            .iter()
            .filter(|c| c["type"] == "tool_use")
            .map(|c| c["id"].as_str().unwrap_or_default().to_string())
            .collect();
        if uses.is_empty() {
            continue;
        }
        let next = msgs.get(i + 1).unwrap_or_else(|| panic!("{at}: tool_use in message {i} has no answer"));
        assert_eq!(next["role"], "user", "{at}: message {} must be the user's tool results", i + 1);
        let mut got: Vec<String> = next["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "tool_result")
            .map(|c| c["tool_use_id"].as_str().unwrap_or_default().to_string())
            .collect();
        let mut want = uses.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{at}: every tool_use answered exactly once with its id");
        answered.extend(uses);
    }
}

async fn serve(mut sock: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut headers = HashMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let raw = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let reply = {
        let mut st = state.lock().unwrap();
        let reply = st.replies.pop_front();
        st.received.push(Received { headers, raw, body, reply: reply.clone() });
        reply
    };
    let sse_head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nrequest-id: req_fake_stream\r\nconnection: close\r\n\r\n";
    match reply {
        None => {
            let body = error_body("api_error", "fake API: no more scripted replies");
            let _ = sock
                .write_all(
                    format!(
                        "HTTP/1.1 500 Internal Server Error\r\nx-should-retry: false\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
        Some(Reply::Status(code, hdrs, body)) => {
            let mut h = format!(
                "HTTP/1.1 {code} Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in hdrs {
                h.push_str(&format!("{k}: {v}\r\n"));
            }
            let _ = sock.write_all(format!("{h}\r\n{body}").as_bytes()).await;
        }
        Some(Reply::Sse(s)) | Some(Reply::Cut(s)) => {
            let _ = sock.write_all(sse_head.as_bytes()).await;
            // Small writes, so events and UTF-8 characters straddle reads.
            for chunk in s.as_bytes().chunks(97) {
                if sock.write_all(chunk).await.is_err() {
                    return;
                }
                let _ = sock.flush().await;
            }
        }
        Some(Reply::Drop(s)) => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
            let half = &s.as_bytes()[..s.len() / 2];
            let _ = sock.write_all(head.as_bytes()).await;
            // Announce more than is sent, then hang up.
            let _ = sock.write_all(format!("{:x}\r\n", s.len()).as_bytes()).await;
            let _ = sock.write_all(half).await;
            let _ = sock.flush().await;
        }
        Some(Reply::Stall(s)) => {
            let _ = sock.write_all(sse_head.as_bytes()).await;
            let _ = sock.write_all(s.as_bytes()).await;
            let _ = sock.flush().await;
            let mut probe = [0u8; 1];
            // Until the client hangs up, at most 20 s.
            let _ = tokio::time::timeout(Duration::from_secs(20), sock.read(&mut probe)).await;
        }
    }
    let _ = sock.shutdown().await;
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

/// The binary, with a clean environment pointed at `api`, state in `state`, auditing web1.
pub fn vigil_cmd(state: &Path, api: Option<&FakeApi>, args: &[&str]) -> Command {
    vigil_cmd_at(state, api, &web1(), args)
}

/// The binary, with a clean environment pointed at `api`, state in `state`, auditing `root`.
pub fn vigil_cmd_at(state: &Path, api: Option<&FakeApi>, root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.arg("--state-dir").arg(state).arg("--root").arg(root).args(args);
    c.env_clear();
    c.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c.env("HOME", state);
    c.env("VIGIL_NOW", "2026-11-27T00:00:00Z");
    c.env("VIGIL_KEYRING", "kernel");
    c.env("NO_COLOR", "1");
    if let Some(api) = api {
        c.env("ANTHROPIC_API_KEY", KEY);
        c.env("ANTHROPIC_BASE_URL", &api.url);
    }
    c
}

/// Run it with no controlling terminal (its own session), stdin from `input`.
pub fn run(mut c: Command, input: &str) -> Run {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid in the child before exec; async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn vigil");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = wait_bounded(child, Duration::from_secs(60));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wait_bounded(child: std::process::Child, limit: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: killing the child we started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("vigil did not finish within {limit:?}");
        }
    }
}

/// `vigil ask ARGS…` against `api`.
pub fn ask(state: &Path, api: &FakeApi, args: &[&str]) -> Run {
    let mut a = vec!["ask"];
    a.extend_from_slice(args);
    run(vigil_cmd(state, Some(api), &a), "")
}

/// The registry as `vigil tools list --json` shows it.
pub fn tools(state: &Path) -> Vec<Value> {
    let r = run(vigil_cmd(state, None, &["tools", "list", "--json"]), "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// A tool_use stream in the documented format, for tools whose input is only known at run time.
pub fn tool_use_sse(id: &str, name: &str, input: &Value) -> String {
    let json = serde_json::to_string(input).unwrap();
    let (a, b) = json.split_at(json.len() / 2);
    let frag = |s: &str| serde_json::to_string(s).unwrap();
    format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_{id}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{{\"input_tokens\":50,\"output_tokens\":1}}}}}}\n\n\
event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"{id}\",\"name\":\"{name}\",\"input\":{{}}}}}}\n\n\
event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{}}}}}\n\n\
event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{}}}}}\n\n\
event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"tool_use\"}},\"usage\":{{\"output_tokens\":20}}}}\n\n\
event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
        frag(a),
        frag(b)
    )
}

/// A one-text answer stream.
pub fn text_sse(text: &str) -> String {
    let t = serde_json::to_string(text).unwrap();
    format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_t\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{{\"input_tokens\":10,\"output_tokens\":1}}}}}}\n\n\
event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{t}}}}}\n\n\
event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":9}}}}\n\n\
event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    )
}

/// The audit log's events.
pub fn audit_events(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .collect()
}

/// The tool_result blocks of a request, by id.
pub fn tool_results(body: &Value) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for msg in body["messages"].as_array().unwrap() {
        for c in msg["content"].as_array().cloned().unwrap_or_default() {
            if c["type"] == "tool_result" {
                m.insert(c["tool_use_id"].as_str().unwrap().to_string(), c);
            }
        }
    }
    m
}

/// A small audited root whose config has one backup job, `site`, with one real
/// tar.gz archive (3 files) of 2026-11-26: `verify_backup_restore` plans and
/// runs on it for real (it only reads the archive and writes a scratch
/// directory and its record under the state directory).
pub fn backup_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/vigil");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(root.path().join("etc/hostname"), "backuphost\n").unwrap();
    std::fs::write(etc.join("config.toml"), "[[backups]]\nname = \"site\"\npath = \"/var/backups/site/*.tar.gz\"\n")
        .unwrap();
    let dir = root.path().join("var/backups/site");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join("site-2026-11-26.tar.gz")).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
    for (name, body) in [
        ("site/index.php", "<?php require 'wp-blog-header.php';\n".repeat(3)),
        ("site/wp-config.php", "<?php define('DB_NAME', 'shop');\n".to_string()),
        ("site/wp-content/uploads/a.txt", "x".repeat(5000)),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_795_000_000);
        h.set_cksum();
        tar.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().sync_all().unwrap();
    // Modified on 2026-11-26 03:00 UTC, like a nightly job.
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_795_662_000);
    std::fs::File::options().write(true).open(dir.join("site-2026-11-26.tar.gz")).unwrap().set_modified(when).unwrap();
    root
}

/// The restore-test records written under a state directory (`hosts/*/restore-tests.json`), merged.
pub fn restore_records(state: &Path) -> Value {
    let mut all = serde_json::Map::new();
    for e in std::fs::read_dir(state.join("hosts")).into_iter().flatten().flatten() {
        if let Ok(t) = std::fs::read_to_string(e.path().join("restore-tests.json")) {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&t) {
                all.extend(m);
            }
        }
    }
    Value::Object(all)
}

/// A webhook receiver on 127.0.0.1 at `path`: answers `status` to each of up to `max`
/// requests and sends on the bodies it got.
pub fn http_server(status: u16, max: usize, path: &str) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", l.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in l.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).ok();
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
            let _ = write!(s, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, rx)
}
