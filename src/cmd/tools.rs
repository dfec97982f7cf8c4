//! `vigil tools list | schema NAME | run NAME [JSON]`: the registry on the
//! command line, every run through the same policy gate as the model's calls.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use vigil_tools::Effect;

use crate::app::App;
use crate::audit::Origin;
use crate::cli::ToolsAction;
use crate::gate::Terminal;

/// The first sentence of a description.
pub fn first_sentence(s: &str) -> &str {
    crate::term::first_sentence(s)
}

/// One line of `tools list` and `/tools`: name, effect, the description's first
/// sentence, wrapped under its column on a terminal.
pub fn list_line(name: &str, effect: &str, description: &str) -> String {
    let head = format!("{name:<24} {effect}  ");
    let text = first_sentence(description);
    match crate::term::width() {
        Some(w) => {
            let lead = head.chars().count();
            head.clone() + &crate::term::wrap(text, lead, &" ".repeat(lead), w)
        }
        None => head + text,
    }
}

/// Run `vigil tools …`.
pub async fn run(app: &App, action: ToolsAction) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match action {
        ToolsAction::List { json } => {
            let list = app.registry.list();
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|t| {
                        serde_json::json!({"name": t.name, "effect": t.effect, "description": t.description, "input_schema": t.input_schema})
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                for t in list {
                    let effect = match t.effect {
                        Effect::ReadOnly => "read-only",
                        Effect::Mutating => "mutating ",
                    };
                    writeln!(out, "{}", list_line(t.name, effect, t.description))?;
                }
            }
            Ok(0)
        }
        ToolsAction::Schema { name } => {
            let info =
                app.registry.get(&name).with_context(|| format!("no tool named `{name}` (see `vigil tools list`)"))?;
            writeln!(out, "{}", serde_json::to_string_pretty(&info.input_schema)?)?;
            Ok(0)
        }
        ToolsAction::Run { name, json } => {
            let input: serde_json::Value = match json.as_deref() {
                None => serde_json::json!({}),
                Some(s) => serde_json::from_str(s).with_context(|| format!("the input is not valid JSON: {s}"))?,
            };
            let gate = app.gate(Origin::ToolsRun, Arc::new(Terminal))?;
            let r = gate.call(&name, input).await;
            match r.result {
                Ok(res) => {
                    let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut out);
                    serde_json::to_writer_pretty(&mut w, &res)?;
                    writeln!(w)?;
                    w.flush()?;
                    // The process ends right after: freeing a large result piece by piece is wasted time.
                    std::mem::forget(res);
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("vigil: {}", crate::gate::failure_line(&name, &r.decision, &e));
                    Ok(e.exit_code())
                }
            }
        }
    }
}
