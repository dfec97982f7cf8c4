//! The worker's messages: one JSON object per line, each way.
//!
//! Parent to worker: its [`Setup`] (first line), then [`ToWorker`] calls and broker
//! answers. Worker to parent: [`FromWorker`], first `ready` with what held, then
//! results and broker questions. Calls carry ids so many run at once.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_tools::ToolResult;
use vigil_tools::broker::{Fact, FactAnswer, FactError};

use super::SandboxStatus;

/// What the worker needs to build its tool context (sent once it is confined). Only what
/// read-only tools read: the tools' own configuration ([`vigil_tools::Config`]), never the
/// app's `[notify]`, `[agent]`, `[mcp]` or keys, which a compromised worker must not learn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    /// The audited root.
    pub root: PathBuf,
    /// The review's "now" (seconds since the epoch).
    pub now_unix: i64,
    /// The configuration.
    pub config: vigil_tools::Config,
    /// The worker's copy of the tools' state directory (in its scratch directory).
    pub state_dir: Option<PathBuf>,
}

impl Setup {
    /// The setup for a worker serving `ctx`, its state directory copied to `state`.
    pub fn for_worker(ctx: &vigil_tools::Ctx, state: &std::path::Path) -> Setup {
        Setup {
            root: ctx.host.root().to_path_buf(),
            now_unix: ctx.host.now_unix(),
            config: (*ctx.config).clone(),
            state_dir: ctx.state_dir.as_ref().map(|_| state.to_path_buf()),
        }
    }
}

/// Parent to worker. Adjacently tagged, the tag first: a large body (a socket table, a
/// result) is read straight into its type, not buffered first to find an inner tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "body")]
pub enum ToWorker {
    /// Run one read-only tool.
    Call {
        /// Matches the result.
        id: u64,
        /// The tool.
        tool: String,
        /// Its input (already validated by the gate; validated again by the registry).
        input: Value,
    },
    /// The answer to a broker question.
    Fact {
        /// The question's id.
        id: u64,
        /// The fact or why not.
        answer: Result<FactAnswer, FactError>,
    },
}

/// Worker to parent (tagged as [`ToWorker`]). `R` is the result as the worker writes it,
/// [`vigil_tools::Unredacted`], and as the parent reads it, [`ToolResult`] (the same JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "body")]
pub enum FromWorker<R = ToolResult> {
    /// Confined (as far as it went) and ready for calls.
    Ready {
        /// What held.
        status: SandboxStatus,
    },
    /// A call's result.
    Result {
        /// The call's id.
        id: u64,
        /// The result, or the tool's error in words. Not redacted: the parent redacts it.
        result: Result<R, String>,
        /// Files the worker refused to read so far: `(path shown escaped, line)`.
        skipped: Vec<(String, String)>,
    },
    /// A broker question.
    Ask {
        /// Matches the answer.
        id: u64,
        /// One of the fixed kinds.
        fact: Fact,
    },
}
