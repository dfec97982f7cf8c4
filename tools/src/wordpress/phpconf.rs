//! Reading `wp-config.php` as text, never executing it.
//!
//! A small PHP lexer (strings in either quote style with their escapes,
//! `//`, `#` and `/* */` comments, any spacing) feeds a scan for the three
//! statements that matter: `define(NAME, VALUE)`, `$table_prefix = '…'` and
//! `require`/`include` of a path built from literals, `__DIR__`,
//! `dirname(__FILE__)` and `ABSPATH`. Values that are expressions
//! (`getenv('X')`) are kept as "not a literal", so nothing is guessed.

/// A `define()` value.
#[derive(Clone, PartialEq, Eq)]
pub enum PhpValue {
    /// A string literal (escapes resolved).
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// A number literal, as written.
    Num(String),
    /// Anything else (a function call, a concatenation, a constant).
    Expr,
}

impl std::fmt::Debug for PhpValue {
    // Values may be passwords or salts: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PhpValue::Str(_) => f.write_str("Str(..)"),
            PhpValue::Bool(b) => write!(f, "Bool({b})"),
            PhpValue::Num(_) => f.write_str("Num(..)"),
            PhpValue::Expr => f.write_str("Expr"),
        }
    }
}

impl PhpValue {
    /// PHP truthiness where it is knowable: `None` for expressions.
    pub fn truthy(&self) -> Option<bool> {
        match self {
            PhpValue::Bool(b) => Some(*b),
            PhpValue::Str(s) => Some(!(s.is_empty() || s == "0")),
            PhpValue::Num(n) => Some(n.trim_start_matches(['0', '.']).chars().any(|c| c.is_ascii_digit() && c != '0')),
            PhpValue::Expr => None,
        }
    }

    /// The string, when it is a string literal.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PhpValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One piece of an include path expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPiece {
    /// A string literal.
    Lit(String),
    /// `__DIR__` or `dirname(__FILE__)`: the including file's directory.
    Dir,
    /// `dirname(__DIR__)` / `dirname(dirname(__FILE__))`: its parent.
    ParentDir,
    /// `ABSPATH`: the WordPress directory, with a trailing slash.
    AbsPath,
}

/// A statement of interest, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `define('NAME', value)`.
    Define(String, PhpValue),
    /// `$table_prefix = '…'`.
    TablePrefix(String),
    /// `require`/`include` of a path made only of known pieces.
    Include(Vec<PathPiece>),
    /// Debian's `/etc/wordpress/config-<host>.php` lookup by `$_SERVER['HTTP_HOST']`.
    DebianHostConfig,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String, bool),
    Ident(String),
    Var(String),
    Num(String),
    Punct(char),
}

fn lex(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(b.len());
            }
            b'\'' => {
                let mut s = Vec::new();
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    if b[i] == b'\\' && matches!(b.get(i + 1), Some(b'\'') | Some(b'\\')) {
                        i += 1;
                    }
                    s.push(b[i]);
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(String::from_utf8_lossy(&s).into_owned(), false));
            }
            b'"' => {
                let mut s = Vec::new();
                let mut interpolated = false;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        let e = b[i + 1];
                        let rep = match e {
                            b'n' => Some(b'\n'),
                            b't' => Some(b'\t'),
                            b'r' => Some(b'\r'),
                            b'\\' | b'"' | b'$' => Some(e),
                            _ => None,
                        };
                        if let Some(r) = rep {
                            s.push(r);
                            i += 2;
                            continue;
                        }
                    }
                    if b[i] == b'$' && b.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_' || *n == b'{')
                    {
                        interpolated = true;
                    }
                    s.push(b[i]);
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(String::from_utf8_lossy(&s).into_owned(), interpolated));
            }
            b'$' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Var(src[start..i].to_string()));
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'\\' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'\\') {
                    i += 1;
                }
                out.push(Tok::Ident(src[start..i].trim_start_matches('\\').to_string()));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Num(src[start..i].to_string()));
            }
            _ => {
                // Multi-byte UTF-8 outside strings: skip the whole character.
                let ch = src[i..].chars().next().unwrap_or(' ');
                out.push(Tok::Punct(ch));
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// The tokens of one parenthesised argument list starting after `(`, split at top-level commas.
fn args(toks: &[Tok], mut i: usize) -> (Vec<&[Tok]>, usize) {
    let mut depth = 0usize;
    let mut start = i;
    let mut out = Vec::new();
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') if depth == 0 => {
                out.push(&toks[start..i]);
                return (out, i + 1);
            }
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                out.push(&toks[start..i]);
                start = i + 1;
            }
            Tok::Punct(';') if depth == 0 => return (out, i),
            _ => {}
        }
        i += 1;
    }
    out.push(&toks[start..]);
    (out, i)
}

fn value_of(toks: &[Tok]) -> PhpValue {
    match toks {
        [Tok::Str(s, false)] => PhpValue::Str(s.clone()),
        [Tok::Ident(w)] if w.eq_ignore_ascii_case("true") => PhpValue::Bool(true),
        [Tok::Ident(w)] if w.eq_ignore_ascii_case("false") => PhpValue::Bool(false),
        [Tok::Num(n)] => PhpValue::Num(n.clone()),
        _ => PhpValue::Expr,
    }
}

fn path_of(toks: &[Tok]) -> Option<Vec<PathPiece>> {
    let mut toks = toks;
    // Strip one pair of wrapping parentheses: require_once( … );
    if let [Tok::Punct('('), inner @ .., Tok::Punct(')')] = toks {
        toks = inner;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Str(s, false) => out.push(PathPiece::Lit(s.clone())),
            Tok::Ident(w) if w == "__DIR__" => out.push(PathPiece::Dir),
            Tok::Ident(w) if w == "ABSPATH" => out.push(PathPiece::AbsPath),
            Tok::Ident(w) if w.eq_ignore_ascii_case("dirname") => {
                // dirname(__FILE__), dirname(__DIR__), dirname(dirname(__FILE__))
                let rest: Vec<String> = toks[i + 1..]
                    .iter()
                    .take_while(|t| !matches!(t, Tok::Punct('.')))
                    .map(|t| match t {
                        Tok::Ident(w) => w.to_ascii_lowercase(),
                        Tok::Punct(c) => c.to_string(),
                        _ => "?".into(),
                    })
                    .collect();
                let joined = rest.concat();
                let piece = match joined.as_str() {
                    "(__file__)" => PathPiece::Dir,
                    "(__dir__)" | "(dirname(__file__))" => PathPiece::ParentDir,
                    _ => return None,
                };
                out.push(piece);
                i += 1 + rest.len();
                continue;
            }
            Tok::Punct('.') => {}
            _ => return None,
        }
        i += 1;
    }
    if out.is_empty() { None } else { Some(out) }
}

/// The statements of interest in a PHP config file, in order.
pub fn parse(src: &str) -> Vec<Stmt> {
    let toks = lex(src);
    let mut out = Vec::new();
    let mut debian = false;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(w) if w.eq_ignore_ascii_case("define") && toks.get(i + 1) == Some(&Tok::Punct('(')) => {
                let (a, next) = args(&toks, i + 2);
                if let [[Tok::Str(name, false)], value, ..] = a.as_slice() {
                    out.push(Stmt::Define(name.clone(), value_of(value)));
                }
                i = next;
                continue;
            }
            Tok::Var(v) if v == "table_prefix" && toks.get(i + 1) == Some(&Tok::Punct('=')) => {
                if let (Some(Tok::Str(s, false)), Some(Tok::Punct(';'))) = (toks.get(i + 2), toks.get(i + 3)) {
                    out.push(Stmt::TablePrefix(s.clone()));
                }
            }
            Tok::Ident(w)
                if ["require", "require_once", "include", "include_once"].iter().any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                let end = toks[i + 1..].iter().position(|t| *t == Tok::Punct(';')).map_or(toks.len(), |p| i + 1 + p);
                if let Some(p) = path_of(&toks[i + 1..end]) {
                    out.push(Stmt::Include(p));
                } else if debian {
                    // require_once($debian_file): where Debian's host config comes in.
                    if matches!(toks.get(i + 2), Some(Tok::Var(v)) if v.starts_with("debian"))
                        && !out.contains(&Stmt::DebianHostConfig)
                    {
                        out.push(Stmt::DebianHostConfig);
                    }
                }
                i = end;
                continue;
            }
            Tok::Str(s, _) if s.contains("/etc/wordpress/config-") => debian = true,
            _ => {}
        }
        i += 1;
    }
    out
}

/// Resolve an include path: `dir` is the including file's directory, `abspath` the site directory.
pub fn resolve(pieces: &[PathPiece], dir: &str, abspath: &str) -> Option<String> {
    let mut s = String::new();
    for p in pieces {
        match p {
            PathPiece::Lit(l) => s.push_str(l),
            PathPiece::Dir => s.push_str(dir),
            PathPiece::ParentDir => s.push_str(parent(dir)),
            PathPiece::AbsPath => {
                s.push_str(abspath.trim_end_matches('/'));
                s.push('/');
            }
        }
    }
    if !s.starts_with('/') {
        // A relative include resolves against the including file's directory.
        s = format!("{}/{s}", dir.trim_end_matches('/'));
    }
    normalize(&s)
}

/// The parent directory of an absolute path (`/` stays `/`).
pub fn parent(p: &str) -> &str {
    match p.trim_end_matches('/').rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// Collapse `.`, `..` and doubled slashes; `None` if `..` climbs above `/`.
pub fn normalize(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defines(src: &str) -> Vec<(String, PhpValue)> {
        parse(src)
            .into_iter()
            .filter_map(|s| match s {
                Stmt::Define(n, v) => Some((n, v)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn defines_in_any_style() {
        let src = r#"<?php
// define('DB_PASSWORD', 'commented-out');
# define('DB_PASSWORD', 'hash-comment');
/* define('DB_PASSWORD', 'block');
   still a comment */
define( "DB_NAME" , 'shop_db' );
define('DB_USER','it\'s');
define  (  'DB_PASSWORD',
    "p\"a\\ss'w#rd//x" ) ;
define('WP_DEBUG', TRUE); define('WP_DEBUG_DISPLAY', false);
define('WP_MEMORY_LIMIT', 256);
define('WP_HOME', getenv('HOME_URL'));
define('A', "x$y");
$table_prefix  =  'shop_';
"#;
        let d = defines(src);
        let get = |n: &str| d.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("DB_NAME"), Some(PhpValue::Str("shop_db".into())));
        assert_eq!(get("DB_USER"), Some(PhpValue::Str("it's".into())));
        assert_eq!(get("DB_PASSWORD"), Some(PhpValue::Str("p\"a\\ss'w#rd//x".into())));
        assert_eq!(d.iter().filter(|(k, _)| k == "DB_PASSWORD").count(), 1, "comments are not read");
        assert_eq!(get("WP_DEBUG"), Some(PhpValue::Bool(true)));
        assert_eq!(get("WP_DEBUG_DISPLAY"), Some(PhpValue::Bool(false)));
        assert_eq!(get("WP_MEMORY_LIMIT").and_then(|v| v.truthy()), Some(true));
        assert_eq!(get("WP_HOME"), Some(PhpValue::Expr));
        assert_eq!(get("A"), Some(PhpValue::Expr), "interpolated strings are not literals");
        assert!(parse(src).contains(&Stmt::TablePrefix("shop_".into())));
        assert!(!format!("{:?}", parse(src)).contains("shop_db"), "Debug never shows values");
    }

    #[test]
    fn includes_and_debian() {
        let src = r#"<?php
require_once( __DIR__ . '/local-config.php' );
include dirname(__FILE__) . "/extra.php";
require_once dirname( __DIR__ ) . '/secrets.php';
require_once(ABSPATH . 'wp-settings.php');
require $computed;
"#;
        let st = parse(src);
        let inc: Vec<String> = st
            .iter()
            .filter_map(|s| match s {
                Stmt::Include(p) => resolve(p, "/var/www/site", "/var/www/site/"),
                _ => None,
            })
            .collect();
        assert_eq!(
            inc,
            vec![
                "/var/www/site/local-config.php",
                "/var/www/site/extra.php",
                "/var/www/secrets.php",
                "/var/www/site/wp-settings.php"
            ]
        );
        let deb = r#"<?php $debian_file = '/etc/wordpress/config-'.strtolower($debian_server).'.php';
if (file_exists($debian_file)) { require_once($debian_file); define('DEBIAN_FILE', $debian_file); }
if (!defined('DB_USER')) define('DB_USER', 'wordpress');"#;
        let st = parse(deb);
        assert_eq!(st[0], Stmt::DebianHostConfig);
        assert!(st.contains(&Stmt::Define("DB_USER".into(), PhpValue::Str("wordpress".into()))));
    }
}
