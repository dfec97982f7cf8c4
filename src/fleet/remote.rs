//! The remote side of a fleet run: `vigil __remote` (see [`super::proto`]).
//!
//! The controller starts this over ssh on each host and speaks to it on stdin and
//! stdout only, so nothing listens and nothing stays behind. It reads one request
//! line (capped at [`MAX_REQUEST`]); for a review, then exactly `feed_bytes` of the
//! controller's vulnerability feed (capped at [`MAX_FEED`]) into a private file, so
//! one `vigil vulndb update` on the controller serves the whole fleet. The review is
//! the one `vigil review --offline` runs ([`crate::review::deterministic::review`]), confined
//! in the worker as usual and judged by this host's own clock; it honours the host's
//! acknowledgements but writes no history or reports here (the controller keeps the
//! history per host). The run's digest key, when given, is used for
//! [`super::digest::collect`] and wiped as soon as that returns.
//!
//! Stdout carries exactly one JSON [`Response`]: the real stdout is taken over at
//! start and descriptor 1 is pointed at stderr, so nothing printed by accident (by
//! this process or a child that inherits it) can corrupt the answer. Errors are a
//! [`Response::Error`] on stdout plus one line on stderr, and exit 2.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use secrecy::zeroize::Zeroizing;

use super::proto::{Request, Response};
use crate::app::App;
use crate::cli::Global;

/// Largest request line (bytes, newline included).
pub const MAX_REQUEST: u64 = 1 << 20;
/// Largest vulnerability feed accepted from the controller (bytes).
pub const MAX_FEED: u64 = 256 << 20;
/// Length of the run's digest key (bytes; twice as many hex digits on the wire).
pub const KEY_BYTES: usize = 32;

/// A request that is not what the protocol allows: answered `invalid`, exit 2.
#[derive(Debug)]
struct Invalid(String);

/// Answer one request from the controller; the process's exit code (0 answered, 2 error).
pub async fn serve(global: Global) -> Result<u8> {
    let mut out = claim_stdout().context("cannot set up stdout for the answer")?;
    let response = match read_request(&mut BufReader::new(std::io::stdin().lock())) {
        Err(Invalid(why)) => Response::Error { kind: "invalid".into(), message: why },
        Ok((request, feed)) => answer(global, request, feed).await,
    };
    if let Response::Error { kind, message } = &response {
        eprintln!("vigil __remote: {kind}: {}", crate::term::strip_controls(message));
    }
    serde_json::to_writer(&mut out, &response).context("cannot encode the answer")?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(if matches!(response, Response::Error { .. }) { 2 } else { 0 })
}

/// Keep the real stdout for the answer alone: a private duplicate is returned, and
/// descriptor 1 becomes stderr for everything else in this process and its children.
fn claim_stdout() -> std::io::Result<File> {
    // SAFETY: plain descriptor calls on 1 and 2; the duplicate is owned by the File below only.
    let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by fcntl and nothing else owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: dup2 on the process's own standard descriptors.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// The controller's feed, in a private 0600 file inside a 0700 directory removed on drop.
struct Feed {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// One request line and, for a review, the feed that follows it.
fn read_request(input: &mut impl BufRead) -> Result<(Request, Option<Feed>), Invalid> {
    // The line may hold the run's digest key: wiped when dropped.
    let mut line = Zeroizing::new(Vec::new());
    input
        .by_ref()
        .take(MAX_REQUEST)
        .read_until(b'\n', &mut line)
        .map_err(|e| Invalid(format!("cannot read the request on stdin: {e}")))?;
    if line.is_empty() {
        return Err(Invalid("no request on stdin (expected one line of JSON)".into()));
    }
    if line.last() != Some(&b'\n') {
        return Err(Invalid(if line.len() as u64 >= MAX_REQUEST {
            format!("the request line is over the {} KiB limit", MAX_REQUEST >> 10)
        } else {
            "the request line is not terminated by a newline".into()
        }));
    }
    let request: Request = serde_json::from_slice(&line).map_err(|e| {
        Invalid(format!("the request is not one this vigil understands ({e}); are both sides the same version?"))
    })?;
    if let Request::Review { key: Some(k), .. } = &request {
        if parse_key(k).is_none() {
            return Err(Invalid(format!("the digest key must be {} hex digits", KEY_BYTES * 2)));
        }
    }
    let feed = match &request {
        Request::Review { feed_bytes, .. } if *feed_bytes > 0 => Some(read_feed(input, *feed_bytes)?),
        _ => None,
    };
    Ok((request, feed))
}

/// Exactly `len` bytes of feed from `input` into a private file.
fn read_feed(input: &mut impl Read, len: u64) -> Result<Feed, Invalid> {
    if len > MAX_FEED {
        return Err(Invalid(format!("the vulnerability feed is {len} bytes, over the {} MiB limit", MAX_FEED >> 20)));
    }
    let io = |what: &str, e: std::io::Error| Invalid(format!("cannot {what} for the feed: {e}"));
    let dir = tempfile::Builder::new().prefix("vigil-remote-").tempdir().map_err(|e| io("make a directory", e))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io("restrict the directory", e))?;
    let path = dir.path().join("feed.json");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io("create a file", e))?;
    let got = std::io::copy(&mut input.take(len), &mut file).map_err(|e| io("write", e))?;
    if got != len {
        return Err(Invalid(format!("the vulnerability feed ended after {got} of {len} bytes")));
    }
    file.sync_all().map_err(|e| io("write", e))?;
    Ok(Feed { _dir: dir, path })
}

/// The key's bytes, when it is [`KEY_BYTES`] long in hex (wiped when dropped).
fn parse_key(hex_key: &str) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(hex::decode(hex_key).ok()?);
    (bytes.len() == KEY_BYTES).then_some(bytes)
}

/// The App for a request: the request's root (else `--root`), the controller's feed when sent.
fn app_for(global: &Global, root: Option<&str>, feed: Option<&Path>) -> Result<App> {
    let mut g = global.clone();
    if let Some(r) = root {
        g.root = Some(PathBuf::from(r));
    }
    if let Some(f) = feed {
        g.vuln_feed = Some(f.to_path_buf());
    }
    match root {
        Some(r) => App::new(g).with_context(|| format!("the host's vigil_root {r}")),
        None => App::new(g),
    }
}

/// Carry out a well-formed request.
async fn answer(global: Global, request: Request, feed: Option<Feed>) -> Response {
    let failed = |e: anyhow::Error| Response::Error { kind: "failed".into(), message: format!("{e:#}") };
    match request {
        Request::Review { root, key, .. } => {
            let key = Zeroizing::new(key);
            let app = match app_for(&global, root.as_deref(), feed.as_ref().map(|f| f.path.as_path())) {
                Ok(app) => app,
                Err(e) => return failed(e),
            };
            match review(&app, key.as_deref()).await {
                Ok(r) => r,
                Err(e) => failed(e),
            }
        }
        Request::Tool { ref root, .. } | Request::Plan { ref root, .. } | Request::Apply { ref root, .. } => {
            match app_for(&global, root.as_deref(), None) {
                Ok(app) => super::remote_tools::answer(&app, request).await,
                Err(e) => failed(e),
            }
        }
    }
}

/// The deterministic review of this host, and the keyed digests of its secrets.
async fn review(app: &App, key: Option<&str>) -> Result<Response> {
    let r = crate::review::deterministic::review(app, false, Vec::new()).await?;
    if let Some(why) = crate::review::deterministic::nothing_ran(app, &r) {
        anyhow::bail!("{why}");
    }
    let digests = match key {
        None => Vec::new(),
        Some(k) => {
            let Some(bytes) = parse_key(k) else {
                anyhow::bail!("the digest key must be {} hex digits", KEY_BYTES * 2);
            };
            super::digest::collect(&app.host, &bytes)
        }
    };
    Ok(Response::Review { review: Box::new(r), digests })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<(Request, Option<Feed>), Invalid> {
        read_request(&mut std::io::Cursor::new(bytes.to_vec()))
    }

    #[test]
    fn a_review_request_brings_its_feed_into_a_private_file() {
        let mut wire = br#"{"kind":"review","root":"/srv/img","key":null,"feed_bytes":5}"#.to_vec();
        wire.extend_from_slice(b"\n{\"a\"}trailing");
        let (req, feed) = read(&wire).unwrap();
        assert!(matches!(req, Request::Review { root: Some(r), .. } if r == "/srv/img"));
        let feed = feed.unwrap();
        #[expect(clippy::disallowed_methods, reason = "the test's own file")]
        let got = std::fs::read(&feed.path).unwrap();
        assert_eq!(got, b"{\"a\"}", "exactly feed_bytes, not what follows");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&feed.path), 0o600);
        assert_eq!(mode(feed.path.parent().unwrap()), 0o700);
        let dir = feed.path.parent().unwrap().to_path_buf();
        drop(feed);
        assert!(!dir.exists(), "the feed is removed with the run");
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        let why = |b: &[u8]| read(b).err().map(|Invalid(w)| w).unwrap_or_default();
        assert!(why(b"").contains("no request"));
        assert!(why(b"{\"kind\":\"review\"").contains("not terminated"));
        assert!(why(b"hello\n").contains("not one this vigil understands"));
        assert!(why(b"{\"kind\":\"format_disk\"}\n").contains("not one this vigil understands"));
        let long = vec![b' '; MAX_REQUEST as usize + 10];
        assert!(why(&long).contains("over the 1024 KiB limit"));
        let short = b"{\"kind\":\"review\",\"root\":null,\"key\":null,\"feed_bytes\":100}\nabc";
        assert!(why(short).contains("ended after 3 of 100 bytes"));
        let huge = format!("{{\"kind\":\"review\",\"root\":null,\"key\":null,\"feed_bytes\":{}}}\n", MAX_FEED + 1);
        assert!(why(huge.as_bytes()).contains("over the 256 MiB limit"));
        let bad_key = b"{\"kind\":\"review\",\"root\":null,\"key\":\"abc\"}\n";
        assert!(why(bad_key).contains("64 hex digits"));
    }

    #[test]
    fn keys_are_exactly_32_bytes_of_hex() {
        assert!(parse_key(&"ab".repeat(32)).is_some());
        assert!(parse_key(&"ab".repeat(31)).is_none());
        assert!(parse_key(&"zz".repeat(32)).is_none());
    }
}
