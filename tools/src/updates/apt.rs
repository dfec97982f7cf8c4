//! Pending updates from apt's package lists (`/var/lib/apt/lists`): which
//! installed packages have newer versions, security ones first, and how stale the lists are.

use super::*;

#[derive(Debug, Default)]
pub(super) struct ReleaseInfo {
    pub(super) prefix: String,
    pub(super) security: bool,
    pub(super) date: Option<i64>,
}

pub(super) fn parse_release(name: &str, text: &str) -> ReleaseInfo {
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
pub(super) async fn list_bytes(host: &Host, path: &str) -> Result<Option<Vec<u8>>, String> {
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

pub(super) fn is_packages_list(name: &str) -> bool {
    ["_Packages", "_Packages.lz4", "_Packages.gz", "_Packages.xz", "_Packages.zst", "_Packages.bz2"]
        .iter()
        .any(|s| name.ends_with(s))
}

pub(super) fn arch_matches(installed: &str, list: &str) -> bool {
    installed == list || list == "all" || installed == "all"
}

pub(super) async fn check_lists(
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
pub(super) fn index_list<'a>(
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
