//! vigil: a natural-language operations assistant and monthly security review
//! for Linux web-hosting servers.
//!
//! # Layout
//!
//! - [`cli`]: the command line (the contract in `docs/architecture.md`).
//! - [`app`]: host, config, state directory and registry, resolved once.
//! - [`config`]: the configuration file: the app's sections here, the tools' in `vigil_tools::config`.
//! - [`gate`]: the policy gate every tool call passes.
//! - [`claude`]: the Messages API client (SSE, retries, recording, prices).
//! - [`agent`]: the conversation loop behind `ask` and `chat`.
//! - [`model_view`]: the compact view of a tool result the model reads.
//! - [`prompts`]: the system prompt and saved prompts.
//! - [`audit`]: the hash-chained audit log.
//! - [`mcp`]: `vigil mcp`, the registry as an MCP server on stdio.
//! - [`state`]: the private state directory.
//! - [`auth`]: the API key and the OS keyring.
//! - [`term`]: escape stripping and colour.
//! - [`review`]: the comprehensive review, its history and its formats.
//! - [`notify`]: email and webhook notifications after reviews.
//! - [`schedule`]: scheduled reviews (systemd timer or cron) and their record.
//! - [`worker`]: the kernel-confined worker read-only tools run in, and its broker.
//! - [`cmd`]: one module per command.
//!
//! Errors: `anyhow` here; the tools crate returns typed errors. `main` prints
//! the error chain and exits 2; a closed pipe is a success.

#![deny(missing_docs)]
// Tests build their fixtures with std::fs; the ban on it (clippy.toml) holds for the library itself.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod agent;
pub mod app;
pub mod audit;
pub mod auth;
pub mod claude;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod fleet;
pub mod gate;
pub mod mcp;
pub mod model_view;
pub mod notify;
pub mod prompts;
pub mod review;
pub mod schedule;
pub mod state;
pub mod term;
pub mod worker;
