//! `vigil-sshfleet`: a fleet of real `sshd` hosts on loopback for the fleet
//! benchmark (`bench/fleet`): the same kit the fleet's tests use
//! (`vigil_testkit::sshfleet`), so the benchmark's hosts are the tests' hosts.
//!
//! Starts `--hosts N` root hosts (`host001`…), each its own `sshd` with its
//! own host key (with `--kind noexec`, each in a mount namespace where the push
//! directory is `noexec`, so vigil runs there from a memfd), in `--dir DIR`
//! (created; it must not exist), optionally with
//! `--root PATH` as every host's `vigil_root`; writes there the client key, the
//! `ssh_config` and the inventories (`inventory.ini`, `.yml`, `.json`); prints
//! `ready HOSTS SECONDS` (the start-up time) and waits for SIGTERM, SIGINT or
//! SIGHUP, or for its parent to die (`PR_SET_PDEATHSIG`), then stops every
//! `sshd` and their sessions and removes DIR.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use vigil_bench::Flags;
use vigil_testkit::sshfleet::{Kind, Spec, SshFleet};

const USAGE: &str = "usage: vigil-sshfleet --hosts N --dir DIR [--root PATH] [--kind root|noexec]\n  \
runs N loopback sshd hosts (inventory in DIR) until SIGTERM; needs root, sshd, ssh-keygen";

fn main() {
    if let Err(e) = run() {
        eprintln!("vigil-sshfleet: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let flags = Flags::parse(USAGE)?;
    flags.check_known(&["hosts", "dir", "root", "kind"])?;
    let n = usize::try_from(flags.num("hosts", 10)?).map_err(|e| format!("--hosts: {e}"))?;
    let dir = Path::new(flags.required("dir")?);
    if dir.exists() {
        return Err(format!("{} exists already: name a directory to create", dir.display()));
    }
    let root = flags.str("root").map(Path::new);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root (sshd, and logging in as root)".into());
    }
    let started = Instant::now();
    // The kit fails by panicking (it is test support); a failed start stops what it started as it unwinds.
    let kind = match flags.str("kind").unwrap_or("root") {
        "root" => Kind::Root,
        "noexec" => Kind::NoexecBin,
        other => return Err(format!("--kind: `{other}` is not root or noexec\n{USAGE}")),
    };
    let fleet = SshFleet::start_in(&Spec::hosts_of(kind, n, root), dir);
    let secs = started.elapsed().as_secs_f64();
    // After the sshd processes started: they must not inherit the blocked mask.
    let stop = vigil_bench::block_stop_signals();
    println!("ready {} {secs:.2}", fleet.hosts().len());
    let _ = std::io::stdout().flush();
    vigil_bench::wait_for_stop(&stop);
    drop(fleet);
    Ok(())
}
