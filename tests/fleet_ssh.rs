//! The ssh transport against real OpenSSH (`vigil_testkit::sshfleet`): vigil is
//! pushed once to a root-only directory, verified, and found again on the next
//! run; a host's own vigil of our version is used; each broken host is named
//! by the reason an administrator acts on (unreachable, auth-failed, no-sudo,
//! timeout); and nothing is left running when the transport is dropped. A host
//! whose push directory is `noexec` is reviewed through a memfd (as root and
//! through `sudo -n`) with nothing written there; a host of another
//! architecture is `unsupported` after one probe while the others are
//! reviewed; two inventory entries that are one machine push at once safely.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
#![allow(clippy::disallowed_methods, reason = "tests read the files the push wrote")]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vigil::fleet::Inventory;
use vigil::fleet::outcome::Reason;
use vigil::fleet::proto::{Exchange, Request, Response};
use vigil::fleet::ssh::Ssh;
use vigil_testkit::sshfleet::{Kind, Spec, SshFleet};

fn vigil_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vigil"))
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

fn ssh(state: &Path) -> Ssh {
    Ssh::new("test-inventory", state, Duration::from_secs(10)).unwrap().with_binary(&vigil_bin()).unwrap()
}

fn soon(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// ssh control masters (`ssh: PATH [mux]`) still running for sockets under `dir`.
fn masters_under(dir: &Path) -> Vec<String> {
    let (_, out) = vigil_testkit::sh("ps -eo args");
    out.lines().filter(|l| l.contains("[mux]") && l.contains(&dir.display().to_string())).map(String::from).collect()
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
// One test, in order: the hosts are this machine, so every push lands in the same directory.
fn vigil_is_pushed_once_verified_and_private_and_a_hosts_own_is_used_only_at_our_version() {
    vigil_testkit::require(&["@sshfleet"]);
    let fleet = SshFleet::start(&Spec::new().host("web1", Kind::Root).host("sudo", Kind::Sudo));
    let inv = Inventory::load(&fleet.inventory_ini()).unwrap();
    let (web1, sudo) = (inv.target("web1").unwrap(), inv.target("sudo").unwrap());
    let sum = sha256_file(&vigil_bin());
    let pushed = PathBuf::from(format!("/var/lib/vigil/fleet/bin/vigil-{sum}"));
    // Cold: this build is not on the host yet.
    let _ = std::fs::remove_file(&pushed);
    let state = tempfile::tempdir().unwrap();

    let run1 = ssh(state.path());
    let r = run1.remote(&web1, soon(180)).unwrap();
    assert_eq!((r.path.as_str(), r.pushed, r.installed), (pushed.to_str().unwrap(), true, false));
    let m = std::fs::symlink_metadata(&pushed).unwrap();
    assert!(m.is_file());
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o700));
    assert_eq!(sha256_file(&pushed), sum, "the pushed copy differs from ours");
    let d = std::fs::metadata("/var/lib/vigil/fleet/bin").unwrap();
    assert_eq!((d.uid(), d.mode() & 0o777), (0, 0o700));
    let leftovers: Vec<_> = std::fs::read_dir("/var/lib/vigil/fleet/bin")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".vigil-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary copies left: {leftovers:?}");
    let mtime = |m: &std::fs::Metadata| (m.mtime(), m.mtime_nsec());
    let pushed_at = mtime(&m);

    // Within the run the answer is remembered; the control socket lives under the state dir.
    assert!(!run1.remote(&web1, soon(180)).unwrap().pushed);
    let cm = state.path().join("fleet/cm");
    assert_eq!(std::fs::metadata(&cm).unwrap().mode() & 0o777, 0o700);
    assert_eq!(masters_under(&cm).len(), 1, "{:?}", masters_under(&cm));

    // Warm: a second run finds it, through `sudo -n` too, and does not push again.
    let run2 = ssh(state.path());
    for t in [&web1, &sudo] {
        let r = run2.remote(t, soon(180)).unwrap_or_else(|f| panic!("{}: {f:?}", t.name));
        assert_eq!((r.path.as_str(), r.pushed), (pushed.to_str().unwrap(), false), "{}", t.name);
    }
    assert_eq!(mtime(&std::fs::metadata(&pushed).unwrap()), pushed_at, "pushed again");

    // The host's own vigil is used when it prints our version, and only then.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let same = dir.path().join("vigil");
    std::fs::copy(vigil_bin(), &same).unwrap();
    let old = dir.path().join("old vigil");
    std::fs::write(&old, "#!/bin/sh\necho 'vigil 0.0.1'\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut t = web1.clone();
    t.vigil_path = Some(same.display().to_string());
    let r = run2.remote(&t, soon(180)).unwrap();
    assert_eq!((r.path.as_str(), r.installed, r.pushed), (same.to_str().unwrap(), true, false));
    std::fs::remove_file(&pushed).unwrap();
    let mut t = sudo.clone();
    t.vigil_path = Some(old.display().to_string());
    let r = run2.remote(&t, soon(180)).unwrap();
    assert_eq!((r.path.as_str(), r.installed, r.pushed), (pushed.to_str().unwrap(), false, true));

    // A login user without ansible_become keeps vigil in its own ~/.cache, private.
    let mut t = sudo.clone();
    t.become_root = false;
    let r = run2.remote(&t, soon(180)).unwrap();
    let home = format!("/home/{}", vigil_testkit::sshfleet::SUDO_USER);
    assert_eq!(r.path, format!("{home}/.cache/vigil/fleet/bin/vigil-{sum}"));
    let m = std::fs::metadata(&r.path).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (std::fs::metadata(&home).unwrap().uid(), 0o700));
    std::fs::remove_dir_all(format!("{home}/.cache/vigil")).unwrap();

    // Dropping the transport closes its shared connections: nothing is left running.
    drop(run1);
    drop(run2);
    vigil_testkit::wait_for("the control masters to exit", || masters_under(&cm).is_empty());
    // A debug build is 150 MB: leave the machine's disk as it was.
    std::fs::remove_file(&pushed).unwrap();
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn each_broken_host_is_named_by_its_reason() {
    vigil_testkit::require(&["@sshfleet"]);
    let fleet = SshFleet::start(
        &Spec::new()
            .host("nosudo", Kind::NoSudo)
            .host("down", Kind::Unreachable)
            .host("refused", Kind::KeyRefused)
            .host("hangs", Kind::Hangs)
            .host("dies", Kind::Dies)
            .host("web1", Kind::Root),
    );
    let inv = Inventory::load(&fleet.inventory_ini()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let ssh = ssh(state.path());
    let review = Request::Review { root: None, key: None, feed_bytes: 0 };
    let fail = |name: &str, deadline: Instant| {
        let t = inv.target(name).unwrap();
        ssh.exchange(&t, &review, deadline).map(|_| ()).unwrap_err()
    };

    let f = fail("nosudo", soon(180));
    assert_eq!(f.reason, Reason::NoSudo, "{f:?}");
    assert!(f.detail.contains("sudo: a password is required"), "{f:?}");
    let f = fail("down", soon(180));
    assert_eq!(f.reason, Reason::Unreachable, "{f:?}");
    assert!(f.detail.contains("Connection refused"), "{f:?}");
    let f = fail("refused", soon(180));
    assert_eq!(f.reason, Reason::AuthFailed, "{f:?}");
    assert!(f.detail.contains("Permission denied (publickey)"), "{f:?}");

    // The host hangs: its ssh is killed at the deadline, not long after.
    let started = Instant::now();
    let f = fail("hangs", Instant::now() + Duration::from_secs(3));
    assert_eq!(f.reason, Reason::Timeout, "{f:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(5), "{took:?}");

    // The remote vigil dies mid-answer: an error, with what little is known.
    let f = fail("dies", soon(180));
    assert_eq!(f.reason, Reason::Error, "{f:?}");
    assert!(f.detail.contains("ended without an answer"), "{f:?}");

    // The remote vigil itself hangs (the connection is fine): stopped at the deadline here,
    // and on the host too, where the end of the connection alone would not stop it.
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let stuck = bin.path().join("vigil");
    std::fs::write(
        &stuck,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'vigil {}'; exit 0; }}\nexec sleep 299.5\n",
            env!("CARGO_PKG_VERSION")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stuck, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut t = inv.target("web1").unwrap();
    t.vigil_path = Some(stuck.display().to_string());
    let started = Instant::now();
    let f = ssh.exchange(&t, &review, Instant::now() + Duration::from_secs(4)).unwrap_err();
    assert_eq!(f.reason, Reason::Timeout, "{f:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(6), "{took:?}");
    let stuck_left = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x00299.5\x00"))
    };
    vigil_testkit::wait_for("the stuck remote vigil to be stopped on the host", || !stuck_left());

    // A man in the middle: web1 presents a key other than the one on file.
    let known = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    let other = fleet.host("hangs").port;
    let port = fleet.host("web1").port;
    let theirs = known.lines().find(|l| l.starts_with(&format!("[127.0.0.1]:{other} "))).unwrap();
    let swapped = state.path().join("swapped_known_hosts");
    std::fs::write(&swapped, theirs.replace(&format!(":{other} "), &format!(":{port} ")) + "\n").unwrap();
    let mut t = inv.target("web1").unwrap();
    t.ssh_args.extend(["-o".into(), format!("UserKnownHostsFile={}", swapped.display())]);
    let f = ssh.exchange(&t, &review, soon(180)).unwrap_err();
    assert_eq!(f.reason, Reason::AuthFailed, "{f:?}");
    assert!(f.detail.contains("has changed"), "{f:?}");

    // ansible_ssh_common_args asking for agent forwarding is refused before any connection.
    let mut t = inv.target("web1").unwrap();
    t.ssh_args.push("-A".into());
    let f = ssh.exchange(&t, &review, soon(180)).unwrap_err();
    assert_eq!(f.reason, Reason::Error, "{f:?}");
    assert!(f.detail.contains("forwards the SSH agent"), "{f:?}");
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn a_review_comes_back_over_ssh_as_root_and_through_sudo_with_the_controllers_feed() {
    vigil_testkit::require(&["@sshfleet"]);
    let fx = vigil_testkit::fixture_hosts();
    let fleet = SshFleet::start(&Spec::new().host_with_root("web1", Kind::Root, &fx.join("web1")).host_with_root(
        "sudo",
        Kind::Sudo,
        &fx.join("web1"),
    ));
    let inv = Inventory::load(&fleet.inventory_ini()).unwrap();
    let feed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wordfence/feed-sample.json")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let ssh = ssh(state.path()).with_feed(feed.clone());
    for name in ["web1", "sudo"] {
        // The host's own vigil is this build (the push is the other test's subject).
        let mut t = inv.target(name).unwrap();
        t.vigil_path = Some(vigil_bin().display().to_string());
        let request = Request::Review { root: t.root.clone(), key: None, feed_bytes: feed.len() as u64 };
        let answer = ssh.exchange(&t, &request, soon(300)).unwrap_or_else(|f| panic!("{name}: {f:?}"));
        let Response::Review { review, .. } = answer else { panic!("{name}: {answer:?}") };
        let ids: Vec<&str> = review.findings.iter().map(|f| f.id.as_str()).collect();
        // The sample feed marks the shop's WooCommerce: the host judged with the controller's feed.
        assert!(ids.contains(&"updates.vulnerable-plugin"), "{name}: {ids:?}");
        assert!(!ids.contains(&"updates.no-vuln-feed"), "{name}: {ids:?}");
    }

    // A request announcing a feed the transport does not hold is refused before any connection.
    let t = inv.target("web1").unwrap();
    let wrong = Request::Review { root: None, key: None, feed_bytes: feed.len() as u64 + 1 };
    let f = ssh.exchange(&t, &wrong, soon(60)).unwrap_err();
    assert_eq!(f.reason, Reason::Error, "{f:?}");
}

/// A jump host: an sshd beside the fleet's that lets connections through, logging who came.
struct Bastion {
    port: u16,
    log: PathBuf,
    child: std::process::Child,
}

impl Bastion {
    /// A copy of `host`'s sshd (same keys and accounts) on a new port, with forwarding on;
    /// its host key is added to the fleet's known hosts under the new port.
    fn start(fleet: &SshFleet, host: &str, dir: &Path, name: &str) -> Bastion {
        let h = fleet.host(host);
        let port = vigil_testkit::free_port();
        let cfg = std::fs::read_to_string(h.dir.join("sshd_config")).unwrap();
        let cfg = cfg
            .replace(&format!("Port {}\n", h.port), &format!("Port {port}\n"))
            .replace(&format!("127.0.0.1:{}\n", h.port), &format!("127.0.0.1:{port}\n"))
            .replace("AllowTcpForwarding no", "AllowTcpForwarding yes")
            .replace(
                &h.dir.join("sshd.pid").display().to_string(),
                &dir.join(format!("{name}.pid")).display().to_string(),
            );
        let path = dir.join(format!("{name}_config"));
        std::fs::write(&path, cfg).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = std::process::Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&path)
            .arg("-E")
            .arg(&log)
            .spawn()
            .unwrap();
        let known = std::fs::read_to_string(fleet.known_hosts()).unwrap();
        let line = known.lines().find(|l| l.starts_with(&format!("[127.0.0.1]:{} ", h.port))).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(fleet.known_hosts()).unwrap();
        std::io::Write::write_all(
            &mut f,
            format!("{}\n", line.replace(&format!(":{} ", h.port), &format!(":{port} "))).as_bytes(),
        )
        .unwrap();
        vigil_testkit::wait_for("the bastion to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        Bastion { port, log, child }
    }

    fn logins(&self) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().matches("Accepted publickey").count()
    }
}

impl Drop for Bastion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn one_address_behind_two_bastions_is_two_connections() {
    vigil_testkit::require(&["@sshfleet"]);
    let fleet = SshFleet::start(&Spec::new().host("app", Kind::Root).host("jump", Kind::Root));
    let inv = Inventory::load(&fleet.inventory_ini()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (b1, b2) = (Bastion::start(&fleet, "jump", dir.path(), "b1"), Bastion::start(&fleet, "jump", dir.path(), "b2"));
    let state = tempfile::tempdir().unwrap();
    let ssh = ssh(state.path());
    // The same host name, address, port and user: only the jump host differs, as for two
    // private networks that both use 10.0.0.5. OpenSSH's %C would give both one socket.
    let behind = |b: &Bastion| {
        let mut t = inv.target("app").unwrap();
        // This build, as the host's own vigil: no push here (the push test owns that directory).
        t.vigil_path = Some(vigil_bin().display().to_string());
        t.ssh_args.extend(["-J".to_string(), format!("root@127.0.0.1:{}", b.port)]);
        t
    };
    let (t1, t2) = (behind(&b1), behind(&b2));
    ssh.remote(&t1, soon(180))
        .unwrap_or_else(|f| panic!("through b1: {f:?}\n{}", std::fs::read_to_string(&b1.log).unwrap_or_default()));
    assert_eq!((b1.logins(), b2.logins()), (1, 0));
    // The second target goes through its own bastion, not through the first one's connection.
    ssh.remote(&t2, soon(180))
        .unwrap_or_else(|f| panic!("through b2: {f:?}\n{}", std::fs::read_to_string(&b2.log).unwrap_or_default()));
    assert_eq!((b1.logins(), b2.logins()), (1, 1));
    assert_eq!(masters_under(&state.path().join("fleet/cm")).len(), 2);
}

/// The sample vulnerability feed, which marks web1's WooCommerce.
fn feed_sample() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wordfence/feed-sample.json")).unwrap()
}

#[test]
#[cfg_attr(
    any(vigil_missing = "@sshfleet", vigil_missing = "unshare", vigil_missing = "findmnt"),
    ignore = "needs @sshfleet: root, sshd, ssh, sudo, and unshare and findmnt (util-linux)"
)]
fn a_noexec_push_directory_is_reviewed_through_a_memfd_as_root_and_through_sudo_leaving_nothing() {
    vigil_testkit::require(&["@sshfleet", "unshare", "findmnt"]);
    let fx = vigil_testkit::fixture_hosts();
    // The sudo host only makes the fleet's accounts; the sudo login below goes to `noexec`.
    let fleet = SshFleet::start(
        &Spec::new().host_with_root("noexec", Kind::NoexecBin, &fx.join("web1")).host("sudo", Kind::Sudo),
    );
    // The setup is real: in that host's sessions the push directory is an empty noexec mount.
    let (code, out) = fleet.ssh("noexec", "findmnt -n -o OPTIONS --target /var/lib/vigil/fleet/bin", 30);
    assert!(code == 0 && out.trim().split(',').any(|o| o == "noexec"), "{code}: {out}");
    let listed = || fleet.ssh("noexec", "ls -A /var/lib/vigil/fleet/bin", 30);
    assert_eq!(listed(), (0, String::new()));

    let inv = Inventory::load(&fleet.inventory_ini()).unwrap();
    let as_root = inv.target("noexec").unwrap();
    let mut through_sudo = as_root.clone();
    through_sudo.user = Some(vigil_testkit::sshfleet::SUDO_USER.into());
    through_sudo.become_root = true;
    let feed = feed_sample();
    let state = tempfile::tempdir().unwrap();
    let ssh = ssh(state.path()).with_feed(feed.clone());
    for t in [&as_root, &through_sudo] {
        let who = t.user.clone().unwrap();
        let r = ssh.remote(t, soon(180)).unwrap_or_else(|f| panic!("{who}: {f:?}"));
        assert!(r.memfd && !r.pushed && !r.installed, "{who}: {r:?}");
        assert!(r.path.contains("python3") || r.path.contains("perl"), "{who}: {r:?}");
        let request = Request::Review { root: t.root.clone(), key: None, feed_bytes: feed.len() as u64 };
        let answer = ssh.exchange(t, &request, soon(300)).unwrap_or_else(|f| panic!("{who}: {f:?}"));
        let Response::Review { review, .. } = answer else { panic!("{who}: {answer:?}") };
        let ids: Vec<&str> = review.findings.iter().map(|f| f.id.as_str()).collect();
        assert!(ids.contains(&"updates.vulnerable-plugin"), "{who}: {ids:?}");
        assert!(!ids.contains(&"updates.no-vuln-feed"), "{who}: {ids:?}");
    }
    // Nothing was written to the push directory …
    assert_eq!(listed(), (0, String::new()));

    // A login on a host without findmnt (the kit's shim for this user), whose home is
    // noexec: the probe cannot tell, so the push finds out, removes its copy, and the
    // memfd takes over.
    let nosudo = vigil_testkit::sshfleet::NOSUDO_USER;
    let mut user = as_root.clone();
    user.user = Some(nosudo.into());
    user.become_root = false;
    let home = format!("/home/{nosudo}");
    let (_, opts) = fleet.ssh("noexec", &format!("findmnt -n -o OPTIONS --target {home}"), 30);
    assert!(opts.trim().split(',').any(|o| o == "noexec"), "{opts}");
    let r = ssh.remote(&user, soon(300)).unwrap_or_else(|f| panic!("{nosudo}: {f:?}"));
    assert!(r.memfd && !r.pushed, "{r:?}");
    // The push made its directory (a probe alone never does) and left nothing in it.
    let (code, left) = fleet.ssh("noexec", &format!("ls -A {home}/.cache/vigil/fleet/bin"), 30);
    assert_eq!((code, left.as_str()), (0, ""), "the push did not run, or left its copy");
    let answer = ssh
        .exchange(&user, &Request::Review { root: user.root.clone(), key: None, feed_bytes: 0 }, soon(300))
        .unwrap_or_else(|f| panic!("{nosudo}: {f:?}"));
    assert!(matches!(answer, Response::Review { .. }), "{answer:?}");
    // … and once the transport is dropped, nothing runs in that host's mount namespace but its sshd.
    let mnt = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let listener = fleet.host("noexec").pid().unwrap();
    let host_ns = mnt(listener).unwrap();
    assert_ne!(mnt(std::process::id()), Some(host_ns.clone()), "the host's sshd shares our mounts");
    drop(ssh);
    vigil_testkit::wait_for("every process on the noexec host but its sshd to end", || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| *p != listener)
            .all(|p| mnt(p).as_ref() != Some(&host_ns))
    });
}

#[test]
#[cfg_attr(
    any(vigil_missing = "@sshfleet", vigil_missing = "unshare", vigil_missing = "findmnt"),
    ignore = "needs @sshfleet: root, sshd, ssh, sudo, and unshare and findmnt (util-linux)"
)]
fn a_host_of_another_architecture_is_unsupported_never_attempted_and_the_others_are_reviewed() {
    vigil_testkit::require(&["@sshfleet", "unshare", "findmnt"]);
    use vigil_testkit::sshfleet::FOREIGN_ARCH;
    let fx = vigil_testkit::fixture_hosts();
    // The other host is reviewed through a memfd, so this test pushes nothing to the
    // machine's shared /var/lib/vigil/fleet/bin (the first test's subject).
    let fleet =
        SshFleet::start(&Spec::new().host_with_root("foreign", Kind::ForeignArch, &fx.join("clean")).host_with_root(
            "noexec",
            Kind::NoexecBin,
            &fx.join("web1"),
        ));
    // The login environment really says so; nothing else about the host is faked.
    assert_eq!(fleet.ssh("foreign", "uname -m", 30), (0, format!("{FOREIGN_ARCH}\n")));
    let commands = fleet.host("foreign").dir.join("commands.log");
    std::fs::remove_file(&commands).unwrap();

    // One probe, then nothing: answered at once.
    let inv = Inventory::load(&fleet.inventory_ini()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let f = ssh(state.path()).remote(&inv.target("foreign").unwrap(), soon(180)).unwrap_err();
    assert_eq!(f.reason, Reason::Unsupported, "{f:?}");
    assert!(f.detail.contains(&format!("the host is {FOREIGN_ARCH}")) && f.detail.contains("nothing was attempted"));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let ran = std::fs::read_to_string(&commands).unwrap();
    assert_eq!(ran.matches("vigil-probe").count(), 1, "{ran}");
    std::fs::remove_file(&commands).unwrap();

    // A fleet review, one host at a time, the foreign one first: the other is still reviewed.
    let out = state.path().join("fleet.jsonl");
    let r = std::process::Command::new(vigil_bin())
        .arg("--state-dir")
        .arg(state.path().join("state"))
        .args(["fleet", "review", "-i", fleet.inventory_ini().to_str().unwrap()])
        .args(["--forks", "1", "--timeout", "300", "--format", "jsonl", "--out", out.to_str().unwrap()])
        .env_remove("ANTHROPIC_API_KEY")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "a host failed: exit 3\n{err}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed: Vec<_> = lines.iter().filter(|l| l["event"] == "host-failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((&failed[0]["host"], &failed[0]["reason"]), (&"foreign".into(), &"unsupported".into()));
    assert!(failed[0]["detail"].as_str().unwrap().contains(FOREIGN_ARCH), "{}", failed[0]);
    assert!(lines.iter().any(|l| l["host"] == "noexec" && l["id"] == "ports.exposed-datastore"), "{err}");
    // On the foreign host only the probe ever ran: no push, no memfd, no remote vigil.
    let ran = std::fs::read_to_string(&commands).unwrap();
    assert_eq!(ran.matches("vigil-probe").count(), 1, "{ran}");
    for never in ["vigil-push", "vigil-memfd", "__remote"] {
        assert!(!ran.contains(never), "{never} ran on the foreign host: {ran}");
    }
}

#[test]
#[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
fn two_inventory_entries_that_are_one_machine_push_at_once_without_corrupting_each_other() {
    vigil_testkit::require(&["@sshfleet"]);
    use vigil_testkit::sshfleet::NOSUDO_USER;
    let fleet = SshFleet::start(&Spec::new().host("box", Kind::NoSudo));
    let inv = Inventory::load(&fleet.inventory_ini()).unwrap();
    // Two names for one sshd, logging in as a user (its ~/.cache: the root directory is the
    // first test's), so each has its own connection and its own probe and push.
    let mut a = inv.target("box").unwrap();
    a.become_root = false;
    let mut b = a.clone();
    (a.name, b.name) = ("box-a".into(), "box-b".into());
    let home = PathBuf::from(format!("/home/{NOSUDO_USER}"));
    let dir = home.join(".cache/vigil/fleet/bin");
    let _ = std::fs::remove_dir_all(home.join(".cache/vigil"));
    let sum = sha256_file(&vigil_bin());
    let state = tempfile::tempdir().unwrap();
    let ssh = ssh(state.path());
    let both = std::sync::Barrier::new(2);
    let (ra, rb) = std::thread::scope(|s| {
        let (ssh, both) = (&ssh, &both);
        let push = move |t: &vigil::fleet::inventory::Target| {
            both.wait();
            ssh.remote(t, soon(300))
        };
        let (a, b) = (&a, &b);
        let ja = s.spawn(move || push(a));
        let jb = s.spawn(move || push(b));
        (ja.join().unwrap(), jb.join().unwrap())
    });
    let want = dir.join(format!("vigil-{sum}"));
    for r in [ra, rb] {
        let r = r.unwrap();
        // Both pushed (neither found the other's copy at its probe) and both name the one file.
        assert_eq!((PathBuf::from(&r.path), r.pushed, r.memfd), (want.clone(), true, false), "{r:?}");
    }
    assert_eq!(sha256_file(&want), sum, "the copy two pushes made at once is damaged");
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec![format!("vigil-{sum}")], "temporary copies left");
    // And it runs there.
    let (code, out) = fleet.ssh("box", &format!("{} --version", want.display()), 60);
    assert_eq!((code, out.trim()), (0, format!("vigil {}", env!("CARGO_PKG_VERSION")).as_str()));
    std::fs::remove_dir_all(home.join(".cache/vigil")).unwrap();
}
