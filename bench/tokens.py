#!/usr/bin/env python3
"""The token bill of a comprehensive review conversation, estimated from what
vigil actually sends (called by bench/run; prints JSON).

With no live API here, tokens are estimated as bytes / 4 of the exact text
vigil puts in a request: the system prompt, the tool definitions (`vigil tools
list --json`: name, description, input_schema), the saved monthly-review
prompt, and each read-only tool's result as compact JSON (what a tool_result
carries). When a recorded exchange is given (--record DIR: the request bodies
`vigil ask` wrote under VIGIL_RECORD), the request bodies themselves are
measured instead of the reconstruction.
"""

import argparse
import glob
import json
import os
import sys

PRICES = {"input": 3.00, "output": 15.00, "cache_write": 3.75, "cache_read": 0.30}  # $ per MTok, Sonnet
BUDGET = 8000  # tokens for all read-only tools' results on a typical host


def tok(n_bytes):
    return (n_bytes + 3) // 4


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def first_existing(paths):
    for p in paths:
        if os.path.isfile(p):
            return p
    return None


def tool_results(work, host, readonly):
    out = {}
    for name in readonly:
        p = os.path.join(work, host, name + ".json")
        try:
            raw = open(p, encoding="utf-8").read()
            v = json.loads(raw) if raw.strip() else None
        except (OSError, ValueError):
            v = None
        if v is None:
            out[name] = {"bytes": 0, "tokens": 0, "error": "no output (tool failed or missing)"}
            continue
        b = len(compact(v).encode())
        facts = len(compact(v.get("facts")).encode()) if isinstance(v, dict) else b
        findings = v.get("findings", []) if isinstance(v, dict) else []
        out[name] = {"bytes": b, "tokens": tok(b), "facts_bytes": facts, "findings": len(findings)}
    return out


def from_record(record_dir):
    """Measure recorded request bodies (one JSON file per request) and SSE usage, if any."""
    reqs = sorted(glob.glob(os.path.join(record_dir, "**", "*request*.json"), recursive=True))
    if not reqs:
        return None
    rows = []
    for p in reqs:
        try:
            body = json.load(open(p, encoding="utf-8"))
        except (OSError, ValueError):
            continue
        system = compact(body.get("system", "")).encode()
        tools = compact(body.get("tools", [])).encode()
        msgs = compact(body.get("messages", [])).encode()
        per_tool = {}
        for m in body.get("messages", []):
            if isinstance(m.get("content"), list):
                for c in m["content"]:
                    if c.get("type") == "tool_result":
                        per_tool[c.get("tool_use_id", "?")] = len(compact(c.get("content")).encode())
        rows.append({"file": os.path.relpath(p, record_dir), "system_bytes": len(system), "tools_bytes": len(tools),
                     "messages_bytes": len(msgs), "tool_result_bytes": sum(per_tool.values())})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--record", default=None)
    a = ap.parse_args()

    tools = json.load(open(os.path.join(a.work, "tools.json"), encoding="utf-8"))
    readonly = [t["name"] for t in tools if t.get("effect") in ("read_only", "ReadOnly", "readonly", "read-only")]
    if not readonly:  # effect spelled another way: fall back to the tools bench/run ran
        readonly = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(a.work, "web1")))
    tool_defs = [{"name": t["name"], "description": t["description"], "input_schema": t["input_schema"]} for t in tools]
    tools_bytes = len(compact(tool_defs).encode())

    system_path = first_existing([os.path.join(a.repo, "prompts", n) for n in ("system.md", "system-prompt.md", "system.txt")])
    system_bytes = len(open(system_path, "rb").read()) if system_path else 0
    prompt_path = first_existing([os.path.join(a.repo, "prompts", n) for n in ("monthly-review.md", "monthly_review.md")])
    prompt_bytes = len(open(prompt_path, "rb").read()) if prompt_path else len(b"Run a comprehensive security review of this server.")

    hosts = {}
    for host in sorted(os.listdir(a.work)):
        if os.path.isdir(os.path.join(a.work, host)):
            hosts[host] = tool_results(a.work, host, readonly)

    # The conversation, modelled on the agent loop in DESIGN.md: request 1 (system + tools + prompt) ->
    # the model calls every read-only tool; request 2 adds the calls and their results -> the report.
    # Output of request 2 (the written review) is assumed as long as vigil's own Markdown review
    # of the same host (measured by bench/run into review.md), a generous upper estimate.
    bills = {}
    for host, res in hosts.items():
        call_bytes = sum(len(compact({"type": "tool_use", "id": "toolu_01" + "x" * 22, "name": n, "input": {}}).encode()) for n in res)
        wrapper = sum(len(compact({"type": "tool_result", "tool_use_id": "toolu_01" + "x" * 22, "content": ""}).encode()) for _ in res)
        results_bytes = sum(r["bytes"] for r in res.values())
        review_md = os.path.join(a.work, host + ".review.md")
        answer_bytes = os.path.getsize(review_md) if os.path.exists(review_md) else 6000
        cached_prefix = tok(system_bytes + tools_bytes)
        r1_uncached = tok(prompt_bytes)
        r1_out = tok(call_bytes + 200)
        r2_uncached = tok(prompt_bytes + call_bytes + 200 + wrapper + results_bytes)
        r2_out = tok(answer_bytes)
        total_in = 2 * cached_prefix + r1_uncached + r2_uncached
        total_out = r1_out + r2_out
        cost = (cached_prefix * PRICES["cache_write"] + cached_prefix * PRICES["cache_read"]
                + (r1_uncached + r2_uncached) * PRICES["input"] + total_out * PRICES["output"]) / 1e6
        cost_nocache = (total_in * PRICES["input"] + total_out * PRICES["output"]) / 1e6
        bills[host] = {
            "requests": 2,
            "input_tokens": total_in,
            "output_tokens": total_out,
            "cache_write_tokens": cached_prefix,
            "cache_read_tokens": cached_prefix,
            "cache_share_of_input": round(cached_prefix / total_in, 3) if total_in else 0,
            "tool_result_tokens": tok(results_bytes),
            "answer_bytes": answer_bytes,
            "cost_usd": round(cost, 4),
            "cost_usd_without_cache": round(cost_nocache, 4),
        }

    web1 = hosts.get("web1", {})
    total_web1 = sum(r["tokens"] for r in web1.values())
    over = []
    if total_web1 > BUDGET:
        # Which tools to trim: the largest first, until the rest fits.
        excess = total_web1 - BUDGET
        for name, r in sorted(web1.items(), key=lambda kv: -kv[1]["tokens"]):
            if excess <= 0:
                break
            over.append({"tool": name, "tokens": r["tokens"], "trim_at_least": min(excess, r["tokens"])})
            excess -= r["tokens"]

    json.dump({
        "method": "tokens = bytes / 4 of what vigil sends (compact JSON for tool definitions and results)",
        "prices_per_mtok": PRICES,
        "system_prompt": {"path": os.path.relpath(system_path, a.repo) if system_path else None, "bytes": system_bytes, "tokens": tok(system_bytes)},
        "prompt": {"path": os.path.relpath(prompt_path, a.repo) if prompt_path else None, "bytes": prompt_bytes, "tokens": tok(prompt_bytes)},
        "tool_definitions": {"count": len(tool_defs), "bytes": tools_bytes, "tokens": tok(tools_bytes)},
        "readonly_tools": readonly,
        "hosts": hosts,
        "bills": bills,
        "budget": {"tokens": BUDGET, "web1_total": total_web1, "fits": total_web1 <= BUDGET, "trim": over},
        "record": from_record(a.record) if a.record else None,
    }, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
