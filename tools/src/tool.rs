//! The `Tool` trait and what every tool shares: its effect, its plan, its errors.
//!
//! A tool is a typed function on the host: a schemars input whose field doc
//! comments are the schema the model reads, a serde output, and an `Effect`.
//! Mutating is the default: a [`Tool`] is only trusted as read-only when it says
//! so, and the registry refuses a `Tool` that does not. A tool that changes the
//! host implements [`Change`] instead: `prepare` looks at the host and answers the
//! plan (exactly what it would change and how to undo it) with the state it was
//! computed from, and `execute` makes exactly that change. Only the registry calls
//! `execute`, after an approval of the same plan (`crate::approval`).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::compared::Compared;
use crate::config::Config;
use crate::finding::Finding;
use crate::host::{Host, HostError};

/// Whether a tool can change the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Only reads; runs without asking.
    ReadOnly,
    /// Changes the host; passes the policy gate first.
    Mutating,
}

/// One step of a plan: what will happen, the exact command, and its undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanStep {
    /// What this step does, in words.
    pub action: String,
    /// The exact command it runs, when it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// How to undo it (a command or instructions), when it can be undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
}

/// Exactly what a mutating tool will change, shown before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// The tool that will run.
    pub tool: String,
    /// One line: what will change.
    pub summary: String,
    /// The steps, in order.
    pub steps: Vec<PlanStep>,
    /// What the administrator should know first (what is discarded, what may break).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Plan {
    /// A plan with no steps yet.
    pub fn new(tool: &str, summary: impl Into<String>) -> Self {
        Plan { tool: tool.to_string(), summary: summary.into(), steps: Vec::new(), warnings: Vec::new() }
    }

    /// Add a step.
    pub fn step(mut self, action: impl Into<String>, command: Option<String>, undo: Option<String>) -> Self {
        self.steps.push(PlanStep { action: action.into(), command, undo });
        self
    }

    /// Add a warning.
    pub fn warn(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }

    /// A hash of the plan, binding an approval to exactly this plan.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }

    /// The undo steps, in reverse order, for the audit log.
    pub fn undo_lines(&self) -> Vec<String> {
        self.steps.iter().rev().filter_map(|s| s.undo.clone()).collect()
    }

    /// A human rendering: summary, numbered steps with commands and undo.
    pub fn render(&self) -> String {
        let mut s = format!("Plan for {}: {}\n", self.tool, self.summary);
        for (i, st) in self.steps.iter().enumerate() {
            s.push_str(&format!("  {}. {}\n", i + 1, st.action));
            if let Some(c) = &st.command {
                s.push_str(&format!("       run:  {c}\n"));
            }
            if let Some(u) = &st.undo {
                s.push_str(&format!("       undo: {u}\n"));
            }
        }
        for w in &self.warnings {
            s.push_str(&format!("  ! {w}\n"));
        }
        s
    }
}

/// Why a tool call failed.
#[derive(Debug, Error)]
pub enum ToolError {
    /// The input was wrong; the model should see this and can correct it.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tool ran but could not do what was asked; the model sees why.
    #[error("{0}")]
    Failed(String),
    /// The tool refused for safety (would cut the SSH session, lock the last admin…).
    #[error("refused: {0}")]
    Refused(String),
    /// No tool by that name.
    #[error("unknown tool `{0}`")]
    Unknown(String),
    /// A read-only tool ran past its time limit and was stopped.
    #[error("not checked (timed out after {secs} s)")]
    TimedOut {
        /// The limit in seconds.
        secs: u64,
    },
    /// A host read failed in a way the tool could not turn into a finding.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// What a tool returns: the facts it gathered and the findings it drew.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome<T> {
    /// Parsed facts (never raw file contents, never a secret).
    pub facts: T,
    /// What is wrong, by severity.
    pub findings: Vec<Finding>,
}

impl<T> Outcome<T> {
    /// Facts and findings together.
    pub fn new(facts: T, findings: Vec<Finding>) -> Self {
        Outcome { facts, findings }
    }
}

/// Who runs this vigil session, filled by the caller (never read deep in a tool),
/// so mutating tools can refuse to cut the session they run in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// The server port of the SSH connection vigil runs in (4th field of `SSH_CONNECTION`).
    pub ssh_server_port: Option<u16>,
    /// The person at the keyboard (`SUDO_USER`, else `USER`/`LOGNAME`).
    pub user: Option<String>,
    /// Tests only: run the mutating tools' commands inside this network namespace
    /// (`ip netns exec NAME …`), so firewall tests never touch the machine's own
    /// firewall. Commands still only run on the live root. Never set in production.
    pub netns: Option<String>,
    /// How to start this vigil again with the same global options (`[exe, --state-dir, DIR, …]`),
    /// for jobs a mutating tool schedules for later (`wordpress_apply_update` with `at`).
    /// Empty: deferred jobs are refused.
    pub relaunch: Vec<String>,
}

impl SessionInfo {
    /// Read the session from this process's environment (`SSH_CONNECTION`, `SUDO_USER`, `USER`, `LOGNAME`).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        SessionInfo {
            ssh_server_port: var("SSH_CONNECTION").as_deref().and_then(ssh_server_port),
            user: var("SUDO_USER").or_else(|| var("USER")).or_else(|| var("LOGNAME")),
            netns: None,
            relaunch: Vec::new(),
        }
    }
}

/// The server port of an `SSH_CONNECTION` value (`client_ip client_port server_ip server_port`).
pub fn ssh_server_port(ssh_connection: &str) -> Option<u16> {
    ssh_connection.split_whitespace().nth(3)?.parse().ok()
}

/// What every tool call gets: the host, the configuration, where to keep state.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The audited host.
    pub host: Host,
    /// The parsed configuration.
    pub config: Arc<Config>,
    /// Per-audited-host state directory (previous rulesets, CPU samples…),
    /// `None` when state is not kept (e.g. `tools run` in a read-only place).
    pub state_dir: Option<PathBuf>,
    /// The session vigil runs in. [`Ctx::new`] reads it from the environment on the
    /// live root (so the SSH-port and own-account refusals hold by default) and
    /// leaves it empty for any other root.
    pub session: SessionInfo,
    /// Where a tool may write temporary files: the confined worker's scratch directory
    /// (the only place it may write), `None` for the system's temporary directory.
    pub scratch_dir: Option<PathBuf>,
}

impl Ctx {
    /// A context over `host` with the default configuration and no state.
    pub fn new(host: Host) -> Self {
        let session = if host.is_live() { SessionInfo::from_env() } else { SessionInfo::default() };
        Ctx { host, config: Arc::new(Config::default()), state_dir: None, session, scratch_dir: None }
    }

    /// Replace the session information.
    pub fn with_session(mut self, session: SessionInfo) -> Self {
        self.session = session;
        self
    }

    /// Replace the configuration.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// Set the state directory.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
}

/// A typed tool. Implement it once per file; register it in [`crate::registry`].
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// The input the model sends; field doc comments are the schema descriptions.
    type Input: DeserializeOwned + JsonSchema + Send + Sync;
    /// The facts the tool returns.
    type Output: Serialize + JsonSchema + Send;

    /// The name the model calls it by.
    fn name(&self) -> &'static str;

    /// What it does, written for the model: when to use it, what it returns.
    fn description(&self) -> &'static str;

    /// Mutating unless the tool says otherwise.
    fn effect(&self) -> Effect {
        Effect::Mutating
    }

    /// Run the tool.
    async fn run(&self, ctx: &Ctx, input: Self::Input) -> Result<Outcome<Self::Output>, ToolError>;
}

/// A tool that changes the host. Register it with [`crate::registry::Registry::add_change`];
/// it runs only through [`crate::registry::Registry::run_approved`].
#[async_trait]
pub trait Change: Send + Sync + 'static {
    /// The input the model sends; field doc comments are the schema descriptions.
    type Input: DeserializeOwned + JsonSchema + Send + Sync;
    /// The facts the tool returns.
    type Output: Serialize + JsonSchema + Send;
    /// Everything the plan was computed from (refusals checked, commands chosen),
    /// handed unchanged to [`Change::execute`] so nothing is decided twice.
    type Prepared: Send + Sync;

    /// The name the model calls it by.
    fn name(&self) -> &'static str;

    /// What it does, written for the model: when to use it, what it returns.
    fn description(&self) -> &'static str;

    /// Look at the host and decide exactly what would change, without changing anything:
    /// the plan shown to the human and the state it was computed from. The plan must be
    /// deterministic (no random names or times in it): the approval binds to its digest
    /// and the registry computes it again right before `execute`.
    async fn prepare(&self, ctx: &Ctx, input: &Self::Input) -> Result<(Plan, Self::Prepared), ToolError>;

    /// Make exactly the change `prepare` planned. The registry calls it only after the
    /// plan it just recomputed hashed like the approved one ([`Compared`] is its proof).
    async fn execute(
        &self,
        ctx: &Ctx,
        input: Self::Input,
        prepared: Self::Prepared,
        proof: Compared,
    ) -> Result<Outcome<Self::Output>, ToolError>;
}

/// An input with no fields, for tools that take no arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}
