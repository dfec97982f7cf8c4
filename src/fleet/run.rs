//! `vigil fleet review`: every selected host over ssh, at most `--forks` at once.

use anyhow::Result;

use crate::app::App;
use crate::cli::FleetReviewArgs;

/// Run `vigil fleet review`.
pub async fn review(_app: &App, _args: FleetReviewArgs) -> Result<u8> {
    anyhow::bail!("`fleet review` is not built yet")
}
