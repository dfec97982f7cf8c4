//! Which names hold secrets: `DB_PASSWORD`, `--requirepass`, `clientSecret`,
//! `x-api-key`, but not `--password-file`, `PasswordAuthentication` or
//! `max_tokens`.
//!
//! The redactor's flag, environment and `key = value` rules match any name;
//! this module decides whether the value after it is a secret. A name is split
//! into words (`_`, `-`, `.`, camelCase); it is secret when a word is a secret
//! word and the name does not describe something about the secret (a file, a
//! policy, a length) rather than the secret itself.

/// Words that are secrets on their own, also at the end of a longer word
/// (`pgpassword`, `authtoken`, `clientsecret`).
const LONG: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "credentials",
    "secrets",
    "passwords",
    "apikey",
    "authkey",
    "privatekey",
    "accesskey",
    "secretkey",
    "accountkey",
    "masterkey",
    "masterauth",
    "passwort",
];

/// Words that are secrets only as a whole word.
const SHORT: &[&str] = &["pass", "pwd", "pw", "psk", "creds", "bearer", "passin", "passout", "passwd"];

/// `<word> key` pairs that name a secret key (`api_key`, `AccountKey`).
const KEY_KINDS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "auth",
    "account",
    "client",
    "master",
    "encryption",
    "encrypt",
    "signing",
    "sign",
    "app",
    "shared",
    "storage",
    "license",
    "consumer",
    "webhook",
    "session",
    "hmac",
    "jwt",
    "sas",
    "crypt",
    "cipher",
    "aes",
    "secure",
    "service",
];

/// A last word that makes the name describe the secret, not hold it.
const NOT_LAST: &[&str] = &[
    "file",
    "files",
    "path",
    "paths",
    "dir",
    "directory",
    "folder",
    "stdin",
    "fd",
    "env",
    "var",
    "cmd",
    "command",
    "prompt",
    "length",
    "len",
    "min",
    "max",
    "minimum",
    "maximum",
    "policy",
    "policies",
    "type",
    "types",
    "mode",
    "authentication",
    "expiry",
    "expire",
    "expires",
    "expiration",
    "expired",
    "age",
    "url",
    "uri",
    "endpoint",
    "id",
    "ids",
    "name",
    "names",
    "algorithm",
    "algo",
    "format",
    "count",
    "lifetime",
    "ttl",
    "timeout",
    "validity",
    "strength",
    "reset",
    "change",
    "changed",
    "required",
    "enabled",
    "disabled",
    "check",
    "checks",
    "helper",
    "store",
    "manager",
    "source",
    "location",
    "header",
    "field",
    "prefix",
    "suffix",
    "pattern",
    "chars",
    "rounds",
    "cost",
    "iterations",
    "less",
    "retries",
    "attempts",
    "history",
    "complexity",
    "quality",
    "hint",
    "label",
    "usage",
    "generator",
    "tokens",
    "warn",
    "warning",
    "days",
    "login",
    "program",
    "script",
    "agent",
    "cache",
    "limit",
    "size",
    "bits",
    "kind",
    "exists",
    "set",
    "option",
    "options",
    "required",
    "status",
    "state",
    "method",
    "methods",
];

/// A first word that makes the name a setting about secrets (`no-password`, `PermitEmptyPasswords`).
const NOT_FIRST: &[&str] = &[
    "no", "permit", "allow", "use", "require", "enable", "disable", "ask", "show", "hide", "save", "remember", "check",
    "verify", "expire", "change", "reset", "forgot", "has", "is", "min", "max", "empty", "num", "n", "total", "input",
    "output", "need", "needs", "skip", "prompt", "read", "print", "generate", "gen", "random", "hashed",
];

/// Words that end in "pass" without being one.
const NOT_PASS: &[&str] =
    &["bypass", "compass", "surpass", "overpass", "underpass", "trespass", "askpass", "multipass"];

/// The words of a name: split at non-alphanumerics and camelCase humps, lower-cased, trailing digits dropped.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            prev_lower = false;
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    for w in &mut out {
        let t = w.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if t > 0 {
            w.truncate(t);
        }
    }
    out
}

fn secret_word(w: &str) -> bool {
    SHORT.contains(&w)
        || LONG.iter().any(|l| w == *l || (w.len() > l.len() && w.ends_with(l)))
        || (w.ends_with("pass") && !NOT_PASS.contains(&w))
}

/// Does a value named `name` (a flag, variable or key, without dashes or quotes) hold a secret?
pub fn secret_name(name: &str) -> bool {
    let w = words(name);
    let (Some(first), Some(last)) = (w.first(), w.last()) else { return false };
    if w.len() > 1 && (NOT_LAST.contains(&last.as_str()) || NOT_FIRST.contains(&first.as_str())) {
        return false;
    }
    if first == "auth" && w.len() == 1 {
        return true;
    }
    // `BASIC_AUTH=user:pass`, `--proxy-auth user:pass`.
    if last == "auth" && w.len() >= 2 && ["basic", "http", "proxy", "smtp"].contains(&w[w.len() - 2].as_str()) {
        return true;
    }
    if w.iter().any(|x| secret_word(x)) {
        return true;
    }
    // `api_key`, `x-api-key`, `AccountKey`, and upper-case environment names ending in `_KEY`
    // (`STRIPE_KEY`, `APP_KEY`) but not `PUBLIC_KEY`.
    if last == "key" {
        if w.len() >= 2 && KEY_KINDS.contains(&w[w.len() - 2].as_str()) {
            return true;
        }
        let upper = name.chars().any(|c| c.is_ascii_uppercase()) && !name.chars().any(|c| c.is_ascii_lowercase());
        let public = w.iter().any(|x| x == "public" || x == "pub" || x == "ssh" || x == "gpg" || x == "host");
        return upper && !public;
    }
    // `SECRET_KEY_BASE`, `APP_KEY_V2`-style names.
    w.windows(2).any(|p| p[1] == "key" && KEY_KINDS.contains(&p[0].as_str()))
}

/// A flag whose value is never optional: a separate value starting with `-` is still its value
/// (`--requirepass -S`). `--password`/`--pass` are left out: MySQL's `--password` takes its value
/// only after `=`, so `mysql --password -u root` must keep `-u`.
pub fn always_valued(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !matches!(n.as_str(), "password" | "pass" | "passwd" | "p") && secret_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "DB_PASSWORD",
            "password",
            "PGPASSWORD",
            "MYSQL_PWD",
            "requirepass",
            "masterauth",
            "clientSecret",
            "_authToken",
            "x-api-key",
            "AccountKey",
            "STRIPE_KEY",
            "APP_KEY",
            "SECRET_KEY_BASE",
            "spring.datasource.password",
            "dbpass",
            "user_pass",
            "auth",
            "passin",
            "aws_secret_access_key",
            "api_key2",
        ] {
            assert!(secret_name(n), "{n} should be secret");
        }
        for n in [
            "password-file",
            "PasswordAuthentication",
            "PermitEmptyPasswords",
            "max_tokens",
            "input_tokens",
            "no-password",
            "password_min_length",
            "MYSQL_PASSWORD_FILE",
            "token_type",
            "bypass",
            "askpass",
            "PUBLIC_KEY",
            "key",
            "user",
            "port",
            "tokenizer",
            "passwordless",
            "SSH_KEY",
            "api_key_id",
        ] {
            assert!(!secret_name(n), "{n} should not be secret");
        }
    }

    #[test]
    fn optional_values() {
        assert!(always_valued("requirepass"));
        assert!(always_valued("token"));
        assert!(!always_valued("password"));
        assert!(!always_valued("pass"));
    }
}
