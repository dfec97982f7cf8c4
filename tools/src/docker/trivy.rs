//! Image vulnerability scanning with trivy, when it is installed.
//!
//! trivy runs offline against its cached database on an image archive the engine
//! exported (`trivy image --input FILE --offline-scan --skip-db-update
//! --skip-java-db-update --cache-backend memory --format json --quiet`), so a review never downloads anything and trivy never
//! talks to the engine itself. In the confined worker it runs with no capability and
//! writes only in the worker's scratch, on a copy of the database ([`Place::scratch`]). Its JSON report is parsed by a pure
//! function, tested against a recorded report in trivy's real shape.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::host::Host;

/// What trivy found in one image: HIGH and CRITICAL counts and the worst few.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Distinct CRITICAL vulnerabilities (by id and package).
    pub critical: usize,
    /// Distinct HIGH vulnerabilities.
    pub high: usize,
    /// Up to five examples, critical first: `CVE-… in pkg 1.0 (fixed in 1.1)`.
    pub examples: Vec<String>,
    /// How many of the HIGH/CRITICAL ones have a fixed version.
    pub fixable: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    #[serde(default)]
    results: Option<Vec<ResultEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultEntry {
    #[serde(default)]
    target: String,
    #[serde(default)]
    vulnerabilities: Option<Vec<Vuln>>,
}

#[derive(Deserialize)]
struct Vuln {
    #[serde(rename = "VulnerabilityID", default)]
    id: String,
    #[serde(rename = "PkgName", default)]
    pkg: String,
    #[serde(rename = "InstalledVersion", default)]
    installed: String,
    #[serde(rename = "FixedVersion", default)]
    fixed: Option<String>,
    #[serde(rename = "Severity", default)]
    severity: String,
}

/// Parse a trivy JSON report (`--format json`) into HIGH/CRITICAL counts.
pub fn parse_report(json: &str) -> Result<ScanSummary, String> {
    let report: Report = serde_json::from_str(json).map_err(|e| format!("unreadable trivy report: {e}"))?;
    let mut seen = BTreeSet::new();
    let mut crit = Vec::new();
    let mut high = Vec::new();
    let mut fixable = 0;
    for r in report.results.unwrap_or_default() {
        for v in r.vulnerabilities.unwrap_or_default() {
            let sev = v.severity.to_ascii_uppercase();
            if sev != "CRITICAL" && sev != "HIGH" {
                continue;
            }
            if !seen.insert((v.id.clone(), v.pkg.clone(), v.installed.clone())) {
                continue;
            }
            let fixed = v.fixed.as_deref().map(str::trim).filter(|f| !f.is_empty());
            if fixed.is_some() {
                fixable += 1;
            }
            let line = match fixed {
                Some(f) => format!("{sev} {} in {} {} (fixed in {f}; {})", v.id, v.pkg, v.installed, r.target),
                None => format!("{sev} {} in {} {} (no fix yet; {})", v.id, v.pkg, v.installed, r.target),
            };
            if sev == "CRITICAL" { crit.push(line) } else { high.push(line) }
        }
    }
    let examples = crit.iter().chain(high.iter()).take(5).cloned().collect();
    Ok(ScanSummary { critical: crit.len(), high: high.len(), examples, fixable })
}

/// Where trivy runs: its database directory and, in the confined worker, the scratch
/// directory it may write in.
#[derive(Debug, Clone)]
pub struct Place {
    /// `--cache-dir`: the directory holding `db/trivy.db`.
    pub cache_dir: PathBuf,
    /// `HOME` and `TMPDIR` for trivy (the worker's scratch), else the HOME of the user vigil runs as.
    pub home: Option<PathBuf>,
    /// `TMPDIR`, when trivy must keep its temporary files somewhere in particular.
    pub tmp: Option<PathBuf>,
}

/// trivy's database files (directory, file), copied into a cache directory of its own:
/// the vulnerability database, and the Java index when it was downloaded.
const DB_FILES: &[(&str, &str)] =
    &[("db", "trivy.db"), ("db", "metadata.json"), ("java-db", "trivy-java.db"), ("java-db", "metadata.json")];

/// Largest database copied into the worker's scratch.
const DB_MAX: u64 = 8 << 30;

impl Place {
    /// Unconfined: trivy's own cache of the user vigil runs as, as named by `cache`.
    pub fn own(cache: PathBuf) -> Place {
        Place { cache_dir: cache, home: crate::users::own_home().map(PathBuf::from), tmp: None }
    }

    /// In the confined worker: trivy runs as the worker's user, with no capability, and may
    /// write only in `scratch`; the database under `cache` (root's home) is out of its reach.
    /// The worker (which can read it) copies `db/` (and `java-db/`, when present) into
    /// `scratch/trivy` once per worker (again when the source changed), so trivy opens a
    /// database of its own and writes nothing outside scratch.
    pub fn scratch(cache: &Path, scratch: &Path) -> Result<Place, String> {
        let dest = scratch.join("trivy");
        let tmp = scratch.join("tmp");
        for d in [dest.join("db"), dest.join("java-db"), tmp.clone()] {
            std::fs::create_dir_all(&d).map_err(|e| format!("cannot prepare {}: {e}", d.display()))?;
        }
        for (sub, name) in DB_FILES {
            let src = cache.join(sub).join(name);
            let Ok(meta) = std::fs::metadata(&src) else {
                // No database: trivy says so itself (`--skip-db-update` on a first run).
                continue;
            };
            if !meta.is_file() || meta.len() > DB_MAX {
                return Err(format!("{} is not a regular file under {} GiB", src.display(), DB_MAX >> 30));
            }
            let to = dest.join(sub).join(name);
            let same = std::fs::metadata(&to)
                .is_ok_and(|t| t.len() == meta.len() && t.modified().ok() >= meta.modified().ok());
            if !same {
                std::fs::copy(&src, &to).map_err(|e| format!("cannot copy trivy's database {}: {e}", src.display()))?;
            }
        }
        Ok(Place { cache_dir: dest, home: Some(scratch.to_path_buf()), tmp: Some(tmp) })
    }
}

/// Scan one image archive (`docker save` format) with the installed trivy, offline
/// (`--offline-scan --skip-db-update --skip-java-db-update`), its artifact cache in memory.
pub async fn scan(host: &Host, archive: &Path, place: &Place, timeout: Duration) -> Result<ScanSummary, String> {
    let archive = archive.to_string_lossy();
    let cache = place.cache_dir.to_string_lossy();
    let args = [
        "image",
        "--input",
        &archive,
        "--offline-scan",
        "--skip-db-update",
        "--skip-java-db-update",
        "--cache-dir",
        &cache,
        "--cache-backend",
        "memory",
        "--format",
        "json",
        "--quiet",
    ];
    let home = place.home.as_ref().map(|h| h.to_string_lossy());
    let tmp = place.tmp.as_ref().map(|h| h.to_string_lossy());
    let mut env: Vec<(&str, &str)> = Vec::new();
    if let Some(h) = &home {
        env.push(("HOME", h));
    }
    if let Some(t) = &tmp {
        env.push(("TMPDIR", t));
    }
    let out = host.run_env("trivy", &args, &env, timeout).await.map_err(|e| e.to_string())?;
    if !out.success() {
        let why = out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        return Err(format!("trivy exited with status {}: {}", out.status, why.chars().take(300).collect::<String>()));
    }
    parse_report(&out.stdout)
}
