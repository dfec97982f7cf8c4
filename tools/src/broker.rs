//! The broker: the few read-only facts a confined worker cannot gather itself.
//!
//! Read-only tools run in a worker process with no network, no root and a
//! Landlock domain (see `docs/architecture.md`, "Parent and worker"). A few
//! facts live where the worker cannot reach: the firewall ruleset (`nft`,
//! `iptables-save` need `CAP_NET_ADMIN`, which could also write rules), the
//! socket tables of the host's network namespace (`/proc/net/*` shows the
//! reader's own, empty, namespace), and `/proc/PID/fd` of other processes
//! (hidden by the uid drop and Landlock's ptrace rule), and the loopback
//! probes of datastores' HTTP APIs (the worker has no network), and the Docker
//! Engine API (a root-only socket): its fixed GET requests and the export of the
//! images the containers use, which the worker's trivy then scans. For those the worker's
//! [`Host`](crate::Host) asks its [`Broker`]: the parent answers a [`Fact`]
//! only when it is one of the fixed, read-only kinds here, checked again on the
//! parent's side by [`Fact::answer`] ([`Fact::answer_for`] for the Docker pass, which
//! needs the parent's own configuration: the engine is named there, never by the
//! worker, which chooses only a container filter and whether images are exported).
//! The worker cannot ask the parent to run anything else, read anything else or write
//! anything but the image archives of that pass, into a directory the parent owns.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::finding::Finding;

/// The commands a worker may have the parent run: the firewall's read commands, exactly.
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("nft", &["-j", "list", "ruleset"]),
    ("iptables-save", &[]),
    ("ip6tables-save", &[]),
    ("iptables-nft-save", &[]),
    ("ip6tables-nft-save", &[]),
    ("iptables-legacy-save", &[]),
    ("ip6tables-legacy-save", &[]),
    ("ufw", &["status", "verbose"]),
    ("firewall-cmd", &["--state"]),
    ("firewall-cmd", &["--list-all"]),
];

/// The socket tables under `/proc/net` a worker may have the parent read.
pub const PROC_NET: &[&str] = &["tcp", "tcp6", "udp", "udp6", "raw", "raw6", "unix"];

/// Longest a brokered command may run.
pub(crate) const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// One fixed, read-only request from the worker to the parent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fact {
    /// Run one of [`COMMANDS`] (matched exactly, program and arguments).
    Command {
        /// The program, by name.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// `/proc/net/TABLE` of the host's network namespace, TABLE one of [`PROC_NET`].
    ProcNet {
        /// The table.
        table: String,
    },
    /// The descriptors of process `pid`: `(fd number, link target)`, e.g. `("4", "socket:[123]")`.
    ProcFds {
        /// The process.
        pid: u32,
    },
    /// Whether the kernel's clock is synchronised (`adjtimex` with no change asked:
    /// seccomp refuses `adjtimex` to the worker, since the same call can set the clock).
    ClockSynchronized,
    /// The host's listening sockets and their owners, as [`crate::ports::listeners`] reads
    /// them in the parent: `NETLINK_SOCK_DIAG` in the host's network namespace, owners from
    /// every `/proc/PID/fd` (command lines redacted there).
    Listeners,
    /// The listening sockets alone, without owners ([`crate::ports::sockets::table`]): the
    /// kernel's table of the host's network namespace, for a check that finds one socket's
    /// holder itself (the database endpoint).
    SocketTable,
    /// The plain HTTP probe of a datastore's API ([`crate::ports::HTTP_PROBES`]): the parent
    /// sends the fixed request for `port` only when the socket table shows a TCP socket
    /// listening there that `address` reaches (loopback for a wildcard or loopback socket,
    /// else the socket's own address), and returns its one-line judgement.
    HttpProbe {
        /// Where to connect (checked against the socket table).
        address: IpAddr,
        /// One of [`crate::ports::HTTP_PROBES`]' ports.
        port: u16,
    },
    /// The Docker engine pass of `docker_containers` ([`crate::docker::pass`]): the parent names
    /// the engine from its own configuration (never from the worker), sends its fixed GET
    /// requests (version, info, list, inspect, stats over its own sampling window) and, when
    /// asked, exports the images the containers use (`GET /images/{id}/get`, size-capped)
    /// into a directory it owns inside the worker's scratch, for the worker's trivy to read.
    Docker {
        /// Only this container (its name, or an id prefix of at least 6 characters).
        container: Option<String>,
        /// Export the images the containers use (for the vulnerability scan).
        export_images: bool,
    },
}

/// The parent's answer to a [`Fact`]. Adjacently tagged, the tag first, so a large answer
/// is read straight into its type rather than buffered to find the tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "body")]
pub enum FactAnswer {
    /// What the command printed.
    Command {
        /// Exit status.
        status: i32,
        /// Standard output.
        stdout: String,
        /// Standard error.
        stderr: String,
    },
    /// The table's text.
    Text {
        /// The text.
        text: String,
    },
    /// A process's descriptors.
    Fds {
        /// `(fd number, link target)`.
        fds: Vec<(String, String)>,
    },
    /// Whether the clock is synchronised (`None`: the kernel did not say).
    Clock {
        /// `true` when synchronised.
        synchronized: Option<bool>,
    },
    /// The listening sockets, with the socket inodes (which [`PortsFacts`] does not carry).
    Listeners {
        /// The table and its owners: [`crate::ports::PortsFacts`] as JSON, carried as it was
        /// written (the broker's types stay a leaf that imports no reader). Embedded, not a
        /// string: 3,000 listeners are neither escaped into a string nor unescaped out of
        /// one, and the worker parses them straight into the type, without a tree of JSON
        /// values in between.
        facts: Box<serde_json::value::RawValue>,
        /// Each listener's socket inode, in the same order.
        inodes: Vec<u64>,
        /// Each owner's name and command line, once per pid: `facts` leaves them out of its
        /// listeners (3,000 sockets may be held by 300 processes), the worker puts them back.
        #[serde(default)]
        owners: HashMap<u32, (Option<String>, Option<String>)>,
        /// Not-checked findings of the read (e.g. netlink unavailable).
        findings: Vec<Finding>,
    },
    /// The listening sockets without owners.
    SocketTable {
        /// [`crate::ports::sockets::Table`] as JSON (sockets and where they were read).
        table: serde_json::Value,
        /// Not-checked findings of the read (e.g. netlink unavailable).
        findings: Vec<Finding>,
    },
    /// An HTTP probe's judgement (`answers without authentication`, `requires authentication`…).
    Probe {
        /// The judgement.
        verdict: String,
    },
    /// The Docker engine pass.
    Docker {
        /// [`crate::docker::EnginePass`] as JSON.
        pass: serde_json::Value,
    },
}

/// Why a fact was not given, as the worker's tool sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FactError {
    /// Not there (no such program, table or process).
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// Anything else, in words.
    Failed {
        /// Why.
        why: String,
    },
}

/// Where the worker's host sends [`Fact`]s. Blocking: called from tool threads.
pub trait Broker: Send + Sync + std::fmt::Debug {
    /// Ask the parent; the answer or why not.
    fn ask(&self, fact: Fact) -> Result<FactAnswer, FactError>;
}

impl Fact {
    /// The fact a worker's `run(program, args)` becomes, when it is one of [`COMMANDS`].
    pub fn command(program: &str, args: &[&str]) -> Option<Fact> {
        COMMANDS
            .iter()
            .any(|(p, a)| *p == program && *a == args)
            .then(|| Fact::Command { program: program.to_string(), args: args.iter().map(|s| s.to_string()).collect() })
    }

    /// The fact a worker's read of `path` becomes: `/proc/net/TABLE` (also via `/proc/self/net`).
    pub fn read(path: &str) -> Option<Fact> {
        let table = path.strip_prefix("/proc/net/").or_else(|| path.strip_prefix("/proc/self/net/"))?;
        PROC_NET.contains(&table).then(|| Fact::ProcNet { table: table.to_string() })
    }

    /// The pid whose descriptors a worker's listing of `path` (`/proc/PID/fd`) asks for.
    pub fn fd_dir(path: &str) -> Option<u32> {
        let pid = path.strip_prefix("/proc/")?.strip_suffix("/fd")?;
        pid.parse().ok().filter(|p| *p > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;

    #[test]
    fn only_the_fixed_kinds_are_recognised() {
        assert!(Fact::command("nft", &["-j", "list", "ruleset"]).is_some());
        assert!(Fact::command("nft", &["flush", "ruleset"]).is_none(), "a writing nft is never brokered");
        assert!(Fact::command("iptables-save", &["-M", "/x"]).is_none());
        assert!(Fact::command("sh", &["-c", "id"]).is_none());
        assert_eq!(Fact::read("/proc/net/tcp6"), Some(Fact::ProcNet { table: "tcp6".into() }));
        assert_eq!(Fact::read("/proc/net/../../etc/shadow"), None);
        assert_eq!(Fact::read("/etc/shadow"), None);
        assert_eq!(Fact::fd_dir("/proc/42/fd"), Some(42));
        assert_eq!(Fact::fd_dir("/proc/self/fd"), None);
    }

    /// Answers every fact with a marker, and remembers what it was asked.
    #[derive(Debug, Default)]
    struct Parent(std::sync::Mutex<Vec<Fact>>);

    impl Broker for Parent {
        fn ask(&self, fact: Fact) -> Result<FactAnswer, FactError> {
            self.0.lock().unwrap().push(fact.clone());
            Ok(match fact {
                Fact::Command { .. } => {
                    FactAnswer::Command { status: 0, stdout: "from the parent".into(), stderr: String::new() }
                }
                Fact::ProcNet { .. } => FactAnswer::Text { text: "the parent's table".into() },
                Fact::ProcFds { .. } => FactAnswer::Fds { fds: vec![("3".into(), "socket:[42]".into())] },
                Fact::ClockSynchronized => FactAnswer::Clock { synchronized: Some(false) },
                Fact::Listeners => {
                    let facts = serde_json::value::RawValue::from_string("{}".into()).unwrap();
                    FactAnswer::Listeners { facts, inodes: Vec::new(), owners: HashMap::new(), findings: Vec::new() }
                }
                Fact::SocketTable => FactAnswer::SocketTable { table: serde_json::json!({}), findings: Vec::new() },
                Fact::HttpProbe { .. } => FactAnswer::Probe { verdict: "from the parent".into() },
                Fact::Docker { .. } => FactAnswer::Docker { pass: serde_json::json!({}) },
            })
        }
    }

    #[tokio::test]
    async fn a_workers_host_asks_the_parent_for_exactly_the_fixed_facts() {
        let parent = std::sync::Arc::new(Parent::default());
        let host = Host::live().with_broker(parent.clone());
        let out = host.run("nft", &["-j", "list", "ruleset"], Duration::from_secs(5)).await.unwrap();
        assert_eq!(out.stdout, "from the parent");
        assert_eq!(host.read_to_string("/proc/net/tcp").unwrap(), "the parent's table");
        assert_eq!(host.read_dir("/proc/1/fd").unwrap(), ["3"]);
        assert_eq!(host.clock_synchronized(), Some(false), "the parent's answer, not the worker's own call");
        assert_eq!(host.read_link("/proc/1/fd/3").unwrap(), "socket:[42]");
        assert_eq!(parent.0.lock().unwrap().len(), 5);
        // Anything else is the worker's own business, never the parent's.
        let own = host.run("sh", &["-c", "echo own"], Duration::from_secs(5)).await.unwrap();
        assert_eq!(own.stdout, "own\n");
        assert!(host.read_to_string("/proc/self/status").unwrap().contains("Pid:"));
        assert!(host.read_dir("/proc/self/fd").is_ok());
        let asked = parent.0.lock().unwrap().clone();
        assert_eq!(asked.len(), 5, "{asked:?}");
    }

    #[tokio::test]
    async fn the_parent_refuses_what_the_list_does_not_name_whatever_the_worker_sends() {
        let host = Host::live();
        let forged = Fact::Command { program: "touch".into(), args: vec!["/tmp/vigil-broker-forged".into()] };
        let e = forged.answer(&host).await.unwrap_err();
        assert!(matches!(e, FactError::Failed { ref why } if why.contains("not a command")), "{e:?}");
        assert!(!std::path::Path::new("/tmp/vigil-broker-forged").exists());
        let forged = Fact::ProcNet { table: "../../etc/shadow".into() };
        assert!(matches!(forged.answer(&host).await, Err(FactError::Failed { .. })));
        let off_root = Fact::ProcNet { table: "tcp".into() }.answer(&Host::at("/nonexistent")).await;
        assert!(matches!(off_root, Err(FactError::Failed { .. })));
        match (Fact::ProcNet { table: "tcp".into() }).answer(&host).await {
            Ok(FactAnswer::Text { text }) => assert!(text.contains("local_address"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_docker_pass_is_named_by_the_parents_config_and_bounded() {
        let host = Host::at("/nonexistent");
        let fact = Fact::Docker { container: None, export_images: true };
        // Without the parent's context there is no engine to name.
        assert!(matches!(fact.answer(&host).await, Err(FactError::Failed { .. })));
        let long = Fact::Docker { container: Some("x".repeat(300)), export_images: false };
        let ctx = crate::Ctx::new(host.clone());
        assert!(matches!(long.answer_for(&ctx, None).await, Err(FactError::Failed { .. })));
        // The parent's own configuration names the engine (here: a socket that is not there).
        let mut config = crate::Config::default();
        config.docker.docker_host = Some("unix:///nonexistent/docker.sock".into());
        let ctx = crate::Ctx::new(host).with_config(config);
        let Ok(FactAnswer::Docker { pass }) = fact.answer_for(&ctx, None).await else { panic!("no pass") };
        assert_eq!(pass["kind"], "unreachable", "{pass}");
        assert_eq!(pass["endpoint"], "unix:///nonexistent/docker.sock", "{pass}");
        assert_eq!(pass["error"]["kind"], "absent", "{pass}");
    }
}
