//! [`Compared`]: the proof, handed to [`crate::tool::Change::execute`], that the
//! registry recomputed a change's plan right before running it and found it equal to
//! the approved one. A leaf of its own, so the tools that take it need not import the
//! registry (which imports every tool). Code outside this crate cannot make one (a
//! `compile_fail` doctest in [`crate::approval`] shows it); inside it, only
//! `Registry::run_approved` calls [`Compared::by_the_registry`], which
//! `tests/architecture.rs` checks.

/// Proof that the plan about to run is the approved one. Only the registry makes one.
#[derive(Debug)]
pub struct Compared {
    _sealed: (),
}

impl Compared {
    /// For `Registry::run_approved` alone, after it compared the plans.
    pub(crate) fn by_the_registry() -> Compared {
        Compared { _sealed: () }
    }
}
