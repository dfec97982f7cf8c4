//! The loopback sshd fleet every fleet test stands on (`vigil_testkit::sshfleet`):
//! the good hosts let the fleet's key in, each bad kind fails the way the fleet
//! review must tell apart, host keys are really checked, the three inventory
//! formats describe the same hosts to vigil's own parser, and nothing the fleet
//! started outlives it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
#![allow(clippy::disallowed_methods, reason = "tests read the fleet's own files")]

use std::process::{Command, Stdio};

use vigil::fleet::Inventory;
use vigil_testkit::sshfleet::{Kind, SUDO_USER, Spec, SshFleet};

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn each_kind_of_host_answers_ssh_the_way_the_fleet_review_must_report_it() {
    vigil_testkit::require(&["@sshfleet"]);
    let fleet = SshFleet::start(&Spec::standard());

    for good in ["web1", "clean"] {
        let (rc, out) = fleet.ssh(good, "id -un", 20);
        assert_eq!((rc, out.trim()), (0, "root"), "{good}: {}", fleet.host(good).log());
    }
    let (rc, out) = fleet.ssh("sudo", "id -un; sudo -n id -un", 20);
    assert_eq!(rc, 0, "sudo host: {out}\n{}", fleet.host("sudo").log());
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), [SUDO_USER, "root"]);

    // The no-sudo user logs in, but `sudo -n` refuses it without prompting.
    let (rc, out) = fleet.ssh("nosudo", "id -un", 20);
    assert_eq!((rc, out.trim()), (0, "vigil-fleet-nosudo"), "{}", fleet.host("nosudo").log());
    let (rc, out) = fleet.ssh("nosudo", "sudo -n true", 20);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("password is required") || out.contains("not in the sudoers"), "{out}");

    let (rc, out) = fleet.ssh("down", "true", 20);
    assert_eq!(rc, 255, "{out}");
    assert!(out.contains("Connection refused"), "{out}");

    let (rc, out) = fleet.ssh("refused", "true", 20);
    assert_eq!(rc, 255, "{out}");
    assert!(out.contains("Permission denied (publickey)"), "{out}");
    assert!(!out.contains("Host key verification failed"), "the refusing host's key is known: {out}");

    // The command never ends: only the deadline stops it.
    let started = std::time::Instant::now();
    let (rc, out) = fleet.ssh("hangs", "true", 3);
    assert_eq!(rc, 124, "{out}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));

    // A host that dies mid-run: ordinary commands work, the remote vigil's session is killed mid-answer.
    let (rc, out) = fleet.ssh("dies", "echo alive", 20);
    assert_eq!((rc, out.trim()), (0, "alive"), "{}", fleet.host("dies").log());
    let (rc, out) = fleet.ssh("dies", "echo request | /var/lib/vigil/fleet/bin/x/vigil __remote --no-color", 20);
    assert_ne!(rc, 0, "{out}");
    assert!(out.starts_with("{\"partial") && !out.contains("No such file"), "{out}");

    for h in fleet.hosts() {
        assert_eq!(
            h.kind.expected_failure(),
            match h.name.as_str() {
                "web1" | "clean" | "sudo" => None,
                "down" => Some("unreachable"),
                "refused" => Some("auth-failed"),
                "hangs" => Some("timeout"),
                "nosudo" => Some("no-sudo"),
                "dies" => Some("error"),
                other => panic!("unexpected host {other}"),
            }
        );
    }
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn host_keys_are_checked_never_accepted_blindly() {
    vigil_testkit::require(&["@sshfleet"]);
    let fleet = SshFleet::start(&Spec::new().host("a", Kind::Root).host("b", Kind::Root));
    let cfg = fleet.ssh_config().display().to_string();
    let (a, b) = (fleet.host("a").port, fleet.host("b").port);

    // The controller's config: a host whose key is not known is refused, not learnt.
    let empty = fleet.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let (rc, out) = vigil_testkit::sh(&format!(
        "ssh -F {cfg} -o UserKnownHostsFile={} -p {a} root@127.0.0.1 true </dev/null",
        empty.display()
    ));
    assert_eq!(rc, 255, "{out}");
    assert!(out.contains("Host key verification failed"), "{out}");
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "", "an unknown host key was written down");

    // Each host has its own key: b's key listed for a's port is a mismatch (a man in the middle).
    let known = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    let b_key = known.lines().find(|l| l.starts_with(&format!("[127.0.0.1]:{b} "))).unwrap();
    let swapped = fleet.dir().join("swapped_known_hosts");
    std::fs::write(&swapped, b_key.replace(&format!(":{b} "), &format!(":{a} ")) + "\n").unwrap();
    let (rc, out) = vigil_testkit::sh(&format!(
        "ssh -F {cfg} -o UserKnownHostsFile={} -p {a} root@127.0.0.1 true </dev/null",
        swapped.display()
    ));
    assert_eq!(rc, 255, "{out}");
    assert!(out.contains("HOST IDENTIFICATION HAS CHANGED"), "{out}");
    assert!(fleet.ssh("a", "true", 20).0 == 0 && fleet.ssh("b", "true", 20).0 == 0);
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn the_ini_yaml_json_and_host_vars_inventories_give_vigil_the_same_hosts() {
    vigil_testkit::require(&["@sshfleet"]);
    let fleet = SshFleet::start(&Spec::standard());
    let load = |p: std::path::PathBuf| Inventory::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let ini = load(fleet.inventory_ini());
    let names: Vec<&str> = fleet.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(ini.hosts(), names);
    // A host that dies mid-run: ordinary commands work, the remote vigil's session is killed mid-answer.
    let (rc, out) = fleet.ssh("dies", "echo alive", 20);
    assert_eq!((rc, out.trim()), (0, "alive"), "{}", fleet.host("dies").log());
    let (rc, out) = fleet.ssh("dies", "echo request | /var/lib/vigil/fleet/bin/x/vigil __remote --no-color", 20);
    assert_ne!(rc, 0, "{out}");
    assert!(out.starts_with("{\"partial") && !out.contains("No such file"), "{out}");

    for h in fleet.hosts() {
        let t = ini.target(&h.name).unwrap();
        assert_eq!(t.address, "127.0.0.1");
        assert_eq!(t.port, Some(h.port));
        assert_eq!(t.user.as_deref(), Some(h.user));
        assert_eq!(t.become_root, h.kind.becomes(), "{}", h.name);
        assert_eq!(t.root, h.root.as_ref().map(|r| r.display().to_string()));
        assert_eq!(t.ssh_args, ["-F".to_string(), fleet.ssh_config().display().to_string()]);
    }
    assert_eq!(ini.group_hosts("broken"), ["nosudo", "down", "refused", "hangs", "dies"].map(String::from).to_vec());
    for other in [load(fleet.inventory_yaml()), load(fleet.inventory_json()), load(fleet.inventory_split())] {
        let mut hosts = other.hosts().to_vec();
        hosts.sort();
        let mut want = ini.hosts().to_vec();
        want.sort();
        assert_eq!(hosts, want, "{}", other.source.display());
        for h in ini.hosts() {
            assert_eq!(other.target(h).unwrap(), ini.target(h).unwrap(), "{h} in {}", other.source.display());
        }
        for g in ["fleet", "web", "broken"] {
            let (mut a, mut b) = (other.group_hosts(g), ini.group_hosts(g));
            a.sort();
            b.sort();
            assert_eq!(a, b, "group {g} in {}", other.source.display());
        }
    }
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn dropping_the_fleet_stops_every_sshd_and_session_and_removes_its_files() {
    vigil_testkit::require(&["@sshfleet"]);
    let fleet = SshFleet::start(&Spec::new().host("ok", Kind::Root).host("hangs", Kind::Hangs));
    let dir = fleet.dir().to_path_buf();
    let hangs = fleet.host("hangs");
    let port = hangs.port;
    let listener = hangs.pid().unwrap();
    // A session left hanging on the host: its `sleep 3600` runs in sshd's own session, not ours.
    let mut client = Command::new("ssh")
        .args(["-F", &fleet.ssh_config().display().to_string(), "-p", &port.to_string(), "root@127.0.0.1", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sleeper = 0;
    vigil_testkit::wait_for("the hanging host's `sleep 3600`", || {
        let (_, out) = vigil_testkit::sh("pgrep -x -f 'sleep 3600'");
        sleeper = out
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|p| {
                // Is this sleep below the hanging host's sshd?
                let mut at = *p;
                while at > 1 {
                    let stat = std::fs::read_to_string(format!("/proc/{at}/stat")).unwrap_or_default();
                    let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)?.parse().ok());
                    match ppid {
                        Some(pp) if pp == listener => return true,
                        Some(pp) => at = pp,
                        None => return false,
                    }
                }
                false
            })
            .unwrap_or(0);
        sleeper != 0
    });
    drop(fleet);
    let alive = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    vigil_testkit::wait_for("the hanging session to be gone", || !alive(sleeper) && !alive(listener));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
    assert!(!dir.exists(), "{} left behind", dir.display());
    // The client saw its connection end rather than hanging forever.
    vigil_testkit::wait_for("the client to see its connection end", || client.try_wait().unwrap().is_some());
}
