//! The installed packages, from dpkg's status database (`/var/lib/dpkg/status`).

use super::*;

/// Installed packages: name → [(architecture, version)].
pub type Installed = HashMap<String, Vec<(String, String)>>;

/// dpkg states in which a package's files are on disk: each counts as installed, so a
/// package left `half-configured`, `unpacked` or waiting on triggers still has its pending
/// security updates reported (`not-installed` and `config-files` have no program on disk).
pub(super) const ON_DISK: [&[u8]; 6] =
    [b"installed", b"triggers-pending", b"triggers-awaited", b"half-configured", b"unpacked", b"half-installed"];

/// Parse `var/lib/dpkg/status`, keeping packages whose files are on disk (see [`ON_DISK`]).
pub fn parse_status(bytes: &[u8]) -> Installed {
    let mut out: Installed = HashMap::new();
    for stanza in stanzas(bytes) {
        let (mut name, mut ver, mut arch, mut ok) = (None, None, None, false);
        for line in stanza.split(|b| *b == b'\n') {
            if let Some(v) = line.strip_prefix(b"Package: ") {
                name = Some(v);
            } else if let Some(v) = line.strip_prefix(b"Version: ") {
                ver = Some(v);
            } else if let Some(v) = line.strip_prefix(b"Architecture: ") {
                arch = Some(v);
            } else if let Some(v) = line.strip_prefix(b"Status: ") {
                // `want flag state`: the state is the last word.
                let state = v.rsplit(|b| *b == b' ').next().unwrap_or(b"").trim_ascii_end();
                ok = ON_DISK.contains(&state);
            }
        }
        if let (true, Some(n), Some(v)) = (ok, name, ver) {
            out.entry(lossy(n)).or_default().push((arch.map(lossy).unwrap_or_else(|| "all".into()), lossy(v)));
        }
    }
    out
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// Stanzas of a deb822 file, split on blank lines.
pub(super) fn stanzas(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let finder = memchr::memmem::Finder::new(b"\n\n");
    let mut rest = bytes;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (s, next) = match finder.find(rest) {
                Some(i) => (&rest[..i], &rest[i + 2..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let s = s.strip_prefix(b"\n").unwrap_or(s);
            if !s.is_empty() {
                return Some(s);
            }
        }
        None
    })
}
