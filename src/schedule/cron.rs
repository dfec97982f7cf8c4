//! Cron expressions: parsing, the next run, and the systemd `OnCalendar=` equivalent.
//!
//! Five fields (`minute hour day-of-month month day-of-week`), each `*`, a
//! number, a range `a-b`, a step `*/n` or `a-b/n`, or a comma list of those;
//! month and weekday names (`jan`, `mon`) are accepted. As in cron, when both
//! day fields are restricted a day matching either one runs.

use std::collections::BTreeSet;

use anyhow::{Result, bail};

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The expression as given (normalised spacing).
    pub expr: String,
    minutes: BTreeSet<u32>,
    hours: BTreeSet<u32>,
    days: BTreeSet<u32>,
    months: BTreeSet<u32>,
    weekdays: BTreeSet<u32>,
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u32) -> Option<u32> {
    s.parse().ok().or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(s)).map(|i| i as u32 + offset))
}

fn field(spec: &str, lo: u32, hi: u32, names: &[&str], offset: u32, what: &str) -> Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)),
            None => (part, Some(1)),
        };
        let Some(step) = step else { bail!("cron {what} `{part}`: the step must be a positive number") };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            match (value(a, names, offset), value(b, names, offset)) {
                (Some(a), Some(b)) => (a, b),
                _ => bail!("cron {what} `{part}` is not a range like 1-5"),
            }
        } else {
            match value(range, names, offset) {
                Some(v) => (v, if part.contains('/') { hi } else { v }),
                None => bail!("cron {what} `{part}` is not a number"),
            }
        };
        if a < lo || b > hi || a > b {
            bail!("cron {what} `{part}` is outside {lo}-{hi}");
        }
        out.extend((a..=b).step_by(step as usize));
    }
    Ok(out)
}

impl Cron {
    /// Parse `m h dom mon dow`.
    pub fn parse(expr: &str) -> Result<Cron> {
        let f: Vec<&str> = expr.split_whitespace().collect();
        if f.len() != 5 {
            bail!("cron expression `{expr}` must have 5 fields: minute hour day-of-month month day-of-week");
        }
        let mut weekdays = field(f[4], 0, 7, &DAYS, 0, "day-of-week")?;
        if weekdays.remove(&7) {
            weekdays.insert(0);
        }
        Ok(Cron {
            expr: f.join(" "),
            minutes: field(f[0], 0, 59, &[], 0, "minute")?,
            hours: field(f[1], 0, 23, &[], 0, "hour")?,
            days: field(f[2], 1, 31, &[], 0, "day-of-month")?,
            months: field(f[3], 1, 12, &MONTHS, 1, "month")?,
            weekdays,
            days_star: f[2] == "*",
            weekdays_star: f[4] == "*",
        })
    }

    fn day_matches(&self, t: &time::OffsetDateTime) -> bool {
        let dom = self.days.contains(&u32::from(t.day()));
        let dow = self.weekdays.contains(&u32::from(t.weekday().number_days_from_sunday()));
        match (self.days_star, self.weekdays_star) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// The first run strictly after `after` (Unix seconds, UTC), within about a year.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = time::OffsetDateTime::from_unix_timestamp(after - after.rem_euclid(60) + 60).ok()?;
        let limit = after + 400 * 86_400;
        while t.unix_timestamp() < limit {
            if !self.months.contains(&u32::from(u8::from(t.month()))) || !self.day_matches(&t) {
                t = t.replace_time(time::Time::MIDNIGHT) + time::Duration::days(1);
                continue;
            }
            if !self.hours.contains(&u32::from(t.hour())) {
                t = t.replace_minute(0).ok()?.replace_second(0).ok()? + time::Duration::hours(1);
                continue;
            }
            if self.minutes.contains(&u32::from(t.minute())) {
                return Some(t.unix_timestamp());
            }
            t += time::Duration::minutes(1);
        }
        None
    }

    /// The systemd `OnCalendar=` equivalent.
    pub fn on_calendar(&self) -> String {
        let list =
            |s: &BTreeSet<u32>, width: usize| s.iter().map(|v| format!("{v:0width$}")).collect::<Vec<_>>().join(",");
        let full = |s: &BTreeSet<u32>, lo: u32, hi: u32| s.len() as u32 == hi - lo + 1;
        let dow = if self.weekdays_star {
            String::new()
        } else {
            let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
            format!("{} ", self.weekdays.iter().map(|d| names[*d as usize]).collect::<Vec<_>>().join(","))
        };
        let months = if full(&self.months, 1, 12) { "*".to_string() } else { list(&self.months, 2) };
        let days = if self.days_star { "*".to_string() } else { list(&self.days, 2) };
        let hours = if full(&self.hours, 0, 23) { "*".to_string() } else { list(&self.hours, 2) };
        let minutes = if full(&self.minutes, 0, 59) { "*".to_string() } else { list(&self.minutes, 2) };
        format!("{dow}*-{months}-{days} {hours}:{minutes}:00")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap().unix_timestamp()
    }

    #[test]
    fn parses_and_finds_the_next_run() {
        let c = Cron::parse("17 3 1 * *").unwrap();
        assert_eq!(c.next_after(at("2026-11-27T10:00:00Z")), Some(at("2026-12-01T03:17:00Z")));
        let w = Cron::parse("0 4 * * mon").unwrap();
        assert_eq!(w.next_after(at("2026-11-27T10:00:00Z")), Some(at("2026-11-30T04:00:00Z")));
        let s = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(s.next_after(at("2026-11-27T10:01:00Z")), Some(at("2026-11-27T10:15:00Z")));
        // Day-of-month OR day-of-week, as cron does.
        let both = Cron::parse("0 0 13 * 5").unwrap();
        assert_eq!(both.next_after(at("2026-11-27T10:00:00Z")), Some(at("2026-12-04T00:00:00Z")));
        assert_eq!(Cron::parse("0 0 * * 7").unwrap().weekdays, [0].into());
    }

    #[test]
    fn bad_expressions_are_clear_errors() {
        assert!(Cron::parse("* * *").unwrap_err().to_string().contains("5 fields"));
        assert!(Cron::parse("61 * * * *").unwrap_err().to_string().contains("outside 0-59"));
        assert!(Cron::parse("x * * * *").unwrap_err().to_string().contains("not a number"));
        assert!(Cron::parse("*/0 * * * *").unwrap_err().to_string().contains("positive"));
    }

    #[test]
    fn on_calendar_equivalents() {
        assert_eq!(Cron::parse("17 3 1 * *").unwrap().on_calendar(), "*-*-01 03:17:00");
        assert_eq!(Cron::parse("0 4 * * 1").unwrap().on_calendar(), "Mon *-*-* 04:00:00");
        assert_eq!(Cron::parse("0,30 * * 1-3 *").unwrap().on_calendar(), "*-01,02,03-* *:00,30:00");
    }
}
