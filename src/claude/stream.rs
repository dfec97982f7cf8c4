//! Assemble one response from its decoded events.
//!
//! Blocks are keyed by `index`. Text, thinking and signatures accumulate from
//! their deltas; a `tool_use` block's `input_json_delta` fragments are joined
//! and parsed once, at its `content_block_stop`. A tool call whose input never
//! stopped, or does not parse (the usual sign of `max_tokens` cutting it off),
//! is listed in [`Response::incomplete_tool_ids`] and must never run. Unknown
//! block types are kept verbatim, so they can be echoed back.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::sse::{ApiEvent, Delta};
use super::types::{ContentBlock, Response, StopReason, Usage};

#[derive(Debug)]
enum Partial {
    Text { text: String, extra: Map<String, Value> },
    ToolUse { start: Value, json: String, input: Option<Value> },
    Thinking { thinking: String, signature: String },
    Other { start: Value, json: String },
}

/// What a fed event means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to show.
    Nothing,
    /// Text to show now.
    Text(String),
    /// Thinking text (shown only when asked for).
    Thinking(String),
    /// `message_stop`: the response is complete.
    Done,
    /// An `error` event on the stream.
    Error {
        /// Error type.
        kind: String,
        /// Its message.
        message: String,
    },
}

/// Accumulates one streamed response.
#[derive(Debug, Default)]
pub struct Assembler {
    id: String,
    model: String,
    blocks: BTreeMap<usize, Partial>,
    stop_reason: Option<StopReason>,
    usage: Usage,
    done: bool,
}

impl Assembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Assembler::default()
    }

    /// True once `message_stop` arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feed one event.
    pub fn feed(&mut self, ev: ApiEvent) -> Step {
        match ev {
            ApiEvent::MessageStart(m) => {
                self.id = m.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                self.model = m.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
                if let Some(u) = m.get("usage") {
                    self.usage.update(u);
                }
                Step::Nothing
            }
            ApiEvent::BlockStart { index, block } => {
                let ty = block.get("type").and_then(Value::as_str).unwrap_or_default();
                let partial = match ty {
                    "text" => {
                        let mut extra = block.as_object().cloned().unwrap_or_default();
                        let text =
                            extra.remove("text").and_then(|t| t.as_str().map(str::to_string)).unwrap_or_default();
                        extra.remove("type");
                        Partial::Text { text, extra }
                    }
                    "tool_use" => Partial::ToolUse { start: block, json: String::new(), input: None },
                    "thinking" => Partial::Thinking {
                        thinking: block.get("thinking").and_then(Value::as_str).unwrap_or_default().to_string(),
                        signature: block.get("signature").and_then(Value::as_str).unwrap_or_default().to_string(),
                    },
                    _ => Partial::Other { start: block, json: String::new() },
                };
                let first = match &partial {
                    Partial::Text { text, .. } if !text.is_empty() => Step::Text(text.clone()),
                    _ => Step::Nothing,
                };
                self.blocks.insert(index, partial);
                first
            }
            ApiEvent::BlockDelta { index, delta } => {
                let Some(b) = self.blocks.get_mut(&index) else {
                    tracing::debug!("delta for unknown block {index}: skipped");
                    return Step::Nothing;
                };
                match (b, delta) {
                    (Partial::Text { text, .. }, Delta::Text(t)) => {
                        text.push_str(&t);
                        Step::Text(t)
                    }
                    (Partial::Text { extra, .. }, Delta::Citation(c)) => {
                        if let Value::Array(a) = extra.entry("citations").or_insert_with(|| Value::Array(Vec::new())) {
                            a.push(c);
                        }
                        Step::Nothing
                    }
                    (Partial::ToolUse { json, .. } | Partial::Other { json, .. }, Delta::InputJson(f)) => {
                        json.push_str(&f);
                        Step::Nothing
                    }
                    (Partial::Thinking { thinking, .. }, Delta::Thinking(t)) => {
                        thinking.push_str(&t);
                        Step::Thinking(t)
                    }
                    (Partial::Thinking { signature, .. }, Delta::Signature(s)) => {
                        signature.push_str(&s);
                        Step::Nothing
                    }
                    (_, d) => {
                        tracing::debug!("delta {d:?} does not fit block {index}: skipped");
                        Step::Nothing
                    }
                }
            }
            ApiEvent::BlockStop { index } => {
                match self.blocks.get_mut(&index) {
                    Some(Partial::ToolUse { start, json, input }) => {
                        *input = if json.trim().is_empty() {
                            Some(start.get("input").cloned().unwrap_or_else(|| Value::Object(Map::new())))
                        } else {
                            serde_json::from_str::<Value>(json).ok().filter(Value::is_object)
                        };
                    }
                    Some(Partial::Other { start, json }) if !json.trim().is_empty() => {
                        if let (Value::Object(m), Ok(v)) = (start, serde_json::from_str::<Value>(json)) {
                            m.insert("input".into(), v);
                        }
                    }
                    _ => {}
                }
                Step::Nothing
            }
            ApiEvent::MessageDelta { stop_reason, usage } => {
                if let Some(s) = stop_reason {
                    self.stop_reason = Some(StopReason::parse(&s));
                }
                if let Some(u) = usage {
                    self.usage.update(&u);
                }
                Step::Nothing
            }
            ApiEvent::MessageStop => {
                self.done = true;
                Step::Done
            }
            ApiEvent::Ping => Step::Nothing,
            ApiEvent::Error { kind, message } => Step::Error { kind, message },
            ApiEvent::Unknown(name) => {
                tracing::debug!("unknown event `{name}`: skipped");
                Step::Nothing
            }
        }
    }

    /// The response so far.
    pub fn finish(self) -> Response {
        let mut content = Vec::new();
        let mut incomplete = Vec::new();
        for (_, b) in self.blocks {
            match b {
                Partial::Text { text, extra } => content.push(ContentBlock::Text { text, extra }),
                Partial::Thinking { thinking, signature } => {
                    content.push(ContentBlock::Thinking { thinking, signature })
                }
                Partial::ToolUse { start, json, input } => {
                    let id = start.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                    let name = start.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                    match input {
                        Some(input) => content.push(ContentBlock::ToolUse { id, name, input }),
                        None => {
                            tracing::debug!("tool_use {id} ({name}) input incomplete: {} bytes", json.len());
                            incomplete.push(id.clone());
                            content.push(ContentBlock::ToolUse { id, name, input: Value::Object(Map::new()) });
                        }
                    }
                }
                Partial::Other { start, .. } => content.push(ContentBlock::Other(start)),
            }
        }
        Response {
            id: self.id,
            model: self.model,
            content,
            incomplete_tool_ids: incomplete,
            stop_reason: self.stop_reason,
            usage: self.usage,
        }
    }
}

/// Parse a whole SSE text (a fixture, a recording) into a response. Errors on malformed data.
pub fn assemble(sse: &[u8]) -> Result<Response, super::sse::SseError> {
    let mut p = super::sse::SseParser::new();
    let mut a = Assembler::new();
    for ev in p.push(sse) {
        a.feed(super::sse::decode(&ev)?);
    }
    Ok(a.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROUND: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":50,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"check ports\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"SIG==\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Looking\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"list_open_ports\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"public_\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"only\\\": true}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"hologram\",\"beam\":1}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":3}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":77}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn pings_between_fragments_thinking_and_unknown_blocks() {
        let r = assemble(ROUND.as_bytes()).unwrap();
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(r.usage.input_tokens, 100);
        assert_eq!(r.usage.cache_read_input_tokens, 50);
        assert_eq!(r.usage.output_tokens, 77);
        assert_eq!(r.content[0], ContentBlock::Thinking { thinking: "check ports".into(), signature: "SIG==".into() });
        assert_eq!(r.content[1], ContentBlock::text("Looking"));
        assert_eq!(
            r.content[2],
            ContentBlock::ToolUse {
                id: "toolu_1".into(),
                name: "list_open_ports".into(),
                input: json!({"public_only": true})
            }
        );
        assert_eq!(r.content[3].to_value(), json!({"type": "hologram", "beam": 1}));
        assert!(r.incomplete_tool_ids.is_empty());
    }

    #[test]
    fn the_same_stream_in_crlf_and_one_byte_chunks() {
        let crlf = ROUND.replace('\n', "\r\n").replace("data: ", "data:");
        let mut p = crate::claude::sse::SseParser::new();
        let mut a = Assembler::new();
        for b in crlf.as_bytes().chunks(1) {
            for ev in p.push(b) {
                a.feed(crate::claude::sse::decode(&ev).unwrap());
            }
        }
        assert!(a.is_done());
        assert_eq!(a.finish(), assemble(ROUND.as_bytes()).unwrap());
    }

    #[test]
    fn cut_off_tool_input_is_incomplete() {
        let s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_x\",\"name\":\"lock_account\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"user\\\": \\\"ro\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":5}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let r = assemble(s.as_bytes()).unwrap();
        assert_eq!(r.stop_reason, Some(StopReason::MaxTokens));
        assert_eq!(r.incomplete_tool_ids, vec!["toolu_x".to_string()]);
    }
}
