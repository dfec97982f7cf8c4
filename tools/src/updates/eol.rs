//! End-of-life dates: OS releases and PHP branches, as a small built-in table.
//!
//! Dates are the vendors' published ends of (regular, extended) security
//! support. The table is deliberately small: releases a web-hosting server
//! plausibly still runs. An unknown release is reported as unknown, never as EOL.

use time::Date;
use time::macros::date;

/// Support windows of one OS release.
#[derive(Debug, Clone, Copy)]
pub struct OsRelease {
    /// `os-release` `ID`.
    pub id: &'static str,
    /// `os-release` `VERSION_ID`.
    pub version_id: &'static str,
    /// Name for humans.
    pub name: &'static str,
    /// End of regular security support.
    pub regular_end: Date,
    /// End of extended support (Debian LTS; Ubuntu ESM needs a Pro subscription).
    pub extended_end: Date,
    /// The PHP branch this release ships (its security team patches it while the release lives).
    pub php: Option<&'static str>,
}

const fn os(
    id: &'static str,
    version_id: &'static str,
    name: &'static str,
    regular_end: Date,
    extended_end: Date,
    php: Option<&'static str>,
) -> OsRelease {
    OsRelease { id, version_id, name, regular_end, extended_end, php }
}

/// Known releases.
pub const OS_RELEASES: &[OsRelease] = &[
    os("debian", "8", "Debian 8 (jessie)", date!(2018 - 06 - 17), date!(2020 - 06 - 30), Some("5.6")),
    os("debian", "9", "Debian 9 (stretch)", date!(2020 - 07 - 06), date!(2022 - 06 - 30), Some("7.0")),
    os("debian", "10", "Debian 10 (buster)", date!(2022 - 09 - 10), date!(2024 - 06 - 30), Some("7.3")),
    os("debian", "11", "Debian 11 (bullseye)", date!(2024 - 08 - 14), date!(2026 - 08 - 31), Some("7.4")),
    os("debian", "12", "Debian 12 (bookworm)", date!(2026 - 06 - 10), date!(2028 - 06 - 30), Some("8.2")),
    os("debian", "13", "Debian 13 (trixie)", date!(2028 - 08 - 09), date!(2030 - 06 - 30), Some("8.4")),
    os("ubuntu", "14.04", "Ubuntu 14.04 LTS", date!(2019 - 04 - 30), date!(2024 - 04 - 30), Some("5.5")),
    os("ubuntu", "16.04", "Ubuntu 16.04 LTS", date!(2021 - 04 - 30), date!(2026 - 04 - 30), Some("7.0")),
    os("ubuntu", "18.04", "Ubuntu 18.04 LTS", date!(2023 - 05 - 31), date!(2028 - 04 - 30), Some("7.2")),
    os("ubuntu", "20.04", "Ubuntu 20.04 LTS", date!(2025 - 05 - 31), date!(2030 - 04 - 30), Some("7.4")),
    os("ubuntu", "22.04", "Ubuntu 22.04 LTS", date!(2027 - 06 - 01), date!(2032 - 04 - 30), Some("8.1")),
    os("ubuntu", "24.04", "Ubuntu 24.04 LTS", date!(2029 - 05 - 31), date!(2034 - 04 - 30), Some("8.3")),
    os("ubuntu", "24.10", "Ubuntu 24.10", date!(2025 - 07 - 10), date!(2025 - 07 - 10), Some("8.3")),
    os("ubuntu", "25.04", "Ubuntu 25.04", date!(2026 - 01 - 15), date!(2026 - 01 - 15), Some("8.4")),
    os("ubuntu", "25.10", "Ubuntu 25.10", date!(2026 - 07 - 09), date!(2026 - 07 - 09), Some("8.4")),
    os("ubuntu", "26.04", "Ubuntu 26.04 LTS", date!(2031 - 05 - 31), date!(2036 - 04 - 30), Some("8.5")),
];

/// Look a release up by `ID` and `VERSION_ID`.
pub fn os_release(id: &str, version_id: &str) -> Option<&'static OsRelease> {
    OS_RELEASES.iter().find(|r| r.id.eq_ignore_ascii_case(id) && r.version_id == version_id)
}

/// End of upstream security support of a PHP branch (php.net "supported versions").
pub fn php_eol(branch: &str) -> Option<Date> {
    Some(match branch {
        b if b.starts_with("5.") => date!(2018 - 12 - 31),
        "7.0" => date!(2019 - 01 - 10),
        "7.1" => date!(2019 - 12 - 01),
        "7.2" => date!(2020 - 11 - 30),
        "7.3" => date!(2021 - 12 - 06),
        "7.4" => date!(2022 - 11 - 28),
        "8.0" => date!(2023 - 11 - 26),
        "8.1" => date!(2025 - 12 - 31),
        "8.2" => date!(2026 - 12 - 31),
        "8.3" => date!(2027 - 12 - 31),
        "8.4" => date!(2028 - 12 - 31),
        "8.5" => date!(2029 - 12 - 31),
        _ => return None,
    })
}
