//! `docker_containers` against a real Docker-compatible engine: Debian's
//! podman serving the Docker Engine API on a unix socket in a temp dir.
//!
//! The test builds a busybox image from a rootfs tarball (no registry needed),
//! runs a container that burns a full CPU, an idle one, a privileged one and
//! one publishing a port on 0.0.0.0, points the tool at the socket through
//! `[docker] docker_host`, and checks what a user would notice. Everything
//! podman does (its bridge, NAT rules, listeners) happens inside a network
//! namespace the test creates and deletes; its storage and runtime state live
//! in the temp dir (vfs driver, runc, cgroupfs, as in RECIPES.md).
//!
//! Needs root and the packages in `.ci/packages/docker.txt`. Without them it
//! is listed as ignored with its reason, or fails when `VIGIL_SYSTEM_TESTS=1`.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failure should panic with its message")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_tools::{Config, Ctx, Host, Registry, Severity};

/// Podman in its own storage, runtime dir and network namespace; torn down on drop.
struct Podman {
    dir: PathBuf,
    netns: String,
    service: Option<Child>,
}

impl Podman {
    fn socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    /// A podman command inside the namespace with the test's configuration.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("podman")
            .args(args)
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("podman runs");
        assert!(
            out.status.success(),
            "podman {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn start(dir: &Path) -> Podman {
        let t = dir.display();
        std::fs::write(
            dir.join("storage.conf"),
            format!("[storage]\ndriver = \"vfs\"\ngraphroot = \"{t}/graph\"\nrunroot = \"{t}/run\"\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("cni")).unwrap();
        // The test's own bridge network, with its IPAM state in the temp dir.
        std::fs::write(
            dir.join("cni/vigiltest.conflist"),
            format!(
                r#"{{"cniVersion":"0.4.0","name":"vigiltest","plugins":[{{"type":"bridge","bridge":"vigiltest0","isGateway":true,"ipMasq":true,"ipam":{{"type":"host-local","dataDir":"{t}/ipam","ranges":[[{{"subnet":"10.89.77.0/24"}}]],"routes":[{{"dst":"0.0.0.0/0"}}]}}}},{{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\nnetns = \"host\"\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = \"{t}/libpod\"\n\
                 [network]\nnetwork_config_dir = \"{t}/cni\"\ndefault_network = \"vigiltest\"\n"
            ),
        )
        .unwrap();
        let netns = format!("vigil-docker-{}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &netns]).status().unwrap().success();
        assert!(ok, "ip netns add {netns}");
        let mut p = Podman { dir: dir.to_path_buf(), netns, service: None };
        let lo =
            Command::new("ip").args(["netns", "exec", &p.netns, "ip", "link", "set", "lo", "up"]).status().unwrap();
        assert!(lo.success());
        let sock = format!("unix://{}", p.socket().display());
        let log = std::fs::File::create(dir.join("service.log")).unwrap();
        let child = p
            .cmd(&["system", "service", "--time=0", &sock])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("podman system service starts");
        p.service = Some(child);
        // Bounded wait for the API to answer.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(p.socket()).is_err() {
            assert!(Instant::now() < deadline, "podman's API socket did not appear within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// `localhost/busybox` from a rootfs tarball: busybox-static and its applets as relative links.
    fn import_busybox(&self) {
        let r = self.dir.join("rootfs/bin");
        std::fs::create_dir_all(&r).unwrap();
        std::fs::copy("/bin/busybox", r.join("busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
            let _ = std::os::unix::fs::symlink("busybox", r.join(applet));
        }
        let tar = self.dir.join("rootfs.tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(self.dir.join("rootfs"))
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar");
        self.run(&[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            "--change",
            "ENV PATH=/bin",
            &tar.to_string_lossy(),
            "localhost/busybox",
        ]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ =
            self.cmd(&["rm", "--force", "--all", "--time", "0"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "delete", &self.netns]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(
        vigil_missing = "root",
        vigil_missing = "podman",
        vigil_missing = "runc",
        vigil_missing = "nsenter",
        vigil_missing = "ip",
        vigil_missing = "tar",
        vigil_missing = "/bin/busybox"
    ),
    ignore = "needs root, podman, runc, nsenter, ip, tar, /bin/busybox (.ci/packages/docker.txt)"
)]
async fn podman_burner_idle_privileged_and_published() {
    vigil_testkit::require(&["root", "podman", "runc", "nsenter", "ip", "tar", "/bin/busybox"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("podman");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let pm = Podman::start(&dir);
    pm.import_busybox();
    // The miner of the story: pegged at the CPU its plan allows (--cpus 0.1,
    // which even this shared, loaded machine always gives it).
    pm.run(&["run", "-d", "--cpus", "0.1", "--name", "burner", "localhost/busybox", "sh", "-c", "while :; do :; done"]);
    pm.run(&["run", "-d", "--name", "idle", "localhost/busybox", "sleep", "100000"]);
    pm.run(&["run", "-d", "--privileged", "--name", "priv", "localhost/busybox", "sleep", "100000"]);
    pm.run(&[
        "run",
        "-d",
        "--network",
        "vigiltest",
        "-p",
        "0.0.0.0:18080:80",
        "--name",
        "web",
        "localhost/busybox",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);

    let cfg = Config::parse(
        &format!("[docker]\ndocker_host = \"unix://{}\"\ncpu_sample_seconds = 0\n", pm.socket().display()),
        Path::new("test.toml"),
    )
    .unwrap();
    let quick = Ctx::new(Host::live()).with_config(cfg);
    let t = Instant::now();
    Registry::builtin().call(&quick, "docker_containers", serde_json::json!({})).await.unwrap();
    println!("review of 4 podman containers without a sampling window: {:.2} s", t.elapsed().as_secs_f64());

    let cfg = Config::parse(
        &format!("[docker]\ndocker_host = \"unix://{}\"\ncpu_sample_seconds = 2.0\n", pm.socket().display()),
        Path::new("test.toml"),
    )
    .unwrap();
    let ctx = Ctx::new(Host::live()).with_config(cfg).with_state_dir(&state);
    let t = Instant::now();
    let out = Registry::builtin().call(&ctx, "docker_containers", serde_json::json!({})).await.unwrap();
    let took = t.elapsed().as_secs_f64();
    let all = out
        .findings
        .iter()
        .map(|f| format!("{} {} {} | {}", f.severity, f.id, f.subject, f.evidence.join(" / ")))
        .collect::<Vec<_>>()
        .join("\n");
    println!("review of 4 podman containers took {took:.2} s (2.0 s sampling window)\n{all}");
    println!("{}", serde_json::to_string_pretty(&out.facts).unwrap());

    let has = |id: &str, subject: &str| out.findings.iter().find(|f| f.id == id && f.subject == subject);
    let burn =
        has("containers.sustained-cpu", "container:burner").unwrap_or_else(|| panic!("burner not flagged:\n{all}"));
    assert_eq!(burn.severity, Severity::High, "a local image: high, not critical");
    assert!(burn.title.contains("possible cryptominer"));
    assert!(
        burn.evidence.iter().any(|e| e.starts_with("now: ")
            && e.contains("% of its allowance of 0.1 CPU (its limit)")
            && e.contains(" s sample")),
        "{all}"
    );
    assert!(has("containers.sustained-cpu", "container:idle").is_none(), "the idle container is not a miner:\n{all}");
    assert_eq!(has("containers.privileged", "container:priv").map(|f| f.severity), Some(Severity::Critical), "{all}");
    assert_eq!(has("containers.published-port", "tcp:18080").map(|f| f.severity), Some(Severity::Medium), "{all}");
    assert!(
        has("containers.unofficial-image", "image:localhost/busybox").is_none(),
        "a local image is not an unofficial one"
    );

    let facts = &out.facts;
    assert_eq!(facts["engine"]["name"], "Podman Engine", "{facts}");
    let cs = facts["containers"].as_array().unwrap();
    assert_eq!(cs.len(), 4);
    let burner = cs.iter().find(|c| c["name"] == "burner").unwrap();
    assert_eq!(burner["image"], "localhost/busybox:latest");
    assert_eq!(burner["provenance"], "local");
    assert_eq!(burner["official"], false);
    assert!(burner["cpu_sample_pct"].as_f64().unwrap() > 90.0, "{burner}");
    assert_eq!(burner["cpu_limit"], "0.1");
    let idle = cs.iter().find(|c| c["name"] == "idle").unwrap();
    assert!(idle["cpu_sample_pct"].as_f64().unwrap() < 5.0, "{idle}");
    let web = cs.iter().find(|c| c["name"] == "web").unwrap();
    assert!(web["ports"].as_array().unwrap().iter().any(|p| p == "0.0.0.0:18080->80/tcp"), "{web}");
    let kept = std::fs::read_to_string(state.join("container-cpu.json")).unwrap();
    assert!(kept.contains("\"burner\""), "{kept}");
    // Podman answers /version and /info slowly (it runs conmon and runc to
    // report them) and this machine is shared: only a sanity bound here; the
    // 50-container timing is measured in docker_recorded.rs.
    assert!(took < 2.0 + 8.0, "the review took {took:.2} s");
    drop(pm);
    assert!(!Path::new(&format!("/run/netns/vigil-docker-{}", std::process::id())).exists());
}
