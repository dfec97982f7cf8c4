//! `check_tls` (placeholder).
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct CheckTls;
/// Input.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsInput {}
/// Facts.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct TlsFacts {}
#[async_trait]
impl Tool for CheckTls {
    type Input = TlsInput;
    type Output = TlsFacts;
    fn name(&self) -> &'static str {
        "check_tls"
    }
    fn description(&self) -> &'static str {
        "tls"
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn run(&self, _ctx: &Ctx, _i: TlsInput) -> Result<Outcome<TlsFacts>, ToolError> {
        Ok(Outcome::new(TlsFacts {}, vec![]))
    }
}
