//! A job's log: its tail read, the last success and the errors after it.

use super::*;

/// A log's tail, judged: the last success and the errors after it.
#[derive(Debug, Default, Clone)]
pub struct LogScan {
    /// The last line that says the job succeeded, with its timestamp when it has one.
    pub last_success: Option<(String, Option<i64>)>,
    /// Error lines after it (or in the whole tail when no success is recorded).
    pub errors: Vec<String>,
    /// An error after the last success is of the "disk full / no access" kind.
    pub severe: bool,
}

pub(super) fn is_error_line(l: &str) -> Option<bool> {
    let low = l.to_ascii_lowercase();
    let cleaned = low
        .replace("0 errors", "")
        .replace("no errors", "")
        .replace("without errors", "")
        .replace("errors: 0", "")
        .replace("error: 0", "")
        .replace("errors=0", "")
        .replace("0 failed", "");
    const SEVERE: &[&str] = &[
        "no space left on device",
        "disk quota exceeded",
        "read-only file system",
        "input/output error",
        "permission denied",
        "fatal",
        "repository does not exist",
        "wrong password",
    ];
    if SEVERE.iter().any(|s| cleaned.contains(s)) {
        return Some(true);
    }
    let word = |w: &str| {
        cleaned.match_indices(w).any(|(i, _)| {
            let before = cleaned[..i].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric());
            let after = cleaned[i + w.len()..].chars().next().is_none_or(|c| !c.is_ascii_alphanumeric());
            before && after
        })
    };
    let generic = [
        "error",
        "errors",
        "failed",
        "failure",
        "cannot",
        "unable to",
        "could not",
        "connection refused",
        "timed out",
        "killed",
    ];
    generic.iter().any(|w| word(w)).then_some(false)
}

pub(super) fn is_success_line(l: &str) -> bool {
    let low = l.to_ascii_lowercase();
    [
        "success",
        "completed",
        "finished",
        "backup ok",
        "backup done",
        "terminating with success",
        "saved",
        " done",
        "sync ok",
    ]
    .iter()
    .any(|w| low.contains(w))
}

/// Leading `YYYY-MM-DD[ T]HH:MM[:SS]` (optionally in brackets) or syslog `Mon DD HH:MM:SS`.
pub fn line_time(line: &str, now: i64) -> Option<i64> {
    let l = line.trim_start_matches(['[', ' ']);
    if l.len() >= 16 && l.as_bytes()[4] == b'-' && l.as_bytes()[7] == b'-' {
        let d = crate::format::parse_date(&l[..10])?;
        let hh: u8 = l.get(11..13)?.parse().ok()?;
        let mm: u8 = l.get(14..16)?.parse().ok()?;
        let ss: u8 = l.get(17..19).and_then(|s| s.parse().ok()).unwrap_or(0);
        return Some(d.with_hms(hh, mm, ss).ok()?.assume_utc().unix_timestamp());
    }
    // Syslog: no year; take the latest year that is not in the future.
    let mut p = l.split_whitespace();
    let mon = p.next()?;
    let day: u8 = p.next()?.parse().ok()?;
    let hms: Vec<u8> = p.next()?.split(':').filter_map(|x| x.parse().ok()).collect();
    let month = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        .iter()
        .position(|m| mon.eq_ignore_ascii_case(m))?;
    let month = time::Month::try_from(month as u8 + 1).ok()?;
    let year = time::OffsetDateTime::from_unix_timestamp(now).ok()?.year();
    let [h, m, s] = hms[..] else { return None };
    for y in [year, year - 1] {
        let t =
            time::Date::from_calendar_date(y, month, day).ok()?.with_hms(h, m, s).ok()?.assume_utc().unix_timestamp();
        if t <= now + 86_400 {
            return Some(t);
        }
    }
    None
}

/// Judge a log's text: last success, errors since.
pub fn scan_log(text: &str, now: i64) -> LogScan {
    let mut scan = LogScan::default();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        match is_error_line(l) {
            Some(severe) => {
                scan.severe |= severe;
                scan.errors.push(l.to_string());
            }
            None if is_success_line(l) => {
                scan.last_success = Some((l.to_string(), line_time(l, now)));
                scan.errors.clear();
                scan.severe = false;
            }
            None => {}
        }
    }
    scan
}

/// The last `LOG_TAIL` bytes of a file, through the host.
pub(super) fn read_tail(host: &Host, path: &str) -> Result<(String, i64), crate::host::HostError> {
    let (mut f, meta) = host.open_file(path)?;
    let io = |e: std::io::Error| crate::host::HostError::Io { path: path.to_string(), source: e };
    let start = meta.len().saturating_sub(LOG_TAIL);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut buf = Vec::new();
    f.take(LOG_TAIL).read_to_end(&mut buf).map_err(io)?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        // Drop the partial first line.
        text = text.split_once('\n').map(|(_, r)| r.to_string()).unwrap_or_default();
    }
    Ok((text, meta.mtime()))
}

/// The first error (when it started) and the last four (how it is now), redacted.
pub(super) fn error_sample(errors: &[String]) -> Vec<String> {
    let mut out: Vec<String> = errors.first().map(|e| clip(e)).into_iter().collect();
    if errors.len() > 5 {
        out.push(format!("… {} more …", errors.len() - 5));
    }
    let tail = errors.len().saturating_sub(4).max(1);
    out.extend(errors.iter().skip(tail).map(|e| clip(e)));
    out
}

pub(super) fn clip(line: &str) -> String {
    let r = Redactor::global().text(line);
    if r.chars().count() > 200 { format!("{}…", r.chars().take(200).collect::<String>()) } else { r.into_owned() }
}
