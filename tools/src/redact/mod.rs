//! The `Redactor`: one pass that removes secrets from anything leaving the host.
//!
//! Tools judge secrets locally and report the judgement, never the value. As a
//! second line of defence, every tool output, plan, log line, transcript and
//! report passes through [`Redactor::text`] / [`Redactor::value`], which
//! replace passwords and tokens on command lines (`--requirepass`, `-pSECRET`,
//! `curl -u user:…`, `sshpass -p …`), in environments and config lines
//! (`DB_PASSWORD=…`, `define('DB_PASSWORD', …)`), credentials in URLs, bearer
//! tokens, well-known token shapes and private key blocks with `[REDACTED]`.
//! The rules live in `rules`, the judgement of which names are secret in
//! `names`; the corpora under `tools/tests/fixtures/redact/` pin both what must
//! be masked and what must pass unchanged. Placeholders an admin is told to
//! replace (`'NEW-PASSWORD'`, `<token>`) are not secrets and stay readable.

mod names;
mod rules;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{LazyLock, OnceLock};

use regex::{Captures, Regex, RegexSet};
use serde_json::Value;

use crate::finding::Finding;
use crate::tool::Plan;
use rules::Check;

pub use names::secret_name;

/// The replacement text.
pub const MASK: &str = "[REDACTED]";

/// One rule, compiled the first time its trigger is met: most text trips none, and compiling
/// every pattern up front cost each vigil process (and each worker) ~15 ms before its first answer.
#[derive(Debug)]
struct Rule {
    pattern: String,
    re: OnceLock<Regex>,
    check: Check,
    /// The command before the match must match this (the tool the flag belongs to).
    tool: Option<(&'static str, OnceLock<Regex>)>,
    /// Index of this rule's trigger in [`Redactor::triggers`].
    trigger: usize,
    /// Its literal groups ([`rules::Spec::needs`]), as indexes into [`Literals::group_of`]'s bits.
    needs: Vec<usize>,
}

/// Every rule's literals in one automaton (ASCII case-insensitive): which groups of literals
/// an ASCII text holds, found in one pass with nothing compiled lazily or warmed up. The
/// trigger regexes found the same (checked over the corpora), but a `RegexSet` of ~60 of
/// them cost each process ~3 ms to build and ~5 ms of lazy DFA states over its first
/// few thousand strings.
#[derive(Debug)]
struct Literals {
    automaton: aho_corasick::AhoCorasick,
    /// For each literal (by pattern id), the groups it satisfies.
    group_of: Vec<Vec<usize>>,
}

/// Which literal groups a text holds: one bit each (there are fewer than 128 groups).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Groups(u128);

impl Groups {
    fn has(self, g: usize) -> bool {
        self.0 >> g & 1 == 1
    }
}

/// Removes secrets from text and JSON.
#[derive(Debug)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// Every rule's literals at once: one scan of an ASCII text tells which rules can apply
    /// (most strings, e.g. thousands of listeners' fields, have no secret).
    literals: Literals,
    /// Every rule's trigger regex at once, for text that is not ASCII (compiled when first met).
    triggers: OnceLock<RegexSet>,
    trigger_patterns: Vec<String>,
}

static GLOBAL: LazyLock<Redactor> = LazyLock::new(Redactor::new);

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    /// The shared instance.
    pub fn global() -> &'static Redactor {
        &GLOBAL
    }

    #[expect(clippy::expect_used, reason = "the patterns and literals are constants, covered by the tests below")]
    fn new() -> Self {
        let started = std::time::Instant::now();
        let mut triggers: Vec<String> = Vec::new();
        let mut groups: Vec<&'static [&'static str]> = Vec::new();
        let mut rules = Vec::new();
        for s in rules::specs() {
            let needs = s.needs.iter().map(|g| index_of(&mut groups, *g)).collect();
            rules.push(Rule {
                pattern: s.pattern,
                re: OnceLock::new(),
                check: s.check,
                tool: s.tool.map(|t| (t, OnceLock::new())),
                trigger: index_of(&mut triggers, s.trigger),
                needs,
            });
        }
        assert!(groups.len() <= 128, "{} literal groups do not fit the redactor's bit set", groups.len());
        let mut literals: Vec<&str> = Vec::new();
        let mut group_of: Vec<Vec<usize>> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            for lit in group.iter() {
                let i = index_of(&mut literals, *lit);
                if i == group_of.len() {
                    group_of.push(Vec::new());
                }
                group_of[i].push(g);
            }
        }
        let automaton = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&literals)
            .expect("the redactor's literals build an automaton");
        tracing::debug!("redactor ready in {:.2} ms", started.elapsed().as_secs_f64() * 1e3);
        Redactor {
            rules,
            literals: Literals { automaton, group_of },
            triggers: OnceLock::new(),
            trigger_patterns: triggers,
        }
    }

    /// The rules that can change `s`: the literal groups it holds for ASCII text, the
    /// trigger regexes for any other (where `(?i)` also folds non-ASCII letters).
    fn candidates<'r>(&'r self, s: &str) -> Vec<&'r Rule> {
        if s.is_ascii() {
            let mut held = Groups::default();
            for m in self.literals.automaton.find_overlapping_iter(s) {
                for g in &self.literals.group_of[m.pattern().as_usize()] {
                    held.0 |= 1 << g;
                }
            }
            if held == Groups::default() {
                return Vec::new();
            }
            return self.rules.iter().filter(|r| r.needs.iter().all(|g| held.has(*g))).collect();
        }
        let hit = self.triggers().matches(s);
        if !hit.matched_any() {
            return Vec::new();
        }
        self.rules.iter().filter(|r| hit.matched(r.trigger)).collect()
    }

    #[expect(clippy::expect_used, reason = "the patterns are constants, covered by the tests below")]
    fn triggers(&self) -> &RegexSet {
        self.triggers.get_or_init(|| RegexSet::new(&self.trigger_patterns).expect("trigger patterns compile"))
    }

    /// Compile now, rather than when first met, the rules that find a secret by its name
    /// (`password = …`, `--token x`, `<key>…</key>`): nearly every review's output names a
    /// password, key or token somewhere. For a caller with a core to spare (the parent
    /// while its worker works).
    pub fn compile_name_rules(&self) {
        for rule in self.rules.iter().filter(|r| matches!(r.check, Check::Name | Check::Flag)) {
            let _ = rule.re();
        }
    }

    /// Text with every secret replaced.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        // Replacements only insert the mask, which trips no trigger: the triggers of the
        // original text decide which rules can apply.
        let mut out = Cow::Borrowed(s);
        for rule in self.candidates(s) {
            if let Some(changed) = rule.apply(&out) {
                out = Cow::Owned(changed);
            }
        }
        out
    }
    /// JSON with every string redacted and values under secret-named keys masked.
    pub fn value(&self, mut v: Value) -> Value {
        self.value_in_place(&mut v);
        v
    }

    /// [`Redactor::value`] in place: only strings that change are rewritten, so a large
    /// output with nothing secret is walked, not rebuilt. A string already found clean in
    /// this value is not scanned again: 3,000 listeners repeat the same few addresses, users
    /// and command lines.
    pub fn value_in_place(&self, v: &mut Value) {
        self.walk(v, &mut HashSet::new());
    }

    fn walk(&self, v: &mut Value, clean: &mut HashSet<String>) {
        /// Remembered clean strings: at most this many, each at most this long.
        const CLEAN_MAX: (usize, usize) = (4096, 1024);
        match v {
            Value::String(s) => {
                if clean.contains(s.as_str()) {
                    return;
                }
                match self.text(s) {
                    Cow::Owned(r) => *s = r,
                    Cow::Borrowed(_) if clean.len() < CLEAN_MAX.0 && s.len() <= CLEAN_MAX.1 => {
                        clean.insert(s.clone());
                    }
                    Cow::Borrowed(_) => {}
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.walk(x, clean)),
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if is_secret_key(k) && x.is_string() {
                        *x = Value::String(MASK.into());
                    } else {
                        self.walk(x, clean);
                    }
                }
            }
            _ => {}
        }
    }

    /// A finding with its title, subject, evidence and remediation redacted.
    pub fn finding(&self, mut f: Finding) -> Finding {
        f.title = self.text(&f.title).into_owned();
        f.subject = self.text(&f.subject).into_owned();
        f.remediation = self.text(&f.remediation).into_owned();
        f.evidence = f.evidence.iter().map(|e| self.text(e).into_owned()).collect();
        f
    }

    /// A plan with every step redacted.
    pub fn plan(&self, mut p: Plan) -> Plan {
        p.summary = self.text(&p.summary).into_owned();
        for s in &mut p.steps {
            s.action = self.text(&s.action).into_owned();
            s.command = s.command.as_deref().map(|c| self.text(c).into_owned());
            s.undo = s.undo.as_deref().map(|c| self.text(c).into_owned());
        }
        p.warnings = p.warnings.iter().map(|w| self.text(w).into_owned()).collect();
        p
    }
}

/// The index of `x` in `v`, added at the end when it is not there yet.
fn index_of<T: PartialEq>(v: &mut Vec<T>, x: T) -> usize {
    match v.iter().position(|y| *y == x) {
        Some(i) => i,
        None => {
            v.push(x);
            v.len() - 1
        }
    }
}

/// JSON keys whose string values are masked whole, compared ignoring ASCII case.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "passphrase",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "auth_token",
    "api_token",
    "api_key",
    "api-key",
    "apikey",
    "secret_key",
    "private_key",
    "db_password",
    "x-api-key",
    "requirepass",
    "masterauth",
];

fn is_secret_key(k: &str) -> bool {
    // Compared in place, nothing lower-cased into a new string: 3,000 listeners are 40,000
    // keys, none of them secret.
    SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k))
}

impl Rule {
    /// The rule's pattern, compiled on first use.
    #[expect(clippy::expect_used, reason = "the patterns are constants; a test compiles every one")]
    fn re(&self) -> &Regex {
        self.re.get_or_init(|| Regex::new(&self.pattern).expect("redaction pattern compiles"))
    }

    /// The pattern of the tool a flag belongs to, compiled on first use.
    #[expect(clippy::expect_used, reason = "the patterns are constants; a test compiles every one")]
    fn tool(&self) -> Option<&Regex> {
        self.tool.as_ref().map(|(t, re)| re.get_or_init(|| Regex::new(t).expect("tool pattern compiles")))
    }

    /// This rule applied to `s`, or `None` when it changes nothing.
    fn apply(&self, s: &str) -> Option<String> {
        if let Check::Template(t) = self.check {
            return match self.re().replace_all(s, t) {
                Cow::Owned(o) => Some(o),
                Cow::Borrowed(_) => None,
            };
        }
        let tools: Option<(Vec<usize>, Vec<usize>)> = self
            .tool()
            .map(|t| (t.find_iter(s).map(|m| m.end()).collect(), s.match_indices('\n').map(|(i, _)| i).collect()));
        let mut out = String::new();
        let mut last = 0;
        let mut pos = 0;
        while pos <= s.len() {
            let Some(c) = self.re().captures_at(s, pos) else { break };
            let Some(whole) = c.get(0) else { break };
            match c.name("v").filter(|v| self.accepts(&c, v.as_str(), tools.as_ref())) {
                Some(v) => {
                    out.push_str(&s[last..v.start()]);
                    out.push_str(&mask_value(v.as_str()));
                    last = v.end();
                    pos = v.end();
                }
                None => {
                    // Look again from just after the name, so `--user --password x` still finds
                    // `--password x` after rejecting `--user --password`.
                    let after_name = c.name("name").map_or(0, |n| n.end());
                    let next_char = s[whole.start()..].chars().next().map_or(1, char::len_utf8);
                    pos = after_name.max(whole.start() + next_char);
                }
            }
        }
        if last == 0 {
            return None;
        }
        out.push_str(&s[last..]);
        Some(out)
    }

    /// Is the value `v` of this match a secret to mask?
    /// `tools`: where this rule's tool pattern matches in `s` (match ends) and where its lines end,
    /// both sorted, so each candidate is checked in logarithmic time.
    fn accepts(&self, c: &Captures, v: &str, tools: Option<&(Vec<usize>, Vec<usize>)>) -> bool {
        if !maskable(v) {
            return false;
        }
        let name = c.name("name").map_or("", |n| n.as_str());
        let start = c.get(0).map_or(0, |m| m.start());
        if self.tool.is_some() {
            // The command this flag belongs to: a match of the tool's pattern earlier on the same line.
            let Some((ends, newlines)) = tools else { return false };
            let i = ends.partition_point(|&e| e <= start);
            let Some(&end) = i.checked_sub(1).and_then(|i| ends.get(i)) else { return false };
            let next_newline = newlines.get(newlines.partition_point(|&n| n < end));
            if next_newline.is_some_and(|&n| n < start) {
                return false;
            }
        }
        match self.check {
            Check::Always | Check::Template(_) => true,
            Check::Name => names::secret_name(name),
            Check::Flag => {
                let sep = c.name("sep").map_or("", |m| m.as_str());
                // `-pS3cret` is a short flag with its value attached, not a flag named "pS3cret":
                // single-dash long flags (`-pass`, `-passin`) are lower-case words.
                let single = c.name("dash").is_some_and(|d| d.as_str() == "-");
                if single && name.bytes().any(|b| !(b.is_ascii_lowercase() || b == b'-' || b == b'_')) {
                    return false;
                }
                names::secret_name(name) && (sep == "=" || !v.starts_with('-') || names::always_valued(name))
            }
            Check::Url => !port_and_path(v),
        }
    }
}

/// `8080/x` in `http://host:8080/x@y`: a port and a path, not a password.
fn port_and_path(v: &str) -> bool {
    match v.find(['/', '?', '#']) {
        Some(i) => v[..i].bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Values left as they are: empty, already masked, a placeholder an admin is told to
/// replace (`'NEW-PASSWORD'`, `<token>`), a yes/no setting, or a `$VARIABLE` reference.
fn maskable(v: &str) -> bool {
    let inner = unquote(v);
    if inner.trim().is_empty() || inner.starts_with("[REDACTED") || inner == "…" || inner == "..." {
        return false;
    }
    !(placeholder(inner) || setting(inner) || variable(inner))
}

fn unquote(v: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(i) = v.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return i;
        }
    }
    v
}

/// `NEW-PASSWORD`, `YOUR_API_TOKEN`, `<password>`, `<new password>`.
pub fn placeholder(v: &str) -> bool {
    if let Some(i) = v.strip_prefix('<').and_then(|x| x.strip_suffix('>')) {
        return !i.is_empty() && i.len() <= 40 && i.chars().all(|c| c.is_ascii_alphanumeric() || " _-".contains(c));
    }
    let head = ["NEW-", "NEW_", "YOUR-", "YOUR_"];
    head.iter().any(|h| v.starts_with(h))
        && v.len() <= 40
        && v.chars().all(|c| c.is_ascii_uppercase() || c == '-' || c == '_')
}

fn setting(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "none" | "nil" | "required" | "optional"
    )
}

fn variable(v: &str) -> bool {
    let name = v.strip_prefix("${").and_then(|x| x.strip_suffix('}')).or_else(|| v.strip_prefix('$'));
    name.is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// The mask for a value, keeping its quotes.
fn mask_value(v: &str) -> String {
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return format!("{q}{MASK}{q}");
        }
    }
    MASK.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::global().text(s).into_owned()
    }

    #[test]
    fn every_pattern_compiles() {
        // Rules compile when first needed: a broken pattern must fail here, not in a review.
        let red = Redactor::new();
        for rule in &red.rules {
            let _ = rule.re();
            let _ = rule.tool();
        }
        assert!(red.rules.iter().all(|r| r.re.get().is_some()));
    }

    #[test]
    fn the_literals_find_every_rule_its_trigger_regex_finds() {
        // Over every line of both corpora, each line's words and pieces, and the rules' own
        // trigger texts: an ASCII text whose trigger regex matches a rule always holds that
        // rule's literals (the literals may find more; a rule's own pattern then decides).
        let red = Redactor::new();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redact");
        let mut texts: Vec<String> = Vec::new();
        for name in ["must_mask.txt", "must_not_mask.txt"] {
            #[expect(clippy::disallowed_methods, reason = "the test's own fixture")]
            let corpus = std::fs::read_to_string(dir.join(name)).unwrap();
            for line in corpus.lines() {
                let line = line.replace(['⟪', '⟫'], "").replace('⏎', "\n");
                texts.extend(line.split_whitespace().map(str::to_string));
                texts.extend([line.to_uppercase(), line.to_lowercase(), line]);
            }
        }
        texts.extend(red.trigger_patterns.iter().map(|t| t.replace("(?i)", "").replace("(?-u:\\b)", " ")));
        let mut checked = 0;
        for text in texts.iter().filter(|t| t.is_ascii()) {
            let by_regex = red.triggers().matches(text);
            let by_literals = red.candidates(text);
            for (i, rule) in red.rules.iter().enumerate() {
                if by_regex.matched(rule.trigger) {
                    checked += 1;
                    assert!(
                        by_literals.iter().any(|r| std::ptr::eq(*r, rule)),
                        "rule {i} (trigger {}) is missed by its literals in {text:?}",
                        red.trigger_patterns[rule.trigger]
                    );
                }
            }
        }
        assert!(checked > 1000, "only {checked} rule triggers were exercised");
        // Text that is not ASCII goes through the trigger regexes, so `(?i)` still folds `ſ`.
        assert!(!r("PAſſWORD 'hunter22'").contains("hunter22"), "{}", r("PAſſWORD 'hunter22'"));
    }

    #[test]
    fn name_rules_compile_ahead_and_redact_as_before() {
        let red = Redactor::new();
        red.compile_name_rules();
        let named = red.rules.iter().filter(|r| matches!(r.check, Check::Name | Check::Flag));
        assert!(named.clone().count() >= 6);
        assert!(named.clone().all(|r| r.re.get().is_some()));
        assert!(red.rules.iter().any(|r| r.re.get().is_none()), "only the name rules are compiled ahead");
        assert_eq!(red.text("DB_PASSWORD=hunter22 --token x9y8z7"), "DB_PASSWORD=[REDACTED] --token [REDACTED]");
    }

    #[test]
    fn command_lines() {
        assert_eq!(r("redis-server *:6379 --requirepass hunter2"), "redis-server *:6379 --requirepass [REDACTED]");
        assert_eq!(r("app --password=s3cr3t --port 80"), "app --password=[REDACTED] --port 80");
        assert_eq!(r("mysqldump -u wp -pCompany2024! wpdb"), "mysqldump -u wp -p[REDACTED] wpdb");
        assert_eq!(r("redis-cli -h x -a topsecret ping"), "redis-cli -h x -a [REDACTED] ping");
        // -p is a port for most programs: left alone.
        assert_eq!(r("ssh -p 2222 host"), "ssh -p 2222 host");
    }

    #[test]
    fn environments_and_config_lines() {
        assert_eq!(r("MYSQL_ROOT_PASSWORD=Company2024!"), "MYSQL_ROOT_PASSWORD=[REDACTED]");
        assert_eq!(r("db_password = 'x y z'"), "db_password = '[REDACTED]'");
        assert_eq!(r("DB_PASS=abc WP_USER=x"), "DB_PASS=[REDACTED] WP_USER=x");
        assert_eq!(r(r#"{"api_key": "abc123"}"#), r#"{"api_key": "[REDACTED]"}"#);
        assert_eq!(r("define( 'DB_PASSWORD', 'ClientName2024!' );"), "define( 'DB_PASSWORD', '[REDACTED]' );");
        assert_eq!(r("define('AUTH_KEY', \"k\");"), "define('AUTH_KEY', \"[REDACTED]\");");
        // sshd keywords are not secrets.
        assert_eq!(r("PasswordAuthentication no"), "PasswordAuthentication no");
    }

    #[test]
    fn urls_tokens_and_keys() {
        assert_eq!(r("mysql://wp:pa55@db:3306/wp"), "mysql://wp:[REDACTED]@db:3306/wp");
        assert_eq!(r("Authorization: Bearer abcdefghijkl"), "Authorization: Bearer [REDACTED]");
        assert_eq!(r("key sk-ant-api03-AAAAAAAAAAAAAAAAAAAA"), "key [REDACTED]");
        assert_eq!(r("AKIAABCDEFGHIJKLMNOP"), "[REDACTED]");
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----";
        assert_eq!(r(pem), "[REDACTED OPENSSH PRIVATE KEY]");
        assert_eq!(r("-----BEGIN RSA PRIVATE KEY-----\nMIIE"), "[REDACTED RSA PRIVATE KEY]");
        assert_eq!(r("https://hooks.slack.com/services/T0/B0/xyz"), "https://hooks.slack.com/services/[REDACTED]");
    }

    #[test]
    fn the_issue_14_shapes() {
        assert_eq!(r("sshpass -p S3cr3t ssh h"), "sshpass -p [REDACTED] ssh h");
        assert_eq!(r("curl -u user:S3cr3t https://x"), "curl -u user:[REDACTED] https://x");
        assert_eq!(r("lftp -u user,S3cr3t h"), "lftp -u user,[REDACTED] h");
        assert_eq!(r("redis-server --requirepass -S"), "redis-server --requirepass [REDACTED]");
        assert_eq!(r("mongodb://u:pa/ss@h/db"), "mongodb://u:[REDACTED]@h/db");
        assert_eq!(r("postgres://u:a@b@h/db"), "postgres://u:[REDACTED]@h/db");
        assert_eq!(r("x '--password=two words' y"), "x '--password=[REDACTED]' y");
        // A placeholder the admin is told to replace stays readable; a value equal to it in
        // lower case (a real password) does not.
        assert_eq!(r("IDENTIFIED BY 'NEW-PASSWORD';"), "IDENTIFIED BY 'NEW-PASSWORD';");
        assert_eq!(r("IDENTIFIED BY 'new-password';"), "IDENTIFIED BY '[REDACTED]';");
    }

    /// Hostile input (huge, repetitive, every rule's prefix over and over) is redacted in bounded
    /// time and without a panic; multi-byte characters next to matches are kept intact.
    #[test]
    fn hostile_input_is_linear_and_never_panics() {
        for unit in [
            "a:",
            "://a:",
            "--password ",
            "x=",
            "-p",
            "mysql -p",
            "'--token=",
            "\"",
            "<password>",
            "é=ü ",
            "DB_PASSWORD=\u{202E}",
            "https://u:p@",
            "@",
            "htpasswd -b ",
            "PASSWORD ",
        ] {
            let big = unit.repeat(20_000);
            let t = std::time::Instant::now();
            let out = r(&big);
            // About 1 s at most in a debug build; quadratic behaviour took 9–20 s here.
            assert!(t.elapsed() < std::time::Duration::from_secs(8), "{unit:?} x 20000: {:?}", t.elapsed());
            assert!(!out.is_empty());
        }
        assert_eq!(r("é --password=ü x"), "é --password=[REDACTED] x");
    }

    #[test]
    fn json_values() {
        let v = serde_json::json!({"cmd": "x --token abc", "password": "p", "n": 3, "list": ["PASS=1"]});
        let out = Redactor::global().value(v);
        assert_eq!(out["cmd"], "x --token [REDACTED]");
        assert_eq!(out["password"], "[REDACTED]");
        assert_eq!(out["n"], 3);
        assert_eq!(out["list"][0], "PASS=[REDACTED]");
    }
}
