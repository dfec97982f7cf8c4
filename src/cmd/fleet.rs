//! `vigil fleet review|status`: many servers over OpenSSH (see [`crate::fleet`]).

use anyhow::Result;

use crate::app::App;
use crate::cli::FleetAction;

/// Run `vigil fleet …`.
pub async fn run(app: &App, action: FleetAction) -> Result<u8> {
    match action {
        FleetAction::Review(args) => crate::fleet::run::review(app, args).await,
        FleetAction::Status { inventory, limit, json } => {
            crate::fleet::status::run(app, &inventory, limit.as_deref(), json)
        }
    }
}
