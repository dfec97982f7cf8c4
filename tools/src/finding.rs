//! `Finding`: what a review reports, in one shape for every tool.
//!
//! A finding has a stable `id` (`ports.exposed-datastore`) and a `subject`
//! (`0.0.0.0:9200`), so reviews a month apart can be compared by
//! `(id, subject)`. Its `category` is one of the seven patterns (see
//! `docs/architecture.md`). Evidence says what was seen, never a secret.
//! [`KNOWN_IDS`] lists every id a check can produce.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every finding id a check can produce (collected from the source by `build.rs`), sorted.
pub const KNOWN_IDS: &[&str] = include!(concat!(env!("OUT_DIR"), "/finding_ids.rs"));

/// The known ids closest to `id` (edit distance, at most `n`), for "did you mean".
pub fn closest_ids(id: &str, n: usize) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = KNOWN_IDS.iter().map(|k| (distance(id, k), *k)).collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, k)| k).collect()
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A fact worth knowing; nothing to fix.
    Info,
    /// Worth fixing when convenient.
    Low,
    /// Fix this month.
    Medium,
    /// Fix this week.
    High,
    /// Fix today.
    Critical,
}

impl Severity {
    /// All severities, most severe first.
    pub const ALL: [Severity; 5] =
        [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parse a lowercase name.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the seven breach patterns a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// 1: pattern-based, reused or weak passwords.
    Credentials,
    /// 2: updates put off.
    Updates,
    /// 3: staging that became production: firewall off, no TLS, debug on.
    Hardening,
    /// 4: backups that silently stopped.
    Backups,
    /// 5: the open port nobody remembered.
    Ports,
    /// 6: containers from unknown images.
    Containers,
    /// 7: accounts that outlived their owner.
    Accounts,
}

impl Category {
    /// All categories in pattern order.
    pub const ALL: [Category; 7] = [
        Category::Credentials,
        Category::Updates,
        Category::Hardening,
        Category::Backups,
        Category::Ports,
        Category::Containers,
        Category::Accounts,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Credentials => "credentials",
            Category::Updates => "updates",
            Category::Hardening => "hardening",
            Category::Backups => "backups",
            Category::Ports => "ports",
            Category::Containers => "containers",
            Category::Accounts => "accounts",
        }
    }

    /// The pattern number (1–7) of the seven mistakes (`docs/architecture.md`).
    pub fn pattern(self) -> u8 {
        self as u8 + 1
    }

    /// A short title for the pattern.
    pub fn title(self) -> &'static str {
        match self {
            Category::Credentials => "Weak or patterned passwords",
            Category::Updates => "Updates put off",
            Category::Hardening => "Staging settings in production",
            Category::Backups => "Backups that stopped",
            Category::Ports => "Forgotten open ports",
            Category::Containers => "Containers from unknown images",
            Category::Accounts => "Accounts that outlived their owner",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a review found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// Stable identifier, `category.kind`, e.g. `ports.exposed-datastore`.
    pub id: String,
    /// How bad it is.
    pub severity: Severity,
    /// Which breach pattern it belongs to.
    pub category: Category,
    /// One line for a human.
    pub title: String,
    /// What it is about: a user, a port, a site, a container.
    pub subject: String,
    /// What was seen (never a secret).
    pub evidence: Vec<String>,
    /// What to do about it.
    pub remediation: String,
}

impl Finding {
    /// Start a finding; add evidence and remediation with the builder methods.
    pub fn new(
        id: impl Into<String>,
        severity: Severity,
        category: Category,
        subject: impl Into<String>,
        title: impl Into<String>,
    ) -> Self {
        Finding {
            id: id.into(),
            severity,
            category,
            title: title.into(),
            subject: subject.into(),
            evidence: Vec::new(),
            remediation: String::new(),
        }
    }

    /// Add one line of evidence.
    pub fn evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    /// Set the remediation.
    pub fn fix(mut self, remediation: impl Into<String>) -> Self {
        self.remediation = remediation.into();
        self
    }

    /// The key reviews are compared by.
    pub fn key(&self) -> (String, String) {
        (self.id.clone(), self.subject.clone())
    }

    /// A check that could not run: a `high` finding of its own, never a silent skip.
    pub fn could_not_check(category: Category, tool: &str, what: &str, error: impl fmt::Display) -> Self {
        Finding::new(
            format!("{category}.check-failed"),
            Severity::High,
            category,
            format!("{tool}: {what}"),
            format!("Could not check {what}"),
        )
        .evidence(error.to_string())
        .fix("Run vigil as root (or give it read access) so this check can run; until then this part of the host is unreviewed.")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_catalogue_knows_the_checks_ids_and_suggests_the_closest() {
        for id in ["ports.exposed-datastore", "accounts.admin-unused", "credentials.weak-db-password", "backups.stale"]
        {
            assert!(KNOWN_IDS.contains(&id), "{id} missing from {KNOWN_IDS:?}");
        }
        assert!(KNOWN_IDS.len() > 60, "{}", KNOWN_IDS.len());
        assert!(KNOWN_IDS.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        // (Built at run time: a literal here would itself land in the catalogue.)
        let typo = format!("ports.{}", "exposed-datstore");
        assert!(!KNOWN_IDS.contains(&typo.as_str()));
        assert_eq!(closest_ids(&typo, 1), vec!["ports.exposed-datastore"]);
    }

    use super::*;

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Info < Severity::Low);
        assert_eq!(Severity::parse("HIGH"), Some(Severity::High));
        assert_eq!(Severity::parse("urgent"), None);
    }

    #[test]
    fn finding_serialises_in_the_documented_shape() {
        let f = Finding::new("ports.exposed-datastore", Severity::Critical, Category::Ports, "0.0.0.0:9200", "t")
            .evidence("e")
            .fix("r");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["category"], "ports");
        assert_eq!(v["subject"], "0.0.0.0:9200");
        assert_eq!(Category::Ports.pattern(), 5);
    }
}
