//! `vigil auth` against real OS keyrings: the kernel keyring (keyutils) inside a
//! fresh session keyring, and the Secret Service (gnome-keyring on a private
//! D-Bus with a throwaway HOME). A unique service name keeps the test away
//! from any key a user stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn vigil() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

const KEY: &str = "sk-ant-api03-TESTKEYTESTKEYTESTKEY";

fn session_script(state: &std::path::Path) -> String {
    let v = vigil();
    let s = state.display();
    format!(
        "echo {KEY} | {v} --state-dir {s} auth login && {v} --state-dir {s} auth status && \
         {v} --state-dir {s} auth logout && {{ {v} --state-dir {s} auth status; echo status-after-logout=$?; }}"
    )
}

fn check(out: std::process::Output, backend: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains(&format!("Stored the API key in the {backend}")), "{stdout}");
    assert!(stdout.contains("an Anthropic API key, 34 characters"), "{stdout}");
    assert!(stdout.contains("Removed the API key"), "{stdout}");
    assert!(stdout.contains("status-after-logout=1"), "{stdout}");
    assert!(!stdout.contains("TESTKEY") && !stderr.contains("TESTKEY"), "the key was printed");
}

#[test]
#[cfg_attr(vigil_missing = "keyctl", ignore = "needs keyctl (.ci/packages/base.txt)")]
fn kernel_keyring_round_trip() {
    vigil_testkit::require(&["keyctl"]);
    let t = tempfile::tempdir().unwrap();
    let out = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &session_script(t.path())])
        .env("VIGIL_KEYRING", "kernel")
        .env("VIGIL_KEYRING_SERVICE", format!("vigil-test-{}", std::process::id()))
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    check(out, "kernel persistent keyring");
}

#[test]
#[cfg_attr(
    any(vigil_missing = "dbus-run-session", vigil_missing = "gnome-keyring-daemon"),
    ignore = "needs dbus-run-session, gnome-keyring-daemon (.ci/packages/base.txt)"
)]
fn secret_service_round_trip() {
    vigil_testkit::require(&["dbus-run-session", "gnome-keyring-daemon"]);
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let xdg = t.path().join("xdg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let script = format!(
        "printf pass | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; {}",
        session_script(&t.path().join("state"))
    );
    let out = Command::new("dbus-run-session")
        .args(["--", "sh", "-c", &script])
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &xdg)
        .env("VIGIL_KEYRING", "secret-service")
        .env("VIGIL_KEYRING_SERVICE", format!("vigil-test-{}", std::process::id()))
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    check(out, "Secret Service");
}

#[test]
fn no_keyring_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let mut child = Command::new(vigil())
        .args(["--state-dir", &t.path().display().to_string(), "auth", "login"])
        .env("VIGIL_KEYRING", "secret-service")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DISPLAY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(format!("{KEY}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ANTHROPIC_API_KEY") && stderr.contains("nothing was written"), "{stderr}");
    assert!(!stderr.contains("TESTKEY"));
}
