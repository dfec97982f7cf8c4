//! Which vigil answers on a host: its own copy of our version, else ours, pushed.
//!
//! Nothing is installed on a host but vigil itself, and only where root (or
//! the login user, for a review without `sudo`) alone can change it. One
//! probe, a fixed POSIX `sh` script whose inputs arrive as quoted positional
//! arguments, reports the host's architecture and user, whether the host's
//! vigil (`vigil_path`, else `vigil` on `PATH`) prints our `--version`, whether
//! our binary is already in the push directory, and which of `python3` and
//! `perl` the host has. When our binary is not there, the controller's
//! executable goes over the same SSH connection on stdin (no scp, no sftp) to
//! a temporary name of its own in that directory (the remote shell's pid: two
//! pushes at once, from two inventory entries that are one machine, never
//! share one), the host checks its SHA-256 with `sha256sum`, runs its
//! `--version`, renames it to `vigil-<sha256>` (atomic: a reader sees a whole
//! copy or none) and runs the renamed file's `--version` again; other versions
//! and temporary copies left there more than two days before are removed, so
//! upgrades do not pile up. The directory is `/var/lib/vigil/fleet/bin` as root
//! (through `sudo -n` with `ansible_become`), `~/.cache/vigil/fleet/bin` for a
//! login user without it; every directory on the way must belong to that user
//! and be writable by no one else, and the last must be 0700, or nothing is
//! pushed.
//!
//! When that directory is mounted `noexec` (the copy cannot run: exit 126),
//! the copy is removed and the host is reached through a memfd instead
//! ([`memfd_words`]): each request runs a fixed `python3` (else `perl`)
//! program, given as the ssh command and never built from anything the host
//! said, that reads exactly the binary's length from stdin into an anonymous
//! `memfd_create` file, checks its SHA-256, and executes it through
//! `/proc/self/fd/N` with the rest of stdin (the request) as its input. No file
//! is left on the host's disks. A host with neither interpreter is reported
//! `unsupported`, with why.

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
for i in python3 perl; do if command -v "$i" >/dev/null 2>&1; then echo "runner=$i"; break; fi; done
d=$dir; while [ ! -e "$d" ] && [ "$d" != / ]; do d=$(dirname -- "$d"); done
if command -v findmnt >/dev/null 2>&1; then
  case ",$(findmnt -n -o OPTIONS --target "$d" 2>/dev/null)," in *,noexec,*) echo "noexec=$dir";; esac
fi
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
if [ "$rc" = 126 ]; then rm -f -- "$tmp"; echo "noexec=$dir"; exit 0; fi
[ "$v" = "$want" ] || fail "the pushed binary does not run here (status $rc): $v"
mv -f -- "$tmp" "$dir/vigil-$sum" || fail "cannot rename $tmp"
v=$("$dir/vigil-$sum" --version 2>&1) || v=
[ "$v" = "$want" ] || fail "$dir/vigil-$sum does not run after the rename: $v"
find "$dir" -maxdepth 1 -type f \( -name 'vigil-*' -o -name '.vigil-*' \) ! -name "vigil-$sum" -mtime +1 -exec rm -f -- {} + 2>/dev/null
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
    /// The interpreter that can run vigil from a memfd (`python3` or `perl`), if any.
    pub runner: Option<String>,
    /// The push directory (or the nearest existing directory above it) is mounted `noexec`
    /// (`findmnt`; a host without it finds out when the push cannot run its copy).
    pub noexec: bool,
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
        runner: get("runner").filter(|r| r == "python3" || r == "perl"),
        noexec: get("noexec").is_some(),
    })
}

/// What to do after the probe (the memfd, when the directory is noexec, is a [`Decision::Use`]).
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
        return Ok(Decision::Use(RemoteVigil { path, pushed: false, installed: true, memfd: false }));
    }
    if let Some(path) = probe.cached {
        return Ok(Decision::Use(RemoteVigil { path, pushed: false, installed: false, memfd: false }));
    }
    if probe.noexec {
        return after_noexec(&probe.dir, probe.runner.as_deref()).map(Decision::Use);
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

/// The push's other answer (`noexec=DIR`): the copy could not run there and was removed.
pub(crate) fn parse_noexec(out: &str) -> Option<String> {
    out.lines().find_map(|l| l.strip_prefix("noexec=")).map(str::to_string)
}

/// After a push found `dir` noexec: vigil runs from a memfd, or the host is unsupported.
pub(crate) fn after_noexec(dir: &str, runner: Option<&str>) -> Result<RemoteVigil, Failure> {
    match runner {
        Some(r) => {
            Ok(RemoteVigil { path: format!("memfd (through {r})"), pushed: false, installed: false, memfd: true })
        }
        None => Err(failure(
            Reason::Unsupported,
            &format!(
                "unsupported: {dir} is mounted noexec and the host has no python3 or perl to run vigil from \
                 memory (memfd); nothing was left there"
            ),
        )),
    }
}

/// The memfd runner: `sh -c MEMFD vigil-memfd LEN SHA256 PYTHON PERL NR ARGS…`, the binary's
/// LEN bytes first on stdin. `python3` when the host has one with `os.memfd_create` (3.8 and
/// later), else `perl`, else a clear refusal (exit 125, `vigil-memfd: unsupported: …`).
const MEMFD: &str = r#"n=$1 sum=$2 py=$3 pl=$4 nr=$5; shift 5
if command -v python3 >/dev/null 2>&1 && python3 -c 'import os; os.memfd_create' >/dev/null 2>&1; then
  exec python3 -c "$py" "$n" "$sum" "$@"
fi
if command -v perl >/dev/null 2>&1; then exec perl -e "$pl" "$n" "$sum" "$nr" "$@"; fi
echo "vigil-memfd: unsupported: noexec and no python3/perl to run vigil from memory" >&2
exit 125
"#;

/// The python3 program: read LEN bytes of stdin (unbuffered: the rest is the request) into a
/// memfd (MFD_EXEC where the kernel knows it, for `vm.memfd_noexec=1`), check the SHA-256,
/// execute it. Exit 125 with one line on stderr when it cannot.
const MEMFD_PY: &str = r#"import os,sys,hashlib
def die(m):
    sys.stderr.write("vigil-memfd: "+m+"\n");sys.exit(125)
n=int(sys.argv[1]);want=sys.argv[2];args=sys.argv[3:]
try:
    try:fd=os.memfd_create("vigil",os.MFD_CLOEXEC|0x10)
    except OSError:fd=os.memfd_create("vigil",os.MFD_CLOEXEC)
except Exception as e:die("unsupported: cannot create a memfd here (%s)"%e)
h=hashlib.sha256();left=n
while left>0:
    b=os.read(0,min(left,1<<20))
    if not b:die("the binary ended after %d of %d bytes"%(n-left,n))
    left-=len(b);h.update(b);v=memoryview(b)
    while len(v):v=v[os.write(fd,v):]
if h.hexdigest()!=want:die("the copy has SHA-256 %s, not %s: the transfer was damaged, nothing was run"%(h.hexdigest(),want))
try:os.execv("/proc/self/fd/%d"%fd,["vigil"]+args)
except OSError as e:die("cannot execute vigil from memory: %s (is vm.memfd_noexec set?)"%e)
"#;

/// The perl program, for hosts without python3: `memfd_create` through `syscall` (its number,
/// NR, is the controller's architecture's, which the probe showed the host shares), the
/// SHA-256 by `sha256sum` reading the memfd through /proc.
const MEMFD_PL: &str = r#"use strict;
sub die2 { print STDERR "vigil-memfd: $_[0]\n"; exit 125 }
my ($n, $want, $nr, @args) = @ARGV;
$nr =~ /^[0-9]+$/ or die2("unsupported: no memfd_create system call known for this architecture");
my $name = "vigil";
my $fd = syscall($nr + 0, $name, 0);
$fd >= 0 or die2("unsupported: cannot create a memfd here ($!)");
open(my $m, ">&=", $fd) or die2("cannot open the memfd: $!");
binmode STDIN; binmode $m;
my $left = $n;
while ($left > 0) {
  my $r = sysread(STDIN, my $b, $left > 1048576 ? 1048576 : $left);
  defined $r && $r > 0 or die2("the binary ended after " . ($n - $left) . " of $n bytes");
  my $o = 0;
  while ($o < $r) { my $w = syswrite($m, $b, $r - $o, $o); defined $w or die2("cannot write the memfd: $!"); $o += $w }
  $left -= $r;
}
my $got = `sha256sum /proc/$$/fd/$fd`;
$got =~ s/ .*//s;
$got eq $want or die2("the copy has SHA-256 $got, not $want: the transfer was damaged, nothing was run");
{ no warnings; exec { "/proc/self/fd/$fd" } "vigil", @args; }
die2("cannot execute vigil from memory: $! (is vm.memfd_noexec set?)");
"#;

/// `memfd_create`'s system call number on the architecture this vigil is built for.
fn memfd_create_nr() -> Option<u32> {
    match std::env::consts::ARCH {
        "x86_64" => Some(319),
        "aarch64" | "riscv64" | "loongarch64" => Some(279),
        "x86" => Some(356),
        "arm" => Some(385),
        "powerpc64" | "powerpc" => Some(360),
        "s390x" => Some(350),
        _ => None,
    }
}

/// The remote words that run a binary of `len` bytes and SHA-256 `sha256` (sent first on
/// stdin) from a memfd, with `args` after it: every word fixed here or a number.
pub(crate) fn memfd_words(len: u64, sha256: &str) -> Vec<String> {
    let nr = memfd_create_nr().map(|n| n.to_string()).unwrap_or_default();
    ["sh", "-c", MEMFD, "vigil-memfd", &len.to_string(), sha256, MEMFD_PY, MEMFD_PL, &nr]
        .iter()
        .map(|s| s.to_string())
        .collect()
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
    fn a_noexec_home_is_reported_as_such_and_the_copy_removed() {
        vigil_testkit::require(&["root", "unshare", "setpriv"]);
        let home = home();
        let bin = fake_vigil("vigil 9.9.9");
        // The login user's home on a noexec mount, in a mount namespace of its own; what is
        // left in the push directory afterwards is listed on stdout (`left=NAME`).
        let wrap = format!(
            "mount -t tmpfs -o noexec,mode=0755,uid=65534,gid=65534 tmpfs \"$HOME\" || exit 9; \
             {} --reuid=65534 --regid=65534 --clear-groups /bin/sh -c \"$0\" vigil-test \"$@\"; rc=$?; \
             for f in \"$HOME\"/.cache/vigil/fleet/bin/* \"$HOME\"/.cache/vigil/fleet/bin/.[!.]*; do \
               [ -e \"$f\" ] && echo \"left=$f\"; done; exit $rc",
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
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(0), "{out} {err}");
        let dir = format!("{}/.cache/vigil/fleet/bin", home.path().display());
        assert_eq!(parse_noexec(&out), Some(dir), "{out}");
        assert_eq!(parse_pushed(&out), None);
        assert!(!out.contains("left="), "the copy that could not run was left: {out}");
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
            runner: Some("python3".into()),
            noexec: false,
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
        let f = decide(p.clone(), true, "x86_64").unwrap_err();
        assert_eq!(f.reason, Reason::Error);
        assert!(f.detail.contains("refusing to put vigil there"), "{}", f.detail);
        // A noexec directory: from a memfd, nothing pushed; without python3 or perl, unsupported.
        p.noexec = true;
        let Decision::Use(r) = decide(p.clone(), true, "x86_64").unwrap() else { panic!() };
        assert!(r.memfd && !r.pushed && r.path.contains("python3"), "{r:?}");
        p.runner = None;
        let f = decide(p, true, "x86_64").unwrap_err();
        assert_eq!(f.reason, Reason::Unsupported);
        assert!(f.detail.contains("noexec") && f.detail.contains("no python3 or perl"), "{}", f.detail);
    }

    /// Run the memfd runner with `binary` (`len` bytes and `sum` announced) then `rest` on stdin,
    /// `args` after it, PATH limited to `path`: (status, stdout, stderr).
    fn memfd_as(len: usize, binary: &[u8], sum: &str, rest: &[u8], path: &str, args: &[&str]) -> (i32, String, String) {
        let mut words = memfd_words(len as u64, sum);
        words.extend(args.iter().map(|a| a.to_string()));
        let mut c = Command::new("/bin/sh")
            .args(&words[1..])
            .env_clear()
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = binary.to_vec();
        input.extend_from_slice(rest);
        let mut stdin = c.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &input);
        });
        let o = c.wait_with_output().unwrap();
        writer.join().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
        )
    }

    fn memfd(binary: &[u8], sum: &str, rest: &[u8], path: &str, args: &[&str]) -> (i32, String, String) {
        memfd_as(binary.len(), binary, sum, rest, path, args)
    }

    /// A directory holding only links to `tools` (found on the test's PATH), for a PATH
    /// that has exactly those; `None` when one is missing here.
    fn path_with(tools: &[&str]) -> Option<tempfile::TempDir> {
        let d = tempfile::tempdir().unwrap();
        for t in tools {
            let found = vigil_tools::spawn::resolve(t)?;
            std::os::unix::fs::symlink(found, d.path().join(t)).unwrap();
        }
        Some(d)
    }

    #[test]
    fn the_memfd_runner_reads_exactly_the_binary_checks_it_and_runs_it_on_the_rest_of_stdin() {
        // The "binary" is cat: what it prints is the stdin left after exactly its own length.
        let cat = std::fs::read(vigil_tools::spawn::resolve("cat").unwrap()).unwrap();
        let sum = sha(&cat);
        let request = b"{\"kind\":\"review\"}\nthe feed follows\n";
        let mut ran = 0;
        for runner in ["python3", "perl"] {
            // PATH has this interpreter only (and sha256sum, which the perl runner uses).
            let Some(dir) = path_with(&[runner, "sha256sum"]) else { continue };
            let path = dir.path().to_str().unwrap();
            let (code, out, err) = memfd(&cat, &sum, request, path, &[]);
            assert_eq!((code, out.as_bytes()), (0, &request[..]), "{runner}: {err}");
            // Its arguments arrive after it: cat reads the file named, here a missing one.
            let (code, _, err) = memfd(&cat, &sum, b"", path, &["/nonexistent/x"]);
            assert!(code != 0 && err.contains("/nonexistent/x"), "{runner}: {code} {err}");
            // A damaged copy is never run.
            let (code, out, err) = memfd(&cat, &sha(b"other"), request, path, &[]);
            assert_eq!((code, out.as_str()), (125, ""), "{runner}: {err}");
            assert!(err.contains("the transfer was damaged, nothing was run"), "{runner}: {err}");
            // A short one neither.
            let (code, out, err) = memfd_as(cat.len(), &cat[..100], &sum, b"", path, &[]);
            assert_eq!((code, out.as_str()), (125, ""), "{runner}: {err}");
            assert!(err.contains(&format!("ended after 100 of {} bytes", cat.len())), "{runner}: {err}");
            ran += 1;
        }
        assert!(ran > 0, "neither python3 nor perl is installed here");
        // A python3 too old for memfd_create: perl runs it.
        if let Some(dir) = path_with(&["perl", "sha256sum"]) {
            let old = dir.path().join("python3");
            std::fs::write(&old, "#!/bin/sh\nexit 1\n").unwrap();
            std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
            let (code, out, err) = memfd(&cat, &sum, request, dir.path().to_str().unwrap(), &[]);
            assert_eq!((code, out.as_bytes()), (0, &request[..]), "{err}");
        }
        // Neither interpreter: a clear refusal.
        let empty = tempfile::tempdir().unwrap();
        let (code, _, err) = memfd(&cat, &sum, request, empty.path().to_str().unwrap(), &[]);
        assert_eq!(code, 125);
        assert!(err.contains("unsupported: noexec and no python3/perl"), "{err}");
    }

    #[test]
    fn nonsense_from_the_probe_is_an_error() {
        let e = parse_probe("Welcome to web01!\n").unwrap_err();
        assert_eq!(e.reason, Reason::Error);
        assert!(e.detail.contains("Welcome to web01"), "{}", e.detail);
    }
}
