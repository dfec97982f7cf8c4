//! Judging database passwords locally: weak, reused, or one template for all.
//!
//! Each `DB_PASSWORD` is judged on its own (zxcvbn's estimate, length, a
//! known-weak list, the "word + year + symbol" shape, the site's own names in
//! it), then across sites: identical passwords are found by comparing
//! HMAC-SHA256 digests under a random key made for this process and never
//! stored, and passwords built on one template (same word-digits-year-symbol
//! structure, or the same first or last characters) are grouped, because one
//! leaked `wp-config.php` then hands an attacker all the others. What leaves
//! this module is a judgement and the sites concerned, never a password, a
//! fragment of one or a digest.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The judgement of one password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Why it is weak; empty when it is not.
    pub reasons: Vec<String>,
    /// True when it falls to an offline or online guess quickly (not just short).
    pub guessable: bool,
}

impl Judgement {
    /// True when any weakness was found.
    pub fn weak(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Passwords attackers try first (compared case-insensitively, also with trailing digits/symbols removed).
const KNOWN_WEAK: [&str; 40] = [
    "password",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "admin",
    "administrator",
    "root",
    "toor",
    "wordpress",
    "wp",
    "mysql",
    "mariadb",
    "database",
    "db",
    "secret",
    "changeme",
    "letmein",
    "welcome",
    "qwerty",
    "qwertz",
    "azerty",
    "abc",
    "abcdef",
    "test",
    "testing",
    "default",
    "master",
    "dragon",
    "monkey",
    "iloveyou",
    "trustno1",
    "login",
    "pass",
    "user",
    "guest",
    "demo",
    "staging",
    "dev",
    "password_here",
    "username_here",
];

/// The shortest password not called short.
pub const MIN_LENGTH: usize = 12;

fn strip_decoration(s: &str) -> &str {
    s.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation())
}

fn is_year(run: &str) -> bool {
    run.len() == 4 && (run.starts_with("19") || run.starts_with("20")) && run.bytes().all(|b| b.is_ascii_digit())
}

/// Runs of letters, digits and other characters.
fn runs(pw: &str) -> Vec<(char, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let class = |c: char| {
        if c.is_alphabetic() {
            'W'
        } else if c.is_ascii_digit() {
            'D'
        } else {
            'S'
        }
    };
    let mut prev: Option<char> = None;
    for (i, c) in pw.char_indices() {
        let k = class(c);
        if prev.is_some_and(|p| p != k) {
            out.push((prev.unwrap_or('S'), &pw[start..i]));
            start = i;
        }
        prev = Some(k);
    }
    if let Some(p) = prev {
        out.push((p, &pw[start..]));
    }
    out
}

/// The template of a human-made password: `W D S Y S` for "Client1-2024!" (word, digits,
/// symbol, year, symbol). `None` for passwords with too many runs to be a template
/// (random ones) or with no word in them.
pub fn template(pw: &str) -> Option<String> {
    let r = runs(pw);
    if r.len() < 2 || r.len() > 6 || !r.iter().any(|(k, s)| *k == 'W' && s.chars().count() >= 3) {
        return None;
    }
    Some(
        r.iter()
            .map(|(k, s)| match k {
                'D' if is_year(s) => "Y".to_string(),
                'S' => format!("S{}", s.chars().count()),
                k => k.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Words for a template, for evidence: "a word, digits, a symbol, a year, a symbol".
pub fn describe_template(t: &str) -> String {
    t.split(' ')
        .map(|p| match p.chars().next() {
            Some('W') => "a word",
            Some('D') => "digits",
            Some('Y') => "a year",
            _ => "a symbol",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// True for "word + (digits) + year + symbol" passwords like "Company2024!" or "Client1-2024!".
pub fn word_year_symbol(pw: &str) -> bool {
    let r = runs(pw);
    let Some(w) = r.first() else {
        return false;
    };
    w.0 == 'W'
        && r.len() <= 5
        && r.iter().any(|(k, s)| *k == 'D' && is_year(s))
        && r.iter().skip(1).all(|(k, s)| *k != 'W' || s.len() <= 2)
}

/// Judge one password; `context` are the site's own names (database, user, host).
pub fn judge(pw: &str, context: &[&str]) -> Judgement {
    let mut j = Judgement::default();
    if pw.is_empty() {
        j.reasons.push("the database password is empty".into());
        j.guessable = true;
        return j;
    }
    let lower = pw.to_lowercase();
    let core = strip_decoration(&lower);
    if KNOWN_WEAK.contains(&lower.as_str()) || KNOWN_WEAK.contains(&core) {
        j.reasons.push("it is a well-known weak password (or one with digits or symbols added)".into());
        j.guessable = true;
    }
    if word_year_symbol(pw) {
        j.reasons.push("it is a word followed by a year and a symbol, the first shape attackers try".into());
        j.guessable = true;
    }
    for c in context.iter().map(|c| c.to_lowercase()) {
        let c = c.trim();
        if c.len() >= 4 && lower.contains(c) {
            j.reasons.push("it contains the site's own database, user or host name".into());
            j.guessable = true;
            break;
        }
    }
    let n = pw.chars().count();
    if n < MIN_LENGTH {
        j.reasons.push(format!("it is shorter than {MIN_LENGTH} characters"));
    }
    let e = zxcvbn::zxcvbn(pw, context);
    let score = e.score() as u8;
    if score <= 2 {
        j.reasons.push(format!(
            "a strength estimator (zxcvbn) rates it {score}/4: about 10^{:.0} guesses",
            e.guesses_log10()
        ));
        j.guessable = true;
    }
    j
}

/// The per-process key: random, in memory only, gone when vigil exits.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// A keyed digest for comparing passwords across sites in memory. Never print or store it.
#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
pub fn keyed_digest(pw: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key()).expect("HMAC takes any key length");
    mac.update(pw.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Groups of indices with identical passwords (each group ≥ 2).
pub fn identical(passwords: &[(usize, &str)]) -> Vec<Vec<usize>> {
    let mut by: BTreeMap<[u8; 32], Vec<usize>> = BTreeMap::new();
    for (i, pw) in passwords {
        by.entry(keyed_digest(pw)).or_default().push(*i);
    }
    by.into_values().filter(|g| g.len() > 1).collect()
}

/// How two different passwords are alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Likeness {
    /// Same word/digits/year/symbol template.
    Template,
    /// The same first characters (4 or more).
    Prefix,
    /// The same last characters (4 or more).
    Suffix,
}

#[cfg(test)]
fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
fn common_suffix(a: &str, b: &str) -> usize {
    a.chars().rev().zip(b.chars().rev()).take_while(|(x, y)| x == y).count()
}

/// A group of sites whose different passwords share one structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternGroup {
    /// Indices of the sites.
    pub members: Vec<usize>,
    /// How they are alike.
    pub likeness: Vec<Likeness>,
    /// The shared template, when there is one (in words, see [`describe_template`]).
    pub template: Option<String>,
}

/// Group passwords that are different but built alike (union of pairwise likeness).
///
/// The root of `i`'s group in a union-find forest, compressing the path.
fn find(p: &mut [usize], i: usize) -> usize {
    let mut r = i;
    while p[r] != r {
        r = p[r];
    }
    let mut i = i;
    while p[i] != r {
        let next = p[i];
        p[i] = r;
        i = next;
    }
    r
}

/// Two different passwords are alike when they share a template, their first
/// 4 characters or their last 4. Instead of comparing every pair (quadratic:
/// 50 million pairs on a 10,000-site host), passwords are bucketed by each of
/// the three keys: every bucket holding at least two different passwords links
/// all its members, which is the same union as the pairwise comparison.
pub fn patterns(passwords: &[(usize, &str)]) -> Vec<PatternGroup> {
    let n = passwords.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let templates: Vec<Option<String>> = passwords.iter().map(|(_, pw)| template(pw)).collect();
    let first4 = |pw: &str| (pw.chars().count() >= 4).then(|| pw.chars().take(4).collect::<String>());
    let last4 = |pw: &str| {
        let n = pw.chars().count();
        (n >= 4).then(|| pw.chars().skip(n - 4).collect::<String>())
    };
    let mut buckets: BTreeMap<(Likeness, String), Vec<usize>> = BTreeMap::new();
    for (i, (_, pw)) in passwords.iter().enumerate() {
        if let Some(t) = &templates[i] {
            buckets.entry((Likeness::Template, t.clone())).or_default().push(i);
        }
        if let Some(k) = first4(pw) {
            buckets.entry((Likeness::Prefix, k)).or_default().push(i);
        }
        if let Some(k) = last4(pw) {
            buckets.entry((Likeness::Suffix, k)).or_default().push(i);
        }
    }
    // Buckets whose members are not all the same password link them all.
    let linking: Vec<(Likeness, Vec<usize>)> = buckets
        .into_iter()
        .filter(|(_, m)| m.iter().any(|i| passwords[*i].1 != passwords[m[0]].1))
        .map(|((kind, _), m)| (kind, m))
        .collect();
    for (_, m) in &linking {
        for w in m.windows(2) {
            let (ra, rb) = (find(&mut parent, w[0]), find(&mut parent, w[1]));
            let root = ra.min(rb);
            parent[ra] = root;
            parent[rb] = root;
        }
    }
    let mut kinds: BTreeMap<usize, Vec<Likeness>> = BTreeMap::new();
    for (kind, m) in &linking {
        let r = find(&mut parent, m[0]);
        kinds.entry(r).or_default().push(*kind);
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups
        .into_iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|(root, m)| {
            let mut likeness = kinds.remove(&root).unwrap_or_default();
            likeness.sort();
            likeness.dedup();
            let t = templates[m[0]].clone().filter(|t| m.iter().all(|i| templates[*i].as_ref() == Some(t)));
            PatternGroup { members: m.iter().map(|i| passwords[*i].0).collect(), likeness, template: t }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original pairwise grouping, kept to check the bucketed one against it.
    fn patterns_pairwise(passwords: &[(usize, &str)]) -> Vec<PatternGroup> {
        let n = passwords.len();
        let mut parent: Vec<usize> = (0..n).collect();
        let templates: Vec<Option<String>> = passwords.iter().map(|(_, pw)| template(pw)).collect();
        let mut kinds: BTreeMap<usize, Vec<Likeness>> = BTreeMap::new();
        for a in 0..n {
            for b in a + 1..n {
                let (pa, pb) = (passwords[a].1, passwords[b].1);
                if pa == pb {
                    continue;
                }
                let mut why = Vec::new();
                if templates[a].is_some() && templates[a] == templates[b] {
                    why.push(Likeness::Template);
                }
                if common_prefix(pa, pb) >= 4 {
                    why.push(Likeness::Prefix);
                }
                if common_suffix(pa, pb) >= 4 {
                    why.push(Likeness::Suffix);
                }
                if why.is_empty() {
                    continue;
                }
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                let root = ra.min(rb);
                parent[ra] = root;
                parent[rb] = root;
                let mut merged = kinds.remove(&ra).unwrap_or_default();
                merged.extend(kinds.remove(&rb).unwrap_or_default());
                merged.extend(why);
                kinds.insert(root, merged);
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
        groups
            .into_iter()
            .filter(|(_, m)| m.len() > 1)
            .map(|(root, m)| {
                let mut likeness = kinds.remove(&root).unwrap_or_default();
                likeness.sort();
                likeness.dedup();
                let t = templates[m[0]].clone().filter(|t| m.iter().all(|i| templates[*i].as_ref() == Some(t)));
                PatternGroup { members: m.iter().map(|i| passwords[*i].0).collect(), likeness, template: t }
            })
            .collect()
    }

    #[test]
    fn bucketed_grouping_equals_the_pairwise_one() {
        let words = ["Client", "Acme", "Shop", "Bakery", "Hosting", "Dental"];
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..40 {
            let mut pws: Vec<String> = Vec::new();
            for _ in 0..(5 + round * 3) {
                let pw = match next(6) {
                    0 => format!("{}{}!", words[next(6) as usize], 2018 + next(8)),
                    1 => format!("{}{}-{}#", words[next(6) as usize], next(9), 2020 + next(5)),
                    2 => "Hosting2023#".to_string(),
                    3 => format!("xQ{}vT{}pL", next(1000), next(1000)),
                    4 => format!(
                        "{}{}",
                        "abcd".chars().cycle().skip(next(4) as usize).take(5).collect::<String>(),
                        next(99)
                    ),
                    _ => format!("é{}ü{}", next(50), words[next(6) as usize]),
                };
                pws.push(pw);
            }
            let input: Vec<(usize, &str)> = pws.iter().enumerate().map(|(i, p)| (i * 10, p.as_str())).collect();
            assert_eq!(patterns(&input), patterns_pairwise(&input), "round {round}: {pws:?}");
        }
    }

    #[test]
    fn weak_passwords_are_caught_and_strong_ones_pass() {
        for pw in ["Company2024!", "ClientName2024!", "Client1-2024!", "Password123!", "p@ssw0rd", "wordpress", "abc"] {
            let j = judge(pw, &["shop_db", "shop_user"]);
            assert!(j.weak() && j.guessable, "{pw}: {j:?}");
        }
        assert!(judge("shop_db-Xq9!vTz4#Lp2", &["shop_db"]).reasons.iter().any(|r| r.contains("own database")));
        for pw in ["dK8$mN2!vX9pLq3@", "q7R$wz!9Lm#2vXp4TyB8", "correct-horse-battery-staple-4kd9"] {
            let j = judge(pw, &["shop_db"]);
            assert!(!j.weak(), "{pw}: {j:?}");
        }
        assert!(judge("x9$Kq!7z", &[]).reasons.iter().any(|r| r.contains("shorter")));
        // The judgement never carries the password.
        let j = judge("Company2024!", &[]);
        assert!(!format!("{j:?}").contains("Company"));
    }

    #[test]
    fn templates_and_groups() {
        assert_eq!(template("Client1-2024!").as_deref(), Some("W D S1 Y S1"));
        assert_eq!(template("Client2-2024!"), template("Acme7-2023!"));
        assert_eq!(template("dK8$mN2!vX9pLq3@"), None, "random passwords have no template");
        assert_eq!(describe_template("W Y S1"), "a word, a year, a symbol");
        let pws = [(0, "Client1-2024!"), (1, "Client2-2024!"), (2, "Client2-2024!"), (3, "dK8$mN2!vX9pLq3@")];
        let same = identical(&pws);
        assert_eq!(same, vec![vec![1, 2]]);
        let g = patterns(&pws);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0].members, vec![0, 1, 2]);
        assert!(g[0].likeness.contains(&Likeness::Template));
        assert!(g[0].likeness.contains(&Likeness::Prefix));
        // Different, unrelated strong passwords are not a pattern.
        let g = patterns(&[(0, "dK8$mN2!vX9pLq3@"), (1, "q7R$wz!9Lm#2vXp4TyB8")]);
        assert!(g.is_empty(), "{g:?}");
        // Suffix alone: "Acme2024!" and "Globex2024!".
        let g = patterns(&[(5, "Acme-Shop-2024!"), (9, "Globex-xyz-2024!")]);
        assert_eq!(g[0].members, vec![5, 9]);
        assert_ne!(keyed_digest("a"), keyed_digest("b"));
        assert_eq!(keyed_digest("a"), keyed_digest("a"));
    }
}
