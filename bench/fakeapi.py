#!/usr/bin/env python3
"""A stand-in for the Messages API for bench/run's token bill (figure 5).

Plays one comprehensive-review conversation: the first reply calls every
read-only tool vigil offers (all in one turn, as the monthly-review prompt
asks), the second writes the review (the text of --answer FILE: vigil's own
Markdown review of the same host, as long as a written review would be).
The `usage` it reports is an estimate, bytes / 4 of what vigil sent, split as
the prompt cache would split it (vigil marks the tools and the system prompt
with cache_control): the first request writes that prefix to the cache, the
next ones read it; everything in `messages` is uncached input.

  fakeapi.py --port-file F --answer FILE   serves on 127.0.0.1 (an ephemeral port, written to F)
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tok(n):
    return (n + 3) // 4


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def event(kind, data):
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class State:
    requests = 0
    answer = ""


def reply(body):
    State.requests += 1
    prefix = tok(len(compact(body.get("tools", []))) + len(compact(body.get("system", []))))
    uncached = tok(len(compact(body.get("messages", []))))
    first = State.requests == 1
    usage = {"input_tokens": uncached, "cache_creation_input_tokens": prefix if first else 0,
             "cache_read_input_tokens": 0 if first else prefix, "output_tokens": 1}
    msg = {"id": f"msg_bench{State.requests:02d}", "type": "message", "role": "assistant",
           "model": body.get("model", "claude-sonnet-4-5"), "content": [], "stop_reason": None,
           "stop_sequence": None, "usage": usage}
    out = [event("message_start", {"type": "message_start", "message": msg})]
    produced = 0
    # Has the model already seen tool results? Then write the review.
    msgs = body.get("messages", [])
    seen_results = any(isinstance(m.get("content"), list) and any(c.get("type") == "tool_result" for c in m["content"])
                       for m in msgs if m.get("role") == "user")
    if not seen_results:
        intro = "I'll run every read-only check on this server, then report."
        out.append(event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        out.append(event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": intro}}))
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        produced += len(intro.encode())
        tools = [t["name"] for t in body.get("tools", []) if is_read_only(t)]
        for i, name in enumerate(tools, start=1):
            tid = f"toolu_bench{State.requests:02d}{i:03d}"
            out.append(event("content_block_start", {"type": "content_block_start", "index": i,
                                                     "content_block": {"type": "tool_use", "id": tid, "name": name, "input": {}}}))
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                     "delta": {"type": "input_json_delta", "partial_json": "{}"}}))
            out.append(event("content_block_stop", {"type": "content_block_stop", "index": i}))
            produced += len(compact({"type": "tool_use", "id": tid, "name": name, "input": {}}))
        stop = "tool_use"
    else:
        text = State.answer
        out.append(event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        for k in range(0, len(text), 2000):
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text[k:k + 2000]}}))
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        produced += len(text.encode())
        stop = "end_turn"
    out.append(event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                       "usage": {"output_tokens": tok(produced)}}))
    out.append(event("message_stop", {"type": "message_stop"}))
    return b"".join(out)


READ_ONLY = set()


def is_read_only(tool):
    return tool.get("name") in READ_ONLY


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        try:
            body = json.loads(self.rfile.read(n))
            data = reply(body)
        except Exception as e:  # a broken request is the bench's failure, said plainly
            msg = json.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": f"fakeapi: {e}"}}).encode()
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--answer", required=True)
    ap.add_argument("--read-only", required=True, help="comma-separated read-only tool names")
    a = ap.parse_args()
    State.answer = open(a.answer, encoding="utf-8").read()
    READ_ONLY.update(x for x in a.read_only.split(",") if x)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(a.port_file, "w") as f:
        f.write(str(srv.server_address[1]))
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
