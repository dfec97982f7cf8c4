//! Where a site's database credentials may be sent: only to the real database server.
//!
//! `DB_HOST` is written by the site's owner, who may be an attacker: pointed
//! at a listener of their own, it would receive whatever password vigil hands
//! the MariaDB client (a neighbour's, if a config file could be made to
//! include theirs), and the client would even send it in clear text if the
//! listener asked for `mysql_clear_password`. So before any client starts,
//! [`verify`] checks who is on the other end, without sending a byte of
//! authentication: a unix socket must have a database server process
//! (`mariadbd`/`mysqld` run by root or the `mysql` account) as its peer
//! (`SO_PEERCRED` after connecting), inside directories no one else can
//! write; a loopback TCP port must be a listener held by such a process (the
//! socket table's inode found among the server's descriptors; the table is
//! [`crate::ports::sockets::table`], so an IPv6-only `::` listener is not taken
//! for one that answers 127.0.0.1, nor one bound to another device than `lo`
//! for one that answers on loopback). Anything else
//! (another host, a listener owned by a tenant, nothing listening, an answer
//! we cannot read) is [`NotChecked`] with the reason and no connection is
//! made. The client is then pinned to exactly what was verified and told to
//! load no client-side authentication plugins ([`CLIENT_HARDENING`]), so a
//! server cannot switch it to clear text, PAM dialog or RSA key exchange.
//! The client connects again a moment later; nobody else can take the place
//! in between: the socket's directories are writable only by root or the
//! server, and a port the server holds cannot be bound by another account
//! while the server runs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::host::Host;
use crate::ports::sockets::{self, Socket};

/// A directory where no client plugin can ever exist (nobody, root included,
/// can create files under `/proc`): the client falls back to its built-in
/// `mysql_native_password` and refuses any request for another plugin.
pub const NO_PLUGIN_DIR: &str = "/proc/vigil-no-client-plugins";

/// Client options that keep the password from leaving in clear text: no
/// loadable authentication plugins (`mysql_clear_password`, `dialog`,
/// `sha256_password`, `caching_sha2_password` are all plugins), native
/// challenge-response authentication from the first packet.
pub const CLIENT_HARDENING: [&str; 2] =
    ["--plugin-dir=/proc/vigil-no-client-plugins", "--default-auth=mysql_native_password"];

/// [`CLIENT_HARDENING`] as `[client]` option-file lines.
pub const OPTION_FILE_HARDENING: &str =
    "plugin-dir=/proc/vigil-no-client-plugins\ndefault-auth=mysql_native_password\n";

/// The MariaDB/MySQL client's socket when `DB_HOST` is `localhost` without one (Debian's default).
pub const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// Program names of a database server.
const SERVER_NAMES: [&str; 2] = ["mariadbd", "mysqld"];

/// Accounts a database server may run as (besides root).
const SERVER_ACCOUNTS: [&str; 2] = ["mysql", "mariadb"];

/// Where the connection goes, exactly as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A unix socket (its canonical path).
    Socket(String),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

/// A verified database server endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to connect.
    pub target: Target,
    /// The server process answering there.
    pub pid: u32,
    /// Its program name.
    pub program: String,
    /// The account it runs as.
    pub user: String,
}

impl Endpoint {
    /// Client arguments pinning the connection to this endpoint, with [`CLIENT_HARDENING`].
    pub fn client_args(&self) -> Vec<String> {
        let mut a: Vec<String> = CLIENT_HARDENING.iter().map(|s| s.to_string()).collect();
        match &self.target {
            Target::Socket(p) => {
                a.push("--protocol=SOCKET".into());
                a.push("--host=localhost".into());
                a.push(format!("--socket={p}"));
            }
            Target::Tcp(addr) => {
                a.push("--protocol=TCP".into());
                a.push(format!("--host={}", addr.ip()));
                a.push(format!("--port={}", addr.port()));
            }
        }
        a
    }

    /// The endpoint as a `DB_HOST` value ([`parse_db_host`] reads it back to the same place):
    /// `localhost:/path/to.sock` or `127.0.0.1:3306` / `[::1]:3306`.
    pub fn db_host(&self) -> String {
        match &self.target {
            Target::Socket(p) => format!("localhost:{p}"),
            Target::Tcp(SocketAddr::V4(a)) => format!("{}:{}", a.ip(), a.port()),
            Target::Tcp(SocketAddr::V6(a)) => format!("[{}]:{}", a.ip(), a.port()),
        }
    }

    /// `[client]` option-file lines pinning the connection to this endpoint, with
    /// [`OPTION_FILE_HARDENING`] (for a file that already has `host`/`port`/`socket` from
    /// [`Endpoint::db_host`]).
    pub fn option_lines(&self) -> String {
        let protocol = match self.target {
            Target::Socket(_) => "SOCKET",
            Target::Tcp(_) => "TCP",
        };
        format!("protocol={protocol}\n{OPTION_FILE_HARDENING}")
    }

    /// `mariadbd (pid 123, user mysql) on /run/mysqld/mysqld.sock`.
    pub fn describe(&self) -> String {
        let at = match &self.target {
            Target::Socket(p) => p.clone(),
            Target::Tcp(a) => a.to_string(),
        };
        format!("{} (pid {}, user {}) on {at}", self.program, self.pid, self.user)
    }
}

/// Why no connection was made: the credentials were not sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotChecked(pub String);

impl std::fmt::Display for NotChecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotChecked {}

fn no(why: impl Into<String>) -> NotChecked {
    NotChecked(why.into())
}

/// A process that may be a database server.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    uid: u32,
    name: String,
}

/// Database server processes, and the accounts trusted to run one.
struct Servers {
    trusted: Vec<Proc>,
    untrusted: Vec<Proc>,
    accounts: HashMap<u32, String>,
}

impl Servers {
    fn is_trusted_uid(&self, uid: u32) -> bool {
        self.accounts.contains_key(&uid)
    }

    fn user(&self, uid: u32, passwd: &HashMap<u32, String>) -> String {
        passwd.get(&uid).cloned().unwrap_or_else(|| format!("uid {uid}"))
    }

    fn by_pid(&self, pid: u32) -> Option<&Proc> {
        self.trusted.iter().find(|p| p.pid == pid)
    }
}

/// `uid → name` from the host's `/etc/passwd`.
fn passwd(host: &Host) -> HashMap<u32, String> {
    let text = host.read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// The effective uid of a process (every uid it holds must agree, or `None`).
fn proc_uid(host: &Host, pid: u32) -> Option<u32> {
    let status = host.read_to_string(&format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let uids: BTreeSet<u32> = line.split_whitespace().filter_map(|u| u.parse().ok()).collect();
    (uids.len() == 1).then(|| uids.into_iter().next()).flatten()
}

/// The program a process runs: its executable's name when readable, else `comm`.
fn proc_name(host: &Host, pid: u32) -> String {
    if let Ok(exe) = host.read_link(&format!("/proc/{pid}/exe")) {
        let exe = exe.trim_end_matches(" (deleted)");
        return exe.rsplit('/').next().unwrap_or(exe).to_string();
    }
    host.read_to_string(&format!("/proc/{pid}/comm")).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn servers(host: &Host, passwd: &HashMap<u32, String>) -> Servers {
    let mut accounts: HashMap<u32, String> = HashMap::from([(0, "root".to_string())]);
    for (uid, name) in passwd {
        if SERVER_ACCOUNTS.contains(&name.as_str()) {
            accounts.insert(*uid, name.clone());
        }
    }
    let mut s = Servers { trusted: Vec::new(), untrusted: Vec::new(), accounts };
    for entry in host.read_dir("/proc").unwrap_or_default() {
        let Ok(pid) = entry.parse::<u32>() else {
            continue;
        };
        let comm = host.read_to_string(&format!("/proc/{pid}/comm")).map(|c| c.trim().to_string()).unwrap_or_default();
        let name = proc_name(host, pid);
        if !SERVER_NAMES.contains(&name.as_str()) && !SERVER_NAMES.contains(&comm.as_str()) {
            continue;
        }
        let Some(uid) = proc_uid(host, pid) else {
            continue;
        };
        // `comm` is the process's own choice; the executable decides when it can be read.
        let p = Proc { pid, uid, name: name.clone() };
        if SERVER_NAMES.contains(&name.as_str()) && s.is_trusted_uid(uid) {
            s.trusted.push(p);
        } else {
            s.untrusted.push(p);
        }
    }
    s
}

/// Check that credentials for `db_host` (a `DB_HOST` value) would reach the real database server.
pub fn verify(host: &Host, db_host: &str) -> Result<Endpoint, NotChecked> {
    if !host.is_live() {
        return Err(no("not checked: the database is only contacted on the live host"));
    }
    let (h, port, socket) = parse_db_host(db_host);
    let name = h.unwrap_or_default();
    let passwd = passwd(host);
    if name.is_empty() || name.eq_ignore_ascii_case("localhost") {
        // The client (like PHP) takes `localhost` to mean the unix socket, whatever the port.
        let path = socket.unwrap_or_else(|| DEFAULT_SOCKET.to_string());
        return verify_socket(host, &path, &passwd);
    }
    let ip: IpAddr = match name.parse() {
        Ok(ip) => ip,
        Err(_) => {
            return Err(no(format!(
                "not checked: DB_HOST `{db_host}` names a host, not a local socket or loopback address; the site's \
                 credentials are only sent to a database server verified on this machine"
            )));
        }
    };
    if !ip.is_loopback() {
        return Err(no(format!(
            "not checked: DB_HOST `{db_host}` is not on this machine; the site's credentials are only sent to a \
             database server verified on this machine"
        )));
    }
    if socket.is_some() {
        return Err(no(format!("not checked: DB_HOST `{db_host}` names both an address and a socket")));
    }
    verify_tcp(host, SocketAddr::new(ip, port.unwrap_or(3306)), &passwd)
}

/// Every directory above `path` (and `path` itself) must be owned by a trusted account and
/// not writable by others (a root-owned sticky directory such as `/tmp` is fine: nobody else
/// can replace an entry in it), so no one else can swap the socket between check and use.
fn safe_location(path: &str, trusted: &dyn Fn(u32) -> bool) -> Result<(), String> {
    let mut p = std::path::Path::new(path);
    let meta = std::fs::symlink_metadata(p).map_err(|e| format!("{path}: {e}"))?;
    if !trusted(meta.uid()) {
        return Err(format!("{path} belongs to uid {}, not to the database server's account", meta.uid()));
    }
    while let Some(parent) = p.parent() {
        let m = std::fs::symlink_metadata(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let mode = m.permissions().mode();
        let sticky_root = mode & 0o1000 != 0 && m.uid() == 0;
        if !trusted(m.uid()) || (mode & 0o022 != 0 && !sticky_root) {
            return Err(format!(
                "{} (owner uid {}, mode {:o}) can be changed by another account",
                parent.display(),
                m.uid(),
                mode & 0o7777
            ));
        }
        p = parent;
    }
    Ok(())
}

fn verify_socket(host: &Host, path: &str, passwd: &HashMap<u32, String>) -> Result<Endpoint, NotChecked> {
    if !path.starts_with('/') {
        return Err(no(format!("not checked: the socket `{path}` is not an absolute path")));
    }
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p.display().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(no(format!("database not reached: no socket at {path}")));
        }
        Err(e) => return Err(no(format!("database not reached: {path}: {e}"))),
    };
    let servers = servers(host, passwd);
    safe_location(&real, &|uid| servers.is_trusted_uid(uid)).map_err(|e| {
        no(format!("not checked: the socket {path} is not in a place only the database server controls: {e}"))
    })?;
    let stream = std::os::unix::net::UnixStream::connect(&real)
        .map_err(|e| no(format!("database not reached: cannot connect to {path}: {e}")))?;
    let (pid, uid) = peer(&stream).map_err(|e| no(format!("not checked: who serves {path} is unknown: {e}")))?;
    drop(stream);
    // The peer's credentials are the server's when it listened (perhaps still root, before it
    // dropped to its account): both that and the process now must be trusted.
    match servers.by_pid(pid) {
        Some(p) if servers.is_trusted_uid(uid) => Ok(Endpoint {
            target: Target::Socket(real),
            pid,
            program: p.name.clone(),
            user: servers.user(p.uid, passwd),
        }),
        _ => Err(no(format!(
            "not checked: {path} is served by pid {pid} ({}, user {}), not by a database server (mariadbd/mysqld \
             run by root or mysql); the site's credentials were not sent",
            proc_name(host, pid),
            servers.user(uid, passwd)
        ))),
    }
}

/// The peer's pid and uid on a connected unix socket.
fn peer(stream: &std::os::unix::net::UnixStream) -> std::io::Result<(u32, u32)> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given, and the descriptor is open.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((u32::try_from(cred.pid).unwrap_or(0), cred.uid))
}

/// Listening TCP sockets, from the one socket reader ([`crate::ports::sockets::table`]:
/// netlink on the live host, so each socket's bound device and IPv6-only flag are known).
fn tcp_listeners(host: &Host) -> Result<Vec<Socket>, String> {
    let (sockets, _, _) = sockets::table(host).map_err(|e| e.to_string())?;
    Ok(sockets.into_iter().filter(|s| s.proto == "tcp").collect())
}

/// The listeners a connection to the loopback address `to` reaches: those bound to that very
/// address, else the wildcard ones. A socket bound to another device than `lo` never sees a
/// loopback connection, nor does an IPv6-only `::` socket an IPv4 one; when that is unknown
/// (`/proc/net` has no such flag) the socket counts as reached.
fn reached(listeners: &[Socket], to: SocketAddr) -> Vec<&Socket> {
    let same = |a: IpAddr| match (a, to.ip()) {
        (IpAddr::V6(v6), IpAddr::V4(v4)) => v6.to_ipv4_mapped() == Some(v4),
        (a, b) => a == b,
    };
    let on_port: Vec<&Socket> = listeners
        .iter()
        .filter(|s| s.addr.port() == to.port() && s.device.as_deref().is_none_or(|d| d == "lo"))
        .collect();
    let exact: Vec<&Socket> = on_port.iter().copied().filter(|s| same(s.addr.ip())).collect();
    if !exact.is_empty() {
        return exact;
    }
    on_port
        .into_iter()
        .filter(|s| match (s.addr.ip(), to.ip()) {
            (IpAddr::V4(w), IpAddr::V4(_)) => w == Ipv4Addr::UNSPECIFIED,
            (IpAddr::V6(w), IpAddr::V4(_)) => w == Ipv6Addr::UNSPECIFIED && s.v6only != Some(true),
            (IpAddr::V6(w), IpAddr::V6(_)) => w == Ipv6Addr::UNSPECIFIED,
            _ => false,
        })
        .collect()
}

fn verify_tcp(host: &Host, to: SocketAddr, passwd: &HashMap<u32, String>) -> Result<Endpoint, NotChecked> {
    let listeners = tcp_listeners(host).map_err(|e| no(format!("not checked: who listens on {to} is unknown: {e}")))?;
    let reached = reached(&listeners, to);
    if reached.is_empty() {
        return Err(no(format!("database not reached: nothing listens on {to}")));
    }
    let servers = servers(host, passwd);
    let held: Vec<(&Proc, HashSet<u64>)> = servers.trusted.iter().map(|p| (p, sockets::held_by(host, p.pid))).collect();
    let mut found = None;
    for s in &reached {
        match held.iter().find(|(_, inodes)| inodes.contains(&s.inode)).filter(|_| servers.is_trusted_uid(s.uid)) {
            Some((p, _)) => found = found.or(Some(*p)),
            None => {
                let pretender = servers.untrusted.iter().find(|p| sockets::held_by(host, p.pid).contains(&s.inode));
                let by = pretender.map(|p| format!(", process {} pid {}", p.name, p.pid)).unwrap_or_default();
                return Err(no(format!(
                    "not checked: {} is not the database server's listener (it belongs to user {}{by}); \
                     the site's credentials were not sent",
                    s.addr,
                    servers.user(s.uid, passwd)
                )));
            }
        }
    }
    let p = found.ok_or_else(|| no(format!("not checked: who listens on {to} is unknown")))?;
    Ok(Endpoint { target: Target::Tcp(to), pid: p.pid, program: p.name.clone(), user: servers.user(p.uid, passwd) })
}

/// Where `DB_HOST` points: `host`, `host:port`, `host:/socket`, `[v6]:port`.
pub fn parse_db_host(h: &str) -> (Option<String>, Option<u16>, Option<String>) {
    let h = h.trim();
    if h.is_empty() {
        return (None, None, None);
    }
    if let Some(rest) = h.strip_prefix('[') {
        if let Some((addr, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (Some(addr.to_string()), port, None);
        }
    }
    match h.split_once(':') {
        Some((host, tail)) if tail.starts_with('/') => (Some(host.to_string()), None, Some(tail.to_string())),
        Some((host, tail)) if h.matches(':').count() == 1 => (Some(host.to_string()), tail.parse().ok(), None),
        _ => (Some(h.to_string()), None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn remote_and_named_hosts_are_never_contacted() {
        let host = Host::live();
        for h in ["db.example.com", "10.0.0.5:3306", "192.168.1.9", "[2001:db8::1]:3306", "db:3306"] {
            let e = verify(&host, h).unwrap_err();
            assert!(e.0.starts_with("not checked"), "{h}: {e}");
            assert!(e.0.contains(h), "the reason names DB_HOST: {e}");
        }
        let e = verify(&Host::at("/tmp/nonexistent-root"), "localhost").unwrap_err();
        assert!(e.0.contains("live host"), "{e}");
    }

    fn sock(addr: &str, uid: u32, inode: u64) -> Socket {
        Socket { proto: "tcp", addr: sa(addr), device: None, v6only: None, uid, inode }
    }

    fn inodes(v: Vec<&Socket>) -> Vec<u64> {
        v.iter().map(|s| s.inode).collect()
    }

    #[test]
    fn a_specific_listener_wins_over_the_wildcard() {
        let l = vec![sock("0.0.0.0:3306", 105, 1), sock("127.0.0.1:3306", 1000, 2), sock("[::]:3307", 105, 3)];
        assert_eq!(inodes(reached(&l, sa("127.0.0.1:3306"))), vec![2]);
        assert_eq!(inodes(reached(&l, sa("127.0.0.2:3306"))), vec![1]);
        assert_eq!(inodes(reached(&l, sa("127.0.0.1:3307"))), vec![3]);
        let mapped = vec![sock("[::ffff:127.0.0.1]:3308", 7, 9)];
        assert_eq!(reached(&mapped, sa("127.0.0.1:3308")).len(), 1);
        assert!(reached(&l, sa("127.0.0.1:3399")).is_empty());
    }

    #[test]
    fn ipv6_only_and_device_bound_listeners_are_reached_as_the_kernel_routes() {
        let v6only = Socket { v6only: Some(true), ..sock("[::]:3307", 1000, 4) };
        assert!(reached(std::slice::from_ref(&v6only), sa("127.0.0.1:3307")).is_empty());
        assert_eq!(inodes(reached(std::slice::from_ref(&v6only), sa("[::1]:3307"))), vec![4]);
        // Dual-stack, or not known to be IPv6-only (read from /proc/net): it takes IPv4 too.
        for v in [Some(false), None] {
            let s = Socket { v6only: v, ..v6only.clone() };
            assert_eq!(inodes(reached(&[s], sa("127.0.0.1:3307"))), vec![4]);
        }
        let eth = Socket { device: Some("eth0".into()), ..sock("0.0.0.0:3306", 1000, 5) };
        let lo = Socket { device: Some("lo".into()), ..sock("0.0.0.0:3306", 1000, 6) };
        assert!(reached(std::slice::from_ref(&eth), sa("127.0.0.1:3306")).is_empty());
        assert_eq!(inodes(reached(&[eth, lo], sa("127.0.0.1:3306"))), vec![6]);
    }

    /// A listening `[::]:0` socket with `IPV6_V6ONLY` set, and its port.
    fn v6only_listener() -> (std::os::fd::OwnedFd, u16) {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain socket(2); the descriptor is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // SAFETY: `one` is a c_int valid for the length passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        // SAFETY: an all-zero sockaddr_in6 is `[::]:0`.
        let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: `addr` is a sockaddr_in6 valid for `len` bytes for each call.
        unsafe {
            assert_eq!(libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len), 0);
            assert_eq!(libc::listen(fd.as_raw_fd(), 8), 0);
            assert_eq!(libc::getsockname(fd.as_raw_fd(), (&raw mut addr).cast(), &mut len), 0);
        }
        (fd, u16::from_be(addr.sin6_port))
    }

    /// Real sockets, held by this test (not a database server): the kernel's table as
    /// `ports::sockets` reads it decides who is reached, and nothing is sent to them.
    #[test]
    fn a_listener_of_another_program_is_refused_and_an_ipv6_only_one_is_not_reached_over_ipv4() {
        let tenant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = tenant.local_addr().unwrap();
        let e = verify(&Host::live(), &at.to_string()).unwrap_err();
        assert!(e.0.contains(&format!("{at} is not the database server's listener")), "{e}");

        // An IPv6-only port the kernel refuses IPv4 connections to: no IPv4 listener of
        // another program holds the same number (on a busy machine one may; take another).
        let (_v6, port) = (0..50)
            .map(|_| v6only_listener())
            .find(|(_, port)| std::net::TcpStream::connect(("127.0.0.1", *port)).is_err())
            .expect("an IPv6-only port with no IPv4 listener on the same number");
        let e = verify(&Host::live(), &format!("127.0.0.1:{port}")).unwrap_err();
        assert_eq!(e.0, format!("database not reached: nothing listens on 127.0.0.1:{port}"));
        let e = verify(&Host::live(), &format!("[::1]:{port}")).unwrap_err();
        assert!(e.0.contains(&format!("[::]:{port} is not the database server's listener")), "{e}");
    }

    #[test]
    fn the_client_is_pinned_and_refuses_plugins() {
        let e = Endpoint {
            target: Target::Tcp(sa("127.0.0.1:3306")),
            pid: 1,
            program: "mariadbd".into(),
            user: "mysql".into(),
        };
        let a = e.client_args();
        assert!(a.contains(&"--protocol=TCP".to_string()) && a.contains(&"--port=3306".to_string()), "{a:?}");
        assert!(a.contains(&format!("--plugin-dir={NO_PLUGIN_DIR}")));
        assert!(OPTION_FILE_HARDENING.contains(NO_PLUGIN_DIR));
        assert_eq!(parse_db_host(&e.db_host()), (Some("127.0.0.1".into()), Some(3306), None));
        let s = Endpoint { target: Target::Socket("/run/mysqld/mysqld.sock".into()), ..e };
        assert_eq!(
            parse_db_host(&s.db_host()),
            (Some("localhost".into()), None, Some("/run/mysqld/mysqld.sock".into()))
        );
        assert!(s.client_args().contains(&"--protocol=SOCKET".to_string()));
        // Nobody can put a plugin there.
        assert!(std::fs::create_dir(NO_PLUGIN_DIR).is_err());
    }
}
