//! The fleet report: one row per host, fleet-wide findings, then each host's
//! review; history per host; text, md, json, html, prometheus and jsonl.

use anyhow::Result;

use super::outcome::FleetRun;
use crate::app::App;
use crate::cli::FleetReviewArgs;

/// Render, save and print a finished fleet run; the exit code of `fleet review`.
pub fn finish(_app: &App, _args: &FleetReviewArgs, _run: FleetRun) -> Result<u8> {
    anyhow::bail!("the fleet report is not built yet")
}
