//! `vigil completions SHELL` as an administrator uses it: the script goes to
//! stdout and bash accepts it, and piping it into a reader that stops early
//! (`| head`) ends quietly instead of with a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::Read;
use std::process::{Command, Stdio};

fn vigil() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

#[test]
fn bash_loads_the_completion_and_completes_subcommands() {
    let out = Command::new(vigil()).args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = tempfile::tempdir().unwrap();
    let script = t.path().join("vigil.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // Complete `vigil sch<TAB>` the way bash's programmable completion would.
    let probe = format!(
        "source {}; COMP_WORDS=(vigil sch); COMP_CWORD=1; COMP_LINE='vigil sch'; COMP_POINT=9; _vigil vigil sch vigil; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let done = Command::new("bash").args(["--norc", "-c", &probe]).output().unwrap();
    let words = String::from_utf8_lossy(&done.stdout);
    assert_eq!(words.trim(), "schedule", "stderr: {}", String::from_utf8_lossy(&done.stderr));
}

#[test]
fn a_reader_that_stops_early_is_not_a_crash() {
    let mut child = Command::new(vigil())
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let out = Command::new(vigil()).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bash") && stderr.contains("fish"), "{stderr}");
}
