//! The site owner racing vigil: a process running as the tenant that keeps
//! swapping files and directories in its own tree for symlinks to root-owned
//! targets, and replaces every `.vigil-` entry vigil makes beside them with a
//! link to a root-owned directory. Used by the tests that show vigil's copies,
//! backups and swaps hold under that attack.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SCRIPT: &str = r#"
import os, sys
secret, vdir, staging, log = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
flips = [(p, os.path.isdir(p)) for p in sys.argv[5].split('\n') if p]
hunts = [h for h in sys.argv[6].split('\n') if h]
n = 0
while True:
    n += 1
    for p, isdir in flips:
        try:
            if isdir:
                if os.path.islink(p):
                    os.unlink(p); os.rename(p + '.away', p)
                else:
                    os.rename(p, p + '.away'); os.symlink(vdir, p)
            else:
                t = p + '.racetmp'
                if os.path.islink(p):
                    with open(t, 'w') as f: f.write('tenant data\n')
                else:
                    os.symlink(secret, t)
                os.rename(t, p)
        except OSError:
            pass
    if staging != '-' and n % 20 == 0:
        # A staging copy's path is on the owner's own PHP server's command line.
        for pid in os.listdir('/proc'):
            try:
                for a in open('/proc/%s/cmdline' % pid, 'rb').read().decode(errors='replace').split('\0'):
                    if a.startswith(staging) and a.endswith('/site'):
                        h = a + '/wp-content/plugins'
                        if h not in hunts:
                            hunts.append(h)
            except OSError:
                pass
    for h in hunts:
        try:
            for name in os.listdir(h):
                if '.vigil-' in name and 'stolen' not in name:
                    p = os.path.join(h, name)
                    if not os.path.islink(p):
                        os.rename(p, p + '.stolen%d' % n)
                        os.symlink(vdir, p)
                        with open(log, 'a') as f: f.write('stole ' + p + '\n')
        except OSError:
            pass
"#;

/// What the racer attacks.
pub struct Attack<'a> {
    /// The tenant's uid and gid (the racer runs as them, with no other groups).
    pub uid: u32,
    pub gid: u32,
    /// The root-owned file that file links point at.
    pub secret: &'a Path,
    /// The root-owned directory that directory links point at.
    pub victim_dir: &'a Path,
    /// Paths that alternate between what they are and a link.
    pub flip: &'a [PathBuf],
    /// Directories in which every `.vigil-` entry is replaced by a link.
    pub hunt: &'a [PathBuf],
    /// Also hunt in the staging copies under this directory (found on PHP servers' command lines).
    pub staging: Option<&'a Path>,
    /// Where the racer records what it replaced (a file the tenant may write).
    pub log: &'a Path,
}

/// A running racer, killed on drop.
pub struct Racer {
    child: Child,
    log: PathBuf,
}

/// Start the racer and let it get going.
pub fn start(a: &Attack) -> Racer {
    let join = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n");
    let staging = a.staging.map(|p| p.display().to_string()).unwrap_or_else(|| "-".into());
    std::fs::write(a.log, "").unwrap();
    std::os::unix::fs::chown(a.log, Some(a.uid), Some(a.gid)).unwrap();
    let child = Command::new("setpriv")
        .args([
            &format!("--reuid={}", a.uid),
            &format!("--regid={}", a.gid),
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(SCRIPT)
        .arg(a.secret)
        .arg(a.victim_dir)
        .arg(staging)
        .arg(a.log)
        .arg(join(a.flip))
        .arg(join(a.hunt))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut r = Racer { child, log: a.log.to_path_buf() };
    assert!(r.child.try_wait().unwrap().is_none(), "the racer did not start");
    r
}

impl Racer {
    /// Stop it; returns what it replaced (`stole PATH` lines).
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
