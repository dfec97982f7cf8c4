//! Approval: the one mechanism by which a change to the host is allowed to run.
//!
//! A mutating tool ([`crate::tool::Change`]) never runs on its own say-so. The
//! registry computes its plan ([`crate::registry::Registry::plan`] → [`Planned`],
//! the redacted plan and its digest); the policy gate shows it and, when a human
//! confirms, turns it into an [`Approval`]; [`crate::registry::Registry::run_approved`]
//! then recomputes the plan, refuses when its digest differs (the host changed), and
//! hands exactly the state it compared to the tool's `execute`. An approval is
//! consumed by the run (it is not `Clone`), so one approval runs a plan once.
//!
//! Only the holder of the process's single [`Approver`] can make an approval. The
//! policy gate claims it when the first gate is built; anyone else asking gets
//! `None`, and if other code ever claimed it first the gate would refuse every
//! change (fail closed). Neither type can be built by other code:
//!
//! ```compile_fail,E0451
//! // An approval cannot be written down by hand…
//! let a = vigil_tools::approval::Approval { tool: "lock_account", input_digest: String::new(), plan_digest: String::new() };
//! ```
//!
//! ```compile_fail,E0451
//! // …nor can the capability that makes one.
//! let a = vigil_tools::approval::Approver { _sealed: () };
//! ```
//!
//! ```compile_fail,E0382
//! // An approval runs its plan once: it is moved into the run.
//! async fn twice(r: &vigil_tools::Registry, ctx: &vigil_tools::Ctx, a: vigil_tools::approval::Approval) {
//!     let input = serde_json::json!({});
//!     let _ = r.run_approved(ctx, "lock_account", input.clone(), a).await;
//!     let _ = r.run_approved(ctx, "lock_account", input, a).await;
//! }
//! ```
//!
//! ```compile_fail,E0451
//! // A change's `execute` needs proof that the registry compared the plan.
//! let _ = vigil_tools::compared::Compared { _sealed: () };
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::redact::Redactor;
use crate::tool::Plan;

/// A plan as the registry computed it, redacted, with the digest an approval binds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The tool the plan is for.
    pub tool: &'static str,
    /// What will change (redacted: this is what the human sees).
    pub plan: Plan,
    /// SHA-256 of `plan`: the same value the gate logs and a deferred apply's token stores.
    pub digest: String,
    /// SHA-256 of the input the plan was computed for.
    pub(crate) input_digest: String,
}

impl Planned {
    /// A computed plan, redacted, with its digest.
    pub(crate) fn new(tool: &'static str, plan: Plan, input: &Value) -> Self {
        let plan = Redactor::global().plan(plan);
        let digest = plan.digest();
        Planned { tool, plan, digest, input_digest: input_digest(input) }
    }
}

/// The digest an approval binds to for a plan a tool computed: SHA-256 of the plan as the
/// human saw it (redacted). A deferred apply stores this in its token.
pub fn plan_digest(plan: &Plan) -> String {
    Redactor::global().plan(plan.clone()).digest()
}

fn input_digest(input: &Value) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(input).unwrap_or_default()))
}

/// Permission to run one plan once: made only by the [`Approver`], consumed by
/// [`crate::registry::Registry::run_approved`].
#[derive(Debug)]
pub struct Approval {
    tool: &'static str,
    input_digest: String,
    plan_digest: String,
}

impl Approval {
    /// The digest of the approved plan.
    pub fn plan_digest(&self) -> &str {
        &self.plan_digest
    }

    /// The tool it approves.
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// Whether it approves this call of `tool` with this input.
    pub(crate) fn is_for(&self, tool: &str, input: &Value) -> bool {
        self.tool == tool && self.input_digest == input_digest(input)
    }
}

/// The capability to approve plans. There is one per process, held by the policy gate.
#[derive(Debug)]
pub struct Approver {
    _sealed: (),
}

static CLAIMED: AtomicBool = AtomicBool::new(false);

impl Approver {
    /// The process's approver, the first time it is asked for; `None` ever after.
    /// The policy gate claims it before any tool runs; a test program that has no
    /// gate (the tools crate's own tests) claims it itself.
    pub fn claim() -> Option<Approver> {
        (!CLAIMED.swap(true, Ordering::SeqCst)).then_some(Approver { _sealed: () })
    }

    /// A human (or the root-owned scheduled-run rule) approved exactly this plan.
    pub fn approve(&self, planned: &Planned) -> Approval {
        Approval { tool: planned.tool, input_digest: planned.input_digest.clone(), plan_digest: planned.digest.clone() }
    }

    /// Unit tests of this crate: an approver that does not take the process's one.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Approver {
        Approver { _sealed: () }
    }
}
