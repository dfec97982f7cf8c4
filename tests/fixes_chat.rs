//! Issue 4's "done when", for real: in `vigil chat` on a pseudo-terminal,
//! "close port 9200" and "lock the contractor's account" each end with the
//! plan shown, the typed confirmation, the change made on the live system, and
//! the undo recorded in the audit log.
//!
//! The model is a fake Messages API serving `fixtures/claude/close_port_*.sse`
//! and `lock_contractor*.sse`. The firewall session runs vigil inside a network
//! namespace this test creates and deletes (`ip netns exec`), with the fake API
//! listening on that namespace's loopback, so the machine's own firewall is
//! never touched. The account session locks a throwaway user the test creates
//! (with a second throwaway administrator, so it is not the last one) and
//! removes, also on failure. Root and the packages in `.ci/packages/fixes_chat.txt`
//! are needed: missing, the tests fail under `VIGIL_SYSTEM_TESTS=1` and skip
//! otherwise. `VIGIL_SAVE_TRANSCRIPTS=1` writes what the terminal showed to
//! `docs/transcripts/`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed setup should panic")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::pty::Pty;
use support::*;
use vigil_testkit::sh;

const T: Duration = Duration::from_secs(30);

/// A network namespace with loopback up and an nft `inet filter` table, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("vigil-chat-{}", std::process::id());
        let ns = Netns(name.clone());
        let (rc, out) = sh(&format!(
            "ip netns add {name} && ip netns exec {name} ip link set lo up && \
             ip netns exec {name} nft add table inet filter && \
             ip netns exec {name} nft add chain inet filter input '{{ type filter hook input priority 0; policy accept; }}'"
        ));
        assert_eq!(rc, 0, "{out}");
        ns
    }

    fn nft_ruleset(&self) -> String {
        let (rc, out) = sh(&format!("ip netns exec {} nft list ruleset", self.0));
        assert_eq!(rc, 0, "{out}");
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.0));
    }
}

fn has_sudo_group() -> bool {
    sh("getent group sudo").0 == 0
}

/// Throwaway accounts, removed (with their homes) when dropped, also when the test fails.
struct TempUsers(Vec<String>);

impl TempUsers {
    /// `name` with a password and a login shell, in the sudo group (when the host has one).
    fn add_admin(&mut self, name: &str) {
        let groups = if has_sudo_group() { "-G sudo" } else { "" };
        let (rc, out) =
            sh(&format!("useradd -m -s /bin/bash {groups} {name} && echo '{name}:Zq7-throwaway-Pw' | chpasswd"));
        self.0.push(name.to_string());
        assert_eq!(rc, 0, "{out}");
    }
}

impl Drop for TempUsers {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = sh(&format!("userdel -r {u} 2>/dev/null"));
        }
    }
}

/// `vigil --root / chat`, optionally inside `netns`, on a pty, against `api`; the banner read.
fn live_chat(state: &Path, api: &FakeApi, netns: Option<&str>) -> Pty {
    let base = vigil_cmd_at(state, Some(api), Path::new("/"), &["chat"]);
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(base.get_program());
            c
        }
        None => Command::new(base.get_program()),
    };
    c.args(base.get_args());
    c.env_clear();
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    // The live system runs on the real clock.
    c.env_remove("VIGIL_NOW");
    c.env("TERM", "xterm");
    let mut p = Pty::spawn(c);
    p.expect("/help for commands", T);
    p.expect("vigil> ", T);
    p
}

/// The audit log as `vigil log show --json` prints it: one entry per line.
fn log_show(state: &Path) -> Vec<Value> {
    let r = run(vigil_cmd_at(state, None, Path::new("/"), &["log", "show", "--json"]), "");
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The one tool call of `tool` in the log, confirmed, with its undo lines.
fn confirmed_call(state: &Path, tool: &str) -> (Value, Vec<String>) {
    let calls: Vec<Value> =
        log_show(state).into_iter().map(|e| e["event"].clone()).filter(|e| e["tool"] == tool).collect();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let ev = calls[0].clone();
    assert_eq!(ev["decision"], "confirmed", "{ev:#}");
    assert_eq!(ev["result"]["ok"], true, "{ev:#}");
    assert_eq!(ev["origin"], "chat", "{ev:#}");
    let undo = ev["undo"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect();
    (ev, undo)
}

/// Save what the terminal showed (escape sequences removed) when asked to, followed by the
/// audit log entry of the change.
fn save_transcript(name: &str, screen: &str, state: &Path, tool: &str) {
    if std::env::var("VIGIL_SAVE_TRANSCRIPTS").as_deref() != Ok("1") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/transcripts");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text: String = screen.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    let (ev, _) = confirmed_call(state, tool);
    let shown = serde_json::json!({
        "tool": ev["tool"], "origin": ev["origin"], "input": ev["input"], "decision": ev["decision"],
        "result": ev["result"], "undo": ev["undo"],
    });
    text.push_str(&format!(
        "\n# Its entry in the audit log (`vigil log show --json`; fields tool, origin, input, decision, result, undo):\n{}\n",
        serde_json::to_string_pretty(&shown).unwrap()
    ));
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "ip", vigil_missing = "nft"),
    ignore = "needs root, ip, nft (.ci/packages/fixes_chat.txt)"
)]
fn close_port_9200_in_chat_changes_the_firewall_and_logs_the_undo() {
    vigil_testkit::require(&["root", "ip", "nft"]);
    let ns = Netns::new();
    let state = tempfile::tempdir().unwrap();
    let api = FakeApi::start_in_netns(
        vec![Reply::Sse(fixture("close_port_9200.sse")), Reply::Sse(fixture("close_port_done.sse"))],
        &ns.0,
    );
    assert!(!ns.nft_ruleset().contains("9200"));
    let mut p = live_chat(state.path(), &api, Some(&ns.0));
    p.send("close port 9200\r");
    p.expect("Port 9200 is Elasticsearch's HTTP API", T);
    p.expect("Plan for firewall_deny_port", T);
    p.expect("run:  nft 'add table inet vigil'", T);
    p.expect("run:  nft --echo --handle 'add rule inet vigil input tcp dport 9200 drop comment", T);
    p.expect("undo: nft 'delete rule inet vigil input handle N'", T);
    p.expect("\"reason\": \"forgotten Elasticsearch debug port\"", T);
    p.expect("Type `firewall_deny_port` to run it", T);
    assert!(!ns.nft_ruleset().contains("9200"), "nothing changes before the confirmation");
    p.send("firewall_deny_port\r");
    p.expect("✓ firewall_deny_port", T);
    p.expect("Done: incoming tcp:9200 is now dropped by the firewall.", T);
    p.expect("vigil> ", T);
    p.send("\x04");
    assert_eq!(p.wait(T), 0);
    save_transcript("close-port-9200.txt", &p.screen(), state.path(), "firewall_deny_port");

    let ruleset = ns.nft_ruleset();
    assert!(ruleset.contains("tcp dport 9200 drop comment \"vigil: forgotten Elasticsearch debug port\""), "{ruleset}");
    let (ev, undo) = confirmed_call(state.path(), "firewall_deny_port");
    assert_eq!(ev["input"]["port"], 9200);
    assert!(ev["plan"]["steps"].is_array(), "the plan shown is recorded: {ev:#}");
    // The undo as it really is: the rule's own handle, then the chain and table vigil added.
    assert_eq!(undo.len(), 3, "{undo:?}");
    let handle = undo[0].trim_end_matches('\'').rsplit(' ').next().unwrap_or_default();
    assert!(undo[0].contains("delete rule inet vigil input handle "), "{undo:?}");
    assert!(!handle.is_empty() && handle.chars().all(|c| c.is_ascii_digit()), "a real handle: {undo:?}");
    let got = api.check();
    assert_eq!(got.len(), 2);
    let res = &tool_results(&got[1].body)["toolu_01DenyPort9200"];
    assert_ne!(res["is_error"], true, "{res}");
    // And it does undo: run it where the change was made.
    for u in &undo {
        let (rc, out) = sh(&format!("ip netns exec {} {u}", ns.0));
        assert_eq!(rc, 0, "undo `{u}`: {out}");
    }
    assert!(!ns.nft_ruleset().contains("vigil"), "the recorded undo removed the rule, chain and table");
    let r = run(vigil_cmd_at(state.path(), None, Path::new("/"), &["log", "verify"]), "");
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "usermod",
        vigil_missing = "passwd",
        vigil_missing = "chpasswd",
        vigil_missing = "getent"
    ),
    ignore = "needs root, useradd, userdel, usermod, passwd, chpasswd, getent (.ci/packages/fixes_chat.txt)"
)]
fn locking_the_contractor_in_chat_locks_the_account_and_logs_the_undo() {
    vigil_testkit::require(&["root", "useradd", "userdel", "usermod", "passwd", "chpasswd", "getent"]);
    let suffix = format!("{:04}", std::process::id() % 10_000);
    let contractor = format!("vigil-contractor-{suffix}");
    let mut users = TempUsers(Vec::new());
    // The contractor was given sudo; another administrator remains, so it is not the last one.
    users.add_admin(&format!("vigil-admin-{suffix}"));
    users.add_admin(&contractor);
    let status = |u: &str| sh(&format!("passwd -S {u}")).1.split_whitespace().nth(1).unwrap_or("").to_string();
    let expiry = |u: &str| sh(&format!("getent shadow {u}")).1.trim().split(':').nth(7).unwrap_or("?").to_string();
    assert_eq!(status(&contractor), "P");

    let state = tempfile::tempdir().unwrap();
    let with_user = |name: &str| fixture(name).replace("vigil-contractor-XXXX", &contractor);
    let api = FakeApi::start(vec![
        Reply::Sse(with_user("lock_contractor.sse")),
        Reply::Sse(with_user("lock_contractor_done.sse")),
    ]);
    let mut p = live_chat(state.path(), &api, None);
    p.send("lock the contractor's account\r");
    p.expect(&format!("The contractor's account is `{contractor}`"), T);
    p.expect("Plan for lock_account", T);
    p.expect(&format!("run:  usermod --lock --expiredate 1 {contractor}"), T);
    p.expect(&format!("undo: usermod --unlock --expiredate '' {contractor}"), T);
    p.expect("Type `lock_account` to run it", T);
    assert_eq!(status(&contractor), "P", "nothing changes before the confirmation");
    p.send("lock_account\r");
    p.expect("✓ lock_account", T);
    p.expect(&format!("Done: `{contractor}` is locked and expired"), T);
    p.expect("vigil> ", T);
    p.send("\x04");
    assert_eq!(p.wait(T), 0);
    save_transcript("lock-contractor.txt", &p.screen(), state.path(), "lock_account");

    assert_eq!(status(&contractor), "L", "password locked");
    assert_eq!(expiry(&contractor), "1", "account expired");
    assert_eq!(status(&format!("vigil-admin-{suffix}")), "P", "the other administrator is untouched");
    let (ev, undo) = confirmed_call(state.path(), "lock_account");
    assert_eq!(ev["input"]["user"], contractor.as_str());
    assert_eq!(undo, vec![format!("usermod --unlock --expiredate '' {contractor}")]);
    let got = api.check();
    assert_eq!(got.len(), 2);
    let res = &tool_results(&got[1].body)["toolu_02LockContractor"];
    assert_ne!(res["is_error"], true, "{res}");
    if has_sudo_group() {
        let remaining = format!("vigil-admin-{suffix} (group sudo)");
        assert!(res["content"].as_str().unwrap().contains(&remaining), "{res}");
    }
    // The recorded undo restores the account.
    for u in &undo {
        let (rc, out) = sh(u);
        assert_eq!(rc, 0, "undo `{u}`: {out}");
    }
    assert_eq!(status(&contractor), "P");
    assert_eq!(expiry(&contractor), "");
}
