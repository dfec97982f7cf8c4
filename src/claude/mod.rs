//! The Claude Messages API client: request and response types, the SSE
//! parser, response assembly, the HTTP client with retries, and prices.
//!
//! - [`types`]: messages, content blocks (echoed verbatim), requests, usage, stop reasons.
//! - [`sse`]: the event-stream wire format and the API's events.
//! - [`stream`]: one response assembled from its events.
//! - [`client`]: `POST /v1/messages`, streaming, retries, recording.
//! - [`pricing`]: the one (approximate) price table.

pub mod client;
pub mod pricing;
pub mod sse;
pub mod stream;
pub mod types;

pub use client::{ApiError, Client, Note};
pub use types::{ContentBlock, Message, Request, Response, Role, StopReason, Usage};

/// The model used when neither `--model`, `VIGIL_MODEL` nor the config names one.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";
