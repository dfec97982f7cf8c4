//! Running the programs staged updates need (`mariadb-dump`, `mariadb`, `php`)
//! with what `Host::run` does not offer: a file as stdin, and PHP started as the
//! site's owner through `setpriv`, never as root, confined as site code (no
//! terminal, its own PID namespace, killed as a whole: see [`crate::spawn`]).
//! Only on the live root.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::RunAs;
use crate::change::Cmd;
use crate::host::CmdOutput;
use crate::tool::{Ctx, ToolError};

/// A command with an optional file as its standard input.
#[derive(Debug, Clone)]
pub struct Proc {
    /// The command (its `render()` is what plans show).
    pub cmd: Cmd,
    /// Standard input from this file.
    pub stdin: Option<PathBuf>,
    /// Site code: `cmd` is `unshare … setpriv … php …` from [`as_user`], started in a
    /// new session and killed with its whole PID namespace.
    pub site_code: bool,
    /// Site code writes only below these directories (Landlock); none: nowhere.
    pub writable: Vec<PathBuf>,
}

impl Proc {
    /// A command.
    pub fn new<S: AsRef<str>>(program: &str, args: &[S]) -> Proc {
        Proc { cmd: Cmd::new(program, args), stdin: None, site_code: false, writable: Vec::new() }
    }

    /// Read standard input from `f`.
    pub fn stdin(mut self, f: &Path) -> Proc {
        self.stdin = Some(f.to_path_buf());
        self
    }

    /// Site code may write below `dirs` only (see [`crate::spawn::site_code`]).
    pub fn writes_only_in(mut self, dirs: &[&Path]) -> Proc {
        self.writable = dirs.iter().map(|d| d.to_path_buf()).collect();
        self
    }

    /// As a shell would need it typed.
    pub fn render(&self) -> String {
        match &self.stdin {
            Some(f) => format!("{} < {}", self.cmd.render(), crate::change::quote(&f.display().to_string())),
            None => self.cmd.render(),
        }
    }

    /// Run it on the live host, with a time limit.
    pub async fn run(&self, ctx: &Ctx, timeout: Duration) -> Result<CmdOutput, ToolError> {
        let child = self.spawn(ctx, Stdio::piped(), Stdio::piped())?;
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(CmdOutput {
                status: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            Ok(Err(e)) => Err(ToolError::Failed(format!("`{}`: {e}", self.cmd.program))),
            Err(_) => Err(ToolError::Failed(format!(
                "`{}` did not finish within {} s and was stopped",
                self.cmd.program,
                timeout.as_secs()
            ))),
        }
    }

    /// Run it and fail with its first error line unless it exits 0.
    pub async fn run_ok(&self, ctx: &Ctx, timeout: Duration) -> Result<CmdOutput, ToolError> {
        let out = self.run(ctx, timeout).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(ToolError::Failed(format!(
                "`{}` failed (exit {}): {}",
                self.render(),
                out.status,
                crate::change::first_line(&out)
            )))
        }
    }

    /// Start it (killed when the handle is dropped).
    #[expect(
        clippy::disallowed_methods,
        reason = "standard input is a file vigil itself wrote (a database dump it took), never a tenant path"
    )]
    pub fn spawn(&self, ctx: &Ctx, stdout: Stdio, stderr: Stdio) -> Result<tokio::process::Child, ToolError> {
        if !ctx.host.is_live() {
            return Err(ToolError::Refused(format!(
                "`{}` not run: commands only run on the live root",
                self.cmd.program
            )));
        }
        let stdin = match &self.stdin {
            Some(f) => Stdio::from(
                std::fs::File::open(f).map_err(|e| ToolError::Failed(format!("cannot read {}: {e}", f.display())))?,
            ),
            None => Stdio::null(),
        };
        let mut command = if self.site_code {
            let writable: Vec<&Path> = self.writable.iter().map(PathBuf::as_path).collect();
            crate::spawn::site_code(&self.cmd.args, &writable).map_err(ToolError::Refused)?
        } else {
            let path = if self.cmd.program.contains('/') {
                crate::spawn::resolve(&self.cmd.program)
            } else {
                ctx.host.which(&self.cmd.program).map(PathBuf::from)
            }
            .ok_or_else(|| ToolError::Failed(format!("`{}` is not installed", self.cmd.program)))?;
            crate::spawn::command(&path, &self.cmd.args, &[])
        };
        command
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| ToolError::Failed(format!("cannot start `{}`: {e}", self.cmd.program)))
    }
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `args` run as `who`, as site code: in a new session and PID namespace
/// (`unshare --pid --fork --kill-child`), through `setpriv` (clean environment, the
/// user's groups, no new privileges) when we are root, directly when we already are
/// that user; refused otherwise, and refused when no PID namespace can be made.
pub fn as_user(who: &RunAs, program: &str, args: &[String]) -> Result<Proc, ToolError> {
    if who.uid == 0 {
        return Err(ToolError::Refused("PHP is never run as root".into()));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if me != 0 && me != who.uid {
        return Err(ToolError::Refused(format!(
            "PHP must run as uid {} (the site's owner); run vigil as root or as that user",
            who.uid
        )));
    }
    let argv = crate::spawn::site_code_argv(who.uid, who.gid, who.name.is_some(), program, args);
    Ok(Proc { cmd: Cmd::new("unshare", &argv), stdin: None, site_code: true, writable: Vec::new() })
}
