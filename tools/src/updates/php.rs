//! The PHP branches installed and their end of life.

use super::*;

/// `php7.4-cli` → `7.4`, `libapache2-mod-php8.2` → `8.2`.
pub(super) fn php_branch(pkg: &str) -> Option<String> {
    let rest = pkg.strip_prefix("php").or_else(|| pkg.strip_prefix("libapache2-mod-php"))?;
    let end = rest.find('-').unwrap_or(rest.len());
    let v = &rest[..end];
    let (maj, min) = v.split_once('.')?;
    (!maj.is_empty()
        && !min.is_empty()
        && maj.bytes().all(|b| b.is_ascii_digit())
        && min.bytes().all(|b| b.is_ascii_digit()))
    .then(|| v.to_string())
}

pub(super) fn check_php(
    host: &Host,
    installed: &Installed,
    os_entry: Option<&'static eol::OsRelease>,
    today: time::Date,
    facts: &mut UpdatesFacts,
    findings: &mut Vec<Finding>,
) {
    let mut branches: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
    for (name, vers) in installed {
        if let Some(b) = php_branch(name) {
            let e = branches.entry(b).or_default();
            e.0 += 1;
            if e.1.is_none() || name.ends_with("-common") {
                e.1 = vers.first().map(|(_, v)| v.clone());
            }
        }
    }
    for bin in host.glob("/usr/bin/php*").into_iter().chain(host.glob("/usr/local/bin/php*")) {
        let name = bin.rsplit('/').next().unwrap_or_default();
        if let Some(b) = php_branch(name) {
            branches.entry(b).or_default();
        }
    }
    for (branch, (count, version)) in branches {
        let eol = eol::php_eol(&branch);
        let is_eol = eol.is_some_and(|d| today > d);
        facts.php.push(PhpFacts {
            branch: branch.clone(),
            packages: count,
            version: version.clone(),
            eol: eol.map(format_date),
            is_eol,
        });
        let Some(eol) = eol else { continue };
        let subject = format!("php:{branch}");
        let third_party =
            version.as_deref().is_some_and(|v| v.contains("sury") || v.contains("+0~20") || v.contains("~ppa"));
        let distro_patched =
            os_entry.is_some_and(|o| o.php == Some(branch.as_str()) && today <= o.extended_end) && !third_party;
        let mut evidence = vec![match &version {
            Some(v) => format!("{count} php{branch} package(s) installed (version {v})"),
            None => format!("/usr/bin/php{branch} present"),
        }];
        if is_eol {
            let (sev, title, fix) = if distro_patched {
                let o = os_entry.map(|o| (o.name, format_date(o.extended_end))).unwrap_or_default();
                evidence.push(format!("{} still backports security fixes to its own PHP {branch} until {}", o.0, o.1));
                (
                    Severity::Low,
                    format!(
                        "PHP {branch} is past upstream end of life ({}); only the distribution patches it",
                        format_date(eol)
                    ),
                    "Plan the move of the sites to a PHP branch supported upstream (test each site on it first)."
                        .to_string(),
                )
            } else {
                (
                    Severity::High,
                    format!("PHP {branch} is end-of-life since {}: no security fixes", format_date(eol)),
                    format!(
                        "Move the sites to a supported PHP (8.3 or newer), test them, then remove php{branch}-* (`apt-get purge 'php{branch}*'`)."
                    ),
                )
            };
            let mut f = Finding::new("updates.php-eol", sev, Category::Updates, subject, title);
            for e in evidence {
                f = f.evidence(e);
            }
            findings.push(f.fix(fix));
        } else if (eol - today).whole_days() <= 90 && !distro_patched {
            let mut f = Finding::new(
                "updates.php-eol-soon",
                Severity::Low,
                Category::Updates,
                subject,
                format!("PHP {branch} reaches end of life on {}", format_date(eol)),
            );
            for e in evidence {
                f = f.evidence(e);
            }
            findings.push(f.fix("Plan the move of the sites to a newer PHP branch before that date."));
        }
    }
}
