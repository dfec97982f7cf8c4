//! A tenant directory on a FUSE mount (here `fuse-overlayfs`, a real FUSE server):
//! the reader skips its files with a note instead of asking a program the tenant
//! may run, while the same file outside tenant directories is read. Needs root
//! and `fuse-overlayfs`: missing, the test is listed as ignored with its reason,
//! unless `VIGIL_SYSTEM_TESTS=1` (CI), where it fails.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests: a failed unwrap is a failed test")]

use std::process::Command;

use vigil_tools::{Host, HostError};

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg(&self.0).status();
    }
}

#[test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "fuse-overlayfs", vigil_missing = "/dev/fuse"),
    ignore = "needs root, fuse-overlayfs, /dev/fuse (.ci/packages/reader.txt)"
)]
fn files_on_a_tenants_fuse_mount_are_skipped_with_a_note() {
    vigil_testkit::require(&["root", "fuse-overlayfs", "/dev/fuse"]);
    let t = tempfile::tempdir().unwrap();
    let (lower, upper, work) = (t.path().join("l"), t.path().join("u"), t.path().join("w"));
    let root = t.path().join("root");
    let home = root.join("home/eve");
    for d in [&lower, &upper, &work, &home, &root.join("etc")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(lower.join("authorized_keys"), "ssh-ed25519 AAAA eve\n").unwrap();
    let st = Command::new("fuse-overlayfs")
        .arg("-o")
        .arg(format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display()))
        .arg(&home)
        .status()
        .unwrap();
    assert!(st.success(), "fuse-overlayfs did not mount");
    let _m = Mount(home.clone());
    assert_eq!(std::fs::read_to_string(home.join("authorized_keys")).unwrap(), "ssh-ed25519 AAAA eve\n");

    let h = Host::at(&root);
    let e = h.read_to_string("/home/eve/authorized_keys").unwrap_err();
    assert!(matches!(e, HostError::Foreign { .. }), "{e}");
    assert_eq!(
        h.skipped(),
        vec![
            "/home/eve/authorized_keys: skipped: it is on a FUSE file system, whose answers come from a program a tenant may run"
        ]
    );
    // Listing is still possible (the name is evidence); only reading is refused.
    assert_eq!(h.read_dir("/home/eve").unwrap(), vec!["authorized_keys"]);
}
