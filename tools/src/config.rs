//! The tools' part of vigil's configuration (`ROOT/etc/vigil/config.toml` or
//! `--config FILE`): review thresholds, the port ledger, backup jobs,
//! WordPress and Docker settings. The app crate's `vigil::config` reads the
//! whole file (and its sections for the gate, MCP, schedules, the assistant
//! and notifications) and hands the tools this part.
//!
//! Every key has a default, so an absent file is a valid configuration.
//! Unknown keys are errors (a typo in a port ledger must not silently disable
//! it), and a malformed file is reported with its path, line and key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::format::{format_date, parse_date};

/// A calendar date in the config (`2026-10-01`, quoted or bare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ConfigDate(#[serde(serialize_with = "ser_date")] pub time::Date);

fn ser_date<S: serde::Serializer>(d: &time::Date, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_date(*d))
}

impl<'de> Deserialize<'de> for ConfigDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Datetime(dt) => dt.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!("expected a date like 2026-10-01, found {other}")));
            }
        };
        parse_date(&s)
            .map(ConfigDate)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a date like 2026-10-01")))
    }
}

impl fmt::Display for ConfigDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_date(self.0))
    }
}

/// What the tools read of the configuration file: `[review]`, `[ports]`,
/// `[[backups]]`, `[wordpress]`, `[docker]`. The rest of the file (the gate,
/// the assistant, MCP, schedules, notifications) belongs to the app crate.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Review thresholds.
    pub review: ReviewConfig,
    /// The port ledger.
    pub ports: PortsConfig,
    /// Backup jobs to check.
    pub backups: Vec<BackupJob>,
    /// WordPress discovery and the vulnerability feed.
    pub wordpress: WordpressConfig,
    /// Docker / container checks.
    pub docker: DockerConfig,
}

/// `[review]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewConfig {
    /// A privileged account not used for this many days is flagged.
    pub unused_days: u32,
    /// A password unchanged for this many days is flagged.
    pub password_max_age_days: u32,
    /// Firewall rules and ledger entries not reviewed for this many days are flagged.
    pub rule_review_days: u32,
    /// Reviews kept in the state directory.
    pub keep_reviews: usize,
    /// A read-only tool still running after this many seconds is stopped and reported
    /// "not checked (timed out after N s)"; the rest of the review is written.
    pub tool_timeout_seconds: u64,
    /// The whole review's time limit: tools still running when it ends are "not checked".
    pub timeout_seconds: u64,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            unused_days: 90,
            password_max_age_days: 365,
            rule_review_days: 90,
            keep_reviews: 36,
            tool_timeout_seconds: 60,
            timeout_seconds: 300,
        }
    }
}

/// `[ports]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortsConfig {
    /// Documented public ports: `[[ports.allowed]]`.
    pub allowed: Vec<AllowedPort>,
}

/// One documented port in the ledger.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedPort {
    /// Port number.
    pub port: u16,
    /// `tcp` or `udp`; both when absent.
    #[serde(default)]
    pub proto: Option<String>,
    /// Why it is open.
    pub reason: String,
    /// When someone last confirmed it should be open.
    pub reviewed: ConfigDate,
}

/// One backup job: `[[backups]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupJob {
    /// Name shown in findings.
    pub name: String,
    /// Glob of the backup files, e.g. `/var/backups/site/*.tar.gz`.
    pub path: String,
    /// The newest backup must be younger than this.
    #[serde(default = "default_max_age")]
    pub max_age_hours: u64,
    /// The newest backup must be at least this many bytes.
    #[serde(default)]
    pub min_size: Option<u64>,
    /// The job's log file, scanned for errors since the last success.
    #[serde(default)]
    pub log: Option<String>,
    /// Where the offsite copy goes (restic/borg repository URL, rclone remote, rsync destination).
    #[serde(default)]
    pub offsite: Option<String>,
    /// A marker file or log whose modification time is the last successful offsite sync.
    #[serde(default)]
    pub offsite_log: Option<String>,
    /// A restic/borg password file, so the repository can be checked with its own `check`.
    #[serde(default)]
    pub password_file: Option<String>,
    /// `verify_backup_restore` stops after this many archive members (default 1,000,000;
    /// the scratch filesystem's free-inode floor is the guard that always holds).
    #[serde(default)]
    pub max_members: Option<u64>,
}

fn default_max_age() -> u64 {
    26
}

/// `[wordpress]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WordpressConfig {
    /// Extra web roots to search for sites.
    pub web_roots: Vec<String>,
    /// A Wordfence Intelligence feed (JSON); `--vuln-feed` overrides it.
    pub vuln_feed: Option<PathBuf>,
    /// Base URL of the WordPress.org downloads (a mirror or a test server): plugins at
    /// `BASE/plugin/SLUG.VERSION.zip`, themes at `BASE/theme/…`, core at `BASE/wordpress-VERSION.zip`,
    /// checksums at `BASE/plugin-checksums/SLUG/VERSION.json` and `BASE/wordpress-VERSION.zip.sha1`.
    /// Default: downloads.wordpress.org (core: wordpress.org).
    pub download_base: Option<String>,
    /// Where staging copies go (default `/var/lib/vigil-staging`; not under the 0700 state
    /// directory, because the site's owner serves the copy and must be able to read it).
    pub staging_dir: Option<String>,
    /// Pages to health-check after an update, besides `/` and `/wp-login.php`.
    pub key_pages: Vec<String>,
}

/// `[docker]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// Publishers trusted besides official images (`bitnami`, `ghcr.io/acme`).
    pub verified_publishers: Vec<String>,
    /// Seconds of CPU sampling per review: one window shared by every container (0 = average since start only).
    pub cpu_sample_seconds: f64,
    /// The engine to review: `unix:///path/docker.sock` or `tcp://host:2375` (plain HTTP). Overrides the
    /// `DOCKER_HOST` environment variable (which is only honoured when auditing the live root) and the
    /// default `ROOT/var/run/docker.sock`. A unix path here is a path on this machine, not under `--root`.
    pub docker_host: Option<String>,
    /// A container using at least this % of its CPU allowance (its limit; with no limit, this % of one
    /// core) counts as "full CPU".
    pub cpu_full_percent: f64,
    /// Seconds each `trivy image` scan may take (and each image export for it).
    pub trivy_timeout_seconds: u64,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            verified_publishers: Vec::new(),
            cpu_sample_seconds: 1.0,
            docker_host: None,
            cpu_full_percent: 90.0,
            trivy_timeout_seconds: 120,
        }
    }
}

/// A configuration that could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and key.
        message: String,
    },
    /// Others may write the file, so it cannot be trusted.
    #[error("config {path} is writable by {who}: refusing to trust it (fix: chmod go-w {path})", path = path.display())]
    Insecure {
        /// The file.
        path: PathBuf,
        /// Who else can write it.
        who: String,
    },
}

impl Config {
    /// Parse the tools' sections from TOML text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        parse_toml(text, path)
    }
}

/// Parse a configuration (any part of it, unknown keys refused) from TOML text; errors
/// name `path`, the line, the key and the text at fault.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let mut message = e.message().to_string();
        if let Some(span) = e.span() {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let snippet = text.lines().nth(line - 1).unwrap_or("").trim();
            message = format!("line {line}: {message} (at `{snippet}`)");
        }
        ConfigError::Parse { path: path.to_path_buf(), message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ledger() {
        let c = Config::parse(
            "[[ports.allowed]]\nport = 8443\nreason = \"panel\"\nreviewed = 2026-10-01\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.review.unused_days, 90);
        assert_eq!(c.ports.allowed[0].port, 8443);
        assert_eq!(c.ports.allowed[0].reviewed.to_string(), "2026-10-01");
    }

    #[test]
    fn errors_name_line_and_key() {
        let e =
            Config::parse("[review]\nunused_days = 90\nunusd = 3\n", Path::new("/etc/vigil/config.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/etc/vigil/config.toml"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("unusd"), "{msg}");
        let e = Config::parse("[[ports.allowed]]\nport = 1\nreason = \"x\"\nreviewed = \"soon\"\n", Path::new("c"))
            .unwrap_err();
        assert!(e.to_string().contains("not a date"), "{e}");
    }
}
