//! What every tool that changes the host shares, so a change is shown exactly as it runs:
//! a [`Cmd`] that renders the argv that will run (the plan shows the real command), a
//! runner that can be pointed into a test network namespace, shell quoting for the
//! commands a plan shows, and the check of a free-text reason that is recorded with a
//! change. Used by the fixes (`fixes/`) and the WordPress updater (`wpupdate/`); the
//! approval of a change itself is not here but in [`crate::approval`] and the registry.

use std::time::Duration;

use crate::host::CmdOutput;
use crate::tool::{Ctx, ToolError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
