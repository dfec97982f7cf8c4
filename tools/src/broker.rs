//! The broker: the few read-only facts a confined worker cannot gather itself.
//!
//! Read-only tools run in a worker process with no network, no root and a
//! Landlock domain (see `docs/architecture.md`, "Parent and worker"). A few
//! facts live where the worker cannot reach: the firewall ruleset (`nft`,
//! `iptables-save` need `CAP_NET_ADMIN`, which could also write rules), the
//! socket tables of the host's network namespace (`/proc/net/*` shows the
//! reader's own, empty, namespace), and `/proc/PID/fd` of other processes
//! (hidden by the uid drop and Landlock's ptrace rule). For those the worker's
//! [`Host`](crate::Host) asks its [`Broker`]: the parent answers a [`Fact`]
//! only when it is one of the fixed, read-only kinds here, checked again on the
//! parent's side by [`Fact::answer`]. The worker cannot ask the parent to run
//! anything else, read anything else or write anything.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::{CmdOutput, Host, HostError};

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
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// One fixed, read-only request from the worker to the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// The parent's answer to a [`Fact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
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

    /// Answer on `host` (the parent's, live) — only the fixed kinds, checked again here:
    /// whatever the worker sends, nothing else runs or is read.
    pub async fn answer(&self, host: &Host) -> Result<FactAnswer, FactError> {
        if !host.is_live() {
            return Err(FactError::Failed { why: "facts are only brokered on the live root".into() });
        }
        match self {
            Fact::Command { program, args } => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                if Fact::command(program, &args).is_none() {
                    return Err(FactError::Failed {
                        why: format!("`{program}` is not a command the worker may ask for"),
                    });
                }
                match host.run(program, &args, COMMAND_LIMIT).await {
                    Ok(CmdOutput { status, stdout, stderr }) => Ok(FactAnswer::Command { status, stdout, stderr }),
                    Err(e) if e.is_not_found() => Err(FactError::NotFound { what: program.clone() }),
                    Err(e) => Err(FactError::Failed { why: e.to_string() }),
                }
            }
            Fact::ProcNet { table } => {
                if !PROC_NET.contains(&table.as_str()) {
                    return Err(FactError::Failed {
                        why: format!("/proc/net/{table} is not a table the worker may ask for"),
                    });
                }
                let path = format!("/proc/net/{table}");
                match host.read(&path) {
                    Ok(b) => Ok(FactAnswer::Text { text: String::from_utf8_lossy(&b).into_owned() }),
                    Err(e) if e.is_not_found() => Err(FactError::NotFound { what: path }),
                    Err(e) => Err(FactError::Failed { why: e.to_string() }),
                }
            }
            Fact::ProcFds { pid } => {
                let dir = format!("/proc/{pid}/fd");
                let names = host.read_dir(&dir).map_err(|e| match e.is_not_found() {
                    true => FactError::NotFound { what: dir.clone() },
                    false => FactError::Failed { why: e.to_string() },
                })?;
                let fds = names
                    .into_iter()
                    .filter_map(|n| host.read_link(&format!("{dir}/{n}")).ok().map(|t| (n, t)))
                    .collect();
                Ok(FactAnswer::Fds { fds })
            }
        }
    }
}

impl FactError {
    /// As the host error the worker's tool would have met reading `path` itself.
    pub fn into_host(self, path: &str) -> HostError {
        match self {
            FactError::NotFound { .. } => HostError::NotFound { path: path.to_string() },
            FactError::Failed { why } => HostError::Io {
                path: path.to_string(),
                source: std::io::Error::other(format!("asked the parent: {why}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
