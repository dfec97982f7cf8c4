//! Small shared readers of the account databases (`/etc/passwd`, `/etc/group`)
//! used by several tools to name uids and groups, and to know who is in which group.

use std::collections::{BTreeMap, HashMap};

use crate::host::Host;

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// GECOS comment.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

impl PasswdEntry {
    /// True when the shell allows an interactive login.
    pub fn can_login(&self) -> bool {
        !(self.shell.ends_with("/nologin")
            || self.shell.ends_with("/false")
            || self.shell.is_empty()
            || self.shell.ends_with("/sync"))
    }
}

/// Parse `/etc/passwd` text, skipping malformed lines.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                gecos: f[4].to_string(),
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Supplementary members.
    pub members: Vec<String>,
}

/// Parse `/etc/group`.
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Group memberships: user → groups (supplementary and primary).
pub fn memberships(
    groups: &[Group],
    users: &[(String, u32)], // (name, primary gid)
) -> BTreeMap<String, Vec<String>> {
    let by_gid: HashMap<u32, &str> = groups.iter().map(|g| (g.gid, g.name.as_str())).collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in groups {
        for m in &g.members {
            out.entry(m.clone()).or_default().push(g.name.clone());
        }
    }
    for (name, gid) in users {
        if let Some(g) = by_gid.get(gid) {
            let e = out.entry(name.clone()).or_default();
            if !e.iter().any(|x| x == g) {
                e.push((*g).to_string());
            }
        }
    }
    out
}

/// uid → login name, from `ROOT/etc/passwd` (empty when unreadable).
pub fn uid_names(host: &Host) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    if let Ok(t) = host.read_to_string("/etc/passwd") {
        // The first entry of a uid names it, as getpwuid does (root, not a later `toor`).
        for e in parse_passwd(&t) {
            names.entry(e.uid).or_insert(e.name);
        }
    }
    names
}

/// The home directory of the user vigil runs as, from the password database
/// (never from an inherited `HOME`), for the few programs that need one (`trivy`'s cache).
pub fn own_home() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let passwd = Host::live().read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid) && f[5].starts_with('/')).then(|| f[5].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd() {
        let e =
            parse_passwd("root:x:0:0:root:/root:/bin/bash\nbad line\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n");
        assert_eq!(e.len(), 2);
        assert!(e[0].can_login());
        assert!(!e[1].can_login());
    }
}
