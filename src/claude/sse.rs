//! Server-sent events as the Messages API really sends them.
//!
//! Two layers. [`SseParser`] is the wire format from the HTML standard: bytes
//! in any chunking (a UTF-8 character or a CRLF may be split between chunks),
//! lines ended by LF, CR or CRLF, `field:value` with one optional space after
//! the colon, `:` comments, several `data:` lines joined by newlines, and an
//! event dispatched at a blank line. [`decode`] turns one event into an
//! [`ApiEvent`]: the JSON `type` decides (the `event:` name is only a
//! fallback), `ping` may come anywhere, unknown events are kept as
//! [`ApiEvent::Unknown`] so the caller can skip them, and a data line that is
//! not the JSON its event promises is a [`SseError`], never a panic.

use serde_json::Value;
use thiserror::Error;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// The incremental wire parser.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Feed bytes; returns the events completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                b'\n' => self.end_line(&mut out),
                _ => self.line.push(b),
            }
        }
        out
    }

    /// True when an event was started but not yet dispatched (the stream was cut).
    pub fn pending(&self) -> bool {
        self.has_data || self.event.is_some() || !self.line.is_empty()
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_string();
            }
        }
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                out.push(SseEvent { event: self.event.take(), data });
            }
            self.event = None;
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            _ => {} // id, retry, unknown fields: nothing vigil needs.
        }
    }
}

/// A delta inside `content_block_delta`.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// `text_delta`.
    Text(String),
    /// `input_json_delta`: a fragment of a tool input's JSON.
    InputJson(String),
    /// `thinking_delta`.
    Thinking(String),
    /// `signature_delta`.
    Signature(String),
    /// `citations_delta`: one citation for the text block.
    Citation(Value),
    /// A delta type this version does not know.
    Other(Value),
}

/// One decoded Messages API event.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiEvent {
    /// `message_start`: the message (id, model, initial usage).
    MessageStart(Value),
    /// `content_block_start`.
    BlockStart {
        /// Block index.
        index: usize,
        /// The block as sent.
        block: Value,
    },
    /// `content_block_delta`.
    BlockDelta {
        /// Block index.
        index: usize,
        /// The delta.
        delta: Delta,
    },
    /// `content_block_stop`.
    BlockStop {
        /// Block index.
        index: usize,
    },
    /// `message_delta`: stop reason and cumulative usage.
    MessageDelta {
        /// Why the model stopped.
        stop_reason: Option<String>,
        /// The usage object, when present.
        usage: Option<Value>,
    },
    /// `message_stop`: the stream is complete.
    MessageStop,
    /// `ping`.
    Ping,
    /// `error` on a 200 stream.
    Error {
        /// Error type, e.g. `overloaded_error`.
        kind: String,
        /// Its message.
        message: String,
    },
    /// An event type this version does not know: skip it.
    Unknown(String),
}

/// A stream that does not say what it promises.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("malformed event from the API ({event}): {reason}; data: {excerpt}")]
pub struct SseError {
    /// The event name or type.
    pub event: String,
    /// What is wrong.
    pub reason: String,
    /// The start of the offending data.
    pub excerpt: String,
}

const KNOWN: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

fn excerpt(s: &str) -> String {
    let mut e: String = s.chars().take(120).collect();
    if e.len() < s.len() {
        e.push('…');
    }
    crate::term::strip_controls(&e)
}

/// Decode one event.
pub fn decode(ev: &SseEvent) -> Result<ApiEvent, SseError> {
    let name = ev.event.clone().unwrap_or_default();
    let bad = |event: &str, reason: String| SseError { event: event.to_string(), reason, excerpt: excerpt(&ev.data) };
    if ev.data.trim().is_empty() {
        return Ok(if name == "ping" { ApiEvent::Ping } else { ApiEvent::Unknown(name) });
    }
    let v: Value = match serde_json::from_str(&ev.data) {
        Ok(v) => v,
        Err(e) if name.is_empty() || KNOWN.contains(&name.as_str()) => {
            return Err(bad(if name.is_empty() { "unnamed" } else { &name }, format!("not JSON ({e})")));
        }
        Err(_) => return Ok(ApiEvent::Unknown(name)),
    };
    let ty = v.get("type").and_then(Value::as_str).map(str::to_string).unwrap_or(name);
    let index = || -> Result<usize, SseError> {
        v.get("index").and_then(Value::as_u64).map(|i| i as usize).ok_or_else(|| bad(&ty, "no numeric `index`".into()))
    };
    let str_of = |o: &Value, k: &str| -> Result<String, SseError> {
        o.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| bad(&ty, format!("no string `{k}`")))
    };
    Ok(match ty.as_str() {
        "ping" => ApiEvent::Ping,
        "message_start" => match v.get("message") {
            Some(m) if m.is_object() => ApiEvent::MessageStart(m.clone()),
            _ => return Err(bad(&ty, "no `message` object".into())),
        },
        "content_block_start" => match v.get("content_block") {
            Some(b) if b.is_object() => ApiEvent::BlockStart { index: index()?, block: b.clone() },
            _ => return Err(bad(&ty, "no `content_block` object".into())),
        },
        "content_block_delta" => {
            let index = index()?;
            let d = v.get("delta").filter(|d| d.is_object()).ok_or_else(|| bad(&ty, "no `delta` object".into()))?;
            let delta = match d.get("type").and_then(Value::as_str).unwrap_or_default() {
                "text_delta" => Delta::Text(str_of(d, "text")?),
                "input_json_delta" => Delta::InputJson(str_of(d, "partial_json")?),
                "thinking_delta" => Delta::Thinking(str_of(d, "thinking")?),
                "signature_delta" => Delta::Signature(str_of(d, "signature")?),
                "citations_delta" => Delta::Citation(d.get("citation").cloned().unwrap_or(Value::Null)),
                _ => Delta::Other(d.clone()),
            };
            ApiEvent::BlockDelta { index, delta }
        }
        "content_block_stop" => ApiEvent::BlockStop { index: index()? },
        "message_delta" => {
            let stop_reason = v.pointer("/delta/stop_reason").and_then(Value::as_str).map(str::to_string);
            ApiEvent::MessageDelta { stop_reason, usage: v.get("usage").cloned() }
        }
        "message_stop" => ApiEvent::MessageStop,
        "error" => {
            let e = v.get("error").unwrap_or(&v);
            ApiEvent::Error {
                kind: e.get("type").and_then(Value::as_str).unwrap_or("error").to_string(),
                message: e.get("message").and_then(Value::as_str).unwrap_or("(no message)").to_string(),
            }
        }
        other => ApiEvent::Unknown(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        chunks.iter().flat_map(|c| p.push(c)).collect()
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: Some(event.into()), data: data.into() }
    }

    #[test]
    fn crlf_cr_and_lf_line_endings_and_no_space_after_colon() {
        let lf = all(&[b"event: ping\ndata: {\"type\": \"ping\"}\n\n"]);
        let crlf = all(&[b"event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"]);
        let cr = all(&[b"event: ping\rdata: {\"type\": \"ping\"}\r\r"]);
        let tight = all(&[b"event:ping\ndata:{\"type\": \"ping\"}\n\n"]);
        for got in [lf, crlf, cr, tight] {
            assert_eq!(got, vec![ev("ping", "{\"type\": \"ping\"}")]);
        }
        // Only one space is stripped.
        assert_eq!(all(&[b"data:  x\n\n"])[0].data, " x");
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_end() {
        let got = all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(got, vec![SseEvent { event: None, data: "a\nb".into() }]);
    }

    #[test]
    fn utf8_split_across_chunks_survives() {
        let s = "data: {\"t\":\"héllo ✓ 🦀\"}\n\n".as_bytes();
        let chunks: Vec<&[u8]> = s.chunks(1).collect();
        let got = all(&chunks);
        assert_eq!(got[0].data, "{\"t\":\"héllo ✓ 🦀\"}");
    }

    #[test]
    fn multi_line_data_comments_and_unknown_fields() {
        let got = all(&[b": keep-alive\nid: 7\nretry: 100\nevent: x\ndata: line1\ndata: line2\n\n"]);
        assert_eq!(got, vec![ev("x", "line1\nline2")]);
        // An event without data is not dispatched; a cut-off event stays pending.
        let mut p = SseParser::new();
        assert!(p.push(b"event: ping\n\n").is_empty());
        assert!(p.push(b"event: message_stop\ndata: {}").is_empty());
        assert!(p.pending());
    }

    #[test]
    fn decodes_blocks_deltas_and_errors() {
        let d = |e: &str, data: &str| decode(&ev(e, data)).unwrap();
        assert_eq!(
            d(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"po"}}"#
            ),
            ApiEvent::BlockDelta { index: 1, delta: Delta::InputJson("{\"po".into()) }
        );
        assert_eq!(
            d("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            ApiEvent::Error { kind: "overloaded_error".into(), message: "Overloaded".into() }
        );
        assert_eq!(d("ping", ""), ApiEvent::Ping);
        assert_eq!(d("brand_new", r#"{"type":"brand_new","x":1}"#), ApiEvent::Unknown("brand_new".into()));
        assert_eq!(d("brand_new", "not json at all"), ApiEvent::Unknown("brand_new".into()));
        assert!(matches!(
            d(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"fancy_delta","x":1}}"#
            ),
            ApiEvent::BlockDelta { delta: Delta::Other(_), .. }
        ));
        // The JSON type wins over the event name.
        assert_eq!(d("message", r#"{"type":"message_stop"}"#), ApiEvent::MessageStop);
    }

    #[test]
    fn malformed_data_is_a_clear_error() {
        let e =
            decode(&ev("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":")).unwrap_err();
        assert!(e.to_string().contains("content_block_delta"), "{e}");
        assert!(e.to_string().contains("not JSON"), "{e}");
        let e = decode(&ev("content_block_stop", r#"{"type":"content_block_stop"}"#)).unwrap_err();
        assert!(e.to_string().contains("index"), "{e}");
        let e = decode(&SseEvent { event: None, data: "garbage\x1b[2J".into() }).unwrap_err();
        assert!(!e.to_string().contains('\x1b'), "escapes are stripped from the excerpt");
    }
}
