//! vigil-tools: typed, read-mostly tools on a Linux web-hosting server.
//!
//! This crate knows nothing about any model. It gives the assistant, the
//! deterministic review and the MCP server one set of tools.
//!
//! # Layout
//!
//! - [`host`]: `Host`, the only way a tool reads a file or runs a command.
//! - [`broker`]: the fixed read-only facts the confined worker's `Host` asks the parent for.
//! - [`parent`]: the parent's answers to those facts, on its live host.
//! - [`inroot`]: how `Host` resolves a path inside the audited root and opens only regular files.
//! - [`spawn`]: the one way a child process starts (clean environment, no inherited
//!   descriptors; site code also without a terminal, in its own PID namespace).
//! - [`sandbox`]: kernel confinement of read-only work (non-root user, Landlock, seccomp,
//!   no network) and the [`sandbox::Status`] that says what held.
//! - [`tool`]: the `Tool` and `Change` traits, `Effect`, `Plan`, `Outcome`, `Ctx`, `ToolError`.
//! - [`registry`]: every tool type-erased, inputs validated against their schema; where a change
//!   runs only as the plan that was approved.
//! - [`approval`]: `Planned`, `Approval` and the one `Approver` (held by the policy gate).
//! - [`change`]: what tools that change the host share (`Cmd`, quoting, reasons).
//! - [`compared`]: the proof a change's plan was compared with the approved one.
//! - [`finding`]: `Finding`, `Severity`, `Category` (the seven patterns).
//! - [`redact`]: the `Redactor` every output passes before it leaves the crate.
//! - [`format`], [`atomic`], [`archive_path`]: leaf helpers for every module: dates, byte sizes and error
//!   chains written one way; vigil's own files replaced one way (no-follow, fsync, rename);
//!   archive members kept inside the directory they are unpacked into.
//! - [`config`]: the tools' part of the configuration file.
//! - [`known_ports`]: well-known services by port (a leaf: `ports` and `firewall` both read it).
//! - one module (or folder) per tool; every tool is registered in `Registry::builtin`.
#![deny(missing_docs)]
// Tests build their fixtures with std::fs; the ban on it (clippy.toml) holds for the library itself.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod accounts;
pub mod approval;
pub mod archive_path;
pub mod atomic;
pub mod backups;
pub mod broker;
pub mod change;
pub mod compared;
pub mod config;
pub mod docker;
pub mod finding;
pub mod firewall;
pub mod fixes;
pub mod format;
pub mod host;
pub mod inroot;
pub mod known_ports;
pub mod parent;
pub mod ports;
pub mod redact;
pub mod registry;
pub mod sandbox;
pub mod services;
pub mod spawn;
pub mod ssh;
pub mod tls;
pub mod tool;
pub mod updates;
pub mod users;
pub mod web;
pub mod wordpress;
pub mod wpupdate;

#[cfg(test)]
pub(crate) mod testutil;

pub use approval::{Approval, Approver, Planned};
pub use config::Config;
pub use finding::{Category, Finding, Severity};
pub use host::{Host, HostError};
pub use redact::Redactor;
pub use registry::{Call, Found, Registry, RegistryError, ToolInfo, ToolResult, Unredacted};
pub use tool::{Change, Ctx, Effect, Outcome, Plan, SessionInfo, Tool, ToolError};
