//! `docker_containers` through the confined worker, end to end (issue 15): `vigil tools run
//! docker_containers` against a real Docker-compatible engine (podman serving the Docker API
//! on a root-only socket), with no `--no-sandbox`. The worker cannot reach the socket: the
//! parent answers the engine pass with its fixed GET requests and exports the containers'
//! image (`GET /images/{id}/get`) into the worker's scratch; the worker runs trivy on it.
//!
//! trivy is not installed here: a stand-in takes its place, first in the search path
//! (`/usr/local/bin/trivy`, bind-mounted inside a private mount namespace, as in
//! `sandbox_attacks.rs`), with root's trivy database under a `/root` bind-mounted from the
//! test's directory. The stand-in checks it was given `--input` of a real image archive in
//! the worker's scratch and a copy of the database in a cache directory of its own, then
//! tries to append to a root-owned file, plant a file in a world-writable directory, connect
//! to a loopback listener and read root's database directly; it prints a recorded report
//! (`fixtures/docker/trivy-xmrig-helper.json`) with one more entry naming what happened. The
//! test asserts the scan is in the result, every attempt failed, nothing was damaged, the
//! burner container was caught, and the CPU samples (`container-cpu.json`) came back to the
//! state directory and are carried into the next run. Run again with `--no-sandbox`, every
//! attempt succeeds.
//!
//! Needs root, podman (with runc, nsenter, ip, tar, /bin/busybox), python3, util-linux
//! `unshare` and a kernel with Landlock; without them it is listed as ignored with the
//! reason, unless `VIGIL_SYSTEM_TESTS=1` (CI), where it fails.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed setup should panic")]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use vigil_testkit::podman::Podman;

/// The stand-in for `trivy`: checks its arguments, attacks, prints the report.
const STAND_IN: &str = r#"#!/usr/bin/python3 -S
import errno, json, os, socket, sys, tarfile
args = sys.argv[1:]
def arg(flag):
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None
problems = []
inp = arg("--input")
if args[:1] != ["image"] or inp is None:
    problems.append("no --input: %r" % (args,))
else:
    # Confined: in the worker's scratch; unconfined (--no-sandbox): a directory of vigil's own.
    where = "worker" if inp.startswith("/tmp/vigil-worker.") else "own" if inp.startswith("/tmp/vigil-images.") else None
    if where is None:
        problems.append("the archive is in neither the worker's scratch nor vigil's own directory: " + inp)
    try:
        with tarfile.open(inp) as t:
            if "manifest.json" not in t.getnames():
                problems.append("no manifest.json in " + inp)
    except Exception as e:
        problems.append("not a tar archive: %s: %s" % (inp, e))
for f in ["--offline-scan", "--skip-db-update", "--skip-java-db-update"]:
    if f not in args:
        problems.append("missing " + f)
if arg("--cache-backend") != "memory":
    problems.append("the cache backend is not memory")
cache = arg("--cache-dir") or "/nonexistent"
if not cache.startswith({"worker": "/tmp/vigil-worker.", "own": "/root/.cache/trivy"}.get(where, "?")):
    problems.append("the cache directory is not the expected one: " + cache)
try:
    if open(cache + "/db/trivy.db").read() != "@DB@":
        problems.append("the database copy differs")
except OSError as e:
    problems.append("no database copy: %s" % e)
if problems:
    sys.stderr.write("stand-in: " + "; ".join(problems) + "\n")
    sys.exit(3)
out = []
def attempt(name, act):
    try:
        act()
        out.append(name + "=ok")
    except OSError as e:
        out.append(name + "=" + errno.errorcode.get(e.errno, str(e.errno)))
def append_root():
    with open("@ROOTFILE@", "a") as h:
        h.write("owned")
attempt("rootfile", append_root)
attempt("create", lambda: open("@WORLD@/planted", "x").close())
attempt("connect", lambda: socket.create_connection(("127.0.0.1", @PORT@), timeout=3).close())
attempt("rootdb", lambda: open("/root/.cache/trivy/db/trivy.db").close())
out.append("where=" + where)
attempt("scratch", lambda: open(os.path.join(os.environ.get("TMPDIR", "/nonexistent"), "own-%d" % os.getpid()), "x").close())
report = json.load(open("@REPORT@"))
report["Results"][0]["Vulnerabilities"].insert(0, {"VulnerabilityID": "VIGIL-PROBE", "PkgName": ",".join(out),
    "InstalledVersion": "0", "Severity": "CRITICAL"})
print(json.dumps(report))
"#;

/// Run `c` to the end; exit code, stdout, stderr.
fn output(mut c: Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the stand-in said it could do, from the scan's evidence.
fn probe_of(vulns: &Value) -> String {
    let evidence = vulns["evidence"].to_string();
    evidence
        .split("VIGIL-PROBE in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{evidence}"))
        .to_string()
}

/// The host's `container-cpu.json` somewhere under the state directory (`hosts/NAME/`).
fn cpu_file(dir: &Path) -> std::path::PathBuf {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p);
            } else if e.file_name() == vigil_tools::docker::STATE_FILE {
                return p;
            }
        }
    }
    panic!("no {} under {}", vigil_tools::docker::STATE_FILE, dir.display())
}

fn mode(path: &Path, m: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
}

#[test]
#[cfg_attr(
    any(
        vigil_missing = "@podman",
        vigil_missing = "/usr/bin/python3",
        vigil_missing = "/usr/bin/unshare",
        vigil_missing = "landlock"
    ),
    ignore = "needs @podman (root, podman, runc, nsenter, ip, tar, /bin/busybox), /usr/bin/python3, /usr/bin/unshare, landlock (.ci/packages/docker.txt)"
)]
fn docker_containers_runs_confined_with_trivy_on_an_exported_image() {
    vigil_testkit::require(&["@podman", "/usr/bin/python3", "/usr/bin/unshare", "landlock"]);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    mode(t, 0o755);
    let pm_dir = t.join("podman");
    std::fs::create_dir(&pm_dir).unwrap();
    let pm = Podman::start(&pm_dir, "dockerworker");
    pm.import_busybox();
    pm.run(&["run", "-d", "--cpus", "0.1", "--name", "burner", "localhost/busybox", "sh", "-c", "while :; do :; done"]);
    pm.run(&["run", "-d", "--name", "idle", "localhost/busybox", "sleep", "100000"]);
    // The engine's socket is root's alone, as Docker's is.
    mode(&pm.socket(), 0o600);

    // What the stand-in attacks.
    let world = t.join("world");
    std::fs::create_dir(&world).unwrap();
    mode(&world, 0o1777);
    let rootfile = t.join("root-owned.txt");
    std::fs::write(&rootfile, "precious\n").unwrap();
    mode(&rootfile, 0o644);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    // Root's trivy database, under a /root of the test's own.
    let db_marker = format!("trivy-db-{}", std::process::id());
    let roothome = t.join("roothome");
    std::fs::create_dir_all(roothome.join(".cache/trivy/db")).unwrap();
    std::fs::write(roothome.join(".cache/trivy/db/trivy.db"), &db_marker).unwrap();
    std::fs::write(roothome.join(".cache/trivy/db/metadata.json"), r#"{"Version":2}"#).unwrap();
    mode(&roothome.join(".cache/trivy/db/trivy.db"), 0o600);
    mode(&roothome, 0o700);
    let report = t.join("report.json");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/docker/trivy-xmrig-helper.json"), &report)
        .unwrap();
    mode(&report, 0o644);
    let bin = t.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = STAND_IN
        .replace("@DB@", &db_marker)
        .replace("@ROOTFILE@", &rootfile.display().to_string())
        .replace("@WORLD@", &world.display().to_string())
        .replace("@PORT@", &listener.local_addr().unwrap().port().to_string())
        .replace("@REPORT@", &report.display().to_string());
    std::fs::write(bin.join("trivy"), script).unwrap();
    mode(&bin.join("trivy"), 0o755);
    let config = t.join("vigil.toml");
    std::fs::write(
        &config,
        format!("[docker]\ndocker_host = \"unix://{}\"\ncpu_sample_seconds = 2.0\n", pm.socket().display()),
    )
    .unwrap();
    let state = t.join("state");
    std::fs::create_dir(&state).unwrap();
    mode(&state, 0o700);

    let vigil = |global: &[&str]| {
        let mut c = Command::new("/usr/bin/unshare");
        c.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg("mount --bind \"$1\" /usr/local/bin && mount --bind \"$2\" /root && shift 2 && exec \"$@\"")
            .arg("sh")
            .arg(&bin)
            .arg(&roothome)
            .arg(env!("CARGO_BIN_EXE_vigil"))
            .arg("--state-dir")
            .arg(&state)
            .arg("--config")
            .arg(&config)
            .args(global)
            .args(["tools", "run", "docker_containers"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &state)
            .env("NO_COLOR", "1");
        c
    };
    let started = std::time::Instant::now();
    let child = vigil(&[]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // `unshare` and `sh` exec into vigil: this is vigil's pid, which names its scratch directory.
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed().as_secs_f64();
    let (code, stdout, stderr) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    println!("vigil tools run docker_containers, confined, 2 s window, one image exported and scanned: {took:.2} s");
    assert!(code == 0 || code == 1, "tools run failed ({code}):\n{stdout}\n{stderr}");
    let start = stdout.find('{').unwrap_or_else(|| panic!("no JSON:\n{stdout}\n{stderr}"));
    let v: Value = serde_json::from_str(&stdout[start..]).unwrap_or_else(|e| panic!("{e}:\n{stdout}\n{stderr}"));
    let findings = v["findings"].as_array().unwrap_or_else(|| panic!("{v}"));
    let shown = |f: &Value| format!("{} {} {} | {}", f["severity"], f["id"], f["subject"], f["evidence"]);
    let all = findings.iter().map(shown).collect::<Vec<_>>().join("\n");
    println!("{all}");

    // The engine pass came from the parent: the containers are there, the miner is caught.
    let cs = v["facts"]["containers"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(cs.len(), 2, "{v}");
    assert!(
        findings.iter().any(|f| f["id"] == "containers.sustained-cpu" && f["subject"] == "container:burner"),
        "{all}"
    );
    assert_eq!(v["facts"]["image_scanner"], "trivy", "{v}");
    // The scan is in the result, and the stand-in's report names what it could do.
    let vulns = findings
        .iter()
        .find(|f| f["id"] == "containers.image-vulnerabilities")
        .unwrap_or_else(|| panic!("no scan in the result:\n{all}\n{stderr}"));
    let probe = probe_of(vulns);
    println!("the stand-in's attempts, confined: {probe}");
    assert!(probe.contains("where=worker"), "{probe}");
    for attempt in ["rootfile", "create", "connect", "rootdb"] {
        assert!(probe.contains(&format!("{attempt}=")), "{attempt} not tried: {probe}");
        assert!(!probe.contains(&format!("{attempt}=ok")), "{attempt} succeeded: {probe}");
    }
    assert!(probe.contains("scratch=ok"), "trivy may write in its scratch: {probe}");
    assert_eq!(std::fs::read_to_string(&rootfile).unwrap(), "precious\n");
    assert!(!world.join("planted").exists());
    assert!(listener.accept().is_err(), "the listener was reached");
    // No could-not-check about the engine or the scan.
    assert!(!findings.iter().any(|f| f["id"] == "containers.check-failed"), "{all}");

    // The CPU samples came back from the worker into the state directory...
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(cpu_file(&state)).unwrap()).unwrap();
    let burner = kept["containers"].as_object().unwrap().values().find(|c| c["name"] == "burner").unwrap().clone();
    assert_eq!(burner["samples"].as_array().unwrap().len(), 1, "{kept}");
    // ... and are carried into the next run's worker.
    let (code, stdout, stderr) = output(vigil(&[]));
    assert!(code == 0 || code == 1, "second run failed ({code}):\n{stdout}\n{stderr}");
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(cpu_file(&state)).unwrap()).unwrap();
    let burner = kept["containers"].as_object().unwrap().values().find(|c| c["name"] == "burner").unwrap().clone();
    assert_eq!(burner["samples"].as_array().unwrap().len(), 2, "{kept}");

    // vigil removed its scratch directory (and the image archive in it).
    let left: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("vigil-worker.{pid}.")))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The same stand-in unconfined (`--no-sandbox`, diagnosis only): every attempt succeeds,
    // so the confined run's failures are the sandbox's doing.
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = output(vigil(&["--no-sandbox"]));
    println!("the same, unconfined (--no-sandbox): {:.2} s", started.elapsed().as_secs_f64());
    assert!(code == 0 || code == 1, "unconfined run failed ({code}):\n{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout[stdout.find('{').unwrap()..]).unwrap();
    let vulns = v["findings"].as_array().unwrap().iter().find(|f| f["id"] == "containers.image-vulnerabilities");
    let probe = probe_of(vulns.unwrap_or_else(|| panic!("{v}\n{stderr}")));
    println!("the stand-in's attempts, unconfined: {probe}");
    assert!(probe.contains("where=own"), "{probe}");
    for attempt in ["rootfile", "create", "connect", "rootdb"] {
        assert!(probe.contains(&format!("{attempt}=ok")), "{attempt} failed unconfined: {probe}");
    }
    assert_eq!(std::fs::read_to_string(&rootfile).unwrap(), "precious\nowned");
    drop(pm);
}
