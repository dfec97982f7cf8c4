//! Saved reviews, per audited host, and the comparison with the previous one.
//!
//! Each review is written to `reviews/<timestamp>.json` in the host's state
//! directory (0600, atomically); the newest `review.keep_reviews` are kept.
//! Comparing by `(id, subject)` says which findings are new and which were
//! resolved; comparing snapshots says what changed on the host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::snapshot::Snapshot;
use super::{Acknowledged, Changes, FindingRef, Review};
use crate::state::{ensure_private_dir, read_private, write_atomic};
use vigil_tools::Finding;

fn dir(host_dir: &Path) -> PathBuf {
    host_dir.join("reviews")
}

/// File names of saved reviews, oldest first.
pub fn list(host_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir(host_dir)) else { return Vec::new() };
    let mut v: Vec<PathBuf> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    v.sort();
    v
}

/// Load one saved review.
pub fn load(path: &Path) -> Result<Review> {
    let b = read_private(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&b).with_context(|| format!("{} is not a vigil review", path.display()))
}

/// The newest saved review, if any. A corrupt newest file is skipped for an older one.
pub fn latest(host_dir: &Path) -> Result<Option<Review>> {
    for p in list(host_dir).iter().rev() {
        if let Ok(r) = load(p) {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// Every saved review that parses, oldest first.
pub fn all(host_dir: &Path) -> Vec<Review> {
    list(host_dir).iter().filter_map(|p| load(p).ok()).collect()
}

/// Save a review and prune old ones; returns its path.
pub fn save(host_dir: &Path, review: &Review, keep: usize) -> Result<PathBuf> {
    let d = dir(host_dir);
    ensure_private_dir(&d)?;
    let stamp: String = review.generated_at.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let mut path = d.join(format!("{stamp}.json"));
    let mut n = 1;
    while path.exists() {
        path = d.join(format!("{stamp}-{n}.json"));
        n += 1;
    }
    write_atomic(&path, &serde_json::to_vec(review)?)?;
    let files = list(host_dir);
    if files.len() > keep.max(1) {
        for old in &files[..files.len() - keep.max(1)] {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(path)
}

fn refs(findings: &[Finding]) -> BTreeSet<(String, String)> {
    findings.iter().map(|f| (f.id.clone(), f.subject.clone())).collect()
}

fn to_ref(f: &Finding) -> FindingRef {
    FindingRef {
        id: f.id.clone(),
        subject: f.subject.clone(),
        severity: Some(f.severity),
        title: Some(f.title.clone()),
    }
}

/// What changed since `previous` (everything is "new" on a first review? no: nothing is,
/// a first review has no baseline, so `new` stays empty and `since` absent).
pub fn compare(previous: Option<&Review>, open: &[Finding], acked: &[Acknowledged], snap: &Snapshot) -> Changes {
    let Some(prev) = previous else { return Changes::default() };
    let mut before = refs(&prev.findings);
    before.extend(prev.acknowledged.iter().map(|a| (a.finding.id.clone(), a.finding.subject.clone())));
    let mut now = refs(open);
    now.extend(acked.iter().map(|a| (a.finding.id.clone(), a.finding.subject.clone())));
    let new = open.iter().filter(|f| !before.contains(&(f.id.clone(), f.subject.clone()))).map(to_ref).collect();
    let resolved = prev
        .findings
        .iter()
        .chain(prev.acknowledged.iter().map(|a| &a.finding))
        .filter(|f| !now.contains(&(f.id.clone(), f.subject.clone())))
        .map(to_ref)
        .collect();
    Changes { since: Some(prev.generated_at.clone()), new, resolved, host: prev.snapshot.diff(snap) }
}
