//! Cross-server password reuse, found without a password leaving its host.
//!
//! One database password on two servers means that one leaked `wp-config.php`
//! opens both, and no single-host review can see it. The controller must not
//! see the passwords either, so it gives every host of a run the same fresh
//! random key ([`run_key`], sent on stdin), each host digests its own secrets
//! under that key with a slow keyed KDF ([`collect`], Argon2id with the key as
//! Argon2's `secret`: see [`kdf`]), and the controller compares the digests in
//! memory ([`reused`]). Without the key no one can compute a digest at all;
//! with it, every guess still costs a full Argon2id run; the key is dropped
//! (and wiped) when the run ends, and digests are never serialised into a
//! report or history (`Status::Reviewed.digests` is `serde(skip)`).
//!
//! The secrets digested are the ones vigil already reads and judges locally:
//! every WordPress site's `DB_PASSWORD` (through the site discovery and the
//! `wp-config.php` reader, which treat tenant files as hostile), the passwords
//! Redis's configuration sets (`requirepass`, `user … >password`), and the
//! `/etc/shadow` hash of every account that has one (identical only when the
//! hash was copied between servers: a cloned image or one hash pushed
//! everywhere, which is how one root password usually ends up on a fleet).

mod kdf;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use rand::TryRngCore;
use zeroize::{Zeroize, Zeroizing};

use super::outcome::{HostOutcome, SecretDigest, Status};
use vigil_tools::{Ctx, Host};

pub use kdf::{M_COST_KIB, OUT_LEN, P_COST, SALT, T_COST};

/// The run key's length in bytes.
pub const KEY_LEN: usize = 32;

/// At most this many digests are computed at once (each takes [`M_COST_KIB`] of memory).
const MAX_THREADS: usize = 4;

/// One secret found on two or more hosts: where, by host, without the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reuse {
    /// `(host, place)` pairs sharing one secret, sorted; a host appears once per place.
    pub places: Vec<(String, String)>,
}

impl Reuse {
    /// The distinct hosts involved, sorted (always two or more).
    pub fn hosts(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.places.iter().map(|(h, _)| h.as_str()).collect();
        set.into_iter().collect()
    }

    /// What is shared, in words for the report: "a database password", "a Redis password",
    /// "an account's password hash (copied between servers)", or "a password" when the
    /// places are of different kinds (a database password that is also Redis's).
    pub fn what(&self) -> &'static str {
        let kinds: BTreeSet<&str> = self.places.iter().map(|(_, p)| kind_of(p)).collect();
        match kinds.into_iter().collect::<Vec<_>>()[..] {
            [one] => one,
            _ => "a password",
        }
    }
}

/// The kind of secret at a place [`collect`] names.
fn kind_of(place: &str) -> &'static str {
    if place.ends_with(" DB_PASSWORD") {
        "a database password"
    } else if place.starts_with("/etc/shadow ") {
        "an account's password hash (copied between servers)"
    } else if place.contains("redis") {
        "a Redis password"
    } else {
        "a password"
    }
}

/// This run's key for the keyed digests: random, held in memory only, wiped when dropped.
pub struct RunKey(Box<[u8; KEY_LEN]>);

/// A fresh key for one fleet run: 32 bytes from the operating system's RNG.
pub fn run_key() -> RunKey {
    let mut key = RunKey(Box::new([0u8; KEY_LEN]));
    if rand::rngs::OsRng.try_fill_bytes(&mut key.0[..]).is_err() {
        // getrandom(2) does not fail on Linux once the pool is seeded; should it, the
        // thread RNG (ChaCha seeded from the OS) is the next best source.
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key.0[..]);
    }
    key
}

impl RunKey {
    /// The key in hex, for the request written on the remote's stdin (never argv, never a log).
    pub fn hex(&self) -> String {
        hex::encode(&self.0[..])
    }

    /// The key sent by the controller (the remote side); the error never repeats the input.
    pub fn from_hex(text: &str) -> Result<RunKey> {
        let mut key = RunKey(Box::new([0u8; KEY_LEN]));
        if hex::decode_to_slice(text.trim(), &mut key.0[..]).is_err() {
            bail!("the run key must be {} hexadecimal digits", KEY_LEN * 2);
        }
        Ok(key)
    }

    /// The key's bytes, for [`collect`].
    pub fn bytes(&self) -> &[u8] {
        &self.0[..]
    }
}

impl Drop for RunKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunKey(…)")
    }
}

/// A secret on this host and where it is; the secret is wiped when dropped.
struct Found {
    place: String,
    secret: Zeroizing<String>,
}

impl Found {
    fn new(place: String, secret: String) -> Found {
        let secret = Zeroizing::new(secret);
        // A path can be made to hold the secret (a tenant's directory named after it):
        // the place must never carry it.
        let place = if !secret.is_empty() && place.contains(secret.as_str()) {
            place.replace(secret.as_str(), "[REDACTED]")
        } else {
            place
        };
        Found { place, secret }
    }
}

/// The keyed digests of the secrets on this host (run on the remote, as root), with the
/// default configuration's web roots. See [`collect_in`].
pub fn collect(host: &Host, key: &[u8]) -> Vec<SecretDigest> {
    collect_in(&Ctx::new(host.clone()), key)
}

/// The keyed digests of the secrets on `ctx`'s host, its configuration's `[wordpress]
/// web_roots` included: one [`SecretDigest`] per place (identical secrets at two places
/// are two entries), empty secrets skipped, sorted by place. A key shorter than 16 bytes
/// is refused (nothing is digested): an unkeyed digest could be precomputed.
pub fn collect_in(ctx: &Ctx, key: &[u8]) -> Vec<SecretDigest> {
    if key.len() < 16 {
        tracing::warn!("no keyed digests: the run key is missing or too short");
        return Vec::new();
    }
    digest_all(secrets(ctx), key)
}

/// Every secret vigil judges on this host, with its place.
fn secrets(ctx: &Ctx) -> Vec<Found> {
    let mut out = Vec::new();
    for site in vigil_tools::wordpress::discover_sites(ctx) {
        if let Some(pw) = site.db_password() {
            let file =
                site.password_file.clone().or_else(|| site.config_path.clone()).unwrap_or_else(|| site.subject());
            out.push(Found::new(format!("{file} DB_PASSWORD"), pw.expose().to_string()));
        }
    }
    for (place, pw) in vigil_tools::ports::config::redis_passwords(&ctx.host) {
        out.push(Found::new(place, pw));
    }
    if let Ok(hashes) = vigil_tools::accounts::password_hashes(&ctx.host) {
        for (user, hash) in hashes {
            out.push(Found::new(format!("/etc/shadow {user}"), hash));
        }
    }
    out.retain(|f| !f.secret.is_empty());
    out
}

/// Digest each distinct secret once (on a few threads), then give every place its digest.
fn digest_all(found: Vec<Found>, key: &[u8]) -> Vec<SecretDigest> {
    let distinct: Vec<&str> = found.iter().map(|f| f.secret.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    if distinct.is_empty() {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_THREADS);
    let chunk = distinct.len().div_ceil(threads);
    let digests: Vec<Option<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = distinct
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let Ok(mut kdf) = kdf::Kdf::new(key) else {
                        return vec![None; part.len()];
                    };
                    part.iter().map(|secret| kdf.digest(secret.as_bytes()).ok()).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    if digests.len() != distinct.len() || digests.iter().any(Option::is_none) {
        tracing::warn!("some keyed digests could not be computed; cross-server reuse is incomplete for this host");
    }
    let by: BTreeMap<&str, String> = distinct.iter().zip(digests).filter_map(|(s, d)| Some((*s, d?))).collect();
    let mut out: Vec<SecretDigest> = found
        .iter()
        .filter_map(|f| by.get(f.secret.as_str()).map(|d| SecretDigest { place: f.place.clone(), digest: d.clone() }))
        .collect();
    out.sort_by(|a, b| a.place.cmp(&b.place));
    out
}

/// True for what [`collect`] produces: [`OUT_LEN`] bytes in lower-case hex. Anything else a
/// host sends is ignored, so two broken answers (two empty digests) never look like reuse.
fn well_formed(digest: &str) -> bool {
    digest.len() == OUT_LEN * 2 && digest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Secrets shared between hosts of one run (run on the controller): one [`Reuse`] per
/// digest seen on two or more different hosts, sorted by its places. A digest repeated on
/// one host only is the single-host review's business and is not reported here.
pub fn reused(hosts: &[HostOutcome]) -> Vec<Reuse> {
    let mut by: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for h in hosts {
        if let Status::Reviewed { digests, .. } = &h.status {
            for d in digests.iter().filter(|d| well_formed(&d.digest)) {
                by.entry(d.digest.as_str()).or_default().insert((h.name.as_str(), d.place.as_str()));
            }
        }
    }
    let mut out: Vec<Reuse> = by
        .into_values()
        .filter(|p| p.iter().map(|(h, _)| *h).collect::<BTreeSet<_>>().len() >= 2)
        .map(|p| Reuse { places: p.into_iter().map(|(h, pl)| (h.to_string(), pl.to_string())).collect() })
        .collect();
    out.sort_by(|a, b| a.places.cmp(&b.places));
    out
}

#[cfg(test)]
mod tests;
