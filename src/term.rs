//! Terminal output: escape stripping and colour.
//!
//! Model text and tool output are untrusted: before display every control
//! sequence (CSI, OSC, bare ESC, other C0/C1 controls except newline and tab)
//! is removed, so nothing can move the cursor, retitle the window, or paint a
//! fake confirmation prompt. Colour is used only on a terminal and never when
//! `NO_COLOR` is set or `--no-color` is given.

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
            c => out.push(c),
        }
    }
    out
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
}
