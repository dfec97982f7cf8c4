//! The keyed slow digest itself, alone in a file with no other dependency than
//! `argon2`, `zeroize` and `hex`, so that `bench/kdf` measures exactly this
//! code in a release build.
//!
//! Argon2id with the run's key as Argon2's own `secret` input (a keyed KDF: no
//! one without the key can compute a digest at all), a fixed per-protocol salt
//! (the digests of one run must be comparable across hosts, so the salt cannot
//! be random; the random key is what makes every run's digests new), 19 MiB
//! of memory (OWASP's minimum for Argon2id), 3 passes and 1 lane: about 25 ms
//! of CPU per digest on the benchmark machine (BENCHMARKS.md, section 10), 20
//! to 50 ms being the aim: slow for guessing, cheap for a host's few dozen
//! secrets. Argon2's working memory, which is derived from the key and the
//! secret, is wiped after every digest.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::{Zeroize, Zeroizing};

/// The salt of protocol version 1; changing the parameters means a new salt.
pub const SALT: &[u8] = b"vigil fleet secret digest v1";
/// Memory per digest, in KiB.
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const T_COST: u32 = 3;
/// Lanes.
pub const P_COST: u32 = 1;
/// Output bytes (the hex digest has twice as many characters).
pub const OUT_LEN: usize = 32;

/// Computes digests under one key, reusing (and wiping) one working memory.
pub struct Kdf<'k> {
    argon: Argon2<'k>,
    memory: Vec<Block>,
}

impl<'k> Kdf<'k> {
    /// A digester keyed by `key` (at most 2^32 - 1 bytes; the run key is 32).
    pub fn new(key: &'k [u8]) -> Result<Self, argon2::Error> {
        let params = Params::new(M_COST_KIB, T_COST, P_COST, Some(OUT_LEN))?;
        let blocks = params.block_count();
        let argon = Argon2::new_with_secret(key, Algorithm::Argon2id, Version::V0x13, params)?;
        Ok(Kdf { argon, memory: vec![Block::new(); blocks] })
    }

    /// The hex digest of `secret` under this key.
    pub fn digest(&mut self, secret: &[u8]) -> Result<String, argon2::Error> {
        let mut out = Zeroizing::new([0u8; OUT_LEN]);
        let r = self.argon.hash_password_into_with_memory(secret, SALT, &mut out[..], &mut self.memory[..]);
        self.memory.iter_mut().for_each(Zeroize::zeroize);
        r?;
        Ok(hex::encode(&out[..]))
    }
}
