//! The site owner attacks vigil's work in their tree, for real: a throwaway user (useradd)
//! owns a site, and a process running as that user (setpriv) swaps files and directories
//! for symlinks to a root-owned file and a root-owned directory outside the site, in a
//! tight loop, while root copies, archives, unpacks, chowns, renames and restores in the
//! tree. Afterwards the root-owned targets must be exactly as they were (content, owner,
//! mode, directory contents) and every symlink must have stayed a symlink. Deterministic
//! tests plant the links before the operation. System tests: root, useradd, setpriv and
//! python3 are needed; with `VIGIL_SYSTEM_TESTS=1` their absence fails the test.
#![expect(clippy::disallowed_methods, reason = "tests read back files they wrote in their own temporary directories")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::UpdateKind;
use super::files::{self, Unit};
use super::stage::build_units;
use super::tree::Dir;
use vigil_testkit::racer::{self, Racer};
use vigil_testkit::sh;

const SECRET: &str = "root:$6$vigil-test-shadow-hash:20000:0:99999:7:::\n";

static N: AtomicU32 = AtomicU32::new(0);

/// A throwaway site user with a site tree, and root-owned targets outside it.
struct Tenant {
    name: String,
    uid: u32,
    gid: u32,
    base: PathBuf,
}

impl Tenant {
    /// A new tenant; the test needs root, `useradd`, `userdel`, `setpriv` and `python3`.
    fn new() -> Tenant {
        vigil_testkit::require(&["root", "useradd", "userdel", "setpriv", "python3"]);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let name = format!("vgtt{}x{n}", std::process::id() % 100_000);
        // Other tests on the machine may hold the passwd lock for a moment.
        let mut out = String::new();
        let mut made = false;
        for _ in 0..50 {
            let (rc, o) =
                sh(&format!("useradd --system --no-create-home --shell /usr/sbin/nologin --user-group {name}"));
            if rc == 0 {
                made = true;
                break;
            }
            out = o;
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(made, "useradd {name}: {out}");
        let id = |flag: &str| sh(&format!("id {flag} {name}")).1.trim().parse::<u32>().unwrap();
        let (uid, gid) = (id("-u"), id("-g"));
        let base = PathBuf::from(format!("/tmp/vigil-tenant-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("victim/dir")).unwrap();
        std::fs::create_dir_all(base.join("site")).unwrap();
        std::fs::create_dir_all(base.join("staging")).unwrap();
        std::fs::write(base.join("victim/secret"), SECRET).unwrap();
        std::fs::write(base.join("victim/dir/inside"), "root's file\n").unwrap();
        sh(&format!(
            "chmod 755 {0} {0}/victim {0}/victim/dir; chmod 644 {0}/victim/secret {0}/victim/dir/inside; chmod 711 {0}/staging",
            base.display()
        ));
        std::os::unix::fs::chown(base.join("site"), Some(uid), Some(gid)).unwrap();
        Tenant { name, uid, gid, base }
    }

    fn site(&self) -> PathBuf {
        self.base.join("site")
    }
    fn secret(&self) -> PathBuf {
        self.base.join("victim/secret")
    }
    fn vdir(&self) -> PathBuf {
        self.base.join("victim/dir")
    }

    /// Write a file as the tenant would own it.
    fn file(&self, rel: &str, body: &str) {
        let p = self.site().join(rel);
        let mut d = self.site();
        for c in Path::new(rel).parent().unwrap().components() {
            d.push(c);
            if !d.exists() {
                std::fs::create_dir(&d).unwrap();
                std::os::unix::fs::chown(&d, Some(self.uid), Some(self.gid)).unwrap();
            }
        }
        std::fs::write(&p, body).unwrap();
        std::os::unix::fs::chown(&p, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// The victim's state: each path → content, owner, mode; the directory's listing.
    fn victim(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for p in [self.secret(), self.vdir(), self.vdir().join("inside"), self.base.join("victim")] {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let body = if md.is_file() {
                std::fs::read_to_string(&p).unwrap()
            } else {
                let mut names: Vec<String> = std::fs::read_dir(&p)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names.join(",")
            };
            m.insert(p.display().to_string(), format!("{}:{} {:o} {body}", md.uid(), md.gid(), md.mode() & 0o7777));
        }
        m
    }

    /// Start the racer as the tenant: `flip` paths alternate between what they are and a symlink
    /// (files → the secret, directories → the victim directory); in each `hunt` directory any
    /// `.vigil-` entry vigil makes is moved away and replaced by a symlink to the victim directory.
    fn racer(&self, flip: &[PathBuf], hunt: &[PathBuf]) -> Racer {
        racer::start(&racer::Attack {
            uid: self.uid,
            gid: self.gid,
            secret: &self.secret(),
            victim_dir: &self.vdir(),
            flip,
            hunt,
            staging: None,
            log: &self.base.join("racer.log"),
        })
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
        for _ in 0..50 {
            if sh(&format!("userdel {}", self.name)).0 == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// What an attack would leave in a copy: the secret's bytes in a regular file, or the victim
/// directory's file copied in. Returns the symlinks found (each must point at a target the
/// tenant wrote, and belong to the tenant).
fn assert_copy_clean(t: &Tenant, dir: &Path) -> usize {
    let mut links = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert_ne!(name, "inside", "the victim directory was copied: {}", p.display());
            if md.file_type().is_symlink() {
                let to = std::fs::read_link(&p).unwrap();
                assert!(to == t.secret() || to == t.vdir(), "{} -> {}", p.display(), to.display());
                assert_eq!(md.uid(), t.uid, "{} keeps its owner", p.display());
                links += 1;
            } else if md.is_dir() {
                stack.push(p);
            } else if md.is_file() {
                assert_ne!(
                    std::fs::read_to_string(&p).unwrap_or_default(),
                    SECRET,
                    "the secret was copied to {}",
                    p.display()
                );
            }
        }
    }
    links
}

/// The same for an archive.
fn assert_archive_clean(t: &Tenant, archive: &Path) -> usize {
    let f = std::fs::File::open(archive).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut links = 0;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        assert!(!name.ends_with("inside"), "the victim directory was archived: {name}");
        if e.header().entry_type().is_symlink() {
            let to = e.link_name().unwrap().unwrap().into_owned();
            assert!(to == t.secret() || to == t.vdir(), "{name} -> {}", to.display());
            links += 1;
        } else if e.header().entry_type().is_file() {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            assert_ne!(s, SECRET, "the secret was archived as {name}");
        }
    }
    links
}

fn plugin_zip(path: &Path, version: &str) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let o = zip::write::SimpleFileOptions::default();
    w.add_directory("akismet", o).unwrap();
    w.start_file("akismet/akismet.php", o).unwrap();
    w.write_all(format!("<?php\n/*\nPlugin Name: Akismet\nVersion: {version}\n*/\n").as_bytes()).unwrap();
    for d in ["views", "_inc/img"] {
        for i in 0..5 {
            w.start_file(format!("akismet/{d}/f{i}.php"), o).unwrap();
            w.write_all(b"<?php // package file\n").unwrap();
        }
    }
    w.finish().unwrap();
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "setpriv",
        vigil_missing = "python3"
    ),
    ignore = "needs root, useradd, userdel, setpriv, python3 (.ci/packages/wpstage.txt)"
)]
fn copy_and_backup_hold_while_the_owner_swaps_in_symlinks() {
    let t = Tenant::new();
    let before = t.victim();
    let mut flip = Vec::new();
    for d in 0..4 {
        for f in 0..5 {
            t.file(&format!("d{d}/f{f}.php"), "tenant data\n");
            flip.push(t.site().join(format!("d{d}/f{f}.php")));
        }
        t.file(&format!("d{d}/sub/x.php"), "tenant data\n");
        flip.push(t.site().join(format!("d{d}/sub")));
    }
    t.file("wp-config.php", "<?php\n");
    let racer = t.racer(&flip, &[]);
    let (mut copies, mut backups, mut links, mut failures) = (0, 0, 0, Vec::new());
    let start = Instant::now();
    let bk = t.base.join("backups");
    std::fs::create_dir(&bk).unwrap();
    std::fs::set_permissions(&bk, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(4) || copies < 5 || backups < 5 {
        i += 1;
        let dst = t.base.join(format!("staging/copy{i}"));
        match files::copy_tree(&t.site(), &dst) {
            Ok(_) => {
                copies += 1;
                links += assert_copy_clean(&t, &dst);
            }
            Err(e) => failures.push(e.to_string()),
        }
        let out = bk.join(format!("b{i}.tar.gz"));
        match files::backup_dir(&t.site(), &out) {
            Ok(_) => {
                backups += 1;
                links += assert_archive_clean(&t, &out);
            }
            Err(e) => failures.push(e.to_string()),
        }
        let _ = std::fs::remove_dir_all(&dst);
        assert!(start.elapsed() < Duration::from_secs(60), "too many failures: {failures:?}");
    }
    drop(racer);
    println!(
        "{copies} copies and {backups} backups under attack; {links} symlinks kept as links; failures: {failures:?}"
    );
    assert!(links > 0, "the racer swapped nothing in: the test did not test anything");
    assert_eq!(t.victim(), before, "the root-owned file and directory are unchanged");
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "setpriv",
        vigil_missing = "python3"
    ),
    ignore = "needs root, useradd, userdel, setpriv, python3 (.ci/packages/wpstage.txt)"
)]
fn unpack_chown_and_swap_hold_while_the_owner_swaps_in_symlinks() {
    let t = Tenant::new();
    let before = t.victim();
    let plugins = t.site().join("wp-content/plugins");
    let mut flip = Vec::new();
    for f in 0..5 {
        t.file(&format!("wp-content/plugins/akismet/f{f}.php"), "tenant data\n");
        flip.push(plugins.join(format!("akismet/f{f}.php")));
    }
    t.file("wp-content/plugins/akismet/views/v.php", "tenant data\n");
    flip.push(plugins.join("akismet/views"));
    let zip = t.base.join("akismet.zip");
    plugin_zip(&zip, "5.0.3");
    let target = plugins.join("akismet");
    let racer = t.racer(&flip, std::slice::from_ref(&plugins));
    let start = Instant::now();
    let (mut done, mut failures) = (0, Vec::new());
    let mut i = 0u32;
    while start.elapsed() < Duration::from_secs(4) || done + failures.len() < 10 {
        i += 1;
        let id = format!("{i:08x}");
        let r = build_units(UpdateKind::Plugin, "akismet", &zip, &t.site(), &target, &id).and_then(|(units, _)| {
            for mut u in units {
                u.move_old(&t.site()).map_err(super::failed)?;
                u.put_new(&t.site()).map_err(super::failed)?;
                u.finish(&t.site()).map_err(super::failed)?;
            }
            Ok(())
        });
        match r {
            Ok(()) => done += 1,
            Err(e) => failures.push(e.to_string()),
        }
        // Whatever the racer left at the plugin's name (a link, nothing) is what the next round
        // replaces. (No path-based repair here: the racer would turn it against the test itself.)
        assert!(start.elapsed() < Duration::from_secs(60), "too slow: {failures:?}");
    }
    drop(racer);
    println!("{done} updates unpacked and swapped under attack; failures: {failures:?}");
    assert!(done > 0, "no update went through under attack: {failures:?}");
    assert_eq!(t.victim(), before, "nothing was written into, chowned or chmodded outside the site");
    // The racer really stole vigil's directories: it left them (root's, 0700) beside the plugin.
    let stolen = std::fs::read_dir(&plugins)
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().contains("stolen")));
    assert!(stolen.count() > 0, "the racer never got at vigil's new directory: the test did not test anything");
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "setpriv",
        vigil_missing = "python3"
    ),
    ignore = "needs root, useradd, userdel, setpriv, python3 (.ci/packages/wpstage.txt)"
)]
fn planted_symlinks_are_copied_as_links_and_never_followed() {
    let t = Tenant::new();
    // A shadow-like target: root's, 0640.
    std::fs::set_permissions(t.secret(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = t.victim();
    t.file("wp-config.php", "<?php\n");
    t.file("wp-content/plugins/akismet/akismet.php", "<?php\n/*\nPlugin Name: Akismet\nVersion: 5.0.2\n*/\n");
    let plugins = t.site().join("wp-content/plugins");
    let as_tenant = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(t.uid), Some(t.gid)).unwrap();
    };
    for (link, to) in [
        (t.site().join("shadow"), t.secret()),
        (t.site().join("etc"), t.vdir()),
        (plugins.join("akismet/evil.php"), t.secret()),
        // vigil's next names, planted in advance (the ids are guessable from a previous run).
        (plugins.join(".akismet.vigil-new-0000aaaa"), t.vdir()),
        (plugins.join(".akismet.vigil-old-0000aaaa"), t.vdir()),
    ] {
        std::os::unix::fs::symlink(&to, &link).unwrap();
        as_tenant(&link);
    }
    assert_eq!(sh(&format!("mkfifo {}", t.site().join("pipe").display())).0, 0);
    as_tenant(&t.site().join("pipe"));

    // The staging copy: links stay links (with their owner), the FIFO is noted and never opened.
    let dst = t.base.join("staging/site");
    let copied = files::copy_tree(&t.site(), &dst).unwrap();
    assert_eq!(std::fs::read_link(dst.join("shadow")).unwrap(), t.secret());
    assert_eq!(std::fs::read_link(dst.join("etc")).unwrap(), t.vdir());
    assert_eq!(std::fs::symlink_metadata(dst.join("shadow")).unwrap().uid(), t.uid);
    assert_eq!(std::fs::symlink_metadata(dst.join("wp-config.php")).unwrap().uid(), t.uid);
    assert!(!dst.join("pipe").exists());
    assert!(copied.skipped.iter().any(|s| s.contains("pipe") && s.contains("FIFO")), "{:?}", copied.skipped);
    assert!(assert_copy_clean(&t, &dst) >= 3);
    // The staging wp-config.php is read and written only as a plain file of the copy.
    let stg = Dir::open(&dst).unwrap();
    let e = stg.read_regular(std::ffi::OsStr::new("shadow"), 1 << 20).unwrap_err();
    assert!(e.to_string().contains("not a plain file"), "{e}");
    let e = stg.replace_file(std::ffi::OsStr::new("shadow"), b"x", "tmp-1").unwrap_err();
    assert!(e.to_string().contains("not a plain file"), "{e}");

    // The backup: links archived as links, the FIFO noted.
    let out = t.base.join("b.tar.gz");
    let (_, skipped) = files::backup_dir(&t.site(), &out).unwrap();
    assert!(skipped.iter().any(|s| s.contains("pipe")), "{skipped:?}");
    assert!(assert_archive_clean(&t, &out) >= 3);

    // An update over the planted names: they are removed as links, the new tree is vigil's own.
    let zip = t.base.join("akismet.zip");
    plugin_zip(&zip, "5.0.3");
    let target = plugins.join("akismet");
    let (units, lint) = build_units(UpdateKind::Plugin, "akismet", &zip, &t.site(), &target, "0000aaaa").unwrap();
    assert_eq!(lint.len(), 11);
    for mut u in units {
        u.move_old(&t.site()).unwrap();
        u.put_new(&t.site()).unwrap();
        u.finish(&t.site()).unwrap();
    }
    let md = std::fs::symlink_metadata(&target).unwrap();
    assert!(md.is_dir() && md.uid() == t.uid && md.mode() & 0o777 == 0o755);
    let md = std::fs::metadata(target.join("views/f0.php")).unwrap();
    assert!(md.uid() == t.uid && md.mode() & 0o777 == 0o644);
    assert!(std::fs::read_to_string(target.join("akismet.php")).unwrap().contains("5.0.3"));

    // A rollback's restore from a hostile archive (a link, then a file "inside" it) stops at the link.
    let evil = t.base.join("evil.tar.gz");
    {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&evil).unwrap(),
            flate2::Compression::fast(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "wp-content/plugins/akismet", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "wp-content/plugins/akismet/x", t.vdir()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(4);
        b.append_data(&mut h, "wp-content/plugins/akismet/x/owned", &b"evil"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let (parent, _) = files::open_parent(&t.site(), &target).unwrap();
    let e = files::extract_sub(&evil, "wp-content/plugins/akismet", &parent, std::ffi::OsStr::new(".r1")).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    // Extracting onto a planted name fails rather than writing through it.
    std::os::unix::fs::symlink(t.vdir(), plugins.join(".r2")).unwrap();
    assert!(files::extract_sub(&out, "wp-content/plugins/akismet", &parent, std::ffi::OsStr::new(".r2")).is_err());

    // A swap whose path the owner redirected (wp-content → a root-owned tree elsewhere) stops there.
    let elsewhere = t.base.join("victim/dir");
    let wpc = t.site().join("wp-content");
    std::fs::rename(&wpc, t.site().join("wp-content.real")).unwrap();
    std::os::unix::fs::symlink(t.base.join("victim"), &wpc).unwrap();
    let mut u = Unit {
        target: wpc.join("dir"),
        new: wpc.join(".dir.vigil-new-0000bbbb"),
        old: wpc.join(".dir.vigil-old-0000bbbb"),
        existed: true,
        state: files::UnitState::Prepared,
    };
    let e = u.move_old(&t.site()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(u.undo(&t.site()).is_err() && u.finish(&t.site()).is_err());
    assert!(elsewhere.join("inside").is_file());

    assert_eq!(t.victim(), before, "the targets' contents, owners and modes are unchanged");
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "setpriv",
        vigil_missing = "python3"
    ),
    ignore = "needs root, useradd, userdel, setpriv, python3 (.ci/packages/wpstage.txt)"
)]
fn a_site_root_is_reached_only_through_links_root_placed() {
    let t = Tenant::new();
    // The owner's own directory holds a link to another tree: not followed.
    let home = t.base.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(t.uid), Some(t.gid)).unwrap();
    std::os::unix::fs::symlink(t.base.join("victim"), home.join("www")).unwrap();
    let e = Dir::open(&home.join("www/dir")).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(files::copy_tree(&home.join("www/dir"), &t.base.join("staging/x")).is_err());
    assert!(!t.base.join("staging/x").exists());
    // A link root placed in a directory only root can write is followed (e.g. /var/www → /srv/www).
    std::os::unix::fs::symlink(t.site(), t.base.join("www")).unwrap();
    assert!(Dir::open(&t.base.join("www")).is_ok());
    // The last component itself must not be the owner's link.
    std::os::unix::fs::symlink(t.vdir(), t.site().join("inner")).unwrap();
    std::os::unix::fs::lchown(t.site().join("inner"), Some(t.uid), Some(t.gid)).unwrap();
    assert!(Dir::open(&t.site().join("inner")).is_err());
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "useradd",
        vigil_missing = "userdel",
        vigil_missing = "setpriv",
        vigil_missing = "python3"
    ),
    ignore = "needs root, useradd, userdel, setpriv, python3 (.ci/packages/wpstage.txt)"
)]
fn a_core_update_and_its_rollback_write_only_vigils_own_names() {
    let t = Tenant::new();
    std::fs::set_permissions(t.secret(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = t.victim();
    t.file("index.php", "<?php // 6.1\n");
    t.file("wp-admin/admin.php", "<?php // 6.1\n");
    t.file("wp-config.php", "<?php // the owner's\n");
    t.file("wp-content/index.php", "<?php // the owner's\n");
    let site = t.site();
    // Names vigil will use, planted as links to root's file and directory.
    for (name, to) in [
        (".index.php.vigil-new-0000cccc", t.secret()),
        (".wp-admin.vigil-old-0000cccc", t.vdir()),
        (".wordpress.vigil-core-0000cccc", t.vdir()),
    ] {
        std::os::unix::fs::symlink(&to, site.join(name)).unwrap();
        std::os::unix::fs::lchown(site.join(name), Some(t.uid), Some(t.gid)).unwrap();
    }
    let backup = t.base.join("site.tar.gz");
    files::backup_dir(&site, &backup).unwrap();
    let zip = t.base.join("wordpress.zip");
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
        let o = zip::write::SimpleFileOptions::default();
        for (name, body) in [
            ("wordpress/index.php", "<?php // 6.2\n"),
            ("wordpress/wp-admin/admin.php", "<?php // 6.2\n"),
            ("wordpress/wp-content/index.php", "<?php // the package's\n"),
            ("wordpress/wp-config.php", "<?php // the package's\n"),
        ] {
            w.start_file(name, o).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }
    let (units, lint) = build_units(UpdateKind::Core, "wordpress", &zip, &site, &site, "0000cccc").unwrap();
    assert_eq!(
        units.iter().map(|u| u.target.clone()).collect::<Vec<_>>(),
        vec![site.join("index.php"), site.join("wp-admin")]
    );
    assert_eq!(lint.len(), 2, "{lint:?}");
    for mut u in units {
        u.move_old(&site).unwrap();
        u.put_new(&site).unwrap();
        u.finish(&site).unwrap();
    }
    assert_eq!(std::fs::read_to_string(site.join("index.php")).unwrap(), "<?php // 6.2\n");
    assert_eq!(std::fs::read_to_string(site.join("wp-config.php")).unwrap(), "<?php // the owner's\n");
    assert_eq!(std::fs::read_to_string(site.join("wp-content/index.php")).unwrap(), "<?php // the owner's\n");
    let md = std::fs::metadata(site.join("wp-admin/admin.php")).unwrap();
    assert!(md.uid() == t.uid && md.mode() & 0o777 == 0o644);
    assert!(std::fs::read_dir(&site).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".vigil-")));

    // The rollback's restore: a single file and a directory, back from the backup beside their targets.
    let (parent, _) = files::open_parent(&site, &site.join("index.php")).unwrap();
    std::os::unix::fs::symlink(t.secret(), site.join(".index.php.vigil-new-0000dddd")).unwrap();
    for (name, sub) in [("index.php", "index.php"), ("wp-admin", "wp-admin")] {
        let u = Unit::new(&site, &site.join(name), "0000dddd").unwrap();
        u.clear(&site).unwrap();
        files::extract_sub(&backup, sub, &parent, u.new.file_name().unwrap()).unwrap();
        let mut u = u;
        u.move_old(&site).unwrap();
        u.put_new(&site).unwrap();
        u.finish(&site).unwrap();
    }
    assert_eq!(std::fs::read_to_string(site.join("index.php")).unwrap(), "<?php // 6.1\n");
    assert_eq!(std::fs::read_to_string(site.join("wp-admin/admin.php")).unwrap(), "<?php // 6.1\n");
    assert_eq!(std::fs::metadata(site.join("index.php")).unwrap().uid(), t.uid);
    assert_eq!(t.victim(), before, "the targets' contents, owners and modes are unchanged");
}

#[test]
fn a_tree_nested_too_deep_is_refused_not_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let site = d.path().join("site");
    let mut p = site.clone();
    for _ in 0..200 {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    let e = files::copy_tree(&site, &d.path().join("copy")).unwrap_err();
    assert!(e.to_string().contains("nested more than 128 deep"), "{e}");
    let e = files::backup_dir(&site, &d.path().join("b.tar.gz")).unwrap_err();
    assert!(e.to_string().contains("nested more than 128 deep"), "{e}");
    // Removing it (as a leftover beside a plugin would be) stops at the same depth, cleanly.
    let e = Dir::open(d.path()).unwrap().remove(std::ffi::OsStr::new("site")).unwrap_err();
    assert!(e.to_string().contains("nested more than 128 deep"), "{e}");
}
