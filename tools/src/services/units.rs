//! Is a boot-time service enabled, judged from files alone: the `*.wants/`
//! symlinks `systemctl enable` makes (in `/etc` and the vendor directories),
//! a mask (`unit → /dev/null`), and OpenRC runlevels. Works the same on an
//! image as on the live host.

use crate::host::Host;

/// Directories whose `*.wants/` hold enablement symlinks.
const WANTS_DIRS: &[&str] = &["/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

/// True when the root has a service manager layout at all (systemd unit
/// directories or OpenRC runlevels); without one (a container image) "not
/// enabled" means nothing.
pub fn has_service_manager(host: &Host) -> bool {
    ["/usr/lib/systemd/system", "/lib/systemd/system", "/etc/runlevels"].iter().any(|d| host.exists(d))
}

/// The `*.wants/` symlink that enables `unit` (`systemd-timesyncd.service`), or
/// the OpenRC runlevel entry of `openrc_name`; `None` when not enabled or masked.
pub fn enabled_by(host: &Host, unit: &str, openrc_name: &str) -> Option<String> {
    if host.read_link(&format!("/etc/systemd/system/{unit}")).is_ok_and(|t| t == "/dev/null") {
        return None;
    }
    WANTS_DIRS
        .iter()
        .flat_map(|d| host.glob(&format!("{d}/*.wants/{unit}")))
        .chain(host.glob(&format!("/etc/runlevels/*/{openrc_name}")))
        .next()
}
