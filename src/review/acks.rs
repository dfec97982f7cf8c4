//! Acknowledged findings: `vigil ack ID [--subject S] --reason R [--until DATE]`.
//!
//! An acknowledgement is a decision someone made and wrote down: the finding
//! stays visible in every report, but is not counted and does not fail
//! `--fail-on`, until the date it expires. Kept per audited host in
//! `acks.json`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use vigil_tools::Finding;
use vigil_tools::format::parse_date;

use super::Acknowledged;
use crate::state::{read_private, write_atomic};

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Finding id.
    pub id: String,
    /// Only this subject; every subject when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Why it is acceptable.
    pub reason: String,
    /// Last day it holds (YYYY-MM-DD); forever when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Who acknowledged it.
    pub by: String,
    /// When (YYYY-MM-DD).
    pub at: String,
}

impl Ack {
    /// True when it covers `f` on day `today` (days since the epoch).
    pub fn covers(&self, f: &Finding, today: i64) -> bool {
        self.id == f.id && self.subject.as_deref().is_none_or(|s| s == f.subject) && self.active(today)
    }

    /// True until its `until` date has passed.
    pub fn active(&self, today: i64) -> bool {
        match self.until.as_deref().and_then(parse_date) {
            Some(d) => day_number(d) >= today,
            None => true,
        }
    }
}

/// Days since the Unix epoch of a date.
pub fn day_number(d: time::Date) -> i64 {
    i64::from(d.to_julian_day()) - 2_440_588
}

/// A date from days since the epoch.
pub fn date_of_day(day: i64) -> String {
    vigil_tools::format::day_date(day)
}

fn path(dir: &Path) -> std::path::PathBuf {
    dir.join("acks.json")
}

/// Load the acknowledgements of a host (none when the file is absent).
pub fn load(dir: &Path) -> Result<Vec<Ack>> {
    match read_private(&path(dir)) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("{} is corrupt", path(dir).display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path(dir).display())),
    }
}

/// Add (or replace, for the same id and subject) an acknowledgement.
pub fn add(dir: &Path, ack: Ack) -> Result<()> {
    let mut all = load(dir)?;
    all.retain(|a| !(a.id == ack.id && a.subject == ack.subject));
    all.push(ack);
    write_atomic(&path(dir), &serde_json::to_vec_pretty(&all)?)
}

/// Remove the acknowledgements of `id` (only the one for `subject` when given); how many went.
pub fn remove(dir: &Path, id: &str, subject: Option<&str>) -> Result<usize> {
    let mut all = load(dir)?;
    let before = all.len();
    all.retain(|a| !(a.id == id && subject.is_none_or(|s| a.subject.as_deref() == Some(s))));
    let gone = before - all.len();
    if gone > 0 {
        write_atomic(&path(dir), &serde_json::to_vec_pretty(&all)?)?;
    }
    Ok(gone)
}

/// Split findings into open and acknowledged.
pub fn split(findings: Vec<Finding>, acks: &[Ack], today: i64) -> (Vec<Finding>, Vec<Acknowledged>) {
    let mut open = Vec::new();
    let mut acked = Vec::new();
    for f in findings {
        match acks.iter().find(|a| a.covers(&f, today)) {
            Some(a) => acked.push(Acknowledged { finding: f, ack: a.clone() }),
            None => open.push(f),
        }
    }
    (open, acked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_tools::{Category, Severity};

    fn ack(subject: Option<&str>, until: Option<&str>) -> Ack {
        Ack {
            id: "ports.undocumented".into(),
            subject: subject.map(String::from),
            reason: "staging API".into(),
            until: until.map(String::from),
            by: "root".into(),
            at: "2026-11-01".into(),
        }
    }

    #[test]
    fn acks_cover_by_id_subject_and_date() {
        let f = Finding::new("ports.undocumented", Severity::Medium, Category::Ports, "tcp:8080", "t");
        let today = day_number(parse_date("2026-11-27").unwrap());
        assert!(ack(None, None).covers(&f, today));
        assert!(ack(Some("tcp:8080"), Some("2026-11-27")).covers(&f, today));
        assert!(!ack(Some("tcp:8081"), None).covers(&f, today));
        assert!(!ack(None, Some("2026-11-26")).covers(&f, today), "expired yesterday");
        let (open, acked) = split(vec![f.clone()], &[ack(None, Some("2026-11-26"))], today);
        assert_eq!((open.len(), acked.len()), (1, 0));
        assert_eq!(date_of_day(today), "2026-11-27");
    }
}
