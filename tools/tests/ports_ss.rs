//! Differential test: `list_open_ports`' socket table against `ss -tulpn` on this machine.
//!
//! A Python process opens the listeners the issue names (IPv4, IPv6 dual-stack,
//! IPv6-only, loopback, UDP, bound to `lo` with `SO_BINDTODEVICE` in both
//! families, two `SO_REUSEPORT` sockets on one port) and forks, so every socket
//! is shared by two processes. For those ports, what `vigil_tools::ports::listeners`
//! reads must be what `ss` shows: the same addresses written the way `ss`
//! writes them (`0.0.0.0%lo`, `*` for a dual-stack `::`, `[::]` for an
//! IPv6-only one) and the lowest of the pids `ss` names.
#![expect(clippy::unwrap_used, reason = "test helpers: a failed setup step should fail the test")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use vigil_tools::Host;
use vigil_tools::ports::{Listener, Scope, Source, listeners};

const HOLDER: &str = r#"
import socket, os, sys, time
socks = []
def mk(fam, typ, addr, v6only=None, dev=None, reuse=False):
    s = socket.socket(fam, typ)
    if v6only is not None: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    if dev: s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
    if reuse: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(addr)
    if typ == socket.SOCK_STREAM: s.listen(8)
    socks.append(s)
    return s.getsockname()[1]
T, U, A4, A6 = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.AF_INET, socket.AF_INET6
ports = {
    'v4': mk(A4, T, ('0.0.0.0', 0)),
    'v6dual': mk(A6, T, ('::', 0), v6only=False),
    'v6only': mk(A6, T, ('::', 0), v6only=True),
    'v6lo': mk(A6, T, ('::1', 0)),
    'udp4': mk(A4, U, ('0.0.0.0', 0)),
    'udp6dual': mk(A6, U, ('::', 0), v6only=False),
    'udp6only': mk(A6, U, ('::', 0), v6only=True),
    'devlo': mk(A4, T, ('0.0.0.0', 0), dev='lo'),
    'devlo6': mk(A6, T, ('::', 0), dev='lo', v6only=False),
    'udpdevlo': mk(A4, U, ('0.0.0.0', 0), dev='lo'),
}
p = mk(A4, T, ('127.0.0.1', 0), reuse=True)
mk(A4, T, ('127.0.0.1', p), reuse=True)
ports['reuse'] = p
if os.fork() == 0:
    sys.stdin.read(); sys.exit(0)
print(' '.join(f'{k}={v}' for k, v in ports.items()), flush=True)
sys.stdin.read()
"#;

/// The holder process, killed with the test; its forked child exits when the test's end of stdin closes.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ss`'s way of writing a local address: `0.0.0.0%lo:80`, `*:80` (dual-stack `::`), `[::]:80`.
fn as_ss(l: &Listener) -> String {
    let ip: std::net::IpAddr = l.address.parse().unwrap();
    let host = match ip {
        std::net::IpAddr::V6(a) if a.is_unspecified() && l.v6only == Some(false) => "*".to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
        std::net::IpAddr::V4(a) => a.to_string(),
    };
    let dev = l.device.as_deref().map(|d| format!("%{d}")).unwrap_or_default();
    format!("{host}{dev}:{}", l.port)
}

fn port_of(local: &str) -> u16 {
    local.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "ss", vigil_missing = "python3"),
    ignore = "needs root, ss, python3 (ss -p and every process's fd need root; .ci/packages/base.txt)"
)]
fn listeners_match_ss_for_every_kind_of_socket() {
    vigil_testkit::require(&["root", "ss", "python3"]);
    let mut child =
        Command::new("python3").args(["-c", HOLDER]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let holder_pid = child.id();
    let out = child.stdout.take().unwrap();
    let holder = Holder(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let ports: BTreeMap<&str, u16> =
        line.split_whitespace().map(|kv| kv.split_once('=').unwrap()).map(|(k, v)| (k, v.parse().unwrap())).collect();
    assert_eq!(ports.len(), 11, "{line}");
    let ours: BTreeSet<u16> = ports.values().copied().collect();

    let (facts, findings) = listeners(&Host::live()).unwrap();
    let ss = Command::new("ss").arg("-tulpnH").output().unwrap();
    assert!(ss.status.success());
    assert_eq!(facts.source, Source::Netlink);
    assert!(findings.is_empty(), "{findings:?}");

    // ss: (proto, local address, lowest pid) for our ports.
    let mut want = BTreeSet::new();
    for l in String::from_utf8_lossy(&ss.stdout).lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let (proto, local) = (cols[0], cols[4]);
        if !ours.contains(&port_of(local)) {
            continue;
        }
        let pids: Vec<u32> = l.split("pid=").skip(1).map(|p| p.split(',').next().unwrap().parse().unwrap()).collect();
        assert_eq!(pids.len(), 2, "shared by the fork: {l}");
        want.insert((proto.to_string(), local.to_string(), pids.iter().min().copied()));
    }
    let got: BTreeSet<(String, String, Option<u32>)> =
        facts.listeners.iter().filter(|l| ours.contains(&l.port)).map(|l| (l.proto.clone(), as_ss(l), l.pid)).collect();
    assert_eq!(got, want);
    assert_eq!(want.len(), 11, "{want:?}");

    // What a user would notice: loopback-only devices are loopback, v6only is told apart.
    let find = |name: &str| facts.listeners.iter().find(|l| l.port == ports[name]).unwrap();
    for name in ["devlo", "devlo6", "udpdevlo", "v6lo", "reuse"] {
        assert_eq!(find(name).scope, Scope::Loopback, "{name}: {:?}", find(name));
    }
    for name in ["v4", "v6dual", "v6only", "udp4", "udp6only"] {
        assert_eq!(find(name).scope, Scope::AllInterfaces, "{name}");
    }
    assert_eq!(find("v6only").v6only, Some(true));
    assert_eq!(find("udp6only").v6only, Some(true));
    assert_eq!(find("v6dual").v6only, Some(false));
    assert_eq!(find("v4").v6only, None);
    assert_eq!(find("v4").pid, Some(holder_pid));
    assert_eq!(find("v4").process.as_deref(), Some("python3"));
    drop(holder);
}
