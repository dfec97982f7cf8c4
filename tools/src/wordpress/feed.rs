//! The Wordfence Intelligence vulnerability feed: streamed, indexed once.
//!
//! The production feed (v2/v3 shape) is one JSON object of ~42,000 records
//! keyed by id, ~160 MB. It is parsed straight from a buffered reader with a
//! serde visitor over the top-level map, so the file is never held whole nor
//! as a `serde_json::Value`: each record keeps only what a finding needs
//! (title, CVE, CVSS) and its `software[]` entries become compact version
//! ranges indexed by `(type, slug)`. The index is built once per process and
//! reused while the file's path, size and modification time stay the same.
//! The root crate downloads the feed itself (this crate has no HTTP client)
//! and calls [`validate_feed`] on the temporary file before the atomic rename.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::version::{self, Version};
use crate::finding::Severity;

/// The file name `vigil vulndb update` writes in the state directory.
pub const FEED_FILE: &str = "wordfence-vulnerabilities.json";

/// What is vulnerable: core, a plugin or a theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// WordPress itself (slug `wordpress`).
    Core,
    /// A plugin (normal or must-use).
    Plugin,
    /// A theme.
    Theme,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "core" => Some(Kind::Core),
            "plugin" => Some(Kind::Plugin),
            "theme" => Some(Kind::Theme),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Core => "core",
            Kind::Plugin => "plugin",
            Kind::Theme => "theme",
        }
    }
}

/// Why a feed could not be used.
#[derive(Debug, Error)]
pub enum FeedError {
    /// The file could not be opened or read.
    #[error("vulnerability feed {}: {source}", path.display())]
    Io {
        /// The feed file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The JSON is malformed or not in the Wordfence shape.
    #[error("vulnerability feed {}: not a Wordfence Intelligence feed: {message}", path.display())]
    Format {
        /// The feed file.
        path: PathBuf,
        /// serde_json's message, with line and column.
        message: String,
    },
}

/// Counts describing a parsed feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FeedStats {
    /// Records in the file.
    pub records: usize,
    /// Records about core.
    pub core: usize,
    /// Distinct plugin slugs.
    pub plugins: usize,
    /// Distinct theme slugs.
    pub themes: usize,
    /// Version ranges indexed.
    pub ranges: usize,
}

/// One vulnerability, as much of it as a finding needs.
#[derive(Debug, Clone)]
pub struct Vuln {
    /// Wordfence id (a UUID).
    pub id: Box<str>,
    /// Title, e.g. "WooCommerce <= 8.1.0 - Authenticated SQL Injection".
    pub title: Box<str>,
    /// CVE id, when there is one.
    pub cve: Option<Box<str>>,
    /// CVSS base score.
    pub score: Option<f32>,
    /// Severity from the CVSS rating (or score).
    pub severity: Severity,
}

#[derive(Debug, Clone)]
struct Range {
    from: Option<Version>,
    from_incl: bool,
    to: Option<Version>,
    to_incl: bool,
}

impl Range {
    fn contains(&self, v: &Version) -> bool {
        let above = match &self.from {
            None => true,
            Some(f) => match v.cmp(f) {
                Ordering::Greater => true,
                Ordering::Equal => self.from_incl,
                Ordering::Less => false,
            },
        };
        above
            && match &self.to {
                None => true,
                Some(t) => match v.cmp(t) {
                    Ordering::Less => true,
                    Ordering::Equal => self.to_incl,
                    Ordering::Greater => false,
                },
            }
    }
}

#[derive(Debug, Clone)]
struct Affect {
    record: u32,
    ranges: Box<[Range]>,
    patched: Box<[Box<str>]>,
}

/// A vulnerability that applies to an installed version.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    /// The vulnerability.
    pub vuln: &'a Vuln,
    /// The lowest patched version above the installed one, when the feed names one.
    pub fixed_in: Option<&'a str>,
}

/// The feed, indexed by `(type, slug)`.
#[derive(Debug, Default)]
pub struct FeedIndex {
    vulns: Vec<Vuln>,
    by_software: HashMap<(Kind, Box<str>), Vec<Affect>>,
    /// Counts.
    pub stats: FeedStats,
}

impl FeedIndex {
    /// Every vulnerability affecting `slug` of `kind` at `installed`.
    pub fn lookup(&self, kind: Kind, slug: &str, installed: &str) -> Vec<Hit<'_>> {
        let Some(list) = self.by_software.get(&(kind, Box::from(slug.to_ascii_lowercase().as_str()))) else {
            return Vec::new();
        };
        let v = Version::new(installed);
        let mut hits = Vec::new();
        for a in list {
            if !a.ranges.iter().any(|r| r.contains(&v)) {
                continue;
            }
            let Some(vuln) = self.vulns.get(a.record as usize) else {
                continue;
            };
            let fixed_in = a
                .patched
                .iter()
                .map(|p| &**p)
                .filter(|p| version::compare(p, installed) == Ordering::Greater)
                .min_by(|x, y| version::compare(x, y));
            hits.push(Hit { vuln, fixed_in });
        }
        hits
    }

    /// Parse a feed from any reader.
    pub fn from_reader<R: std::io::Read>(r: R) -> Result<FeedIndex, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_reader(r);
        let mut b = Builder::default();
        de.deserialize_any(TopLevel(&mut b))?;
        de.end()?;
        Ok(b.finish())
    }

    /// Parse a feed file.
    #[expect(
        clippy::disallowed_methods,
        reason = "the vulnerability feed vigil downloaded or the administrator named, not a tenant file"
    )]
    pub fn load(path: &Path) -> Result<FeedIndex, FeedError> {
        let f = std::fs::File::open(path).map_err(|e| FeedError::Io { path: path.to_path_buf(), source: e })?;
        let idx = FeedIndex::from_reader(BufReader::with_capacity(1 << 20, f)).map_err(|e| {
            if e.is_io() {
                FeedError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
            } else {
                FeedError::Format { path: path.to_path_buf(), message: e.to_string() }
            }
        })?;
        if idx.stats.records > 0 && idx.by_software.is_empty() {
            return Err(FeedError::Format {
                path: path.to_path_buf(),
                message: format!("{} records but none names affected software", idx.stats.records),
            });
        }
        Ok(idx)
    }
}

/// Parse a feed file completely and say what is in it: the check before a downloaded feed replaces the old one.
pub fn validate_feed(path: &Path) -> Result<FeedStats, FeedError> {
    let idx = FeedIndex::load(path)?;
    if idx.stats.records == 0 {
        return Err(FeedError::Format { path: path.to_path_buf(), message: "no records".into() });
    }
    Ok(idx.stats)
}

type CacheKey = (PathBuf, u64, Option<SystemTime>);
static CACHE: Mutex<Option<(CacheKey, Arc<FeedIndex>)>> = Mutex::new(None);

/// The feed at `path`, parsed once per process while its size and mtime stay the same.
pub fn load_cached(path: &Path) -> Result<Arc<FeedIndex>, FeedError> {
    let meta = std::fs::metadata(path).map_err(|e| FeedError::Io { path: path.to_path_buf(), source: e })?;
    let key: CacheKey = (path.to_path_buf(), meta.len(), meta.modified().ok());
    // Held while parsing, so concurrent callers wait for one parse instead of doing two.
    let mut guard = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, idx)) = guard.as_ref() {
        if *k == key {
            return Ok(idx.clone());
        }
    }
    let idx = Arc::new(FeedIndex::load(path)?);
    *guard = Some((key, idx.clone()));
    Ok(idx)
}

#[derive(Default)]
struct Builder {
    idx: FeedIndex,
    core_records: usize,
}

impl Builder {
    fn add(&mut self, key: Option<String>, r: RawRecord) {
        self.idx.stats.records += 1;
        if r.informational.unwrap_or(false) {
            return;
        }
        let record = self.idx.vulns.len() as u32;
        let mut any = false;
        let mut core = false;
        for s in r.software {
            let Some(kind) = Kind::parse(&s.kind) else {
                continue;
            };
            let ranges: Box<[Range]> = s
                .affected_versions
                .0
                .into_iter()
                .map(|r| Range {
                    from: bound(r.from_version),
                    from_incl: r.from_inclusive,
                    to: bound(r.to_version),
                    to_incl: r.to_inclusive,
                })
                .collect();
            if ranges.is_empty() {
                continue;
            }
            any = true;
            core |= kind == Kind::Core;
            self.idx.stats.ranges += ranges.len();
            let patched = s.patched_versions.into_iter().map(String::into_boxed_str).collect();
            self.idx
                .by_software
                .entry((kind, s.slug.to_ascii_lowercase().into_boxed_str()))
                .or_default()
                .push(Affect { record, ranges, patched });
        }
        if !any {
            return;
        }
        self.core_records += usize::from(core);
        let (score, rating) = match r.cvss {
            Some(c) => (c.score.and_then(|s| s.0), c.rating),
            None => (None, None),
        };
        self.idx.vulns.push(Vuln {
            id: r.id.or(key).unwrap_or_default().into_boxed_str(),
            title: r.title.unwrap_or_else(|| "untitled vulnerability".into()).into_boxed_str(),
            cve: r.cve.filter(|c| !c.is_empty()).map(String::into_boxed_str),
            score,
            severity: severity(rating.as_deref(), score),
        });
    }

    fn finish(mut self) -> FeedIndex {
        self.idx.stats.core = self.core_records;
        self.idx.stats.plugins = self.idx.by_software.keys().filter(|(k, _)| *k == Kind::Plugin).count();
        self.idx.stats.themes = self.idx.by_software.keys().filter(|(k, _)| *k == Kind::Theme).count();
        self.idx.vulns.shrink_to_fit();
        self.idx
    }
}

fn bound(v: String) -> Option<Version> {
    let v = v.trim();
    if v.is_empty() || v == "*" { None } else { Some(Version::new(v)) }
}

/// Severity from the CVSS rating, else the score; unknown is medium.
pub fn severity(rating: Option<&str>, score: Option<f32>) -> Severity {
    match rating.map(|r| r.trim().to_ascii_lowercase()).as_deref() {
        Some("critical") => Severity::Critical,
        Some("high") => Severity::High,
        Some("medium") => Severity::Medium,
        Some("low") => Severity::Low,
        Some("none") => Severity::Info,
        _ => match score {
            Some(s) if s >= 9.0 => Severity::Critical,
            Some(s) if s >= 7.0 => Severity::High,
            Some(s) if s >= 4.0 => Severity::Medium,
            Some(s) if s > 0.0 => Severity::Low,
            Some(_) => Severity::Info,
            None => Severity::Medium,
        },
    }
}

struct TopLevel<'a>(&'a mut Builder);

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of vulnerability records keyed by id")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let rec: RawRecord = map.next_value()?;
            self.0.add(Some(key), rec);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(rec) = seq.next_element::<RawRecord>()? {
            self.0.add(None, rec);
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

#[derive(Deserialize)]
struct RawRecord {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    software: Vec<RawSoftware>,
    #[serde(default)]
    informational: Option<bool>,
    #[serde(default)]
    cvss: Option<RawCvss>,
    #[serde(default)]
    cve: Option<String>,
}

#[derive(Deserialize)]
struct RawSoftware {
    #[serde(rename = "type")]
    kind: String,
    slug: String,
    #[serde(default)]
    affected_versions: Ranges,
    #[serde(default, deserialize_with = "null_as_default")]
    patched_versions: Vec<String>,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(default, deserialize_with = "null_as_default")]
    from_version: String,
    #[serde(default = "yes")]
    from_inclusive: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    to_version: String,
    #[serde(default = "yes")]
    to_inclusive: bool,
}

fn yes() -> bool {
    true
}

fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct RawCvss {
    #[serde(default)]
    score: Option<Score>,
    #[serde(default)]
    rating: Option<String>,
}

/// A CVSS score written as a number or a string.
struct Score(Option<f32>);

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Score;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CVSS score")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Score, E> {
                Ok(Score(Some(v as f32)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Score, E> {
                Ok(Score(Some(v as f32)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Score, E> {
                Ok(Score(Some(v as f32)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Score, E> {
                Ok(Score(v.trim().parse().ok()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Score, E> {
                Ok(Score(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `affected_versions`: an object of ranges keyed by a label (`"* - 8.1.0"`),
/// or a list of ranges; PHP writes an empty one as `[]`.
#[derive(Default)]
struct Ranges(Vec<RawRange>);

impl<'de> Deserialize<'de> for Ranges {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ranges;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object or list of version ranges")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ranges, A::Error> {
                let mut out = Vec::new();
                while let Some(_label) = map.next_key::<IgnoredAny>()? {
                    out.push(map.next_value()?);
                }
                Ok(Ranges(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ranges, A::Error> {
                let mut out = Vec::new();
                while let Some(r) = seq.next_element()? {
                    out.push(r);
                }
                Ok(Ranges(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Ranges, E> {
                Ok(Ranges(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A generated feed in the real record shape, for tests and the benchmark:
/// `records` records over `slugs` plugin slugs (`plugin-0`…), padded with
/// descriptions and references to about `target_bytes` in all.
pub fn generate_feed(records: usize, slugs: usize, target_bytes: usize) -> String {
    let per_record = target_bytes / records.max(1);
    let mut out = String::with_capacity(target_bytes + 1024);
    out.push('{');
    for i in 0..records {
        if i > 0 {
            out.push(',');
        }
        let id = format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", i, i % 65536, i % 4096, (i * 7) % 4096, i * 31);
        let slug = format!("plugin-{}", i % slugs.max(1));
        let to = format!("{}.{}.{}", 1 + i % 9, i % 13, i % 7);
        let fixed = format!("{}.{}.{}", 1 + i % 9, i % 13, i % 7 + 1);
        let (score, rating) = [(9.8, "Critical"), (7.5, "High"), (5.4, "Medium"), (3.1, "Low")][i % 4];
        let head = format!(
            r#""{id}":{{"id":"{id}","title":"Plugin {i} <= {to} - Cross-Site Scripting","software":[{{"type":"plugin","name":"Plugin {i}","slug":"{slug}","affected_versions":{{"* - {to}":{{"from_version":"*","from_inclusive":true,"to_version":"{to}","to_inclusive":true}}}},"patched":true,"patched_versions":["{fixed}"],"remediation":"Update to version {fixed}, or a newer patched version"}}],"informational":false,"#
        );
        let tail = format!(
            r#""references":["https://www.wordfence.com/threat-intel/vulnerabilities/id/{id}"],"cwe":{{"id":79,"name":"Improper Neutralization of Input During Web Page Generation","description":"XSS"}},"cvss":{{"vector":"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N","score":{score},"rating":"{rating}"}},"cve":"CVE-2024-{:05}","cve_link":"https://www.cve.org/CVERecord?id=CVE-2024-{:05}","researchers":["Researcher {i}"],"published":"2024-01-01 00:00:00","updated":"2024-01-02 00:00:00","copyrights":{{"message":"Copyright 2012-2024 Defiant Inc."}}}}"#,
            i % 100_000,
            i % 100_000
        );
        let pad = per_record.saturating_sub(head.len() + tail.len() + 20);
        out.push_str(&head);
        out.push_str(r#""description":""#);
        for k in 0..pad {
            out.push(if k % 7 == 6 { ' ' } else { 'x' });
        }
        out.push_str("\",");
        out.push_str(&tail);
    }
    out.push('}');
    out
}

/// Compact rendering of which record ranges exist for a slug (for tests).
#[cfg(test)]
pub(crate) fn slugs(idx: &FeedIndex) -> std::collections::BTreeMap<String, usize> {
    idx.by_software.iter().map(|((k, s), v)| (format!("{}:{s}", k.as_str()), v.len())).collect()
}
