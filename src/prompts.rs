//! The system prompt and saved prompts, embedded in the binary.
//!
//! A saved prompt `NAME` is `CONFIG_DIR/prompts/NAME.md` when the
//! administrator wrote one (the config directory is root's), else the one
//! shipped in `prompts/NAME.md`. Names are plain words, never paths.

use std::path::Path;

use anyhow::{Result, bail};

/// The system prompt.
pub const SYSTEM: &str = include_str!("../prompts/system.md");

/// Saved prompts shipped with vigil: (name, text).
pub const SAVED: &[(&str, &str)] = &[("monthly-review", include_str!("../prompts/monthly-review.md"))];

/// The saved prompt `name`: the config directory's override, else the shipped one.
#[expect(clippy::disallowed_methods, reason = "a prompt in vigil's own config directory, beside the root-owned config")]
pub fn saved(name: &str, config_dir: &Path) -> Result<String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("`{name}` is not a prompt name (letters, digits, - and _ only)");
    }
    let local = config_dir.join("prompts").join(format!("{name}.md"));
    match std::fs::read_to_string(&local) {
        Ok(s) => return Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read {}: {e}", local.display()),
    }
    match SAVED.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => Ok(text.to_string()),
        None => {
            let names: Vec<&str> = SAVED.iter().map(|(n, _)| *n).collect();
            bail!("no saved prompt `{name}`: shipped are {}; add your own as {}", names.join(", "), local.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_overridden_and_bad_names() {
        let t = tempfile::tempdir().unwrap();
        assert!(saved("monthly-review", t.path()).unwrap().contains("firewall rules"));
        std::fs::create_dir(t.path().join("prompts")).unwrap();
        std::fs::write(t.path().join("prompts/monthly-review.md"), "ours").unwrap();
        assert_eq!(saved("monthly-review", t.path()).unwrap(), "ours");
        assert!(saved("../../etc/shadow", t.path()).is_err());
        assert!(saved("nope", t.path()).unwrap_err().to_string().contains("monthly-review"));
    }
}
