//! What a person sees at a terminal: long lines wrapped to its width, colour only
//! where it can be shown, descriptions not cut at an abbreviation.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

mod support;

use std::time::Duration;

use support::pty::Pty;
use support::*;

const T: Duration = Duration::from_secs(30);

/// Run `args` on a 120-column pty until it exits; what it printed, escapes removed.
fn on_terminal(args: &[&str]) -> String {
    let t = tempfile::tempdir().unwrap();
    let mut c = vigil_cmd(t.path(), None, args);
    c.env("TERM", "xterm");
    let mut p = Pty::spawn(c);
    let code = p.wait(T);
    assert!(code == 0 || code == 1, "exit {code}: {}", p.screen());
    p.screen()
}

#[test]
fn the_review_and_the_tool_list_fit_the_terminal() {
    let review = on_terminal(&["review", "--offline"]);
    assert!(review.contains("FIX FIRST"), "{review}");
    let long: Vec<&str> = review.lines().filter(|l| l.chars().count() > 120).collect();
    assert!(long.is_empty(), "lines wider than the terminal: {long:#?}");
    // A wrapped fix continues under its label, not at the left margin.
    assert!(review.lines().any(|l| l.starts_with("            ") && !l.trim().is_empty()), "{review}");

    let tools = on_terminal(&["tools", "list"]);
    let long: Vec<&str> = tools.lines().filter(|l| l.chars().count() > 120).collect();
    assert!(long.is_empty(), "lines wider than the terminal: {long:#?}");
    assert!(tools.contains("list_open_ports") && tools.contains("read-only"), "{tools}");
    assert!(!tools.lines().any(|l| l.trim_end().ends_with(" incl") || l.trim_end().ends_with(" e.g")), "{tools}");
}

#[test]
fn a_pipe_gets_whole_lines_and_no_colour() {
    let t = tempfile::tempdir().unwrap();
    let mut c = vigil_cmd(t.path(), None, &["review", "--offline"]);
    c.env_remove("NO_COLOR").env("TERM", "xterm");
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains('\x1b') && !err.contains('\x1b'), "no escape codes into a pipe");
    assert!(text.lines().any(|l| l.chars().count() > 120), "a pipe gets whole lines, unwrapped");
}
