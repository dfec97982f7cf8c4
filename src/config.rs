//! vigil's configuration file, `ROOT/etc/vigil/config.toml` or `--config FILE`,
//! read whole.
//!
//! One file for the administrator; two owners in the code. The tools' sections
//! (`[review]`, `[ports]`, `[[backups]]`, `[wordpress]`, `[docker]`) are
//! defined in `vigil_tools::config` and handed to the tools as
//! `vigil_tools::Config` ([`Config::tools`]); the sections only the app reads
//! (`[gate]`, `[audit]`, `[mcp]`, `[schedule]`, `[agent]`, `[notify]`) are
//! defined here, so the tools crate knows nothing of the gate, the assistant
//! or notifications. Every key has a default; unknown keys are errors, named
//! with their line. The file is trusted only when no one but root or its owner
//! can write it, because it can deny tools, name scratch-only work for
//! scheduled runs and opt into MCP elicitation.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_tools::config::{
    BackupJob, ConfigError, DockerConfig, PortsConfig, ReviewConfig, WordpressConfig, parse_toml,
};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Review thresholds (tools).
    pub review: ReviewConfig,
    /// The port ledger (tools).
    pub ports: PortsConfig,
    /// Backup jobs to check (tools).
    pub backups: Vec<BackupJob>,
    /// WordPress discovery and the vulnerability feed (tools).
    pub wordpress: WordpressConfig,
    /// Docker / container checks (tools).
    pub docker: DockerConfig,
    /// The policy gate.
    pub gate: GateConfig,
    /// Where the audit log's chain is anchored besides the state directory.
    pub audit: AuditConfig,
    /// `vigil mcp`.
    pub mcp: McpConfig,
    /// Scheduled runs.
    pub schedule: ScheduleConfig,
    /// The assistant.
    pub agent: AgentConfig,
    /// Notifications after scheduled reviews.
    pub notify: NotifyConfig,
}

/// `[gate]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// Tools refused outright, whatever anyone answers.
    pub deny: Vec<String>,
}

/// `[audit]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// A remote syslog that receives each audit entry's sequence number and hash:
    /// `udp://HOST:PORT` or `tcp://HOST:PORT` (RFC 5424 lines; port 514 when absent).
    pub syslog: Option<String>,
}

/// `[mcp]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// `refuse` (default) or `elicit`: ask the MCP client's user to confirm mutating tools.
    pub mutating: McpMutating,
}

/// How `vigil mcp` treats mutating tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum McpMutating {
    /// Refused with an explanation.
    #[default]
    Refuse,
    /// Asked through MCP elicitation, showing the plan.
    Elicit,
}

/// `[schedule]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Scratch-only mutating tools scheduled runs may run (only `verify_backup_restore`).
    pub allow: Vec<String>,
    /// Reports kept in `STATE/reports/`.
    pub keep_reports: Option<usize>,
    /// A root-owned 0600 file holding the API key for scheduled runs.
    pub api_key_file: Option<PathBuf>,
}

/// `[agent]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Model name (overridden by `--model` / `VIGIL_MODEL`).
    pub model: Option<String>,
    /// Most model turns in one conversation turn.
    pub max_turns: u32,
    /// Most output tokens per model call.
    pub max_tokens: u32,
    /// Transcripts kept.
    pub keep_transcripts: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { model: None, max_turns: 20, max_tokens: 4096, keep_transcripts: 100 }
    }
}

/// `[notify]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Email recipients.
    pub email_to: Vec<String>,
    /// Sender address.
    pub email_from: Option<String>,
    /// SMTP server `host:port`; the local `sendmail` when absent.
    pub smtp: Option<String>,
    /// SMTP user (its password lives in the keyring entry `smtp-password`, or `smtp_password_file`).
    pub smtp_user: Option<String>,
    /// A root-owned 0600 file holding the SMTP password (for scheduled runs, which have no keyring).
    pub smtp_password_file: Option<PathBuf>,
    /// A PEM CA certificate to trust for the SMTP server's STARTTLS (an internal relay).
    pub smtp_ca_file: Option<PathBuf>,
    /// Use STARTTLS (default true).
    pub starttls: Option<bool>,
    /// Webhook URLs.
    pub webhooks: Vec<Webhook>,
}

/// One webhook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// URL (keep the config 0600 when the URL carries a token).
    pub url: String,
    /// `slack` or `json`.
    #[serde(default)]
    pub kind: Option<String>,
}

impl Config {
    /// What the tools read: their sections of this file.
    pub fn tools(&self) -> vigil_tools::Config {
        vigil_tools::Config {
            review: self.review.clone(),
            ports: self.ports.clone(),
            backups: self.backups.clone(),
            wordpress: self.wordpress.clone(),
            docker: self.docker.clone(),
        }
    }

    /// Parse TOML text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        parse_toml(text, path)
    }

    /// Load a config file: `Ok(None)` when absent, an error when unsafe or malformed.
    #[expect(
        clippy::disallowed_methods,
        reason = "vigil's config, named by the administrator and checked not to be writable by others first"
    )]
    pub fn load(path: &Path) -> Result<Option<Config>, ConfigError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ConfigError::Read { path: path.to_path_buf(), source: e });
            }
        };
        let mode = meta.mode();
        if mode & 0o002 != 0 {
            return Err(ConfigError::Insecure { path: path.to_path_buf(), who: "everyone".into() });
        }
        if mode & 0o020 != 0 && meta.gid() != 0 {
            return Err(ConfigError::Insecure { path: path.to_path_buf(), who: format!("group {}", meta.gid()) });
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.to_path_buf(), source: e })?;
        Config::parse(&text, path).map(Some)
    }

    /// True when the file at `path` is owned by root (so its opt-ins are trusted).
    pub fn root_owned(path: &Path) -> bool {
        std::fs::metadata(path).map(|m| m.uid() == 0).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_two_owners() {
        let c = Config::parse(
            "[[ports.allowed]]\nport = 8443\nreason = \"panel\"\nreviewed = 2026-10-01\n[gate]\ndeny = [\"lock_account\"]\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.gate.deny, vec!["lock_account"]);
        assert_eq!(c.agent.max_turns, 20);
        let tools = c.tools();
        assert_eq!(tools.ports.allowed[0].port, 8443, "the tools get their sections");
        assert_eq!(tools.review.unused_days, 90);
        let e = Config::parse("[gate]\ndeny = []\nallow = [\"x\"]\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("line 3") && e.to_string().contains("allow"), "{e}");
        let e = Config::parse("[gaet]\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("gaet"), "an unknown section is an error: {e}");
    }

    #[test]
    fn world_writable_config_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(Config::load(&p), Err(ConfigError::Insecure { .. })));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Config::load(&p).unwrap().is_some());
        assert!(Config::load(&dir.path().join("absent.toml")).unwrap().is_none());
    }
}
