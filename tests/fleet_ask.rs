//! `ask -i`/`chat -i`: the agent's tools on the servers of a fleet, against a fake Messages API.
//!
//! The controller (the agent, its fleet tools, its terminal confirmation) runs in this
//! test; each host is a fixture root served by this build's real `vigil __remote`
//! (its own state directory, gate, confined worker and audit log), started locally in
//! place of ssh by the shared [`LocalExchange`]. Hosts named "down" answer as ssh does
//! for a server that is off.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failed unwrap is a failed test")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fleet::LocalExchange;
use support::pty::Pty;
use support::*;
use vigil::agent::Sink;
use vigil::app::App;
use vigil::audit::Origin;
use vigil::cli::{FleetTarget, Global};
use vigil::fleet::inventory::Target;
use vigil::fleet::outcome::{Failure, Reason};
use vigil::fleet::proto::{Exchange, Request, Response};
use vigil::gate::{Confirmer, Terminal};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn global(state: &Path) -> Global {
    Global {
        root: None,
        config: None,
        state_dir: Some(state.to_path_buf()),
        vuln_feed: None,
        model: None,
        no_color: true,
        no_sandbox: false,
        verbose: 0,
    }
}

/// The shared local exchange, with some hosts down.
struct SomeDown {
    local: LocalExchange,
    down: Vec<String>,
}

impl Exchange for SomeDown {
    fn exchange(&self, target: &Target, request: &Request, deadline: Instant) -> Result<Response, Failure> {
        if self.down.contains(&target.name) {
            return Err(Failure {
                reason: Reason::Unreachable,
                detail: format!("ssh: connect to host {} port 22: Connection refused", target.address),
            });
        }
        self.local.exchange(target, request, deadline)
    }
}

/// A root with a backup job (`verify_backup_restore` plans and runs there for real) and its
/// own sshd host key, made by ssh-keygen.
fn backup_host() -> tempfile::TempDir {
    let root = backup_root();
    std::fs::create_dir_all(root.path().join("etc/ssh")).unwrap();
    let key = root.path().join("etc/ssh/ssh_host_ed25519_key");
    vigil_testkit::ok(&format!("ssh-keygen -q -t ed25519 -N '' -C test -f {}", key.display()));
    root
}

/// `SHA256:…` as OpenSSH prints it for the host's key.
fn openssh_fingerprint(root: &Path) -> String {
    let out = vigil_testkit::ok(&format!("ssh-keygen -lf {}/etc/ssh/ssh_host_ed25519_key.pub", root.display()));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// The fleet of a test: an INI inventory, the hosts' state directories (`hosts/NAME`).
struct Fleet {
    dir: PathBuf,
    _keep: Option<tempfile::TempDir>,
    down: Vec<String>,
}

impl Fleet {
    /// `hosts`: (name, group, root, up?)
    fn new(hosts: &[(&str, &str, &Path, bool)]) -> Fleet {
        let keep = tmp();
        let dir = keep.path().to_path_buf();
        let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
        let mut down = Vec::new();
        for (name, group, root, up) in hosts {
            let line = format!("{name} ansible_host=127.0.0.1 vigil_root={}", root.display());
            match groups.iter_mut().find(|g| g.0 == *group) {
                Some(g) => g.1.push(line),
                None => groups.push((group, vec![line])),
            }
            std::fs::create_dir_all(dir.join("hosts").join(name)).unwrap();
            if !up {
                down.push(name.to_string());
            }
        }
        let ini: String = groups.iter().map(|(g, l)| format!("[{g}]\n{}\n", l.join("\n"))).collect();
        std::fs::write(dir.join("hosts.ini"), ini).unwrap();
        std::fs::write(dir.join("down"), down.join("\n")).unwrap();
        std::fs::create_dir_all(dir.join("controller")).unwrap();
        Fleet { dir, _keep: Some(keep), down }
    }

    /// The fleet another process made in `dir`.
    fn at(dir: &Path) -> Fleet {
        let down = std::fs::read_to_string(dir.join("down")).unwrap().lines().map(str::to_string).collect();
        Fleet { dir: dir.to_path_buf(), _keep: None, down }
    }

    fn controller_state(&self) -> PathBuf {
        self.dir.join("controller")
    }

    fn state(&self, host: &str) -> PathBuf {
        self.dir.join("hosts").join(host)
    }

    fn exchange(&self) -> SomeDown {
        SomeDown { local: LocalExchange::new(&self.dir.join("hosts"), Vec::new()), down: self.down.clone() }
    }

    /// One question, as `ask -i INVENTORY [--limit P]` asks it, against `api`.
    fn ask(&self, api: &FakeApi, limit: Option<&str>, confirmer: Arc<dyn Confirmer>, q: &str) -> Asked {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let app = App::new(global(&self.controller_state())).unwrap();
            let target = FleetTarget { inventory: Some(self.dir.join("hosts.ini")), limit: limit.map(str::to_string) };
            let exchange = Arc::new(self.exchange());
            let (tools, inv) = vigil::fleet::agent::open(&app, &target, exchange, confirmer, Origin::Ask).unwrap();
            let client = vigil::claude::Client::new(KEY.into(), Some(api.url.clone())).unwrap();
            let mut agent = vigil::fleet::agent::agent(&app, client, tools, &inv);
            let mut sink = Collect::default();
            let outcome = agent.run_turn(q, &mut sink).await.unwrap();
            let transcript = std::fs::read_to_string(agent.transcript_path().unwrap()).unwrap();
            Asked { answer: outcome.answer, printed: sink.0, transcript }
        })
    }
}

struct Asked {
    answer: String,
    printed: String,
    transcript: String,
}

#[derive(Default)]
struct Collect(String);

impl Sink for Collect {
    fn text(&mut self, s: &str) {
        self.0.push_str(s);
    }
}

fn content_of(result: &Value) -> Value {
    serde_json::from_str(result["content"].as_str().unwrap()).unwrap_or_else(|_| result["content"].clone())
}

#[test]
fn a_fleet_question_runs_on_every_limited_host_and_names_the_unreachable_one() {
    let clean = vigil_testkit::fixture_hosts().join("clean");
    let fleet = Fleet::new(&[
        ("web1", "web", &web1(), true),
        ("web2", "web", &clean, true),
        ("web3", "web", &clean, false),
        ("db1", "db", &clean, true),
    ]);
    let answer =
        "Elasticsearch (tcp:9200) is open to the world on web1 only; web2 is clean; web3 could not be reached.";
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_ports", "list_open_ports", &json!({"host": "all"}))),
        Reply::Sse(text_sse(answer)),
    ]);
    let asked = fleet.ask(&api, Some("web"), Arc::new(Terminal), "which servers expose Elasticsearch?");
    assert_eq!(asked.answer, answer);
    assert_eq!(asked.printed, answer, "the answer is what the user reads");

    // Secrets: not in any request (the Redis password of web1 is redacted by web1), nor the transcript.
    let got = api.check();
    assert_eq!(got.len(), 2);
    assert!(!asked.transcript.contains(PLANTED) && !asked.transcript.contains(KEY));

    // The model sees the limited hosts only: `host` is required, `all` only for read-only tools.
    let changes = ["lock_account", "verify_backup_restore", "firewall_deny_port"];
    for t in got[0].body["tools"].as_array().unwrap() {
        assert!(t["input_schema"]["required"].as_array().unwrap().contains(&json!("host")), "{t}");
        if changes.contains(&t["name"].as_str().unwrap()) {
            let host = &t["input_schema"]["properties"]["host"];
            assert_eq!(host["enum"], json!(["web1", "web2", "web3"]), "{t}: a change never offers `all`");
        }
    }
    let ports = got[0].body["tools"].as_array().unwrap().iter().find(|t| t["name"] == "list_open_ports").unwrap();
    assert_eq!(ports["input_schema"]["properties"]["host"]["enum"], json!(["web1", "web2", "web3", "all"]));
    let system = got[0].body["system"].to_string();
    assert!(system.contains("web1, web2, web3") && !system.contains("db1"), "{system}");
    assert!(!system.contains(&clean.display().to_string()), "host names only, no paths: {system}");

    // One result, keyed by host: web1's open Elasticsearch, web2 ran clean, web3 unreachable; db1 not asked.
    let results = tool_results(&got[1].body);
    let res = &results["toolu_ports"];
    assert!(res.get("is_error").is_none(), "one unreachable host is not a failed call: {res}");
    let v = content_of(res);
    let hosts = v["hosts"].as_object().unwrap();
    assert_eq!(hosts.keys().collect::<Vec<_>>(), vec!["web1", "web2", "web3"], "{v}");
    let ids =
        |h: &str| v["hosts"][h]["findings"].as_array().map(|f| f.iter().map(|r| r[1].clone()).collect::<Vec<_>>());
    assert!(ids("web1").unwrap().contains(&json!("ports.exposed-datastore")), "{v}");
    assert!(!ids("web2").unwrap().contains(&json!("ports.exposed-datastore")), "{v}");
    assert!(v.to_string().contains("redis-server") && v.to_string().contains("[REDACTED]"), "{v}");
    let web3 = v["hosts"]["web3"]["error"].as_str().unwrap();
    assert!(web3.starts_with("unreachable: ") && web3.contains("Connection refused"), "{v}");

    // Each host's call is in the controller's audit log with its host; web1's own log has it too.
    let ev = audit_events(&fleet.controller_state());
    for (h, ok) in [("web1", true), ("web2", true), ("web3", false)] {
        assert!(
            ev.iter().any(|e| e["tool"] == "list_open_ports" && e["host"] == h && e["result"]["ok"] == ok),
            "{h}: {ev:?}"
        );
    }
    assert!(!ev.iter().any(|e| e["host"] == "db1"), "{ev:?}");
    let remote = audit_events(&fleet.state("web1"));
    assert!(remote.iter().any(|e| e["tool"] == "list_open_ports" && e["origin"] == "fleet"), "{remote:?}");
    assert!(audit_events(&fleet.state("db1")).is_empty(), "db1 is outside --limit");
}

#[test]
fn a_change_is_never_asked_of_all_hosts_or_of_a_host_outside_the_limit() {
    let a = backup_root();
    let b = backup_root();
    let fleet =
        Fleet::new(&[("b1", "web", a.path(), true), ("b2", "web", b.path(), true), ("db1", "db", a.path(), true)]);
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_all", "verify_backup_restore", &json!({"host": "all", "job": "site"}))),
        Reply::Sse(tool_use_sse("toolu_db", "verify_backup_restore", &json!({"host": "db1", "job": "site"}))),
        Reply::Sse(text_sse("I cannot do that for every server at once.")),
    ]);
    // A confirmer that would say yes: the refusal must come before anyone is asked.
    let yes: Arc<dyn Confirmer> = Arc::new(vigil::gate::Scheduled { allow: vec!["verify_backup_restore".into()] });
    fleet.ask(&api, Some("web"), yes, "test the backups everywhere");
    let got = api.check();
    let all = &tool_results(&got[1].body)["toolu_all"];
    assert_eq!(all["is_error"], true, "{all}");
    let msg = all["content"].as_str().unwrap();
    assert!(msg.contains("one server at a time") && msg.contains("never with `all`"), "{msg}");
    let db = &tool_results(&got[2].body)["toolu_db"];
    assert_eq!(db["is_error"], true, "{db}");
    assert!(db["content"].as_str().unwrap().contains("must be one of the fleet's servers: b1, b2"), "{db}");
    for h in ["b1", "b2", "db1"] {
        assert_eq!(restore_records(&fleet.state(h)), json!({}), "{h}: nothing ran");
        assert!(audit_events(&fleet.state(h)).is_empty(), "{h}: not even asked to plan");
    }
    let ev = audit_events(&fleet.controller_state());
    assert!(ev.iter().filter(|e| e["decision"] == "refused").count() == 2, "{ev:?}");
}

const CHILD: &str = "VIGIL_FLEET_ASK_CHILD";

/// The controller's side of the pty test: one question whose answer needs a change on b2,
/// confirmed at this process's terminal.
fn child_turn(dir: &Path) {
    let fleet = Fleet::at(dir);
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_fix", "verify_backup_restore", &json!({"host": "b2", "job": "site"}))),
        Reply::Sse(text_sse("The backup of b2 restores.")),
    ]);
    let asked = fleet.ask(&api, None, Arc::new(Terminal), "does b2's backup restore?");
    let got = api.check();
    let r = &tool_results(&got[1].body)["toolu_fix"];
    println!("\nRESULT {r}");
    println!("ANSWER {}", asked.answer);
}

#[test]
#[cfg_attr(vigil_missing = "ssh-keygen", ignore = "needs ssh-keygen (.ci/packages/ssh.txt)")]
fn a_fix_confirmed_at_the_terminal_runs_on_that_host_only() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return child_turn(Path::new(&dir));
    }
    vigil_testkit::require(&["ssh-keygen"]);
    let (a, b) = (backup_host(), backup_host());
    let fleet = Fleet::new(&[("b1", "web", a.path(), true), ("b2", "web", b.path(), true)]);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "a_fix_confirmed_at_the_terminal_runs_on_that_host_only", "--nocapture", "--test-threads=1"])
        .env(CHILD, &fleet.dir)
        .env_remove("ANTHROPIC_API_KEY");
    let mut pty = Pty::spawn(cmd);
    let shown = pty.expect("to run it, anything else declines:", Duration::from_secs(120));
    let fp = openssh_fingerprint(b.path());
    assert!(
        shown.contains(&format!("on host: b2 (host key {fp})")),
        "the host and its key, as OpenSSH prints it: {shown}"
    );
    assert!(shown.contains("verify_backup_restore wants to change b2 (host key"), "{shown}");
    assert!(shown.contains("site-2026-11-26.tar.gz"), "the plan as b2 computed it: {shown}");
    assert!(shown.contains("Type `verify_backup_restore@b2`"), "{shown}");
    pty.send("verify_backup_restore@b2\n");
    let code = pty.wait(Duration::from_secs(120));
    // What the child printed last may still be on its way through the pty.
    std::thread::sleep(Duration::from_millis(300));
    let screen = pty.screen();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("ANSWER The backup of b2 restores."), "{screen}");
    assert!(!screen.contains("\"is_error\":true"), "{screen}");

    // It ran on b2, once, and not on b1.
    assert_eq!(restore_records(&fleet.state("b2")).as_object().unwrap().len(), 1, "b2 ran the restore test");
    assert_eq!(restore_records(&fleet.state("b1")), json!({}), "b1 was not touched");
    assert!(audit_events(&fleet.state("b1")).is_empty(), "b1 was not even asked");
    // Both audit logs have it: b2's (confirmed through its gate), the controller's with the host.
    let remote = audit_events(&fleet.state("b2"));
    assert!(
        remote
            .iter()
            .any(|e| e["tool"] == "verify_backup_restore" && e["decision"] == "confirmed" && e["origin"] == "fleet"),
        "{remote:?}"
    );
    let ctl = audit_events(&fleet.controller_state());
    let e = ctl.iter().find(|e| e["tool"] == "verify_backup_restore").unwrap();
    assert_eq!(e["host"], "b2");
    assert_eq!(e["host_key"], fp);
    assert_eq!(e["decision"], "confirmed");
    assert_eq!(e["result"]["ok"], true, "{e}");
    assert_eq!(e["nonce"].as_str().unwrap().len(), 32, "{e}");
}

/// One host reached through `vigil __remote`: plan, then apply as the controller would.
struct Remote {
    fleet: Fleet,
    target: Target,
}

impl Remote {
    fn new(root: &Path) -> Remote {
        let fleet = Fleet::new(&[("h", "all", root, true)]);
        let inv = vigil::fleet::Inventory::load(&fleet.dir.join("hosts.ini")).unwrap();
        Remote { target: inv.target("h").unwrap(), fleet }
    }

    fn state(&self) -> PathBuf {
        self.fleet.state("h")
    }

    fn send(&self, r: Request) -> Response {
        self.fleet.exchange().exchange(&self.target, &r, Instant::now() + Duration::from_secs(60)).unwrap()
    }

    fn plan(&self) -> (String, String) {
        let (digest, key, _) = self.plan_at();
        (digest, key)
    }

    /// The plan's digest, host key, and when the host made it.
    fn plan_at(&self) -> (String, String, i64) {
        let root = self.target.root.clone();
        match self.send(Request::Plan { root, name: "verify_backup_restore".into(), input: json!({"job": "site"}) }) {
            Response::Plan { digest, host_key, planned_at, .. } => (digest, host_key, planned_at),
            other => panic!("no plan: {other:?}"),
        }
    }

    /// The Apply the controller sends, sent to this host (for a plan made just now).
    fn apply(&self, digest: &str, host_key: &str, nonce: &str) -> Response {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        self.apply_at(digest, host_key, nonce, now)
    }

    /// The Apply for a plan the host made at `planned_at`.
    fn apply_at(&self, digest: &str, host_key: &str, nonce: &str, planned_at: i64) -> Response {
        self.send(Request::Apply {
            planned_at,
            root: self.target.root.clone(),
            name: "verify_backup_restore".into(),
            input: json!({"job": "site"}),
            digest: digest.into(),
            host_key: host_key.into(),
            nonce: nonce.into(),
        })
    }
}

fn refused(r: &Response) -> (String, String) {
    match r {
        Response::Error { kind, message } => (kind.clone(), message.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
#[cfg_attr(vigil_missing = "ssh-keygen", ignore = "needs ssh-keygen (.ci/packages/ssh.txt)")]
fn a_replayed_approval_runs_nothing() {
    vigil_testkit::require(&["ssh-keygen"]);
    let root = backup_host();
    let host = Remote::new(root.path());
    let (digest, key) = host.plan();
    assert_eq!(key, openssh_fingerprint(root.path()));
    let nonce = "0123456789abcdef0123456789abcdef";
    assert!(matches!(host.apply(&digest, &key, nonce), Response::Applied { .. }), "the approved plan runs");
    let once = restore_records(&host.state());
    assert_eq!(once["site"]["ok"], true, "{once}");
    // The same Apply again, as someone who recorded it would send it.
    let (kind, msg) = refused(&host.apply(&digest, &key, nonce));
    assert_eq!(kind, "refused");
    assert!(msg.contains("already used") && msg.contains("nothing was changed"), "{msg}");
    assert_eq!(restore_records(&host.state()), once, "the replay ran nothing");
    let ev = audit_events(&host.state());
    let decided = |d: &str| ev.iter().filter(|e| e["tool"] == "verify_backup_restore" && e["decision"] == d).count();
    assert_eq!((decided("confirmed"), decided("refused")), (1, 1), "one run, one refusal: {ev:?}");
}

/// The host's spent nonces: `NAME -> path` under its state directory.
fn spent_nonces(state: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![state.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            } else if d.file_name().is_some_and(|n| n == "fleet-nonces") {
                found.push(p);
            }
        }
    }
    found
}

#[test]
#[cfg_attr(vigil_missing = "ssh-keygen", ignore = "needs ssh-keygen (.ci/packages/ssh.txt)")]
fn an_expired_approval_runs_nothing_and_old_nonces_are_pruned_without_reopening_a_replay() {
    vigil_testkit::require(&["ssh-keygen"]);
    let root = backup_host();
    let host = Remote::new(root.path());
    let (digest, key, planned_at) = host.plan_at();
    assert!(planned_at > 1_700_000_000, "the host dates its plan by its clock: {planned_at}");
    let life = vigil::fleet::remote_tools::APPROVAL_LIFETIME.as_secs() as i64;
    // Confirmed too late: refused before anything, its nonce not even spent.
    let late = "11111111111111111111111111111111";
    let (kind, msg) = refused(&host.apply_at(&digest, &key, late, planned_at - life - 1));
    assert_eq!(kind, "refused");
    assert!(msg.contains("an approval holds 10 minutes") && msg.contains("nothing was changed"), "{msg}");
    assert!(restore_records(&host.state()).get("site").is_none(), "an expired approval ran");
    assert!(spent_nonces(&host.state()).is_empty());

    // In time: it runs once; its nonce is kept.
    let first = "22222222222222222222222222222222";
    assert!(matches!(host.apply_at(&digest, &key, first, planned_at), Response::Applied { .. }));
    let spent = spent_nonces(&host.state());
    assert_eq!(spent.len(), 1, "{spent:?}");
    assert!(spent[0].ends_with(first));
    // Eleven minutes and more later (the file's clock moved, as the host's would have).
    let later = std::time::SystemTime::now() - std::time::Duration::from_secs(life as u64 + 120);
    std::fs::File::options().write(true).open(&spent[0]).unwrap().set_modified(later).unwrap();
    // The next apply prunes it …
    let (digest2, key2, planned2) = host.plan_at();
    let second = "33333333333333333333333333333333";
    assert!(matches!(host.apply_at(&digest2, &key2, second, planned2), Response::Applied { .. }));
    let spent = spent_nonces(&host.state());
    assert_eq!(spent.len(), 1, "the old nonce was not pruned: {spent:?}");
    assert!(spent[0].ends_with(second));
    // … and a replay of that approval, which is as old as its nonce was, is refused as expired.
    let (kind, msg) = refused(&host.apply_at(&digest, &key, first, planned_at - life - 120));
    assert_eq!(kind, "refused");
    assert!(msg.contains("an approval holds 10 minutes"), "{msg}");
    // A still-valid one is never accepted twice, pruning or not.
    let (kind, msg) = refused(&host.apply_at(&digest2, &key2, second, planned2));
    assert_eq!(kind, "refused");
    assert!(msg.contains("already used"), "{msg}");
    let ev = audit_events(&host.state());
    let ran = ev.iter().filter(|e| e["tool"] == "verify_backup_restore" && e["decision"] == "confirmed").count();
    assert_eq!(ran, 2, "{ev:?}");
}

#[test]
#[cfg_attr(vigil_missing = "ssh-keygen", ignore = "needs ssh-keygen (.ci/packages/ssh.txt)")]
fn an_approval_for_a_plan_the_host_no_longer_has_is_refused() {
    vigil_testkit::require(&["ssh-keygen"]);
    let root = backup_host();
    let host = Remote::new(root.path());
    let (digest, key) = host.plan();
    // After the plan was shown, a newer backup lands: the plan now restores another archive.
    let dir = root.path().join("var/backups/site");
    std::fs::copy(dir.join("site-2026-11-26.tar.gz"), dir.join("site-2026-11-27.tar.gz")).unwrap();
    let (kind, msg) = refused(&host.apply(&digest, &key, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_eq!(kind, "changed", "{msg}");
    assert!(msg.contains("the host changed since the plan was approved"), "{msg}");
    assert_eq!(restore_records(&host.state()), json!({}), "nothing ran");
}

#[test]
#[cfg_attr(vigil_missing = "ssh-keygen", ignore = "needs ssh-keygen (.ci/packages/ssh.txt)")]
fn an_approval_sent_to_a_host_with_another_key_is_refused() {
    vigil_testkit::require(&["ssh-keygen"]);
    let (a, b) = (backup_host(), backup_host());
    let first = Remote::new(a.path());
    let other = Remote::new(b.path());
    let (digest, key) = first.plan();
    let (_, other_key) = other.plan();
    assert_ne!(key, other_key);
    let (kind, msg) = refused(&other.apply(&digest, &key, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));
    assert_eq!(kind, "refused");
    assert!(msg.contains(&other_key) && msg.contains(&key) && msg.contains("nothing was changed"), "{msg}");
    assert_eq!(restore_records(&other.state()), json!({}), "nothing ran on the other host");
    // A malformed nonce is refused too, before anything.
    let (kind, _) = refused(&first.apply(&digest, &key, "1"));
    assert_eq!(kind, "invalid");
    assert_eq!(restore_records(&first.state()), json!({}));
}

#[test]
#[cfg_attr(
    vigil_missing = "@sshfleet",
    ignore = "needs @sshfleet: root, sshd, ssh, ssh-keygen, sudo (.ci/packages/ssh.txt)"
)]
fn ask_i_over_real_ssh_answers_per_server_and_names_the_ones_it_could_not_reach() {
    use vigil_testkit::sshfleet::{Kind, Spec, SshFleet};
    vigil_testkit::require(vigil_testkit::sshfleet::COMPONENTS);
    let clean = vigil_testkit::fixture_hosts().join("clean");
    let fleet = SshFleet::start(
        &Spec::new()
            .host_with_root("web1", Kind::Root, &web1())
            .host_with_root("web2", Kind::Root, &clean)
            .host("down", Kind::Unreachable)
            .host("refused", Kind::KeyRefused),
    );
    let answer = "web1 exposes Elasticsearch (tcp:9200); web2 does not; down and refused could not be checked.";
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_ports", "list_open_ports", &json!({"host": "all"}))),
        Reply::Sse(text_sse(answer)),
    ]);
    let t = tmp();
    let state = t.path().join("state");
    let inv = fleet.inventory_ini().display().to_string();
    let r = run(vigil_cmd(&state, Some(&api), &["ask", "-i", &inv, "which servers expose Elasticsearch?"]), "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(answer), "{r:?}");
    let got = api.check();
    let v = content_of(&tool_results(&got[1].body)["toolu_ports"]);
    let ids = |h: &str| v["hosts"][h]["findings"].as_array().unwrap().iter().map(|r| r[1].clone()).collect::<Vec<_>>();
    assert!(ids("web1").contains(&json!("ports.exposed-datastore")), "{v}");
    assert!(!ids("web2").contains(&json!("ports.exposed-datastore")), "{v}");
    assert!(v["hosts"]["down"]["error"].as_str().unwrap().starts_with("unreachable: "), "{v}");
    assert!(v["hosts"]["refused"]["error"].as_str().unwrap().starts_with("auth-failed: "), "{v}");
    let system = got[0].body["system"].to_string();
    assert!(system.contains("web1, web2, down, refused") || system.contains("down, refused"), "{system}");
}

#[test]
#[cfg_attr(
    vigil_missing = "@sshfleet",
    ignore = "needs @sshfleet: root, sshd, ssh, ssh-keygen, sudo (.ci/packages/ssh.txt)"
)]
fn ask_i_over_real_ssh_runs_a_fix_typed_at_the_terminal_on_that_server_only() {
    use vigil_testkit::sshfleet::{Kind, Spec, SshFleet};
    vigil_testkit::require(vigil_testkit::sshfleet::COMPONENTS);
    // Each root names itself uniquely.
    let tag = format!("fleetask-{}-{}", std::process::id(), rand_suffix());
    let (a, b) = (backup_host(), backup_host());
    std::fs::write(a.path().join("etc/hostname"), format!("{tag}-a\n")).unwrap();
    std::fs::write(b.path().join("etc/hostname"), format!("{tag}-b\n")).unwrap();
    // Over ssh the remote keeps its state in /var/lib/vigil/hosts/NAME-HASH (removed at the end).
    let remote_states = |s: &str| -> Vec<PathBuf> {
        let prefix = format!("{tag}-{s}-");
        std::fs::read_dir("/var/lib/vigil/hosts")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    };
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for e in std::fs::read_dir("/var/lib/vigil/hosts").into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.0) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let _cleanup = Cleanup(format!("{tag}-"));
    let fleet = SshFleet::start(&Spec::new().host_with_root("b1", Kind::Root, a.path()).host_with_root(
        "b2",
        Kind::Root,
        b.path(),
    ));
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_fix", "verify_backup_restore", &json!({"host": "b2", "job": "site"}))),
        Reply::Sse(text_sse("The backup of b2 restores.")),
    ]);
    let t = tmp();
    let state = t.path().join("state");
    let inv = fleet.inventory_ini().display().to_string();
    let mut pty = Pty::spawn(vigil_cmd(&state, Some(&api), &["ask", "-i", &inv, "does b2's backup restore?"]));
    let shown = pty.expect("to run it, anything else declines:", Duration::from_secs(120));
    let fp = openssh_fingerprint(b.path());
    assert!(shown.contains(&format!("on host: b2 (host key {fp})")), "{shown}");
    pty.send("verify_backup_restore@b2\n");
    assert_eq!(pty.wait(Duration::from_secs(120)), 0, "{}", pty.screen());
    assert!(pty.screen().contains("The backup of b2 restores."), "{}", pty.screen());
    let got = api.check();
    let r = &tool_results(&got[1].body)["toolu_fix"];
    assert!(r.get("is_error").is_none(), "{r}");
    assert_eq!(content_of(r)["facts"]["ok"], true, "{r}");
    // It ran on b2 (its record), not on b1; the controller's log names the host and its key.
    let b2 = remote_states("b");
    assert_eq!(b2.len(), 1, "{b2:?}");
    let rec = std::fs::read_to_string(b2[0].join("restore-tests.json")).unwrap();
    assert!(rec.contains("site-2026-11-26.tar.gz"), "{rec}");
    assert!(remote_states("a").iter().all(|d| !d.join("restore-tests.json").exists()), "b1 was not touched");
    let ev = audit_events(&state);
    let e = ev.iter().find(|e| e["tool"] == "verify_backup_restore").unwrap();
    assert_eq!(
        (e["host"].as_str(), e["host_key"].as_str(), e["decision"].as_str()),
        (Some("b2"), Some(fp.as_str()), Some("confirmed"))
    );
}

fn rand_suffix() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{n:x}")
}

#[test]
#[cfg_attr(
    vigil_missing = "@sshfleet",
    ignore = "needs @sshfleet: root, sshd, ssh, ssh-keygen, sudo (.ci/packages/ssh.txt)"
)]
fn chat_i_over_real_ssh_talks_about_the_servers_not_the_controller() {
    use vigil_testkit::sshfleet::{Kind, Spec, SshFleet};
    vigil_testkit::require(vigil_testkit::sshfleet::COMPONENTS);
    let fleet =
        SshFleet::start(&Spec::new().host_with_root("web1", Kind::Root, &web1()).host("down", Kind::Unreachable));
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_p", "list_open_ports", &json!({"host": "web1"}))),
        Reply::Sse(text_sse("web1 listens on 9200.")),
    ]);
    let t = tmp();
    let inv = fleet.inventory_ini().display().to_string();
    let mut c = vigil_cmd(&t.path().join("state"), Some(&api), &["chat", "-i", &inv]);
    c.env("TERM", "xterm");
    let mut p = Pty::spawn(c);
    let t20 = Duration::from_secs(60);
    p.expect(&format!("on 2 server(s) of {inv}"), t20);
    p.expect("vigil> ", t20);
    p.send("/review\r");
    p.expect("vigil fleet review -i INVENTORY", t20);
    p.expect("vigil> ", t20);
    p.send("what listens on web1?\r");
    p.expect("✓ list_open_ports", t20);
    p.expect("web1 listens on 9200.", t20);
    p.expect("vigil> ", t20);
    p.send("\x04");
    assert_eq!(p.wait(t20), 0, "Ctrl-D leaves cleanly");
    let got = api.check();
    let v = content_of(&tool_results(&got[1].body)["toolu_p"]);
    assert!(v["findings"].as_array().unwrap().iter().any(|f| f[1] == "ports.exposed-datastore"), "{v}");
}
