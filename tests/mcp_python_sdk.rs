//! `vigil mcp` against the official MCP Python SDK (`pip install mcp` in a virtual
//! environment): what a real client sees — titles, schemas with standard formats only,
//! a read-only call, a refused change — and the JSON-RPC error codes for malformed calls.
//!
//! Needs python3 with venv and the package index. Without venv the test is
//! listed as ignored with its reason (or fails under `VIGIL_SYSTEM_TESTS=1`);
//! an unreachable package index fails it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A virtual environment with the SDK, made once per target directory.
fn sdk_python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-sdk-venv");
    let py = venv.join("bin/python");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if !ok(Command::new(&py).args(["-c", "import mcp.client.stdio"])) {
        if !ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)) {
            return Err("python3 -m venv failed (install python3-venv)".into());
        }
        let pip = Command::new(venv.join("bin/pip")).args(["install", "-q", "mcp>=1.10"]).output();
        match pip {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Err(format!("pip install mcp failed: {}", String::from_utf8_lossy(&o.stderr))),
            Err(e) => return Err(format!("pip: {e}")),
        }
    }
    Ok(py)
}

#[test]
#[cfg_attr(
    any(vigil_missing = "python3", vigil_missing = "py:ensurepip"),
    ignore = "needs python3 with venv (.ci/packages/mcp.txt)"
)]
fn the_official_python_sdk_lists_calls_and_gets_clear_errors() {
    vigil_testkit::require(&["python3", "py:ensurepip"]);
    let py = sdk_python().unwrap_or_else(|e| panic!("MCP Python SDK: {e} (needs the package index)"));
    let state = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_sdk/client.py");
    let out = Command::new(py)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg(support::web1())
        .arg(state.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "client.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(seen["server"], "vigil");
    let tools = seen["tools"].as_object().unwrap();
    assert_eq!(tools["check_os_updates"]["title"], "Check OS updates");
    assert_eq!(tools["wordpress_inventory"]["title"], "WordPress inventory");
    assert_eq!(tools["firewall_deny_port"]["readOnly"], false);
    let mut fs = Vec::new();
    for t in tools.values() {
        vigil::mcp::schema_formats(&t["input"], &mut fs);
        vigil::mcp::schema_formats(&t["output"], &mut fs);
    }
    assert!(fs.iter().all(|f| !f.starts_with("uint") && !f.starts_with("int")), "non-standard formats: {fs:?}");

    assert_eq!(seen["check_ssh"]["isError"], false, "{}", seen["check_ssh"]);
    assert_eq!(seen["check_ssh"]["structured"], true);
    let refused = seen["mutating_bad_input"]["text"].as_str().unwrap();
    assert_eq!(seen["mutating_bad_input"]["isError"], true);
    assert!(refused.starts_with("`firewall_deny_port` changes the host"), "refused first: {refused}");

    let raw = &seen["raw"];
    assert_eq!(raw["1"]["code"], -32602, "{raw}");
    assert!(raw["1"]["message"].as_str().unwrap().contains("params"), "{raw}");
    assert_eq!(raw["2"]["code"], -32602, "{raw}");
    assert_eq!(raw["3"]["code"], -32602, "{raw}");
    assert!(raw["3"]["message"].as_str().unwrap().contains("cursor"), "{raw}");
    assert_eq!(raw["4"]["code"], -32601, "{raw}");
    assert!(raw["4"]["message"].as_str().unwrap().contains("no/such/method"), "{raw}");
    assert_eq!(raw["5"]["result"], true, "the session still answers after the errors: {raw}");
}
