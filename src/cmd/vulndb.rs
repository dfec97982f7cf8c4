//! `vigil vulndb update`: download the Wordfence Intelligence feed.
//!
//! The feed describes software, not a host, so there is one copy for every
//! audited root: `STATE/wordfence-vulnerabilities.json` (the top state
//! directory; [`crate::app::App::new`] points `wordpress_inventory` at it when
//! no feed is configured). The download streams into a private temporary file
//! beside it (0600, never through a symlink), is parsed completely with
//! [`validate_feed`], and only then renamed over the current feed: a refused
//! key, a server error, a cut connection or a body that is not a feed leaves
//! the old one untouched. The API key (`WORDFENCE_API_KEY`, else the OS
//! keyring entry `wordfence-api-key`, stored by `vigil auth login --wordfence`)
//! goes only into the `Authorization: Bearer` header: never printed, logged
//! or written anywhere.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;
use vigil_tools::format::{error_chain, human_bytes};
use vigil_tools::wordpress::feed::FEED_FILE;
use vigil_tools::wordpress::{FeedError, FeedStats, validate_feed};

use crate::app::App;
use crate::auth::{OsKeyring, SecretStore, WORDFENCE_KEY_ENTRY};
use crate::cli::VulndbAction;
use crate::state::feed_file;

/// The Wordfence key: `WORDFENCE_API_KEY`, else the OS keyring.
pub fn wordfence_key(store: &dyn SecretStore) -> Result<Option<(SecretString, String)>> {
    if let Ok(k) = std::env::var("WORDFENCE_API_KEY") {
        if !k.trim().is_empty() {
            return Ok(Some((SecretString::from(k.trim().to_string()), "WORDFENCE_API_KEY".into())));
        }
    }
    let k = store.get(WORDFENCE_KEY_ENTRY).context(
        "cannot read the Wordfence API key from the OS keyring (set WORDFENCE_API_KEY instead, \
         or store it with `vigil auth login --wordfence`)",
    )?;
    Ok(k.map(|k| (k, format!("the OS keyring ({})", store.backend()))))
}

/// Run `vigil vulndb …`.
pub async fn run(app: &App, action: VulndbAction) -> Result<u8> {
    match action {
        VulndbAction::Update { url } => update(app, &url).await,
    }
}

/// Removes the temporary download unless it was renamed into place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A URL as it may be shown: no user, password or query (which could hold a key).
fn shown_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("…"));
    }
    u.to_string()
}

/// A reqwest error with its causes, without the URL (shown once by the caller).
fn why(e: reqwest::Error) -> String {
    error_chain(&e.without_url())
}

async fn update(app: &App, url: &str) -> Result<u8> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--url {url}: not a URL"))?;
    let shown = shown_url(&parsed);
    let dest = feed_file(app.state.path());
    let r = download(parsed, &shown, &dest).await;
    let audit = match &r {
        Ok((stats, bytes, _)) => serde_json::json!({
            "kind": "vulndb-update", "ok": true, "url": shown, "records": stats.records, "bytes": bytes,
        }),
        Err(e) => serde_json::json!({"kind": "vulndb-update", "ok": false, "url": shown, "error": format!("{e:#}")}),
    };
    if let Err(e) = app.audit().append(audit) {
        eprintln!("vigil: warning: could not record the update in the audit log: {e:#}");
    }
    let (stats, bytes, took) = r?;
    println!(
        "Updated the Wordfence feed: {} records ({} core, {} plugins, {} themes), {} in {:.1} s, {}",
        stats.records,
        stats.core,
        stats.plugins,
        stats.themes,
        human_bytes(bytes),
        took.as_secs_f64(),
        dest.display()
    );
    if let Some(other) = &app.config.wordpress.vuln_feed {
        if *other != dest {
            println!("Note: reviews use {} (--vuln-feed / [wordpress] vuln_feed), not this copy.", other.display());
        }
    }
    Ok(0)
}

async fn download(url: reqwest::Url, shown: &str, dest: &Path) -> Result<(FeedStats, u64, Duration)> {
    let kept = if dest.exists() {
        format!("the current feed {} is kept", dest.display())
    } else {
        "no feed was written".to_string()
    };
    let Some((key, source)) = wordfence_key(&OsKeyring::new())? else {
        bail!(
            "no Wordfence API key: set WORDFENCE_API_KEY or run `vigil auth login --wordfence` \
             (a free key: https://www.wordfence.com/products/wordfence-intelligence/)"
        );
    };
    tracing::info!("downloading the Wordfence feed from {shown} with the key from {source}");
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let mut resp = client
        .get(url)
        .bearer_auth(key.expose_secret())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {shown}: {}; {kept}", why(e)))?;
    drop(key);
    let status = resp.status();
    if !status.is_success() {
        let why = match status.as_u16() {
            401 | 403 => " (the API key was refused: check it, or store a new one with `vigil auth login --wordfence`)",
            429 => " (rate limited: try again later)",
            _ => "",
        };
        bail!("{shown} answered HTTP {status}{why}; {kept}");
    }
    let expected = resp.content_length();

    let dir = dest.parent().context("the feed path has no directory")?;
    let tmp_path = dir.join(format!(".{FEED_FILE}.{}.part", std::process::id()));
    let _ = std::fs::remove_file(&tmp_path);
    let mut guard = TempFile(Some(tmp_path.clone()));
    let std_file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp_path)
        .with_context(|| format!("cannot create {}", tmp_path.display()))?;
    let mut file = tokio::fs::File::from_std(std_file);
    let mut bytes: u64 = 0;
    loop {
        let chunk = resp.chunk().await.map_err(|e| {
            anyhow::anyhow!("the download from {shown} broke off after {bytes} bytes: {}; {kept}", e.without_url())
        })?;
        let Some(chunk) = chunk else { break };
        bytes += chunk.len() as u64;
        file.write_all(&chunk).await.with_context(|| format!("cannot write {}; {kept}", tmp_path.display()))?;
    }
    if let Some(n) = expected {
        if n != bytes {
            bail!("the download from {shown} is incomplete ({bytes} of {n} bytes); {kept}");
        }
    }
    file.sync_all().await.with_context(|| format!("cannot write {}; {kept}", tmp_path.display()))?;
    drop(file);

    let check = tmp_path.clone();
    let stats = tokio::task::spawn_blocking(move || validate_feed(&check))
        .await
        .context("the feed check stopped")?
        .map_err(|e| {
            let e = match e {
                FeedError::Format { message, .. } => format!("not a Wordfence Intelligence feed: {message}"),
                FeedError::Io { source, .. } => source.to_string(),
            };
            anyhow::anyhow!("the download from {shown} is not a usable feed ({e}); {kept}")
        })?;
    std::fs::rename(&tmp_path, dest).with_context(|| format!("cannot replace {}; {kept}", dest.display()))?;
    guard.0 = None;
    #[expect(clippy::disallowed_methods, reason = "vigil's own state directory, opened to fsync it")]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((stats, bytes, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        let u = reqwest::Url::parse("https://user:pw@example.com/feed?key=abc").unwrap();
        let s = shown_url(&u);
        assert!(!s.contains("pw") && !s.contains("abc") && !s.contains("user"), "{s}");
        assert!(s.starts_with("https://example.com/feed"), "{s}");
    }
}
