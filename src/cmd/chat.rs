//! `vigil chat` (and bare `vigil` on a terminal): the conversational shell.
//!
//! A rustyline prompt with a persistent, private (0600) history in the state
//! directory; what is saved there is redacted like the transcript (a typed
//! `DB_PASSWORD=…` is kept as `DB_PASSWORD=[REDACTED]`), and a history written
//! by an older version is scrubbed when chat starts. A line ending in `\` continues
//! on the next. Ctrl-C during a turn cancels that turn — the stream is dropped and
//! the turn removed from the conversation, so the question is not sent again — not
//! the program; Ctrl-C at the prompt clears the line; Ctrl-D leaves.
//! Commands: `/help /tools /review /cost /clear /exit`; `/review` runs the
//! deterministic review (no model) and prints it. At start it shows what the
//! administrator must not miss: an overdue schedule and notifications that
//! failed since the last chat. Text streams as it arrives;
//! a spinner shows while tools run; colour only on a terminal without
//! `NO_COLOR`; everything the model or a tool says is escape-stripped.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use rustyline::error::ReadlineError;
use vigil_tools::{Effect, Redactor};

use super::console::Console;
use crate::agent::{Agent, NO_KEY, client_for};
use crate::app::App;
use crate::audit::Origin;
use crate::claude::pricing::price_of;
use crate::cli::ChatArgs;
use crate::gate::Terminal;
use crate::term::{paint_err, strip_controls};

const HELP: &str = "\
Ask anything about this server in plain words, e.g. \"which ports are open to the internet?\".
End a line with \\ to continue it on the next.
  /tools   the tools the model can call (mutating ones ask you first)
  /review  run the full security review of this host now (no model involved) and show it
  /cost    tokens used and approximate cost of this session
  /clear   start a new conversation
  /help    this help
  /exit    leave (or Ctrl-D)
Ctrl-C cancels a running answer; at the prompt it clears the line.";

fn private_history(path: &Path) {
    // Create it 0600 before rustyline writes to it; tighten it if it exists.
    let _ = crate::state::open_append(path);
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// Rewrite a history that holds secrets (saved before history was redacted) without them.
fn scrub_history(rl: &mut rustyline::DefaultEditor, path: &Path) {
    let entries: Vec<String> = rl.history().iter().cloned().collect();
    let clean: Vec<String> = entries.iter().map(|e| Redactor::global().text(e).into_owned()).collect();
    if clean == entries {
        return;
    }
    let _ = rl.clear_history();
    for e in &clean {
        let _ = rl.add_history_entry(e.as_str());
    }
    if let Err(e) = rl.save_history(path) {
        eprintln!("vigil: warning: cannot rewrite {} without its secrets: {e}", path.display());
    }
    private_history(path);
}

/// Run the REPL (`-i`: about the servers of an inventory).
pub async fn run(app: &App, args: ChatArgs) -> Result<u8> {
    let Some(client) = client_for(app)? else {
        eprintln!("vigil: {NO_KEY}");
        return Ok(2);
    };
    let (mut agent, about) = match &args.fleet.inventory {
        Some(_) => {
            let exchange = crate::fleet::agent::ssh_exchange(app, &args.fleet)?;
            let (tools, inv) = crate::fleet::agent::open(app, &args.fleet, exchange, Arc::new(Terminal), Origin::Chat)?;
            let about = format!("{} server(s) of {inv}", tools.host_names().len());
            (crate::fleet::agent::agent(app, client, tools, &inv), about)
        }
        None => {
            let gate = app.gate(Origin::Chat, Arc::new(Terminal))?;
            (Agent::new(app, client, gate), crate::state::host_name(&app.host))
        }
    };
    let config = rustyline::Config::builder().auto_add_history(false).max_history_size(1000)?.build();
    let mut rl = rustyline::DefaultEditor::with_config(config)?;
    let history = app.state.path().join("chat_history");
    private_history(&history);
    let _ = rl.load_history(&history);
    scrub_history(&mut rl, &history);
    eprintln!(
        "{}",
        paint_err(
            "1",
            &format!(
                "vigil {} — {} on {}. /help for commands, Ctrl-D to leave.",
                env!("CARGO_PKG_VERSION"),
                agent.model(),
                strip_controls(&about)
            )
        )
    );
    for n in start_notices(app) {
        eprintln!("{}", paint_err("1;31", &format!("!! {}", strip_controls(&n))));
    }
    loop {
        let line = match read_input(&mut rl) {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                eprintln!("vigil: cannot read input: {e}");
                break;
            }
        };
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        // Recalled with the arrow keys and kept on disk: the redacted line, never a typed secret.
        let _ = rl.add_history_entry(Redactor::global().text(&line).as_ref());
        let _ = rl.append_history(&history);
        if line.starts_with('/') {
            match line.split_whitespace().next().unwrap_or("") {
                "/exit" | "/quit" => break,
                "/help" => println!("{HELP}"),
                "/tools" => {
                    for t in app.registry.list() {
                        let effect = if t.effect == Effect::ReadOnly { "read-only" } else { "mutating " };
                        println!("{}", super::tools::list_line(t.name, effect, t.description));
                    }
                }
                "/cost" => print_cost(&agent),
                // A fleet chat is about the servers, not this controller: their review is `fleet review`.
                "/review" if args.fleet.inventory.is_some() => {
                    println!("In a fleet chat, review the servers with `vigil fleet review -i INVENTORY`.")
                }
                "/review" => run_review(app).await,
                "/clear" => {
                    agent.clear();
                    println!("New conversation.");
                }
                other => println!("Unknown command {}; /help lists them.", strip_controls(other)),
            }
            continue;
        }
        let mut console = Console::new(true, true);
        let result = tokio::select! {
            r = agent.run_turn(&line, &mut console) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        console.stop_spinner();
        console.end_line();
        match result {
            None => {
                agent.cancel_turn();
                eprintln!("{}", paint_err("33", "(cancelled: not sent)"));
            }
            Some(Err(e)) => eprintln!("{}", paint_err("31", &format!("error: {}", strip_controls(&format!("{e:#}"))))),
            Some(Ok(t)) => {
                if let Some(why) = t.stop.explain() {
                    eprintln!("{}", paint_err("33", &why));
                }
            }
        }
    }
    let _ = rl.append_history(&history);
    private_history(&history);
    if agent.usage().input_tokens + agent.usage().output_tokens > 0 {
        print_cost(&agent);
    }
    Ok(0)
}

/// What chat starts with: an overdue schedule, and notifications that failed since the last chat
/// (each shown in one chat only).
fn start_notices(app: &App) -> Vec<String> {
    let mut n: Vec<String> = crate::schedule::overdue_notice(&app.state, app.host.now_unix()).into_iter().collect();
    for f in crate::notify::take_unshown(&app.state, true) {
        n.push(format!("A notification failed on {}: {} ({})", f.at, f.channel, f.error));
    }
    n
}

/// `/review`: the deterministic review, saved to the history like `vigil review`, printed as text.
/// Its notices are the overdue schedule and the failed notifications no report has shown yet; they
/// stay unshown for the next report (the person reading the mailed report may not use chat).
async fn run_review(app: &App) {
    let mut notices: Vec<String> =
        crate::schedule::overdue_notice(&app.state, app.host.now_unix()).into_iter().collect();
    for f in crate::notify::failures(&app.state).into_iter().filter(|f| !f.shown_in_report) {
        notices.push(format!("A notification failed on {}: {} ({})", f.at, f.channel, f.error));
    }
    eprintln!("Reviewing {} (no model involved)…", crate::state::host_name(&app.host));
    let result = tokio::select! {
        r = super::review::review(app, false, notices) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    match result {
        None => eprintln!("{}", paint_err("33", "(cancelled)")),
        Some(Err(e)) => eprintln!("{}", paint_err("31", &format!("error: {}", strip_controls(&format!("{e:#}"))))),
        // Evidence comes from the host: escape-stripped like any tool output (so without colour).
        Some(Ok(r)) => print!("{}", strip_controls(&crate::review::render::text(&r))),
    }
}

/// One logical input: lines joined while they end in `\`. `None` at end of input.
fn read_input(rl: &mut rustyline::DefaultEditor) -> Result<Option<String>, ReadlineError> {
    let mut text = String::new();
    let mut prompt = "vigil> ";
    loop {
        let r = tokio::task::block_in_place(|| rl.readline(prompt));
        match r {
            Ok(line) => match line.strip_suffix('\\') {
                Some(head) => {
                    text.push_str(head);
                    text.push('\n');
                    prompt = "  ...> ";
                }
                None => {
                    text.push_str(&line);
                    return Ok(Some(text));
                }
            },
            Err(ReadlineError::Interrupted) => {
                text.clear();
                prompt = "vigil> ";
            }
            Err(ReadlineError::Eof) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

fn print_cost(agent: &Agent) {
    let u = agent.usage();
    let p = price_of(agent.answered_by());
    println!(
        "{} input, {} output, {} cache-write, {} cache-read tokens: ≈ ${:.4} ({}; list prices ${}/${} per MTok, approximate)",
        u.input_tokens,
        u.output_tokens,
        u.cache_creation_input_tokens,
        u.cache_read_input_tokens,
        agent.cost_usd(),
        agent.answered_by(),
        p.input,
        p.output
    );
}
