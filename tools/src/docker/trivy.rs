//! Image vulnerability scanning with trivy, when it is installed.
//!
//! trivy runs offline against its cached database
//! (`trivy image --offline-scan --skip-db-update --format json --quiet IMAGE`),
//! so a review never downloads anything. Its JSON report is parsed by a pure
//! function, tested against a recorded report in trivy's real shape.

use std::collections::BTreeSet;
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

/// Scan one image with the installed trivy, offline. `docker_host` is passed
/// as `--docker-host` when the engine is not the default socket.
pub async fn scan(
    host: &Host,
    image: &str,
    docker_host: Option<&str>,
    timeout: Duration,
) -> Result<ScanSummary, String> {
    let mut args = vec!["image", "--offline-scan", "--skip-db-update", "--format", "json", "--quiet"];
    if let Some(h) = docker_host {
        args.push("--docker-host");
        args.push(h);
    }
    args.push(image);
    // trivy finds its vulnerability database under $HOME/.cache/trivy: it gets the
    // HOME of the user vigil runs as (from the password database) and nothing else.
    let home = crate::users::own_home();
    let env: Vec<(&str, &str)> = home.as_deref().map(|h| ("HOME", h)).into_iter().collect();
    let out = host.run_env("trivy", &args, &env, timeout).await.map_err(|e| e.to_string())?;
    if !out.success() {
        let why = out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        return Err(format!("trivy exited with status {}: {}", out.status, why.chars().take(300).collect::<String>()));
    }
    parse_report(&out.stdout)
}
