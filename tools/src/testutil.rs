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
    let cfg =
        Config::load(&fixture_path(name).join("etc/vigil/config.toml")).expect("fixture config").unwrap_or_default();
    Ctx::new(fixture(name)).with_config(cfg)
}
