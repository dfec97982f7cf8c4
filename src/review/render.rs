//! Rendering a review: text (terminal), Markdown, JSON and one self-contained HTML file.
//!
//! Every format leads with the deterministic counts (critical, high, new since
//! last time); a model's summary, when there is one, comes after them and can
//! never hide them. HTML escapes everything it shows, loads nothing, runs no
//! script, and carries a `default-src 'none'` content security policy.

use std::fmt::Write as _;

use vigil_tools::{Category, Finding, Severity};

use super::priority::{self, Row, plural};
use super::{Review, Summary};
use crate::term::paint;

/// One point of the month-by-month trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendPoint {
    /// Label (YYYY-MM).
    pub label: String,
    /// Open findings by severity name.
    pub by_severity: std::collections::BTreeMap<String, usize>,
    /// Open findings (above info) by category name.
    pub by_category: std::collections::BTreeMap<String, usize>,
}

/// The trend: the last review of each month, oldest first.
pub fn trend(reviews: &[Review]) -> Vec<TrendPoint> {
    let mut points: Vec<TrendPoint> = Vec::new();
    for r in reviews {
        let label: String = r.generated_at.chars().take(7).collect();
        let p = TrendPoint {
            label: label.clone(),
            by_severity: r.summary.by_severity.clone(),
            by_category: r.summary.by_category.clone(),
        };
        match points.last_mut() {
            Some(last) if last.label == label => *last = p,
            _ => points.push(p),
        }
    }
    points
}

fn count(s: &Summary, sev: Severity) -> usize {
    s.by_severity.get(sev.as_str()).copied().unwrap_or(0)
}

/// The one-line headline every format starts with.
pub fn headline(r: &Review) -> String {
    let s = &r.summary;
    let mut line = format!(
        "{} critical, {} high, {} medium, {} low",
        count(s, Severity::Critical),
        count(s, Severity::High),
        count(s, Severity::Medium),
        count(s, Severity::Low)
    );
    match &r.changes.since {
        Some(since) => {
            let _ = write!(line, "; {} new and {} resolved since {}", s.new, s.resolved, &since[..10.min(since.len())]);
        }
        None => line.push_str("; first review of this host"),
    }
    if s.acknowledged > 0 {
        let _ = write!(line, "; {} acknowledged", s.acknowledged);
    }
    if r.partial() {
        let _ = write!(line, "; PARTIAL: {} not checked", r.not_checked.len());
    }
    line
}

/// The open count of a pattern for the "By pattern" tables: a pattern nothing
/// could be checked in shows "not checked", never a reassuring 0.
fn pattern_count(r: &Review, c: Category) -> String {
    let n = r.summary.by_category.get(c.as_str()).copied().unwrap_or(0);
    match (r.not_checked.iter().any(|g| g.category == c), n) {
        (false, n) => n.to_string(),
        (true, 0) => "not checked".into(),
        (true, n) => format!("{n} (partly not checked)"),
    }
}

/// The audit log's chain head at review time, as one line (every format carries it, so a copy
/// of the head leaves the host with each report).
pub fn audit_line(r: &Review) -> Option<String> {
    r.audit_head.as_ref().map(|h| format!("audit log head: {h} (compare with `vigil log verify` on the host)"))
}

/// `sandbox: enforced (Landlock ABI 7, seccomp, no network)` or `sandbox: not enforced (why)`:
/// whether the kernel held the read-only promise for this review, said once in every format.
pub fn sandbox_line(r: &Review) -> Option<String> {
    r.sandbox.as_ref().map(|s| s.line())
}

fn sev_color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    }
}

/// Plain text, grouped by severity, one line per finding with its remediation.
pub fn text(r: &Review) -> String {
    text_to_width(r, None)
}

/// [`text`] with long lines (what was seen, the fix) wrapped to `width` columns under
/// their label, for a terminal; `None` keeps whole lines (files, pipes).
pub fn text_to_width(r: &Review, width: Option<usize>) -> String {
    let mut o = String::new();
    for n in &r.notices {
        let _ = writeln!(o, "{}", paint("1;31", &format!("!! {n}")));
    }
    let _ = writeln!(o, "vigil review of {} ({}) at {}", r.host.name, r.host.root, r.generated_at);
    let _ = writeln!(o, "{}", paint("1", &headline(r)));
    if let Some(a) = audit_line(r) {
        let _ = writeln!(o, "{a}");
    }
    if let Some(l) = sandbox_line(r) {
        let _ = writeln!(o, "{l}");
    }
    if let Some(m) = &r.model_summary {
        let _ = writeln!(
            o,
            "\n{}",
            paint("1", &format!("SUMMARY BY {} (advisory; the findings below are the review)", m.model))
        );
        match (&m.text, &m.error) {
            (Some(t), _) => {
                let _ = writeln!(o, "{}", crate::term::strip_controls(t));
            }
            (None, Some(e)) => {
                let _ = writeln!(o, "  (no model summary: {e})");
            }
            _ => {}
        }
    }
    let first = priority::fix_first(&r.findings);
    if !first.is_empty() {
        let _ = writeln!(o, "\n{}", paint("1", "FIX FIRST"));
        for (i, row) in first.iter().enumerate() {
            let sev = row.severity();
            let _ = writeln!(
                o,
                "  {}. {} [{}] {} — {}",
                i + 1,
                paint(sev_color(sev), sev.as_str()),
                row.id(),
                row.subjects().join(", "),
                row.title()
            );
            let (fix, same) = row.fix();
            if !fix.is_empty() {
                let each = if same && row.findings.len() > 1 { " (the same for each)" } else { "" };
                let _ = writeln!(o, "     fix: {fix}{each}");
            }
        }
    }
    let rows = priority::rows(&r.findings);
    for sev in Severity::ALL.into_iter().filter(|s| *s > Severity::Info) {
        let group: Vec<&Row> = rows.iter().filter(|row| row.severity() == sev).collect();
        if group.is_empty() {
            continue;
        }
        let n: usize = group.iter().map(|row| row.findings.len()).sum();
        let _ = writeln!(o, "\n{}", paint(sev_color(sev), &format!("{} ({n})", sev.as_str().to_uppercase())));
        for row in group {
            let f = row.first();
            if row.findings.len() == 1 {
                let _ = writeln!(o, "  {} [{}] {}", paint(sev_color(sev), &f.subject), f.id, f.title);
            } else {
                let _ = writeln!(
                    o,
                    "  {} [{}] {}",
                    paint(sev_color(sev), &plural(row.findings.len(), "subject", "subjects")),
                    f.id,
                    row.title()
                );
                let _ = writeln!(o, "      on:   {}", row.subjects().join(", "));
            }
            if let Some(e) = f.evidence.first() {
                let more =
                    if f.evidence.len() > 1 { format!(" (+{} more)", f.evidence.len() - 1) } else { String::new() };
                let _ = writeln!(o, "      seen: {e}{more}");
            }
            let (fix, same) = row.fix();
            if !fix.is_empty() {
                let each = match (row.findings.len() > 1, same) {
                    (false, _) => "",
                    (true, true) => " (the same for each)",
                    (true, false) => " (shown for the first; the HTML report has each)",
                };
                let _ = writeln!(o, "      fix:  {fix}{each}");
            }
        }
    }
    if !r.partial() {
        let _ = writeln!(o, "\n{}", paint("2", "NOT CHECKED: nothing (every check looked at everything it covers)"));
    } else {
        let _ =
            writeln!(o, "\n{}", paint("1;35", &format!("NOT CHECKED ({}; not counted above)", r.not_checked.len())));
        for g in &r.not_checked {
            let _ = writeln!(o, "  {} {}", paint("35", &format!("[{}]", g.check)), g.what.join(", "));
            let _ = writeln!(o, "      why:  {}", g.why);
            let _ = writeln!(o, "      fix:  {}", g.fix);
        }
    }
    if r.changes.since.is_some()
        && (!r.changes.new.is_empty() || !r.changes.resolved.is_empty() || !r.changes.host.is_empty())
    {
        let _ = writeln!(o, "\n{}", paint("1", "SINCE THE LAST REVIEW"));
        for n in &r.changes.new {
            let _ = writeln!(o, "  new:      [{}] {} {}", n.id, n.subject, n.title.as_deref().unwrap_or(""));
        }
        for n in &r.changes.resolved {
            let _ = writeln!(o, "  resolved: [{}] {} {}", n.id, n.subject, n.title.as_deref().unwrap_or(""));
        }
        for c in &r.changes.host {
            let _ = writeln!(o, "  host:     {}", c.describe());
        }
    }
    if !r.acknowledged.is_empty() {
        let _ = writeln!(o, "\n{}", paint("1", "ACKNOWLEDGED (not counted)"));
        for a in &r.acknowledged {
            let until = a.ack.until.as_deref().map(|u| format!(" until {u}")).unwrap_or_default();
            let _ = writeln!(
                o,
                "  [{}] {} {} — \"{}\" ({}{until})",
                a.finding.id, a.finding.subject, a.finding.title, a.ack.reason, a.ack.by
            );
        }
    }
    let info: Vec<&Finding> = r.findings.iter().filter(|f| f.severity == Severity::Info).collect();
    if !info.is_empty() {
        let _ = writeln!(o, "\n{}", paint("2", "NOTES"));
        for f in info {
            let _ = writeln!(o, "  {} {}", paint("2", &format!("[{}]", f.id)), f.title);
            if !f.remediation.is_empty() {
                let _ = writeln!(o, "      {}", paint("2", &format!("fix: {}", f.remediation)));
            }
        }
    }
    let failed: Vec<&String> = r.tools.iter().filter(|(_, t)| !t.ok).map(|(n, _)| n).collect();
    let _ = writeln!(
        o,
        "\n{} checks in {} ms{}",
        r.tools.len(),
        r.duration_ms,
        if failed.is_empty() {
            String::new()
        } else {
            format!("; could not run: {}", failed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
        }
    );
    match width {
        Some(w) => fit(&o, w),
        None => o,
    }
}

/// Wrap every line of `text` wider than `width`: continuations start under the text
/// after a label (`seen:`, `fix:`, `1.`), else four columns in.
fn fit(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        if line.chars().count() <= width {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let lead = line.len() - line.trim_start().len();
        let body = &line[lead..];
        let label = ["seen: ", "fix:  ", "fix: ", "on:   ", "why:  "]
            .iter()
            .find(|l| body.starts_with(**l))
            .map(|l| l.len())
            .or_else(|| {
                let digits = body.chars().take_while(char::is_ascii_digit).count();
                (digits > 0 && body[digits..].starts_with(". ")).then_some(digits + 2)
            })
            .unwrap_or(4);
        let indent = " ".repeat(lead + label);
        out.push_str(&line[..lead]);
        out.push_str(&crate::term::wrap(body, lead, &indent, width));
        out.push('\n');
    }
    out
}

/// Escape text for a Markdown table cell or line.
pub fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ").replace('<', "&lt;").replace('>', "&gt;")
}

/// Markdown.
pub fn markdown(r: &Review) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# vigil review: {}\n", md_escape(&r.host.name));
    for n in &r.notices {
        let _ = writeln!(o, "> **{}**\n", md_escape(n));
    }
    let _ = writeln!(o, "**{}**\n", md_escape(&headline(r)));
    let _ = writeln!(
        o,
        "Root `{}`, generated {}, {} checks in {} ms.\n",
        r.host.root,
        r.generated_at,
        r.tools.len(),
        r.duration_ms
    );
    if let Some(a) = audit_line(r) {
        let _ = writeln!(o, "{}\n", md_escape(&a));
    }
    if let Some(l) = sandbox_line(r) {
        let _ = writeln!(o, "{}\n", md_escape(&l));
    }
    if let Some(m) = &r.model_summary {
        let _ = writeln!(o, "## Summary by {} (advisory)\n", md_escape(&m.model));
        match (&m.text, &m.error) {
            (Some(t), _) => {
                let t = crate::term::strip_controls(t).replace('<', "&lt;").replace('>', "&gt;");
                let _ = writeln!(o, "{t}\n");
            }
            (None, Some(e)) => {
                let _ = writeln!(o, "_No model summary: {}_\n", md_escape(e));
            }
            _ => {}
        }
    }
    let first = priority::fix_first(&r.findings);
    if !first.is_empty() {
        let _ = writeln!(o, "## Fix first\n");
        for (i, row) in first.iter().enumerate() {
            let (fix, _) = row.fix();
            let _ = writeln!(
                o,
                "{}. **{}** `{}` {} — {}  \n   Fix: {}",
                i + 1,
                row.severity(),
                row.id(),
                md_escape(&row.subjects().join(", ")),
                md_escape(&row.title()),
                md_escape(fix)
            );
        }
        o.push('\n');
    }
    let _ = writeln!(o, "## By pattern\n\n| # | pattern | open |\n|---|---|---|");
    for c in Category::ALL {
        let _ = writeln!(o, "| {} | {} | {} |", c.pattern(), c.title(), pattern_count(r, c));
    }
    let _ = writeln!(o, "\n## Findings\n\n| severity | finding | subject | what | fix |\n|---|---|---|---|---|");
    for row in priority::rows(&r.findings) {
        let f = row.first();
        let (fix, same) = row.fix();
        let each = if row.findings.len() > 1 && same { " (the same for each)" } else { "" };
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {}{} | {}{each} |",
            f.severity,
            f.id,
            md_escape(&row.subjects().join(", ")),
            md_escape(&row.title()),
            if f.evidence.is_empty() { String::new() } else { format!("<br>{}", md_escape(&f.evidence.join("; "))) },
            md_escape(fix)
        );
    }
    let _ = writeln!(o, "\n## Not checked\n");
    if r.partial() {
        let _ = writeln!(
            o,
            "Not counted above: this review is partial.\n\n| check | what | why | fix |\n|---|---|---|---|"
        );
        for g in &r.not_checked {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} |",
                g.check,
                md_escape(&g.what.join(", ")),
                md_escape(&g.why),
                md_escape(&g.fix)
            );
        }
    } else {
        let _ = writeln!(o, "Nothing: every check looked at everything it covers.");
    }
    if r.changes.since.is_some() {
        let _ = writeln!(o, "\n## Since the last review ({})\n", r.changes.since.as_deref().unwrap_or(""));
        for n in &r.changes.new {
            let _ = writeln!(o, "- new: `{}` {}", n.id, md_escape(&n.subject));
        }
        for n in &r.changes.resolved {
            let _ = writeln!(o, "- resolved: `{}` {}", n.id, md_escape(&n.subject));
        }
        for c in &r.changes.host {
            let _ = writeln!(o, "- host: {}", md_escape(&c.describe()));
        }
    }
    if !r.acknowledged.is_empty() {
        let _ = writeln!(o, "\n## Acknowledged\n");
        for a in &r.acknowledged {
            let _ = writeln!(
                o,
                "- `{}` {}: {} ({})",
                a.finding.id,
                md_escape(&a.finding.subject),
                md_escape(&a.ack.reason),
                a.ack.by
            );
        }
    }
    o
}

/// HTML-escape text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' => {}
            c => o.push(c),
        }
    }
    o
}

/// HTML-escape a fix text, showing `backticked` commands as copyable `<code>` and
/// http(s) URLs as links (every other scheme stays text).
pub fn rich(s: &str) -> String {
    let mut o = String::new();
    for (i, part) in s.split('`').enumerate() {
        // Odd parts were inside backticks (an unpaired last one stays text).
        if i % 2 == 1 && s.split('`').count() > i + 1 {
            let _ = write!(o, "<code>{}</code>", esc(part));
        } else {
            o.push_str(&linked(part));
        }
    }
    o
}

fn linked(s: &str) -> String {
    let mut o = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("https://").into_iter().chain(rest.find("http://")).min() {
        o.push_str(&esc(&rest[..at]));
        let url_len = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | '`'))
            .unwrap_or(rest.len() - at);
        let url = rest[at..at + url_len].trim_end_matches(['.', ',', ';', ':']);
        let _ = write!(o, "<a href=\"{0}\" rel=\"noreferrer\">{0}</a>", esc(url));
        rest = &rest[at + url.len()..];
    }
    o.push_str(&esc(rest));
    o
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:75rem;color:#222;padding:0 1rem}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}h2 .muted{font-size:.85rem;font-weight:normal}\
.cards{display:flex;gap:.75rem;flex-wrap:wrap}.card{border-radius:6px;padding:.6rem 1rem;min-width:6rem;color:#fff}\
.card b{display:block;font-size:1.6rem}.critical{background:#8b0000}.high{background:#c0392b}.medium{background:#b9770e}\
.low{background:#2e86c1}.info{background:#6c7a7d}.new{background:#5b2c6f}.resolved{background:#1e8449}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:.35rem;text-align:left;vertical-align:top}\
table.findings{table-layout:fixed}table.findings td{overflow-wrap:anywhere}\
table.findings th:nth-child(1){width:5.5rem}table.findings th:nth-child(2){width:12rem}\
table.findings th:nth-child(3){width:13rem}table.findings th:nth-child(5){width:28%}\
table.patterns{width:auto;min-width:30rem}table.patterns td:last-child{text-align:right}\
.badge{display:inline-block;border-radius:4px;padding:.05rem .4rem;color:#fff;font-weight:bold;text-transform:uppercase;font-size:.72rem}\
.ev{color:#555;font-size:.85rem}code{font-size:.85rem}\
.advice{white-space:pre-wrap;background:#f4f6f7;border-left:4px solid #2e86c1;padding:.6rem 1rem}\
.notice{background:#fdecea;border-left:4px solid #c0392b;padding:.5rem 1rem;font-weight:bold}.muted{color:#777}";

/// One self-contained HTML file.
pub fn html(r: &Review, trend_points: &[TrendPoint]) -> String {
    page(&format!("vigil review: {}", r.host.name), &html_body(r, trend_points))
}

/// A self-contained HTML page around `body` (already escaped): the stylesheet, no script,
/// and a `default-src 'none'` content security policy.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{CSS}</style></head><body>{body}</body></html>\n",
        esc(title)
    )
}

/// The body of [`html`]: one review, for a page of its own or a section of a fleet report.
pub fn html_body(r: &Review, trend_points: &[TrendPoint]) -> String {
    let mut o = String::new();
    let s = &r.summary;
    for n in &r.notices {
        let _ = write!(o, "<p class=\"notice\">{}</p>", esc(n));
    }
    let _ = write!(o, "<h1>vigil review: {}</h1>", esc(&r.host.name));
    let _ = write!(o, "<section id=\"summary\"><p><strong>{}</strong></p><div class=\"cards\">", esc(&headline(r)));
    for sev in Severity::ALL {
        let _ = write!(o, "<div class=\"card {0}\"><b>{1}</b>{0}</div>", sev.as_str(), count(s, sev));
    }
    let _ = write!(
        o,
        "<div class=\"card new\"><b>{}</b>new</div><div class=\"card resolved\"><b>{}</b>resolved</div></div>",
        s.new, s.resolved
    );
    let _ = write!(
        o,
        "<p class=\"muted\">Root <code>{}</code>, generated {}, {} checks in {} ms.</p></section>",
        esc(&r.host.root),
        esc(&r.generated_at),
        r.tools.len(),
        r.duration_ms
    );
    if let Some(a) = audit_line(r) {
        let _ = write!(o, "<p class=\"muted\" id=\"audit-head\">{}</p>", esc(&a));
    }
    if let Some(l) = sandbox_line(r) {
        let _ = write!(o, "<p class=\"muted\" id=\"sandbox\">{}</p>", esc(&l));
    }
    if let Some(m) = &r.model_summary {
        let _ = write!(
            o,
            "<section id=\"model-summary\"><h2>Summary by {} <span class=\"muted\">(advisory; the findings below are the review)</span></h2>",
            esc(&m.model)
        );
        match (&m.text, &m.error) {
            (Some(t), _) => {
                let _ = write!(o, "<div class=\"advice\">{}</div>", esc(&crate::term::strip_controls(t)));
            }
            (None, Some(e)) => {
                let _ = write!(o, "<p class=\"muted\">No model summary: {}</p>", esc(e));
            }
            _ => {}
        }
        o.push_str("</section>");
    }
    let first = priority::fix_first(&r.findings);
    if !first.is_empty() {
        o.push_str("<section id=\"fix-first\"><h2>Fix first</h2><ol>");
        for row in &first {
            let (fix, _) = row.fix();
            let _ = write!(
                o,
                "<li><span class=\"badge {0}\">{0}</span> <code>{1}</code> {2} — {3}<div>Fix: {4}</div></li>",
                row.severity().as_str(),
                esc(row.id()),
                esc(&row.subjects().join(", ")),
                esc(&row.title()),
                rich(fix)
            );
        }
        o.push_str("</ol></section>");
    }
    let _ = write!(
        o,
        "<h2>By pattern</h2><table class=\"patterns\"><tr><th>#</th><th>pattern</th><th>open findings</th></tr>"
    );
    for c in Category::ALL {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.pattern(),
            esc(c.title()),
            esc(&pattern_count(r, c))
        );
    }
    o.push_str("</table>");
    if trend_points.len() > 1 {
        let _ = write!(o, "<h2>Trend</h2>{}", trend_svg(trend_points));
    }
    let _ = write!(
        o,
        "<h2>Findings</h2><table class=\"findings\"><tr><th>severity</th><th>finding</th><th>subject</th><th>what was seen</th><th>fix</th></tr>"
    );
    for row in priority::rows(&r.findings) {
        let f = row.first();
        // Folded rows keep every finding's own fix: they often name their own file.
        let fixes: Vec<String> = if row.fix().1 || row.findings.len() == 1 {
            vec![rich(row.fix().0)]
        } else {
            row.findings.iter().map(|g| format!("{}: {}", esc(&g.subject), rich(&g.remediation))).collect()
        };
        let each = if row.findings.len() > 1 && row.fix().1 {
            " <span class=\"muted\">(the same for each)</span>"
        } else {
            ""
        };
        let _ = write!(
            o,
            "<tr><td><span class=\"badge {0}\">{0}</span></td><td><code>{1}</code></td><td>{2}</td><td>{3}<div class=\"ev\">{4}</div></td><td>{5}{each}</td></tr>",
            f.severity.as_str(),
            esc(&f.id),
            row.subjects().iter().map(|s| esc(s)).collect::<Vec<_>>().join("<br>"),
            esc(&row.title()),
            f.evidence.iter().map(|e| esc(e)).collect::<Vec<_>>().join("<br>"),
            fixes.join("<br>")
        );
    }
    o.push_str("</table>");
    o.push_str(
        "<p class=\"legend muted\" id=\"legend\"><span class=\"badge critical\">critical</span> exploitable now, fix today \
         <span class=\"badge high\">high</span> fix this week <span class=\"badge medium\">medium</span> fix this month \
         <span class=\"badge low\">low</span> when convenient <span class=\"badge info\">info</span> a note, not counted</p>",
    );
    o.push_str("<section id=\"not-checked\"><h2>Not checked</h2>");
    if r.partial() {
        o.push_str(
            "<p>Not counted above: this review is partial.</p><table class=\"findings\"><tr><th>check</th><th>what</th><th>why</th><th>fix</th></tr>",
        );
        for g in &r.not_checked {
            let _ = write!(
                o,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.check),
                g.what.iter().map(|w| esc(w)).collect::<Vec<_>>().join("<br>"),
                esc(&g.why),
                rich(&g.fix)
            );
        }
        o.push_str("</table>");
    } else {
        o.push_str("<p class=\"muted\">Nothing: every check looked at everything it covers.</p>");
    }
    o.push_str("</section>");
    if r.changes.since.is_some() {
        let _ = write!(o, "<h2>Since the last review ({})</h2><ul>", esc(r.changes.since.as_deref().unwrap_or("")));
        for n in &r.changes.new {
            let _ = write!(o, "<li>new: <code>{}</code> {}</li>", esc(&n.id), esc(&n.subject));
        }
        for n in &r.changes.resolved {
            let _ = write!(o, "<li>resolved: <code>{}</code> {}</li>", esc(&n.id), esc(&n.subject));
        }
        for c in &r.changes.host {
            let _ = write!(o, "<li>host: {}</li>", esc(&c.describe()));
        }
        o.push_str("</ul>");
    }
    if !r.acknowledged.is_empty() {
        o.push_str("<h2>Acknowledged</h2><ul>");
        for a in &r.acknowledged {
            let _ = write!(
                o,
                "<li><code>{}</code> {}: {} ({})</li>",
                esc(&a.finding.id),
                esc(&a.finding.subject),
                esc(&a.ack.reason),
                esc(&a.ack.by)
            );
        }
        o.push_str("</ul>");
    }
    o
}

/// An inline SVG line chart of open findings by severity, month by month (legend on the right,
/// with each severity's latest count; the most severe line drawn last, on top).
pub fn trend_svg(points: &[TrendPoint]) -> String {
    let (w, h) = (720.0_f64, 230.0_f64);
    let (left, right, top, bottom) = (40.0_f64, 120.0_f64, 16.0_f64, 36.0_f64);
    let sevs = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];
    let colors = ["#8b0000", "#c0392b", "#b9770e", "#2e86c1"];
    let value = |p: &TrendPoint, s: Severity| p.by_severity.get(s.as_str()).copied().unwrap_or(0);
    let max = points.iter().flat_map(|p| sevs.iter().map(move |s| value(p, *s))).max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(2) as f64;
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1.0);
    let y = |v: usize| h - bottom - (h - top - bottom) * v as f64 / max;
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"open findings by severity, month by month\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"system-ui,sans-serif\">"
    );
    for (v, label) in [(0usize, "0".to_string()), (max as usize, format!("{}", max as usize))] {
        let _ = write!(
            o,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"{2}\"/><text x=\"{3}\" y=\"{4:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{label}</text>",
            y(v),
            w - right,
            if v == 0 { "#999" } else { "#e5e5e5" },
            left - 6.0,
            y(v) + 4.0
        );
    }
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            x(i),
            h - bottom + 18.0,
            esc(&p.label)
        );
    }
    for (k, sev) in sevs.iter().enumerate().rev() {
        let pts: Vec<String> =
            points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(value(p, *sev)))).collect();
        let _ = write!(
            o,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            colors[k],
            pts.join(" "),
            sev
        );
        for (i, p) in points.iter().enumerate() {
            let _ = write!(
                o,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{} {}: {}</title></circle>",
                x(i),
                y(value(p, *sev)),
                colors[k],
                esc(&p.label),
                sev,
                value(p, *sev)
            );
        }
    }
    let latest = points.last();
    for (k, sev) in sevs.iter().enumerate() {
        let ly = top + 6.0 + 18.0 * k as f64;
        let _ = write!(
            o,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"12\" fill=\"#333\">{} {}</text>",
            w - right + 16.0,
            ly - 9.0,
            colors[k],
            w - right + 31.0,
            ly,
            sev,
            latest.map(|p| value(p, *sev)).unwrap_or(0)
        );
    }
    o.push_str("</svg>");
    o
}
