//! The fixes: the three mutating tools a review can offer in a conversation
//! (`firewall_deny_port`, `lock_account`, `verify_backup_restore`), for
//! patterns 5, 7 and 4 of the seven mistakes (`docs/architecture.md`).
//!
//! They share what makes a change safe to offer: a [`Cmd`] that renders
//! exactly the argv that will run (so the plan shows the real command), a
//! runner that can be pointed into a test network namespace, and a memory of
//! the plan each input was shown with, so `run` refuses when the host changed
//! between the plan the administrator approved and the moment it runs.

pub mod deny_port;
pub mod lock_account;
pub mod restore;
mod restore_db;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::host::CmdOutput;
use crate::tool::{Ctx, Plan, ToolError};

pub use deny_port::FirewallDenyPort;
pub use lock_account::LockAccount;
pub use restore::VerifyBackupRestore;

/// Time limit of one firewall or account command.
pub(crate) const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// One command: a program and its arguments, run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// Program name (looked up in the usual bin dirs).
    pub program: String,
    /// Arguments, passed as they are.
    pub args: Vec<String>,
}

impl Cmd {
    /// A command from a program and its arguments.
    pub fn new<S: AsRef<str>>(program: &str, args: &[S]) -> Self {
        Cmd { program: program.to_string(), args: args.iter().map(|a| a.as_ref().to_string()).collect() }
    }

    /// The command as a shell would need it typed (arguments quoted when needed).
    pub fn render(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The command as it will run in this context: inside `ip netns exec NAME` when
    /// the session names a test namespace.
    pub fn in_ctx(&self, ctx: &Ctx) -> Cmd {
        match &ctx.session.netns {
            Some(ns) => {
                let mut args = vec!["netns".to_string(), "exec".to_string(), ns.clone(), self.program.clone()];
                args.extend(self.args.iter().cloned());
                Cmd { program: "ip".into(), args }
            }
            None => self.clone(),
        }
    }

    /// Rendered as it will run in this context.
    pub fn shown(&self, ctx: &Ctx) -> String {
        self.in_ctx(ctx).render()
    }

    /// Run it (refused off the live root); a command that cannot start is an error.
    pub async fn run(&self, ctx: &Ctx) -> Result<CmdOutput, ToolError> {
        let c = self.in_ctx(ctx);
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        Ok(ctx.host.run(&c.program, &args, CMD_TIMEOUT).await?)
    }

    /// Run it and fail with its message unless it exits 0.
    pub async fn run_ok(&self, ctx: &Ctx) -> Result<CmdOutput, ToolError> {
        let out = self.run(ctx).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(ToolError::Failed(format!("`{}` failed (exit {}): {}", self.render(), out.status, first_line(&out))))
        }
    }
}

/// The first non-empty line of a command's error output (or its output).
pub(crate) fn first_line(out: &CmdOutput) -> String {
    out.stderr
        .lines()
        .chain(out.stdout.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_string()
}

/// Quote one word for a POSIX shell when it needs it.
pub fn quote(w: &str) -> String {
    if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Check a free-text reason that ends up in a firewall comment or a log:
/// short, one line, no quotes or shell/nft metacharacters.
pub(crate) fn check_reason(reason: &str) -> Result<String, ToolError> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(ToolError::InvalidInput("reason: say why (it is recorded with the change)".into()));
    }
    if r.chars().count() > 100 {
        return Err(ToolError::InvalidInput("reason: at most 100 characters".into()));
    }
    if let Some(c) = r.chars().find(|c| !(c.is_alphanumeric() || " -_.,:/()#@+=%".contains(*c))) {
        return Err(ToolError::InvalidInput(format!(
            "reason: the character {c:?} is not allowed (letters, digits, spaces and - _ . , : / ( ) # @ + = % only)"
        )));
    }
    Ok(r.to_string())
}

/// Plans shown, by (tool, root, namespace, input): what `run` must find again.
static SHOWN: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn plan_key<I: Serialize>(tool: &str, ctx: &Ctx, input: &I) -> String {
    format!(
        "{tool}\0{}\0{}\0{}",
        ctx.host.root().display(),
        ctx.session.netns.as_deref().unwrap_or(""),
        serde_json::to_string(input).unwrap_or_default()
    )
}

/// Remember the plan shown for this input, so `run` can check the host did not change since.
pub(crate) fn remember_plan<I: Serialize>(ctx: &Ctx, input: &I, plan: &Plan) {
    if let Ok(mut m) = SHOWN.lock() {
        if m.len() > 256 {
            m.clear();
        }
        m.insert(plan_key(&plan.tool, ctx, input), plan.digest());
    }
}

/// `run` recomputed `plan`: it must be the one shown for this input (each shown plan runs once).
pub(crate) fn check_plan<I: Serialize>(ctx: &Ctx, input: &I, plan: &Plan) -> Result<(), ToolError> {
    let shown = SHOWN.lock().ok().and_then(|mut m| m.remove(&plan_key(&plan.tool, ctx, input)));
    match shown {
        None => Err(ToolError::Refused(format!(
            "{} changes the host: its plan must be shown (and approved) before it runs",
            plan.tool
        ))),
        Some(d) if d != plan.digest() => Err(ToolError::Refused(format!(
            "the host changed since the plan was shown; nothing was done. The plan now is:\n{}",
            plan.render()
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;

    #[test]
    fn commands_render_as_typed_and_reasons_are_checked() {
        let c = Cmd::new("usermod", &["--unlock", "--expiredate", "", "bob"]);
        assert_eq!(c.render(), "usermod --unlock --expiredate '' bob");
        let c = Cmd::new("ufw", &["deny", "9200/tcp", "comment", "vigil: es open"]);
        assert_eq!(c.render(), "ufw deny 9200/tcp comment 'vigil: es open'");
        assert!(check_reason("Elasticsearch left open (ticket #42)").is_ok());
        assert!(check_reason("x\" ; drop").is_err());
        assert!(check_reason("  ").is_err());
        assert_eq!(crate::tool::ssh_server_port("203.0.113.5 51234 198.51.100.7 2222"), Some(2222));
        assert_eq!(crate::tool::ssh_server_port("garbage"), None);
    }

    #[test]
    fn a_plan_runs_once_and_only_as_shown() {
        let ctx = Ctx::new(Host::at("/nonexistent"));
        let p = Plan::new("t", "one").step("a", Some("true".into()), None);
        assert!(check_plan(&ctx, &1u8, &p).is_err(), "never shown");
        remember_plan(&ctx, &1u8, &p);
        let changed = Plan::new("t", "two");
        assert!(matches!(check_plan(&ctx, &1u8, &changed), Err(ToolError::Refused(m)) if m.contains("changed")));
        remember_plan(&ctx, &1u8, &p);
        assert!(check_plan(&ctx, &1u8, &p).is_ok());
        assert!(check_plan(&ctx, &1u8, &p).is_err(), "a shown plan runs once");
    }
}
