//! Time synchronisation. A clock that drifts breaks TLS validity checks,
//! makes logs disagree with every other machine's, and skews each "days
//! since" a review computes. Offline, a time service is judged enabled from
//! its unit's `*.wants/` symlink (systemd-timesyncd, chrony, ntpsec, ntpd,
//! OpenNTPD); on the live host the kernel's own view (`adjtimex`, what
//! `timedatectl` shows as "System clock synchronized") is added.

use super::units;
use crate::finding::{Category, Finding, Severity};
use crate::host::Host;

/// (systemd unit, OpenRC service) of each time-sync daemon.
const SERVICES: &[(&str, &str)] = &[
    ("systemd-timesyncd.service", "systemd-timesyncd"),
    ("chrony.service", "chronyd"),
    ("chronyd.service", "chronyd"),
    ("ntpsec.service", "ntpsec"),
    ("ntp.service", "ntpd"),
    ("ntpd.service", "ntpd"),
    ("openntpd.service", "openntpd"),
];

/// Judge time synchronisation; returns the facts line.
pub fn check(host: &Host, findings: &mut Vec<Finding>) -> String {
    if !units::has_service_manager(host) {
        return "not checked: no systemd or OpenRC layout in this root (a container uses its host's clock)".into();
    }
    let enabled: Vec<String> =
        SERVICES.iter().filter_map(|(u, o)| units::enabled_by(host, u, o).map(|at| format!("{u} ({at})"))).collect();
    let kernel = host.clock_synchronized();
    let kernel_line = match kernel {
        Some(true) => "; kernel: clock synchronised",
        Some(false) => "; kernel: clock NOT synchronised",
        None => "",
    };
    if let Some(first) = enabled.first() {
        if kernel == Some(false) {
            findings.push(
                Finding::new(
                    "hardening.clock-not-synchronized",
                    Severity::Low,
                    Category::Hardening,
                    "clock",
                    "A time service is enabled but the clock is not synchronised",
                )
                .evidence(format!("enabled: {}", enabled.join(", ")))
                .evidence("the kernel reports the clock as unsynchronised (adjtimex: TIME_ERROR)")
                .fix("Look at the service (`timedatectl timesync-status` or `chronyc tracking`): is it running, and can it reach its servers on UDP 123?"),
            );
        }
        return format!("enabled: {first}{kernel_line}");
    }
    findings.push(
        Finding::new(
            "hardening.no-time-sync",
            Severity::Medium,
            Category::Hardening,
            "clock",
            "No time synchronisation: the clock drifts unchecked",
        )
        .evidence(format!(
            "none of {} is enabled (no *.wants/ link in /etc/systemd/system or the vendor unit directories){kernel_line}",
            SERVICES.iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", ")
        ))
        .evidence("a skewed clock breaks TLS certificate checks and makes logs and backup ages wrong")
        .fix("Install and enable one: `apt-get install systemd-timesyncd` (or chrony), then `timedatectl set-ntp true` and check `timedatectl` shows \"System clock synchronized: yes\"."),
    );
    format!("no time service enabled{kernel_line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_units() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib/systemd/system")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc/systemd/system/sysinit.target.wants")).unwrap();
        dir
    }

    #[test]
    fn an_enabled_time_service_is_enough_and_a_masked_one_is_not() {
        let dir = root_with_units();
        let host = Host::at(dir.path());
        let mut f = Vec::new();
        check(&host, &mut f);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id, "hardening.no-time-sync");

        let wants = dir.path().join("etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service");
        std::os::unix::fs::symlink("/usr/lib/systemd/system/systemd-timesyncd.service", &wants).unwrap();
        let mut f = Vec::new();
        assert!(check(&host, &mut f).starts_with("enabled: systemd-timesyncd.service"));
        assert!(f.is_empty(), "{f:#?}");

        // `systemctl mask` wins over the wants link.
        std::os::unix::fs::symlink("/dev/null", dir.path().join("etc/systemd/system/systemd-timesyncd.service"))
            .unwrap();
        let mut f = Vec::new();
        check(&host, &mut f);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn a_root_without_a_service_manager_is_not_judged() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Vec::new();
        assert!(check(&Host::at(dir.path()), &mut f).starts_with("not checked"));
        assert!(f.is_empty());
    }
}
