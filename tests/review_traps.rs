//! The trap root: a copy of fixtures/hosts/web1 seeded with everything a site
//! owner can plant where vigil reads — FIFOs as `~/.ssh/authorized_keys`, a
//! plugin's main file, `wp-includes/version.php`, a theme's `style.css` and
//! `wp-config.php`; a symlink to `/dev/zero` as `wp-config.php` (and a real
//! `/dev/zero` device inside the root for it to land on); a 4 GB sparse file
//! where sshd's config is read; names full of escape sequences; an absolute
//! symlink that means a file existing only inside the root. `vigil review
//! --offline` must finish quickly, write its report, name every trap (escaped),
//! and read the in-root symlink from inside the root.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

mod support;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn mkfifo(p: &Path) {
    if p.exists() {
        std::fs::remove_file(p).unwrap();
    }
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", p.display());
}

/// `ROOT/dev/zero` as the real character device 1:5 (needs root).
fn mknod_zero(root: &Path) -> bool {
    std::fs::create_dir_all(root.join("dev")).unwrap();
    let c = CString::new(root.join("dev/zero").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; makedev is a pure computation.
    unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) == 0 }
}

const ESC_PLUGIN: &str = "x\x1b[2J\x1b]0;owned\x07";

/// Build the trap root in `root` from a copy of web1; returns whether `ROOT/dev/zero` is a real device.
fn build(root: &Path) -> bool {
    let web1 = vigil_testkit::fixture_hosts().join("web1");
    let st = Command::new("cp").arg("-a").arg(format!("{}/.", web1.display())).arg(root).status().unwrap();
    assert!(st.success());
    let shop = root.join("var/www/shop");
    // FIFOs where every tool reads.
    mkfifo(&root.join("home/alice/.ssh/authorized_keys"));
    mkfifo(&shop.join("wp-content/plugins/akismet/akismet.php"));
    mkfifo(&shop.join("wp-includes/version.php"));
    mkfifo(&shop.join("wp-content/themes/storefront/style.css"));
    mkfifo(&root.join("home/client2/public_html/wp-config.php"));
    // A plugin whose name and main file are terminal escape sequences, the file a FIFO too.
    mkfifo(&shop.join(format!("wp-content/plugins/{ESC_PLUGIN}/{ESC_PLUGIN}.php")));
    // A second site whose wp-config.php is a symlink to /dev/zero.
    let zero = root.join("var/www/zero");
    std::fs::create_dir_all(zero.join("wp-includes")).unwrap();
    std::fs::create_dir_all(zero.join("wp-content/plugins")).unwrap();
    std::fs::write(zero.join("wp-includes/version.php"), "<?php\n$wp_version = '6.4.1';\n").unwrap();
    std::fs::write(zero.join("wp-load.php"), "<?php\n").unwrap();
    symlink("/dev/zero", zero.join("wp-config.php")).unwrap();
    let device = mknod_zero(root);
    // 4 GB sparse where sshd's config is read (sshd_config includes sshd_config.d/*.conf).
    let huge = std::fs::File::create(root.join("etc/ssh/sshd_config.d/99-huge.conf")).unwrap();
    huge.set_len(4 << 30).unwrap();
    // An absolute symlink to a file only the image has: its content must be what is reviewed.
    let real = root.join("etc/ssh/sshd_config.image-only");
    std::fs::rename(root.join("etc/ssh/sshd_config"), &real).unwrap();
    let text = std::fs::read_to_string(&real).unwrap().replace("Port 22\n", "Port 2299\n");
    std::fs::write(&real, text).unwrap();
    symlink("/etc/ssh/sshd_config.image-only", root.join("etc/ssh/sshd_config")).unwrap();
    device
}

#[test]
#[cfg_attr(vigil_missing = "root", ignore = "needs root (mknod of the trap root's /dev/zero)")]
fn a_review_of_the_trap_root_finishes_and_names_every_trap() {
    vigil_testkit::require(&["root"]);
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let state = t.path().join("state");
    std::fs::create_dir_all(&root).unwrap();
    let device = build(&root);
    assert!(device, "mknod of ROOT/dev/zero failed");
    assert!(!Path::new("/etc/ssh/sshd_config.image-only").exists(), "the file must exist only inside the root");

    let out = t.path().join("review.json");
    let started = Instant::now();
    let r = support::run(
        support::vigil_cmd_at(
            &state,
            None,
            &root,
            &["review", "--offline", "--format", "json", "--out", out.to_str().unwrap()],
        ),
        "",
    );
    let took = started.elapsed();
    eprintln!("trap-root review took {} ms", took.as_millis());
    assert!(took < Duration::from_secs(30), "the review took {took:?}");
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let text = std::fs::read_to_string(&out).expect("the report was written");
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "a raw control character reached the report");
    let review: serde_json::Value = serde_json::from_str(&text).unwrap();
    let notes: Vec<String> = review["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "hardening.file-not-read")
        .map(|f| f["title"].as_str().unwrap().to_string())
        .collect();
    let named = |needle: &str| notes.iter().any(|n| n.contains(needle));
    for trap in [
        "/home/alice/.ssh/authorized_keys: not read: it is a FIFO",
        "/var/www/shop/wp-content/plugins/akismet/akismet.php: not read: it is a FIFO",
        "/var/www/shop/wp-includes/version.php: not read: it is a FIFO",
        "/var/www/shop/wp-content/themes/storefront/style.css: not read: it is a FIFO",
        "/home/client2/public_html/wp-config.php: not read: it is a FIFO",
        "/etc/ssh/sshd_config.d/99-huge.conf: not read: 4 GiB is over the 16 MiB limit",
        r"/var/www/shop/wp-content/plugins/x\x1b[2J\x1b]0;owned\x07/x\x1b[2J\x1b]0;owned\x07.php: not read: it is a FIFO",
    ] {
        assert!(named(trap), "trap not named: {trap}\nnotes: {notes:#?}");
    }
    assert!(named("/var/www/zero/wp-config.php: not read: it is a character device"), "{notes:#?}");
    // The absolute symlink was read inside the root: the image's port, not this machine's file.
    let ssh = review["facts"]["check_ssh"].to_string();
    assert!(ssh.contains("2299"), "sshd_config was not read through the in-root symlink: {ssh}");
}

/// The lock file of the (only) host in `state`.
fn lock_file(state: &Path) -> std::path::PathBuf {
    let hosts: Vec<_> = std::fs::read_dir(state.join("hosts")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    hosts[0].join("lock")
}

fn web1() -> std::path::PathBuf {
    vigil_testkit::fixture_hosts().join("web1")
}

fn spawn_review(state: &Path, root: &Path, out: &Path) -> std::process::Child {
    support::vigil_cmd_at(
        state,
        None,
        root,
        &["review", "--offline", "--format", "json", "--out", out.to_str().unwrap()],
    )
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap()
}

fn wait_exit(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn runs_on_one_host_never_interleave() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let out = t.path().join("r.json");
    let (code, err) = wait_exit(spawn_review(&state, &web1(), &out));
    assert!(code == 0 || code == 1, "{err}");
    // Another run holds the host's lock: the review waits for it, then runs.
    let lock = std::fs::OpenOptions::new().read(true).write(true).open(lock_file(&state)).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    std::fs::remove_file(&out).unwrap();
    let mut child = spawn_review(&state, &web1(), &out);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the review ran while another held the host");
    assert!(!out.exists(), "a report was written while another run held the host");
    drop(lock);
    let (code, err) = wait_exit(child);
    assert!(code == 0 || code == 1, "{err}");
    assert!(err.contains("waiting for another vigil run"), "{err}");
    assert!(out.exists());
}

#[test]
fn sigterm_stops_a_review_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    build(&root);
    let out = t.path().join("r.json");
    // First run creates the host's state directory (and a history to compare with).
    let (code, err) = wait_exit(spawn_review(&state, &root, &out));
    assert!(code == 0 || code == 1, "{err}");
    std::fs::remove_file(&out).unwrap();
    let child = spawn_review(&state, &root, &out);
    let pid = child.id();
    // The lock holds the pid once the run has started reviewing: stop it then.
    let lock = lock_file(&state);
    let until = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != pid.to_string() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling the child this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let started = Instant::now();
    let (code, err) = wait_exit(child);
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(!out.exists(), "no half report");
    let leftovers: Vec<_> = walk(&state).into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
