//! What to fix first, and repeats folded into one row.
//!
//! A review of a real host has dozens of findings; an administrator acts on a
//! handful. Findings with the same id and severity become one [`Row`] ("weak
//! database password" on four sites is one row naming the four), and the
//! "Fix first" list ranks rows by severity, then exposure to the internet,
//! then how many sites or accounts a row covers — each with the fix to type.

use vigil_tools::{Category, Finding, Severity};

/// How many rows "Fix first" shows.
pub const FIX_FIRST: usize = 5;

/// Findings with one id and severity.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// The findings, in review order (at least one).
    pub findings: Vec<&'a Finding>,
}

impl<'a> Row<'a> {
    /// The first finding (every row has one).
    pub fn first(&self) -> &'a Finding {
        self.findings[0]
    }

    /// The finding id.
    pub fn id(&self) -> &'a str {
        &self.first().id
    }

    /// The severity.
    pub fn severity(&self) -> Severity {
        self.first().severity
    }

    /// Every subject the row covers (a subject listing several sites counts each).
    pub fn subjects(&self) -> Vec<&'a str> {
        self.findings.iter().flat_map(|f| f.subject.split(", ")).filter(|s| !s.is_empty()).collect()
    }

    /// The title: the finding's own for one finding; for several, the first title with its
    /// subject left out ("Weak database password for …").
    pub fn title(&self) -> String {
        let f = self.first();
        if self.findings.len() == 1 {
            return f.title.clone();
        }
        generic(&f.title, &f.subject)
    }

    /// The fix: the first finding's, and whether every other finding's fix is the same
    /// except for its subject (then it is typed once per subject).
    pub fn fix(&self) -> (&'a str, bool) {
        let f = self.first();
        let same =
            self.findings.iter().all(|g| generic(&g.remediation, &g.subject) == generic(&f.remediation, &f.subject));
        (&f.remediation, same)
    }

    /// How exposed it is: 2 when the internet reaches it, 1 for something listening, else 0.
    pub fn exposure(&self) -> u8 {
        self.findings.iter().map(|f| exposure(f)).max().unwrap_or(0)
    }
}

fn generic(text: &str, subject: &str) -> String {
    if subject.is_empty() { text.to_string() } else { text.replace(subject, "…") }
}

fn exposure(f: &Finding) -> u8 {
    let text = format!("{} {} {}", f.id, f.title, f.evidence.join(" ")).to_lowercase();
    if ["exposed", "internet", "firewall-off", "all interfaces", "other machines", "0.0.0.0"]
        .iter()
        .any(|w| text.contains(w))
    {
        2
    } else if f.category == Category::Ports {
        1
    } else {
        0
    }
}

/// Findings folded by (id, severity), in the order each first appears.
pub fn rows(findings: &[Finding]) -> Vec<Row<'_>> {
    let mut out: Vec<Row<'_>> = Vec::new();
    for f in findings {
        match out.iter_mut().find(|r| r.id() == f.id && r.severity() == f.severity) {
            Some(r) => r.findings.push(f),
            None => out.push(Row { findings: vec![f] }),
        }
    }
    out
}

/// The rows to fix first: medium and above, most severe, most exposed and widest first.
pub fn fix_first(findings: &[Finding]) -> Vec<Row<'_>> {
    let mut all: Vec<(usize, Row<'_>)> =
        rows(findings).into_iter().filter(|r| r.severity() >= Severity::Medium).enumerate().collect();
    all.sort_by(|(ia, a), (ib, b)| {
        b.severity()
            .cmp(&a.severity())
            .then(b.exposure().cmp(&a.exposure()))
            .then(b.subjects().len().cmp(&a.subjects().len()))
            .then(ia.cmp(ib))
    });
    all.into_iter().take(FIX_FIRST).map(|(_, r)| r).collect()
}

/// "1 finding", "3 findings".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, sev: Severity, cat: Category, subject: &str, title: &str, fix: &str) -> Finding {
        let mut f = Finding::new(id, sev, cat, subject, title);
        f.remediation = fix.into();
        f
    }

    #[test]
    fn repeats_fold_and_the_exposed_and_wide_come_first() {
        let c = Category::Credentials;
        let all = vec![
            f("a.weak", Severity::High, c, "/srv/a", "Weak password for /srv/a", "Change it in /srv/a/wp-config.php"),
            f("a.weak", Severity::High, c, "/srv/b", "Weak password for /srv/b", "Change it in /srv/b/wp-config.php"),
            f("a.weak", Severity::High, c, "/srv/c", "Weak password for /srv/c", "Change it in /srv/c/wp-config.php"),
            f(
                "p.open",
                Severity::High,
                Category::Ports,
                "tcp:9200",
                "Search is reachable from the internet",
                "Bind it",
            ),
            f("x.low", Severity::Low, c, "x", "low", "fix"),
            f("u.crit", Severity::Critical, c, "root", "Empty password", "`passwd -l root`"),
        ];
        let rows = rows(&all);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].subjects(), vec!["/srv/a", "/srv/b", "/srv/c"]);
        assert_eq!(rows[0].title(), "Weak password for …");
        assert_eq!(rows[0].fix(), ("Change it in /srv/a/wp-config.php", true));
        let first: Vec<&str> = fix_first(&all).iter().map(|r| r.id()).collect();
        assert_eq!(first, vec!["u.crit", "p.open", "a.weak"], "critical, then exposed, then wide; low left out");
        assert_eq!(plural(1, "finding", "findings"), "1 finding");
        assert_eq!(plural(2, "finding", "findings"), "2 findings");
    }
}
