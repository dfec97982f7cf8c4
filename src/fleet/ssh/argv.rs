//! The `ssh` command line for one host, and where its shared connection lives.
//!
//! The system `ssh` client does the connecting, so the administrator's
//! `~/.ssh/config`, agent, known hosts and jump hosts apply as they do by hand.
//! vigil's own options come first because ssh keeps the first value it is given
//! for an option: `BatchMode` (never a prompt), `ForwardAgent=no` and
//! `ClearAllForwardings` (the host gets no way back to the agent or the
//! network), and connection reuse through a `ControlPath` named by a hash of
//! every connection argument — OpenSSH's own `%C` ignores the jump host, so two
//! hosts at one private address behind different bastions would otherwise share
//! one connection and one review. Host-key checking is never turned off.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::fleet::inventory::Target;

/// `sun_path` is 108 bytes on Linux, 104 on the BSDs; ssh adds `.` and 16 hex
/// digits to the path while it sets the socket up, and a NUL ends it.
const SUN_PATH_BUDGET: usize = 104;
const SSH_TEMP_SUFFIX: usize = 17;

/// How long an idle shared connection stays up after its last use.
pub(crate) const CONTROL_PERSIST: &str = "60s";

/// ssh flags that take a value (the next character on, or the next argument).
const WITH_VALUE: &str = "BbcDEeFIiJLlmOopQRSWw";

/// Flags a host's `ansible_ssh_common_args` may not carry, and why.
const REFUSED: [(char, &str); 7] = [
    ('A', "forwards the SSH agent to the host"),
    ('X', "forwards X11 to the host"),
    ('Y', "forwards X11 to the host"),
    ('t', "asks for a terminal (vigil never runs with one)"),
    ('M', "makes this connection a master outside vigil's ControlPath"),
    ('f', "sends ssh to the background"),
    ('N', "runs no remote command"),
];

/// Refuse host ssh arguments that would undo what vigil's own options promise.
pub(crate) fn check_host_args(args: &[String]) -> Result<(), String> {
    let mut value_next = false;
    for a in args {
        if value_next {
            value_next = false;
            continue;
        }
        if a == "--" {
            return Err("ansible_ssh_common_args contains `--`: only options belong there".into());
        }
        let Some(flags) = a.strip_prefix('-') else { continue };
        for (i, c) in flags.char_indices() {
            if let Some((_, why)) = REFUSED.iter().find(|(f, _)| *f == c) {
                return Err(format!(
                    "ansible_ssh_common_args has `-{c}`, which {why}: vigil refuses it; remove it for this host"
                ));
            }
            if WITH_VALUE.contains(c) {
                value_next = i + c.len_utf8() == flags.len();
                break;
            }
        }
    }
    Ok(())
}

/// Short hex SHA-256 of the inventory name and every argument that decides where ssh connects.
pub(crate) fn connection_hash(inventory: &str, t: &Target) -> String {
    let key = serde_json::json!([
        inventory,
        t.name,
        t.address,
        t.port,
        t.user,
        t.key_file.as_ref().map(|p| p.to_string_lossy()),
        t.ssh_args,
    ]);
    let digest = Sha256::digest(key.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// The control socket's path for `t`: `dir/HASH`.
pub(crate) fn control_path(dir: &Path, inventory: &str, t: &Target) -> PathBuf {
    dir.join(connection_hash(inventory, t))
}

/// Would a socket in `dir` fit in `sun_path`?
pub(crate) fn fits(dir: &Path) -> bool {
    // `dir/` + 16 hex digits + ssh's temporary suffix + NUL.
    dir.as_os_str().len() + 1 + 16 + SSH_TEMP_SUFFIX < SUN_PATH_BUDGET
}

/// The directory of control sockets: `STATE/fleet/cm`, else a short per-uid one when that is too long.
pub(crate) fn control_dir(state_dir: &Path) -> Result<PathBuf, String> {
    let under_state = state_dir.join("fleet").join("cm");
    if fits(&under_state) {
        private_dir(&state_dir.join("fleet"), true)?;
        private_dir(&under_state, false)?;
        return Ok(under_state);
    }
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let run = PathBuf::from(format!("/run/user/{uid}"));
    let short = if run.is_dir() { run.join("vigil-cm") } else { PathBuf::from(format!("/tmp/vigil-cm-{uid}")) };
    private_dir(&short, false)?;
    Ok(short)
}

/// Create `dir` 0700 if absent; refuse it when it is a symlink, not a directory,
/// owned by another user, or writable by anyone else (a planted socket would
/// receive this host's session).
pub(crate) fn private_dir(dir: &Path, parents: bool) -> Result<(), String> {
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(parents)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.file_type().is_symlink() || !m.is_dir() {
        return Err(format!(
            "{} is not a directory (a symlink?): refusing to keep ssh connections there",
            dir.display()
        ));
    }
    if m.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to us (uid {me}): refusing to keep ssh connections there",
            dir.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by others (mode {:o}): refusing to keep ssh connections there; `chmod 700` it",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The arguments (after the program) that run `command` on `t`.
pub(crate) fn ssh_argv(t: &Target, control: &Path, connect_timeout: Duration, command: &str) -> Vec<String> {
    let secs = connect_timeout.as_secs().max(1);
    let mut a: Vec<String> = vec!["-T".into()];
    for o in [
        "BatchMode=yes".to_string(),
        format!("ConnectTimeout={secs}"),
        "ForwardAgent=no".into(),
        "ForwardX11=no".into(),
        "ClearAllForwardings=yes".into(),
        "ControlMaster=auto".into(),
        format!("ControlPersist={CONTROL_PERSIST}"),
        format!("ControlPath={}", control.display()),
    ] {
        a.push("-o".into());
        a.push(o);
    }
    if let Some(p) = t.port {
        a.extend(["-p".into(), p.to_string()]);
    }
    if let Some(u) = &t.user {
        a.extend(["-l".into(), u.clone()]);
    }
    if let Some(k) = &t.key_file {
        a.extend(["-i".into(), k.display().to_string(), "-o".into(), "IdentitiesOnly=yes".into()]);
    }
    a.extend(t.ssh_args.iter().cloned());
    a.extend(["--".into(), t.address.clone(), command.into()]);
    a
}

/// `s` as one word for a POSIX shell: single-quoted, `'` written as `'\''`.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A remote command line: each word quoted.
pub(crate) fn command_line<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(addr: &str, args: &[&str]) -> Target {
        Target {
            name: "web01".into(),
            address: addr.into(),
            port: Some(2222),
            user: Some("deploy".into()),
            key_file: Some(PathBuf::from("/home/a/.ssh/fleet")),
            ssh_args: args.iter().map(|s| s.to_string()).collect(),
            become_root: true,
            root: None,
            vigil_path: None,
        }
    }

    #[test]
    fn the_command_line_is_batch_no_tty_no_forwarding_and_vigils_options_come_first() {
        let t = target("10.0.0.5", &["-o", "ForwardAgent=yes", "-J", "bastion-a"]);
        let a = ssh_argv(&t, Path::new("/var/lib/vigil/fleet/cm/0123456789abcdef"), Duration::from_secs(7), "true");
        let s = a.join(" ");
        assert!(s.starts_with(
            "-T -o BatchMode=yes -o ConnectTimeout=7 -o ForwardAgent=no -o ForwardX11=no -o ClearAllForwardings=yes \
             -o ControlMaster=auto -o ControlPersist=60s -o ControlPath=/var/lib/vigil/fleet/cm/0123456789abcdef \
             -p 2222 -l deploy -i /home/a/.ssh/fleet -o IdentitiesOnly=yes -o ForwardAgent=yes -J bastion-a -- 10.0.0.5 true"
        ), "{s}");
        // ssh keeps the first value of an option: ours beats the host's ForwardAgent=yes.
        let ours = a.iter().position(|x| x == "ForwardAgent=no").unwrap();
        let theirs = a.iter().position(|x| x == "ForwardAgent=yes").unwrap();
        assert!(ours < theirs);
        assert!(!a.iter().any(|x| x == "-t" || x == "-tt" || x.contains("StrictHostKeyChecking")), "{s}");
        // The address cannot be read as an option: `--` comes before it.
        let evil = target("-oProxyCommand=touch /tmp/pwned", &[]);
        let a = ssh_argv(&evil, Path::new("/x"), Duration::from_secs(7), "true");
        let dd = a.iter().position(|x| x == "--").unwrap();
        assert_eq!(a[dd + 1], "-oProxyCommand=touch /tmp/pwned");
    }

    #[test]
    fn two_hosts_at_one_address_behind_different_bastions_get_different_sockets() {
        let a = target("10.0.0.5", &["-J", "bastion-a.example.org"]);
        let b = target("10.0.0.5", &["-J", "bastion-b.example.org"]);
        let c = target("10.0.0.5", &["-o", "ProxyJump=bastion-b.example.org"]);
        let dir = Path::new("/var/lib/vigil/fleet/cm");
        let paths = [&a, &b, &c].map(|t| control_path(dir, "prod.ini", t));
        assert_ne!(paths[0], paths[1]);
        assert_ne!(paths[1], paths[2]);
        // Same everything: same socket, so the connection is reused within and across runs.
        assert_eq!(control_path(dir, "prod.ini", &a), paths[0]);
        // Every other argument counts too.
        let mut other = a.clone();
        other.port = Some(22);
        assert_ne!(control_path(dir, "prod.ini", &other), paths[0]);
        let mut other = a.clone();
        other.user = Some("root".into());
        assert_ne!(control_path(dir, "prod.ini", &other), paths[0]);
        let mut other = a.clone();
        other.key_file = None;
        assert_ne!(control_path(dir, "prod.ini", &other), paths[0]);
        assert_ne!(control_path(dir, "staging.ini", &a), paths[0]);
        assert_eq!(paths[0].file_name().unwrap().len(), 16);
    }

    #[test]
    fn host_args_that_undo_vigils_options_are_refused() {
        let ok = |a: &[&str]| check_host_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(ok(&["-J", "jump", "-o", "UserKnownHostsFile=/etc/fleet/kh", "-F", "/etc/fleet/ssh_config"]).is_ok());
        // A value that looks like a refused flag is a value, not a flag.
        assert!(ok(&["-l", "-A"]).is_ok());
        assert!(ok(&["-oProxyJump=a", "-4"]).is_ok());
        for bad in [&["-A"][..], &["-tt"], &["-4A"], &["-J", "j", "-X"], &["-Y"], &["-M"], &["--", "x"]] {
            let e = ok(bad).unwrap_err();
            assert!(e.contains("ansible_ssh_common_args"), "{e}");
        }
        assert!(ok(&["-A"]).unwrap_err().contains("forwards the SSH agent"));
    }

    #[test]
    fn long_state_dirs_fall_back_to_a_short_private_directory() {
        assert!(fits(Path::new("/var/lib/vigil/fleet/cm")));
        let long = PathBuf::from(format!("/home/{}/.local/state/vigil/fleet/cm", "a".repeat(60)));
        assert!(!fits(&long));
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("x".repeat(80));
        let got = control_dir(&deep).unwrap();
        assert!(fits(&got), "{}", got.display());
        assert!(!deep.join("fleet").exists());
        let got = control_dir(dir.path()).unwrap();
        assert_eq!(got, dir.path().join("fleet/cm"));
        let m = std::fs::metadata(&got).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
    }

    #[test]
    fn a_socket_directory_others_can_write_or_own_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("cm");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = private_dir(&shared, false).unwrap_err();
        assert!(e.contains("writable by others"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/tmp", &link).unwrap();
        assert!(private_dir(&link, false).unwrap_err().contains("not a directory"));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let theirs = dir.path().join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
            assert!(private_dir(&theirs, false).unwrap_err().contains("belongs to uid 65534"));
        }
    }

    #[test]
    fn quoting_survives_hostile_words() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(command_line(&["sudo", "-n", "/opt/v $(reboot)"]), "'sudo' '-n' '/opt/v $(reboot)'");
        // Checked by a real shell: every word comes back as it went in.
        let words = ["a b", "'", "$(touch /tmp/x)", "`id`", "\\", "\"", ";", "\n"];
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("printf '%s\\0' {}", command_line(&words))])
            .output()
            .unwrap();
        let back: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into())
            .collect();
        assert_eq!(back, words);
    }
}
