//! `vigil fleet status`: the last review of each host, reachability, overdue.

use std::path::Path;

use anyhow::Result;

use crate::app::App;

/// Run `vigil fleet status`.
pub fn run(_app: &App, _inventory: &Path, _limit: Option<&str>, _json: bool) -> Result<u8> {
    anyhow::bail!("`fleet status` is not built yet")
}
