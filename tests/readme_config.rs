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
