//! Debian version comparison, exactly as dpkg does it (`lib/dpkg/version.c`).
//!
//! A pending update is "candidate > installed", so a wrong comparison is a
//! missed security update or a false alarm: `1.0~rc1 < 1.0`, `1:1.0 > 2.0`,
//! `1.0-1 < 1.0-1+deb12u1`, and letters sort before punctuation.

use std::cmp::Ordering;

/// A parsed `[epoch:]upstream[-revision]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebVersion<'a> {
    /// The epoch (0 when absent).
    pub epoch: u64,
    /// The upstream part.
    pub upstream: &'a str,
    /// The Debian revision ("" when absent, which sorts like "0").
    pub revision: &'a str,
}

impl<'a> DebVersion<'a> {
    /// Parse a version string leniently (as dpkg does when comparing).
    pub fn parse(v: &'a str) -> DebVersion<'a> {
        let v = v.trim();
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
            _ => (0, v),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        DebVersion { epoch, upstream, revision }
    }
}

/// The sort weight of one byte in a non-digit run (`None` = end of string).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: compare upstream versions or revisions.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        let mut first_diff: i32 = 0;
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        while digit(a, i) && digit(b, j) {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

/// Compare two Debian version strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (DebVersion::parse(a), DebVersion::parse(b));
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream, b.upstream))
        .then_with(|| verrevcmp(a.revision, b.revision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn parses_epoch_upstream_revision() {
        assert_eq!(DebVersion::parse("1:2.3-4"), DebVersion { epoch: 1, upstream: "2.3", revision: "4" });
        assert_eq!(DebVersion::parse("2.3"), DebVersion { epoch: 0, upstream: "2.3", revision: "" });
        // The revision is after the *last* hyphen.
        assert_eq!(DebVersion::parse("1.2-3-4").upstream, "1.2-3");
        assert_eq!(DebVersion::parse("1.2-3-4").revision, "4");
    }

    #[test]
    fn dpkg_ordering() {
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1.0a", "1.0+", Less), // letters before punctuation
            ("1.0", "1.0a", Less),
            ("1:1.0", "2.0", Greater),
            ("0:1.0", "1.0", Equal),
            ("1.0-1", "1.0-1+deb12u1", Less),
            ("3.0.15-1~deb12u1", "3.0.17-1~deb12u2", Less),
            ("3.0.11-1~deb12u2", "3.0.11-1~deb12u1", Greater),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("1.0-0", "1.0", Equal), // absent revision sorts like "0"
            ("001", "1", Equal),
            ("1.002", "1.2", Equal),
            ("7.4.33-1+deb11u5", "7.4.33-1+deb11u10", Less),
            ("1:7.4.33-22+0~20251121.99+debian12~1.gbp1", "7.4.99", Greater),
            ("10.11.6-0+deb12u1", "1:10.11.6-0+deb12u1", Less),
            ("2.0.0~beta1", "2.0.0~alpha9", Greater),
            ("1.2.3", "1.2.3.0", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
