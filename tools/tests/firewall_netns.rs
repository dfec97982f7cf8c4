//! `check_firewall` against real `nft`, `iptables` (nf_tables and legacy) and
//! `ufw`, each run inside a network namespace the test creates and deletes,
//! so the machine's own firewall is never touched. The tool runs its commands
//! in the current namespace, so these tests capture the commands' output
//! inside the namespace and feed it to the same parsing and judging
//! functions the tool uses (`from_runtime`, `port_allowed`, `judge`).
//! One test also sends real packets between two namespaces and checks the
//! evaluator's answer against what the kernel did.
//!
//! Needs root and the programs in `.ci/packages/firewall.txt`. Without them
//! the tests are listed as ignored with their reason, unless
//! `VIGIL_SYSTEM_TESTS=1` (CI), where they fail.

#![allow(clippy::unwrap_used, reason = "test helpers: a failure should panic with its cause")]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use vigil_tools::Host;
use vigil_tools::firewall::model::Family;
use vigil_tools::firewall::{self, RuntimeOutputs, port_allowed, port_allowed_on};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted (with its /etc/netns config) when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        let name = format!("vigil-test-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
        sh("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.run("ip", &["link", "set", "lo", "up"]);
        ns
    }

    /// Run a command inside the namespace; panics (with its stderr) on failure.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        sh("ip", &full)
    }

    /// Run inside the namespace, returning the output whatever the exit status.
    fn output(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        let out = Command::new("ip").args(&full).env("LC_ALL", "C").output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn nft(&self, ruleset: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(ruleset.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "nft -f failed on:\n{ruleset}");
    }

    /// Everything the tool would run on a live host, run inside the namespace.
    fn outputs(&self) -> RuntimeOutputs {
        let have = |p: &str| Path::new(&format!("/usr/sbin/{p}")).exists();
        let get = |p: &str, a: &[&str]| if have(p) { Some(self.output(p, a)) } else { None };
        RuntimeOutputs {
            ufw_status: get("ufw", &["status", "verbose"]),
            firewalld_state: None,
            firewalld_list: None,
            nft_json: get("nft", &["-j", "list", "ruleset"]),
            iptables: vec![
                ("iptables".into(), "iptables-nft-save".into(), Family::V4, get("iptables-nft-save", &[])),
                ("iptables".into(), "ip6tables-nft-save".into(), Family::V6, get("ip6tables-nft-save", &[])),
                ("iptables-legacy".into(), "iptables-legacy-save".into(), Family::V4, get("iptables-legacy-save", &[])),
                (
                    "iptables-legacy".into(),
                    "ip6tables-legacy-save".into(),
                    Family::V6,
                    get("ip6tables-legacy-save", &[]),
                ),
            ],
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).env("LC_ALL", "C").output().unwrap();
    assert!(out.status.success(), "{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ids(state: &firewall::FirewallState) -> Vec<(String, String)> {
    firewall::judge(state).into_iter().map(|f| (f.id, f.subject)).collect()
}

const NFT_RULESET: &str = r#"
table inet filter {
    set admin_ports { type inet_service; elements = { 8443, 10000 } }
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related accept
        iif lo accept
        ct state invalid drop
        tcp dport { 22, 80, 443 } accept
        ip saddr 10.0.0.0/8 tcp dport 9200 accept
        tcp dport 6379 counter accept
        udp dport 5000-5010 accept
        tcp dport @admin_ports jump admin
    }
    chain admin {
        ip saddr 192.0.2.0/24 accept
        drop
    }
}
"#;

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "ip", vigil_missing = "nft"),
    ignore = "needs root, ip, nft (.ci/packages/firewall.txt)"
)]
fn nftables_rules_are_parsed_from_the_real_nft_and_judged() {
    vigil_testkit::require(&["root", "ip", "nft"]);
    let ns = Netns::new();
    ns.nft(NFT_RULESET);
    let state = firewall::from_runtime(&Host::at("/nonexistent"), ns.outputs());
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    assert_eq!(state.backend, "nftables");
    assert!(state.active);
    assert_eq!(state.input_policy.as_deref(), Some("drop"));
    assert_eq!(port_allowed(&state, "tcp", 22), Some(true));
    assert_eq!(port_allowed(&state, "tcp", 443), Some(true));
    assert_eq!(port_allowed(&state, "tcp", 9200), Some(false), "only from 10/8");
    assert_eq!(port_allowed(&state, "tcp", 6379), Some(true));
    assert_eq!(port_allowed(&state, "tcp", 3306), Some(false));
    assert_eq!(port_allowed(&state, "udp", 5005), Some(true));
    assert_eq!(port_allowed(&state, "tcp", 8443), Some(false), "the named set jumps to a chain that drops");
    assert_eq!(port_allowed_on(&state, Family::V6, "tcp", 22), Some(true), "inet covers IPv6");

    let found = ids(&state);
    assert!(found.contains(&("ports.firewall-allows-datastore".into(), "tcp:6379".into())), "{found:?}");
    assert!(!found.iter().any(|(_, s)| s == "tcp:9200"), "9200 is only open to the LAN: {found:?}");
    assert!(!found.iter().any(|(i, _)| i.starts_with("hardening.")), "{found:?}");

    // The same ruleset read from a config file gives the same canonical rules
    // (so a review of a mounted image compares with one of the live host).
    let from_json: Vec<String> = firewall::ruleset(&state).into_iter().map(|r| r.rule).collect();
    let tables = firewall::parse::nft_text(NFT_RULESET, "/etc/nftables.conf", &|_| Vec::new());
    let from_text: Vec<String> =
        firewall::ruleset(&firewall::from_tables(tables)).into_iter().map(|r| r.rule).collect();
    assert_eq!(from_json, from_text);
    assert!(
        from_json.contains(&"nft inet filter input: accept tcp port 9200 from 10.0.0.0/8".to_string()),
        "{from_json:#?}"
    );
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "ip", vigil_missing = "nft"),
    ignore = "needs root, ip, nft (.ci/packages/firewall.txt)"
)]
fn an_accept_all_nft_table_is_no_firewall() {
    vigil_testkit::require(&["root", "ip", "nft"]);
    let ns = Netns::new();
    // Debian's stock /etc/nftables.conf: hooks with nothing in them.
    ns.nft("table inet filter {\n chain input { type filter hook input priority filter; }\n chain forward { type filter hook forward priority filter; }\n}\n");
    let state = firewall::from_runtime(&Host::at("/nonexistent"), ns.outputs());
    assert!(!state.active);
    assert_eq!(port_allowed(&state, "tcp", 9200), Some(true));
    assert!(ids(&state).contains(&("hardening.firewall-accept-all".into(), "firewall".into())));

    let empty = Netns::new();
    let state = firewall::from_runtime(&Host::at("/nonexistent"), empty.outputs());
    assert!(state.tables.is_empty(), "{:?}", state.tables);
    assert!(!state.active);
    assert!(ids(&state).contains(&("hardening.firewall-off".into(), "firewall".into())), "{:?}", ids(&state));
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "ip",
        vigil_missing = "iptables-nft",
        vigil_missing = "iptables-legacy",
        vigil_missing = "ip6tables-nft"
    ),
    ignore = "needs root, ip, iptables-nft, iptables-legacy, ip6tables-nft (.ci/packages/firewall.txt)"
)]
fn iptables_nf_tables_and_legacy_are_both_read_and_both_must_accept() {
    vigil_testkit::require(&["root", "ip", "iptables-nft", "iptables-legacy", "ip6tables-nft"]);
    let ns = Netns::new();
    let ipt = |args: &str| ns.run("iptables-nft", &args.split_whitespace().collect::<Vec<_>>());
    ipt("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT");
    ipt("-A INPUT -i lo -j ACCEPT");
    ipt("-A INPUT -p tcp --dport 22 -j ACCEPT");
    ipt("-A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT");
    ipt("-A INPUT -s 10.0.0.0/8 -p tcp --dport 9200 -j ACCEPT");
    ipt("-A INPUT -p tcp --dport 3306 -j ACCEPT");
    ipt("-A INPUT -p tcp --dport 27017 -m comment --comment mongo-debug -j ACCEPT");
    ipt("-P INPUT DROP");
    ns.run("ip6tables-nft", &["-P", "INPUT", "DROP"]);
    ns.run("ip6tables-nft", &["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"]);
    // A second, legacy table on the same hook: it drops MySQL whatever the first says.
    ns.run("iptables-legacy", &["-A", "INPUT", "-p", "tcp", "--dport", "3306", "-j", "DROP"]);

    let state = firewall::from_runtime(&Host::at("/nonexistent"), ns.outputs());
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    assert!(state.active);
    assert_eq!(state.backend, "iptables");
    assert_eq!(port_allowed(&state, "tcp", 22), Some(true));
    assert_eq!(port_allowed(&state, "tcp", 443), Some(true));
    assert_eq!(port_allowed(&state, "tcp", 9200), Some(false));
    assert_eq!(port_allowed(&state, "tcp", 3306), Some(false), "the legacy table drops it");
    assert_eq!(port_allowed(&state, "tcp", 27017), Some(true));
    assert_eq!(port_allowed_on(&state, Family::V6, "tcp", 443), Some(false), "IPv6 only allows SSH");
    let rules: Vec<String> = firewall::ruleset(&state).into_iter().map(|r| r.rule).collect();
    assert!(rules.contains(&"iptables filter INPUT: accept tcp port 80,443 from anywhere".to_string()), "{rules:#?}");
    assert!(
        rules.contains(&"iptables-legacy filter INPUT: drop tcp port 3306 from anywhere".to_string()),
        "{rules:#?}"
    );
    assert!(rules.contains(&"ip6tables filter INPUT: accept tcp port 22 from anywhere".to_string()), "{rules:#?}");
    // iptables-nft's tables are also visible to nft: they must not be counted twice.
    assert!(!rules.iter().any(|r| r.starts_with("nft ")), "{rules:#?}");
    let found = ids(&state);
    assert!(found.contains(&("ports.firewall-allows-datastore".into(), "tcp:27017".into())), "{found:?}");
    assert!(!found.iter().any(|(_, s)| s == "tcp:3306"), "dropped by legacy: {found:?}");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "ip", vigil_missing = "ufw", vigil_missing = "iptables-nft"),
    ignore = "needs root, ip, ufw, iptables-nft (.ci/packages/firewall.txt)"
)]
fn ufw_runtime_and_config_files_agree() {
    vigil_testkit::require(&["root", "ip", "ufw", "iptables-nft"]);
    let ns = Netns::new();
    // ufw gets its own config: `ip netns exec` bind-mounts /etc/netns/NAME/ufw on /etc/ufw.
    let etc = format!("/etc/netns/{}", ns.name);
    std::fs::create_dir_all(&etc).unwrap();
    sh("cp", &["-a", "/etc/ufw", &format!("{etc}/ufw")]);
    for r in [
        "allow 22/tcp",
        "allow 80,443/tcp",
        "limit 2222/tcp",
        "allow from 10.0.0.0/8 to any port 9200 proto tcp",
        "allow 6379/tcp",
        "deny 3306",
    ] {
        ns.run("ufw", &r.split_whitespace().collect::<Vec<_>>());
    }
    let state = firewall::from_runtime(&Host::at("/nonexistent"), ns.outputs());
    assert_eq!(state.backend, "ufw");
    assert!(!state.active, "ufw is installed but not enabled yet");
    assert!(ids(&state).contains(&("hardening.firewall-off".into(), "firewall".into())));

    ns.run("ufw", &["--force", "enable"]);
    let live = firewall::from_runtime(&Host::at("/nonexistent"), ns.outputs());
    assert!(live.problems.is_empty(), "{:?}", live.problems);
    assert!(live.active);
    assert_eq!(live.backend, "ufw");
    assert_eq!(live.input_policy.as_deref(), Some("drop"));

    // The same ufw seen through its files on a mounted root.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/default")).unwrap();
    sh("cp", &["-a", &format!("{etc}/ufw"), &root.path().join("etc/ufw").to_string_lossy()]);
    std::fs::copy("/etc/default/ufw", root.path().join("etc/default/ufw")).unwrap();
    let files = futures_block(firewall::active_rules(&Host::at(root.path())));
    assert!(files.active);
    assert_eq!(files.backend, "ufw");

    for (proto, port, want) in [
        ("tcp", 22, true),
        ("tcp", 80, true),
        ("tcp", 443, true),
        ("tcp", 2222, true),
        ("tcp", 9200, false),
        ("tcp", 6379, true),
        ("tcp", 3306, false),
        ("udp", 3306, false),
        ("tcp", 8080, false),
    ] {
        assert_eq!(port_allowed(&live, proto, port), Some(want), "runtime {proto}/{port}");
        assert_eq!(port_allowed(&files, proto, port), Some(want), "files {proto}/{port}");
        assert_eq!(port_allowed_on(&live, Family::V6, proto, port), Some(want && port != 9200), "v6 {proto}/{port}");
    }
    let runtime_rules: Vec<String> =
        firewall::ruleset(&live).into_iter().map(|r| r.rule).filter(|r| r.starts_with("ufw")).collect();
    let file_rules: Vec<String> = firewall::ruleset(&files).into_iter().map(|r| r.rule).collect();
    assert_eq!(runtime_rules, file_rules);
    assert!(file_rules.contains(&"ufw input: limit tcp port 2222 from anywhere".to_string()), "{file_rules:#?}");
    // ufw's boilerplate chains are not part of the reviewed ruleset.
    assert!(!firewall::ruleset(&live).iter().any(|r| r.rule.contains("ufw-before")), "{:#?}", firewall::ruleset(&live));
    let found = ids(&live);
    assert!(found.contains(&("ports.firewall-allows-datastore".into(), "tcp:6379".into())), "{found:?}");
    assert!(!found.iter().any(|(_, s)| s == "tcp:3306" || s == "tcp:9200"), "{found:?}");
}

/// Real packets: a client namespace connects to a server namespace whose
/// nftables ruleset the evaluator judged; the kernel's answer must match.
#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "ip", vigil_missing = "nft"),
    ignore = "needs root, ip, nft (.ci/packages/firewall.txt)"
)]
fn the_evaluator_agrees_with_the_kernel() {
    vigil_testkit::require(&["root", "ip", "nft"]);
    let server = Netns::new();
    let client = Netns::new();
    let (a, b) = (format!("vta{}", std::process::id() % 100000), format!("vtb{}", std::process::id() % 100000));
    sh("ip", &["link", "add", &a, "netns", &server.name, "type", "veth", "peer", "name", &b, "netns", &client.name]);
    server.run("ip", &["addr", "add", "198.51.100.1/24", "dev", &a]);
    server.run("ip", &["link", "set", &a, "up"]);
    client.run("ip", &["addr", "add", "198.51.100.2/24", "dev", &b]);
    client.run("ip", &["link", "set", &b, "up"]);
    server.nft(NFT_RULESET);
    let state = firewall::from_runtime(&Host::at("/nonexistent"), server.outputs());

    // Listeners in the server namespace on a few ports.
    let ports = [22u16, 443, 3306, 6379, 9200];
    let mut listeners = Vec::new();
    for p in ports {
        let mut full = vec!["netns".to_string(), "exec".into(), server.name.clone()];
        full.extend(["python3", "-c", &format!(
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',{p}))\ns.listen()\ntime.sleep(20)"
        )].map(String::from));
        listeners.push(Command::new("ip").args(&full).spawn().unwrap());
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    for p in ports {
        let probe = format!(
            "import socket\ns=socket.socket()\ns.settimeout(1)\ntry:\n s.connect(('198.51.100.1',{p}))\n print('open')\nexcept Exception:\n print('closed')"
        );
        let got = client.run("python3", &["-c", &probe]);
        let kernel = got.trim() == "open";
        assert_eq!(port_allowed(&state, "tcp", p), Some(kernel), "port {p}: kernel says {}", got.trim());
    }
    for mut l in listeners {
        let _ = l.kill();
        let _ = l.wait();
    }
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "ip",
        vigil_missing = "nft",
        vigil_missing = "iptables-nft",
        vigil_missing = "ip6tables-nft"
    ),
    ignore = "needs root, ip, nft, iptables-nft, ip6tables-nft (.ci/packages/firewall.txt)"
)]
fn the_nf_tables_iptables_saves_are_skipped_only_when_nft_holds_no_table() {
    vigil_testkit::require(&["root", "ip", "nft", "iptables-nft", "ip6tables-nft"]);
    let ruleset = |ns: &Netns| ns.run("nft", &["-j", "list", "ruleset"]);
    // A new namespace: nftables holds no table, and both saves print nothing, as vigil infers
    // when it does not start them.
    let ns = Netns::new();
    assert!(firewall::nft_holds_no_table(&ruleset(&ns)), "{}", ruleset(&ns));
    for save in firewall::NFT_SAVES {
        assert_eq!(ns.run(save, &[]).trim(), "", "{save}");
    }
    // A rule added through iptables-nft lands in nftables' ip family: nft lists its table, so
    // the saves run, and the rule is there.
    ns.run("iptables-nft", &["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"]);
    assert!(!firewall::nft_holds_no_table(&ruleset(&ns)));
    assert!(ns.run("iptables-nft-save", &[]).contains("--dport 22"));
    // Any table at all, in any family, and they run too.
    let six = Netns::new();
    six.run("ip6tables-nft", &["-A", "INPUT", "-p", "tcp", "--dport", "443", "-j", "ACCEPT"]);
    assert!(!firewall::nft_holds_no_table(&ruleset(&six)));
    assert!(six.run("ip6tables-nft-save", &[]).contains("--dport 443"));
    let inet = Netns::new();
    inet.nft("table inet t {\n chain c {\n type filter hook input priority 0;\n }\n}\n");
    assert!(!firewall::nft_holds_no_table(&ruleset(&inet)));
    // Output that is not a ruleset (an error): they run.
    assert!(!firewall::nft_holds_no_table("Error: Could not process rule: Operation not permitted"));
    assert!(!firewall::nft_holds_no_table(""));
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}
