//! A reboot the last upgrade asked for (`/run/reboot-required`) and has not had.

use super::*;

pub(super) fn check_reboot(host: &Host, facts: &mut UpdatesFacts, findings: &mut Vec<Finding>) {
    // /var/run is normally a symlink to /run; on a mounted image it would point outside the root.
    let var_run_is_dir = host.symlink_metadata("/var/run").map(|m| m.is_dir()).unwrap_or(false);
    let dirs: &[&str] = if var_run_is_dir { &["/run", "/var/run"] } else { &["/run"] };
    for dir in dirs {
        let flag = format!("{dir}/reboot-required");
        if !host.exists(&flag) {
            continue;
        }
        facts.reboot_required = true;
        let pkgs = host.read_optional(&format!("{flag}.pkgs")).ok().flatten().unwrap_or_default();
        let mut list: Vec<String> = pkgs.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        list.sort();
        list.dedup();
        facts.reboot_packages = list.clone();
        let since = host.metadata(&flag).ok().and_then(|m| m.modified().ok()).map(unix_secs);
        let mut f = Finding::new(
            "updates.reboot-required",
            Severity::Medium,
            Category::Updates,
            "reboot",
            "A reboot is pending: installed updates are not in effect until it happens",
        )
        .evidence(format!("{flag} exists"));
        if let Some(t) = since.filter(|t| *t <= host.now_unix()) {
            f = f.evidence(format!("pending since {}", format_date(date_of_unix(t))));
        }
        if !list.is_empty() {
            f = f.evidence(format!("requested by: {}", list.join(", ")));
        }
        findings.push(f.fix("Reboot in the next maintenance window (`systemctl reboot`); until then the old kernel/libraries keep running."));
        return;
    }
}
