//! `authorized_keys` lines, judged locally: type, size, comment, option names
//! and an OpenSSH-style `SHA256:` fingerprint. The key material itself never
//! leaves this file. Fingerprints also show one key authorized for several
//! accounts ([`shared_keys`]).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::KeyFact;
use crate::finding::{Category, Finding, Severity};

/// One finding per key (by fingerprint) that several accounts accept: whoever
/// holds its private half is all of them, and the logs cannot tell who logged
/// in. `privileged` names the accounts that can become root.
pub fn shared_keys(keys: &[&KeyFact], privileged: &[&str]) -> Vec<Finding> {
    let mut by_fp: BTreeMap<&str, Vec<&KeyFact>> = BTreeMap::new();
    for k in keys {
        if let Some(fp) = &k.fingerprint {
            by_fp.entry(fp.as_str()).or_default().push(k);
        }
    }
    let mut out = Vec::new();
    for (fp, ks) in by_fp {
        let mut users: Vec<&str> = ks.iter().map(|k| k.user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let mut files: Vec<&str> = ks.iter().map(|k| k.file.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        // Accounts sharing one home (toor and root) share its file: not a key handed
        // out twice (the second uid 0 is a finding of its own).
        if users.len() < 2 || files.len() < 2 {
            continue;
        }
        let admin = users.iter().any(|u| privileged.contains(u));
        let list: Vec<String> = ks.iter().map(|k| format!("{} ({})", k.user, k.file)).collect();
        let first = ks[0];
        out.push(
            Finding::new(
                "accounts.shared-ssh-key",
                if admin { Severity::High } else { Severity::Medium },
                Category::Accounts,
                fp.to_string(),
                format!("One SSH key logs in as {} accounts: {}", users.len(), users.join(", ")),
            )
            .evidence(format!("{} \"{}\" {fp} is authorized for: {}", first.key_type, first.comment, list.join("; ")))
            .evidence(if admin {
                "one of them can become root: whoever holds this key is root, and the logs cannot tell who it was"
            } else {
                "whoever holds this key is every one of these users, and the logs cannot tell who it was"
            })
            .fix(format!(
                "Give each person and each automation its own key (`ssh-keygen -t ed25519`), then remove this key \
                 from every authorized_keys file but the one account it belongs to (`ssh-keygen -lf FILE` lists \
                 fingerprints; this one is {fp})."
            )),
        );
    }
    out
}

/// One authorized key, without its material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `ssh-ed25519`, `ssh-rsa`, …
    pub key_type: String,
    /// Modulus size for RSA keys.
    pub bits: Option<u32>,
    /// The comment (often `user@host`).
    pub comment: String,
    /// `SHA256:…` like `ssh-keygen -lf`; `None` when the key does not decode.
    pub fingerprint: Option<String>,
    /// Option names (`from`, `command`, `restrict`…), never their values.
    pub options: Vec<String>,
}

fn is_key_type(t: &str) -> bool {
    matches!(t, "ssh-rsa" | "ssh-dss" | "ssh-ed25519" | "ssh-ed448")
        || t.starts_with("ecdsa-sha2-")
        || t.starts_with("sk-ecdsa-sha2-")
        || t.starts_with("sk-ssh-ed25519")
        || t.ends_with("-cert-v01@openssh.com")
}

/// Split off a leading options field (`from="a,b",no-pty ssh-ed25519 …`).
fn split_options(line: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&line[..i], line[i..].trim_start()),
            _ => {}
        }
    }
    (line, "")
}

/// Parse one line; `None` for blanks, comments and lines with no key.
pub fn parse_key_line(line: &str) -> Option<KeyInfo> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let first = line.split_whitespace().next()?;
    let (options, rest) = if is_key_type(first) { ("", line) } else { split_options(line) };
    let mut parts = rest.splitn(3, char::is_whitespace);
    let key_type = parts.next()?.to_string();
    if !is_key_type(&key_type) {
        return None;
    }
    let blob = parts.next().and_then(|b| base64_decode(b.trim()));
    let comment = parts.next().unwrap_or("").trim().to_string();
    let options = if options.is_empty() {
        Vec::new()
    } else {
        let (names, _) = split_options_names(options);
        names
    };
    Some(KeyInfo {
        bits: blob.as_deref().and_then(|b| if key_type == "ssh-rsa" { rsa_bits(b) } else { None }),
        fingerprint: blob.as_deref().map(fingerprint),
        key_type,
        comment,
        options,
    })
}

fn split_options_names(options: &str) -> (Vec<String>, ()) {
    let mut names = Vec::new();
    let mut quoted = false;
    let mut cur = String::new();
    let mut in_value = false;
    for c in options.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                if !cur.is_empty() {
                    names.push(std::mem::take(&mut cur));
                }
                in_value = false;
            }
            '=' if !quoted => in_value = true,
            c if !in_value && !quoted => cur.push(c),
            _ => {}
        }
    }
    if !cur.is_empty() {
        names.push(cur);
    }
    (names, ())
}

/// `SHA256:` + unpadded base64 of the SHA-256 of the key blob, as `ssh-keygen -l` prints.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", base64_encode(&Sha256::digest(blob)))
}

/// RSA modulus size from an `ssh-rsa` blob (string type, mpint e, mpint n).
fn rsa_bits(blob: &[u8]) -> Option<u32> {
    let mut off = 0usize;
    let mut next = || -> Option<&[u8]> {
        let len = u32::from_be_bytes(blob.get(off..off + 4)?.try_into().ok()?) as usize;
        let v = blob.get(off + 4..off + 4 + len)?;
        off += 4 + len;
        Some(v)
    };
    let _type = next()?;
    let _e = next()?;
    let n = next()?;
    let n: Vec<u8> = n.iter().copied().skip_while(|b| *b == 0).collect();
    let first = *n.first()?;
    Some((n.len() as u32 - 1) * 8 + (8 - first.leading_zeros()))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 without padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Standard base64 (padding optional); `None` on any other character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Throwaway public keys (their private halves were discarded) and what `ssh-keygen -lf` prints.
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9uGOzvxV0w9C+oWkWUcQ68JmA+rZ8A/VC3QwWBwft/ jane@freelance-laptop";
    const ED25519_FP: &str = "SHA256:0FAemopkqJDWjt5lzgyxIGFCeMFWmkSsQUlUkDNjGVo";
    const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDgAN/L9w2omxxp6TEmMDE/3qvW0piYkK9+SyVBWezaKizdpROuoKKe23XpqOLVmZBUfnFvDahwn4EMsWczJmUlG9uRw/TJ3tFcLILd2I+EFKtqoALzMyIJgOp6ByGAvjGqt10fuAWOAHEy2a9/+B9OfcKsq6tE3BLY3K+N9TffMQ== old-backup-key";
    const RSA1024_FP: &str = "SHA256:kUU9GQ5iddhMs+I/xK8icODoMWBRTejIVyEBtrc07vg";

    #[test]
    fn fingerprints_and_sizes_match_ssh_keygen() {
        let k = parse_key_line(ED25519).unwrap();
        assert_eq!(k.fingerprint.as_deref(), Some(ED25519_FP));
        assert_eq!(k.bits, None);
        let k = parse_key_line(RSA1024).unwrap();
        assert_eq!(k.fingerprint.as_deref(), Some(RSA1024_FP));
        assert_eq!(k.bits, Some(1024));
        assert_eq!(k.comment, "old-backup-key");
    }

    fn fact(user: &str, file: &str) -> super::super::KeyFact {
        let k = parse_key_line(ED25519).unwrap();
        super::super::KeyFact {
            user: user.into(),
            file: file.into(),
            key_type: k.key_type,
            bits: k.bits,
            comment: k.comment,
            fingerprint: k.fingerprint,
            options: Vec::new(),
            file_modified: "2026-11-01".into(),
            age_days: 26,
        }
    }

    #[test]
    fn one_key_in_two_accounts_is_shared_but_one_shared_home_is_not() {
        let (a, b) = (fact("shop", "/home/shop/.ssh/authorized_keys"), fact("blog", "/home/blog/.ssh/authorized_keys"));
        let f = shared_keys(&[&a, &b], &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, ED25519_FP);
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(shared_keys(&[&a, &b], &["blog"])[0].severity, Severity::High);
        let (r, t) = (fact("root", "/root/.ssh/authorized_keys"), fact("toor", "/root/.ssh/authorized_keys"));
        assert!(shared_keys(&[&r, &t], &[]).is_empty());
        assert!(shared_keys(&[&a], &[]).is_empty());
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8");
        assert!(base64_decode("not base64!").is_none());
    }

    #[test]
    fn parses_plain_and_optioned_keys() {
        let k = parse_key_line(ED25519).unwrap();
        assert_eq!(k.key_type, "ssh-ed25519");
        assert_eq!(k.comment, "jane@freelance-laptop");
        let k =
            parse_key_line(&format!("from=\"10.0.0.1,10.0.0.2\",command=\"/bin/echo a b\",no-pty {ED25519}")).unwrap();
        assert_eq!(k.options, vec!["from", "command", "no-pty"]);
        assert_eq!(k.comment, "jane@freelance-laptop");
        assert!(parse_key_line("# ssh-rsa AAAA").is_none());
        assert!(parse_key_line("   ").is_none());
        assert!(parse_key_line("garbage here").is_none());
        let bad = parse_key_line("ssh-rsa !!!notbase64 x").unwrap();
        assert_eq!(bad.fingerprint, None);
    }
}
