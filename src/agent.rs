//! The agent loop: one user turn, as many model turns as it takes (bounded).
//!
//! Text streams to a [`Sink`] as it arrives, so `chat`, `ask` and the tests
//! each render it their own way. The tool calls the model asks for run through
//! the policy [`Gate`] (with `-i INVENTORY`, the fleet's tools in
//! `crate::fleet::agent`, which run them on the servers): read-only ones
//! concurrently, then mutating (and unknown) ones one at a time, each asking
//! the human. Every `tool_use` is answered by exactly one `tool_result` with its id — `is_error` with the
//! gate's message when it failed or was refused — and the assistant's content
//! goes back verbatim (thinking blocks and their signatures included).
//!
//! Stop reasons: `tool_use` and `pause_turn` continue the loop; `end_turn` and
//! `stop_sequence` answer; `max_tokens` never runs a tool call (its input may
//! be cut off) and says the answer was cut short; `refusal` and
//! `model_context_window_exceeded` say so. A cancelled turn (Ctrl-C) leaves
//! the conversation valid: [`Agent::repair`] drops an assistant turn whose
//! tool calls never got results. The conversation is saved, redacted, to the
//! transcript after every message, so an outage loses nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};
use vigil_tools::{Effect, Redactor};

use crate::app::App;
use crate::audit::now_rfc3339;
use crate::claude::pricing::cost_usd;
use crate::claude::types::{CacheControl, SystemBlock, ToolDef};
use crate::claude::{Client, ContentBlock, Message, Note, Request, Role, StopReason, Usage};
use crate::gate::{Decision, Gate};
use crate::model_view::ModelView;

/// Where a turn's progress goes.
pub trait Sink: Send {
    /// A request to the model has left; nothing has come back yet.
    fn waiting(&mut self) {}
    /// Model text as it arrives (untrusted: strip controls before display).
    fn text(&mut self, s: &str);
    /// Thinking text as it arrives.
    fn thinking(&mut self, _s: &str) {}
    /// A request failed and is retried after `delay`.
    fn retrying(&mut self, _attempt: u32, _delay: Duration, _why: &str) {}
    /// Read-only tools start running concurrently (a spinner may start).
    fn batch_start(&mut self, _calls: &[ToolCall]) {}
    /// The concurrent batch ended.
    fn batch_end(&mut self) {}
    /// One tool call starts.
    fn tool_start(&mut self, _call: &ToolCall) {}
    /// One tool call finished (ran, or was refused or declined).
    fn tool_done(&mut self, _rec: &ToolRecord) {}
    /// Something the user should know (a cut-off, a refusal, a redaction).
    fn notice(&mut self, _msg: &str) {}
}

/// A tool call the model asked for.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCall {
    /// The `tool_use` id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its input, redacted for display.
    pub input: Value,
}

/// What happened to one tool call.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRecord {
    /// The `tool_use` id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its input (redacted).
    pub input: Value,
    /// Read-only or mutating (unknown tools count as mutating).
    pub effect: Effect,
    /// How the gate decided.
    pub decision: Decision,
    /// Wall time.
    pub millis: u64,
    /// True when it ran and succeeded.
    pub ok: bool,
    /// Findings returned.
    pub findings: usize,
    /// The error or refusal message, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ToolRecord {
    /// True when a mutating call was refused or declined.
    pub fn blocked_change(&self) -> bool {
        self.effect == Effect::Mutating && matches!(self.decision, Decision::Refused | Decision::Declined)
    }
}

/// How a user turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The model answered (`end_turn`, `stop_sequence`).
    Answered(StopReason),
    /// Cut off at `max_tokens`.
    MaxTokens,
    /// The model refused.
    Refusal,
    /// The context window is full.
    ContextWindow,
    /// `agent.max_turns` model turns without an answer.
    MaxTurns(u32),
    /// A stop reason this version does not know.
    Unknown(String),
}

impl Stop {
    /// The name used in JSON output.
    pub fn as_str(&self) -> &str {
        match self {
            Stop::Answered(r) => r.as_str(),
            Stop::MaxTokens => "max_tokens",
            Stop::Refusal => "refusal",
            Stop::ContextWindow => "model_context_window_exceeded",
            Stop::MaxTurns(_) => "max_turns",
            Stop::Unknown(s) => s,
        }
    }

    /// True when the model gave a complete answer.
    pub fn answered(&self) -> bool {
        matches!(self, Stop::Answered(_))
    }

    /// What to tell the user when it did not.
    pub fn explain(&self) -> Option<String> {
        match self {
            Stop::Answered(_) => None,
            Stop::MaxTokens => Some(
                "The answer was cut short: it reached the output limit (agent.max_tokens). Ask for less at once, or raise the limit."
                    .into(),
            ),
            Stop::Refusal => Some("The model declined to answer this request.".into()),
            Stop::ContextWindow => {
                Some("The conversation no longer fits in the model's context window: start afresh (/clear in chat).".into())
            }
            Stop::MaxTurns(n) => Some(format!(
                "Stopped after {n} model turns without a final answer (agent.max_turns); ask again to continue."
            )),
            Stop::Unknown(s) => Some(format!("The model stopped for a reason this version does not know: {s}.")),
        }
    }
}

/// The result of one user turn.
#[derive(Debug, Clone)]
pub struct TurnOutcome {
    /// All the text the model said in this turn.
    pub answer: String,
    /// How it ended.
    pub stop: Stop,
    /// Every tool call, in order.
    pub tool_calls: Vec<ToolRecord>,
    /// Tokens of this turn.
    pub usage: Usage,
    /// Approximate cost of this turn in USD.
    pub cost_usd: f64,
    /// Model calls made.
    pub model_turns: u32,
}

/// The model for this invocation: `--model`/`VIGIL_MODEL`, the config, else the default.
pub fn model_for(app: &App) -> String {
    app.global
        .model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .or_else(|| app.config.agent.model.clone())
        .unwrap_or_else(|| crate::claude::DEFAULT_MODEL.to_string())
}

/// What to say when there is no key.
pub const NO_KEY: &str =
    "no API key: run `vigil auth login` or set ANTHROPIC_API_KEY; `vigil review --offline` needs no key";

/// A client with the key from the environment, the scheduled key file or the keyring; `None` without one.
pub fn client_for(app: &App) -> Result<Option<Client>> {
    let store = crate::auth::OsKeyring::new();
    let key_file = if app.config_trusted { app.config.schedule.api_key_file.as_deref() } else { None };
    let found = match crate::auth::find_api_key(&store, key_file) {
        Ok(f) => f,
        Err(e) => {
            tracing::info!("keyring: {e:#}");
            None
        }
    };
    match found {
        Some((key, source)) => Ok(Some(Client::new(key, None)?.with_key_source(source))),
        None => Ok(None),
    }
}

/// A result as the model reads it (redacted, stripped) with its number of findings, or the error.
pub type Viewed = Result<(Value, usize), String>;

/// One call's outcome, as the agent records it.
#[derive(Debug)]
pub struct Called {
    /// How it was decided.
    pub decision: Decision,
    /// The model's view and its number of findings, or the error.
    pub result: Viewed,
    /// Wall time in milliseconds.
    pub millis: u128,
}

/// Where the agent's tool calls go: this host's [`Gate`], or the servers of a fleet
/// (`crate::fleet::agent`).
#[async_trait::async_trait]
pub trait Dispatch: Send + Sync {
    /// The effect assumed: unknown tools are mutating.
    fn effect(&self, name: &str) -> Effect;
    /// Decide and, if allowed, run one call.
    async fn call(&self, name: &str, input: Value) -> Called;
}

#[async_trait::async_trait]
impl Dispatch for Gate {
    fn effect(&self, name: &str) -> Effect {
        Gate::effect(self, name)
    }

    async fn call(&self, name: &str, input: Value) -> Called {
        let g = Gate::call(self, name, input).await;
        let result = g.result.map(|r| (r.to_model_value(), r.findings.len())).map_err(|e| e.to_string());
        Called { decision: g.decision, result, millis: g.millis }
    }
}

/// A conversation with the model.
pub struct Agent {
    client: Client,
    gate: Box<dyn Dispatch>,
    model: String,
    max_tokens: u32,
    max_turns: u32,
    system: Vec<SystemBlock>,
    tools: Vec<ToolDef>,
    messages: Vec<Message>,
    usage: Usage,
    /// The model the API said answered (it can differ from the alias asked for).
    answered_by: Option<String>,
    /// The conversation as it was before the running turn, to go back to if it is cancelled.
    before_turn: Option<Vec<Message>>,
    transcript: Option<Transcript>,
    transcripts_dir: Option<(PathBuf, usize)>,
}

impl Agent {
    /// A new conversation on `app`'s host, through `gate`.
    pub fn new(app: &App, client: Client, gate: Gate) -> Agent {
        let list = gate.registry().list();
        let n = list.len();
        let tools = list
            .into_iter()
            .enumerate()
            .map(|(i, t)| ToolDef {
                name: t.name.to_string(),
                description: t.description.to_string(),
                input_schema: t.input_schema.clone(),
                cache_control: (i + 1 == n).then_some(CacheControl::EPHEMERAL),
            })
            .collect();
        let note = context_note(app);
        Agent::with_tools(app, client, Box::new(gate), tools, note)
    }

    /// A new conversation whose calls go to `gate`, offering the model `tools`, with `note` as
    /// the system prompt's context (a fleet: `crate::fleet::agent::agent`).
    pub fn with_tools(app: &App, client: Client, gate: Box<dyn Dispatch>, tools: Vec<ToolDef>, note: String) -> Agent {
        let system = vec![
            SystemBlock { kind: "text", text: crate::prompts::SYSTEM.to_string(), cache_control: None },
            SystemBlock { kind: "text", text: note, cache_control: Some(CacheControl::EPHEMERAL) },
        ];
        let transcripts_dir = app.state.sub("transcripts").ok().map(|d| (d, app.config.agent.keep_transcripts));
        Agent {
            client,
            gate,
            model: model_for(app),
            max_tokens: app.config.agent.max_tokens.max(1),
            max_turns: app.config.agent.max_turns.max(1),
            system,
            tools,
            messages: Vec::new(),
            usage: Usage::default(),
            answered_by: None,
            before_turn: None,
            transcript: None,
            transcripts_dir,
        }
    }

    /// The model in use.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The model the API reported in its last answer, else the one asked for.
    pub fn answered_by(&self) -> &str {
        self.answered_by.as_deref().unwrap_or(&self.model)
    }

    /// The conversation so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Tokens used in this conversation.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Approximate cost of this conversation in USD.
    pub fn cost_usd(&self) -> f64 {
        cost_usd(self.answered_by(), &self.usage)
    }

    /// The transcript file, once something was saved.
    pub fn transcript_path(&self) -> Option<&Path> {
        self.transcript.as_ref().map(|t| t.path.as_path())
    }

    /// Start a new conversation (a new transcript; the token tally is kept).
    pub fn clear(&mut self) {
        self.messages.clear();
        self.transcript = None;
    }

    /// After a cancelled turn: drop an assistant turn whose tool calls have no results.
    pub fn repair(&mut self) {
        drop_dangling(&mut self.messages);
        self.save();
    }

    /// After Ctrl-C: the cancelled turn is gone from the conversation — the question is not
    /// sent again with the next one, and no half answer is kept.
    pub fn cancel_turn(&mut self) {
        match self.before_turn.take() {
            Some(before) => {
                self.messages = before;
                self.save();
            }
            None => self.repair(),
        }
    }

    fn push(&mut self, m: Message) {
        self.messages.push(m);
        self.save();
    }

    fn push_user_text(&mut self, text: String) {
        match self.messages.last_mut() {
            // After a cancelled or cut-off turn the last message may already be the user's.
            Some(last) if last.role == Role::User => last.content.push(ContentBlock::text(text)),
            _ => self.messages.push(Message::user_text(text)),
        }
        self.save();
    }

    fn save(&mut self) {
        if self.transcript.is_none() {
            if let Some((dir, keep)) = &self.transcripts_dir {
                self.transcript = Some(Transcript::create(dir, *keep, &self.model));
            }
        }
        if let Some(t) = &mut self.transcript {
            t.save(&self.messages, &self.usage);
        }
    }

    fn request(&self) -> Request {
        Request {
            model: self.model.clone(),
            max_tokens: self.max_tokens,
            system: self.system.clone(),
            tools: self.tools.clone(),
            messages: self.messages.clone(),
            stream: true,
        }
    }

    /// One user turn.
    pub async fn run_turn(&mut self, user: &str, sink: &mut dyn Sink) -> Result<TurnOutcome> {
        let clean = Redactor::global().text(user).into_owned();
        if clean != user {
            sink.notice("a secret-looking value was removed from your message before sending it");
        }
        self.before_turn = Some(self.messages.clone());
        self.push_user_text(clean);
        let mut turn_usage = Usage::default();
        let mut answer = String::new();
        let mut records = Vec::new();
        let mut model_turns = 0;
        let finish = |stop, answer, records, usage: Usage, model_turns, model: &str| TurnOutcome {
            answer,
            stop,
            tool_calls: records,
            cost_usd: cost_usd(model, &usage),
            usage,
            model_turns,
        };
        while model_turns < self.max_turns {
            model_turns += 1;
            let req = self.request();
            sink.waiting();
            let mut on = |n: Note<'_>| match n {
                Note::Text(t) => sink.text(t),
                Note::Thinking(t) => sink.thinking(t),
                Note::Retrying { attempt, delay, why } => sink.retrying(attempt, delay, &why),
            };
            let resp = self.client.send(&req, &mut on).await?;
            if !resp.model.is_empty() {
                self.answered_by = Some(resp.model.clone());
            }
            turn_usage.add(&resp.usage);
            self.usage.add(&resp.usage);
            let text: String = resp
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if !text.is_empty() {
                if !answer.is_empty() {
                    answer.push_str("\n\n");
                }
                answer.push_str(&text);
            }
            let stop = resp.stop_reason.clone().unwrap_or(StopReason::EndTurn);
            let mut content: Vec<ContentBlock> = resp
                .content
                .into_iter()
                .filter(|b| !matches!(b, ContentBlock::Text { text, .. } if text.is_empty()))
                .collect();
            let has_tools = content.iter().any(|b| matches!(b, ContentBlock::ToolUse { .. }));
            if has_tools && matches!(stop, StopReason::ToolUse | StopReason::PauseTurn) {
                let calls = content.clone();
                self.push(Message { role: Role::Assistant, content });
                let (results, recs) = self.run_tools(&calls, &resp.incomplete_tool_ids, sink).await;
                records.extend(recs);
                self.push(Message { role: Role::User, content: results });
                continue;
            }
            if stop == StopReason::PauseTurn {
                if !content.is_empty() {
                    self.push(Message { role: Role::Assistant, content });
                }
                continue;
            }
            // Any other stop: tool calls in this message are never run, so they are not kept either.
            if has_tools {
                let names: Vec<String> = content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::ToolUse { name, .. } => Some(format!("`{name}`")),
                        _ => None,
                    })
                    .collect();
                sink.notice(&format!(
                    "not run: {} (the response stopped with {} before the call was complete)",
                    names.join(", "),
                    stop.as_str()
                ));
                content.retain(|b| !matches!(b, ContentBlock::ToolUse { .. }));
            }
            if content.iter().any(|b| !matches!(b, ContentBlock::Thinking { .. })) {
                self.push(Message { role: Role::Assistant, content });
            }
            let stop = match stop {
                StopReason::EndTurn | StopReason::StopSequence => Stop::Answered(stop),
                StopReason::MaxTokens => Stop::MaxTokens,
                StopReason::Refusal => Stop::Refusal,
                StopReason::ModelContextWindowExceeded => Stop::ContextWindow,
                StopReason::ToolUse | StopReason::PauseTurn => Stop::Answered(StopReason::EndTurn),
                StopReason::Other(s) => Stop::Unknown(s),
            };
            return Ok(finish(stop, answer, records, turn_usage, model_turns, &self.model));
        }
        Ok(finish(Stop::MaxTurns(self.max_turns), answer, records, turn_usage, model_turns, &self.model))
    }

    /// Run the calls in `content` through the gate: read-only ones together, then the rest in order.
    async fn run_tools(
        &self,
        content: &[ContentBlock],
        incomplete: &[String],
        sink: &mut dyn Sink,
    ) -> (Vec<ContentBlock>, Vec<ToolRecord>) {
        let calls: Vec<(ToolCall, Value)> = content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolUse { id, name, input } => Some((
                    ToolCall { id: id.clone(), name: name.clone(), input: Redactor::global().value(input.clone()) },
                    input.clone(),
                )),
                _ => None,
            })
            .collect();
        let mut done: Vec<Option<(ContentBlock, ToolRecord)>> = vec![None; calls.len()];
        let mut read_only = Vec::new();
        let mut mutating = Vec::new();
        for (i, (call, _)) in calls.iter().enumerate() {
            if incomplete.contains(&call.id) {
                let msg =
                    format!("Not run: the input of this `{}` call was cut off or is not a JSON object.", call.name);
                let rec = record(call, self.gate.effect(&call.name), Decision::Refused, 0, Err(msg.clone()), 0);
                sink.tool_done(&rec);
                done[i] = Some((result_block(&call.id, Err(msg)), rec));
            } else if self.gate.effect(&call.name) == Effect::ReadOnly {
                read_only.push(i);
            } else {
                mutating.push(i);
            }
        }
        if !read_only.is_empty() {
            let batch: Vec<ToolCall> = read_only.iter().map(|&i| calls[i].0.clone()).collect();
            for c in &batch {
                sink.tool_start(c);
            }
            sink.batch_start(&batch);
            let outs = futures::future::join_all(
                read_only.iter().map(|&i| self.gate.call(&calls[i].0.name, calls[i].1.clone())),
            )
            .await;
            sink.batch_end();
            for (&i, g) in read_only.iter().zip(outs) {
                done[i] = Some(self.settle(&calls[i].0, g, sink));
            }
        }
        for i in mutating {
            sink.tool_start(&calls[i].0);
            let g = self.gate.call(&calls[i].0.name, calls[i].1.clone()).await;
            done[i] = Some(self.settle(&calls[i].0, g, sink));
        }
        done.into_iter().flatten().unzip()
    }

    fn settle(&self, call: &ToolCall, g: Called, sink: &mut dyn Sink) -> (ContentBlock, ToolRecord) {
        let findings = g.result.as_ref().map(|r| r.1).unwrap_or(0);
        let text = g.result.map(|(v, _)| cap_result(v, MAX_TOOL_RESULT)).map_err(|e| cap_text(e, MAX_TOOL_RESULT));
        let rec = record(call, self.gate.effect(&call.name), g.decision, g.millis as u64, text.clone(), findings);
        sink.tool_done(&rec);
        (result_block(&call.id, text), rec)
    }
}

/// The most JSON one tool result may put in the conversation (bytes).
pub const MAX_TOOL_RESULT: usize = 24 * 1024;

/// A tool result as the model gets it: `{facts, findings}` serialized, at most about `limit` bytes.
/// Findings are kept whole (they are the point); when it is too big, the largest lists in the facts
/// are halved, largest first, until it fits, and a `truncated` note says which lists were cut and how
/// many items each had, so the model knows it sees part of them. Facts that still do not fit are
/// replaced by that note.
pub fn cap_result(mut v: Value, limit: usize) -> String {
    let text = |v: &Value| serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let full = text(&v);
    if full.len() <= limit {
        return full;
    }
    let mut cut: Vec<(String, usize, usize)> = Vec::new(); // (pointer, original length, kept)
    let note = |cut: &[(String, usize, usize)], dropped: bool| {
        let lists: Vec<String> =
            cut.iter().map(|(p, n, k)| format!("facts{p}: first {k} of {n} items")).collect::<Vec<_>>();
        let mut s =
            format!("This result was over {} KB, so it was shortened; the findings are complete. ", limit / 1024);
        if !lists.is_empty() {
            s.push_str(&format!("Lists cut: {}. ", lists.join("; ")));
        }
        if dropped {
            s.push_str("The facts were still too large and are omitted. ");
        }
        s.push_str("Do not treat missing items as absent; call the tool with narrower input if you need them.");
        s
    };
    for _ in 0..200 {
        let Some(facts) = v.get("facts") else { break };
        let Some((ptr, len)) = largest_list(facts, String::new()) else { break };
        let Some(Value::Array(list)) = v.get_mut("facts").and_then(|f| f.pointer_mut(&ptr)) else { break };
        let keep = (len / 2).max(1);
        list.truncate(keep);
        match cut.iter_mut().find(|c| c.0 == ptr) {
            Some(c) => c.2 = keep,
            None => cut.push((ptr, len, keep)),
        }
        v["truncated"] = Value::from(note(&cut, false));
        if text(&v).len() <= limit {
            return text(&v);
        }
    }
    v["facts"] = Value::Null;
    v["truncated"] = Value::from(note(&cut, true));
    text(&v)
}

/// The JSON pointer and length of the list with the most serialized bytes (two items or more).
fn largest_list(v: &Value, at: String) -> Option<(String, usize)> {
    let mut best: Option<(String, usize, usize)> = None; // pointer, len, bytes
    let mut consider = |cand: Option<(String, usize, usize)>| {
        if let Some(c) = cand {
            if best.as_ref().is_none_or(|b| c.2 > b.2) {
                best = Some(c);
            }
        }
    };
    fn walk(v: &Value, at: String, out: &mut dyn FnMut(Option<(String, usize, usize)>)) {
        match v {
            Value::Array(a) => {
                if a.len() > 1 {
                    out(Some((at.clone(), a.len(), serde_json::to_string(v).map(|s| s.len()).unwrap_or(0))));
                }
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{at}/{i}"), out);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    walk(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                }
            }
            _ => {}
        }
    }
    walk(v, at, &mut consider);
    best.map(|(p, n, _)| (p, n))
}

/// An error message cut to about `limit` bytes (on a character boundary), saying so.
fn cap_text(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut end = limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" … (cut: the message was longer)");
    }
    s
}

/// Drop trailing assistant turns whose tool calls never got results (or that are empty).
fn drop_dangling(messages: &mut Vec<Message>) {
    while let Some(last) = messages.last() {
        let dangling = last.role == Role::Assistant && (!last.tool_uses().is_empty() || last.content.is_empty());
        if !dangling {
            break;
        }
        messages.pop();
    }
}

fn record(
    call: &ToolCall,
    effect: Effect,
    decision: Decision,
    millis: u64,
    r: Result<String, String>,
    findings: usize,
) -> ToolRecord {
    ToolRecord {
        id: call.id.clone(),
        name: call.name.clone(),
        input: call.input.clone(),
        effect,
        decision,
        millis,
        ok: r.is_ok(),
        findings,
        error: r.err(),
    }
}

fn result_block(id: &str, r: Result<String, String>) -> ContentBlock {
    match r {
        Ok(content) => ContentBlock::ToolResult { tool_use_id: id.to_string(), content, is_error: false },
        Err(content) => ContentBlock::ToolResult { tool_use_id: id.to_string(), content, is_error: true },
    }
}

/// The second system block: which host, which day.
fn context_note(app: &App) -> String {
    let host = crate::state::host_name(&app.host);
    let today = vigil_tools::format::unix_date(app.host.now_unix());
    let root = if app.host.is_live() {
        "the live system (/)".to_string()
    } else {
        format!(
            "the directory {} (a mounted image or fixture: commands are not run there, facts come from its files)",
            app.host.root().display()
        )
    };
    format!("Context: the audited host is `{host}`, read from {root}. Today is {today}.")
}

/// A conversation's transcript on disk: redacted JSON, 0600, rewritten after every message.
struct Transcript {
    path: PathBuf,
    started: String,
    model: String,
    warned: bool,
}

impl Transcript {
    fn create(dir: &Path, keep: usize, model: &str) -> Transcript {
        let started = now_rfc3339();
        let stamp: String = started.chars().filter(|c| c.is_ascii_digit()).collect();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{stamp}-{}-{n}.json", std::process::id()));
        prune(dir, keep.saturating_sub(1));
        Transcript { path, started, model: model.to_string(), warned: false }
    }

    fn save(&mut self, messages: &[Message], usage: &Usage) {
        let v = json!({
            "version": 1,
            "started": self.started,
            "updated": now_rfc3339(),
            "model": self.model,
            "usage": usage,
            "cost_usd_approx": cost_usd(&self.model, usage),
            "messages": messages,
        });
        let v = Redactor::global().value(v);
        let bytes = serde_json::to_vec_pretty(&v).unwrap_or_default();
        if let Err(e) = crate::state::write_atomic(&self.path, &bytes) {
            if !self.warned {
                self.warned = true;
                eprintln!("vigil: warning: cannot save the transcript: {e:#}");
            }
        }
    }
}

/// Keep the `keep` newest transcripts in `dir`.
fn prune(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<PathBuf> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for f in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest() {
        let t = tempfile::tempdir().unwrap();
        for n in ["20260101000000-1.json", "20260102000000-1.json", "20260103000000-1.json"] {
            std::fs::write(t.path().join(n), "{}").unwrap();
        }
        prune(t.path(), 2);
        let mut left: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, vec!["20260102000000-1.json", "20260103000000-1.json"]);
    }

    #[test]
    fn a_cancelled_tool_turn_is_dropped() {
        let tool = ContentBlock::ToolUse { id: "toolu_1".into(), name: "x".into(), input: json!({}) };
        let answered = vec![
            Message::user_text("q"),
            Message { role: Role::Assistant, content: vec![tool.clone()] },
            Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult {
                    tool_use_id: "toolu_1".into(),
                    content: "{}".into(),
                    is_error: false,
                }],
            },
        ];
        let mut m = answered.clone();
        drop_dangling(&mut m);
        assert_eq!(m, answered, "a complete exchange is kept");
        m.push(Message { role: Role::Assistant, content: vec![ContentBlock::text("checking"), tool] });
        drop_dangling(&mut m);
        assert_eq!(m, answered, "tool calls without results are dropped");
        m.push(Message { role: Role::Assistant, content: vec![ContentBlock::text("done")] });
        drop_dangling(&mut m);
        assert_eq!(m.len(), 4, "a plain answer is kept");
    }

    #[test]
    fn only_answers_count_as_answered() {
        assert!(Stop::Answered(StopReason::StopSequence).answered());
        for s in [Stop::MaxTokens, Stop::Refusal, Stop::ContextWindow, Stop::MaxTurns(3)] {
            assert!(!s.answered());
            assert!(s.explain().is_some());
        }
    }

    #[test]
    fn big_tool_results_are_capped_with_findings_whole_and_a_note() {
        let small = json!({"facts": {"ports": [1, 2, 3]}, "findings": []});
        assert_eq!(cap_result(small.clone(), MAX_TOOL_RESULT), small.to_string(), "small results pass unchanged");

        let ports: Vec<Value> = (0..3000)
            .map(
                |i| json!({"port": i, "proto": "tcp", "process": "java", "cmdline": "/usr/bin/java -Xms1g -jar x.jar"}),
            )
            .collect();
        let finding = json!({"id": "ports.exposed-datastore", "severity": "critical", "subject": "tcp:9200",
            "evidence": ["x".repeat(2000)]});
        let big =
            json!({"facts": {"host": "web1", "ports": ports, "tiny": [1, 2]}, "findings": [finding.clone(), finding]});
        let out = cap_result(big.clone(), MAX_TOOL_RESULT);
        assert!(out.len() <= MAX_TOOL_RESULT, "{} bytes", out.len());
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["findings"], big["findings"], "findings are whole");
        assert_eq!(v["facts"]["host"], "web1");
        assert_eq!(v["facts"]["tiny"], json!([1, 2]), "small lists are left alone");
        let kept = v["facts"]["ports"].as_array().unwrap().len();
        assert!(kept > 10 && kept < 3000, "{kept}");
        assert_eq!(v["facts"]["ports"][0], big["facts"]["ports"][0], "the first items are kept");
        let note = v["truncated"].as_str().unwrap();
        assert!(note.contains(&format!("facts/ports: first {kept} of 3000 items")), "{note}");
        assert!(note.contains("findings are complete"), "{note}");

        // Facts that cannot be shortened by lists (one huge string) are dropped, findings kept.
        let blob = json!({"facts": {"text": "y".repeat(40_000)}, "findings": []});
        let v: Value = serde_json::from_str(&cap_result(blob, MAX_TOOL_RESULT)).unwrap();
        assert_eq!(v["facts"], Value::Null);
        assert!(v["truncated"].as_str().unwrap().contains("omitted"));
        assert!(cap_text("é".repeat(20_000), MAX_TOOL_RESULT).len() < MAX_TOOL_RESULT + 64);
    }
}
