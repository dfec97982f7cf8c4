//! The remote side of `ask -i`/`chat -i`: one tool, a plan, or an approved change.

use super::proto::{Request, Response};
use crate::app::App;

/// Answer a `Tool`, `Plan` or `Apply` request.
pub async fn answer(_app: &App, _request: Request) -> Response {
    Response::Error { kind: "invalid".into(), message: "tools on a fleet host are not built yet".into() }
}
