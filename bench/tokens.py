#!/usr/bin/env python3
"""The token bill of a comprehensive review conversation (bench/run figure 5; prints JSON).

bench/run plays `vigil ask --prompt monthly-review` against bench/fakeapi.py with
VIGIL_RECORD=DIR, once per host, so the request bodies here are exactly what vigil
sends (the recorder redacts secrets, which barely changes sizes). With no live API,
token counts are estimates: bytes / 4 of the text (the fake API reports the same
estimate as `usage`, split by the cache breakpoints vigil sets). Also measured: the
full `vigil tools run` output of each read-only tool (what a review keeps), to show
what the compact view the model reads saves.

  tokens.py --hosts-dir DIR     DIR/HOST/{rec/NNN.request.json, rec/NNN.sse, ask.json, tools/TOOL.json}
"""

import argparse
import json
import os
import sys

PRICES = {"input": 3.00, "output": 15.00, "cache_write": 3.75, "cache_read": 0.30}  # $ per MTok, Sonnet
BUDGET = 8000  # tokens for all read-only tools' results on a typical host (fixtures/hosts/web1)


def tok(n_bytes):
    return (n_bytes + 3) // 4


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def content_bytes(c):
    """Bytes of a tool_result's content as text (a string, or text blocks)."""
    if isinstance(c, str):
        return len(c.encode())
    if isinstance(c, list):
        return sum(len(b.get("text", "").encode()) if isinstance(b, dict) else len(compact(b)) for b in c)
    return len(compact(c))


def sse_usage(path):
    """input / cache write / cache read from message_start, output from the last message_delta."""
    u = {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        return u
    for line in lines:
        if not line.startswith("data:"):
            continue
        try:
            d = json.loads(line[5:])
        except ValueError:
            continue
        if d.get("type") == "message_start":
            for k, v in d["message"].get("usage", {}).items():
                if k in u and isinstance(v, int):
                    u[k] = v
        elif d.get("type") == "message_delta":
            u["output_tokens"] = d.get("usage", {}).get("output_tokens", u["output_tokens"])
    return u


def host_bill(hdir):
    rec = os.path.join(hdir, "rec")
    reqs = sorted(f for f in os.listdir(rec) if f.endswith(".request.json")) if os.path.isdir(rec) else []
    out = {"requests": [], "tool_results": {}, "error": None}
    names = {}
    last_body = None
    for f in reqs:
        body = json.load(open(os.path.join(rec, f), encoding="utf-8"))
        last_body = body
        usage = sse_usage(os.path.join(rec, f.replace(".request.json", ".sse")))
        out["requests"].append({
            "file": f,
            "system_bytes": len(compact(body.get("system", []))),
            "tools_bytes": len(compact(body.get("tools", []))),
            "tools": len(body.get("tools", [])),
            "messages_bytes": len(compact(body.get("messages", []))),
            "usage": usage,
        })
    if last_body is None:
        out["error"] = "no recorded exchange"
        return out
    for m in last_body.get("messages", []):
        if isinstance(m.get("content"), list):
            for c in m["content"]:
                if c.get("type") == "tool_use":
                    names[c["id"]] = c["name"]
                elif c.get("type") == "tool_result":
                    name = names.get(c.get("tool_use_id"), c.get("tool_use_id"))
                    b = content_bytes(c.get("content"))
                    out["tool_results"][name] = {"bytes": b, "tokens": tok(b)}
    tot = {k: sum(r["usage"][k] for r in out["requests"]) for k in
           ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")}
    all_in = tot["input_tokens"] + tot["cache_creation_input_tokens"] + tot["cache_read_input_tokens"]
    cost = (tot["input_tokens"] * PRICES["input"] + tot["cache_creation_input_tokens"] * PRICES["cache_write"]
            + tot["cache_read_input_tokens"] * PRICES["cache_read"] + tot["output_tokens"] * PRICES["output"]) / 1e6
    nocache = (all_in * PRICES["input"] + tot["output_tokens"] * PRICES["output"]) / 1e6
    out["totals"] = tot
    out["all_input_tokens"] = all_in
    out["cache_share_of_input"] = round(tot["cache_read_input_tokens"] / all_in, 3) if all_in else 0
    out["cost_usd"] = round(cost, 4)
    out["cost_usd_without_cache"] = round(nocache, 4)
    out["tool_result_total"] = {"bytes": sum(r["bytes"] for r in out["tool_results"].values()),
                                "tokens": sum(r["tokens"] for r in out["tool_results"].values())}
    try:
        ask = json.load(open(os.path.join(hdir, "ask.json"), encoding="utf-8"))
        out["vigil_reported"] = {"usage": ask.get("usage"), "cost_usd": ask.get("cost_usd"),
                                 "stop_reason": ask.get("stop_reason"), "model_turns": ask.get("model_turns"),
                                 "tool_calls": len(ask.get("tool_calls", []))}
    except (OSError, ValueError):
        out["vigil_reported"] = None
    # The full outputs (`vigil tools run`), what a review keeps.
    full = {}
    tdir = os.path.join(hdir, "tools")
    if os.path.isdir(tdir):
        for f in sorted(os.listdir(tdir)):
            try:
                v = json.load(open(os.path.join(tdir, f), encoding="utf-8"))
                b = len(compact(v))
            except (OSError, ValueError):
                b = 0
            full[f[:-5]] = {"bytes": b, "tokens": tok(b)}
    out["full_outputs"] = full
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts-dir", required=True)
    a = ap.parse_args()
    hosts = {}
    for h in sorted(os.listdir(a.hosts_dir)):
        if os.path.isdir(os.path.join(a.hosts_dir, h)):
            hosts[h] = host_bill(os.path.join(a.hosts_dir, h))
    budget = {"tokens": BUDGET}
    web1 = hosts.get("web1", {}).get("tool_results", {})
    total = sum(r["tokens"] for r in web1.values())
    budget.update({"web1_total": total, "fits": bool(web1) and total <= BUDGET, "trim": []})
    if web1 and total > BUDGET:
        excess = total - BUDGET
        for name, r in sorted(web1.items(), key=lambda kv: -kv[1]["tokens"]):
            if excess <= 0:
                break
            budget["trim"].append({"tool": name, "tokens": r["tokens"], "trim_at_least": min(excess, r["tokens"])})
            excess -= r["tokens"]
    json.dump({"method": "tokens = bytes / 4 of the recorded request bodies and answers",
               "prices_per_mtok": PRICES, "hosts": hosts, "budget": budget}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
