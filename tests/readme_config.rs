//! README's configuration section is the reference users copy from: it must
//! parse with the real config loader (unknown keys are errors) and name every
//! key the loader knows.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;

fn readme_toml() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("## Configuration").nth(1).expect("a Configuration section");
    let block = section.split("```toml").nth(1).expect("a toml block");
    block.split("```").next().unwrap().to_string()
}

#[test]
fn the_readme_example_parses() {
    let text = readme_toml();
    vigil::config::Config::parse(&text, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_readme_names_every_key() {
    let text = readme_toml();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    let defaults = serde_json::to_value(vigil::config::Config::default()).unwrap();
    let mut missing = Vec::new();
    for (section, v) in defaults.as_object().unwrap() {
        let Some(doc) = parsed.get(section) else {
            missing.push(section.clone());
            continue;
        };
        for key in v.as_object().map(|o| o.keys().collect::<Vec<_>>()).unwrap_or_default() {
            if doc.get(key).is_none() {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(missing.is_empty(), "README's config section lacks {missing:?}");
}

/// The config file is read whole by the app and split between the crates: the `[gate]`
/// deny-list, which the tools crate no longer knows, still stops a tool at the gate, before
/// any question, and a misspelt section is still refused with its line.
#[test]
fn the_gate_section_still_reaches_the_gate() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("config.toml");
    let run = |text: &str| {
        std::fs::write(&cfg, text).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hosts/web1");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
        // No controlling terminal, as under cron: a gate that failed to deny would refuse, not ask.
        // SAFETY: setsid in the child before exec; async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::setsid();
                Ok(())
            });
        }
        cmd.arg("--state-dir")
            .arg(t.path().join("state"))
            .arg("--root")
            .arg(root)
            .arg("--config")
            .arg(&cfg)
            .args(["tools", "run", "firewall_deny_port", r#"{"port": 9200}"#])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", t.path())
            .env("VIGIL_KEYRING", "kernel")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run("[review]\nunused_days = 30\n[gate]\ndeny = [\"firewall_deny_port\"]\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("blocked by the administrator's configuration ([gate] deny)"), "{err}");
    let out = run("[gaet]\ndeny = [\"firewall_deny_port\"]\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 1") && err.contains("gaet"), "{err}");
}
