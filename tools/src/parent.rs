//! The parent's side of the broker: the worker's questions answered on the
//! parent's live host.
//!
//! [`crate::broker`] is a leaf of types the worker and parent share; answering
//! needs [`Host`] and the readers above it (the socket table in [`crate::ports`]),
//! so it lives here, above them all, and nothing below imports it. Whatever the
//! worker sends, only the fixed kinds are answered, each checked again here.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::broker::{Fact, FactAnswer, FactError};
use crate::docker::pass::ExportDir;
use crate::host::{CmdOutput, Host};
use crate::tool::Ctx;

/// An answer the parent started before the worker asked: `None` when it turned out not to be
/// needed (the worker, if it asks after all, is answered afresh).
pub type Early = oneshot::Receiver<Option<Result<FactAnswer, FactError>>>;

/// Answers [`read_ahead`] started for a tool, kept for the first [`ahead`] of that tool.
static READ_AHEAD: Mutex<Option<(String, HashMap<Fact, Early>)>> = Mutex::new(None);

/// [`ahead`] for `tool` on the live host, started as soon as the command line names the tool
/// (`vigil tools run NAME`), before the configuration is read and the gate is built: the
/// socket walk is most of `list_open_ports`, so the sooner it starts the sooner the answer.
/// The first [`ahead`] of the same tool on the live host takes these answers; when no call
/// comes (the gate refused it) they are dropped unread.
pub fn read_ahead(tool: &str) {
    let early = ahead_now(tool, &Host::live());
    if !early.is_empty()
        && let Ok(mut kept) = READ_AHEAD.lock()
    {
        *kept = Some((tool.to_string(), early));
    }
}

/// What the worker will ask for when it runs `tool` on the live `host`, started now (or
/// taken from [`read_ahead`]), so the parent reads while the worker starts: `list_open_ports`
/// asks for the listeners and, when one of them is reachable from other machines, for the
/// firewall's rules; `check_firewall` for the rules. Each answer is the one [`Fact::answer`]
/// gives; it is used once, by the call that started it, and only if the worker asks that very fact.
pub fn ahead(tool: &str, host: &Host) -> HashMap<Fact, Early> {
    let kept = READ_AHEAD.lock().ok().and_then(|mut k| k.take_if(|(t, _)| t == tool && host.is_live()));
    match kept {
        Some((_, early)) => early,
        None => ahead_now(tool, host),
    }
}

/// [`ahead`], started now.
fn ahead_now(tool: &str, host: &Host) -> HashMap<Fact, Early> {
    let mut early = HashMap::new();
    if !host.is_live() || tokio::runtime::Handle::try_current().is_err() {
        return early;
    }
    let firewall: Vec<(Fact, oneshot::Sender<_>)> = match tool {
        "list_open_ports" | "check_firewall" => crate::firewall::first_commands(host)
            .iter()
            .filter_map(|(program, args)| Fact::command(program, args))
            .map(|fact| {
                let (tx, rx) = oneshot::channel();
                early.insert(fact.clone(), rx);
                (fact, tx)
            })
            .collect(),
        _ => return early,
    };
    // `vigil -vv`: when the parent starts reading (the walk is most of `list_open_ports`).
    tracing::debug!("parent: reading {tool}'s facts ahead");
    let start = {
        let host = host.clone();
        move |wanted: bool| {
            // Not wanted: dropped, and the worker (which asks only if it disagrees) is answered afresh.
            if !wanted {
                return;
            }
            // The nf_tables `iptables-save`s wait for `nft`, as `firewall::runtime_outputs` does:
            // when nftables holds no table they are not started, and the worker, reading the same
            // empty ruleset, does not ask for them.
            let is_save = |f: &Fact| matches!(f, Fact::Command { program, .. } if crate::firewall::NFT_SAVES.contains(&program.as_str()));
            let (saves, others): (Vec<_>, Vec<_>) = firewall.into_iter().partition(|(f, _)| is_save(f));
            let mut saves = Some(saves);
            let answer = |fact: Fact, tx: oneshot::Sender<_>, host: Host| {
                tokio::spawn(async move {
                    let _ = tx.send(Some(fact.answer(&host).await));
                });
            };
            for (fact, tx) in others {
                let host = host.clone();
                let after = match &fact {
                    Fact::Command { program, .. } if program == "nft" => saves.take().unwrap_or_default(),
                    _ => Vec::new(),
                };
                tokio::spawn(async move {
                    let got = fact.answer(&host).await;
                    let empty = matches!(&got, Ok(FactAnswer::Command { status: 0, stdout, .. })
                        if crate::firewall::nft_holds_no_table(stdout));
                    let _ = tx.send(Some(got));
                    for (fact, tx) in after.into_iter().filter(|_| !empty) {
                        answer(fact, tx, host.clone());
                    }
                });
            }
            for (fact, tx) in saves.into_iter().flatten() {
                answer(fact, tx, host.clone());
            }
        }
    };
    if tool == "check_firewall" {
        start(true);
        return early;
    }
    let (tx, rx) = oneshot::channel();
    early.insert(Fact::Listeners, rx);
    let host = host.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let answer = listeners(&host, |public| {
            let _guard = rt.enter();
            start(public);
        });
        let _ = tx.send(Some(answer));
        // Idle now until the worker's result comes back, which the parent then redacts.
        crate::redact::Redactor::global().compile_name_rules();
    });
    early
}

/// The answer to [`Fact::Listeners`]: [`crate::ports::sockets::listeners_then`] on the parent's
/// host, `public` told as soon as the table is read.
fn listeners(host: &Host, public: impl FnOnce(bool)) -> Result<FactAnswer, FactError> {
    let (mut facts, findings) =
        crate::ports::sockets::listeners_then(host, public).map_err(|e| FactError::Failed { why: e.to_string() })?;
    let inodes = facts.listeners.iter().map(|l| l.inode).collect();
    let mut owners = HashMap::new();
    for l in facts.listeners.iter_mut() {
        if let Some(pid) = l.pid {
            let (process, command) = (l.process.take(), l.command.take());
            owners.entry(pid).or_insert((process, command));
        }
    }
    let facts = serde_json::value::to_raw_value(&facts).map_err(|e| FactError::Failed { why: e.to_string() })?;
    Ok(FactAnswer::Listeners { facts, inodes, owners, findings })
}

impl Fact {
    /// Answer as the parent of a worker: `ctx` is the parent's own (its configuration names the
    /// Docker engine; nothing the worker sends does), `exports` the directory the parent owns for
    /// image exports. Every other kind is [`Fact::answer`] on the parent's host.
    pub async fn answer_for(&self, ctx: &Ctx, exports: Option<&ExportDir>) -> Result<FactAnswer, FactError> {
        let Fact::Docker { container, export_images } = self else {
            return self.answer(&ctx.host).await;
        };
        if container.as_ref().is_some_and(|c| c.is_empty() || c.len() > 256) {
            return Err(FactError::Failed { why: "a container filter is 1 to 256 characters".into() });
        }
        let pass = crate::docker::pass::run(ctx, container.as_deref(), *export_images, exports).await;
        let pass = serde_json::to_value(&pass).map_err(|e| FactError::Failed { why: e.to_string() })?;
        Ok(FactAnswer::Docker { pass })
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
                match host.run(program, &args, crate::broker::COMMAND_LIMIT).await {
                    Ok(CmdOutput { status, stdout, stderr }) => Ok(FactAnswer::Command { status, stdout, stderr }),
                    Err(e) if e.is_not_found() => Err(FactError::NotFound { what: program.clone() }),
                    Err(e) => Err(FactError::Failed { why: e.to_string() }),
                }
            }
            Fact::ProcNet { table } => {
                if !crate::broker::PROC_NET.contains(&table.as_str()) {
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
            Fact::ClockSynchronized => Ok(FactAnswer::Clock { synchronized: crate::host::kernel_clock_synchronized() }),
            Fact::Listeners => {
                let host = host.clone();
                tokio::task::spawn_blocking(move || listeners(&host, |_| {}))
                    .await
                    .map_err(|e| FactError::Failed { why: format!("the socket scan stopped: {e}") })?
            }
            Fact::SocketTable => {
                let host = host.clone();
                let read = tokio::task::spawn_blocking(move || crate::ports::sockets::table_answer(&host))
                    .await
                    .map_err(|e| FactError::Failed { why: format!("the socket table read stopped: {e}") })?;
                let (table, findings) = read.map_err(|e| FactError::Failed { why: e.to_string() })?;
                Ok(FactAnswer::SocketTable { table, findings })
            }
            Fact::HttpProbe { address, port } => crate::ports::answer_probe(host, *address, *port)
                .await
                .map(|verdict| FactAnswer::Probe { verdict })
                .map_err(|why| FactError::Failed { why }),
            Fact::Docker { .. } => {
                Err(FactError::Failed { why: "the Docker engine pass is answered with the parent's context".into() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn facts_read_ahead_from_the_command_line_serve_the_first_call_of_that_tool_on_the_live_root() {
        read_ahead("check_firewall");
        let kept = || READ_AHEAD.lock().unwrap().as_ref().map(|(t, e)| (t.clone(), e.len()));
        let started = kept().expect("the firewall's commands are under way");
        assert_eq!(started.0, "check_firewall");
        // Another tool, or the same one on an audited root, does not take them.
        assert!(ahead("check_ssh", &Host::live()).is_empty());
        assert!(ahead("check_firewall", &Host::at("/nonexistent")).is_empty());
        assert_eq!(kept(), Some(started.clone()));
        // The call they were read for does, once; they are the answers the worker will ask for.
        let early = ahead("check_firewall", &Host::live());
        assert_eq!(early.len(), started.1);
        assert_eq!(kept(), None);
        for (program, args) in crate::firewall::first_commands(&Host::live()) {
            let fact = Fact::command(program, args).unwrap();
            assert!(early.contains_key(&fact), "{fact:?} was not read ahead");
        }
        // Nothing read ahead for a tool that asks nothing.
        read_ahead("check_ssh");
        assert_eq!(kept(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_read_ahead_are_the_facts_the_tool_will_ask_and_only_on_the_live_root() {
        assert!(ahead("list_open_ports", &Host::at("/nonexistent")).is_empty(), "an audited root is never brokered");
        assert!(ahead("check_ssh", &Host::live()).is_empty(), "a tool that asks nothing is read nothing ahead");
        let host = Host::live();
        let own = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = own.local_addr().unwrap().port();
        let mut early = ahead("list_open_ports", &host);
        // The firewall's first commands are the ones `runtime_outputs` asks, exactly.
        for (program, args) in crate::firewall::first_commands(&host) {
            let fact = Fact::command(program, args).unwrap();
            assert!(early.contains_key(&fact), "{fact:?} is not read ahead");
        }
        // The listeners read ahead are the kernel's table with its owners, this test's listener among them.
        match early.remove(&Fact::Listeners).unwrap().await.unwrap().unwrap() {
            Ok(FactAnswer::Listeners { facts, inodes, owners, .. }) => {
                let facts: crate::ports::PortsFacts = serde_json::from_str(facts.get()).unwrap();
                assert_eq!(facts.listeners.len(), inodes.len());
                let mine = facts.listeners.iter().find(|l| l.port == port && l.proto == "tcp").unwrap();
                assert_eq!(mine.pid, Some(std::process::id()), "{mine:?}");
                // The owner's name and command line travel once, beside the listeners.
                assert_eq!((&mine.process, &mine.command), (&None, &None), "{mine:?}");
                let (name, command) = &owners[&std::process::id()];
                let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
                assert_eq!(name.as_deref(), Some(comm.trim()));
                assert!(command.as_deref().is_some_and(|c| !c.is_empty()), "{command:?}");
            }
            other => panic!("{other:?}"),
        }
        drop(own);
        // `check_firewall` asks only for the rules, read at once.
        let early = ahead("check_firewall", &host);
        assert!(!early.contains_key(&Fact::Listeners));
        assert_eq!(early.len(), crate::firewall::first_commands(&host).len());
    }
}
