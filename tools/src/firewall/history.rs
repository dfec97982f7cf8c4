//! The ruleset kept across reviews: `STATE/firewall-rules.json`, every
//! canonical rule with the date a review first saw it. A rule that appears
//! between two reviews is a decision somebody made ("I opened 9200 for
//! debugging last Tuesday"); a rule older than `review.rule_review_days` is
//! one nobody has looked at since. Acknowledging it (`vigil ack
//! ports.firewall-rule-unreviewed --subject ID`) is how a human says "seen".

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RuleFact;
use crate::atomic::write_atomic;
use crate::finding::{Category, Finding, Severity};
use crate::format::parse_date;

/// The state file name under the state directory.
pub const FILE: &str = "firewall-rules.json";

/// What the file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleHistory {
    /// Format version.
    pub version: u32,
    /// Date of the review that wrote it.
    pub last_review: String,
    /// Rule → when it was first seen and where.
    pub rules: BTreeMap<String, SeenRule>,
}

/// One remembered rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeenRule {
    /// `YYYY-MM-DD`.
    pub first_seen: String,
    /// Where it was read.
    pub source: String,
}

/// Short stable id of a canonical rule line (12 hex digits of its SHA-256).
pub fn rule_hash(rule: &str) -> String {
    hex::encode(Sha256::digest(rule.as_bytes()))[..12].to_string()
}

/// What comparing with the last review gave.
#[derive(Debug, Default)]
pub struct Review {
    /// Rules gone since the last review.
    pub removed: Vec<String>,
    /// Date of the last review.
    pub last_review: Option<String>,
    /// Added and unreviewed rules.
    pub findings: Vec<Finding>,
}

fn days_between(a: &str, b: &str) -> Option<i64> {
    Some((parse_date(b)? - parse_date(a)?).whole_days())
}

/// Compare `rules` with the kept history, fill in their first-seen dates,
/// write the new history (unless nothing could be read: an unreadable
/// ruleset must not erase what was known).
#[expect(clippy::disallowed_methods, reason = "vigil's own state file, in its root-owned state directory")]
pub fn review(
    dir: &Path,
    today: &str,
    rules: &mut [RuleFact],
    review_days: u32,
    known: bool,
) -> Result<Review, String> {
    let path = dir.join(FILE);
    let previous: Option<RuleHistory> = match std::fs::read(&path) {
        Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut out = Review { last_review: previous.as_ref().map(|p| p.last_review.clone()), ..Default::default() };
    if !known {
        return Ok(out);
    }
    let mut next = RuleHistory { version: 1, last_review: today.to_string(), rules: BTreeMap::new() };
    for r in rules.iter_mut() {
        let seen = previous.as_ref().and_then(|p| p.rules.get(&r.rule));
        let first_seen = seen.map(|s| s.first_seen.clone()).unwrap_or_else(|| today.to_string());
        r.first_seen = Some(first_seen.clone());
        next.rules.insert(r.rule.clone(), SeenRule { first_seen: first_seen.clone(), source: r.source.clone() });
        match (&previous, seen) {
            (Some(p), None) => {
                let opens =
                    r.rule.contains(" from anywhere") && (r.rule.contains(": accept ") || r.rule.contains(": limit "));
                out.findings.push(
                    Finding::new(
                        "ports.firewall-rule-added",
                        if opens { Severity::Medium } else { Severity::Low },
                        Category::Ports,
                        r.id.clone(),
                        format!("Firewall rule added since the last review ({}): {}", p.last_review, r.rule),
                    )
                    .evidence(format!("rule: {}", r.rule))
                    .evidence(format!("source: {}", r.source))
                    .evidence(format!("not present at the review of {}", p.last_review))
                    .fix(format!(
                        "Confirm who added it and why; keep it and acknowledge with \
                         `vigil ack ports.firewall-rule-added --subject {} --reason …`, or remove it.",
                        r.id
                    )),
                );
            }
            (_, Some(s)) => {
                let age = days_between(&s.first_seen, today).unwrap_or(0);
                if age > i64::from(review_days) {
                    out.findings.push(
                        Finding::new(
                            "ports.firewall-rule-unreviewed",
                            Severity::Low,
                            Category::Ports,
                            r.id.clone(),
                            format!("Firewall rule not reviewed in {age} days: {}", r.rule),
                        )
                        .evidence(format!("rule: {}", r.rule))
                        .evidence(format!("source: {}", r.source))
                        .evidence(format!("first seen {}", s.first_seen))
                        .fix(format!(
                            "Check the rule is still needed; then `vigil ack ports.firewall-rule-unreviewed \
                             --subject {} --reason … --until DATE`, or remove it.",
                            r.id
                        )),
                    );
                }
            }
            (None, None) => {}
        }
    }
    if let Some(p) = &previous {
        out.removed = p.rules.keys().filter(|k| !next.rules.contains_key(*k)).cloned().collect();
    }
    let bytes = serde_json::to_vec_pretty(&next).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir)
        .and_then(|()| write_atomic(&path, &bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}
