//! A fleet of real OpenSSH servers on loopback, for the fleet's tests and benchmark.
//!
//! A fleet review is only believable against the real `sshd`: its refusals,
//! its host-key checks, its `sudo -n` through a real login. [`SshFleet::start`]
//! starts one `sshd -D` per host of a [`Spec`] on its own 127.0.0.1 port, each
//! with its own host key and configuration, and writes, in one directory the
//! fleet owns, what a controller needs to reach them the way an administrator
//! would: a client key, an `ssh_config` that checks every host key
//! (`StrictHostKeyChecking yes` against a known-hosts file of the fleet's keys,
//! never "no"), and the same Ansible inventory in INI, YAML, `ansible-inventory
//! --list` JSON, and INI with `host_vars/` and `group_vars/`. Each [`Kind`] of
//! host fails (or not) the way a real server does: nothing listening, our key
//! refused, a command that never ends, a remote vigil killed mid-answer, a
//! user without sudo, a push directory mounted `noexec`, another architecture.
//! Dropping the fleet stops every `sshd` and everything it
//! started, and removes the directory.
//!
//! A test declares the group `@sshfleet` (root, sshd, ssh, ssh-keygen, and
//! sudo and useradd for the sudo kinds; .ci/packages/ssh.txt), and `unshare`
//! and `findmnt` (util-linux) besides when it starts a [`Kind::NoexecBin`] host:
//!
//! ```text
//! #[cfg_attr(vigil_missing = "@sshfleet", ignore = "needs @sshfleet: root, sshd, ssh, sudo (.ci/packages/ssh.txt)")]
//! fn a_fleet_review() {
//!     vigil_testkit::require(&["@sshfleet"]);
//!     let fleet = SshFleet::start(&Spec::standard());
//!     … vigil fleet review -i fleet.inventory_ini() …
//! }
//! ```

use std::collections::HashSet;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{free_port, ok, sh, wait_for};

/// The account a [`Kind::Sudo`] host logs in as: passwordless `sudo -n` to root.
pub const SUDO_USER: &str = "vigil-fleet-sudo";
/// The account a [`Kind::NoSudo`] host logs in as: no sudo at all.
pub const NOSUDO_USER: &str = "vigil-fleet-nosudo";

/// What a test starting a fleet requires (`require(COMPONENTS)`): the group `@sshfleet`,
/// which its attribute names as `vigil_missing = "@sshfleet"`.
pub const COMPONENTS: &[&str] = &["@sshfleet"];

/// How a host behaves, and so what a fleet review must report for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `root` logs in with the fleet's key: reviewed.
    Root,
    /// [`SUDO_USER`] logs in and has passwordless `sudo -n` (`ansible_become=true`): reviewed.
    Sudo,
    /// [`NOSUDO_USER`] logs in but has no sudo (`ansible_become=true`): `no-sudo`.
    NoSudo,
    /// A port with nothing listening: `unreachable`.
    Unreachable,
    /// `sshd` answers, its host key is known, but our key is not authorised: `auth-failed`.
    KeyRefused,
    /// `root` logs in but every command is `sleep 3600` (ForceCommand): `timeout`.
    Hangs,
    /// `root` logs in and commands run, but a `vigil __remote` session reads a
    /// byte of its request, writes half a line and is killed (ForceCommand),
    /// as a host that dies mid-run: `error`.
    Dies,
    /// `root` logs in to an sshd started in a mount namespace of its own, where
    /// `/var/lib/vigil/fleet/bin` (the push directory) is an empty `noexec` tmpfs:
    /// reviewed through a memfd, nothing left in that directory. There (when the
    /// fleet's accounts exist) [`NOSUDO_USER`]'s home is an empty `noexec` tmpfs too,
    /// and that user's login finds a `findmnt` that fails (a shim first on `PATH`),
    /// as on a host without util-linux: only the push itself can find the mount noexec.
    NoexecBin,
    /// `root` logs in, but its login environment (ForceCommand) puts a `uname` first
    /// on `PATH` that says [`FOREIGN_ARCH`] for `-m`; every command it was asked to run
    /// is appended to `commands.log` in the host's directory: `unsupported`.
    ForeignArch,
}

/// The architecture a [`Kind::ForeignArch`] host's `uname -m` reports.
pub const FOREIGN_ARCH: &str = "s390x";

impl Kind {
    /// The account the inventory names for this kind.
    pub fn user(self) -> &'static str {
        match self {
            Kind::Sudo => SUDO_USER,
            Kind::NoSudo => NOSUDO_USER,
            _ => "root",
        }
    }

    /// Whether the inventory sets `ansible_become`.
    pub fn becomes(self) -> bool {
        matches!(self, Kind::Sudo | Kind::NoSudo)
    }

    /// The reason a fleet review gives for this kind (`Reason::as_str`), or `None` when it is reviewed.
    pub fn expected_failure(self) -> Option<&'static str> {
        match self {
            Kind::Root | Kind::Sudo => None,
            Kind::NoSudo => Some("no-sudo"),
            Kind::Unreachable => Some("unreachable"),
            Kind::KeyRefused => Some("auth-failed"),
            Kind::Hangs => Some("timeout"),
            Kind::Dies => Some("error"),
            Kind::NoexecBin => None,
            Kind::ForeignArch => Some("unsupported"),
        }
    }
}

/// One host of a [`Spec`].
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// The inventory name.
    pub name: String,
    /// How it behaves.
    pub kind: Kind,
    /// Its `vigil_root` (the remote `--root`), if any.
    pub root: Option<PathBuf>,
    /// Inventory groups besides `fleet` (every host is in `fleet`).
    pub groups: Vec<String>,
}

/// The hosts of a fleet, in inventory order.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    hosts: Vec<HostSpec>,
}

impl Spec {
    /// No hosts yet.
    pub fn new() -> Spec {
        Spec::default()
    }

    /// Add a host with no `vigil_root` and no group but `fleet`.
    pub fn host(mut self, name: &str, kind: Kind) -> Spec {
        self.hosts.push(HostSpec { name: name.to_string(), kind, root: None, groups: Vec::new() });
        self
    }

    /// Add a host whose `vigil_root` is `root`.
    pub fn host_with_root(mut self, name: &str, kind: Kind, root: &Path) -> Spec {
        self.hosts.push(HostSpec { name: name.to_string(), kind, root: Some(root.to_path_buf()), groups: Vec::new() });
        self
    }

    /// Put the last host added in `group` too.
    pub fn in_group(mut self, group: &str) -> Spec {
        if let Some(h) = self.hosts.last_mut() {
            h.groups.push(group.to_string());
        }
        self
    }

    /// The issue's test fleet, one host of each kind, the reviewed ones on
    /// copies of the fixture hosts: `web1` (root, fixtures/hosts/web1, group
    /// `web`), `clean` (root, fixtures/hosts/clean, group `web`), `sudo` (through
    /// `sudo -n`, fixtures/hosts/web1), `nosudo`, `down` (nothing listening),
    /// `refused` (key refused), `hangs` (command never ends), `dies` (its
    /// `vigil __remote` killed mid-answer); the failing ones are in group `broken`.
    pub fn standard() -> Spec {
        let fx = crate::fixture_hosts();
        Spec::new()
            .host_with_root("web1", Kind::Root, &fx.join("web1"))
            .in_group("web")
            .host_with_root("clean", Kind::Root, &fx.join("clean"))
            .in_group("web")
            .host_with_root("sudo", Kind::Sudo, &fx.join("web1"))
            .host_with_root("nosudo", Kind::NoSudo, &fx.join("clean"))
            .in_group("broken")
            .host("down", Kind::Unreachable)
            .in_group("broken")
            .host_with_root("refused", Kind::KeyRefused, &fx.join("clean"))
            .in_group("broken")
            .host_with_root("hangs", Kind::Hangs, &fx.join("clean"))
            .in_group("broken")
            .host_with_root("dies", Kind::Dies, &fx.join("clean"))
            .in_group("broken")
    }

    /// `n` root hosts `host001`, `host002`, … (the benchmark's fleet), each
    /// with `root` as its `vigil_root` when given.
    pub fn root_hosts(n: usize, root: Option<&Path>) -> Spec {
        Spec::hosts_of(Kind::Root, n, root)
    }

    /// `n` hosts of `kind` named `host001`, `host002`, …, each with `root` as its
    /// `vigil_root` when given.
    pub fn hosts_of(kind: Kind, n: usize, root: Option<&Path>) -> Spec {
        let mut s = Spec::new();
        for i in 1..=n {
            s.hosts.push(HostSpec {
                name: format!("host{i:03}"),
                kind,
                root: root.map(Path::to_path_buf),
                groups: Vec::new(),
            });
        }
        s
    }

    /// The hosts, in order.
    pub fn hosts(&self) -> &[HostSpec] {
        &self.hosts
    }
}

/// A started host.
#[derive(Debug)]
pub struct Host {
    /// The inventory name.
    pub name: String,
    /// How it behaves.
    pub kind: Kind,
    /// Its port on 127.0.0.1 (for [`Kind::Unreachable`], bound by the fleet and never
    /// listening: connections are refused).
    pub port: u16,
    /// The account the inventory logs in as.
    pub user: &'static str,
    /// Its `vigil_root`, if any.
    pub root: Option<PathBuf>,
    /// Its inventory groups besides `fleet`.
    pub groups: Vec<String>,
    /// Its own directory: `sshd_config`, `host_ed25519`, `sshd.log`.
    pub dir: PathBuf,
    child: Option<Child>,
    /// For [`Kind::Unreachable`]: a socket bound to the port and never listening, so
    /// connecting is refused and no other fleet started meanwhile can take the port.
    reserved: Option<OwnedFd>,
}

impl Host {
    /// sshd's log for this host (empty for an unreachable one).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Its `sshd` listener's process id, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A running fleet; dropping it stops every `sshd` (and their sessions) and removes its directory.
#[derive(Debug)]
pub struct SshFleet {
    dir: PathBuf,
    hosts: Vec<Host>,
}

/// The fleets this process started, so two in one test binary get two directories.
static STARTED: AtomicUsize = AtomicUsize::new(0);

impl SshFleet {
    /// Start `spec`'s hosts in a new directory under the system's temporary directory.
    pub fn start(spec: &Spec) -> SshFleet {
        let base = std::env::temp_dir();
        let prefix = "vigil-sshfleet-";
        // Directories left by test processes that have ended (a killed test runs no Drop).
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix).and_then(|r| r.split('-').next()) {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        SshFleet::start_in(spec, &base.join(format!("{prefix}{}-{n}", std::process::id())))
    }

    /// Start `spec`'s hosts in `dir`, which must not exist yet (it is created, and removed on drop).
    pub fn start_in(spec: &Spec, dir: &Path) -> SshFleet {
        assert!(!dir.exists(), "{} exists already: a fleet makes its own directory", dir.display());
        let names: HashSet<&str> = spec.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names.len(), spec.hosts.len(), "two hosts of the spec share a name");
        ok(&format!("mkdir -p {0} /run/sshd && chmod 755 {0}", q(dir)));
        if spec.hosts.iter().any(|h| h.kind.becomes()) {
            ensure_users();
        }
        // The controller's key, and a stranger's key for the hosts that refuse ours.
        keygen(&dir.join("client"));
        keygen(&dir.join("stranger"));
        std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).unwrap();
        std::fs::copy(dir.join("stranger.pub"), dir.join("refused_keys")).unwrap();
        ok(&format!("chmod 644 {} {}", q(&dir.join("authorized_keys")), q(&dir.join("refused_keys"))));

        let mut fleet = SshFleet { dir: dir.to_path_buf(), hosts: Vec::new() };
        for h in &spec.hosts {
            let hdir = dir.join(&h.name);
            std::fs::create_dir(&hdir).unwrap();
            let mut host = Host {
                name: h.name.clone(),
                kind: h.kind,
                port: 0,
                user: h.kind.user(),
                root: h.root.clone(),
                groups: h.groups.clone(),
                dir: hdir.clone(),
                child: None,
                reserved: None,
            };
            if h.kind == Kind::Unreachable {
                let (fd, port) = reserve_port();
                (host.reserved, host.port) = (Some(fd), port);
            } else {
                keygen(&hdir.join("host_ed25519"));
                match h.kind {
                    Kind::ForeignArch => foreign_uname(&hdir),
                    Kind::NoexecBin => shim(&hdir, "findmnt", "exit 1\n"),
                    _ => {}
                }
                host.port = free_port();
                std::fs::write(hdir.join("sshd_config"), sshd_config(host.port, &hdir, dir, h.kind)).unwrap();
                host.child = Some(spawn_sshd(&hdir, h.kind));
            }
            // Pushed before waiting, so a host that fails to start is still stopped on drop.
            fleet.hosts.push(host);
        }
        let mut known = String::new();
        for h in &mut fleet.hosts {
            if h.child.is_some() {
                wait_listening(h, dir);
                let public = std::fs::read_to_string(h.dir.join("host_ed25519.pub")).unwrap();
                let mut fields = public.split_whitespace();
                let (alg, blob) = (fields.next().unwrap(), fields.next().unwrap());
                writeln!(known, "[127.0.0.1]:{} {alg} {blob}", h.port).unwrap();
            }
        }
        std::fs::write(dir.join("known_hosts"), known).unwrap();
        std::fs::write(dir.join("ssh_config"), fleet.client_config()).unwrap();
        std::fs::write(dir.join("inventory.ini"), fleet.ini()).unwrap();
        std::fs::write(dir.join("inventory.yml"), fleet.yaml()).unwrap();
        std::fs::write(dir.join("inventory.json"), fleet.json()).unwrap();
        fleet.write_split();
        fleet
    }

    /// The fleet's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The INI inventory (`[fleet]`, one group per extra group, `[fleet:vars]`).
    pub fn inventory_ini(&self) -> PathBuf {
        self.dir.join("inventory.ini")
    }

    /// The same inventory in Ansible's YAML format.
    pub fn inventory_yaml(&self) -> PathBuf {
        self.dir.join("inventory.yml")
    }

    /// The same inventory as `ansible-inventory --list` prints it.
    pub fn inventory_json(&self) -> PathBuf {
        self.dir.join("inventory.json")
    }

    /// The same inventory with its variables beside it: `split/inventory.ini` names
    /// only hosts and groups; `split/host_vars/NAME.yml` and `split/group_vars/fleet.yml`
    /// hold the variables.
    pub fn inventory_split(&self) -> PathBuf {
        self.dir.join("split/inventory.ini")
    }

    /// The controller's `ssh_config` (key, known hosts, strict checking, batch mode).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// The controller's private key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// The known-hosts file listing every listening host's key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// Every host, in inventory order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host named `name`; panics naming the fleet's hosts when there is none.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap_or_else(|| {
            let all: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
            panic!("no host {name} in the fleet ({})", all.join(", "))
        })
    }

    /// Run `cmd` on host `name` with the system `ssh` and the fleet's
    /// `ssh_config`, as the inventory's user, giving up after `secs` seconds
    /// (`timeout`, exit 124): (exit code, stdout + stderr).
    pub fn ssh(&self, name: &str, cmd: &str, secs: u32) -> (i32, String) {
        let h = self.host(name);
        sh(&format!(
            "timeout {secs} ssh -F {} -p {} {}@127.0.0.1 {} </dev/null",
            q(&self.ssh_config()),
            h.port,
            h.user,
            shell_quote(cmd)
        ))
    }

    fn client_config(&self) -> String {
        format!(
            "# The controller's view of a vigil_testkit::sshfleet fleet: every host key is checked.\n\
             Host *\n\
             \x20 IdentityFile {key}\n\
             \x20 IdentitiesOnly yes\n\
             \x20 UserKnownHostsFile {known}\n\
             \x20 GlobalKnownHostsFile /dev/null\n\
             \x20 StrictHostKeyChecking yes\n\
             \x20 UpdateHostKeys no\n\
             \x20 BatchMode yes\n\
             \x20 PasswordAuthentication no\n\
             \x20 KbdInteractiveAuthentication no\n\
             \x20 ConnectTimeout 10\n",
            key = self.client_key().display(),
            known = self.known_hosts().display(),
        )
    }

    /// Each host's variables, in the order the inventories list them.
    fn host_vars(&self, h: &Host) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("ansible_host", "127.0.0.1".to_string()),
            ("ansible_port", h.port.to_string()),
            ("ansible_user", h.user.to_string()),
        ];
        if h.kind.becomes() {
            v.push(("ansible_become", "true".to_string()));
        }
        if let Some(r) = &h.root {
            v.push(("vigil_root", r.display().to_string()));
        }
        v
    }

    /// The variables every host shares (`[fleet:vars]`).
    fn group_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ansible_ssh_common_args", format!("-F {}", self.ssh_config().display())),
            ("ansible_python_interpreter", "/usr/bin/python3".to_string()),
        ]
    }

    /// Extra groups in first-seen order, each with its members.
    fn extra_groups(&self) -> Vec<(String, Vec<&str>)> {
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for h in &self.hosts {
            for g in &h.groups {
                match groups.iter_mut().find(|(n, _)| n == g) {
                    Some((_, members)) => members.push(&h.name),
                    None => groups.push((g.clone(), vec![&h.name])),
                }
            }
        }
        groups
    }

    fn ini(&self) -> String {
        let mut s = String::from("# A vigil_testkit::sshfleet fleet (real sshd on 127.0.0.1).\n[fleet]\n");
        for h in &self.hosts {
            s.push_str(&h.name);
            for (k, v) in self.host_vars(h) {
                write!(s, " {k}={}", ini_value(&v)).unwrap();
            }
            s.push('\n');
        }
        for (g, members) in self.extra_groups() {
            writeln!(s, "\n[{g}]").unwrap();
            for m in members {
                writeln!(s, "{m}").unwrap();
            }
        }
        s.push_str("\n[fleet:vars]\n");
        for (k, v) in self.group_vars() {
            writeln!(s, "{k}={}", ini_value(&v)).unwrap();
        }
        s
    }

    fn write_split(&self) {
        let split = self.dir.join("split");
        std::fs::create_dir_all(split.join("host_vars")).unwrap();
        std::fs::create_dir_all(split.join("group_vars")).unwrap();
        let mut ini =
            String::from("# A vigil_testkit::sshfleet fleet; variables in host_vars/ and group_vars/.\n[fleet]\n");
        for h in &self.hosts {
            writeln!(ini, "{}", h.name).unwrap();
            let vars: String = self.host_vars(h).iter().map(|(k, v)| format!("{k}: {}\n", yaml_value(k, v))).collect();
            std::fs::write(split.join("host_vars").join(format!("{}.yml", h.name)), vars).unwrap();
        }
        for (g, members) in self.extra_groups() {
            writeln!(ini, "\n[{g}]\n{}", members.join("\n")).unwrap();
        }
        let vars: String = self.group_vars().iter().map(|(k, v)| format!("{k}: {}\n", yaml_value(k, v))).collect();
        std::fs::write(split.join("group_vars/fleet.yml"), vars).unwrap();
        std::fs::write(split.join("inventory.ini"), ini).unwrap();
    }

    fn yaml(&self) -> String {
        let mut s = String::from(
            "# A vigil_testkit::sshfleet fleet (real sshd on 127.0.0.1).\nall:\n  children:\n    fleet:\n      hosts:\n",
        );
        for h in &self.hosts {
            writeln!(s, "        {}:", h.name).unwrap();
            for (k, v) in self.host_vars(h) {
                writeln!(s, "          {k}: {}", yaml_value(k, &v)).unwrap();
            }
        }
        s.push_str("      vars:\n");
        for (k, v) in self.group_vars() {
            writeln!(s, "        {k}: {}", yaml_value(k, &v)).unwrap();
        }
        for (g, members) in self.extra_groups() {
            writeln!(s, "    {g}:\n      hosts:").unwrap();
            for m in members {
                writeln!(s, "        {m}:").unwrap();
            }
        }
        s
    }

    fn json(&self) -> String {
        use serde_json::{Map, Value, json};
        let mut hostvars = Map::new();
        for h in &self.hosts {
            let mut vars = Map::new();
            for (k, v) in self.group_vars().into_iter().chain(self.host_vars(h)) {
                vars.insert(k.to_string(), typed(k, &v));
            }
            hostvars.insert(h.name.clone(), Value::Object(vars));
        }
        let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        let mut doc = Map::new();
        doc.insert("_meta".into(), json!({ "hostvars": hostvars }));
        // As ansible-inventory 2.19 prints it: `ungrouped` first among the children, absent when empty.
        let mut children = vec!["ungrouped".to_string(), "fleet".to_string()];
        doc.insert("fleet".into(), json!({ "hosts": names }));
        for (g, members) in self.extra_groups() {
            doc.insert(g.clone(), json!({ "hosts": members }));
            children.push(g);
        }
        doc.insert("all".into(), json!({ "children": children }));
        serde_json::to_string_pretty(&Value::Object(doc)).unwrap() + "\n"
    }
}

impl Drop for SshFleet {
    fn drop(&mut self) {
        // Every process under each listener (connection handlers, sessions, the hanging
        // `sleep`) runs in its own session, so it is found by parentage, then killed.
        let listeners: Vec<u32> = self.hosts.iter().filter_map(Host::pid).collect();
        let under = descendants(&listeners);
        for pid in listeners.iter().chain(&under) {
            // SAFETY: kill has no memory preconditions; these are processes this fleet started.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        for h in &mut self.hosts {
            if let Some(mut c) = h.child.take() {
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// sshd_config for one host in `hdir` of the fleet in `dir`: only what the fleet's kinds
/// need, nothing read from /etc/ssh. A host that refuses our key reads the stranger's.
fn sshd_config(port: u16, hdir: &Path, dir: &Path, kind: Kind) -> String {
    let keys = dir.join(if kind == Kind::KeyRefused { "refused_keys" } else { "authorized_keys" });
    let mut s = format!(
        "# One host of a vigil_testkit::sshfleet fleet.\n\
         Port {port}\n\
         ListenAddress 127.0.0.1:{port}\n\
         HostKey {hk}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {keys}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         UsePAM no\n\
         StrictModes no\n\
         PrintMotd no\n\
         X11Forwarding no\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         PermitTunnel no\n\
         MaxStartups 200\n\
         MaxSessions 20\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
        hk = hdir.join("host_ed25519").display(),
        pid = hdir.join("sshd.pid").display(),
        keys = keys.display(),
    );
    match kind {
        Kind::Hangs => s.push_str("ForceCommand sleep 3600\n"),
        // The login shell runs this with the client's command in SSH_ORIGINAL_COMMAND.
        Kind::Dies => s.push_str(
            "ForceCommand case \"$SSH_ORIGINAL_COMMAND\" in *__remote*) head -c 1 >/dev/null; \
             printf '{\"partial'; kill -9 $$;; *) eval \"$SSH_ORIGINAL_COMMAND\";; esac\n",
        ),
        // The login environment as a profile would set it: the shim first on PATH.
        Kind::ForeignArch => {
            let shim = hdir.join("shim");
            let log = hdir.join("commands.log");
            writeln!(
                s,
                "ForceCommand printf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> {}; PATH={}:$PATH; export PATH; \
                 eval \"$SSH_ORIGINAL_COMMAND\"",
                log.display(),
                shim.display()
            )
            .unwrap();
        }
        // Last: a Match block runs to the end of the file.
        Kind::NoexecBin => {
            writeln!(
                s,
                "Match User {NOSUDO_USER}\n  ForceCommand PATH={}:$PATH; export PATH; eval \"$SSH_ORIGINAL_COMMAND\"",
                hdir.join("shim").display()
            )
            .unwrap();
        }
        _ => {}
    }
    s
}

/// A `uname` in `hdir/shim` that answers [`FOREIGN_ARCH`] to `-m` and is the real one otherwise.
fn foreign_uname(hdir: &Path) {
    let real = ["/usr/bin/uname", "/bin/uname"].into_iter().map(Path::new).find(|p| p.exists()).unwrap();
    let body = format!("case \"$*\" in -m) echo {FOREIGN_ARCH};; *) exec {} \"$@\";; esac\n", real.display());
    shim(hdir, "uname", &body);
}

/// `hdir/shim/NAME`, a `sh` script running `body`, readable and runnable by every login.
fn shim(hdir: &Path, name: &str, body: &str) {
    let dir = hdir.join("shim");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), format!("#!/bin/sh\n{body}")).unwrap();
    ok(&format!("chmod 755 {} {}", q(&dir), q(&dir.join(name))));
}

/// Start `sshd -D` on the configuration in `hdir`, logging to `hdir/sshd.log`. A
/// [`Kind::NoexecBin`] host's sshd (and so every session) runs in a mount namespace of
/// its own where the push directory is an empty noexec tmpfs; `unshare` execs the shell,
/// which execs sshd, so the child is sshd itself.
fn spawn_sshd(hdir: &Path, kind: Kind) -> Child {
    let mut c = if kind == Kind::NoexecBin {
        // The mount point is made as a push would make it (0700 all the way), so the
        // host's own pushes are not disturbed by its existing.
        let script = format!(
            "set -e; (umask 077; mkdir -p /var/lib/vigil/fleet/bin); \
             mount -t tmpfs -o noexec,nosuid,nodev,mode=0700 vigil-noexec-bin /var/lib/vigil/fleet/bin; \
             if u=$(id -u {NOSUDO_USER} 2>/dev/null); then \
               home=$(getent passwd {NOSUDO_USER} | cut -d: -f6); \
               mount -t tmpfs -o noexec,nosuid,nodev,mode=0755,uid=$u,gid=$(id -g {NOSUDO_USER}) vigil-noexec-home \"$home\"; \
             fi; \
             exec /usr/sbin/sshd \"$@\""
        );
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "/bin/sh", "-c", script.as_str(), "sshd"]);
        c
    } else {
        Command::new("/usr/sbin/sshd")
    };
    c.arg("-D")
        .arg("-f")
        .arg(hdir.join("sshd_config"))
        .arg("-E")
        .arg(hdir.join("sshd.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait until `h`'s sshd accepts connections. A port taken between asking for a free
/// one and sshd binding it (parallel tests) is replaced by another, a few times.
fn wait_listening(h: &mut Host, dir: &Path) {
    let log = h.dir.join("sshd.log");
    for _ in 0..5 {
        let (port, name) = (h.port, h.name.clone());
        let Some(child) = h.child.as_mut() else { return };
        let mut exited = None;
        wait_for(&format!("sshd of {name} on 127.0.0.1:{port} (log: {})", log.display()), || {
            if let Ok(Some(st)) = child.try_wait() {
                exited = Some(st);
                return true;
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let Some(st) = exited else { return };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(text.contains("Address already in use"), "sshd of {name} exited ({st}): {text}");
        h.port = free_port();
        std::fs::write(h.dir.join("sshd_config"), sshd_config(h.port, &h.dir, dir, h.kind)).unwrap();
        h.child = Some(spawn_sshd(&h.dir, h.kind));
    }
    panic!("sshd of {} found no free port in 5 tries", h.name);
}

/// A TCP socket bound to a free 127.0.0.1 port and never listening: connecting to
/// it is refused. Returns it and its port.
fn reserve_port() -> (OwnedFd, u16) {
    // SAFETY: socket(2) returns a new descriptor or -1, checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
        sin_zero: [0; 8],
    };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: addr and len describe a valid sockaddr_in for bind and getsockname.
    unsafe {
        assert_eq!(libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len), 0, "bind 127.0.0.1:0");
        assert_eq!(libc::getsockname(fd.as_raw_fd(), (&raw mut addr).cast(), &mut len), 0, "getsockname");
    }
    (fd, u16::from_be(addr.sin_port))
}

/// An ed25519 key pair at `path` and `path.pub`, no passphrase.
fn keygen(path: &Path) {
    ok(&format!("ssh-keygen -q -t ed25519 -N '' -C vigil-sshfleet -f {}", q(path)));
}

/// The fleet's two accounts, created when missing (idempotent; serialised across
/// processes by a lock file): [`SUDO_USER`] with a 0440 sudoers.d rule for
/// passwordless `sudo -n`, [`NOSUDO_USER`] with none. Their password field is
/// `*` (no password, not locked: with `UsePAM no` sshd refuses a `!`-locked account
/// even a key).
fn ensure_users() {
    let script = format!(
        "set -e
for u in {SUDO_USER} {NOSUDO_USER}; do
  id -u \"$u\" >/dev/null 2>&1 || useradd -m -s /bin/bash \"$u\"
  usermod -p '*' \"$u\"
done
rule='{SUDO_USER} ALL=(root) NOPASSWD: ALL'
f=/etc/sudoers.d/{SUDO_USER}
if [ \"$(cat \"$f\" 2>/dev/null)\" != \"$rule\" ]; then
  printf '%s\\n' \"$rule\" > \"$f.tmp\" && chmod 0440 \"$f.tmp\" && visudo -cqf \"$f.tmp\" && mv \"$f.tmp\" \"$f\"
fi
rm -f /etc/sudoers.d/{NOSUDO_USER}"
    );
    ok(&format!("flock /run/vigil-sshfleet-users.lock sh -c {}", shell_quote(&script)));
}

/// Every process below `roots` (children, their children, …), by the parent ids in /proc.
fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // The command name may hold spaces and parentheses: the fields after the last `)`.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
            parent_of.push((pid, ppid));
        }
    }
    let mut found: Vec<u32> = Vec::new();
    let mut frontier: Vec<u32> = roots.to_vec();
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// A path quoted for `sh`.
fn q(p: &Path) -> String {
    shell_quote(&p.display().to_string())
}

/// `s` in single quotes for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// An INI inventory value: quoted when it holds a space (Ansible and vigil both unquote it).
fn ini_value(v: &str) -> String {
    if v.contains(char::is_whitespace) { format!("\"{v}\"") } else { v.to_string() }
}

/// A YAML value: numbers and booleans bare, strings as JSON strings (valid YAML).
fn yaml_value(key: &str, v: &str) -> String {
    typed(key, v).to_string()
}

/// The JSON value Ansible would give a variable: the port a number, become a boolean.
fn typed(key: &str, v: &str) -> serde_json::Value {
    match key {
        "ansible_port" => v.parse::<u16>().map_or_else(|_| v.into(), Into::into),
        "ansible_become" => serde_json::Value::Bool(v == "true"),
        _ => v.into(),
    }
}
