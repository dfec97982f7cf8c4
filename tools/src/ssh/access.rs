//! Who sshd lets try at all: `DenyUsers`, `AllowUsers`, `DenyGroups`, `AllowGroups`.
//!
//! An account these lists exclude is turned away before any password is
//! asked, so it is not an account a password logs in, whatever
//! `PasswordAuthentication` says. sshd checks them in `allowed_user`
//! (auth.c) after applying the `Match` blocks of the connection, in this
//! order: a `DenyUsers` entry that matches refuses; a non-empty `AllowUsers`
//! with no matching entry refuses; then, when either group list is set, an
//! account in no group refuses, a group matching `DenyGroups` refuses, and a
//! non-empty `AllowGroups` none of the account's groups matches refuses.
//! Each entry is one pattern (`*`, `?`), case-sensitive, with no negation (a
//! `!` is a literal character there); a user entry `USER@HOST` also needs the
//! client to match `HOST`, which is a comma list of addresses, CIDR networks
//! and host-name patterns where `!` negates (`match_host_and_ip`). `sshd -T`
//! prints these lists but does not apply them, so this module is tested
//! against real logins (`tools/tests/ssh_access.rs`).

use std::net::IpAddr;

use super::config::{Setting, Settings, pattern_list};
use super::matcher::{Connection, address_list};
use crate::host::wildcard_match;

/// The four list keywords, as sshd spells them.
pub(super) const USER_LISTS: [&str; 2] = ["DenyUsers", "AllowUsers"];

/// Why sshd turns `conn` away under `s` (the settings of that connection),
/// naming the line that decides it; `None` when it may try to log in.
///
/// A pattern sshd refuses to start with (`user@10.0.0.1/8`, an empty host) is
/// left out of its list, so a configuration sshd would reject never makes an
/// account look safe. When the account's groups are unknown the group lists
/// refuse nothing.
pub fn refusal(s: &Settings, conn: &Connection) -> Option<String> {
    for set in s.all("DenyUsers") {
        if let Some(p) = words(set).find(|p| user_entry(p, conn) == Some(true)) {
            return Some(format!("DenyUsers {p} ({})", set.at()));
        }
    }
    let allow = s.all("AllowUsers");
    let listed = allow.iter().any(|set| words(set).any(|p| user_entry(p, conn) != Some(false)));
    if !allow.is_empty() && !listed {
        return Some(format!("not listed in AllowUsers ({})", lines(allow)));
    }
    let (deny_g, allow_g) = (s.all("DenyGroups"), s.all("AllowGroups"));
    if deny_g.is_empty() && allow_g.is_empty() {
        return None;
    }
    let groups = conn.groups.as_deref()?;
    let (first, what) = if deny_g.is_empty() { (&allow_g[0], "AllowGroups") } else { (&deny_g[0], "DenyGroups") };
    if groups.is_empty() {
        return Some(format!("in no group while {what} is set ({})", first.at()));
    }
    for set in deny_g {
        if let Some(p) = words(set).find(|p| groups.iter().any(|g| wildcard_match(p, g))) {
            return Some(format!("DenyGroups {p} ({})", set.at()));
        }
    }
    let member = allow_g.iter().any(|set| words(set).any(|p| groups.iter().any(|g| wildcard_match(p, g))));
    if !allow_g.is_empty() && !member {
        return Some(format!("in none of AllowGroups ({})", lines(allow_g)));
    }
    None
}

fn words(set: &Setting) -> impl Iterator<Item = &str> {
    set.value.split_whitespace()
}

fn lines(sets: &[Setting]) -> String {
    sets.iter().map(|s| format!("{} {} at {}", s.keyword, s.value, s.at())).collect::<Vec<_>>().join("; ")
}

/// `match_user`: does one `AllowUsers`/`DenyUsers` entry match `conn`?
/// `None` for an entry sshd refuses to start with.
fn user_entry(pattern: &str, conn: &Connection) -> Option<bool> {
    let Some((user, hosts)) = pattern.split_once('@') else {
        return Some(wildcard_match(pattern, &conn.user));
    };
    if !host_list_valid(hosts) {
        return None;
    }
    Some(wildcard_match(user, &conn.user) && host_and_ip(conn, hosts))
}

/// `match_host_and_ip`: a negated address or host name that matches refuses;
/// else any address or host-name entry that matches accepts.
fn host_and_ip(conn: &Connection, hosts: &str) -> bool {
    let ip = address_list(&conn.addr, hosts);
    if ip == Some(false) {
        return false;
    }
    match pattern_list(&conn.host.to_ascii_lowercase(), hosts, true) {
        Some(false) => false,
        Some(true) => true,
        None => ip == Some(true),
    }
}

/// `addr_match_list(NULL, list) != -2`: no empty entry, and every
/// `address/length` has a length the family allows and no host bits set.
fn host_list_valid(list: &str) -> bool {
    list.split(',').all(|e| {
        let e = e.strip_prefix('!').unwrap_or(e);
        if e.is_empty() {
            return false;
        }
        let Some((addr, len)) = e.split_once('/') else {
            return true;
        };
        // Not `address/digits` (or a length over 128): sshd matches it as a wildcard.
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return true;
        }
        let (Ok(addr), Ok(len)) = (addr.parse::<IpAddr>(), len.parse::<u32>()) else {
            return true;
        };
        if len > 128 {
            return true;
        }
        let max = if addr.is_ipv4() { 32 } else { 128 };
        len <= max && super::matcher::cidr(e).is_some()
    })
}

/// The host parts of every `USER@HOST` entry of `AllowUsers`/`DenyUsers`,
/// global or in a `Match` block, one pattern each (negation removed): the
/// connections worth judging include addresses they name.
pub(crate) fn host_patterns(s: &Settings, blocks: &[super::config::MatchBlock]) -> Vec<String> {
    let mut out = Vec::new();
    let block_sets = blocks.iter().flat_map(|b| b.settings.iter());
    for set in USER_LISTS.iter().flat_map(|k| s.all(k)).chain(
        block_sets.filter(|set| USER_LISTS.iter().any(|k| super::config::canonical(&set.keyword) == k.to_lowercase())),
    ) {
        for w in words(set) {
            if let Some((_, hosts)) = w.split_once('@') {
                out.extend(hosts.split(',').map(|h| h.trim_start_matches('!').to_string()).filter(|h| !h.is_empty()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::config::{MatchBlock, Setting};

    fn settings(lines: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (i, (k, v)) in lines.iter().enumerate() {
            s.put(&Setting {
                keyword: k.to_string(),
                value: v.to_string(),
                file: "/etc/ssh/sshd_config".into(),
                line: i + 1,
                block: None,
            });
        }
        s
    }

    fn conn(user: &str, groups: Option<&[&str]>, addr: &str) -> Connection {
        Connection {
            user: user.into(),
            groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
            host: addr.into(),
            addr: addr.into(),
            laddr: "192.0.2.1".into(),
            lport: 22,
        }
    }

    /// sshd_config(5) and auth.c's `allowed_user`, rule by rule.
    #[test]
    fn lists_refuse_as_sshd_documents() {
        let alice = conn("alice", Some(&["alice", "web"]), "10.1.2.3");
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("AllowUsers", "bob")], true),
            (&[("AllowUsers", "bob al*")], false),
            (&[("AllowUsers", "bob"), ("AllowUsers", "alice")], false),
            (&[("AllowUsers", "?lice")], false),
            (&[("AllowUsers", "ALICE")], true),
            // `!` is no negation in these lists: `!bob` names an account called "!bob".
            (&[("AllowUsers", "!bob")], true),
            (&[("DenyUsers", "!bob")], false),
            (&[("DenyUsers", "*"), ("AllowUsers", "alice")], true),
            (&[("AllowUsers", "alice@10.0.0.0/8")], false),
            (&[("AllowUsers", "alice@192.168.0.0/16")], true),
            (&[("AllowUsers", "alice@10.0.0.0/8,!10.1.2.3")], true),
            (&[("AllowUsers", "alice@10.1.2.*")], false),
            (&[("AllowUsers", "alice@!10.0.0.0/8")], true),
            (&[("AllowUsers", "alice@!192.168.0.0/16,*")], false),
            (&[("DenyUsers", "alice@10.0.0.0/8")], true),
            (&[("DenyUsers", "alice@192.168.0.0/16")], false),
            (&[("DenyUsers", "*@10.1.2.3")], true),
            // An entry sshd refuses to start with (host bits set) counts for nothing.
            (&[("DenyUsers", "alice@10.1.2.3/8")], false),
            (&[("AllowUsers", "alice@10.1.2.3/8")], false),
            (&[("AllowGroups", "web")], false),
            (&[("AllowGroups", "adm*")], true),
            (&[("AllowGroups", "w?b")], false),
            (&[("DenyGroups", "web")], true),
            (&[("DenyGroups", "!web")], false),
            (&[("DenyGroups", "w*"), ("AllowGroups", "web")], true),
            (&[("AllowUsers", "alice"), ("DenyGroups", "alice")], true),
        ];
        for (lines, refused) in cases {
            let got = refusal(&settings(lines), &alice);
            assert_eq!(got.is_some(), *refused, "{lines:?}: {got:?}");
        }
        let why = refusal(&settings(&[("PasswordAuthentication", "yes"), ("DenyUsers", "bob alice")]), &alice);
        assert_eq!(why.as_deref(), Some("DenyUsers alice (/etc/ssh/sshd_config:2)"));
        let why = refusal(&settings(&[("AllowUsers", "bob")]), &alice).unwrap();
        assert!(why.contains("not listed in AllowUsers") && why.contains("sshd_config:1"), "{why}");
    }

    #[test]
    fn groups_follow_ga_match() {
        let s = settings(&[("AllowGroups", "*")]);
        // An account in no group at all is refused once a group list is set.
        let none = conn("zed", Some(&[]), "203.0.113.7");
        assert!(refusal(&s, &none).unwrap().contains("in no group"));
        assert!(refusal(&settings(&[("AllowUsers", "*")]), &none).is_none());
        // Unknown groups (no /etc/group to read): judged at the worst, not refused.
        assert!(refusal(&settings(&[("AllowGroups", "wheel")]), &conn("x", None, "203.0.113.7")).is_none());
    }

    #[test]
    fn host_names_are_matched_when_sshd_knows_them() {
        let mut c = conn("alice", Some(&["alice"]), "10.1.2.3");
        c.host = "gw.example.com".into();
        let allowed = |v: &str| refusal(&settings(&[("AllowUsers", v)]), &c).is_none();
        assert!(allowed("alice@*.EXAMPLE.com"));
        assert!(!allowed("alice@*.example.com,!gw.*"));
        assert!(allowed("alice@10.1.2.3"));
        assert!(!allowed("alice@!10.1.2.3,*.example.com"));
    }

    #[test]
    fn host_parts_are_collected_from_every_list() {
        let s = settings(&[("AllowUsers", "alice@10.0.0.0/8,!10.9.9.9 bob"), ("DenyUsers", "*@192.168.*")]);
        let block = MatchBlock {
            criteria: "User carol".into(),
            at: "x:1".into(),
            settings: vec![Setting {
                keyword: "denyusers".into(),
                value: "carol@2001:db8::/32".into(),
                file: "x".into(),
                line: 2,
                block: Some(0),
            }],
        };
        assert_eq!(host_patterns(&s, &[block]), vec!["192.168.*", "10.0.0.0/8", "10.9.9.9", "2001:db8::/32"]);
    }
}
