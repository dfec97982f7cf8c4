//! The remote side of a fleet run: `vigil __remote` (see [`super::proto`]).

use anyhow::Result;

use crate::app::App;

/// Answer one request from the controller.
pub async fn serve(_app: &App) -> Result<u8> {
    anyhow::bail!("`__remote` is not built yet")
}
