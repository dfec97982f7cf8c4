//! Test helpers: the checked-in fixture hosts under `fixtures/hosts/`, seen on
//! a fixed date so findings that depend on "now" do not drift.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::host::Host;
use crate::tool::Ctx;

/// 2026-11-27T00:00:00Z, the date the fixtures describe.
pub const FIXTURE_NOW: u64 = 1_795_737_600;

/// Path of a fixture host.
pub fn fixture_path(name: &str) -> PathBuf {
    vigil_testkit::fixture_hosts().join(name)
}

/// A fixture host, as of [`FIXTURE_NOW`].
pub fn fixture(name: &str) -> Host {
    Host::at(fixture_path(name)).with_now(SystemTime::UNIX_EPOCH + Duration::from_secs(FIXTURE_NOW))
}

/// A context over a fixture host with its own `etc/vigil/config.toml`.
pub fn fixture_ctx(name: &str) -> Ctx {
    let path = fixture_path(name).join("etc/vigil/config.toml");
    let cfg = match std::fs::read_to_string(&path) {
        Ok(text) => Config::parse(&text, &path).expect("fixture config"),
        Err(_) => Config::default(),
    };
    Ctx::new(fixture(name)).with_config(cfg)
}

/// A root made of `files` (absolute path, text) in a fresh temporary directory.
pub fn host_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (p, text) in files {
        let real = dir.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(real.parent().expect("a parent")).expect("mkdir");
        std::fs::write(real, text).expect("write");
    }
    let h = Host::at(dir.path());
    (dir, h)
}
