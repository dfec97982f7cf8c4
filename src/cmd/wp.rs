//! `vigil wp stage|apply|rollback|recover`: staged WordPress updates on the
//! command line. Each is a call of `wordpress_stage_update` or
//! `wordpress_apply_update` through the same policy gate as the model's calls:
//! the plan is shown and a human types the tool's name at the terminal. The
//! one other way through is the single-use `--approval` token a deferred
//! apply's job carries, which opens the gate only for the plan that hashes
//! like the one a human confirmed when scheduling it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::app::App;
use crate::audit::Origin;
use crate::cli::WpAction;
use crate::gate::{Answer, ConfirmRequest, Confirmer, Terminal};

const STAGE: &str = "wordpress_stage_update";
const APPLY: &str = "wordpress_apply_update";

/// `plugin:woocommerce@9.1.2`, `theme:astra`, `core@6.4.2`, `core` → an update object.
pub fn parse_update(s: &str) -> Result<Value> {
    let (what, version) = match s.split_once('@') {
        Some((w, v)) if !v.is_empty() => (w, Some(v)),
        Some(_) => bail!("`{s}`: nothing after @ (e.g. plugin:woocommerce@9.1.2)"),
        None => (s, None),
    };
    let (kind, slug) = match what.split_once(':') {
        Some((k, slug)) if matches!(k, "plugin" | "theme") && !slug.is_empty() => (k, slug),
        None if what == "core" => ("core", "wordpress"),
        _ => bail!("`{s}`: expected plugin:SLUG[@VERSION], theme:SLUG[@VERSION] or core[@VERSION]"),
    };
    let mut v = json!({"kind": kind, "slug": slug});
    if let Some(ver) = version {
        v["version"] = json!(ver);
    }
    Ok(v)
}

/// Opens the gate for one deferred apply: the token must have been issued for this
/// site, staged id and exactly this plan's hash. Consumed whatever the answer.
struct ApprovalToken {
    token: String,
    state: PathBuf,
}

#[async_trait]
impl Confirmer for ApprovalToken {
    async fn confirm(&self, req: &ConfirmRequest) -> Answer {
        if req.tool != APPLY {
            return Answer::Unavailable("an approval token only opens wordpress_apply_update".into());
        }
        let site = req.args["site"].as_str().unwrap_or_default();
        let id = req.args["staged_id"].as_str().unwrap_or_default();
        match vigil_tools::wpupdate::approval::redeem(&self.state, &self.token, APPLY, site, id, &req.digest) {
            Ok(_) => Answer::Confirmed,
            Err(why) => Answer::Unavailable(format!("the deferred apply's approval does not hold: {why}")),
        }
    }
}

/// Run `vigil wp …`.
pub async fn run(app: &App, action: WpAction) -> Result<u8> {
    let mut approval = None;
    let (tool, input) = match action {
        WpAction::Stage { site, updates } => {
            let updates: Vec<Value> = updates.iter().map(|u| parse_update(u)).collect::<Result<_>>()?;
            (STAGE, json!({"site": site, "updates": updates}))
        }
        WpAction::Apply { site, staged_id, at, approval: token } => {
            approval = token;
            let mut v = json!({"site": site, "staged_id": staged_id});
            if let Some(at) = at {
                v["at"] = json!(at);
            }
            (APPLY, v)
        }
        WpAction::Rollback { site, staged_id } => {
            (APPLY, json!({"site": site, "staged_id": staged_id, "action": "rollback"}))
        }
        WpAction::Recover { site } => (APPLY, json!({"site": site, "action": "recover"})),
    };
    let confirmer: Arc<dyn Confirmer> = match approval {
        Some(token) => Arc::new(ApprovalToken { token, state: app.host_dir().context("state directory")? }),
        None => Arc::new(Terminal),
    };
    let gate = app.gate(Origin::Wp, confirmer)?;
    let r = gate.call(tool, input).await;
    let mut out = std::io::stdout().lock();
    match r.result {
        Ok(res) => {
            let v = res.to_value();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            let ok = v["facts"]["ok"].as_bool().unwrap_or(true);
            if let Some(id) = v["facts"]["id"].as_str().filter(|_| tool == STAGE && ok) {
                eprintln!(
                    "vigil: staged {id}; apply it with: vigil wp apply {} {id} [--at TIME]",
                    v["facts"]["site"].as_str().unwrap_or("")
                );
            }
            Ok(if ok { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("vigil: {}", crate::gate::failure_line(tool, &r.decision, &e));
            Ok(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_parse_as_documented() {
        assert_eq!(
            parse_update("plugin:woocommerce@9.1.2").unwrap(),
            json!({"kind": "plugin", "slug": "woocommerce", "version": "9.1.2"})
        );
        assert_eq!(parse_update("theme:astra").unwrap(), json!({"kind": "theme", "slug": "astra"}));
        assert_eq!(
            parse_update("core@6.4.2").unwrap(),
            json!({"kind": "core", "slug": "wordpress", "version": "6.4.2"})
        );
        assert!(parse_update("plugin:").is_err());
        assert!(parse_update("mu:x").is_err());
        assert!(parse_update("core@").is_err());
    }
}
