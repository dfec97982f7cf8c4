//! What a system test needs of the machine: probed by build scripts (to ignore
//! the test, with its reason, when a component is missing) and required at run
//! time (to fail it, naming the component, when system tests are required or the
//! machine changed since the build).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Directories a component program is looked up in (not `$PATH`: vigil itself
/// runs programs by absolute path from these).
const BIN_DIRS: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Components that come together, named once: `@NAME` in a test stands for all of them.
pub const GROUPS: &[(&str, &[&str])] = &[
    // The MariaDB server and client programs (mariadb-server, mariadb-client).
    ("@mariadb", &["mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin", "mariadb-dump"]),
    // Podman serving the Docker Engine API in a namespace of its own (`podman`;
    // .ci/packages/docker.txt).
    ("@podman", &["root", "podman", "runc", "nsenter", "ip", "tar", "/bin/busybox"]),
    // A fleet of real sshd hosts on loopback with the sudo and no-sudo accounts
    // (`sshfleet`; .ci/packages/ssh.txt).
    ("@sshfleet", &["root", "sshd", "ssh", "ssh-keygen", "sudo", "useradd"]),
    // A staged WordPress update on a real site (.ci/packages/wpstage.txt).
    (
        "@wpstage",
        &[
            "root",
            "/usr/share/wordpress/wp-includes/version.php",
            "@mariadb",
            "php",
            "setpriv",
            "unshare",
            "curl",
            "python3",
        ],
    ),
];

/// The components `name` stands for: a group's members (recursively), else itself.
fn members(name: &str) -> Vec<&str> {
    match GROUPS.iter().find(|(g, _)| *g == name) {
        Some((_, list)) => list.iter().flat_map(|m| members(m)).collect(),
        None => vec![name],
    }
}

/// Whether the machine has `name` (see the crate's documentation for the forms).
pub fn probe(name: &str) -> bool {
    if name.starts_with('@') {
        return members(name).iter().all(|m| *m != name && probe(m));
    }
    if name == "root" {
        // SAFETY: geteuid has no preconditions and cannot fail.
        return unsafe { libc::geteuid() } == 0;
    }
    if name == "landlock" {
        // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the kernel's ABI, or an error.
        // SAFETY: with a null attribute and size 0 the call only reports the ABI version.
        return unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) } >= 1;
    }
    if let Some(user) = name.strip_prefix("user:") {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        return passwd.lines().any(|l| l.split(':').next() == Some(user));
    }
    if let Some(module) = name.strip_prefix("py:") {
        return Command::new("/usr/bin/python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
    }
    if name.starts_with('/') {
        return Path::new(name).exists();
    }
    BIN_DIRS.iter().any(|d| Path::new(d).join(name).is_file())
}

/// Whether system tests are required (`VIGIL_SYSTEM_TESTS=1`): then nothing is ignored.
pub fn required() -> bool {
    std::env::var("VIGIL_SYSTEM_TESTS").as_deref() == Ok("1")
}

/// Fail the calling test unless every component in `names` is present, naming
/// the missing ones. Called first in a test whose attribute ignores it when
/// they are missing at build time; so this fails only when system tests are
/// required or the machine changed since the build (run as another user…).
pub fn require(names: &[&str]) {
    let missing: Vec<&str> = names.iter().flat_map(|n| members(n)).filter(|n| !probe(n)).collect();
    assert!(
        missing.is_empty(),
        "system test cannot run: missing {} (as root, `scripts/test` installs the packages in .ci/packages/; \
         unset VIGIL_SYSTEM_TESTS to see such tests ignored instead)",
        missing.join(", ")
    );
}

/// Every component the `.rs` files under `dirs` name in a `vigil_missing = "…"`.
pub fn named_in(dirs: &[&Path]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for d in dirs {
        scan(d, &mut found);
    }
    found
}

fn scan(dir: &Path, found: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            scan(&p, found);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let Ok(text) = std::fs::read_to_string(&p) else { continue };
            const KEY: &str = "vigil_missing = \"";
            for (at, _) in text.match_indices(KEY) {
                let rest = &text[at + KEY.len()..];
                if let Some(end) = rest.find('"') {
                    found.insert(rest[..end].to_string());
                }
            }
        }
    }
}

/// For a build script: declare the `vigil_missing` cfg and set it for every
/// component named under `dirs` that this machine lacks (none when system tests
/// are required). Reruns when the named sources, the system's programs or
/// accounts, or `VIGIL_SYSTEM_TESTS` change.
pub fn emit_cfgs(dirs: &[&Path]) {
    println!("cargo::rustc-check-cfg=cfg(vigil_missing, values(any()))");
    println!("cargo::rerun-if-env-changed=VIGIL_SYSTEM_TESTS");
    for d in dirs {
        println!("cargo::rerun-if-changed={}", d.display());
    }
    for d in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/etc/passwd"] {
        if Path::new(d).exists() {
            println!("cargo::rerun-if-changed={d}");
        }
    }
    let names = named_in(dirs);
    let missing: Vec<&String> = names.iter().filter(|n| !probe(n)).collect();
    if required() {
        if !missing.is_empty() {
            let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            println!(
                "cargo::warning=VIGIL_SYSTEM_TESTS=1 but missing {}: the tests that need them will fail",
                list.join(", ")
            );
        }
        return;
    }
    for n in missing {
        println!("cargo::rustc-cfg=vigil_missing=\"{n}\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_stands_for_its_members_and_an_unknown_group_is_missing() {
        let wp = members("@wpstage");
        assert!(wp.contains(&"root") && wp.contains(&"mariadb-dump") && wp.contains(&"php"), "{wp:?}");
        assert!(!wp.iter().any(|m| m.starts_with('@')), "nested groups are expanded: {wp:?}");
        assert!(!probe("@no-such-group"));
        assert_eq!(members("curl"), ["curl"]);
    }
}
