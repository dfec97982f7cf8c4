//! Known web-shell markers in PHP source: request input handed to `eval`,
//! `assert` or a shell, `eval` of decoded data, `base64_decode` wrapped in
//! `gzinflate`/`str_rot13`, and `preg_replace` with the `/e` modifier.
//!
//! These are the shapes WSO, c99, b374k and the one-line droppers share; legit
//! code (WordPress core, common plugins) does not use them, so a hit is worth a
//! look by a human. Only the marker and its line are reported, never the code.

use std::sync::OnceLock;

use regex::Regex;

/// One marker: what it means, and its pattern.
const MARKERS: &[(&str, &str)] = &[
    (
        "request input passed to eval/assert/a shell function",
        r#"(?i)\b(eval|assert|system|passthru|shell_exec|exec|popen|proc_open|create_function)\s*\(\s*@?\s*(?:(?:stripslashes|base64_decode|urldecode|trim)\s*\(\s*)?@?\$_(?:POST|GET|REQUEST|COOKIE|SERVER\s*\[\s*['"]HTTP_)"#,
    ),
    ("a function named by the request is called", r#"\$_(?:POST|GET|REQUEST|COOKIE)\s*\[[^\]]{1,40}\]\s*\(\s*\$_"#),
    (
        "eval of decoded data",
        r"(?i)\beval\s*\(\s*@?\s*(?:gzinflate|gzuncompress|gzdecode|str_rot13|base64_decode|convert_uudecode|hex2bin|strrev)\s*\(",
    ),
    (
        "base64_decode inside gzinflate/str_rot13 (packed code)",
        r"(?i)\b(?:gzinflate|gzuncompress|str_rot13)\s*\(\s*base64_decode\s*\(",
    ),
];

fn compiled() -> &'static [(&'static str, Regex)] {
    static RE: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    RE.get_or_init(|| MARKERS.iter().filter_map(|(what, p)| Regex::new(p).ok().map(|r| (*what, r))).collect())
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at.min(code.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// `preg_replace('/…/e', …)`: the replacement is run as PHP (removed in PHP 7, still planted).
fn preg_e(code: &str) -> Option<usize> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE
        .get_or_init(|| Regex::new(r#"(?i)preg_replace\s*\(\s*(?:'([^']{2,200})'|"([^"]{2,200})")"#).ok())
        .as_ref()?;
    for c in re.captures_iter(code) {
        let Some(m) = c.get(1).or_else(|| c.get(2)) else { continue };
        let p = m.as_str();
        let first = p.chars().next()?;
        let close = match first {
            '(' => ')',
            '[' => ']',
            '{' => '}',
            '<' => '>',
            c if c.is_alphanumeric() || c == '\\' || c.is_whitespace() => continue,
            c => c,
        };
        let Some(end) = p.rfind(close).filter(|e| *e > 0) else { continue };
        let modifiers = &p[end + close.len_utf8()..];
        if modifiers.chars().all(|c| c.is_ascii_alphabetic()) && modifiers.contains('e') {
            return Some(line_of(code, m.start()));
        }
    }
    None
}

/// The markers found in `code`: (what, line).
pub fn markers(code: &str) -> Vec<(&'static str, usize)> {
    let mut out: Vec<(&'static str, usize)> =
        compiled().iter().filter_map(|(what, re)| re.find(code).map(|m| (*what, line_of(code, m.start())))).collect();
    if let Some(line) = preg_e(code) {
        out.push(("preg_replace with the /e modifier (runs the replacement as PHP)", line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_are_recognised_and_ordinary_code_is_not() {
        for shell in [
            "<?php @eval($_POST['cmd']); ?>",
            "<?php\n\nassert(stripslashes($_REQUEST[x]));",
            "<?php eval(gzinflate(base64_decode('7b0HYBx...')));",
            "<?php $x = str_rot13(base64_decode($blob));",
            "<?php $_GET['f']($_GET['c']);",
            "<?php preg_replace('/.*/e', $_POST['c'], '');",
            "<?php system( $_GET['c'] );",
        ] {
            assert!(!markers(shell).is_empty(), "{shell}");
        }
        assert_eq!(markers("<?php\n\n@eval($_POST['x']);")[0].1, 3);
        for ok in [
            "<?php $data = base64_decode($str); $z = gzinflate($data);",
            "<?php echo esc_html($_POST['name']);",
            "<?php preg_replace('/[^a-z]/i', '', $s); preg_replace(\"#x#\", '', $s);",
            "<?php // Silence is golden.",
            "<?php $method = 'eval'; exec('ls');",
        ] {
            assert!(markers(ok).is_empty(), "{ok}: {:?}", markers(ok));
        }
    }
}
