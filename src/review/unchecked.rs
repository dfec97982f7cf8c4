//! What a review could not look at: its own section, never a finding.
//!
//! A check that could not run (a tool that failed, a file it may not read, an
//! offline image without `/proc`) used to be a `high` finding whose fix said
//! "run vigil as root": it counted like a risk, and eight of them drowned the
//! real ones when vigil ran as an ordinary user. Here every such result
//! (`*.check-failed`) leaves the findings for the review's `not_checked`
//! section: what was not checked, why, and the fix that would let it be
//! (mount `/proc`, run as root), folded to one entry per check and fix. It
//! never adds to the severity counts; instead the review is *partial*: it
//! leads with one line saying so and `vigil review` exits 3 (see README).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_tools::{Category, Finding};

use super::ToolRun;

/// One part of the host the review did not check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotChecked {
    /// The check (tool) that could not look.
    pub check: String,
    /// The pattern it belongs to.
    pub category: Category,
    /// What was not checked (files, commands, parts of the host).
    pub what: Vec<String>,
    /// Why (the first reason; the others are alike).
    pub why: String,
    /// What would let it be checked.
    pub fix: String,
}

/// Who ran the review and on what: the fix depends on both.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    /// vigil runs as root.
    pub root: bool,
    /// The audited root is the running system (`/`).
    pub live: bool,
}

impl Runner {
    /// This process, reviewing `host`.
    pub fn of(host: &vigil_tools::Host) -> Runner {
        Runner { root: crate::state::is_root(), live: host.is_live() }
    }
}

/// The fix a tool gives when it knows no better (see `Finding::could_not_check`).
const GENERIC: &str = "Run vigil as root";

const RUN_AS_ROOT: &str = "Run the review as root (`sudo vigil review`): these are readable by root only.";

/// Notes that say a whole check found nothing it could look at, and the check that wrote them.
const NOTHING_TO_CHECK: &[(&str, &str)] =
    &[("updates.no-dpkg", "check_os_updates"), ("updates.no-lists", "check_os_updates")];

/// Is `f` a "could not check" result rather than a finding about the host?
pub fn is_not_checked(f: &Finding) -> bool {
    f.id.ends_with(".check-failed") || NOTHING_TO_CHECK.iter().any(|(id, _)| f.id == *id)
}

fn denied(why: &str) -> bool {
    let w = why.to_ascii_lowercase();
    ["permission denied", "operation not permitted", "eacces", "eperm", "must be root", "need to be root", "as root"]
        .iter()
        .any(|s| w.contains(s))
}

fn no_proc(what: &str, why: &str) -> bool {
    why.contains("is /proc mounted") || (what.contains("/proc/") && why.to_ascii_lowercase().contains("no such file"))
}

/// The real fix for one not-checked result.
fn fix_for(f: &Finding, what: &str, why: &str, who: Runner) -> String {
    if no_proc(what, why) {
        return if who.live {
            "Mount /proc (`mount -t proc proc /proc`) and review again.".into()
        } else {
            "This root has no /proc (an offline image): its sockets and processes exist only while it runs. \
             Review the running server itself, or mount the running system's /proc at ROOT/proc."
                .into()
        };
    }
    if !who.root && denied(why) {
        return RUN_AS_ROOT.into();
    }
    if f.remediation.starts_with(GENERIC) {
        return format!(
            "Find out why this failed ({why}) and review again; until then this part of the host is unreviewed."
        );
    }
    f.remediation.clone()
}

/// What a check that failed as a whole was looking at.
fn subject_of(tool: &str) -> &'static str {
    match tool {
        "list_open_ports" => "listening sockets and their processes",
        "check_firewall" => "the firewall",
        "audit_accounts" => "accounts, sudo and SSH keys",
        "check_ssh" => "the SSH server's configuration",
        "check_backups" => "backups",
        "check_tls" => "TLS certificates",
        "check_os_updates" => "OS package updates",
        "wordpress_inventory" => "WordPress sites",
        "docker_containers" => "containers",
        _ => "this part of the host",
    }
}

/// Take the not-checked results out of `findings`, folded to one entry per check and fix.
pub fn split(
    findings: Vec<Finding>,
    tools: &BTreeMap<String, ToolRun>,
    who: Runner,
) -> (Vec<Finding>, Vec<NotChecked>) {
    let (gaps, kept): (Vec<Finding>, Vec<Finding>) = findings.into_iter().partition(is_not_checked);
    let mut folded: BTreeMap<(String, String), NotChecked> = BTreeMap::new();
    for f in gaps {
        let noted = NOTHING_TO_CHECK.iter().find(|(id, _)| f.id == *id);
        let (check, what) = match (noted, f.subject.split_once(": ")) {
            (Some((_, tool)), _) => (tool.to_string(), f.title.clone()),
            (None, Some((tool, what))) => (tool.to_string(), what.to_string()),
            (None, None) => (String::new(), f.subject.clone()),
        };
        let what = if what == "this part of the host" { subject_of(&check).to_string() } else { what };
        let why = f.evidence.first().cloned().unwrap_or_else(|| f.title.clone());
        let why = match tools.get(&check) {
            Some(run) if !run.ok => format!("the check could not run: {why}"),
            _ => why,
        };
        let fix = fix_for(&f, &what, &why, who);
        let entry = folded.entry((check.clone(), fix.clone())).or_insert_with(|| NotChecked {
            check,
            category: f.category,
            what: Vec::new(),
            why,
            fix,
        });
        if !entry.what.contains(&what) {
            entry.what.push(what);
        }
    }
    (kept, folded.into_values().collect())
}

/// The one line a partial review leads with, if it is partial.
pub fn notice(gaps: &[NotChecked], who: Runner) -> Option<String> {
    if gaps.is_empty() {
        return None;
    }
    let checks: Vec<&str> = {
        let mut c: Vec<&str> = gaps.iter().map(|g| g.check.as_str()).collect();
        c.dedup();
        c
    };
    let list = checks.join(", ");
    if !who.root && gaps.iter().any(|g| g.fix == RUN_AS_ROOT) {
        return Some(format!(
            "Partial review: vigil is not running as root, so parts of the host only root may read were not checked \
             ({list}; see NOT CHECKED). Run it as root for a full review."
        ));
    }
    Some(format!(
        "Partial review: {} not checked ({list}; see NOT CHECKED). Findings cover only what was.",
        if gaps.len() == 1 {
            "1 part of the host was".to_string()
        } else {
            format!("{} parts of the host were", gaps.len())
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_tools::Severity;

    fn gap(category: Category, tool: &str, what: &str, why: &str) -> Finding {
        Finding::could_not_check(category, tool, what, why)
    }

    #[test]
    fn could_not_check_results_leave_the_findings_folded_with_their_real_fix() {
        let real = Finding::new("ports.exposed-datastore", Severity::Critical, Category::Ports, "tcp:9200", "t");
        let findings = vec![
            real.clone(),
            gap(Category::Hardening, "check_firewall", "nft list ruleset", "Operation not permitted (os error 1)"),
            gap(Category::Hardening, "check_firewall", "iptables-save", "Permission denied (os error 13)"),
            gap(
                Category::Ports,
                "list_open_ports",
                "this part of the host",
                "no socket table under /x/proc/net is readable: is /proc mounted?",
            ),
        ];
        let mut tools = BTreeMap::new();
        tools.insert("list_open_ports".to_string(), ToolRun { ok: false, ms: 1, error: Some("x".into()) });
        let user = Runner { root: false, live: false };
        let (kept, gaps) = split(findings.clone(), &tools, user);
        assert_eq!(kept, vec![real.clone()]);
        assert_eq!(gaps.len(), 2, "{gaps:#?}");
        let fw = gaps.iter().find(|g| g.check == "check_firewall").unwrap();
        assert_eq!(fw.what, ["nft list ruleset", "iptables-save"]);
        assert_eq!(fw.fix, RUN_AS_ROOT);
        let ports = gaps.iter().find(|g| g.check == "list_open_ports").unwrap();
        assert_eq!(ports.what, ["listening sockets and their processes"]);
        assert!(ports.fix.contains("offline image") && !ports.fix.contains("as root"), "{}", ports.fix);
        let line = notice(&gaps, user).unwrap();
        assert!(line.contains("not running as root"), "{line}");

        // As root, the same denial is not "run as root": it says why it failed.
        let (_, gaps) = split(findings, &tools, Runner { root: true, live: true });
        let fw = gaps.iter().find(|g| g.check == "check_firewall").unwrap();
        assert!(!fw.fix.contains("as root") && fw.fix.contains("Operation not permitted"), "{}", fw.fix);
        let ports = gaps.iter().find(|g| g.check == "list_open_ports").unwrap();
        assert!(ports.fix.contains("mount -t proc"), "{}", ports.fix);
        assert!(notice(&gaps, Runner { root: true, live: true }).unwrap().starts_with("Partial review: 3 parts"));
        assert_eq!(notice(&[], user), None);
    }

    #[test]
    fn a_host_without_dpkg_has_its_updates_not_checked_rather_than_zero() {
        let note = Finding::new(
            "updates.no-dpkg",
            Severity::Info,
            Category::Updates,
            "os-packages",
            "No dpkg database: pending package updates were not checked",
        )
        .evidence("/var/lib/dpkg/status is absent")
        .fix("Check updates with the system's own package manager (dnf check-update, zypper lu).");
        let (kept, gaps) = split(vec![note], &BTreeMap::new(), Runner { root: true, live: false });
        assert!(kept.is_empty());
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].check.as_str(), gaps[0].category), ("check_os_updates", Category::Updates));
        assert!(gaps[0].fix.contains("dnf check-update"), "{}", gaps[0].fix);
    }
}
