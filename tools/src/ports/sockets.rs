//! The one way to list a host's listening sockets: [`listeners`].
//!
//! On the live host the table comes from the kernel through
//! `NETLINK_SOCK_DIAG` ([`super::diag`]), with each socket's bound device and
//! IPv6-only flag; when netlink is unavailable it falls back to
//! `/proc/net/{tcp,tcp6,udp,udp6}` and says so (a not-checked finding: device
//! and v6only are then unknown). An audited root is not running: its
//! `ROOT/proc/net` tables are all there is, and a root without them (an
//! offline image) has no sockets to list, which is an error the review shows
//! as "not checked". Owners come from [`super::owners`], walked while the
//! table is read. [`listeners`] has no side effect beyond reading. The
//! confined worker has its own empty network namespace and cannot read other
//! processes' descriptors, so there it asks its parent, which reads the same
//! way ([`crate::broker::Fact::Listeners`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use procfs_core::net::{TcpNetEntries, TcpState, UdpNetEntries};
use procfs_core::{ExplicitSystemInfo, FromReadSI};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::owners::{read_owner, walk_proc};
use super::{Listener, PortsFacts, Scope, service_name};
use crate::broker::{Fact, FactAnswer, FactError};
use crate::finding::{Category, Finding};
use crate::host::Host;
use crate::tool::ToolError;

/// Where the socket table was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The kernel's table through `NETLINK_SOCK_DIAG`, as `ss` reads it (bound devices and IPv6-only flags known).
    #[default]
    Netlink,
    /// `/proc/net/{tcp,tcp6,udp,udp6}` (bound devices and IPv6-only flags unknown).
    ProcNet,
}

/// One listening socket of the kernel's table, before its owner is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// Local address and port.
    pub addr: SocketAddr,
    /// The interface it is bound to (`SO_BINDTODEVICE`), when it is.
    pub device: Option<String>,
    /// For an IPv6 socket: IPv6-only; `None` when unknown (read from `/proc/net`).
    pub v6only: Option<bool>,
    /// Owner's uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
}

/// What a table read gives: the sockets, where they came from, and what could not be read.
pub type Table = (Vec<Socket>, Source, Vec<Finding>);

/// The listening sockets alone, without their owners: the same table
/// [`listeners`] reads (netlink on the live host, else `ROOT/proc/net`), for
/// a caller that looks for one socket's holder itself.
/// In the confined worker the parent reads it, as a brokered fact.
pub fn table(host: &Host) -> Result<Table, ToolError> {
    match host.ask_parent(Fact::SocketTable) {
        None => read_table(host, super::diag::dump),
        Some(Ok(FactAnswer::SocketTable { table, findings })) => {
            let wire: WireTable = serde_json::from_value(table)
                .map_err(|e| ToolError::Failed(format!("the parent's socket table does not parse: {e}")))?;
            let sockets = wire.sockets.into_iter().filter_map(WireSocket::into_socket).collect();
            Ok((sockets, wire.source, findings))
        }
        Some(Ok(_)) => Err(ToolError::Failed("the parent answered the socket table with something else".into())),
        Some(Err(FactError::NotFound { what } | FactError::Failed { why: what })) => {
            Err(ToolError::Failed(format!("the socket table (read by the parent): {what}")))
        }
    }
}

/// The parent's side of [`Fact::SocketTable`]: [`table`] on its live host, as JSON.
pub fn table_answer(host: &Host) -> Result<(serde_json::Value, Vec<Finding>), ToolError> {
    let (sockets, source, findings) = read_table(host, super::diag::dump)?;
    let wire = WireTable { sockets: sockets.into_iter().map(WireSocket::from).collect(), source };
    let json = serde_json::to_value(&wire).map_err(|e| ToolError::Failed(e.to_string()))?;
    Ok((json, findings))
}

/// [`Table`] as it crosses from the parent to the worker.
#[derive(Serialize, Deserialize)]
struct WireTable {
    sockets: Vec<WireSocket>,
    source: Source,
}

/// [`Socket`] as it crosses from the parent to the worker.
#[derive(Serialize, Deserialize)]
struct WireSocket {
    proto: String,
    addr: SocketAddr,
    device: Option<String>,
    v6only: Option<bool>,
    uid: u32,
    inode: u64,
}

impl From<Socket> for WireSocket {
    fn from(s: Socket) -> WireSocket {
        WireSocket {
            proto: s.proto.into(),
            addr: s.addr,
            device: s.device,
            v6only: s.v6only,
            uid: s.uid,
            inode: s.inode,
        }
    }
}

impl WireSocket {
    /// Back to a [`Socket`]; a protocol other than TCP or UDP is dropped.
    fn into_socket(self) -> Option<Socket> {
        let proto = match self.proto.as_str() {
            "tcp" => "tcp",
            "udp" => "udp",
            _ => return None,
        };
        Some(Socket {
            proto,
            addr: self.addr,
            device: self.device,
            v6only: self.v6only,
            uid: self.uid,
            inode: self.inode,
        })
    }
}

/// The socket inodes process `pid` holds (its `fd` links), empty when they cannot be read.
pub fn held_by(host: &Host, pid: u32) -> HashSet<u64> {
    super::owners::socket_inodes(host, pid)
}

/// Every listening TCP socket and unconnected UDP socket with its owner, plus
/// not-checked findings for tables that could not be read. Errors only when no
/// socket table is readable at all (an offline image without `/proc`).
///
/// The socket table and the `/proc/*/fd` walk run at once: the walk records
/// every socket it meets until the table says which inodes are listening, then
/// only those, and stops once each has its owner.
pub fn listeners(host: &Host) -> Result<(PortsFacts, Vec<Finding>), ToolError> {
    listeners_then(host, |_| {})
}

/// [`listeners`], calling `public` as soon as the table is read, while the owners
/// are still being looked for, with whether some socket is reachable from other
/// machines: `list_open_ports` starts reading the firewall then, and only then. In
/// the confined worker the parent reads the table and its owners as one brokered
/// fact, and `public` is called once that answer is in.
pub fn listeners_then(host: &Host, public: impl FnOnce(bool)) -> Result<(PortsFacts, Vec<Finding>), ToolError> {
    match host.ask_parent(Fact::Listeners) {
        None => listeners_from(host, super::diag::dump, |table| {
            public(table.iter().any(|s| scope_of(s.addr.ip(), s.device.as_deref()) != Scope::Loopback))
        }),
        Some(Ok(FactAnswer::Listeners { facts, inodes, owners, findings })) => {
            let mut facts: PortsFacts = serde_json::from_str(facts.get())
                .map_err(|e| ToolError::Failed(format!("the parent's socket table does not parse: {e}")))?;
            for (l, inode) in facts.listeners.iter_mut().zip(inodes) {
                l.inode = inode;
                if let Some((process, command)) = l.pid.and_then(|pid| owners.get(&pid)) {
                    (l.process, l.command) = (process.clone(), command.clone());
                }
            }
            public(facts.listeners.iter().any(|l| l.scope != Scope::Loopback));
            Ok((facts, findings))
        }
        Some(Ok(_)) => Err(ToolError::Failed("the parent answered the socket table with something else".into())),
        Some(Err(FactError::NotFound { what } | FactError::Failed { why: what })) => {
            Err(ToolError::Failed(format!("the socket table (read by the parent): {what}")))
        }
    }
}

/// The live host's listening TCP sockets, without owners: `(address, IPv6-only)`. What the
/// parent checks a brokered HTTP probe against ([`super::answer_probe`]).
pub(super) fn tcp_listening(host: &Host) -> Result<Vec<(SocketAddr, Option<bool>)>, ToolError> {
    let (sockets, _, _) = read_table(host, super::diag::dump)?;
    Ok(sockets.into_iter().filter(|s| s.proto == "tcp").map(|s| (s.addr, s.v6only)).collect())
}

/// [`listeners_then`] with the netlink dump given (a test makes it fail to see the fallback).
fn listeners_from(
    host: &Host,
    dump: impl FnOnce() -> std::io::Result<Vec<super::diag::DiagSocket>>,
    seen: impl FnOnce(&[Socket]),
) -> Result<(PortsFacts, Vec<Finding>), ToolError> {
    let wanted_cell: OnceLock<HashSet<u64>> = OnceLock::new();
    let proc = host.kernel_proc();
    let (table, walked) = std::thread::scope(|s| {
        let walker = s.spawn(|| walk_proc(host, proc.as_ref(), &wanted_cell));
        let table = read_table(host, dump);
        let wanted = match &table {
            Ok((sockets, _, _)) => {
                seen(sockets);
                sockets.iter().map(|s| s.inode).filter(|i| *i != 0).collect()
            }
            Err(_) => HashSet::new(),
        };
        let _ = wanted_cell.set(wanted);
        (table, walker.join())
    });
    let (sockets, source, findings) = table?;
    let (lowest, mut read, unreadable) = walked.unwrap_or_default();
    // Owners found before the walk knew what it was looking for are read now.
    for s in &sockets {
        if let Some(pid) = lowest.get(&s.inode) {
            read.entry(*pid).or_insert_with(|| read_owner(host, proc.as_ref(), *pid));
        }
    }
    let users = crate::users::uid_names(host);
    let mut listeners: Vec<Listener> = sockets
        .into_iter()
        .map(|s| {
            let owner = lowest.get(&s.inode).and_then(|pid| read.get(pid));
            Listener {
                service: service_name(s.proto, s.addr.port()).map(str::to_string),
                address: s.addr.ip().to_string(),
                port: s.addr.port(),
                scope: scope_of(s.addr.ip(), s.device.as_deref()),
                pid: owner.map(|o| o.pid),
                process: owner.map(|o| o.name.clone()),
                command: owner.map(|o| o.cmdline.clone()),
                user: users.get(&s.uid).cloned().unwrap_or_else(|| s.uid.to_string()),
                firewall: None,
                http_probe: None,
                proto: s.proto.to_string(),
                device: s.device,
                v6only: s.v6only,
                inode: s.inode,
            }
        })
        .collect();
    let key = |l: &Listener| (l.port, l.proto.clone(), l.address.clone(), l.device.clone(), l.v6only);
    listeners.sort_by_key(key);
    listeners.dedup_by(|a, b| key(a) == key(b) && a.pid == b.pid);
    Ok((PortsFacts { listeners, unreadable_processes: unreadable, source, configured: Vec::new() }, findings))
}

/// Who can reach a socket bound to `ip` (and to `device`, when it is bound to one).
pub fn scope_of(ip: IpAddr, device: Option<&str>) -> Scope {
    if ip.is_loopback() || device == Some("lo") {
        return Scope::Loopback;
    }
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return scope_of(IpAddr::V4(v4), device);
        }
    }
    match (ip.is_unspecified(), device) {
        (true, Some(_)) => Scope::Interface,
        (true, None) => Scope::AllInterfaces,
        (false, _) => Scope::Specific,
    }
}

/// The live host's table from netlink (falling back to `/proc/net`, noted), an image's from `ROOT/proc/net`.
fn read_table(
    host: &Host,
    dump: impl FnOnce() -> std::io::Result<Vec<super::diag::DiagSocket>>,
) -> Result<Table, ToolError> {
    if !host.is_live() {
        return read_proc_net(host);
    }
    match dump() {
        Ok(found) => {
            let mut names: HashMap<u32, String> = HashMap::new();
            let sockets = found
                .into_iter()
                .map(|d| Socket {
                    proto: d.proto,
                    addr: d.addr,
                    device: (d.ifindex != 0).then(|| {
                        names.entry(d.ifindex).or_insert_with(|| super::diag::interface_name(d.ifindex)).clone()
                    }),
                    v6only: d.v6only,
                    uid: d.uid,
                    inode: d.inode,
                })
                .collect();
            Ok((sockets, Source::Netlink, Vec::new()))
        }
        Err(e) => {
            let (sockets, source, mut findings) = read_proc_net(host)?;
            findings.push(
                Finding::could_not_check(
                    Category::Ports,
                    "list_open_ports",
                    "which device each socket is bound to and which IPv6 sockets take IPv4 too",
                    format!(
                        "NETLINK_SOCK_DIAG is unavailable ({e}); sockets were read from /proc/net, which shows neither"
                    ),
                )
                .fix("Allow vigil a NETLINK_SOCK_DIAG socket (a seccomp or LSM policy may refuse it), as `ss` needs one."),
            );
            Ok((sockets, source, findings))
        }
    }
}

fn system_info() -> ExplicitSystemInfo {
    ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    }
}

/// The listening sockets of `ROOT/proc/net/{tcp,tcp6,udp,udp6}`; an unreadable table is a not-checked finding.
fn read_proc_net(host: &Host) -> Result<Table, ToolError> {
    let si = system_info();
    let mut sockets = Vec::new();
    let mut findings = Vec::new();
    let mut read_any = false;
    let raw = |proto: &'static str, addr: SocketAddr, uid: u32, inode: u64| Socket {
        proto,
        addr,
        device: None,
        v6only: None,
        uid,
        inode,
    };
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let path = format!("/proc/net/{table}");
        let bytes = match host.read(&path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                findings.push(Finding::could_not_check(Category::Ports, "list_open_ports", &path, e));
                continue;
            }
        };
        read_any = true;
        let parsed = if table.starts_with("tcp") {
            TcpNetEntries::from_read(&bytes[..], &si).map(|t| {
                sockets.extend(
                    t.0.into_iter()
                        .filter(|e| e.state == TcpState::Listen)
                        .map(|e| raw("tcp", e.local_address, e.uid, e.inode)),
                )
            })
        } else {
            UdpNetEntries::from_read(&bytes[..], &si).map(|t| {
                sockets.extend(
                    t.0.into_iter()
                        .filter(|e| e.remote_address.ip().is_unspecified() && e.remote_address.port() == 0)
                        .map(|e| raw("udp", e.local_address, e.uid, e.inode)),
                )
            })
        };
        if let Err(e) = parsed {
            findings.push(Finding::could_not_check(Category::Ports, "list_open_ports", &path, e));
        }
    }
    if !read_any {
        return Err(ToolError::Failed(format!(
            "no socket table under {}/proc/net is readable: is /proc mounted?",
            host.root().display()
        )));
    }
    Ok((sockets, Source::ProcNet, findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_netlink_the_live_table_comes_from_proc_net_and_says_what_is_unknown() {
        let refused = || Err(std::io::Error::from_raw_os_error(libc::EPERM));
        let (facts, findings) = listeners_from(&Host::live(), refused, |_| {}).unwrap();
        assert_eq!(facts.source, Source::ProcNet);
        assert!(facts.listeners.iter().all(|l| l.device.is_none() && l.v6only.is_none()));
        let f = findings.iter().find(|f| f.id == "ports.check-failed").unwrap();
        assert!(f.evidence[0].contains("NETLINK_SOCK_DIAG is unavailable"), "{f:?}");
        assert!(f.title.contains("which device each socket is bound to"), "{f:?}");
        // With netlink, nothing is missing.
        let (facts, findings) = listeners(&Host::live()).unwrap();
        assert_eq!(facts.source, Source::Netlink);
        assert!(findings.is_empty(), "{findings:?}");
    }
}
