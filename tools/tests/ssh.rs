//! `check_ssh` reads sshd_config the way the real sshd does: the effective
//! values `effective_config` computes (Include globs, first value wins,
//! `Keyword=value`, comments, Match blocks kept apart, defaults) are compared
//! with what `sshd -T` prints for the same files.
//!
//! Needs `/usr/sbin/sshd` and `ssh-keygen` (.ci/packages/ssh.txt). Starts no
//! server: `sshd -T` only parses and prints.

#![expect(clippy::unwrap_used, reason = "test helpers: a failed setup step should fail the test")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use vigil_tools::Host;
use vigil_tools::ssh::{SshdConfig, effective_config};

const SSHD: &str = "/usr/sbin/sshd";

/// A root whose absolute paths also resolve inside it: `sshd` reads
/// `R/etc/...` for real, `Host::at(R)` reads `/R/etc/...` as `R/R/etc/...`,
/// which a relative symlink points back at `R` (`..` up to the root: an absolute
/// target would be resolved inside the root, and point at itself).
fn mirrored_root() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().canonicalize().unwrap();
    let mirror = r.join(r.strip_prefix("/").unwrap());
    std::fs::create_dir_all(mirror.parent().unwrap()).unwrap();
    let up = r.components().count().saturating_sub(2).max(1);
    std::os::unix::fs::symlink(vec![".."; up].join("/"), &mirror).unwrap();
    let key = r.join("hostkey");
    let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
    assert!(st.success());
    (dir, r.display().to_string())
}

fn sshd_t(config: &str) -> BTreeMap<String, Vec<String>> {
    // sshd refuses to run, even for -T, without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").ok();
    let out = Command::new(SSHD).args(["-T", "-f", config]).output().unwrap();
    assert!(out.status.success(), "sshd -T failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once(' ') {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    m
}

fn yn(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn compare(ours: &SshdConfig, real: &BTreeMap<String, Vec<String>>, explicit: &[&str]) {
    let one = |k: &str| real.get(k).and_then(|v| v.first()).cloned().unwrap_or_default();
    let prl = ours.permit_root_login().replace("prohibit-password", "without-password");
    assert_eq!(prl, one("permitrootlogin"), "PermitRootLogin");
    assert_eq!(yn(ours.password_authentication()), one("passwordauthentication"), "PasswordAuthentication");
    assert_eq!(yn(ours.flag("PermitEmptyPasswords", false)), one("permitemptypasswords"));
    assert_eq!(yn(ours.flag("X11Forwarding", false)), one("x11forwarding"));
    assert_eq!(yn(ours.flag("AllowAgentForwarding", true)), one("allowagentforwarding"));
    assert_eq!(yn(ours.flag("AllowTcpForwarding", true)), one("allowtcpforwarding"));
    let ports: Vec<String> = ours.ports().iter().map(u16::to_string).collect();
    let mut real_ports = real.get("port").cloned().unwrap_or_default();
    real_ports.sort_by_key(|p| p.parse::<u16>().unwrap_or(0));
    assert_eq!(ports, real_ports, "Port");
    assert_eq!(ours.get("AuthenticationMethods").unwrap_or("any"), one("authenticationmethods"));
    assert_eq!(ours.authorized_keys_files().join(" "), one("authorizedkeysfile"));
    for k in explicit {
        assert_eq!(ours.get(k), Some(one(&k.to_ascii_lowercase()).as_str()), "{k}");
    }
}

#[test]
#[cfg_attr(
    any(vigil_missing = "sshd", vigil_missing = "ssh-keygen"),
    ignore = "needs sshd, ssh-keygen (.ci/packages/ssh.txt)"
)]
fn effective_values_match_sshd_t() {
    vigil_testkit::require(&["sshd", "ssh-keygen"]);
    let (_dir, r) = mirrored_root();
    let w = |p: &str, text: &str| {
        let path = format!("{r}{p}");
        std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    w(
        "/etc/ssh/sshd_config",
        &format!(
            "# PermitRootLogin no  (a comment, not a setting)\n\
             HostKey {r}/hostkey\n\
             Include {r}/etc/ssh/sshd_config.d/*.conf {r}/etc/ssh/absent.conf\n\
             PermitRootLogin yes\n\
             Port 2222\nPort 2223\n\
             PasswordAuthentication=no\n\
             x11forwarding yes\n\
             Ciphers aes256-ctr\n\
             AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/keys/%u\n\
             Match User nobody\n  PermitRootLogin no\n  X11Forwarding no\n"
        ),
    );
    w(
        "/etc/ssh/sshd_config.d/10-first.conf",
        "permitrootlogin prohibit-password\nCiphers aes128-cbc,aes256-ctr\nAllowTcpForwarding no\n",
    );
    w(
        "/etc/ssh/sshd_config.d/20-second.conf",
        "PermitRootLogin no\nMACs hmac-sha2-256,hmac-md5\nAuthenticationMethods publickey,keyboard-interactive\n",
    );
    // A Match opened in an included file ends with that file: the main file's
    // settings after the Include stay global.
    w("/etc/ssh/sshd_config.d/30-match.conf", "Match User nobody\n  PasswordAuthentication yes\n");
    w("/etc/ssh/sshd_config.d/README", "PermitEmptyPasswords yes\n");
    let ours = effective_config(&Host::at(&r));
    assert!(ours.unreadable.is_empty(), "{:?}", ours.unreadable);
    assert_eq!(ours.matches.len(), 2);
    compare(&ours, &sshd_t(&format!("{r}/etc/ssh/sshd_config")), &["Ciphers", "MACs"]);
}

#[test]
#[cfg_attr(
    any(vigil_missing = "sshd", vigil_missing = "ssh-keygen"),
    ignore = "needs sshd, ssh-keygen (.ci/packages/ssh.txt)"
)]
fn defaults_match_sshd_t() {
    vigil_testkit::require(&["sshd", "ssh-keygen"]);
    let (_dir, r) = mirrored_root();
    std::fs::create_dir_all(format!("{r}/etc/ssh")).unwrap();
    std::fs::write(format!("{r}/etc/ssh/sshd_config"), format!("HostKey {r}/hostkey\n")).unwrap();
    let ours = effective_config(&Host::at(&r));
    compare(&ours, &sshd_t(&format!("{r}/etc/ssh/sshd_config")), &[]);
}
