//! Which vigil answers on a host: its own copy of our version, else ours, pushed.
//!
//! Nothing is installed on a host but vigil itself, and only where root (or
//! the login user, for a review without `sudo`) alone can change it. One
//! probe, a fixed POSIX `sh` script whose inputs arrive as quoted positional
//! arguments, reports the host's architecture and user, whether the host's
//! vigil (`vigil_path`, else `vigil` on `PATH`) prints our `--version`, and
//! whether our binary is already in the push directory. When it is not, the
//! controller's executable goes over the same SSH connection on stdin (no scp,
//! no sftp) to a temporary name in that directory, the host checks its SHA-256
//! with `sha256sum`, runs its `--version` (which fails on a `noexec` mount,
//! reported as such), and renames it to `vigil-<sha256>`; other versions pushed
//! there more than two days before are removed, so upgrades do not pile up. The directory is
//! `/var/lib/vigil/fleet/bin` as root (through `sudo -n` with
//! `ansible_become`), `~/.cache/vigil/fleet/bin` for a login user without it;
//! every directory on the way must belong to that user and be writable by no
//! one else, and the last must be 0700, or nothing is pushed.

use crate::fleet::outcome::{Failure, Reason};

use super::RemoteVigil;
use super::classify::failure;

/// Where binaries go and how a directory is judged, shared by both scripts.
/// `$me` is the uid; `private DIR` prints why DIR is unfit and fails.
const PRELUDE: &str = r#"set -u
me=$(id -u)
if [ "$me" = 0 ]; then base=/var/lib/vigil; else base="${HOME:-/nonexistent}/.cache/vigil"; fi
dir="$base/fleet/bin"
private() {
  if [ -L "$1" ] || [ ! -d "$1" ]; then echo "$1 is not a directory"; return 1; fi
  o=$(stat -c '%u %a' -- "$1") || { echo "cannot stat $1"; return 1; }
  case "$o" in "$me "*) ;; *) echo "$1 belongs to another user (owner and mode: $o)"; return 1;; esac
  case "${o#* }" in *[2367]? | *[2367]) echo "$1 is writable by other users (mode ${o#* })"; return 1;; esac
  if [ "$1" = "$dir" ] && [ "${o#* }" != 700 ]; then echo "$1 has mode ${o#* }, not 700"; return 1; fi
}
"#;

/// The probe: `sh -c PROBE vigil-probe SHA256 VIGIL_PATH VERSION`.
const PROBE: &str = r#"sum=$1 path=$2 want=$3
echo "arch=$(uname -m)"
echo "uid=$me"
echo "dir=$dir"
for d in "$base" "$base/fleet" "$dir"; do
  [ -e "$d" ] || [ -L "$d" ] || continue
  why=$(private "$d") || { echo "unfit=$why"; break; }
done
if [ -n "$path" ]; then cand=$path; else cand=$(command -v vigil 2>/dev/null) || cand=; fi
if [ -n "$cand" ] && [ -f "$cand" ] && [ -x "$cand" ]; then
  v=$("$cand" --version 2>/dev/null) || v=
  [ "$v" = "$want" ] && echo "installed=$cand"
fi
bin="$dir/vigil-$sum"
if [ -f "$bin" ] && [ ! -L "$bin" ] && [ "$(stat -c '%u %a' -- "$bin")" = "$me 700" ]; then echo "cached=$bin"; fi
exit 0
"#;

/// The push: `sh -c PUSH vigil-push SHA256 VERSION`, the binary on stdin.
const PUSH: &str = r#"sum=$1 want=$2
umask 077
fail() { echo "vigil-push: $*" >&2; rm -f -- "${tmp:-/nonexistent}"; exit 3; }
mkdir -p -- "$dir" 2>/dev/null || fail "cannot create $dir"
for d in "$base" "$base/fleet" "$dir"; do why=$(private "$d") || fail "$why: refusing to put vigil there"; done
tmp="$dir/.vigil-$sum.$$"
rm -f -- "$tmp"
cat > "$tmp" || fail "cannot write $tmp (disk full?)"
got=$(sha256sum -- "$tmp") || fail "cannot hash $tmp (is sha256sum installed?)"
got=${got%% *}
[ "$got" = "$sum" ] || fail "the copy has SHA-256 $got, not $sum: the transfer was damaged, nothing installed"
chmod 0700 -- "$tmp" || fail "cannot chmod $tmp"
v=$("$tmp" --version 2>&1); rc=$?
[ "$rc" = 126 ] && fail "cannot execute $tmp: the filesystem of $dir is mounted noexec ($v)"
[ "$v" = "$want" ] || fail "the pushed binary does not run here (status $rc): $v"
mv -f -- "$tmp" "$dir/vigil-$sum" || fail "cannot rename $tmp"
find "$dir" -maxdepth 1 -type f -name 'vigil-*' ! -name "vigil-$sum" -mtime +1 -exec rm -f -- {} + 2>/dev/null
echo "pushed=$dir/vigil-$sum"
"#;

/// The probe script.
pub(crate) fn probe_script() -> String {
    format!("{PRELUDE}{PROBE}")
}

/// The push script.
pub(crate) fn push_script() -> String {
    format!("{PRELUDE}{PUSH}")
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    /// `uname -m`.
    pub arch: String,
    /// The uid the probe ran as (0 with `sudo -n`).
    pub uid: u32,
    /// The push directory.
    pub dir: String,
    /// Why the push directory cannot be used.
    pub unfit: Option<String>,
    /// The host's own vigil, when it prints our version.
    pub installed: Option<String>,
    /// Our binary, already pushed.
    pub cached: Option<String>,
}

/// Read the probe's `key=value` lines.
pub(crate) fn parse_probe(out: &str) -> Result<Probe, Failure> {
    let get =
        |k: &str| out.lines().find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('='))).map(str::to_string);
    let bad = || failure(Reason::Error, &format!("the host answered the probe with something unexpected: {out:.200}"));
    Ok(Probe {
        arch: get("arch").ok_or_else(bad)?,
        uid: get("uid").and_then(|u| u.parse().ok()).ok_or_else(bad)?,
        dir: get("dir").ok_or_else(bad)?,
        unfit: get("unfit"),
        installed: get("installed"),
        cached: get("cached"),
    })
}

/// What to do after the probe.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// This vigil answers (the host's own, or ours already pushed).
    Use(RemoteVigil),
    /// Ours must be pushed.
    Push,
}

/// Judge the probe of a host reached as root (`become_root`: it must have run as root)
/// by a controller built for `ours` (`std::env::consts::ARCH`).
pub(crate) fn decide(probe: Probe, become_root: bool, ours: &str) -> Result<Decision, Failure> {
    if rust_arch(&probe.arch) != ours {
        return Err(failure(
            Reason::Unsupported,
            &format!("the host is {}, this vigil is built for {ours}: nothing was attempted", probe.arch),
        ));
    }
    if become_root && probe.uid != 0 {
        return Err(failure(Reason::NoSudo, &format!("`sudo -n` ran the probe as uid {}, not root", probe.uid)));
    }
    if let Some(path) = probe.installed {
        return Ok(Decision::Use(RemoteVigil { path, pushed: false, installed: true }));
    }
    if let Some(path) = probe.cached {
        return Ok(Decision::Use(RemoteVigil { path, pushed: false, installed: false }));
    }
    if let Some(why) = probe.unfit {
        return Err(failure(Reason::Error, &format!("{why}: refusing to put vigil there")));
    }
    Ok(Decision::Push)
}

/// `uname -m` in Rust's words (`std::env::consts::ARCH`).
pub(crate) fn rust_arch(uname: &str) -> &str {
    match uname {
        "amd64" => "x86_64",
        "arm64" | "armv8l" | "aarch64_be" => "aarch64",
        "i386" | "i486" | "i586" | "i686" => "x86",
        u if u.starts_with("armv") => "arm",
        u => u,
    }
}

/// The push's result line (`pushed=PATH`).
pub(crate) fn parse_pushed(out: &str) -> Option<String> {
    out.lines().find_map(|l| l.strip_prefix("pushed=")).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    /// Run a script as ssh would (`sh -c SCRIPT NAME ARGS`), as a login user who is not
    /// root (root's directory is /var/lib/vigil, covered over real ssh in tests/fleet_ssh.rs):
    /// as root the script runs as `nobody` through setpriv, with HOME=home.
    fn sh(script: &str, home: &std::path::Path, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let mut c = if root {
            std::os::unix::fs::chown(home, Some(65534), Some(65534)).unwrap();
            let mut c = Command::new(vigil_tools::spawn::resolve("setpriv").unwrap());
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh"]);
            c
        } else {
            Command::new("/bin/sh")
        };
        let mut c = c
            .arg("-c")
            .arg(script)
            .arg("vigil-test")
            .args(args)
            .env_clear()
            .env("PATH", vigil_tools::spawn::CHILD_PATH)
            .env("HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), stdin).unwrap();
        let o = c.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
        )
    }

    /// A tiny "vigil": prints a version.
    fn fake_vigil(version: &str) -> Vec<u8> {
        format!("#!/bin/sh\necho '{version}'\n").into_bytes()
    }

    fn sha(b: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    }

    /// A home directory the script's user owns, its parent reachable.
    fn home() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    /// As root, hand `home/.cache/vigil/fleet/bin` and its parents to the login user (`nobody`, see `sh`).
    fn give_to_login_user(home: &std::path::Path) {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            for d in [".cache", ".cache/vigil", ".cache/vigil/fleet", ".cache/vigil/fleet/bin"] {
                std::os::unix::fs::chown(home.join(d), Some(65534), Some(65534)).unwrap();
            }
        }
    }

    #[test]
    fn a_push_lands_verified_private_and_is_found_by_the_next_probe() {
        let home = home();
        let home = home.path();
        let bin = fake_vigil("vigil 9.9.9");
        let sum = sha(&bin);
        let (code, out, _) = sh(&probe_script(), home, &[&sum, "", "vigil 9.9.9"], b"");
        assert_eq!(code, 0);
        let p = parse_probe(&out).unwrap();
        assert_eq!((p.cached, p.unfit), (None, None), "{out}");
        assert_eq!(p.dir, format!("{}/.cache/vigil/fleet/bin", home.display()));
        let (code, out, err) = sh(&push_script(), home, &[&sum, "vigil 9.9.9"], &bin);
        assert_eq!(code, 0, "{err}");
        let path = parse_pushed(&out).unwrap();
        assert_eq!(path, format!("{}/vigil-{sum}", p.dir));
        for d in [path.as_str(), &p.dir] {
            assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700, "{d}");
        }
        let (_, out, _) = sh(&probe_script(), home, &[&sum, "", "vigil 9.9.9"], b"");
        assert_eq!(parse_probe(&out).unwrap().cached, Some(path));
    }

    #[test]
    fn a_push_removes_versions_pushed_days_ago_and_keeps_recent_ones() {
        let home = home();
        let dir = home.path().join(".cache/vigil/fleet/bin");
        std::fs::create_dir_all(&dir).unwrap();
        let (old, recent) = (dir.join("vigil-0000"), dir.join("vigil-1111"));
        for f in [&old, &recent] {
            std::fs::write(f, b"x").unwrap();
        }
        let three_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(three_days_ago).unwrap();
        give_to_login_user(home.path());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let bin = fake_vigil("vigil 9.9.9");
        let (code, _, err) = sh(&push_script(), home.path(), &[&sha(&bin), "vigil 9.9.9"], &bin);
        assert_eq!(code, 0, "{err}");
        assert!(!old.exists(), "a version pushed three days ago is left");
        assert!(recent.exists(), "a version pushed today was removed (another controller may be using it)");
        assert!(dir.join(format!("vigil-{}", sha(&bin))).exists());
    }

    #[test]
    fn a_damaged_transfer_is_not_installed() {
        let home = home();
        let bin = fake_vigil("vigil 9.9.9");
        let (code, _, err) = sh(&push_script(), home.path(), &[&sha(b"something else"), "vigil 9.9.9"], &bin);
        assert_eq!(code, 3);
        assert!(err.contains("the transfer was damaged"), "{err}");
        let left: Vec<_> = std::fs::read_dir(home.path().join(".cache/vigil/fleet/bin")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_push_directory_others_can_write_is_refused() {
        let home = home();
        let dir = home.path().join(".cache/vigil/fleet/bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        // The login user owns its tree; only the mode is wrong.
        give_to_login_user(home.path());
        let bin = fake_vigil("vigil 9.9.9");
        let (code, _, err) = sh(&push_script(), home.path(), &[&sha(&bin), "vigil 9.9.9"], &bin);
        assert_eq!(code, 3);
        assert!(err.contains("writable by other users") && err.contains("refusing"), "{err}");
        let (_, out, _) = sh(&probe_script(), home.path(), &[&sha(&bin), "", "vigil 9.9.9"], b"");
        assert!(parse_probe(&out).unwrap().unfit.unwrap().contains("writable by other users"), "{out}");
    }

    #[test]
    #[cfg_attr(
        any(vigil_missing = "root", vigil_missing = "unshare", vigil_missing = "setpriv"),
        ignore = "needs root, unshare, setpriv (util-linux)"
    )]
    fn a_noexec_home_is_reported_as_such() {
        vigil_testkit::require(&["root", "unshare", "setpriv"]);
        let home = home();
        let bin = fake_vigil("vigil 9.9.9");
        // The login user's home on a noexec mount, in a mount namespace of its own.
        let wrap = format!(
            "mount -t tmpfs -o noexec,mode=0755,uid=65534,gid=65534 tmpfs \"$HOME\" && \
             exec {} --reuid=65534 --regid=65534 --clear-groups /bin/sh -c \"$0\" vigil-test \"$@\"",
            vigil_tools::spawn::resolve("setpriv").unwrap().display()
        );
        let mut c = Command::new(vigil_tools::spawn::resolve("unshare").unwrap())
            .args(["-m", "/bin/sh", "-c", &wrap, &push_script(), &sha(&bin), "vigil 9.9.9"])
            .env_clear()
            .env("PATH", vigil_tools::spawn::CHILD_PATH)
            .env("HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), &bin).unwrap();
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.contains("is mounted noexec"), "{err}");
        assert_eq!(parse_pushed(&String::from_utf8_lossy(&o.stdout)), None);
    }

    #[test]
    fn a_host_vigil_of_our_version_is_used_and_another_is_not() {
        let dir = home();
        let same = dir.path().join("same");
        let other = dir.path().join("other's vigil");
        for (p, v) in [(&same, "vigil 9.9.9"), (&other, "vigil 0.0.1")] {
            std::fs::write(p, fake_vigil(v)).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let same = same.to_str().unwrap();
        let (_, out, _) = sh(&probe_script(), dir.path(), &["00", same, "vigil 9.9.9"], b"");
        assert_eq!(parse_probe(&out).unwrap().installed.as_deref(), Some(same));
        let (_, out, _) = sh(&probe_script(), dir.path(), &["00", other.to_str().unwrap(), "vigil 9.9.9"], b"");
        assert_eq!(parse_probe(&out).unwrap().installed, None, "{out}");
    }

    #[test]
    fn architectures_are_compared_in_one_vocabulary() {
        assert_eq!(rust_arch("x86_64"), "x86_64");
        assert_eq!(rust_arch("aarch64"), "aarch64");
        assert_eq!(rust_arch("arm64"), "aarch64");
        assert_eq!(rust_arch("armv7l"), "arm");
        assert_eq!(rust_arch("i686"), "x86");
        assert_eq!(rust_arch("riscv64"), "riscv64");
    }

    #[test]
    fn the_probe_decides_unsupported_no_sudo_use_or_push() {
        let probe = |arch: &str, uid: u32| Probe {
            arch: arch.into(),
            uid,
            dir: "/var/lib/vigil/fleet/bin".into(),
            unfit: None,
            installed: None,
            cached: None,
        };
        // Another architecture: nothing is attempted, whatever else the host has.
        let mut p = probe("aarch64", 0);
        p.installed = Some("/usr/local/bin/vigil".into());
        let f = decide(p, false, "x86_64").unwrap_err();
        assert_eq!(f.reason, Reason::Unsupported);
        assert!(f.detail.contains("the host is aarch64") && f.detail.contains("x86_64"), "{}", f.detail);
        assert_eq!(decide(probe("arm64", 0), false, "aarch64").unwrap(), Decision::Push);
        // sudo that did not make us root.
        assert_eq!(decide(probe("x86_64", 1000), true, "x86_64").unwrap_err().reason, Reason::NoSudo);
        // The host's own vigil of our version first, then ours already there, then a push.
        let mut p = probe("x86_64", 0);
        p.installed = Some("/usr/local/bin/vigil".into());
        p.cached = Some("/var/lib/vigil/fleet/bin/vigil-ab".into());
        let Decision::Use(r) = decide(p.clone(), true, "x86_64").unwrap() else { panic!() };
        assert_eq!((r.path.as_str(), r.installed), ("/usr/local/bin/vigil", true));
        p.installed = None;
        let Decision::Use(r) = decide(p.clone(), true, "x86_64").unwrap() else { panic!() };
        assert_eq!((r.path.as_str(), r.installed, r.pushed), ("/var/lib/vigil/fleet/bin/vigil-ab", false, false));
        p.cached = None;
        assert_eq!(decide(p.clone(), true, "x86_64").unwrap(), Decision::Push);
        // A directory unfit for it: refused, not pushed.
        p.unfit = Some("/var/lib/vigil/fleet/bin belongs to another user (owner and mode: 1000 700)".into());
        let f = decide(p, true, "x86_64").unwrap_err();
        assert_eq!(f.reason, Reason::Error);
        assert!(f.detail.contains("refusing to put vigil there"), "{}", f.detail);
    }

    #[test]
    fn nonsense_from_the_probe_is_an_error() {
        let e = parse_probe("Welcome to web01!\n").unwrap_err();
        assert_eq!(e.reason, Reason::Error);
        assert!(e.detail.contains("Welcome to web01"), "{}", e.detail);
    }
}
