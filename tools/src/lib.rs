//! vigil-tools: typed, read-mostly tools on a Linux web-hosting server.
//!
//! This crate knows nothing about any model. It gives the assistant, the
//! deterministic review and the MCP server one set of tools.
//!
//! # Layout
//!
//! - [`host`]: `Host`, the only way a tool reads a file or runs a command.
//! - [`inroot`]: how `Host` resolves a path inside the audited root and opens only regular files.
//! - [`spawn`]: the one way a child process starts (clean environment, no inherited
//!   descriptors; site code also without a terminal, in its own PID namespace).
//! - [`tool`]: the `Tool` trait, `Effect`, `Plan`, `Outcome`, `Ctx`, `ToolError`.
//! - [`registry`]: every tool type-erased, inputs validated against their schema.
//! - [`finding`]: `Finding`, `Severity`, `Category` (the seven patterns).
//! - [`redact`]: the `Redactor` every output passes before it leaves the crate.
//! - [`config`]: the configuration file.
//! - one module (or folder) per tool; every tool is registered in `Registry::builtin`.
#![deny(missing_docs)]
// Tests build their fixtures with std::fs; the ban on it (clippy.toml) holds for the library itself.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod accounts;

pub mod backups;
pub mod config;
pub mod docker;
pub mod finding;
pub mod firewall;
pub mod fixes;
pub mod host;
pub mod inroot;
pub mod ports;
pub mod redact;
pub mod registry;
pub mod services;
pub mod spawn;
pub mod ssh;
pub mod tls;
pub mod tool;
pub mod updates;
pub mod users;
pub mod wordpress;
pub mod wpupdate;

#[cfg(test)]
pub(crate) mod testutil;

pub use config::Config;
pub use finding::{Category, Finding, Severity};
pub use host::{Host, HostError};
pub use redact::Redactor;
pub use registry::{Registry, ToolInfo, ToolResult};
pub use tool::{Ctx, Effect, Outcome, Plan, SessionInfo, Tool, ToolError};
