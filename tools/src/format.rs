//! How vigil writes dates, times, byte sizes and error chains for people.
//!
//! One formatter each, so a date reads the same in a finding, a plan, a
//! report and a status line, and a fix to one (a time zone, a unit) reaches
//! every output. A leaf module: it depends on nothing else in the crate, so
//! any module (read-only or mutating, in either crate) may use it.

/// `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Parse `YYYY-MM-DD` (surrounding spaces ignored).
pub fn parse_date(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &fmt).ok()
}

/// The UTC date of a Unix time (`Date::MIN` when out of range).
pub fn date_of_unix(secs: i64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp(secs).map(|t| t.date()).unwrap_or(time::Date::MIN)
}

/// The UTC date of a Unix time as `YYYY-MM-DD` (the number itself when out of range).
pub fn unix_date(secs: i64) -> String {
    utc(secs, |t| format_date(t.date()))
}

/// The date of a day number (days since 1970-01-01) as `YYYY-MM-DD` (`day N` when out of range).
pub fn day_date(day: i64) -> String {
    day.checked_add(2_440_588)
        .and_then(|j| i32::try_from(j).ok())
        .and_then(|j| time::Date::from_julian_day(j).ok())
        .map(format_date)
        .unwrap_or_else(|| format!("day {day}"))
}

/// `2026-11-27 03:00 UTC`.
pub fn date_time(secs: i64) -> String {
    utc(secs, |t| format!("{} {:02}:{:02} UTC", format_date(t.date()), t.hour(), t.minute()))
}

/// `2026-11-27 03:00:09 UTC`.
pub fn date_time_secs(secs: i64) -> String {
    utc(secs, |t| format!("{} {:02}:{:02}:{:02} UTC", format_date(t.date()), t.hour(), t.minute(), t.second()))
}

/// `2026-11-27T03:00:09Z` (RFC 3339, whole seconds; empty when out of range).
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn utc(secs: i64, f: impl FnOnce(time::OffsetDateTime) -> String) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs).map(f).unwrap_or_else(|_| secs.to_string())
}

/// A byte count for people, in binary units as `ls -lh` and `du -h` count:
/// `512 B`, `16 MiB`, `6.6 KiB`, `4.0 GiB` is written `4 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 { format!("{v:.0} {}", UNITS[u]) } else { format!("{v:.1} {}", UNITS[u]) }
}

/// An error and its causes on one line: `outer: cause: root cause`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_read_the_same_everywhere() {
        assert_eq!(date_time(1_796_007_609), "2026-11-30 03:00 UTC");
        assert_eq!(date_time_secs(1_796_007_609), "2026-11-30 03:00:09 UTC");
        assert_eq!(unix_date(1_796_007_609), "2026-11-30");
        assert_eq!(rfc3339(1_796_007_609), "2026-11-30T03:00:09Z");
        assert_eq!(day_date(0), "1970-01-01");
        assert_eq!(parse_date(" 2026-10-01 ").map(format_date).as_deref(), Some("2026-10-01"));
        assert_eq!(date_of_unix(86_400 * 365), parse_date("1971-01-01").unwrap());
        assert_eq!(date_time(i64::MAX), i64::MAX.to_string(), "out of range shows the number, never panics");
        assert_eq!(day_date(i64::MAX), format!("day {}", i64::MAX));
    }

    #[test]
    fn byte_sizes_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(6796), "6.6 KiB");
        assert_eq!(human_bytes(16 << 20), "16 MiB");
        assert_eq!(human_bytes(4 << 30), "4 GiB");
        assert!(human_bytes(u64::MAX).ends_with(" TiB"));
    }

    #[test]
    fn an_error_chain_names_every_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("cannot read the feed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&e), "cannot read the feed: disk on fire");
    }
}
