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
