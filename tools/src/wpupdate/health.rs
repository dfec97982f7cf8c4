//! The health check: serve a WordPress tree with PHP's built-in server on
//! loopback, as the site's owner (never root), with outgoing mail disabled,
//! request the front page, `wp-login.php` and the configured key pages, and
//! expect no 5xx, no PHP fatal or parse error in a response or in the PHP log;
//! `php -l` on the PHP files an update changes.
//!
//! Every PHP process here is site code: started by [`as_user`] without a
//! terminal, with stdout/stderr to `/dev/null` or pipes, in its own PID
//! namespace; stopping the server ends every process the site's PHP started.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::exec::{Proc, as_user};
use super::{RunAs, failed};
use crate::tool::{Ctx, ToolError};

/// One page requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PageCheck {
    /// The path requested.
    pub path: String,
    /// HTTP status (0: no answer).
    pub status: u16,
    /// What was wrong, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A whole health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Every page answered without a 5xx or a PHP error, the log is clean, every changed file parses.
    pub ok: bool,
    /// The pages.
    pub pages: Vec<PageCheck>,
    /// PHP errors from the log (first few, paths shortened).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_errors: Vec<String>,
    /// PHP files checked with `php -l`.
    pub linted: usize,
    /// Files `php -l` rejected, with its message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lint_errors: Vec<String>,
    /// How long it took (ms).
    pub millis: u64,
}

impl Health {
    /// One line per problem (or "ok").
    pub fn summary(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .pages
            .iter()
            .map(|p| match &p.problem {
                Some(pr) => format!("{} → {} ({pr})", p.path, p.status),
                None => format!("{} → {}", p.path, p.status),
            })
            .collect();
        v.extend(self.log_errors.iter().map(|e| format!("PHP log: {e}")));
        v.extend(self.lint_errors.iter().map(|e| format!("php -l: {e}")));
        v.push(format!("php -l on {} changed file(s)", self.linted));
        v
    }
}

/// The pages checked: `/`, `/wp-login.php` and `[wordpress] key_pages`.
pub fn pages(ctx: &Ctx) -> Vec<String> {
    let mut p = vec!["/".to_string(), "/wp-login.php".to_string()];
    for k in &ctx.config.wordpress.key_pages {
        let k = if k.starts_with('/') { k.clone() } else { format!("/{k}") };
        if !p.contains(&k) && !k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.push(k);
        }
    }
    p
}

/// The PHP binary.
pub fn php(ctx: &Ctx) -> Result<String, ToolError> {
    ctx.host.which("php").ok_or_else(|| failed("PHP's command-line binary (`php`, package php-cli) is not installed"))
}

/// The `php -S` command (as the user), for the plan and for running.
pub fn serve_cmd(
    php: &str,
    who: &RunAs,
    docroot: &Path,
    port: &str,
    log: &Path,
    display: bool,
) -> Result<Proc, ToolError> {
    let tmp = log.parent().unwrap_or(docroot);
    let args: Vec<String> = vec![
        "-d".into(),
        "sendmail_path=/bin/true".into(),
        "-d".into(),
        "disable_functions=mail".into(),
        "-d".into(),
        format!("display_errors={}", if display { "1" } else { "0" }),
        "-d".into(),
        "log_errors=1".into(),
        "-d".into(),
        format!("error_log={}", log.display()),
        // PHP's temporary files go where it may write (Landlock allows nowhere else).
        "-d".into(),
        format!("sys_temp_dir={}", tmp.display()),
        "-d".into(),
        format!("upload_tmp_dir={}", tmp.display()),
        "-d".into(),
        format!("opcache.lockfile_path={}", tmp.display()),
        "-S".into(),
        format!("127.0.0.1:{port}"),
        "-t".into(),
        docroot.display().to_string(),
    ];
    // The site's PHP writes only in its own directory and the private log (and temporary) directory.
    Ok(as_user(who, php, &args)?.writes_only_in(&[docroot, tmp]))
}

/// A free loopback port.
pub fn free_port() -> Result<u16, ToolError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| failed(format!("no free loopback port: {e}")))?;
    Ok(l.local_addr().map_err(failed)?.port())
}

/// The most of the staging server's PHP error log that is read.
const MAX_LOG: u64 = 4 << 20;

/// A private log directory the PHP user can write (0700, owned by it), removed on drop.
pub fn log_dir(parent: &Path, who: &RunAs) -> Result<tempfile::TempDir, ToolError> {
    let d = tempfile::Builder::new()
        .prefix("vigil-php-")
        .tempdir_in(parent)
        .map_err(|e| failed(format!("cannot create a log directory in {}: {e}", parent.display())))?;
    std::os::unix::fs::chown(d.path(), Some(who.uid), Some(who.gid)).map_err(|e| failed(format!("chown: {e}")))?;
    Ok(d)
}

/// GET `path` from `127.0.0.1:port` with `Host: host`; status and body (capped).
pub async fn http_get(port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    let go = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vigil-healthcheck\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        (&mut s).take(8 << 20).read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "no HTTP answer".to_string())?;
        Ok((status, text))
    };
    tokio::time::timeout(Duration::from_secs(60), go).await.map_err(|_| "no answer within 60 s".to_string())?
}

/// Error markers in a page.
fn page_problem(status: u16, body: &str) -> Option<String> {
    for m in ["Fatal error", "Parse error", "There has been a critical error"] {
        if body.contains(m) {
            return Some(format!("the page shows \"{m}\""));
        }
    }
    (status >= 500).then(|| format!("HTTP {status}"))
}

/// PHP errors in a log.
fn log_problems(text: &str, docroot: &Path) -> Vec<String> {
    let root = docroot.display().to_string();
    text.lines()
        .filter(|l| l.contains("PHP Fatal error") || l.contains("PHP Parse error"))
        .map(|l| {
            let l = l.split_once("] ").map_or(l, |(_, r)| r);
            l.replace(&root, "SITE").chars().take(300).collect()
        })
        .take(5)
        .collect()
}

/// Stop the server: killing `unshare` kills its PID namespace; wait (up to 5 s) until
/// nothing in it still holds the port, so the next check can listen on it.
async fn stop(child: &mut tokio::process::Child, port: u16) {
    let _ = child.kill().await;
    let _ = child.wait().await;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[expect(clippy::too_many_arguments, reason = "one call site per caller; a struct would only rename them")]
/// Serve `docroot` as `who` and check `pages` with `Host: host`, then `php -l` the `lint` files.
pub async fn check(
    ctx: &Ctx,
    who: &RunAs,
    docroot: &Path,
    host: &str,
    port: u16,
    scratch_parent: &Path,
    display_errors: bool,
    lint: &[PathBuf],
) -> Result<Health, ToolError> {
    let started = std::time::Instant::now();
    let php = php(ctx)?;
    let logs = log_dir(scratch_parent, who)?;
    let log = logs.path().join("php-errors.log");
    let cmd = serve_cmd(&php, who, docroot, &port.to_string(), &log, display_errors)?;
    let mut child = cmd.spawn(ctx, Stdio::null(), Stdio::null())?;
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(failed(format!("`{}` exited at once ({st})", cmd.render())));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        stop(&mut child, port).await;
        return Err(failed(format!("`{}` did not listen within 10 s", cmd.render())));
    }
    let mut h = Health::default();
    for p in pages(ctx) {
        let (status, problem) = match http_get(port, host, &p).await {
            Ok((status, body)) => (status, page_problem(status, &body)),
            Err(e) => (0, Some(e)),
        };
        h.pages.push(PageCheck { path: p, status, problem });
    }
    stop(&mut child, port).await;
    // The log directory belongs to the site's user (its PHP writes the log): read the log only
    // as a plain file through the directory's descriptor, so a FIFO, a device or a symlink to
    // another file put in its place is refused, never opened.
    let text = super::tree::Dir::open(logs.path())
        .and_then(|d| d.read_regular(std::ffi::OsStr::new("php-errors.log"), MAX_LOG))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    h.log_errors = log_problems(&text, docroot);
    drop(logs);
    for f in lint {
        let p = as_user(who, &php, &["-l".into(), f.display().to_string()])?;
        let out = p.run(ctx, Duration::from_secs(60)).await?;
        h.linted += 1;
        if !out.success() {
            let msg = out.stdout.lines().chain(out.stderr.lines()).find(|l| l.contains("error")).unwrap_or("fails");
            h.lint_errors.push(msg.replace(&docroot.display().to_string(), "SITE").chars().take(300).collect());
        }
    }
    h.ok = h.pages.iter().all(|p| p.problem.is_none()) && h.log_errors.is_empty() && h.lint_errors.is_empty();
    h.millis = started.elapsed().as_millis() as u64;
    Ok(h)
}
