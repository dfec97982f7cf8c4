//! One module per command; [`run`] dispatches with an exhaustive match.
//! Each returns the process exit code (0 fine, 1 findings/refused, 2 error).

pub mod ask;
pub mod auth;
pub mod chat;
pub mod console;
pub mod dist;
pub mod fleet;
pub mod log;
pub mod notify;
pub mod report;
pub mod review;
pub mod schedule;
pub mod tools;
pub mod vulndb;
pub mod wp;

use anyhow::Result;

use crate::app::App;
use crate::cli::{Cli, Command};

/// Run the parsed command line.
pub async fn run(cli: Cli) -> Result<u8> {
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return chat::run(&App::new(cli.global)?, crate::cli::ChatArgs::default()).await;
        }
        Cli::command().print_help()?;
        return Ok(0);
    };
    let app = match &command {
        // Generated from the command line alone: no configuration or state needed.
        Command::Completions { shell } => return dist::completions(*shell),
        Command::DistFiles { dir } => return dist::dist_files(dir),
        Command::Worker(_) => anyhow::bail!("`__worker` is started by vigil itself, before its runtime"),
        // Makes its own App per request (the request names the root), answering every error on stdout.
        Command::Remote => return crate::fleet::remote::serve(cli.global).await,
        Command::Tools { action: crate::cli::ToolsAction::Run { name, .. } } => {
            // What the confined worker will ask the parent for, read while the rest is set up.
            if !cli.global.no_sandbox && cli.global.root.is_none() {
                vigil_tools::parent::read_ahead(name);
            }
            App::new(cli.global)?
        }
        _ => App::new(cli.global)?,
    };
    match command {
        Command::Completions { shell } => dist::completions(shell),
        Command::DistFiles { dir } => dist::dist_files(&dir),
        Command::Worker(_) => Ok(2),
        Command::Tools { action } => tools::run(&app, action).await,
        Command::Log { action } => log::run(&app, action),
        Command::Auth { action } => auth::run(&app, action),
        Command::Review(args) => review::run(&app, args).await,
        Command::Ack(args) => review::ack(&app, args).await,
        Command::Report(args) => report::run(&app, args),
        Command::Notify { action } => notify::run(&app, action).await,
        Command::Schedule { action } => schedule::run(&app, action).await,
        Command::Mcp => crate::mcp::run(&app).await,
        Command::Ask(args) => ask::run(&app, args).await,
        Command::Chat(args) => chat::run(&app, args).await,
        Command::Wp { action } => wp::run(&app, action).await,
        Command::Vulndb { action } => vulndb::run(&app, action).await,
        Command::Fleet { action } => fleet::run(&app, action).await,
        Command::Remote => Ok(2),
    }
}
