//! The Messages API's shapes, as vigil sends and reads them.
//!
//! Content blocks are typed where vigil acts on them (text, tool use, tool
//! result, thinking) and kept as the exact JSON the API sent otherwise
//! (`redacted_thinking`, server tool blocks, types that do not exist yet), so
//! an assistant turn is echoed back verbatim in the next request — thinking
//! blocks with their signatures included.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value, json};

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The administrator, and tool results.
    User,
    /// The model.
    Assistant,
}

/// One content block.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentBlock {
    /// Text; `extra` keeps fields such as `citations` verbatim.
    Text {
        /// The text.
        text: String,
        /// Other fields the API sent with it.
        extra: Map<String, Value>,
    },
    /// The model asks for a tool call.
    ToolUse {
        /// Its id, answered by exactly one `tool_result`.
        id: String,
        /// The tool.
        name: String,
        /// Its input (an object).
        input: Value,
    },
    /// The answer to a `tool_use`.
    ToolResult {
        /// The `tool_use` it answers.
        tool_use_id: String,
        /// The result as text (compact JSON, or the gate's message).
        content: String,
        /// True when the call failed or was refused.
        is_error: bool,
    },
    /// Extended thinking, echoed back with its signature.
    Thinking {
        /// The thinking text.
        thinking: String,
        /// The signature the API checks when it is echoed.
        signature: String,
    },
    /// Anything else, exactly as the API sent it.
    Other(Value),
}

impl ContentBlock {
    /// A plain text block.
    pub fn text(s: impl Into<String>) -> Self {
        ContentBlock::Text { text: s.into(), extra: Map::new() }
    }

    /// The block as API JSON.
    pub fn to_value(&self) -> Value {
        match self {
            ContentBlock::Text { text, extra } => {
                let mut m = extra.clone();
                m.insert("type".into(), "text".into());
                m.insert("text".into(), text.clone().into());
                Value::Object(m)
            }
            ContentBlock::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            ContentBlock::ToolResult { tool_use_id, content, is_error } => {
                let mut v = json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
                if *is_error {
                    v["is_error"] = true.into();
                }
                v
            }
            ContentBlock::Thinking { thinking, signature } => {
                json!({"type": "thinking", "thinking": thinking, "signature": signature})
            }
            ContentBlock::Other(v) => v.clone(),
        }
    }

    /// A block from API JSON; unknown or unusual shapes are kept verbatim.
    pub fn from_value(v: Value) -> Self {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        match ty.as_str() {
            "text" => match (&v, s("text")) {
                (Value::Object(m), Some(text)) => {
                    let mut extra = m.clone();
                    extra.remove("type");
                    extra.remove("text");
                    ContentBlock::Text { text, extra }
                }
                _ => ContentBlock::Other(v),
            },
            "tool_use" => match (s("id"), s("name"), v.get("input")) {
                (Some(id), Some(name), Some(input)) => ContentBlock::ToolUse { id, name, input: input.clone() },
                _ => ContentBlock::Other(v),
            },
            "thinking" => match (s("thinking"), s("signature")) {
                (Some(thinking), Some(signature)) => ContentBlock::Thinking { thinking, signature },
                _ => ContentBlock::Other(v),
            },
            _ => ContentBlock::Other(v),
        }
    }
}

impl Serialize for ContentBlock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ContentBlock::from_value(Value::deserialize(d)?))
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who.
    pub role: Role,
    /// What.
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A user message with one text block.
    pub fn user_text(s: impl Into<String>) -> Self {
        Message { role: Role::User, content: vec![ContentBlock::text(s)] }
    }

    /// The `tool_use` blocks: (id, name, input).
    pub fn tool_uses(&self) -> Vec<(&str, &str, &Value)> {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
                _ => None,
            })
            .collect()
    }

    /// All text blocks joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// `cache_control: {"type": "ephemeral"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl CacheControl {
    /// The ephemeral (default 5-minute) cache breakpoint.
    pub const EPHEMERAL: CacheControl = CacheControl { kind: "ephemeral" };
}

/// A system prompt block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemBlock {
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The prompt text.
    pub text: String,
    /// A cache breakpoint, on the last block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDef {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// Its input schema.
    pub input_schema: Value,
    /// A cache breakpoint, on the last tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

/// A `POST /v1/messages` body.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Model id.
    pub model: String,
    /// Most output tokens.
    pub max_tokens: u32,
    /// System prompt blocks (the last carries `cache_control`).
    pub system: Vec<SystemBlock>,
    /// Tools (the last carries `cache_control`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Always true: vigil streams.
    pub stream: bool,
}

/// Token counts. Fields absent from an event stay as they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens not read from or written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// Overwrite with the counts present in an event's `usage` object
    /// (`message_delta` counts are cumulative).
    pub fn update(&mut self, v: &Value) {
        let get = |k: &str| v.get(k).and_then(Value::as_u64);
        if let Some(n) = get("input_tokens") {
            self.input_tokens = n;
        }
        if let Some(n) = get("output_tokens") {
            self.output_tokens = n;
        }
        if let Some(n) = get("cache_creation_input_tokens") {
            self.cache_creation_input_tokens = n;
        }
        if let Some(n) = get("cache_read_input_tokens") {
            self.cache_read_input_tokens = n;
        }
    }

    /// Add another call's usage.
    pub fn add(&mut self, o: &Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_creation_input_tokens += o.cache_creation_input_tokens;
        self.cache_read_input_tokens += o.cache_read_input_tokens;
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A complete answer.
    EndTurn,
    /// It wants tools run.
    ToolUse,
    /// Cut off at `max_tokens`.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// A long turn paused; send the conversation back to continue.
    PauseTurn,
    /// The model declined to answer.
    Refusal,
    /// The context window is full.
    ModelContextWindowExceeded,
    /// A reason this version does not know.
    Other(String),
}

impl StopReason {
    /// From the API's string.
    pub fn parse(s: &str) -> Self {
        match s {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            "pause_turn" => StopReason::PauseTurn,
            "refusal" => StopReason::Refusal,
            "model_context_window_exceeded" => StopReason::ModelContextWindowExceeded,
            other => StopReason::Other(other.to_string()),
        }
    }

    /// The API's string.
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::PauseTurn => "pause_turn",
            StopReason::Refusal => "refusal",
            StopReason::ModelContextWindowExceeded => "model_context_window_exceeded",
            StopReason::Other(s) => s,
        }
    }
}

/// One complete model response, assembled from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Message id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The content blocks, in index order.
    pub content: Vec<ContentBlock>,
    /// Ids of `tool_use` blocks whose input JSON was cut off or unparsable: never run.
    pub incomplete_tool_ids: Vec<String>,
    /// Why it stopped (`None` if the stream never said).
    pub stop_reason: Option<StopReason>,
    /// Token usage of this call.
    pub usage: Usage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_verbatim() {
        let cases = [
            json!({"type": "text", "text": "hi", "citations": [{"x": 1}]}),
            json!({"type": "tool_use", "id": "toolu_1", "name": "list_open_ports", "input": {"port": 22}}),
            json!({"type": "thinking", "thinking": "hmm", "signature": "c2ln"}),
            json!({"type": "redacted_thinking", "data": "opaque"}),
            json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "{}", "is_error": true}),
        ];
        for c in cases {
            assert_eq!(ContentBlock::from_value(c.clone()).to_value(), c);
        }
    }

    #[test]
    fn usage_updates_only_present_fields() {
        let mut u = Usage::default();
        u.update(&json!({"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}));
        u.update(&json!({"output_tokens": 42}));
        assert_eq!(
            u,
            Usage { input_tokens: 10, output_tokens: 42, cache_creation_input_tokens: 0, cache_read_input_tokens: 5 }
        );
    }
}
