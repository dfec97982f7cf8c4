//! `App`: what every command starts from — the audited host, its config, the
//! state directory, the registry — resolved once from the global options.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use vigil_tools::{Ctx, Host, Registry};

use crate::audit::{AuditLog, Origin};
use crate::cli::Global;
use crate::config::Config;
use crate::gate::{Confirmer, Gate};
use crate::state::StateDir;

/// The resolved context of one vigil invocation.
pub struct App {
    /// Global options as given.
    pub global: Global,
    /// The audited host.
    pub host: Host,
    /// The configuration.
    pub config: Config,
    /// Where it was read from (may not exist).
    pub config_path: PathBuf,
    /// True when the config file exists and root owns it (its opt-ins are trusted).
    pub config_trusted: bool,
    /// The state directory.
    pub state: StateDir,
    /// Every tool.
    pub registry: Arc<Registry>,
    /// The confined worker of this process (see [`crate::worker`]), made with the first gate.
    sandbox: std::sync::OnceLock<Arc<crate::worker::Sandbox>>,
}

/// `VIGIL_NOW` (RFC 3339) fixes "now" for reproducible reviews of images and fixtures.
/// It has no effect on the live root: a stray value left in root's environment or a
/// cron file must not move a real review's clock (and hide an expired certificate).
fn host_at(root: &Path, vigil_now: Option<&str>) -> Result<Host> {
    let host = Host::at(root);
    let Some(v) = vigil_now.filter(|_| !host.is_live()) else { return Ok(host) };
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("VIGIL_NOW={v} is not an RFC 3339 time like 2026-11-27T00:00:00Z"))?;
    Ok(host.with_now(SystemTime::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64)))
}

impl App {
    /// Resolve host, config and state from the global options.
    pub fn new(global: Global) -> Result<App> {
        let root = global.root.clone().unwrap_or_else(|| PathBuf::from("/"));
        if !root.is_dir() {
            anyhow::bail!("--root {}: not a directory", root.display());
        }
        // An unmounted mount point (or a typo'd empty directory) would review as a mostly clean host.
        if global.root.is_some() && std::fs::read_dir(&root).map(|mut d| d.next().is_none()).unwrap_or(false) {
            anyhow::bail!(
                "--root {}: the directory is empty — is the image mounted there? Nothing would be reviewed",
                root.display()
            );
        }
        let host = host_at(&root, std::env::var("VIGIL_NOW").ok().as_deref())?;
        let config_path = match &global.config {
            Some(p) if !p.exists() => {
                anyhow::bail!(
                    "--config {}: no such file (without --config, /etc/vigil/config.toml is read when present)",
                    p.display()
                )
            }
            Some(p) => p.clone(),
            None => host.path("/etc/vigil/config.toml").context("config path")?,
        };
        let loaded = Config::load(&config_path)?;
        let config_trusted = loaded.is_some() && Config::root_owned(&config_path);
        let mut config = loaded.unwrap_or_default();
        if let Some(feed) = &global.vuln_feed {
            config.wordpress.vuln_feed = Some(feed.clone());
        }
        if let Some(s) = &config.audit.syslog {
            crate::audit::anchor::SyslogTarget::parse(s).with_context(|| format!("in {}", config_path.display()))?;
        }
        let state = StateDir::open(global.state_dir.as_deref())?;
        // The one place a downloaded feed is found: `vigil vulndb update` keeps it at the top of the
        // state directory (it describes software, not a host), shared by every audited root.
        if config.wordpress.vuln_feed.is_none() {
            let downloaded = crate::state::feed_file(state.path());
            if downloaded.is_file() {
                config.wordpress.vuln_feed = Some(downloaded);
            }
        }
        Ok(App {
            global,
            host,
            config,
            config_path,
            config_trusted,
            state,
            registry: Arc::new(Registry::builtin()),
            sandbox: std::sync::OnceLock::new(),
        })
    }

    /// The tool context: host, config and this host's state directory.
    pub fn ctx(&self) -> Result<Ctx> {
        let dir = self.state.host_dir(&self.host)?;
        let mut ctx = Ctx::new(self.host.clone()).with_config(self.config.tools()).with_state_dir(dir);
        ctx.session.relaunch = self.relaunch();
        Ok(ctx)
    }

    /// How a job scheduled for later starts this vigil again: the same binary, state, config and root.
    pub fn relaunch(&self) -> Vec<String> {
        let Ok(exe) = std::env::current_exe() else { return Vec::new() };
        let mut v = vec![
            exe.display().to_string(),
            "--state-dir".into(),
            self.state.path().display().to_string(),
            "--config".into(),
            self.config_path.display().to_string(),
        ];
        if let Some(r) = &self.global.root {
            v.extend(["--root".into(), r.display().to_string()]);
        }
        if let Some(f) = &self.global.vuln_feed {
            v.extend(["--vuln-feed".into(), f.display().to_string()]);
        }
        v
    }

    /// The audit log, anchored in the journal and the configured syslog.
    pub fn audit(&self) -> AuditLog {
        let syslog =
            self.config.audit.syslog.as_deref().and_then(|s| crate::audit::anchor::SyslogTarget::parse(s).ok());
        AuditLog::in_dir(self.state.path()).with_syslog(syslog)
    }

    /// A gate for calls from `origin`, asking `confirmer`.
    pub fn gate(&self, origin: Origin, confirmer: Arc<dyn Confirmer>) -> Result<Gate> {
        let ctx = self.ctx()?;
        let sandbox = self.sandbox(origin, &ctx);
        Ok(Gate::new(self.registry.clone(), ctx, confirmer, Some(self.audit()), origin)
            .with_sandbox(sandbox)
            .with_deny(self.config.gate.deny.clone()))
    }

    /// The confined worker of this process, for read-only calls on `ctx` (one per process,
    /// started on the first call; see [`crate::worker`]). `--no-sandbox` is written to the
    /// audit log here, once.
    pub fn sandbox(&self, origin: Origin, ctx: &Ctx) -> Arc<crate::worker::Sandbox> {
        self.sandbox
            .get_or_init(|| {
                let mode = if self.global.no_sandbox {
                    // Diagnosis only, and never silently: the audit log says this run was unconfined.
                    let event = serde_json::json!({"kind": "no_sandbox", "origin": origin, "why": "--no-sandbox: read-only tools ran unconfined in vigil's own process"});
                    if let Err(e) = self.audit().append(event) {
                        eprintln!("vigil: warning: could not write the audit log: {e:#}");
                    }
                    crate::worker::Mode::Off
                } else {
                    crate::worker::Mode::On
                };
                Arc::new(crate::worker::Sandbox::new(mode, ctx.clone()))
            })
            .clone()
    }

    /// The per-host state directory.
    pub fn host_dir(&self) -> Result<PathBuf> {
        self.state.host_dir(&self.host)
    }

    /// The config directory (for user prompts): the config file's directory.
    pub fn config_dir(&self) -> &Path {
        self.config_path.parent().unwrap_or_else(|| Path::new("/etc/vigil"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vigil_now_moves_the_clock_of_a_fixture_never_of_the_live_root() {
        let fixed = "2020-01-01T00:00:00Z";
        let live = host_at(Path::new("/"), Some(fixed)).unwrap();
        let drift = SystemTime::now().duration_since(live.now()).unwrap_or_default();
        assert!(drift < Duration::from_secs(60), "the live root keeps the real clock");
        let dir = tempfile::tempdir().unwrap();
        let image = host_at(dir.path(), Some(fixed)).unwrap();
        assert_eq!(image.now_unix(), 1_577_836_800);
        assert!(host_at(dir.path(), Some("yesterday")).is_err());
        assert!(host_at(Path::new("/"), Some("yesterday")).is_ok(), "not even read on the live root");
    }
}
