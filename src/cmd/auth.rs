//! `vigil auth login | status | logout`: the API keys in the OS keyring (Anthropic's,
//! and with `--wordfence` the Wordfence Intelligence key `vigil vulndb update` uses).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use secrecy::SecretString;

use crate::app::App;
use crate::auth::{API_KEY_ENTRY, OsKeyring, SecretStore, WORDFENCE_KEY_ENTRY, describe_key, find_api_key};
use crate::cli::AuthAction;

/// Read a line from the terminal without echo (from stdin when it is not a terminal).
fn read_secret(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim().to_string());
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios calls on stdin, which is a terminal; the struct is zero-initialised then filled.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let have = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
    let saved = term;
    if have {
        term.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    }
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if have {
        // SAFETY: restoring the saved settings.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    eprintln!();
    r?;
    Ok(line.trim().to_string())
}

/// Run `vigil auth …`.
pub fn run(app: &App, action: AuthAction) -> Result<u8> {
    let store = OsKeyring::new();
    match action {
        AuthAction::Login { wordfence: true } => {
            let key = read_secret("Wordfence Intelligence API key (input hidden): ")?;
            if key.is_empty() {
                bail!("no key entered; nothing stored");
            }
            store
                .set(WORDFENCE_KEY_ENTRY, &SecretString::from(key))
                .context("could not store the Wordfence key; nothing was written to disk")?;
            println!("Stored the Wordfence API key in the {}.", store.backend());
            Ok(0)
        }
        AuthAction::Login { wordfence: false } => {
            let key = read_secret("Anthropic API key (input hidden): ")?;
            if key.is_empty() {
                bail!("no key entered; nothing stored");
            }
            if !key.starts_with("sk-ant-") {
                eprintln!("vigil: warning: this does not look like an Anthropic API key (sk-ant-…); storing it anyway");
            }
            store
                .set(API_KEY_ENTRY, &SecretString::from(key))
                .context("could not store the key; nothing was written to disk")?;
            println!("Stored the API key in the {}.", store.backend());
            Ok(0)
        }
        AuthAction::Status { json: true } => {
            let key_file = app.config.schedule.api_key_file.as_deref();
            let wordfence = match crate::cmd::vulndb::wordfence_key(&store) {
                Ok(Some((_, src))) => serde_json::json!({"present": true, "source": src.to_string()}),
                Ok(None) => serde_json::json!({"present": false}),
                Err(e) => serde_json::json!({"present": false, "error": format!("{e:#}")}),
            };
            let (api, code) = match find_api_key(&store, key_file) {
                Ok(Some((k, src))) => {
                    (serde_json::json!({"present": true, "source": src.to_string(), "kind": describe_key(&k)}), 0)
                }
                Ok(None) => (serde_json::json!({"present": false}), 1),
                Err(e) => (serde_json::json!({"present": false, "error": format!("{e:#}")}), 1),
            };
            let v = serde_json::json!({"api_key": api, "wordfence_key": wordfence, "keyring": store.backend()});
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(code)
        }
        AuthAction::Status { json: false } => {
            match crate::cmd::vulndb::wordfence_key(&store) {
                Ok(Some((_, src))) => println!("Wordfence API key: from {src}."),
                Ok(None) => println!(
                    "Wordfence API key: none (only `vigil vulndb update` needs one: `vigil auth login --wordfence` or WORDFENCE_API_KEY)."
                ),
                Err(e) => println!("Wordfence API key: unreadable: {e:#}"),
            }
            let key_file = app.config.schedule.api_key_file.as_deref();
            match find_api_key(&store, key_file) {
                Ok(Some((k, src))) => {
                    println!("API key: {} from {src}.", describe_key(&k));
                    Ok(0)
                }
                Ok(None) => {
                    println!(
                        "No API key: `vigil review --offline` works without one; for chat and ask run `vigil auth login` or set ANTHROPIC_API_KEY."
                    );
                    Ok(1)
                }
                Err(e) => {
                    println!("No usable API key: {e:#}");
                    Ok(1)
                }
            }
        }
        AuthAction::Logout { wordfence: true } => {
            if store.delete(WORDFENCE_KEY_ENTRY)? {
                println!("Removed the Wordfence API key from the {}.", store.backend());
            } else {
                println!("There was no Wordfence API key in the {}.", store.backend());
            }
            Ok(0)
        }
        AuthAction::Logout { wordfence: false } => {
            if store.delete(API_KEY_ENTRY)? {
                println!("Removed the API key from the {}.", store.backend());
            } else {
                println!("There was no API key in the {}.", store.backend());
            }
            Ok(0)
        }
    }
}
