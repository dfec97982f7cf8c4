//! The `Redactor`: one pass that removes secrets from anything leaving the host.
//!
//! Tools judge secrets locally and report the judgement, never the value. As a
//! second line of defence, every tool output, plan, log line, transcript and
//! report passes through [`Redactor::text`] / [`Redactor::value`], which
//! replace passwords and tokens on command lines (`--requirepass`, `-pSECRET`),
//! in environments and config lines (`DB_PASSWORD=…`, `define('DB_PASSWORD', …)`),
//! credentials in URLs, bearer tokens, well-known token shapes and private key
//! blocks with `[REDACTED]`.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use serde_json::Value;

use crate::finding::Finding;
use crate::tool::Plan;

/// The replacement text.
pub const MASK: &str = "[REDACTED]";

/// Removes secrets from text and JSON.
#[derive(Debug)]
pub struct Redactor {
    rules: Vec<(Regex, &'static str)>,
    /// Every rule's pattern at once: one scan tells whether any rule applies
    /// (most strings, e.g. thousands of listeners' fields, have no secret).
    any: RegexSet,
}

const SECRET_WORD: &str = r"(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth[_-]?key|credentials?)";

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

    #[expect(clippy::expect_used, reason = "the patterns are constants, covered by the tests below")]
    fn new() -> Self {
        let w = SECRET_WORD;
        let rules: Vec<(String, &'static str)> = vec![
            // Private key blocks, whole or cut off.
            (
                r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)".into(),
                "[REDACTED ${1}PRIVATE KEY]",
            ),
            // PHP defines of passwords, keys and salts.
            (
                r#"(?i)(define\s*\(\s*['"][A-Z0-9_]*(?:PASSWORD|KEY|SALT|SECRET|TOKEN)['"]\s*,\s*)('[^']*'|"[^"]*")"#
                    .into(),
                "${1}'[REDACTED]'",
            ),
            // Credentials in URLs: scheme://user:pass@host
            (r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):([^@\s/]+)@".into(), "${1}:[REDACTED]@"),
            // Authorization headers and bearer tokens.
            (r"(?i)\b(authorization\s*[:=]\s*(?:bearer|basic|token)?\s*)[^\s,;]+".into(), "${1}[REDACTED]"),
            (r"(?i)\b(bearer\s+)[a-z0-9._~+/=-]{8,}".into(), "${1}[REDACTED]"),
            // Command-line flags: --password=x, --requirepass x, --token x
            (
                format!(
                    r"(?i)(--?[a-z-]*(?:{w}|requirepass|masterauth)[a-z-]*(?:=|\s+))('[^']*'|\x22[^\x22]*\x22|[^\s'\x22-][^\s]*)"
                ),
                "${1}[REDACTED]",
            ),
            // mysql -pSECRET (only on MySQL/MariaDB client lines, where -p is the password)
            (
                r"(?i)(\b(?:mysql|mariadb|mysqldump|mariadb-dump|mysqladmin|mysqlimport)\b[^\n]*?\s-p)([^\s]+)".into(),
                "${1}[REDACTED]",
            ),
            // redis-cli -a SECRET
            (r"(\bredis-cli\b[^\n]*?\s-a\s+)(\S+)".into(), "${1}[REDACTED]"),
            // SQL: IDENTIFIED BY 'x'
            (r"(?i)(identified\s+(?:with\s+\S+\s+)?by\s+)('[^']*'|\x22[^\x22]*\x22)".into(), "${1}'[REDACTED]'"),
            // key = value, KEY=value, "key": "value" in env, config and JSON-ish text
            (format!(r#"(?i)(\b[a-z0-9_.-]*{w}[a-z0-9_.-]*['"]?\s*[=:]\s*)"[^"]*""#), "${1}\"[REDACTED]\""),
            (format!(r#"(?i)(\b[a-z0-9_.-]*{w}[a-z0-9_.-]*['"]?\s*[=:]\s*)'[^']*'"#), "${1}'[REDACTED]'"),
            (format!(r#"(?i)(\b[a-z0-9_.-]*{w}[a-z0-9_.-]*['"]?\s*[=:]\s*)[^\s,;'"}}\[]+"#), "${1}[REDACTED]"),
            (r"(?i)(\b(?:[a-z0-9]+_)*pass\s*[=:]\s*)[^\s,;'\x22}]+".into(), "${1}[REDACTED]"),
            // Well-known token shapes.
            (r"\bsk-ant-[A-Za-z0-9_-]{10,}".into(), "[REDACTED]"),
            (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b".into(), "[REDACTED]"),
            (r"\bgh[pousr]_[A-Za-z0-9]{20,}".into(), "[REDACTED]"),
            (r"\bglpat-[A-Za-z0-9_-]{20,}".into(), "[REDACTED]"),
            (r"\bxox[abprs]-[A-Za-z0-9-]{10,}".into(), "[REDACTED]"),
            (r"(hooks\.slack\.com/services/)[A-Za-z0-9/]+".into(), "${1}[REDACTED]"),
        ];
        let any = RegexSet::new(rules.iter().map(|(p, _)| p)).expect("redaction patterns compile");
        let rules = rules.into_iter().map(|(p, r)| (Regex::new(&p).expect("redaction pattern compiles"), r)).collect();
        Redactor { rules, any }
    }

    /// Text with every secret replaced.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        // The rules apply in turn, so the first one to change anything matches `s` itself:
        // when no rule matches `s`, nothing would change.
        if !self.any.is_match(s) {
            return Cow::Borrowed(s);
        }
        let mut out = Cow::Borrowed(s);
        for (re, rep) in &self.rules {
            if re.is_match(&out) {
                let replaced = re.replace_all(&out, *rep).into_owned();
                out = Cow::Owned(replaced);
            }
        }
        // A value that was itself only "[REDACTED]" keeps that single mask.
        if let Cow::Owned(o) = &out {
            if o.contains("[REDACTED][REDACTED]") {
                return Cow::Owned(o.replace("[REDACTED][REDACTED]", MASK));
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
    /// output with nothing secret is walked, not rebuilt.
    pub fn value_in_place(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Cow::Owned(r) = self.text(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.value_in_place(x)),
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if is_secret_key(k) && x.is_string() {
                        *x = Value::String(MASK.into());
                    } else {
                        self.value_in_place(x);
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

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "password" | "passwd" | "secret" | "token" | "api_key" | "apikey" | "private_key" | "db_password" | "x-api-key"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::global().text(s).into_owned()
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
        assert_eq!(r("define('AUTH_KEY', \"k\");"), "define('AUTH_KEY', '[REDACTED]');");
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
    fn json_values() {
        let v = serde_json::json!({"cmd": "x --token abc", "password": "p", "n": 3, "list": ["PASS=1"]});
        let out = Redactor::global().value(v);
        assert_eq!(out["cmd"], "x --token [REDACTED]");
        assert_eq!(out["password"], "[REDACTED]");
        assert_eq!(out["n"], 3);
        assert_eq!(out["list"][0], "PASS=[REDACTED]");
    }
}
