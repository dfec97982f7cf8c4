//! Why a host could not be reached, from ssh's exit status and its own words.
//!
//! The administrator needs to know whether a host is down (`unreachable`),
//! refuses the key or presents another host key (`auth-failed`), or lets the
//! login in but refuses `sudo -n` (`no-sudo`): each calls for a different fix.
//! ssh exits 255 for its own failures and with the remote command's status
//! otherwise, and says what went wrong in one line on stderr; that line (with
//! terminal controls stripped, since a hostile host chooses part of it) is kept
//! as the detail. A host that cannot run vigil from memory (its push directory
//! is `noexec` and it has no usable python3 or perl) is `unsupported`.

use crate::fleet::outcome::{Failure, Reason};

/// Longest detail kept (characters).
const DETAIL_MAX: usize = 300;

/// ssh's words for "no connection was made".
const UNREACHABLE: [&str; 7] = [
    "Connection refused",
    "No route to host",
    "Could not resolve hostname",
    "Connection timed out",
    "timed out",
    "Network is unreachable",
    "kex_exchange_identification",
];

/// ssh's words for "connected, but the login (or the host's key) was refused",
/// the most telling first (the host-key lines explain "verification failed").
const AUTH: [&str; 8] = [
    "has changed and you have requested strict checking",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "host key is known for",
    "Host key verification failed",
    "Too many authentication failures",
    "no matching host key type found",
    "Permission denied (",
    "Authentication failed",
];

/// sudo's words for "not without a password" or "not you".
const NO_SUDO: [&str; 5] = [
    "a password is required",
    "is not in the sudoers file",
    "may not run sudo",
    "a terminal is required",
    "sudo: not found",
];

/// The failure for a run that exited with `code` (`None`: killed by a signal) and wrote `stderr`.
pub(crate) fn classify(code: Option<i32>, stderr: &str) -> Failure {
    let clean = crate::term::strip_controls(stderr);
    let lines: Vec<&str> = clean.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // The first word (in the list's order) any line says, and that line.
    let find = |words: &[&str]| words.iter().find_map(|w| lines.iter().find(|l| l.contains(w))).copied();
    // sudo speaks through a session that worked, so its refusal is not ssh's 255.
    if let Some(line) = find(&NO_SUDO).or_else(|| find(&["sudo: command not found"])) {
        return failure(Reason::NoSudo, line);
    }
    // The memfd runner found no way to run vigil from memory on this host.
    if let Some(line) = find(&["vigil-memfd: unsupported:"]) {
        return failure(Reason::Unsupported, line);
    }
    if code == Some(255) {
        if let Some(line) = find(&AUTH) {
            return failure(Reason::AuthFailed, line);
        }
        if let Some(line) = find(&UNREACHABLE) {
            return failure(Reason::Unreachable, line);
        }
    }
    let detail = match (code, lines.last()) {
        (_, Some(line)) => (*line).to_string(),
        (Some(255), None) => "the connection ended without an answer (ssh exit 255: the remote was killed or the \
                              connection dropped)"
            .to_string(),
        (Some(c), None) => format!("the remote command failed with status {c} and said nothing"),
        (None, None) => "ssh was killed by a signal".to_string(),
    };
    failure(Reason::Error, &detail)
}

/// A failure with `detail` cut to [`DETAIL_MAX`] characters.
pub(crate) fn failure(reason: Reason, detail: &str) -> Failure {
    let clean = crate::term::strip_controls(detail);
    let mut detail: String = clean.trim().chars().take(DETAIL_MAX).collect();
    if clean.trim().chars().count() > DETAIL_MAX {
        detail.push('…');
    }
    Failure { reason, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each message below was copied from a real run of OpenSSH 9.2p1 (Debian 12) and sudo 1.9.13.
    #[track_caller]
    fn is(code: i32, stderr: &str, reason: Reason, detail: &str) {
        let f = classify(Some(code), stderr);
        assert_eq!(f.reason, reason, "{stderr}");
        assert_eq!(f.detail, detail);
    }

    #[test]
    fn no_connection_is_unreachable() {
        for line in [
            "ssh: connect to host 127.0.0.1 port 1: Connection refused",
            "ssh: Could not resolve hostname nosuch.invalid: Name or service not known",
            "ssh: connect to host 192.0.2.1 port 22: No route to host",
            "ssh: connect to host 10.0.0.1 port 22: Network is unreachable",
            "ssh: connect to host 10.255.255.1 port 22: Connection timed out",
            "kex_exchange_identification: read: Connection reset by peer",
        ] {
            is(255, &format!("{line}\r\n"), Reason::Unreachable, line);
        }
        // ConnectTimeout reached in the banner exchange: two lines, the first kept.
        is(
            255,
            "Connection timed out during banner exchange\nConnection to 10.255.255.1 port 22 timed out\n",
            Reason::Unreachable,
            "Connection timed out during banner exchange",
        );
    }

    #[test]
    fn a_refused_login_or_host_key_is_auth_failed() {
        is(
            255,
            "root@127.0.0.1: Permission denied (publickey).\n",
            Reason::AuthFailed,
            "root@127.0.0.1: Permission denied (publickey).",
        );
        is(
            255,
            "No ED25519 host key is known for [127.0.0.1]:2299 and you have requested strict checking.\nHost key verification failed.\n",
            Reason::AuthFailed,
            "No ED25519 host key is known for [127.0.0.1]:2299 and you have requested strict checking.",
        );
        is(
            255,
            "Received disconnect from 127.0.0.1 port 2299:2: Too many authentication failures\nDisconnected from 127.0.0.1 port 2299\n",
            Reason::AuthFailed,
            "Received disconnect from 127.0.0.1 port 2299:2: Too many authentication failures",
        );
        let changed = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
The fingerprint for the ED25519 key sent by the remote host is\n\
SHA256:s8crhe90PvuG24PnLDsGBHimD3AXUqV5HMq/IWyfIkM.\n\
Host key for [127.0.0.1]:2299 has changed and you have requested strict checking.\n\
Host key verification failed.\n";
        is(
            255,
            changed,
            Reason::AuthFailed,
            "Host key for [127.0.0.1]:2299 has changed and you have requested strict checking.",
        );
    }

    #[test]
    fn sudo_refusing_is_no_sudo() {
        is(1, "sudo: a password is required\n", Reason::NoSudo, "sudo: a password is required");
        is(1, "alice is not in the sudoers file.\n", Reason::NoSudo, "alice is not in the sudoers file.");
        is(
            1,
            "Sorry, user alice may not run sudo on web01.\n",
            Reason::NoSudo,
            "Sorry, user alice may not run sudo on web01.",
        );
        is(127, "sh: 1: exec: sudo: not found\n", Reason::NoSudo, "sh: 1: exec: sudo: not found");
    }

    #[test]
    fn no_way_to_run_from_memory_is_unsupported() {
        is(
            125,
            "vigil-memfd: unsupported: noexec and no python3/perl to run vigil from memory\n",
            Reason::Unsupported,
            "vigil-memfd: unsupported: noexec and no python3/perl to run vigil from memory",
        );
        // A damaged copy is an error, not the host's limitation.
        let f = classify(Some(125), "vigil-memfd: the copy has SHA-256 ab, not cd: the transfer was damaged\n");
        assert_eq!(f.reason, Reason::Error);
    }

    #[test]
    fn anything_else_is_an_error_with_the_last_words() {
        // `kill -9 $$` on the remote: ssh exits 255 and says nothing.
        let f = classify(Some(255), "");
        assert_eq!(f.reason, Reason::Error);
        assert!(f.detail.contains("ended without an answer"), "{}", f.detail);
        is(2, "vigil: error: unknown request\n", Reason::Error, "vigil: error: unknown request");
    }

    #[test]
    fn a_hostile_host_cannot_paint_the_terminal() {
        // The remote chooses its stderr: an escape sequence retitling the terminal, and a flood.
        let f = classify(Some(1), &format!("\x1b]0;pwned\x07sudo: a password is required{}\n", "A".repeat(5000)));
        assert_eq!(f.reason, Reason::NoSudo);
        assert!(!f.detail.contains('\x1b') && !f.detail.contains('\x07'), "{:?}", f.detail);
        assert!(f.detail.chars().count() <= DETAIL_MAX + 1, "{}", f.detail.len());
    }
}
