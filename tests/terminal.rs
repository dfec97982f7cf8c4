//! What a person sees at a terminal: long lines wrapped to its width, colour only
//! where it can be shown, descriptions not cut at an abbreviation.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

mod support;

use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(30);

/// Run `args` in a real terminal emulator (tmux, 120 columns) until it exits; the screen
/// and its scrollback as a person would see them (redrawn spinners overwritten, not stacked).
fn on_terminal(args: &[&str]) -> String {
    let t = tempfile::tempdir().unwrap();
    let c = vigil_cmd(t.path(), None, args);
    let mut line: Vec<String> = vec!["env".into(), "-i".into()];
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            line.push(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    line.push("TERM=xterm".into());
    line.push(c.get_program().to_string_lossy().into_owned());
    line.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = line.iter().map(|w| format!("'{}'", w.replace('\'', "'\\''"))).collect();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let session = format!("vigil-term-{}-{n}", std::process::id());
    let script = format!("{}; echo __EXIT_$?__; sleep 60", quoted.join(" "));
    let tmux = |a: &[&str]| std::process::Command::new("tmux").args(a).output().unwrap();
    let started = tmux(&["new-session", "-d", "-s", &session, "-x", "120", "-y", "50", &script]);
    assert!(started.status.success(), "tmux: {}", String::from_utf8_lossy(&started.stderr));
    tmux(&["set-option", "-t", &session, "history-limit", "5000"]);
    let deadline = std::time::Instant::now() + T;
    let screen = loop {
        let out = tmux(&["capture-pane", "-p", "-t", &session, "-S", "-5000"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("__EXIT_") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    tmux(&["kill-session", "-t", &session]);
    assert!(screen.contains("__EXIT_0__") || screen.contains("__EXIT_1__"), "{screen}");
    screen
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
fn the_review_shows_each_check_as_it_ends_on_a_terminal_and_with_progress_on_a_pipe() {
    let screen = on_terminal(&["review", "--offline"]);
    for check in ["check_ssh", "audit_accounts", "wordpress_inventory"] {
        let line =
            screen.lines().find(|l| l.contains(check) && l.contains(" ms ")).unwrap_or_else(|| panic!("{screen}"));
        assert!(line.trim_start().starts_with("ok"), "{line}");
    }
    assert!(
        screen.find("ok check_ssh").unwrap_or(usize::MAX) < screen.find("FIX FIRST").unwrap_or(0),
        "progress comes first"
    );

    let t = tempfile::tempdir().unwrap();
    let quiet = vigil_cmd(t.path(), None, &["review", "--offline"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains(" ms "), "nothing on a pipe without --progress");
    let loud = vigil_cmd(t.path(), None, &["review", "--offline", "--progress"]).output().unwrap();
    let err = String::from_utf8_lossy(&loud.stderr);
    assert!(err.contains("start  check_ssh") && err.contains("check_ssh") && err.contains(" ms "), "{err}");
    assert!(err.find("start  check_ssh") < err.rfind("ok"), "started before ended: {err}");
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
