//! The HTTP side: one streamed `POST /v1/messages`, retried when that helps.
//!
//! Retried: 408, 409, 429, 5xx and 529; a connection that fails or drops
//! before `message_stop`; an `overloaded_error` event on a 200 stream. The
//! server's `x-should-retry: true|false` overrides the status. Waits follow
//! `retry-after-ms`, then `retry-after` (seconds or an HTTP date), else
//! exponential backoff with full jitter; at most [`MAX_ATTEMPTS`] attempts and
//! [`MAX_TOTAL_WAIT`] of waiting in all. 400/401/403/404 and other client
//! errors fail at once with the API's message and the `request-id`.
//!
//! The API key is a `SecretString`, exposed only to build the (sensitive)
//! header. With `VIGIL_RECORD=DIR` every attempt's request body and raw
//! response are saved as `NNN.request.json` / `NNN.sse`, redacted, without the
//! key, so a real session becomes new test fixtures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use thiserror::Error;
use vigil_tools::Redactor;
use vigil_tools::format::error_chain;

use super::sse::{SseParser, decode};
use super::stream::{Assembler, Step};
use super::types::{Request, Response};

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version header.
pub const API_VERSION: &str = "2023-06-01";
/// Most attempts per request (the first included).
pub const MAX_ATTEMPTS: u32 = 4;
/// Most time spent waiting between attempts, in all.
pub const MAX_TOTAL_WAIT: Duration = Duration::from_secs(60);
/// First backoff ceiling; doubles per attempt up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_millis(500);
/// Largest backoff ceiling.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Why a request failed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("the Claude API answered {status} {kind}: {message}{}{}", rid(.request_id), key_hint(*.status, .key_source))]
    Status {
        /// HTTP status.
        status: u16,
        /// Error type (`authentication_error`, …).
        kind: String,
        /// The API's message.
        message: String,
        /// The `request-id` header.
        request_id: Option<String>,
        /// Where the key came from (said when the key is refused).
        key_source: Option<String>,
    },
    /// An `error` event on a 200 stream.
    #[error("the Claude API stream failed with {kind}: {message}{}", rid(.request_id))]
    Stream {
        /// Error type.
        kind: String,
        /// Its message.
        message: String,
        /// The `request-id` header.
        request_id: Option<String>,
    },
    /// The stream did not make sense.
    #[error("{source}{}", rid(.request_id))]
    Malformed {
        /// What was wrong.
        source: super::sse::SseError,
        /// The `request-id` header.
        request_id: Option<String>,
    },
    /// No answer, or the connection dropped mid-stream.
    #[error("connection to the Claude API failed: {0}")]
    Connection(String),
    /// Retries exhausted.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<ApiError>,
    },
}

fn rid(r: &Option<String>) -> String {
    r.as_ref().map(|r| format!(" (request-id {r})")).unwrap_or_default()
}

impl ApiError {
    /// The `request-id` of the failing response, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Status { request_id, .. }
            | ApiError::Stream { request_id, .. }
            | ApiError::Malformed { request_id, .. } => request_id.as_deref(),
            ApiError::GaveUp { last, .. } => last.request_id(),
            ApiError::Connection(_) => None,
        }
    }
}

/// Progress the caller may show.
#[derive(Debug)]
pub enum Note<'a> {
    /// Text as it arrives.
    Text(&'a str),
    /// Thinking text as it arrives.
    Thinking(&'a str),
    /// An attempt failed and another follows after `delay`.
    Retrying {
        /// The attempt that failed (1-based).
        attempt: u32,
        /// The wait before the next.
        delay: Duration,
        /// Why.
        why: String,
    },
}

/// Where the client connects and with what.
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    key: SecretString,
    recorder: Option<Recorder>,
    max_attempts: u32,
    key_source: Option<String>,
}

/// What to do about a refused key (401): where it came from and what to run.
fn key_hint(status: u16, source: &Option<String>) -> String {
    if status != 401 {
        return String::new();
    }
    let from = source.as_deref().map(|s| format!(" the key from {s} was refused;")).unwrap_or_default();
    format!(
        " —{from} check it with `vigil auth status` and store a working one with `vigil auth login` \
         (or fix ANTHROPIC_API_KEY)"
    )
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base_url", &self.base_url).field("key", &"[REDACTED]").finish()
    }
}

enum Retry {
    No,
    After(Option<Duration>),
}

struct Failure {
    error: ApiError,
    retry: Retry,
}

impl Client {
    /// A client for `base_url` (else `ANTHROPIC_BASE_URL`, else the public API), recording when
    /// `VIGIL_RECORD` is set.
    pub fn new(key: SecretString, base_url: Option<String>) -> anyhow::Result<Client> {
        let base_url = base_url
            .or_else(|| std::env::var("ANTHROPIC_BASE_URL").ok().filter(|s| !s.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
            .trim_end_matches('/')
            .to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(180))
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let recorder = match std::env::var_os("VIGIL_RECORD").filter(|v| !v.is_empty()) {
            Some(d) => Some(Recorder::new(PathBuf::from(d), key.clone())?),
            None => None,
        };
        Ok(Client { http, base_url, key, recorder, max_attempts: MAX_ATTEMPTS, key_source: None })
    }

    /// Say where the key came from, so a refused key (401) names it.
    pub fn with_key_source(mut self, source: impl std::fmt::Display) -> Client {
        self.key_source = Some(source.to_string());
        self
    }

    /// The endpoint.
    pub fn url(&self) -> String {
        format!("{}/v1/messages", self.base_url)
    }

    /// Send one request and stream its answer through `on`, retrying as documented.
    pub async fn send(&self, req: &Request, on: &mut (dyn FnMut(Note<'_>) + Send)) -> Result<Response, ApiError> {
        let body = serde_json::to_vec(req).map_err(|e| ApiError::Connection(format!("cannot encode request: {e}")))?;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut rec = self.recorder.as_ref().map(|r| r.start(&body));
            let r = self.attempt(&body, on, rec.as_mut()).await;
            if let (Some(rec), Some(r)) = (rec, &self.recorder) {
                r.finish(rec);
            }
            let failure = match r {
                Ok(resp) => return Ok(resp),
                Err(f) => f,
            };
            let hint = match failure.retry {
                Retry::No => return Err(failure.error),
                Retry::After(h) => h,
            };
            let delay = hint.unwrap_or_else(|| backoff(attempt));
            if attempt >= self.max_attempts || waited + delay > MAX_TOTAL_WAIT {
                return Err(if attempt == 1 {
                    failure.error
                } else {
                    ApiError::GaveUp { attempts: attempt, last: Box::new(failure.error) }
                });
            }
            on(Note::Retrying { attempt, delay, why: failure.error.to_string() });
            tokio::time::sleep(delay).await;
            waited += delay;
        }
    }

    async fn attempt(
        &self,
        body: &[u8],
        on: &mut (dyn FnMut(Note<'_>) + Send),
        mut rec: Option<&mut Recording>,
    ) -> Result<Response, Failure> {
        let mut key = HeaderValue::from_str(self.key.expose_secret()).map_err(|_| Failure {
            error: ApiError::Connection("the API key contains characters not allowed in a header".into()),
            retry: Retry::No,
        })?;
        key.set_sensitive(true);
        let sent = self
            .http
            .post(self.url())
            .header("x-api-key", key)
            .header("anthropic-version", API_VERSION)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(body.to_vec())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Err(Failure { error: ApiError::Connection(error_chain(&e)), retry: Retry::No });
            }
            Err(e) => return Err(Failure { error: ApiError::Connection(error_chain(&e)), retry: Retry::After(None) }),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let request_id = header(&headers, "request-id").map(str::to_string);
        if status != 200 {
            let text = resp.text().await.unwrap_or_default();
            if let Some(r) = rec.as_deref_mut() {
                r.status = status;
                r.body.extend_from_slice(text.as_bytes());
            }
            let (kind, message) = api_error(&text, status);
            let error = ApiError::Status { status, kind, message, request_id, key_source: self.key_source.clone() };
            let retry = match header(&headers, "x-should-retry") {
                Some("true") => true,
                Some("false") => false,
                _ => matches!(status, 408 | 409 | 429) || status >= 500,
            };
            return Err(Failure {
                error,
                retry: if retry { Retry::After(retry_after(&headers, SystemTime::now())) } else { Retry::No },
            });
        }
        let mut parser = SseParser::new();
        let mut asm = Assembler::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let error = ApiError::Connection(format!("the stream broke off: {}", error_chain(&e)));
                    return Err(Failure { error, retry: Retry::After(None) });
                }
            };
            if let Some(r) = rec.as_deref_mut() {
                r.body.extend_from_slice(&chunk);
            }
            for ev in parser.push(&chunk) {
                let ev = decode(&ev).map_err(|source| Failure {
                    error: ApiError::Malformed { source, request_id: request_id.clone() },
                    retry: Retry::No,
                })?;
                match asm.feed(ev) {
                    Step::Text(t) => on(Note::Text(&t)),
                    Step::Thinking(t) => on(Note::Thinking(&t)),
                    Step::Error { kind, message } => {
                        let retry = if kind == "overloaded_error" { Retry::After(None) } else { Retry::No };
                        return Err(Failure { error: ApiError::Stream { kind, message, request_id }, retry });
                    }
                    Step::Done => return Ok(asm.finish()),
                    Step::Nothing => {}
                }
            }
        }
        let error = ApiError::Connection("the stream ended before message_stop (connection dropped)".into());
        Err(Failure { error, retry: Retry::After(None) })
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The type and message of an error body `{"type":"error","error":{"type","message"}}`.
fn api_error(body: &str, status: u16) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let kind = v.pointer("/error/type").and_then(Value::as_str).map(str::to_string);
    let message = v.pointer("/error/message").and_then(Value::as_str).map(str::to_string);
    let fallback = || {
        let t: String = body.chars().take(200).collect();
        if t.trim().is_empty() { "(no message)".to_string() } else { t }
    };
    (kind.unwrap_or_else(|| format!("http_{status}")), crate::term::strip_controls(&message.unwrap_or_else(fallback)))
}

/// `retry-after-ms`, else `retry-after` in seconds or as an HTTP date.
fn retry_after(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header(h, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_millis(ms as u64));
        }
    }
    let v = header(h, "retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_millis((s * 1000.0) as u64));
    }
    let fmt = time::format_description::well_known::Rfc2822;
    let when = time::OffsetDateTime::parse(&v.replace("GMT", "+0000"), &fmt).ok()?;
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(when.unix_timestamp().max(0) as u64);
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Full jitter: uniform in [0, min(MAX_BACKOFF, BASE_BACKOFF · 2^(attempt-1))].
fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE_BACKOFF.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF);
    let ms = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

/// Saves exchanges under `VIGIL_RECORD`.
struct Recorder {
    dir: PathBuf,
    next: AtomicU32,
    key: SecretString,
}

struct Recording {
    n: u32,
    status: u16,
    body: Vec<u8>,
}

impl Recorder {
    fn new(dir: PathBuf, key: SecretString) -> anyhow::Result<Recorder> {
        std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("VIGIL_RECORD={}: {e}", dir.display()))?;
        let last = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.get(..3)?.parse::<u32>().ok()))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        Ok(Recorder { dir, next: AtomicU32::new(last + 1), key })
    }

    /// Remove the key itself wherever it appears.
    fn without_key(&self, s: &str) -> String {
        let k = self.key.expose_secret();
        if k.is_empty() { s.to_string() } else { s.replace(k, "[REDACTED]") }
    }

    fn start(&self, body: &[u8]) -> Recording {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        // Redact JSON by value (text redaction would break numbers like "max_tokens": 4096).
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(v) => serde_json::to_string_pretty(&Redactor::global().value(v)).unwrap_or_default(),
            Err(_) => Redactor::global().text(&String::from_utf8_lossy(body)).into_owned(),
        };
        self.write(&format!("{n:03}.request.json"), &self.without_key(&text));
        Recording { n, status: 200, body: Vec::new() }
    }

    fn finish(&self, r: Recording) {
        let text = String::from_utf8_lossy(&r.body);
        let out: String = if r.status == 200 {
            // Redact inside each data line's JSON, so the fixture stays valid.
            text.split_inclusive('\n')
                .map(|line| {
                    let (body, end) = line.split_at(line.trim_end_matches(['\r', '\n']).len());
                    let redacted = match body.strip_prefix("data:") {
                        Some(d) => match serde_json::from_str::<Value>(d.trim_start()) {
                            Ok(v) => format!("data: {}", Redactor::global().value(v)),
                            Err(_) => Redactor::global().text(body).into_owned(),
                        },
                        None => Redactor::global().text(body).into_owned(),
                    };
                    format!("{}{end}", self.without_key(&redacted))
                })
                .collect()
        } else {
            format!(": HTTP {}\n{}", r.status, self.without_key(&Redactor::global().text(&text)))
        };
        self.write(&format!("{:03}.sse", r.n), &out);
    }

    fn write(&self, name: &str, text: &str) {
        let path: &Path = &self.dir.join(name);
        if let Err(e) = crate::state::write_atomic(path, text.as_bytes()) {
            eprintln!("vigil: warning: VIGIL_RECORD: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(150)), "retry-after-ms wins");
        let mut h = HeaderMap::new();
        // 1_700_000_030 = Tue, 14 Nov 2023 22:13:50 GMT
        h.insert("retry-after", HeaderValue::from_static("Tue, 14 Nov 2023 22:13:50 GMT"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_is_bounded_full_jitter() {
        for attempt in 1..10 {
            let d = backoff(attempt);
            assert!(d <= MAX_BACKOFF);
            assert!(d <= BASE_BACKOFF * 2u32.pow(attempt - 1));
        }
    }

    #[test]
    fn error_bodies_name_type_and_message() {
        let (k, m) =
            api_error(r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#, 401);
        assert_eq!((k.as_str(), m.as_str()), ("authentication_error", "invalid x-api-key"));
        let (k, m) = api_error("<html>bad gateway</html>", 502);
        assert_eq!(k, "http_502");
        assert!(m.contains("bad gateway"));
    }

    #[test]
    fn the_key_is_never_debug_printed() {
        let c = Client::new(SecretString::from("sk-ant-api03-SECRETKEY".to_string()), Some("http://x".into())).unwrap();
        assert!(!format!("{c:?}").contains("SECRETKEY"));
    }
}
