//! The policy gate's part in the tools crate's own tests. A test program has no gate, so
//! it holds the process's one approver itself and approves exactly the plan the registry
//! computed, as the gate does after a human typed the tool's name.
#![allow(dead_code, reason = "each test program uses the part it needs")]

use std::sync::LazyLock;

use serde_json::Value;
use vigil_tools::{Approver, Ctx, Registry, ToolError, ToolResult};

static APPROVER: LazyLock<Option<Approver>> = LazyLock::new(Approver::claim);

/// This test program's approver.
pub fn approver() -> &'static Approver {
    APPROVER.as_ref().expect("nothing else in this test program claims the approver")
}

/// Plan `tool`, approve that plan, and let the registry compute it again and run exactly it.
pub async fn approved(r: &Registry, ctx: &Ctx, tool: &str, input: Value) -> Result<ToolResult, ToolError> {
    let planned = r.plan(ctx, tool, input.clone()).await?;
    r.run_approved(ctx, tool, input, approver().approve(&planned)).await
}
