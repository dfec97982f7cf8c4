//! Terminal output: escape stripping and colour.
//!
//! Model text and tool output are untrusted: before display every control
//! sequence (CSI, OSC, bare ESC, other C0/C1 controls except newline and tab)
//! is removed, so nothing can move the cursor, retitle the window, or paint a
//! fake confirmation prompt. Invisible characters that change what a line
//! appears to say — Unicode bidi controls (U+202E turns `exe.txt` into
//! `txt.exe`), zero-width characters and tag characters that hide text — are
//! shown as `<U+202E>` instead, so the reader sees that they are there.
//! Colour is used only on a terminal and never when `NO_COLOR` is set or
//! `--no-color` is given.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static COLOR: AtomicBool = AtomicBool::new(false);

/// Decide once whether stderr/stdout may carry colour.
pub fn init_color(no_color_flag: bool) {
    let allowed = !no_color_flag
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal()
        && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
    COLOR.store(allowed, Ordering::Relaxed);
}

/// True when colour is on.
pub fn color() -> bool {
    COLOR.load(Ordering::Relaxed)
}

/// Wrap `s` in an SGR colour code when colour is on.
pub fn paint(code: &str, s: &str) -> String {
    if color() { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
}

/// Remove terminal control sequences from untrusted text, keeping `\n` and `\t`.
pub fn strip_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameters and intermediates, then one final byte 0x40–0x7E.
                    for n in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&n) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => {
                    chars.next();
                    // OSC/DCS/…: until BEL or ESC \.
                    while let Some(n) = chars.next() {
                        if n == '\x07' {
                            break;
                        }
                        if n == '\x1b' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\u{9b}' => {
                for n in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&n) {
                        break;
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            '\r' => {}
            c if c.is_control() => {}
            c if invisible(c) => out.push_str(&format!("<U+{:04X}>", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Characters that reorder or hide text without being control characters: bidi embeddings,
/// overrides, isolates and marks; zero-width spaces and joiners, the word joiner and invisible
/// operators, the byte-order mark; fillers that render as nothing; tag characters.
pub fn invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F
            | 0x1160
            | 0x17B4
            | 0x17B5
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0x3164
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0xE0000..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_that_could_fake_a_prompt() {
        assert_eq!(strip_controls("ok\x1b[2K\x1b[1Gtype yes: "), "oktype yes: ");
        assert_eq!(strip_controls("a\x1b]0;title\x07b"), "ab");
        assert_eq!(strip_controls("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b"), "alinkb");
        assert_eq!(strip_controls("line\r\nnext\tcol\x08\x07"), "line\nnext\tcol");
        assert_eq!(strip_controls("\u{9b}31mred"), "red");
        assert_eq!(strip_controls("plain ünïcode ✓"), "plain ünïcode ✓");
    }

    #[test]
    fn bidi_and_invisible_characters_are_shown_not_obeyed() {
        // "Run fdp.exe" displayed right-to-left from the override on would read as "Run exe.pdf".
        assert_eq!(strip_controls("Run \u{202E}fdp.exe"), "Run <U+202E>fdp.exe");
        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert_eq!(strip_controls(&format!("a{c}b")), format!("a<U+{:04X}>b", u32::from(c)));
        }
        assert_eq!(strip_controls("\u{200E}\u{200F}\u{061C}"), "<U+200E><U+200F><U+061C>");
        // Zero-width characters hiding a word or splitting a command the reader would copy.
        assert_eq!(strip_controls("rm\u{200B} -rf"), "rm<U+200B> -rf");
        assert_eq!(strip_controls("a\u{200C}b\u{200D}c\u{2060}d\u{FEFF}e"), "a<U+200C>b<U+200D>c<U+2060>d<U+FEFF>e");
        // Tag characters carry invisible ASCII ("ASCII smuggling").
        assert_eq!(strip_controls("ok\u{E0041}\u{E0042}"), "ok<U+E0041><U+E0042>");
        // Visible non-ASCII text is untouched.
        assert_eq!(strip_controls("שלום مرحبا 你好 é"), "שלום مرحبا 你好 é");
    }
}
