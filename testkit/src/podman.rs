//! Podman serving the Docker Engine API for system tests (RECIPES.md, "Docker Engine API"):
//! its storage, runtime state and configuration in a temp dir, its networking in a network
//! namespace of its own, torn down on drop. Needs root, podman, runc, nsenter, ip, tar and
//! /bin/busybox (`.ci/packages/docker.txt`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support: a failed setup should panic")]
#![allow(clippy::disallowed_methods, reason = "test support builds its fixtures with std::fs")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Podman in its own storage, runtime dir and network namespace; torn down on drop.
pub struct Podman {
    dir: PathBuf,
    netns: String,
    service: Option<Child>,
}

impl Podman {
    /// The Docker-API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    /// A podman command inside the namespace with the test's configuration.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("podman")
            .args(args)
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .stdin(Stdio::null());
        c
    }

    /// `podman ARGS` (asserting it succeeded), its trimmed output.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("podman runs");
        assert!(
            out.status.success(),
            "podman {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Start `podman system service` on a socket in `dir`, in a new network namespace
    /// `vigil-NAME-PID` (several tests may run at once).
    pub fn start(dir: &Path, name: &str) -> Podman {
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
        let netns = format!("vigil-{name}-{}", std::process::id());
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
    pub fn import_busybox(&self) {
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
