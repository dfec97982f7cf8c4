//! Services still running code an update replaced. `apt upgrade` swaps
//! `libssl.so.3` on disk, but every process started before keeps the old,
//! vulnerable copy mapped until it restarts; `/run/reboot-required` only
//! covers the kernel and a few packages. On the live host each process's
//! `/proc/PID/maps` shows such files as `(deleted)`. An offline root has no
//! running processes: not checked.

use std::collections::BTreeMap;

use crate::finding::{Category, Finding, Severity};
use crate::host::Host;

/// How much of one process's maps is read.
const MAPS_BYTES: u64 = 8 << 20;
/// Processes read at most.
const MAX_PROCS: usize = 5000;

/// The replaced files mapped by one process's `maps` text: system libraries
/// and programs only (a deleted file in /tmp is a different story).
pub fn deleted_files(maps: &str) -> Vec<String> {
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| l.strip_suffix(" (deleted)"))
        .filter_map(|l| {
            l.split_whitespace().nth(5)?;
            Some(l[l.find('/')?..].to_string())
        })
        .filter(|p| ["/usr/", "/lib", "/bin/", "/sbin/", "/opt/"].iter().any(|d| p.starts_with(d)))
        .filter(|p| !p.contains("locale-archive") && !p.ends_with(".cache"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The systemd unit of a process, from `/proc/PID/cgroup`.
fn unit_of(cgroup: &str) -> Option<String> {
    cgroup
        .lines()
        .flat_map(|l| l.rsplit(':').next().unwrap_or("").split('/'))
        .rfind(|c| c.ends_with(".service"))
        .map(str::to_string)
}

/// Judge the live host; returns the facts line.
pub fn check(host: &Host, findings: &mut Vec<Finding>) -> String {
    if !host.is_live() {
        return "not checked: an offline root has no running processes".into();
    }
    let pids: Vec<String> = match host.read_dir("/proc") {
        Ok(n) => n.into_iter().filter(|n| n.chars().all(|c| c.is_ascii_digit())).take(MAX_PROCS).collect(),
        Err(e) => return format!("not checked: {e}"),
    };
    // unit (or program) → (pids, files)
    let mut by: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for pid in &pids {
        // Processes come and go while we read: a vanished one is simply skipped.
        let Ok(maps) = host.read_head(&format!("/proc/{pid}/maps"), MAPS_BYTES) else { continue };
        let files = deleted_files(&maps);
        if files.is_empty() {
            continue;
        }
        let comm = host.read_head(&format!("/proc/{pid}/comm"), 64).unwrap_or_default().trim().to_string();
        let unit = host.read_head(&format!("/proc/{pid}/cgroup"), 4096).ok().and_then(|c| unit_of(&c));
        let key = unit.unwrap_or_else(|| if comm.is_empty() { format!("pid {pid}") } else { comm.clone() });
        let e = by.entry(key).or_default();
        e.0.push(format!("{pid} ({comm})"));
        e.1.extend(files);
    }
    let n = by.len();
    for (who, (procs, mut files)) in by {
        files.sort();
        files.dedup();
        let crypto = files.iter().any(|f| f.contains("libssl") || f.contains("libcrypto") || f.contains("libgnutls"));
        let restart = if who.ends_with(".service") {
            format!("`systemctl restart {who}`")
        } else if who.starts_with("pid ") || procs.iter().any(|p| p.starts_with("1 ")) {
            "a reboot".to_string()
        } else {
            format!("restarting {who}")
        };
        let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
        let more = if files.len() > 5 { format!(" and {} more", files.len() - 5) } else { String::new() };
        findings.push(
            Finding::new(
                "updates.stale-libraries",
                if crypto { Severity::High } else { Severity::Medium },
                Category::Updates,
                who.clone(),
                format!("{who} still runs code an update replaced"),
            )
            .evidence(format!("replaced on disk, still mapped: {}{more}", shown.join(", ")))
            .evidence(format!("process(es): {}", procs.iter().take(5).cloned().collect::<Vec<_>>().join(", ")))
            .fix(format!(
                "Load the updated code with {restart} (`needrestart -r l` lists every such service); until then the \
                 fixes of the last update do not protect it."
            )),
        );
    }
    format!("{} process(es) read; {n} service(s) run replaced files", pids.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replaced_system_files_count() {
        let maps = "\
7f00-7f01 r-xp 00000000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)
7f01-7f02 r--p 00000000 fe:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)
7f02-7f03 r-xp 00000000 fe:01 124 /usr/lib/x86_64-linux-gnu/libc.so.6
7f03-7f04 rw-s 00000000 00:01 125 /memfd:wayland (deleted)
7f04-7f05 r--p 00000000 fe:01 126 /usr/lib/locale/locale-archive (deleted)
7f05-7f06 r-xp 00000000 fe:01 127 /tmp/x (deleted)
7f06-7f07 r-xp 00000000 fe:01 128 /usr/sbin/nginx (deleted)
7f07-7f08 rw-p 00000000 00:00 0 [heap]
";
        assert_eq!(deleted_files(maps), ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/sbin/nginx"]);
        assert_eq!(unit_of("0::/system.slice/nginx.service\n"), Some("nginx.service".into()));
        assert_eq!(unit_of("0::/user.slice/user-0.slice/session-3.scope\n"), None);
    }

    #[test]
    fn offline_is_not_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Vec::new();
        assert!(check(&Host::at(dir.path()), &mut f).starts_with("not checked"));
        assert!(f.is_empty());
    }
}
