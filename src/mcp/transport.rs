//! The stdio transport of `vigil mcp`: newline-delimited JSON-RPC, one
//! message per line, that answers what it cannot read instead of ignoring it.
//!
//! The SDK's own line transport drops unparsable input silently. A client
//! that sends a broken line (a truncated write, a stray log line) would then
//! wait forever for an answer, so this one replies with a JSON-RPC `-32700`
//! parse error, to well-formed JSON that is not a JSON-RPC message with
//! `-32600` (echoing its `id` when it has one), and to an oversized line with
//! `-32600` — and keeps reading. Only EOF or a read error ends the session.
//! Every outgoing line goes through one writer task, so responses, the
//! server's own requests (elicitation) and these errors never interleave.

use std::future::Future;
use std::io;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The longest line accepted (4 MiB); a longer one is discarded and answered with an error.
pub const MAX_LINE: usize = 4 << 20;

/// Reads JSON-RPC lines from `R`; writes go to the writer task through a channel.
pub struct LineTransport<R> {
    reader: R,
    out: mpsc::Sender<String>,
    /// The line being read (kept across cancelled reads: `receive` is raced in a `select!`).
    buf: Vec<u8>,
    /// Skipping the rest of an oversized line.
    discarding: bool,
}

/// What one line turned out to be.
enum Line {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    /// An answer to send back instead.
    Reply(String),
    Skip,
}

/// A JSON-RPC error response line. `id` is `null` when it could not be read (JSON-RPC 2.0 §5).
pub fn error_line(id: Value, code: i64, message: &str) -> String {
    let message = Value::String(message.to_string());
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#)
}

/// The requests `vigil mcp` serves.
const SERVED: &[&str] = &["initialize", "ping", "tools/list", "tools/call"];

/// A request the SDK would answer vaguely (an unknown method is echoed back as the whole
/// message; `tools/call` without usable params is treated as an unknown method), answered
/// here with the right code and a reason the client's developer can act on.
fn check_request(method: &str, params: Option<&Value>) -> Option<(i64, String)> {
    let shown: String = method.chars().filter(|c| !c.is_control()).take(80).collect();
    if !SERVED.contains(&method) {
        return Some((-32601, format!("Method not found: `{shown}` (vigil mcp serves {})", SERVED.join(", "))));
    }
    let invalid = |why: &str| Some((-32602, format!("Invalid params for {method}: {why}")));
    match (method, params) {
        ("tools/call", None | Some(Value::Null)) => {
            invalid("`params` is missing; send {\"name\": TOOL, \"arguments\": {…}}")
        }
        ("tools/call", Some(Value::Object(p))) => match (p.get("name"), p.get("arguments")) {
            (Some(Value::String(_)), None | Some(Value::Null | Value::Object(_))) => None,
            (Some(Value::String(_)), Some(_)) => invalid("`arguments` must be a JSON object"),
            (None, _) => invalid("`name` (the tool to call) is missing"),
            (Some(_), _) => invalid("`name` must be a string"),
        },
        ("tools/call", Some(_)) => invalid("`params` must be a JSON object"),
        ("tools/list", Some(Value::Object(p))) => match p.get("cursor") {
            None | Some(Value::Null) => None,
            Some(_) => invalid("unknown cursor: tools/list returns every tool in one page and never a nextCursor"),
        },
        ("tools/list", Some(Value::Null) | None) => None,
        ("tools/list", Some(_)) => invalid("`params` must be a JSON object"),
        _ => None,
    }
}

fn classify(line: &[u8]) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Line::Skip;
    }
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return Line::Reply(error_line(Value::Null, -32700, &format!("Parse error: {e}"))),
    };
    let id = match value.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id.clone()),
        _ => None,
    };
    let is_response = value.get("result").is_some() || value.get("error").is_some();
    let is_notification = id.is_none() && value.get("method").is_some();
    if let (Some(id), Some(Value::String(method))) = (&id, value.get("method"))
        && let Some((code, message)) = check_request(method, value.get("params"))
    {
        return Line::Reply(error_line(id.clone(), code, &message));
    }
    match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value) {
        Ok(m) => Line::Message(Box::new(m)),
        // A response we cannot read must not be answered (that could ping-pong);
        // a request gets an error under its own id; a notification gets nothing.
        Err(_) if is_response || is_notification => Line::Skip,
        Err(e) => Line::Reply(error_line(id.unwrap_or(Value::Null), -32600, &format!("Invalid request: {e}"))),
    }
}

impl<R: AsyncBufRead + Unpin + Send> LineTransport<R> {
    /// A transport reading from `reader`, writing through `out`.
    pub fn new(reader: R, out: mpsc::Sender<String>) -> Self {
        LineTransport { reader, out, buf: Vec::new(), discarding: false }
    }

    /// The next complete line, `Err` for an oversized one, `None` at EOF or on a read error.
    /// Cancel-safe: bytes are only consumed once copied into `self.buf`.
    async fn next_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        loop {
            let available = match self.reader.fill_buf().await {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("mcp: reading stdin: {e}");
                    return None;
                }
            };
            if available.is_empty() {
                return None;
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if !self.discarding {
                        self.buf.extend_from_slice(&available[..i]);
                    }
                    self.reader.consume(i + 1);
                    let line = std::mem::take(&mut self.buf);
                    if std::mem::take(&mut self.discarding) || line.len() > MAX_LINE {
                        return Some(Err(()));
                    }
                    return Some(Ok(line));
                }
                None => {
                    let n = available.len();
                    if !self.discarding {
                        self.buf.extend_from_slice(available);
                        if self.buf.len() > MAX_LINE {
                            self.discarding = true;
                            self.buf = Vec::new();
                        }
                    }
                    self.reader.consume(n);
                }
            }
        }
    }
}

impl<R: AsyncBufRead + Unpin + Send> Transport<RoleServer> for LineTransport<R> {
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), io::Error>> + Send + 'static {
        let out = self.out.clone();
        let line = serde_json::to_string(&item);
        async move {
            let line = line.map_err(io::Error::other)?;
            out.send(line).await.map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "stdout is closed"))
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let line = match self.next_line().await? {
                Ok(line) => line,
                Err(()) => {
                    let msg = format!("Invalid request: the message is longer than {MAX_LINE} bytes");
                    let _ = self.out.send(error_line(Value::Null, -32600, &msg)).await;
                    continue;
                }
            };
            match classify(&line) {
                Line::Message(m) => return Some(*m),
                Line::Reply(reply) => {
                    tracing::debug!("mcp: answering an unreadable message with an error");
                    if self.out.send(reply).await.is_err() {
                        return None;
                    }
                }
                Line::Skip => {}
            }
        }
    }

    async fn close(&mut self) -> Result<(), io::Error> {
        Ok(())
    }
}

/// Write every line from `rx` to `w`, newline-terminated and flushed, until all senders are gone.
pub async fn write_lines<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<String>, mut w: W) -> io::Result<()> {
    while let Some(line) = rx.recv().await {
        w.write_all(line.as_bytes()).await?;
        w.write_all(b"\n").await?;
        w.flush().await?;
    }
    w.shutdown().await.or_else(|e| if e.kind() == io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, BufReader};

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn lines_are_classified() {
        let Line::Reply(r) = classify(b"{not json") else { panic!("no reply") };
        let r = parse(&r);
        assert_eq!(r["error"]["code"], -32700);
        assert_eq!(r["id"], Value::Null);
        let Line::Reply(r) = classify(br#"{"jsonrpc":"2.0","id":7,"method":5}"#) else { panic!("no reply") };
        let r = parse(&r);
        assert_eq!((r["error"]["code"].as_i64(), r["id"].as_i64()), (Some(-32600), Some(7)));
        assert!(matches!(classify(b"  \r"), Line::Skip));
        assert!(matches!(classify(br#"{"jsonrpc":"2.0","id":3,"result":{"weird":1}}"#), Line::Message(_) | Line::Skip));
        assert!(matches!(classify(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), Line::Message(_)));
    }

    fn reply(line: &[u8]) -> Value {
        match classify(line) {
            Line::Reply(r) => parse(&r),
            _ => panic!("no error reply to {}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn bad_params_and_unknown_methods_get_the_right_code_and_a_reason() {
        for (line, code, says) in [
            (&br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#[..], -32602, "`params` is missing"),
            (br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":[1]}"#, -32602, "must be a JSON object"),
            (
                br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
                -32602,
                "`arguments` must be",
            ),
            (br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"arguments":{}}}"#, -32602, "`name`"),
            (br#"{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"cursor":"abc"}}"#, -32602, "unknown cursor"),
            (br#"{"jsonrpc":"2.0","id":6,"method":"frobnicate/now"}"#, -32601, "`frobnicate/now`"),
        ] {
            let r = reply(line);
            assert_eq!(r["error"]["code"], code, "{r}");
            assert!(r["error"]["message"].as_str().unwrap().contains(says), "{r}");
            assert!(r["id"].is_number(), "the error carries the request's id: {r}");
        }
        for ok in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"check_ssh"}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"check_ssh","arguments":{}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ] {
            assert!(matches!(classify(ok), Line::Message(_)), "{}", String::from_utf8_lossy(ok));
        }
        // A notification of an unknown kind is not answered.
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","method":"notifications/whatever"}"#),
            Line::Skip | Line::Message(_)
        ));
    }

    #[tokio::test]
    async fn bad_lines_are_answered_and_reading_goes_on() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (tx, rx) = mpsc::channel(8);
        let (r, w) = tokio::io::split(server);
        let writer = tokio::spawn(write_lines(rx, w));
        let mut t = LineTransport::new(BufReader::new(r), tx);
        let mut input = b"garbage\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n");
        let feeder = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(&input).await.unwrap();
            client
        });
        let msg = t.receive().await.expect("the valid message after two bad lines");
        assert_eq!(serde_json::to_value(&msg).unwrap()["method"], "ping");
        let mut client = feeder.await.unwrap();
        drop(t);
        writer.await.unwrap().unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        let codes: Vec<i64> = out.lines().map(|l| parse(l)["error"]["code"].as_i64().unwrap()).collect();
        assert_eq!(codes, vec![-32700, -32600]);
    }
}
