//! `vigil ask PROMPT…`: one question, answered with the tools.
//!
//! The answer streams on stdout, tool activity goes to stderr; `--json` prints
//! one object at the end instead (answer, tool calls with their decisions,
//! stop reason, usage, approximate cost). The prompt comes from the arguments,
//! `--prompt-file F` (`-` for stdin), a saved prompt `--prompt NAME`, or a
//! pipe when nothing else is given.
//! With `-i INVENTORY [--limit P]` the question is about those servers: every
//! tool takes a `host` and runs there over ssh (`crate::fleet::agent`).
//! Mutating tools ask at the controlling terminal; piped input can never
//! confirm, and with no terminal they are refused. Exit 0 answered, 1 refused
//! or cut short, 2 error.

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::console::Console;
use crate::agent::{Agent, NO_KEY, client_for};
use crate::app::App;
use crate::audit::Origin;
use crate::cli::AskArgs;
use crate::gate::Terminal;
use crate::term::strip_controls;

/// The prompt from `--prompt NAME`, `--prompt-file F` and the arguments, in that order.
#[expect(clippy::disallowed_methods, reason = "a prompt file the administrator names on the command line")]
pub fn prompt_of(app: &App, args: &AskArgs) -> Result<String> {
    let mut parts = Vec::new();
    if let Some(name) = &args.prompt_name {
        parts.push(crate::prompts::saved(name, app.config_dir())?);
    }
    if let Some(f) = &args.prompt_file {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("cannot read the prompt from stdin")?;
            s
        } else {
            std::fs::read_to_string(f).with_context(|| format!("cannot read the prompt file {}", f.display()))?
        };
        parts.push(text);
    }
    if !args.prompt.is_empty() {
        parts.push(args.prompt.join(" "));
    }
    if parts.is_empty() && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        // `echo "question" | vigil ask`
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read the prompt from stdin")?;
        parts.push(s);
    }
    let prompt = parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n\n");
    if prompt.is_empty() {
        bail!("nothing to ask: give a question, --prompt-file FILE or --prompt NAME (e.g. monthly-review)");
    }
    Ok(prompt)
}

/// Run `vigil ask`.
pub async fn run(app: &App, args: AskArgs) -> Result<u8> {
    let prompt = prompt_of(app, &args)?;
    let Some(client) = client_for(app)? else {
        eprintln!("vigil: {NO_KEY}");
        return Ok(2);
    };
    let mut agent = match &args.fleet.inventory {
        Some(_) => {
            let exchange = crate::fleet::agent::ssh_exchange(app, &args.fleet)?;
            let (tools, inv) = crate::fleet::agent::open(app, &args.fleet, exchange, Arc::new(Terminal), Origin::Ask)?;
            crate::fleet::agent::agent(app, client, tools, &inv)
        }
        None => Agent::new(app, client, app.gate(Origin::Ask, Arc::new(Terminal))?),
    };
    let mut console = Console::new(!args.json, false);
    let outcome = agent.run_turn(&prompt, &mut console).await;
    console.end_line();
    let t = match outcome {
        Ok(t) => t,
        Err(e) => {
            let msg = strip_controls(&format!("{e:#}"));
            if args.json {
                println!("{}", json!({"error": msg, "model": agent.model()}));
            }
            eprintln!("vigil: error: {msg}");
            return Ok(2);
        }
    };
    if let Some(why) = t.stop.explain() {
        eprintln!("vigil: {why}");
    }
    let blocked = t.tool_calls.iter().any(|r| r.blocked_change());
    if blocked {
        eprintln!("vigil: a change was refused or declined: nothing was changed.");
    }
    if args.json {
        let v = json!({
            "answer": strip_controls(&t.answer),
            "stop_reason": t.stop.as_str(),
            "model": agent.model(),
            "tool_calls": t.tool_calls,
            "usage": t.usage,
            "cost_usd": (t.cost_usd * 1e6).round() / 1e6,
            "cost_note": "approximate, from list prices",
            "model_turns": t.model_turns,
            "transcript": agent.transcript_path().map(|p| p.display().to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(if t.stop.answered() && !blocked { 0 } else { 1 })
}
