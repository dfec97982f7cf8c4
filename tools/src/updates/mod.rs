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

// ---------------------------------------------------------------- os-release

fn read_os_release(host: &Host, findings: &mut Vec<Finding>) -> OsFacts {
    let mut text = None;
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        match host.read_optional(p) {
            Ok(Some(t)) => {
                text = Some(t);
                break;
            }
            Ok(None) => {}
            Err(e) => findings.push(Finding::could_not_check(Category::Updates, TOOL, p, e)),
        }
    }
    let mut os = OsFacts { support: "unknown".into(), ..OsFacts::default() };
    for line in text.unwrap_or_default().lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim() {
            "ID" => os.id = v,
            "VERSION_ID" => os.version_id = v,
            "PRETTY_NAME" => os.pretty_name = v,
            _ => {}
        }
    }
    os
}

fn judge_os(
    os: &mut OsFacts,
    today: time::Date,
    findings: &mut Vec<Finding>,
    host: &Host,
) -> Option<&'static eol::OsRelease> {
    let entry = eol::os_release(&os.id, &os.version_id)?;
    os.regular_end = Some(format_date(entry.regular_end));
    os.extended_end = Some(format_date(entry.extended_end));
    os.support = if today > entry.extended_end {
        "eol"
    } else if today > entry.regular_end {
        "extended"
    } else {
        "supported"
    }
    .into();
    let subject = format!("os:{}-{}", entry.id, entry.version_id);
    if today > entry.extended_end {
        let f = Finding::new(
            "updates.os-eol",
            Severity::High,
            Category::Updates,
            subject,
            format!("{} is end-of-life: no security updates since {}", entry.name, format_date(entry.extended_end)),
        )
        .evidence(format!("/etc/os-release: ID={} VERSION_ID={}", os.id, os.version_id))
        .evidence(format!(
            "regular security support ended {}, extended support ended {}",
            format_date(entry.regular_end),
            format_date(entry.extended_end)
        ))
        .fix("Upgrade to a supported release (or migrate the sites to a new server); until then every new vulnerability in the OS stays open.");
        findings.push(f);
    } else if today > entry.regular_end {
        // Ubuntu's extended phase needs an Ubuntu Pro subscription (esm lists); Debian LTS is free.
        let esm = entry.id == "ubuntu" && !has_esm_lists(host);
        let (sev, how) = if esm {
            (Severity::High, "Ubuntu ESM needs Ubuntu Pro, and no esm.ubuntu.com apt lists were found")
        } else if entry.id == "ubuntu" {
            (Severity::Low, "Ubuntu Pro (ESM) lists are present")
        } else {
            (Severity::Low, "Debian LTS provides security updates through the normal security archive")
        };
        findings.push(
            Finding::new(
                "updates.os-extended-support",
                sev,
                Category::Updates,
                subject,
                format!(
                    "{} is past regular security support ({}); extended support ends {}",
                    entry.name,
                    format_date(entry.regular_end),
                    format_date(entry.extended_end)
                ),
            )
            .evidence(how)
            .fix(format!("Plan the upgrade to the next release before {}.", format_date(entry.extended_end))),
        );
    }
    Some(entry)
}

fn has_esm_lists(host: &Host) -> bool {
    host.read_dir(LISTS).map(|n| n.iter().any(|n| n.contains("esm.ubuntu.com"))).unwrap_or(false)
}

// ---------------------------------------------------------------- dpkg status

/// Installed packages: name → [(architecture, version)].
pub type Installed = HashMap<String, Vec<(String, String)>>;

/// dpkg states in which a package's files are on disk: each counts as installed, so a
/// package left `half-configured`, `unpacked` or waiting on triggers still has its pending
/// security updates reported (`not-installed` and `config-files` have no program on disk).
const ON_DISK: [&[u8]; 6] =
    [b"installed", b"triggers-pending", b"triggers-awaited", b"half-configured", b"unpacked", b"half-installed"];

/// Parse `var/lib/dpkg/status`, keeping packages whose files are on disk (see [`ON_DISK`]).
pub fn parse_status(bytes: &[u8]) -> Installed {
    let mut out: Installed = HashMap::new();
    for stanza in stanzas(bytes) {
        let (mut name, mut ver, mut arch, mut ok) = (None, None, None, false);
        for line in stanza.split(|b| *b == b'\n') {
            if let Some(v) = line.strip_prefix(b"Package: ") {
                name = Some(v);
            } else if let Some(v) = line.strip_prefix(b"Version: ") {
                ver = Some(v);
            } else if let Some(v) = line.strip_prefix(b"Architecture: ") {
                arch = Some(v);
            } else if let Some(v) = line.strip_prefix(b"Status: ") {
                // `want flag state`: the state is the last word.
                let state = v.rsplit(|b| *b == b' ').next().unwrap_or(b"").trim_ascii_end();
                ok = ON_DISK.contains(&state);
            }
        }
        if let (true, Some(n), Some(v)) = (ok, name, ver) {
            out.entry(lossy(n)).or_default().push((arch.map(lossy).unwrap_or_else(|| "all".into()), lossy(v)));
        }
    }
    out
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// Stanzas of a deb822 file, split on blank lines.
fn stanzas(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let finder = memchr::memmem::Finder::new(b"\n\n");
    let mut rest = bytes;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (s, next) = match finder.find(rest) {
                Some(i) => (&rest[..i], &rest[i + 2..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let s = s.strip_prefix(b"\n").unwrap_or(s);
            if !s.is_empty() {
                return Some(s);
            }
        }
        None
    })
}

// ---------------------------------------------------------------- apt lists

#[derive(Debug, Default)]
struct ReleaseInfo {
    prefix: String,
    security: bool,
    date: Option<i64>,
}

fn parse_release(name: &str, text: &str) -> ReleaseInfo {
    let prefix = name.trim_end_matches("InRelease").trim_end_matches("Release").to_string();
    let mut info = ReleaseInfo { prefix, ..ReleaseInfo::default() };
    let mut lines = text.lines().peekable();
    if lines.peek().is_some_and(|l| l.starts_with("-----BEGIN PGP")) {
        for l in lines.by_ref() {
            if l.trim().is_empty() {
                break;
            }
        }
    }
    for l in lines {
        if l.is_empty() || l.starts_with(' ') || l.starts_with("-----") {
            if l.starts_with("-----") || l.is_empty() {
                break;
            }
            continue;
        }
        let Some((k, v)) = l.split_once(':') else { continue };
        let v = v.trim();
        match k {
            "Suite" | "Codename" if v.ends_with("-security") || v.ends_with("/updates") => info.security = true,
            "Label" if v.to_ascii_lowercase().contains("security") => info.security = true,
            "Date" => info.date = parse_rfc2822(v),
            _ => {}
        }
    }
    info
}

/// `Thu, 26 Nov 2026 02:22:30 UTC` → unix seconds.
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let p = if parts.first().is_some_and(|w| w.ends_with(',')) { &parts[1..] } else { &parts[..] };
    let day: u8 = p.first()?.parse().ok()?;
    let month = match p.get(1)?.to_ascii_lowercase().as_str() {
        "jan" => time::Month::January,
        "feb" => time::Month::February,
        "mar" => time::Month::March,
        "apr" => time::Month::April,
        "may" => time::Month::May,
        "jun" => time::Month::June,
        "jul" => time::Month::July,
        "aug" => time::Month::August,
        "sep" => time::Month::September,
        "oct" => time::Month::October,
        "nov" => time::Month::November,
        "dec" => time::Month::December,
        _ => return None,
    };
    let year: i32 = p.get(2)?.parse().ok()?;
    let mut hms = p.get(3).unwrap_or(&"0:0:0").split(':').map(|x| x.parse::<u8>().unwrap_or(0));
    let d = time::Date::from_calendar_date(year, month, day).ok()?;
    let t = time::Time::from_hms(hms.next().unwrap_or(0), hms.next().unwrap_or(0), hms.next().unwrap_or(0)).ok()?;
    Some(d.with_time(t).assume_utc().unix_timestamp())
}

/// Decompress a list by its file name; `None` when the compression is not supported here.
async fn list_bytes(host: &Host, path: &str) -> Result<Option<Vec<u8>>, String> {
    let raw = host.read(path).map_err(|e| e.to_string())?;
    if path.ends_with("_Packages") {
        return Ok(Some(raw));
    }
    if path.ends_with(".lz4") {
        let mut out = Vec::with_capacity(raw.len() * 4);
        lz4_flex::frame::FrameDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| format!("{path}: {e}"))?;
        return Ok(Some(out));
    }
    if path.ends_with(".gz") {
        let mut out = Vec::with_capacity(raw.len() * 5);
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| format!("{path}: {e}"))?;
        return Ok(Some(out));
    }
    // xz, zst, bz2: apt's own helper decompresses them on the live host.
    if host.is_live() {
        let out = host
            .run("/usr/lib/apt/apt-helper", &["cat-file", path], Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?;
        if out.success() {
            return Ok(Some(out.stdout.into_bytes()));
        }
        return Err(format!("{path}: apt-helper cat-file failed: {}", out.stderr.trim()));
    }
    Ok(None)
}

fn is_packages_list(name: &str) -> bool {
    ["_Packages", "_Packages.lz4", "_Packages.gz", "_Packages.xz", "_Packages.zst", "_Packages.bz2"]
        .iter()
        .any(|s| name.ends_with(s))
}

fn arch_matches(installed: &str, list: &str) -> bool {
    installed == list || list == "all" || installed == "all"
}

async fn check_lists(
    host: &Host,
    installed: &Installed,
    today: time::Date,
    facts: &mut UpdatesFacts,
    findings: &mut Vec<Finding>,
) {
    let names = match host.read_dir(LISTS) {
        Ok(n) => n,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            findings.push(Finding::could_not_check(Category::Updates, TOOL, LISTS, e));
            return;
        }
    };
    let mut releases = Vec::new();
    let mut newest: Option<i64> = None;
    for n in names.iter().filter(|n| n.ends_with("_InRelease") || n.ends_with("_Release")) {
        let path = format!("{LISTS}/{n}");
        // Only the header matters; InRelease files are small.
        let text = host.read_to_string(&path).unwrap_or_default();
        let info = parse_release(n, &text);
        let mtime = host.metadata(&path).ok().and_then(|m| m.modified().ok()).map(unix_secs);
        // A time after "now" (a fixture checked out later, a wrong clock) proves nothing.
        let now = host.now_unix();
        newest = newest.max(info.date.filter(|t| *t <= now)).max(mtime.filter(|t| *t <= now));
        releases.push(info);
    }
    if let Ok(m) = host.metadata("/var/lib/apt/periodic/update-success-stamp") {
        newest = newest.max(m.modified().ok().map(unix_secs).filter(|t| *t <= host.now_unix()));
    }
    // Best (most specific) candidate per installed package: (any list, security list).
    let mut best: HashMap<&str, (Option<String>, Option<String>)> = HashMap::new();
    for n in names.iter().filter(|n| is_packages_list(n)) {
        let path = format!("{LISTS}/{n}");
        let release = releases.iter().filter(|r| n.starts_with(&r.prefix)).max_by_key(|r| r.prefix.len());
        let security = n.contains("security") || release.is_some_and(|r| r.security);
        // Decompressing a full distribution list (50 MB of lz4) costs more than the rest of the
        // review; only the security lists are needed for the security verdict.
        let compressed = !n.ends_with("_Packages");
        let big = host.metadata(&path).map(|m| m.len() > BIG_COMPRESSED_LIST).unwrap_or(false);
        if !security && compressed && big {
            facts.upgradable_partial = true;
            continue;
        }
        let bytes = match list_bytes(host, &path).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                facts.unreadable_lists.push(format!("{n} (compression readable only on the live host)"));
                continue;
            }
            Err(e) => {
                facts.unreadable_lists.push(e);
                continue;
            }
        };
        facts.lists += 1;
        if security {
            facts.security_lists += 1;
        }
        index_list(&bytes, installed, security, &mut best);
    }
    if let Some(t) = newest {
        let d = date_of_unix(t);
        let age = (today - d).whole_days();
        facts.lists_updated = Some(format_date(d));
        facts.lists_age_days = Some(age);
        if age > STALE_LIST_DAYS {
            findings.push(
                Finding::new(
                    "updates.lists-stale",
                    Severity::Medium,
                    Category::Updates,
                    "apt-lists",
                    format!("The apt package lists are {age} days old: pending security updates are undercounted"),
                )
                .evidence(format!("newest Release/list data under {LISTS}: {}", format_date(d)))
                .fix("Run `apt-get update` (and make sure the daily apt timer or cron job runs), then review again."),
            );
        }
    }
    if facts.lists == 0 {
        let mut f = Finding::new(
            "updates.no-lists",
            Severity::Medium,
            Category::Updates,
            "apt-lists",
            "No readable apt package lists: pending updates cannot be computed",
        )
        .evidence(format!("no *_Packages files readable under {LISTS}"))
        .fix("Run `apt-get update`, then review again.");
        for u in &facts.unreadable_lists {
            f = f.evidence(format!("unreadable: {u}"));
        }
        findings.push(f);
        return;
    }
    let mut pending = Vec::new();
    let mut upgradable = 0;
    for (name, (any, sec)) in &best {
        let Some(inst) = installed.get(*name) else { continue };
        let installed_ver = inst.iter().map(|(_, v)| v.as_str()).min_by(|a, b| debver::compare(a, b));
        let Some(iv) = installed_ver else { continue };
        if any.as_deref().is_some_and(|c| debver::compare(c, iv) == Ordering::Greater) {
            upgradable += 1;
        }
        if let Some(c) = sec.as_deref().filter(|c| debver::compare(c, iv) == Ordering::Greater) {
            pending.push(PendingUpdate { package: name.to_string(), installed: iv.to_string(), candidate: c.into() });
        }
    }
    pending.sort_by(|a, b| a.package.cmp(&b.package));
    facts.upgradable_total = upgradable;
    facts.security_pending_total = pending.len();
    if !pending.is_empty() {
        let mut f = Finding::new(
            "updates.security-pending",
            Severity::High,
            Category::Updates,
            "os-packages",
            format!("{} security update(s) pending", pending.len()),
        );
        for p in pending.iter().take(15) {
            f = f.evidence(format!("{}: {} installed, {} available", p.package, p.installed, p.candidate));
        }
        if pending.len() > 15 {
            f = f.evidence(format!("… and {} more", pending.len() - 15));
        }
        findings.push(
            f.fix("Apply them: `apt-get update && apt-get upgrade` (or `unattended-upgrade -v` for the security ones only); restart the affected services or reboot if /run/reboot-required appears."),
        );
    }
    pending.truncate(MAX_LISTED);
    facts.security_pending = pending;
    if !facts.unreadable_lists.is_empty() && facts.security_lists == 0 {
        findings.push(Finding::could_not_check(
            Category::Updates,
            TOOL,
            "the security apt lists",
            facts.unreadable_lists.join("; "),
        ));
    }
}

/// Record the newest version of every installed package found in one list.
fn index_list<'a>(
    bytes: &[u8],
    installed: &'a Installed,
    security: bool,
    best: &mut HashMap<&'a str, (Option<String>, Option<String>)>,
) {
    for stanza in stanzas(bytes) {
        // "Package:" opens every stanza: skip the rest of non-installed packages at once.
        let first = stanza.split(|b| *b == b'\n').next().unwrap_or_default();
        let Some(name) = first.strip_prefix(b"Package: ") else { continue };
        let Ok(name) = std::str::from_utf8(name) else { continue };
        let Some((key, inst)) = installed.get_key_value(name.trim()) else { continue };
        let (mut ver, mut arch) = (None, None);
        for line in stanza.split(|b| *b == b'\n') {
            if let Some(v) = line.strip_prefix(b"Version: ") {
                ver = Some(lossy(v));
            } else if let Some(v) = line.strip_prefix(b"Architecture: ") {
                arch = Some(lossy(v));
            }
        }
        let (Some(ver), Some(arch)) = (ver, arch) else { continue };
        if !inst.iter().any(|(a, _)| arch_matches(a, &arch)) {
            continue;
        }
        let slot = best.entry(key.as_str()).or_default();
        let newer = |cur: &Option<String>| cur.as_deref().is_none_or(|c| debver::compare(&ver, c) == Ordering::Greater);
        if newer(&slot.0) {
            slot.0 = Some(ver.clone());
        }
        if security && newer(&slot.1) {
            slot.1 = Some(ver);
        }
    }
}

// ---------------------------------------------------------------- reboot

fn check_reboot(host: &Host, facts: &mut UpdatesFacts, findings: &mut Vec<Finding>) {
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

// ---------------------------------------------------------------- unattended-upgrades

fn ignored_conf(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [
            ".disabled",
            ".bak",
            ".save",
            ".orig",
            ".distUpgrade",
            ".dpkg-old",
            ".dpkg-new",
            ".dpkg-dist",
            ".ucf-old",
            ".ucf-new",
            ".ucf-dist",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Parse apt.conf syntax (`A::B "v";` and `A { B "v"; };`) into lowercase keys.
pub fn parse_apt_conf(text: &str) -> Vec<(String, String)> {
    #[derive(Debug)]
    enum Tok {
        Word(String),
        Str(String),
        Open,
        Close,
        Semi,
    }
    let mut toks = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '"' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += 1;
                }
                toks.push(Tok::Str(chars[start..i.min(chars.len())].iter().collect()));
                i += 1;
            }
            '{' => {
                toks.push(Tok::Open);
                i += 1;
            }
            '}' => {
                toks.push(Tok::Close);
                i += 1;
            }
            ';' => {
                toks.push(Tok::Semi);
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"{};\"".contains(chars[i]) {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut key: Option<String> = None;
    let full = |stack: &[String], k: &str| {
        let mut parts: Vec<&str> = stack.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        parts.push(k);
        parts.join("::").to_ascii_lowercase()
    };
    for t in toks {
        match t {
            Tok::Word(w) => match key.take() {
                None => key = Some(w),
                Some(k) => out.push((full(&stack, &k), w)),
            },
            Tok::Str(s) => {
                if let Some(k) = key.take() {
                    out.push((full(&stack, &k), s));
                }
            }
            Tok::Open => stack.push(key.take().unwrap_or_default()),
            Tok::Close => {
                stack.pop();
                key = None;
            }
            Tok::Semi => key = None,
        }
    }
    out
}

fn truthy(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    !(v.is_empty() || v == "0" || v == "false" || v == "no" || v == "off")
}

fn check_unattended(host: &Host, installed: &Installed, facts: &mut UpdatesFacts, findings: &mut Vec<Finding>) {
    let mut files = vec!["/etc/apt/apt.conf".to_string()];
    if let Ok(names) = host.read_dir("/etc/apt/apt.conf.d") {
        files.extend(names.into_iter().filter(|n| !ignored_conf(n)).map(|n| format!("/etc/apt/apt.conf.d/{n}")));
    }
    let mut uu: Option<(String, String)> = None;
    let mut periodic_enable: Option<String> = None;
    for f in &files {
        let Ok(Some(text)) = host.read_optional(f) else { continue };
        for (k, v) in parse_apt_conf(&text) {
            match k.as_str() {
                "apt::periodic::unattended-upgrade" => uu = Some((v, f.clone())),
                "apt::periodic::enable" => periodic_enable = Some(v),
                _ => {}
            }
        }
    }
    let pkg = installed.contains_key("unattended-upgrades");
    let enabled = pkg && uu.as_ref().is_some_and(|(v, _)| truthy(v)) && periodic_enable.as_deref().is_none_or(truthy);
    facts.unattended_upgrades =
        UnattendedFacts { installed: pkg, enabled, set_in: uu.as_ref().map(|(_, f)| f.clone()) };
    if enabled {
        return;
    }
    let why = if !pkg {
        "the unattended-upgrades package is not installed".to_string()
    } else if let Some((v, f)) = &uu {
        if periodic_enable.as_deref().is_some_and(|v| !truthy(v)) {
            "APT::Periodic::Enable is \"0\": no periodic apt runs".to_string()
        } else {
            format!("APT::Periodic::Unattended-Upgrade \"{v}\" in {f}")
        }
    } else {
        "APT::Periodic::Unattended-Upgrade is not set (no /etc/apt/apt.conf.d/20auto-upgrades)".to_string()
    };
    findings.push(
        Finding::new(
            "updates.unattended-off",
            Severity::Medium,
            Category::Updates,
            "unattended-upgrades",
            "Security updates are not installed automatically",
        )
        .evidence(why)
        .fix("apt-get install unattended-upgrades && dpkg-reconfigure -plow unattended-upgrades (writes /etc/apt/apt.conf.d/20auto-upgrades with APT::Periodic::Unattended-Upgrade \"1\")."),
    );
}

// ---------------------------------------------------------------- PHP

/// `php7.4-cli` → `7.4`, `libapache2-mod-php8.2` → `8.2`.
fn php_branch(pkg: &str) -> Option<String> {
    let rest = pkg.strip_prefix("php").or_else(|| pkg.strip_prefix("libapache2-mod-php"))?;
    let end = rest.find('-').unwrap_or(rest.len());
    let v = &rest[..end];
    let (maj, min) = v.split_once('.')?;
    (!maj.is_empty()
        && !min.is_empty()
        && maj.bytes().all(|b| b.is_ascii_digit())
        && min.bytes().all(|b| b.is_ascii_digit()))
    .then(|| v.to_string())
}

fn check_php(
    host: &Host,
    installed: &Installed,
    os_entry: Option<&'static eol::OsRelease>,
    today: time::Date,
    facts: &mut UpdatesFacts,
    findings: &mut Vec<Finding>,
) {
    let mut branches: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
    for (name, vers) in installed {
        if let Some(b) = php_branch(name) {
            let e = branches.entry(b).or_default();
            e.0 += 1;
            if e.1.is_none() || name.ends_with("-common") {
                e.1 = vers.first().map(|(_, v)| v.clone());
            }
        }
    }
    for bin in host.glob("/usr/bin/php*").into_iter().chain(host.glob("/usr/local/bin/php*")) {
        let name = bin.rsplit('/').next().unwrap_or_default();
        if let Some(b) = php_branch(name) {
            branches.entry(b).or_default();
        }
    }
    for (branch, (count, version)) in branches {
        let eol = eol::php_eol(&branch);
        let is_eol = eol.is_some_and(|d| today > d);
        facts.php.push(PhpFacts {
            branch: branch.clone(),
            packages: count,
            version: version.clone(),
            eol: eol.map(format_date),
            is_eol,
        });
        let Some(eol) = eol else { continue };
        let subject = format!("php:{branch}");
        let third_party =
            version.as_deref().is_some_and(|v| v.contains("sury") || v.contains("+0~20") || v.contains("~ppa"));
        let distro_patched =
            os_entry.is_some_and(|o| o.php == Some(branch.as_str()) && today <= o.extended_end) && !third_party;
        let mut evidence = vec![match &version {
            Some(v) => format!("{count} php{branch} package(s) installed (version {v})"),
            None => format!("/usr/bin/php{branch} present"),
        }];
        if is_eol {
            let (sev, title, fix) = if distro_patched {
                let o = os_entry.map(|o| (o.name, format_date(o.extended_end))).unwrap_or_default();
                evidence.push(format!("{} still backports security fixes to its own PHP {branch} until {}", o.0, o.1));
                (
                    Severity::Low,
                    format!(
                        "PHP {branch} is past upstream end of life ({}); only the distribution patches it",
                        format_date(eol)
                    ),
                    "Plan the move of the sites to a PHP branch supported upstream (test each site on it first)."
                        .to_string(),
                )
            } else {
                (
                    Severity::High,
                    format!("PHP {branch} is end-of-life since {}: no security fixes", format_date(eol)),
                    format!(
                        "Move the sites to a supported PHP (8.3 or newer), test them, then remove php{branch}-* (`apt-get purge 'php{branch}*'`)."
                    ),
                )
            };
            let mut f = Finding::new("updates.php-eol", sev, Category::Updates, subject, title);
            for e in evidence {
                f = f.evidence(e);
            }
            findings.push(f.fix(fix));
        } else if (eol - today).whole_days() <= 90 && !distro_patched {
            let mut f = Finding::new(
                "updates.php-eol-soon",
                Severity::Low,
                Category::Updates,
                subject,
                format!("PHP {branch} reaches end of life on {}", format_date(eol)),
            );
            for e in evidence {
                f = f.evidence(e);
            }
            findings.push(f.fix("Plan the move of the sites to a newer PHP branch before that date."));
        }
    }
}

#[cfg(test)]
mod tests;
