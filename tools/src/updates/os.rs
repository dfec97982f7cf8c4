//! The release itself: `os-release`, its support dates (end of life, ESM) and the
//! findings when they have passed or are near.

use super::*;

pub(super) fn read_os_release(host: &Host, findings: &mut Vec<Finding>) -> OsFacts {
    let mut text = None;
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        match host.read_optional(p) {
            Ok(Some(t)) => {
                text = Some(t);
                break;
            }
            Ok(None) => {}
            Err(e) => findings.push(Finding::could_not_check(Category::Updates, TOOL, p, e)),
        }
    }
    let mut os = OsFacts { support: "unknown".into(), ..OsFacts::default() };
    for line in text.unwrap_or_default().lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim() {
            "ID" => os.id = v,
            "VERSION_ID" => os.version_id = v,
            "PRETTY_NAME" => os.pretty_name = v,
            _ => {}
        }
    }
    os
}

pub(super) fn judge_os(
    os: &mut OsFacts,
    today: time::Date,
    findings: &mut Vec<Finding>,
    host: &Host,
) -> Option<&'static eol::OsRelease> {
    let entry = eol::os_release(&os.id, &os.version_id)?;
    os.regular_end = Some(format_date(entry.regular_end));
    os.extended_end = Some(format_date(entry.extended_end));
    os.support = if today > entry.extended_end {
        "eol"
    } else if today > entry.regular_end {
        "extended"
    } else {
        "supported"
    }
    .into();
    let subject = format!("os:{}-{}", entry.id, entry.version_id);
    if today > entry.extended_end {
        let f = Finding::new(
            "updates.os-eol",
            Severity::High,
            Category::Updates,
            subject,
            format!("{} is end-of-life: no security updates since {}", entry.name, format_date(entry.extended_end)),
        )
        .evidence(format!("/etc/os-release: ID={} VERSION_ID={}", os.id, os.version_id))
        .evidence(format!(
            "regular security support ended {}, extended support ended {}",
            format_date(entry.regular_end),
            format_date(entry.extended_end)
        ))
        .fix("Upgrade to a supported release (or migrate the sites to a new server); until then every new vulnerability in the OS stays open.");
        findings.push(f);
    } else if today > entry.regular_end {
        // Ubuntu's extended phase needs an Ubuntu Pro subscription (esm lists); Debian LTS is free.
        let esm = entry.id == "ubuntu" && !has_esm_lists(host);
        let (sev, how) = if esm {
            (Severity::High, "Ubuntu ESM needs Ubuntu Pro, and no esm.ubuntu.com apt lists were found")
        } else if entry.id == "ubuntu" {
            (Severity::Low, "Ubuntu Pro (ESM) lists are present")
        } else {
            (Severity::Low, "Debian LTS provides security updates through the normal security archive")
        };
        findings.push(
            Finding::new(
                "updates.os-extended-support",
                sev,
                Category::Updates,
                subject,
                format!(
                    "{} is past regular security support ({}); extended support ends {}",
                    entry.name,
                    format_date(entry.regular_end),
                    format_date(entry.extended_end)
                ),
            )
            .evidence(how)
            .fix(format!("Plan the upgrade to the next release before {}.", format_date(entry.extended_end))),
        );
    }
    Some(entry)
}

pub(super) fn has_esm_lists(host: &Host) -> bool {
    host.read_dir(LISTS).map(|n| n.iter().any(|n| n.contains("esm.ubuntu.com"))).unwrap_or(false)
}
