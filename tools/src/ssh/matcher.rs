//! Which settings apply to which login: sshd's `Match` semantics, replayed.
//!
//! `Match User root` with `PermitRootLogin yes` is a root login with a
//! password even when the global line says `no`; only sshd's own rules say so.
//! sshd reads its files twice. The first pass, with no connection, keeps the
//! lines outside `Match` blocks (and after `Match all`): the global settings.
//! For each connection it reads them again, applying only the lines of the
//! blocks that match (User, Group, Host, Address, LocalAddress, LocalPort;
//! comma lists, `*`/`?` wildcards, `!` negation, CIDR networks); the first
//! matching block to set a keyword wins and overrides the global value, for
//! the keywords sshd allows in a `Match`. An `Include` inside a block that does
//! not match is skipped whole, and lines before the first `Match` of the main
//! file are not re-applied. This is what `sshd -T -C user=…,addr=…` prints;
//! `tools/tests/ssh.rs` compares the two over a generated corpus.
//!
//! A review does not know where logins come from, so [`connections`] lists,
//! per account, the connections that can reach a different outcome: every
//! address a `Match Address` names, a public one, every port sshd listens on.
//! Judging the worst of them is judging what an attacker can choose.

use std::net::IpAddr;

use super::config::{Item, Settings, SshdConfig, group_list, listen_address, pattern_list};
use crate::host::wildcard_match;

/// An address on the internet (TEST-NET-3) standing for "anyone".
pub const PUBLIC_ADDRESS: &str = "203.0.113.7";
/// The same over IPv6 (a `Match Address 0.0.0.0/0` does not hold for it).
pub const PUBLIC_ADDRESS_V6: &str = "2001:db8:ffff::7";
/// An address of this server no `ListenAddress` names (TEST-NET-1).
const ANY_LOCAL_ADDRESS: &str = "192.0.2.1";
/// At most this many values per connection field (addresses, ports…) are tried.
const MAX_CANDIDATES: usize = 48;

/// Keywords sshd lets a `Match` block set (from OpenSSH 9.2's `servconf.c`);
/// any other keyword keeps its global value for every connection.
const MATCH_KEYWORDS: &[&str] = &[
    "acceptenv",
    "allowagentforwarding",
    "allowgroups",
    "allowstreamlocalforwarding",
    "allowtcpforwarding",
    "allowusers",
    "authenticationmethods",
    "authorizedkeyscommand",
    "authorizedkeyscommanduser",
    "authorizedkeysfile",
    "authorizedprincipalscommand",
    "authorizedprincipalscommanduser",
    "authorizedprincipalsfile",
    "banner",
    "casignaturealgorithms",
    "channeltimeout",
    "chrootdirectory",
    "clientalivecountmax",
    "clientaliveinterval",
    "denygroups",
    "denyusers",
    "disableforwarding",
    "exposeauthinfo",
    "forcecommand",
    "gatewayports",
    "gssapiauthentication",
    "hostbasedacceptedalgorithms",
    "hostbasedauthentication",
    "hostbasedusesnamefrompacketonly",
    "ignorerhosts",
    "ipqos",
    "kbdinteractiveauthentication",
    "kerberosauthentication",
    "loglevel",
    "logverbose",
    "maxauthtries",
    "maxsessions",
    "passwordauthentication",
    "permitemptypasswords",
    "permitlisten",
    "permitopen",
    "permitrootlogin",
    "permittty",
    "permittunnel",
    "permituserrc",
    "pubkeyacceptedalgorithms",
    "pubkeyauthentication",
    "pubkeyauthoptions",
    "rdomain",
    "rekeylimit",
    "requiredrsasize",
    "revokedkeys",
    "setenv",
    "streamlocalbindmask",
    "streamlocalbindunlink",
    "trustedusercakeys",
    "unusedconnectiontimeout",
    "x11displayoffset",
    "x11forwarding",
    "x11uselocalhost",
];

/// One login as `sshd -T -C` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The login name (`user=`).
    pub user: String,
    /// The account's groups, primary and supplementary; `None` when no such
    /// account exists (then no `Match Group` matches, as in sshd).
    pub groups: Option<Vec<String>>,
    /// The client's host name (`host=`; its address unless `UseDNS yes`).
    pub host: String,
    /// The client's address (`addr=`).
    pub addr: String,
    /// The server address connected to (`laddr=`).
    pub laddr: String,
    /// The server port connected to (`lport=`).
    pub lport: u16,
}

impl Connection {
    /// How the connection reads in evidence: `root from 203.0.113.7 to port 22`.
    pub fn describe(&self) -> String {
        let host = if self.host == self.addr { String::new() } else { format!(" ({})", self.host) };
        format!("{} from {}{host} to {} port {}", self.user, self.addr, self.laddr, self.lport)
    }
}

/// An account sshd may log in: its name, uid and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id (0 is root, whatever the name).
    pub uid: u32,
    /// Primary and supplementary groups; `None` when unknown.
    pub groups: Option<Vec<String>>,
}

impl SshdConfig {
    /// The settings sshd applies to `conn`: the global ones, overridden by the
    /// first matching `Match` block that sets each keyword a block may set.
    pub fn for_connection(&self, conn: &Connection) -> Settings {
        let mut from_blocks = Settings::default();
        let mut active = false;
        walk(&self.tree, Some(conn), Flags::MatchOnly, &mut active, &mut from_blocks);
        let mut out = self.global.clone();
        out.override_with(from_blocks, |k| MATCH_KEYWORDS.contains(&k));
        out
    }
}

/// The global settings: sshd's first pass, with no connection.
pub(crate) fn global_settings(tree: &[Item]) -> Settings {
    let mut out = Settings::default();
    let mut active = true;
    walk(tree, None, Flags::None, &mut active, &mut out);
    out
}

/// sshd's `SSHCFG_*` include flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flags {
    None,
    /// Lines before the file's first `Match` are not applied (second pass).
    MatchOnly,
    /// Included from a block that did not match: nothing in the file applies.
    NeverMatch,
}

/// One pass over the lines, as `parse_server_config_depth` does: `active` is
/// whether lines apply now, shared with the files an `Include` reads and
/// restored after each.
fn walk(items: &[Item], conn: Option<&Connection>, mut flags: Flags, active: &mut bool, out: &mut Settings) {
    for item in items {
        match item {
            Item::Set(s) => {
                if *active {
                    out.put(s);
                }
            }
            Item::Match(criteria) => {
                let value = criteria_match(criteria, conn);
                *active = flags != Flags::NeverMatch && value;
                if flags == Flags::MatchOnly {
                    flags = Flags::None;
                }
            }
            Item::Include(files) => {
                let before = *active;
                let inner = match (flags, before) {
                    (Flags::MatchOnly, _) => Flags::MatchOnly,
                    (_, true) => Flags::None,
                    (_, false) => Flags::NeverMatch,
                };
                for file in files {
                    walk(file, conn, inner, active, out);
                    *active = before;
                }
            }
        }
    }
}

/// `match_cfg_line`: do all criteria of a `Match` line hold for `conn`?
/// With no connection only `Match all` holds. Malformed criteria (which sshd
/// refuses to start with) hold for nothing.
fn criteria_match(words: &[String], conn: Option<&Connection>) -> bool {
    if words.len() == 1 && words[0].eq_ignore_ascii_case("all") {
        return true;
    }
    if words.is_empty() || words.len() % 2 != 0 {
        return false;
    }
    let Some(c) = conn else {
        return false;
    };
    words.chunks(2).all(|pair| {
        let arg = pair[1].as_str();
        match pair[0].to_ascii_lowercase().as_str() {
            "user" => pattern_list(&c.user, arg, false) == Some(true),
            "group" => c.groups.as_deref().is_some_and(|g| group_list(g, arg)),
            "host" => pattern_list(&c.host.to_ascii_lowercase(), arg, true) == Some(true),
            "address" => address_list(&c.addr, arg) == Some(true),
            "localaddress" => address_list(&c.laddr, arg) == Some(true),
            "localport" => arg.parse::<u16>().is_ok_and(|p| p != 0 && p == c.lport),
            // The routing domain a login arrives in is not known to a review (sshd
            // itself matches `RDomain` only where the OS has them): such a block never
            // applies, and is never taken as a match-all either.
            "rdomain" => false,
            _ => false,
        }
    })
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or one address).
/// `None` when the text is not one, or has host bits set (sshd rejects those).
pub(super) fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max || masked(addr, len) != addr {
        return None;
    }
    Some((addr, len))
}

/// `addr` with all but its first `len` bits cleared.
fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// `addr_match_list`: CIDR networks first, else a wildcard match on the text;
/// `Some(false)` when a negated entry matches, `None` when nothing does.
pub(super) fn address_list(addr: &str, list: &str) -> Option<bool> {
    let ip: IpAddr = addr.parse().ok()?;
    let mut positive = None;
    for entry in list.split(',') {
        let (neg, entry) = match entry.strip_prefix('!') {
            Some(e) => (true, e),
            None => (false, entry),
        };
        let hit = match cidr(entry) {
            Some((net, len)) => net.is_ipv4() == ip.is_ipv4() && masked(ip, len) == net,
            None => wildcard_match(entry, addr),
        };
        if hit {
            if neg {
                return Some(false);
            }
            positive = Some(true);
        }
    }
    positive
}

/// An address a pattern names (`10.0.0.0/8` → `10.0.0.0`, `192.168.*` →
/// `192.168.1.1`), so the connection from there can be judged.
fn address_in(pattern: &str) -> Option<String> {
    if let Some((net, _)) = cidr(pattern) {
        return Some(net.to_string());
    }
    if !pattern.contains(['*', '?']) {
        return None;
    }
    let mut a = pattern.replace(['*', '?'], "1");
    for _ in 0..4 {
        if a.parse::<IpAddr>().is_ok() && wildcard_match(pattern, &a) {
            return Some(a);
        }
        a.push_str(".1");
    }
    None
}

/// The addresses just outside a network a pattern names (`10.0.0.0/8` →
/// `9.255.255.255`, `11.0.0.0`): a connection from there meets none of the
/// block, even when a public address happens to lie inside it. Then the
/// network's second and last addresses (`10.0.0.1`, `10.255.255.255`), so a
/// list that names the network and takes one address back (`10.0.0.0/8,!10.0.0.0`)
/// still has an address of its own to judge.
fn addresses_around(pattern: &str) -> Vec<String> {
    let Some((net, len)) = cidr(pattern) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match net {
        IpAddr::V4(a) if len > 0 => {
            let (n, size) = (u32::from(a), 1u32.checked_shl(32 - u32::from(len)).unwrap_or(0));
            out.extend(n.checked_sub(1).map(|b| std::net::Ipv4Addr::from(b).to_string()));
            out.extend(n.checked_add(size).filter(|_| size > 0).map(|b| std::net::Ipv4Addr::from(b).to_string()));
            if size > 1 {
                out.push(std::net::Ipv4Addr::from(n + 1).to_string());
                out.push(std::net::Ipv4Addr::from(n.wrapping_add(size.wrapping_sub(1))).to_string());
            }
        }
        IpAddr::V6(a) if len > 0 => {
            let (n, size) = (u128::from(a), 1u128.checked_shl(128 - u32::from(len)).unwrap_or(0));
            out.extend(n.checked_sub(1).map(|b| std::net::Ipv6Addr::from(b).to_string()));
            out.extend(n.checked_add(size).filter(|_| size > 0).map(|b| std::net::Ipv6Addr::from(b).to_string()));
            if size > 1 {
                out.push(std::net::Ipv6Addr::from(n + 1).to_string());
                out.push(std::net::Ipv6Addr::from(n.wrapping_add(size.wrapping_sub(1))).to_string());
            }
        }
        _ => {}
    }
    out
}

/// A host name a pattern names (`*.example.com` → `x.example.com`).
fn host_in(pattern: &str) -> String {
    pattern.replace(['*', '?'], "x").to_ascii_lowercase()
}

/// The values each `Match` criterion names anywhere in the configuration.
fn named(cfg: &SshdConfig, criterion: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in &cfg.matches {
        let w: Vec<&str> = m.criteria.split_whitespace().collect();
        for pair in w.chunks(2) {
            if pair.len() == 2 && pair[0].eq_ignore_ascii_case(criterion) {
                out.extend(pair[1].split(',').map(|p| p.trim_start_matches('!').to_string()));
            }
        }
    }
    out
}

fn push_unique(list: &mut Vec<String>, v: String) {
    if list.len() < MAX_CANDIDATES && !list.contains(&v) {
        list.push(v);
    }
}

/// The connections that can reach a different outcome for `account`: from a
/// public address (IPv4 and IPv6), from every address a `Match Address` names
/// and from those just outside each network it names, to every
/// address a `Match LocalAddress` or `ListenAddress` names and every port sshd
/// listens on. The host name is the address unless `UseDNS yes` (so a `Match
/// Host 10.1.*` names addresses too); with it the client's own DNS names it,
/// so every `Match Host` name is tried as well. `access_hosts` are the host parts of
/// `AllowUsers`/`DenyUsers` entries ([`super::access`]), judged too.
pub fn connections(cfg: &SshdConfig, account: &Account, access_hosts: &[String]) -> Vec<Connection> {
    let mut addrs = vec![PUBLIC_ADDRESS.to_string(), PUBLIC_ADDRESS_V6.to_string()];
    for p in named(cfg, "Address") {
        for a in address_in(&p).into_iter().chain(addresses_around(&p)) {
            push_unique(&mut addrs, a);
        }
    }
    // `AllowUsers alice@10.0.0.0/8` lets alice in from there only: the addresses
    // the user lists name are judged too.
    for p in access_hosts {
        for a in address_in(p).into_iter().chain(addresses_around(p)) {
            push_unique(&mut addrs, a);
        }
    }
    // Without `UseDNS yes` the host name sshd matches is the address itself.
    for p in named(cfg, "Host") {
        if let Some(a) = address_in(&p).filter(|a| wildcard_match(&p.to_ascii_lowercase(), a)) {
            push_unique(&mut addrs, a);
        }
    }
    // A field no `Match` looks at cannot change the outcome: one value of it is enough.
    let local_addresses = named(cfg, "LocalAddress");
    let mut laddrs = Vec::new();
    for p in &local_addresses {
        for a in address_in(p).into_iter().chain(addresses_around(p)) {
            push_unique(&mut laddrs, a);
        }
    }
    if !local_addresses.is_empty() {
        for la in cfg.all("ListenAddress") {
            let (a, _) = listen_address(&la.value);
            if a.parse::<IpAddr>().is_ok_and(|ip| !ip.is_unspecified()) {
                push_unique(&mut laddrs, a.to_string());
            }
        }
    }
    push_unique(&mut laddrs, ANY_LOCAL_ADDRESS.to_string());
    let mut ports = cfg.ports();
    if ports.is_empty() || named(cfg, "LocalPort").is_empty() {
        ports.truncate(1);
        if ports.is_empty() {
            ports.push(22);
        }
    }
    let mut hosts: Vec<Option<String>> = vec![None];
    if cfg.flag("UseDNS", false) {
        for p in
            named(cfg, "Host").into_iter().chain(access_hosts.iter().filter(|p| cidr(p.as_str()).is_none()).cloned())
        {
            let h = Some(host_in(&p));
            if hosts.len() < MAX_CANDIDATES && !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    let mut out = Vec::new();
    for addr in &addrs {
        for host in &hosts {
            for laddr in &laddrs {
                for &lport in ports.iter().take(MAX_CANDIDATES) {
                    out.push(Connection {
                        user: account.name.clone(),
                        groups: account.groups.clone(),
                        host: host.clone().unwrap_or_else(|| addr.clone()),
                        addr: addr.clone(),
                        laddr: laddr.clone(),
                        lport,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(user: &str, groups: &[&str], addr: &str) -> Connection {
        Connection {
            user: user.into(),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            host: addr.into(),
            addr: addr.into(),
            laddr: "192.0.2.1".into(),
            lport: 22,
        }
    }

    fn crit(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn criteria_follow_sshd() {
        let alice = conn("alice", &["alice", "sudo"], "10.1.2.3");
        for (c, want) in [
            ("User alice", true),
            ("user ALICE", false),
            ("User al*,!bob", true),
            ("User *,!alice", false),
            ("Group sudo,wheel", true),
            ("Group *,!sudo", false),
            ("Address 10.0.0.0/8", true),
            ("Address 10.0.0.0/8,!10.1.2.3", false),
            ("Address 10.1.*", true),
            ("Address 2001:db8::/32", false),
            ("Address 10.1.2.3/8", false),
            ("Host 10.1.2.*", true),
            ("LocalPort 22", true),
            ("LocalPort 2222", false),
            ("LocalAddress 192.0.2.0/24", true),
            ("RDomain default", false),
            ("RDomain %D", false),
            ("RDomain", false),
            ("User alice Address 192.168.0.0/16", false),
            ("all", true),
            ("User", false),
            ("Nonsense x", false),
        ] {
            assert_eq!(criteria_match(&crit(c), Some(&alice)), want, "{c}");
        }
        assert!(!criteria_match(&crit("User alice"), None), "the first pass applies no block");
        assert!(criteria_match(&crit("All"), None));
        let ghost = Connection { groups: None, ..conn("ghost", &[], "10.1.2.3") };
        assert!(!criteria_match(&crit("Group *"), Some(&ghost)), "no account, no groups");
    }

    #[test]
    fn addresses_named_by_patterns_are_inside_them() {
        assert_eq!(address_in("10.0.0.0/8").as_deref(), Some("10.0.0.0"));
        assert_eq!(address_in("192.168.*").as_deref(), Some("192.168.1.1"));
        assert_eq!(address_in("2001:db8::/32").as_deref(), Some("2001:db8::"));
        assert_eq!(address_in("10.0.0.1/8"), None, "host bits set: sshd refuses it");
        assert_eq!(
            addresses_around("203.0.113.0/25"),
            vec!["203.0.112.255", "203.0.113.128", "203.0.113.1", "203.0.113.127"]
        );
        assert_eq!(
            addresses_around("2001:db8::/32"),
            vec![
                "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
                "2001:db9::",
                "2001:db8::1",
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
            ]
        );
        assert_eq!(addresses_around("10.9.9.9"), vec!["10.9.9.8", "10.9.9.10"]);
        assert!(addresses_around("0.0.0.0/0").is_empty() && addresses_around("10.1.*").is_empty());
        for p in ["10.0.0.0/8", "192.168.*", "1?.2.3.4"] {
            let a = address_in(p).unwrap();
            assert_eq!(address_list(&a, p), Some(true), "{p} → {a}");
        }
    }
}
