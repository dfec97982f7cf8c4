//! `vigil-genfeed`: writes a Wordfence Intelligence vulnerability feed in the v3
//! shape, as large as the real one (~42,000 records, ~160 MB), deterministic
//! from a seed — so the feed parser and index can be measured without the
//! real (licensed, API-keyed) download.
//!
//! Shape: one top-level object keyed by record id; each record has `id`,
//! `title`, `software[]` (`type`, `name`, `slug`, `affected_versions` keyed by
//! `"FROM - TO"` with `from_version`/`from_inclusive`/`to_version`/
//! `to_inclusive`, `patched`, `patched_versions`, `remediation`),
//! `informational`, `description`, `references`, `cwe`, `cvss` (`vector`,
//! `score`, `rating`), `cve`, `cve_link`, `researchers`, `published`,
//! `updated`, `copyrights`. Records for the catalogue's plugins, themes and
//! core releases hit the older versions `vigil-genhost` installs; the rest
//! are for other (generated) slugs, as most of the real feed is.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};

use vigil_bench::{CORE, Flags, PLUGINS, Rng, THEMES, Version, WORDS, last_vulnerable, older, vstr};

const USAGE: &str = "usage: vigil-genfeed --out FILE [--records N] [--size-mb M] [--seed S]\n  \
writes a Wordfence v3-shaped feed (default 42000 records, 160 MB, seed 1)";

const CWES: &[(u32, &str, &str)] = &[
    (
        79,
        "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')",
        "Cross-Site Scripting",
    ),
    (352, "Cross-Site Request Forgery (CSRF)", "Cross-Site Request Forgery"),
    (862, "Missing Authorization", "Missing Authorization"),
    (89, "Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')", "SQL Injection"),
    (22, "Improper Limitation of a Pathname to a Restricted Directory ('Path Traversal')", "Directory Traversal"),
    (434, "Unrestricted Upload of File with Dangerous Type", "Arbitrary File Upload"),
    (200, "Exposure of Sensitive Information to an Unauthorized Actor", "Sensitive Information Exposure"),
    (502, "Deserialization of Untrusted Data", "PHP Object Injection"),
    (918, "Server-Side Request Forgery (SSRF)", "Server-Side Request Forgery"),
];

const LICENSE: &str = "Defiant hereby grants you a perpetual, worldwide, non-exclusive, no-charge, royalty-free, \
irrevocable copyright license to reproduce, prepare derivative works of, publicly display, publicly perform, \
sublicense, and distribute this software vulnerability information. Any copy of the software vulnerability \
information you make for such purposes is authorized provided that you include a hyperlink to this vulnerability \
record and reproduce Defiant's copyright notice and this license in all copies.";

const MITRE_LICENSE: &str = "The MITRE Corporation (\\u201cMITRE\\u201d) hereby grants you a non-exclusive, \
royalty-free license to use Common Vulnerabilities and Exposures (CVE\\u00ae) for research, development, and \
commercial purposes. Any copy you make for such purposes is authorized on the condition that you reproduce \
MITRE\\u2019s copyright designation and this license in any such copy.";

fn main() {
    if let Err(e) = run() {
        eprintln!("vigil-genfeed: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let flags = Flags::parse(USAGE)?;
    flags.check_known(&["out", "records", "size-mb", "seed"])?;
    let path = flags.required("out")?.to_string();
    let records = flags.num("records", 42_000)?.max(1);
    let target = flags.num("size-mb", 160)? * 1_000_000;
    let mut rng = Rng::new(flags.num("seed", 1)?);
    let file = File::create(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    // Other plugins: a pool of generated slugs, several records each (as in the real feed).
    let other: Vec<String> = (0..records / 3)
        .map(|i| {
            format!(
                "{}-{}-{i}",
                rng.pick(WORDS).to_lowercase(),
                rng.pick(&["forms", "slider", "gallery", "seo", "cache", "shop", "events", "maps", "chat", "backup"])
            )
        })
        .collect();
    let mut written = 1u64;
    w.write_all(b"{").map_err(|e| e.to_string())?;
    for n in 0..records {
        let mut r = rng.fork(n);
        let remaining = records - n;
        let budget = target.saturating_sub(written) / remaining;
        let rec = record(&mut r, n, &other, budget as usize);
        if n > 0 {
            w.write_all(b",").map_err(|e| e.to_string())?;
        }
        w.write_all(rec.as_bytes()).map_err(|e| e.to_string())?;
        written += rec.len() as u64 + 1;
    }
    w.write_all(b"}\n").map_err(|e| e.to_string())?;
    w.flush().map_err(|e| e.to_string())?;
    println!("vigil-genfeed: {records} records, {:.1} MB -> {path}", (written + 2) as f64 / 1e6);
    Ok(())
}

struct Soft {
    ty: &'static str,
    name: String,
    slug: String,
    ranges: Vec<(String, bool, String, bool)>,
    patched: Option<String>,
}

fn ver_lt(v: Version, rng: &mut Rng) -> Version {
    // A version well below `v` (old, already-fixed issues).
    let major = v[0].saturating_sub(rng.below(3) as u32);
    let minor = if major < v[0] { rng.below(12) as u32 } else { v[1].saturating_sub(2 + rng.below(3) as u32) };
    [major, minor, rng.below(10) as u32]
}

fn record(rng: &mut Rng, n: u64, other: &[String], budget: usize) -> String {
    let id = rng.uuid();
    let roll = rng.below(100);
    let soft = if roll < 12 {
        // A catalogue plugin: most records are old; ~1 in 8 hits the lagging release.
        let p = rng.pick(PLUGINS);
        let old = older(p.current);
        let (to, patched) = if rng.chance(12) {
            (last_vulnerable(old, p.current), p.current)
        } else {
            let t = ver_lt(old, rng);
            (t, [t[0], t[1], t[2] + 1])
        };
        Soft {
            ty: "plugin",
            name: p.name.to_string(),
            slug: p.slug.to_string(),
            ranges: vec![("*".into(), true, vstr(to), true)],
            patched: Some(vstr(patched)),
        }
    } else if roll < 16 {
        let t = rng.pick(THEMES);
        let old = older(t.current);
        let to = if rng.chance(15) { old } else { ver_lt(old, rng) };
        Soft {
            ty: "theme",
            name: t.name.to_string(),
            slug: t.slug.to_string(),
            ranges: vec![("*".into(), true, vstr(to), true)],
            patched: Some(vstr([to[0], to[1], to[2] + 1])),
        }
    } else if roll < 19 {
        // Core: a branch range, "6.1 - 6.1.8" style, patched in the next point release.
        let c = *rng.pick(CORE);
        let fixed = c[2] + u32::from(rng.chance(30));
        let mut ranges =
            vec![(format!("{}.{}", c[0], c[1]), true, format!("{}.{}.{}", c[0], c[1], fixed.max(1) - 1), true)];
        if rng.chance(50) {
            ranges.push(("*".into(), true, format!("{}.{}", c[0], c[1].saturating_sub(1)), false));
        }
        Soft {
            ty: "core",
            name: "WordPress Core".into(),
            slug: "wordpress".into(),
            ranges,
            patched: Some(format!("{}.{}.{}", c[0], c[1], fixed.max(1))),
        }
    } else {
        let slug = rng.pick(other).clone();
        let to: Version = [rng.below(6) as u32, rng.below(20) as u32, rng.below(15) as u32];
        let from_some = rng.chance(10);
        let patched = !rng.chance(15);
        Soft {
            ty: "plugin",
            name: slug.split('-').map(capital).collect::<Vec<_>>().join(" "),
            slug,
            ranges: vec![(if from_some { format!("{}.0", to[0]) } else { "*".into() }, true, vstr(to), true)],
            patched: patched.then(|| vstr([to[0], to[1], to[2] + 1])),
        }
    };
    let cwe = *rng.pick(CWES);
    let (score, rating, vector) = match rng.below(10) {
        0 => (9.8, "Critical", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        1 | 2 => (8.1, "High", "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N"),
        3..=7 => (6.4, "Medium", "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N"),
        _ => (4.3, "Medium", "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:N/I:L/A:N"),
    };
    let last = &soft.ranges[0].2;
    let title = format!("{} <= {} - {}", soft.name, last, cwe.2);
    let year = 2019 + rng.below(7);
    let cve = if rng.chance(85) { Some(format!("CVE-{year}-{}", 10_000 + rng.below(60_000))) } else { None };
    let mut s = String::with_capacity(budget.max(2_000) + 256);
    let _ = write!(
        s,
        "\"{id}\":{{\"id\":\"{id}\",\"title\":\"{}\",\"software\":[{{\"type\":\"{}\",\"name\":\"{}\",\"slug\":\"{}\",\"affected_versions\":{{",
        esc(&title),
        soft.ty,
        esc(&soft.name),
        soft.slug
    );
    for (k, (from, fi, to, ti)) in soft.ranges.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "\"{from} - {to}\":{{\"from_version\":\"{from}\",\"from_inclusive\":{fi},\"to_version\":\"{to}\",\"to_inclusive\":{ti}}}"
        );
    }
    match &soft.patched {
        Some(p) => {
            let _ = write!(
                s,
                "}},\"patched\":true,\"patched_versions\":[\"{p}\"],\"remediation\":\"Update to version {p}, or a newer patched version\"}}],"
            );
        }
        None => {
            s.push_str("},\"patched\":false,\"patched_versions\":[],\"remediation\":\"No known patch available. Please review the vulnerability's details in depth and employ any mitigations based on your organization's risk tolerance. It may be best to uninstall the affected software and find a replacement.\"}],");
        }
    }
    let _ = write!(s, "\"informational\":false,\"description\":\"");
    let desc_at = s.len();
    let _ = write!(
        s,
        "\",\"references\":[\"https:\\/\\/www.wordfence.com\\/threat-intel\\/vulnerabilities\\/id\\/{id}?source=api-prod\",\"https:\\/\\/plugins.trac.wordpress.org\\/changeset\\/{}\\/{}\"],\
         \"cwe\":{{\"id\":{},\"name\":\"{}\",\"description\":\"The product does not neutralize or incorrectly neutralizes user-controllable input.\"}},\
         \"cvss\":{{\"vector\":\"{vector}\",\"score\":{score},\"rating\":\"{rating}\"}},",
        2_900_000 + rng.below(200_000),
        soft.slug,
        cwe.0,
        esc(cwe.1)
    );
    match &cve {
        Some(c) => {
            let _ = write!(s, "\"cve\":\"{c}\",\"cve_link\":\"https:\\/\\/www.cve.org\\/CVERecord?id={c}\",");
        }
        None => s.push_str("\"cve\":null,\"cve_link\":null,"),
    }
    let first = *rng.pick(WORDS);
    let second = *rng.pick(WORDS);
    let (month, day) = (rng.range(1, 12), rng.range(1, 28));
    let _ = write!(
        s,
        "\"researchers\":[\"{} {}\"],\"published\":\"{year}-{month:02}-{day:02} 00:00:00\",\"updated\":\"{year}-{month:02}-{:02} 12:{:02}:{:02}\",\
         \"copyrights\":{{\"message\":\"This record contains material that is subject to copyright\",\
         \"defiant\":{{\"notice\":\"Copyright 2012-2026 Defiant Inc.\",\"license\":\"{}\",\"license_url\":\"https:\\/\\/www.wordfence.com\\/wordfence-intelligence-terms-and-conditions\\/\"}}",
        capital(first),
        capital(second),
        day + rng.below(29 - day),
        rng.below(60),
        rng.below(60),
        esc(LICENSE)
    );
    if cve.is_some() {
        let _ = write!(
            s,
            ",\"mitre\":{{\"notice\":\"Copyright 1999-2026 The MITRE Corporation\",\"license\":\"{MITRE_LICENSE}\",\"license_url\":\"https:\\/\\/www.cve.org\\/Legal\\/TermsOfUse\"}}"
        );
    }
    s.push_str("}}");
    // The description fills the record up to its share of the target size.
    let want = budget.saturating_sub(s.len()).max(120);
    let mut d = format!(
        "The {} {} for WordPress is vulnerable to {} in all versions up to, and including, {}. ",
        esc(&soft.name),
        soft.ty,
        cwe.2,
        last
    );
    let mut k = 0;
    while d.len() < want {
        let w = rng.pick(WORDS);
        if k % 23 == 22 {
            d.push_str(". ");
        } else if k > 0 {
            d.push(' ');
        }
        d.push_str(w);
        // A few escapes, as the real feed has (quotes, unicode, slashes).
        match rng.below(60) {
            0 => d.push_str(" \\u2018quoted\\u2019"),
            1 => d.push_str(" \\\"id\\\""),
            2 => d.push_str(" wp-admin\\/admin-ajax.php"),
            _ => {}
        }
        k += 1;
    }
    d.push('.');
    s.insert_str(desc_at, &d);
    let _ = n;
    s
}

fn capital(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// JSON-escape the few characters our generated text can contain.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
