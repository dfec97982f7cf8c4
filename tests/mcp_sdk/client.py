"""Drive `vigil mcp` with the official MCP Python SDK, as a client application would.

Usage: client.py VIGIL ROOT STATE. Prints one JSON object with what was seen; the Rust test
(tests/mcp_python_sdk.rs) asserts on it. Raw JSON-RPC error cases go over a second, hand-made
session because the SDK itself never sends malformed requests.
"""

import asyncio
import json
import subprocess
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def wire(model):
    """A result as it was on the wire (camelCase), whichever SDK version parsed it."""
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def sdk_session(vigil, root, state):
    params = StdioServerParameters(command=vigil, args=["--root", root, "--state-dir", state, "mcp"],
                                   env={"VIGIL_NOW": "2026-11-27T00:00:00Z", "PATH": "/usr/bin:/bin"})
    seen = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = wire(await session.initialize())
            seen["server"] = init["serverInfo"]["name"]
            seen["protocol"] = init["protocolVersion"]
            tools = wire(await session.list_tools())["tools"]
            seen["tools"] = {t["name"]: {"title": t.get("title"),
                                         "readOnly": (t.get("annotations") or {}).get("readOnlyHint"),
                                         "input": t.get("inputSchema"), "output": t.get("outputSchema")}
                             for t in tools}
            r = wire(await session.call_tool("check_ssh", {}))
            seen["check_ssh"] = {"isError": bool(r.get("isError")), "structured": r.get("structuredContent") is not None,
                                 "text": r["content"][0]["text"][:200] if r.get("content") else ""}
            r = wire(await session.call_tool("firewall_deny_port", {"port": "not-a-port"}))
            seen["mutating_bad_input"] = {"isError": bool(r.get("isError")),
                                          "text": r["content"][0]["text"] if r.get("content") else ""}
    return seen


def raw_errors(vigil, root, state):
    """Send hand-made JSON-RPC lines and collect the error answers by id."""
    lines = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "check_ssh", "arguments": [1, 2]}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": "bogus"}},
        {"jsonrpc": "2.0", "id": 4, "method": "no/such/method"},
        {"jsonrpc": "2.0", "id": 5, "method": "ping"},
    ]
    p = subprocess.run([vigil, "--root", root, "--state-dir", state, "mcp"],
                       input="".join(json.dumps(l) + "\n" for l in lines), capture_output=True, text=True,
                       timeout=60, env={"VIGIL_NOW": "2026-11-27T00:00:00Z", "PATH": "/usr/bin:/bin"})
    out = {}
    for line in p.stdout.splitlines():
        m = json.loads(line)
        out[str(m.get("id"))] = m.get("error") or {"result": True}
    return out


def main():
    vigil, root, state = sys.argv[1:4]
    seen = asyncio.run(sdk_session(vigil, root, state))
    seen["raw"] = raw_errors(vigil, root, state)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
