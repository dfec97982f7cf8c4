//! `check_os_updates`: OS updates that were put off (pattern 2), computed offline.
//!
//! "We will update after the holidays" leaves known holes open. This tool
//! answers "what security updates are pending here, and is anything past its
//! end of life?" from files alone, so it works offline and on a mounted image:
//! installed versions from `var/lib/dpkg/status`, candidate versions from the
//! local apt lists (`var/lib/apt/lists/*_Packages`, plain or lz4/gz
//! compressed; a list is "security" when its name says so or its Release
//! says `Suite: *-security`), compared with dpkg's own version algorithm.
//! Only stanzas of installed packages are looked at, so a multi-megabyte
//! status file and the full Debian lists take well under a second. It also
//! reports a pending reboot, unattended-upgrades switched off, apt lists too
//! old to trust, and end-of-life OS releases and PHP branches.

pub mod debver;
pub mod eol;

mod apt;
mod dpkg;
mod os;
mod php;
mod reboot;
mod unattended;

pub use apt::*;
pub use dpkg::*;
pub use unattended::*;

use os::*;
use php::*;
use reboot::*;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::format::{date_of_unix, format_date};
use crate::host::{Host, unix_secs};
use crate::tool::{Ctx, Effect, NoInput, Outcome, Tool, ToolError};

const TOOL: &str = "check_os_updates";
const LISTS: &str = "/var/lib/apt/lists";
/// Pending security updates listed in the facts (the total is always given).
pub const MAX_LISTED: usize = 50;
/// Compressed non-security lists larger than this are not decompressed.
const BIG_COMPRESSED_LIST: u64 = 4 << 20;
/// Apt lists older than this many days make the security data stale.
pub const STALE_LIST_DAYS: i64 = 7;

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct CheckOsUpdates;

/// One pending update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PendingUpdate {
    /// Binary package name.
    pub package: String,
    /// Installed version.
    pub installed: String,
    /// Newest version in the apt lists.
    pub candidate: String,
}

/// The OS release and its support status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct OsFacts {
    /// `ID` from os-release.
    pub id: String,
    /// `VERSION_ID` from os-release.
    pub version_id: String,
    /// `PRETTY_NAME`.
    pub pretty_name: String,
    /// `supported`, `extended` (LTS/ESM only), `eol` or `unknown`.
    pub support: String,
    /// End of regular security support, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regular_end: Option<String>,
    /// End of extended support, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_end: Option<String>,
}

/// Unattended-upgrades state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct UnattendedFacts {
    /// The `unattended-upgrades` package is installed.
    pub installed: bool,
    /// `APT::Periodic::Unattended-Upgrade` is set to a non-zero value (and periodic runs are enabled).
    pub enabled: bool,
    /// The file that set `APT::Periodic::Unattended-Upgrade`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_in: Option<String>,
}

/// One installed PHP branch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PhpFacts {
    /// Branch, e.g. `7.4`.
    pub branch: String,
    /// Installed packages of this branch (count).
    pub packages: usize,
    /// Version of one of its packages (to tell distro builds from third-party ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// End of upstream security support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eol: Option<String>,
    /// Past its upstream end of life.
    pub is_eol: bool,
}

/// Facts of `check_os_updates`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct UpdatesFacts {
    /// The OS release.
    pub os: OsFacts,
    /// `dpkg` when a dpkg database was found, else `none`.
    pub package_manager: String,
    /// Installed packages.
    pub installed_packages: usize,
    /// Apt `Packages` lists read.
    pub lists: usize,
    /// Of which security lists.
    pub security_lists: usize,
    /// Lists that could not be read (compression not supported off the live host, unreadable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_lists: Vec<String>,
    /// When the apt data was last refreshed (newest Release date or list mtime), `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lists_updated: Option<String>,
    /// Days since then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lists_age_days: Option<i64>,
    /// Installed packages with a newer version in any list read.
    pub upgradable_total: usize,
    /// Large compressed non-security lists were skipped (for speed): `upgradable_total` undercounts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub upgradable_partial: bool,
    /// Installed packages with a newer version in a security list.
    pub security_pending_total: usize,
    /// Pending security updates (first [`MAX_LISTED`], by name).
    pub security_pending: Vec<PendingUpdate>,
    /// `/run/reboot-required` exists.
    pub reboot_required: bool,
    /// Packages that asked for the reboot.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reboot_packages: Vec<String>,
    /// Unattended upgrades.
    pub unattended_upgrades: UnattendedFacts,
    /// Installed PHP branches.
    pub php: Vec<PhpFacts>,
}

#[async_trait]
impl Tool for CheckOsUpdates {
    type Input = NoInput;
    type Output = UpdatesFacts;

    fn name(&self) -> &'static str {
        TOOL
    }

    fn description(&self) -> &'static str {
        "Check OS updates on a Debian/Ubuntu host, offline: pending security updates (installed dpkg \
         versions against the local apt lists, compared with dpkg's version rules; counts plus the list of \
         packages with installed and candidate versions), a pending reboot (/run/reboot-required), \
         unattended-upgrades switched off, apt lists too old to trust, and end-of-life OS releases and PHP \
         branches. Use it for 'are we behind on updates?' or 'is this server still supported?'. It does not \
         refresh the apt lists or install anything."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, _input: NoInput) -> Result<Outcome<UpdatesFacts>, ToolError> {
        Ok(review(&ctx.host).await)
    }
}

fn today(host: &Host) -> time::Date {
    date_of_unix(host.now_unix())
}

/// The whole review; never fails, problems become findings.
pub async fn review(host: &Host) -> Outcome<UpdatesFacts> {
    let mut facts = UpdatesFacts::default();
    let mut findings = Vec::new();
    let today = today(host);

    let mut os = read_os_release(host, &mut findings);
    let os_entry = judge_os(&mut os, today, &mut findings, host);

    // Larger than a config file on a server with thousands of packages (a few MiB is usual).
    let status = match host.read_limited("/var/lib/dpkg/status", crate::host::Limit::max(64 << 20)) {
        Ok(b) => Some(b),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            findings.push(Finding::could_not_check(Category::Updates, TOOL, "/var/lib/dpkg/status", e));
            None
        }
    };
    let Some(status) = status else {
        facts.package_manager = "none".into();
        if !findings.iter().any(|f| f.id.ends_with("check-failed")) {
            findings.push(
                Finding::new(
                    "updates.no-dpkg",
                    Severity::Info,
                    Category::Updates,
                    "os-packages",
                    "No dpkg database: pending package updates were not checked",
                )
                .evidence("/var/lib/dpkg/status is absent (not a Debian/Ubuntu system?)")
                .fix("Check updates with the system's own package manager (dnf check-update, zypper lu)."),
            );
        }
        facts.os = os;
        return Outcome::new(facts, findings);
    };
    facts.package_manager = "dpkg".into();
    let installed = parse_status(&status);
    facts.installed_packages = installed.values().map(Vec::len).sum();

    check_lists(host, &installed, today, &mut facts, &mut findings).await;
    check_reboot(host, &mut facts, &mut findings);
    check_unattended(host, &installed, &mut facts, &mut findings);
    check_php(host, &installed, os_entry, today, &mut facts, &mut findings);
    facts.os = os;
    Outcome::new(facts, findings)
}

#[cfg(test)]
mod tests;
