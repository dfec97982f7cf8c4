//! Version comparison the way WordPress and the Wordfence feed mean it.
//!
//! PHP's `version_compare` semantics (`6.4-RC1` < `6.4` < `6.4-pl1`, `dev` <
//! `alpha` < `beta` < `RC` < number < `pl`), except that trailing zero
//! release numbers do not count: `8.1` = `8.1.0`, as WordPress and the feed
//! treat them.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'a> {
    Num(u64),
    Word(&'a str),
}

/// Canonical parts, as PHP's `php_canonicalize_version` splits them:
/// `_ - +` are separators, and a change between digits and non-digits is one too.
fn parts(v: &str) -> Vec<Part<'_>> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).filter(|r| r.starts_with(|c: char| c.is_ascii_digit())).unwrap_or(v);
    let mut out = Vec::new();
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if matches!(c, b'.' | b'_' | b'-' | b'+') {
            i += 1;
            continue;
        }
        let start = i;
        let digit = c.is_ascii_digit();
        while i < bytes.len() && !matches!(bytes[i], b'.' | b'_' | b'-' | b'+') && bytes[i].is_ascii_digit() == digit {
            i += 1;
        }
        let s = &v[start..i];
        out.push(if digit { Part::Num(s.parse().unwrap_or(u64::MAX)) } else { Part::Word(s) });
    }
    // Trailing zeros of the leading numeric release do not count: 8.1.0 = 8.1, 6.4.0-RC1 = 6.4-RC1.
    let release_end = out.iter().position(|p| matches!(p, Part::Word(_))).unwrap_or(out.len());
    let mut keep = release_end;
    while keep > 1 && out[keep - 1] == Part::Num(0) {
        keep -= 1;
    }
    out.drain(keep..release_end);
    out
}

/// PHP's special-form order; a number sits at `#` (4). Unknown words are below `dev`.
fn form_order(p: &Part<'_>) -> i32 {
    match p {
        Part::Num(_) => 4,
        Part::Word(w) => {
            let w = w.as_bytes();
            // PHP matches by prefix of the part (`strncmp(form, name, strlen(name))`).
            const FORMS: [(&str, i32); 9] =
                [("dev", 0), ("alpha", 1), ("a", 1), ("beta", 2), ("b", 2), ("RC", 3), ("rc", 3), ("pl", 5), ("p", 5)];
            FORMS.iter().find(|(name, _)| w.starts_with(name.as_bytes())).map(|(_, o)| *o).unwrap_or(-6)
        }
    }
}

fn cmp_part(a: &Part<'_>, b: &Part<'_>) -> Ordering {
    match (a, b) {
        (Part::Num(x), Part::Num(y)) => x.cmp(y),
        _ => form_order(a).cmp(&form_order(b)),
    }
}

/// Compare two version strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_parts(&parts(a), &parts(b))
}

fn compare_parts(pa: &[Part<'_>], pb: &[Part<'_>]) -> Ordering {
    for (x, y) in pa.iter().zip(pb.iter()) {
        let c = cmp_part(x, y);
        if c != Ordering::Equal {
            return c;
        }
    }
    match pa.len().cmp(&pb.len()) {
        Ordering::Equal => Ordering::Equal,
        // Longer with a number: newer (6.4.1 > 6.4); with a word: compared to a number (6.4-RC1 < 6.4).
        Ordering::Greater => match &pa[pb.len()] {
            Part::Num(_) => Ordering::Greater,
            w => form_order(w).cmp(&4),
        },
        Ordering::Less => match &pb[pa.len()] {
            Part::Num(_) => Ordering::Less,
            w => 4.cmp(&form_order(w)),
        },
    }
}

/// One owned part of a parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedPart {
    Num(u64),
    Word(Box<str>),
}

/// A version parsed once, for comparing many times (the feed's range bounds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Box<[OwnedPart]>);

impl Version {
    /// Parse a version string.
    pub fn new(v: &str) -> Version {
        Version(
            parts(v)
                .into_iter()
                .map(|p| match p {
                    Part::Num(n) => OwnedPart::Num(n),
                    Part::Word(w) => OwnedPart::Word(w.into()),
                })
                .collect(),
        )
    }

    fn borrowed(&self) -> Vec<Part<'_>> {
        self.0
            .iter()
            .map(|p| match p {
                OwnedPart::Num(n) => Part::Num(*n),
                OwnedPart::Word(w) => Part::Word(w),
            })
            .collect()
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // Fast path: purely numeric versions (almost all of them) compare without allocating.
        if let (Some(a), Some(b)) = (numeric(&self.0), numeric(&other.0)) {
            return a.cmp(b);
        }
        compare_parts(&self.borrowed(), &other.borrowed())
    }
}

fn numeric(p: &[OwnedPart]) -> Option<impl Iterator<Item = u64> + Clone + '_> {
    p.iter().all(|x| matches!(x, OwnedPart::Num(_))).then(|| {
        p.iter().map(|x| match x {
            OwnedPart::Num(n) => *n,
            OwnedPart::Word(_) => 0,
        })
    })
}

/// True when the text looks like a version at all (starts with a digit after an optional `v`).
pub fn looks_like_version(v: &str) -> bool {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    v.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn wordpress_style_comparison() {
        assert_eq!(compare("8.1", "8.1.0"), Equal);
        assert_eq!(compare("8.1.0", "8.1"), Equal);
        assert_eq!(compare("6.4-RC1", "6.4"), Less);
        assert_eq!(compare("6.4", "6.4-RC1"), Greater);
        assert_eq!(compare("6.4.0-RC1", "6.4-RC1"), Equal);
        assert_eq!(compare("6.4-beta2", "6.4-RC1"), Less);
        assert_eq!(compare("6.4-alpha", "6.4-beta"), Less);
        assert_eq!(compare("6.4-dev", "6.4-alpha"), Less);
        assert_eq!(compare("6.4-pl1", "6.4"), Greater);
        assert_eq!(compare("6.4.1", "6.4"), Greater);
        assert_eq!(compare("6.10", "6.9.9"), Greater);
        assert_eq!(compare("8.0.2", "8.1.0"), Less);
        assert_eq!(compare("1.2.3a", "1.2.3"), Less);
        assert_eq!(compare("10.0", "9.99"), Greater);
        assert_eq!(compare("5.0.2", "5.0.2"), Equal);
        assert_eq!(compare("2.0", "2.0.0.1"), Less);
        assert_eq!(compare("v1.2", "1.2"), Equal);
        for (a, b) in [("8.1", "8.1.0"), ("6.4-RC1", "6.4"), ("6.10", "6.9.9"), ("2.0", "2.0.0.1"), ("6.4-pl1", "6.4")]
        {
            assert_eq!(Version::new(a).cmp(&Version::new(b)), compare(a, b), "{a} vs {b}");
            assert_eq!(Version::new(b).cmp(&Version::new(a)), compare(b, a), "{b} vs {a}");
        }
    }
}
