//! The fleet's transport: the system `ssh` client, and vigil on the other end.
//!
//! [`Ssh`] is the [`Exchange`] a fleet run uses to reach real hosts. For each
//! host it builds the ssh command line ([`argv`]: batch mode, no terminal, no
//! forwarding, one shared connection per host named by a hash of every
//! connection argument), finds or pushes the remote vigil once per run
//! ([`push`]), then runs `[sudo -n] VIGIL __remote --no-color` with the request
//! and the vulnerability feed on stdin and reads one capped answer from stdout.
//! Where the push directory is `noexec`, each request sends the binary first on
//! the same stdin and the host runs it from a memfd ([`push::memfd_words`]).
//! Every step shares the host's deadline; a failure is named by [`classify`]
//! (unreachable, auth-failed, no-sudo, timeout, unsupported, error). When the
//! value is dropped, the shared connections it opened are closed.

mod argv;
mod classify;
mod process;
mod push;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::inventory::Target;
use super::outcome::{Failure, Reason};
use super::proto::{Exchange, Request, Response};
use classify::{classify, failure};
use process::{Input, RunError};

/// The largest answer read from a host.
pub const ANSWER_MAX: usize = 64 << 20;
/// The largest probe or push answer (a few lines).
const SMALL_MAX: usize = 64 << 10;
/// Environment ssh needs from ours: where its config and keys are, and the agent.
const SSH_ENV: [&str; 4] = ["HOME", "USER", "LOGNAME", "SSH_AUTH_SOCK"];
/// `sh -c` wrapper for `ansible_become`: root already, else `sudo -n` (never a prompt).
const BECOME: &str = r#"if [ "$(id -u)" = 0 ]; then exec "$@"; fi; exec sudo -n -- "$@""#;
/// `sh -c` wrapper giving the remote vigil the host's deadline: when the controller gives up,
/// the connection's end does not stop a command without a terminal, so the host's own
/// `timeout` (coreutils) ends it and its process group (then SIGKILL 5 s later).
const DEADLINE: &str =
    r#"s=$1; shift; if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 "$s" "$@"; fi; exec "$@""#;
/// `timeout`'s status when it had to stop the command.
const TIMED_OUT: i32 = 124;

/// How the remote vigil is reached on one host (found once per run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteVigil {
    /// Its path on the host.
    pub path: String,
    /// Our binary was copied there during this run.
    pub pushed: bool,
    /// The host's own vigil (same version) is used.
    pub installed: bool,
    /// The push directory is `noexec`: every request sends our binary too, and the host runs
    /// it from a memfd, leaving no file (`path` then only says through which interpreter).
    pub memfd: bool,
}

/// The binary pushed to hosts, and what identifies it.
struct Local {
    path: PathBuf,
    len: u64,
    sha256: String,
    version: String,
}

/// The ssh transport of a fleet run.
pub struct Ssh {
    inventory: String,
    control_dir: PathBuf,
    connect_timeout: Duration,
    program: PathBuf,
    env: Vec<(&'static str, String)>,
    local: Local,
    feed: Option<Arc<Vec<u8>>>,
    /// Per host: the remote vigil, once found (a lock per host keeps one probe at a time).
    remotes: Mutex<HashMap<String, Arc<Mutex<Option<RemoteVigil>>>>>,
    /// Control sockets this value may have opened, closed on drop.
    opened: Mutex<Vec<PathBuf>>,
}

impl Ssh {
    /// The transport for a run over `inventory_name`, keeping shared connections under
    /// `state_dir/fleet/cm`, giving ssh `connect_timeout` to connect. The binary pushed
    /// to hosts is this very executable.
    pub fn new(inventory_name: &str, state_dir: &Path, connect_timeout: Duration) -> Result<Ssh> {
        let program = vigil_tools::spawn::resolve("ssh")
            .context("the OpenSSH client (ssh) is not installed: a fleet run uses it to reach every host")?;
        let control_dir = argv::control_dir(state_dir).map_err(anyhow::Error::msg)?;
        let env = SSH_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))).collect();
        let local = Local::new(Path::new("/proc/self/exe"))?;
        Ok(Ssh {
            inventory: inventory_name.to_string(),
            control_dir,
            connect_timeout,
            program,
            env,
            local,
            feed: None,
            remotes: Mutex::new(HashMap::new()),
            opened: Mutex::new(Vec::new()),
        })
    }

    /// Push `binary` (a build of this same version, e.g. a portable one) instead of this executable.
    pub fn with_binary(mut self, binary: &Path) -> Result<Ssh> {
        self.local = Local::new(binary)?;
        Ok(self)
    }

    /// The vulnerability feed sent after a review request (`feed_bytes` long).
    pub fn with_feed(mut self, feed: Vec<u8>) -> Ssh {
        self.feed = Some(Arc::new(feed));
        self
    }

    /// The ssh program with its arguments that runs `command` on `t`: what a fleet run executes.
    pub fn command_for(&self, t: &Target, command: &str) -> (PathBuf, Vec<String>) {
        let control = argv::control_path(&self.control_dir, &self.inventory, t);
        (self.program.clone(), argv::ssh_argv(t, &control, self.connect_timeout, command))
    }

    /// The vigil that answers on `t`: the host's own when it is our version, else ours,
    /// pushed (once per run; later calls reuse what was found).
    pub fn remote(&self, t: &Target, deadline: Instant) -> Result<RemoteVigil, Failure> {
        argv::check_host_args(&t.ssh_args).map_err(|e| failure(Reason::Error, &e))?;
        let slot = {
            let mut map = self.remotes.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(cache_key(&self.inventory, t)).or_default().clone()
        };
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = slot.as_ref() {
            return Ok(RemoteVigil { pushed: false, ..r.clone() });
        }
        let found = self.find_or_push(t, deadline)?;
        *slot = Some(found.clone());
        Ok(found)
    }

    fn find_or_push(&self, t: &Target, deadline: Instant) -> Result<RemoteVigil, Failure> {
        let vigil_path = t.vigil_path.clone().unwrap_or_default();
        let words =
            ["sh", "-c", &push::probe_script(), "vigil-probe", &self.local.sha256, &vigil_path, &self.local.version];
        let out = self.run(t, &self.remote_command(t, &words), Vec::new(), deadline, SMALL_MAX)?;
        let probe = push::parse_probe(&out)?;
        let probe_runner = probe.runner.clone();
        match push::decide(probe, t.become_root, std::env::consts::ARCH)? {
            push::Decision::Use(found) => return Ok(found),
            push::Decision::Push => {}
        }
        let words = ["sh", "-c", &push::push_script(), "vigil-push", &self.local.sha256, &self.local.version];
        let input = vec![Input::File(self.local.path.clone())];
        let out = self.run(t, &self.remote_command(t, &words), input, deadline, SMALL_MAX)?;
        if let Some(dir) = push::parse_noexec(&out) {
            return push::after_noexec(&dir, probe_runner.as_deref());
        }
        let path = push::parse_pushed(&out)
            .ok_or_else(|| failure(Reason::Error, &format!("the push did not say where vigil went: {out:.200}")))?;
        Ok(RemoteVigil { path, pushed: true, installed: false, memfd: false })
    }

    /// The remote command line: `words`, through `sudo -n` when the host asks for it.
    fn remote_command(&self, t: &Target, words: &[&str]) -> String {
        if t.become_root {
            let mut w = vec!["sh", "-c", BECOME, "vigil-become"];
            w.extend_from_slice(words);
            argv::command_line(&w)
        } else {
            argv::command_line(words)
        }
    }

    /// Run `command` on `t` and return its stdout when it succeeded.
    fn run(
        &self,
        t: &Target,
        command: &str,
        input: Vec<Input>,
        deadline: Instant,
        cap: usize,
    ) -> Result<String, Failure> {
        let ran = self.run_raw(t, command, input, deadline, cap)?;
        if ran.code() != Some(0) {
            return Err(classify(ran.code(), &ran.stderr_text()));
        }
        Ok(String::from_utf8_lossy(&ran.stdout).into_owned())
    }

    fn run_raw(
        &self,
        t: &Target,
        command: &str,
        input: Vec<Input>,
        deadline: Instant,
        cap: usize,
    ) -> Result<process::Ran, Failure> {
        let (program, args) = self.command_for(t, command);
        {
            let control = argv::control_path(&self.control_dir, &self.inventory, t);
            let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
            if !opened.contains(&control) {
                opened.push(control);
            }
        }
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        process::run(&program, &args, &env, input, deadline, cap).map_err(|e| match e {
            RunError::Start(e) => failure(Reason::Error, &format!("cannot start {}: {e}", program.display())),
            RunError::Timeout => {
                failure(Reason::Timeout, "the host did not finish by its deadline; its ssh was killed")
            }
            RunError::TooBig(n) => {
                failure(Reason::Error, &format!("the host's answer is over {} MiB: cut off", n >> 20))
            }
        })
    }

    /// The bytes of a request on stdin: one JSON line, then the feed for a review.
    fn request_input(&self, request: &Request) -> Result<Vec<Input>, Failure> {
        let mut line = serde_json::to_vec(request)
            .map_err(|e| failure(Reason::Error, &format!("cannot encode the request: {e}")))?;
        line.push(b'\n');
        let mut input = vec![Input::Bytes(line)];
        if let Request::Review { feed_bytes, .. } = request
            && *feed_bytes > 0
        {
            match &self.feed {
                Some(f) if f.len() as u64 == *feed_bytes => input.push(Input::Shared(f.clone())),
                Some(f) => {
                    return Err(failure(
                        Reason::Error,
                        &format!(
                            "the request announces a {feed_bytes}-byte feed but the transport holds {} bytes",
                            f.len()
                        ),
                    ));
                }
                None => {
                    return Err(failure(
                        Reason::Error,
                        "the request announces a feed but none was given to the transport",
                    ));
                }
            }
        }
        Ok(input)
    }
}

/// What decides which vigil answers on a host: the connection, `sudo -n`, and `vigil_path`.
fn cache_key(inventory: &str, t: &Target) -> String {
    format!("{} {} {:?}", argv::connection_hash(inventory, t), t.become_root, t.vigil_path)
}

impl Exchange for Ssh {
    fn exchange(&self, target: &Target, request: &Request, deadline: Instant) -> Result<Response, Failure> {
        let mut input = self.request_input(request)?;
        let remote = self.remote(target, deadline)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let secs = (left.as_millis().div_ceil(1000)).max(1).to_string();
        let mut words: Vec<String> = ["sh", "-c", DEADLINE, "vigil-deadline", &secs].map(String::from).to_vec();
        if remote.memfd {
            words.extend(push::memfd_words(self.local.len, &self.local.sha256));
            input.insert(0, Input::File(self.local.path.clone()));
        } else {
            words.push(remote.path.clone());
        }
        words.extend(["__remote".to_string(), "--no-color".to_string()]);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let ran = self.run_raw(target, &self.remote_command(target, &words), input, deadline, ANSWER_MAX)?;
        match serde_json::from_slice::<Response>(&ran.stdout) {
            Ok(r) => Ok(r),
            Err(_) if ran.code() == Some(TIMED_OUT) => Err(failure(
                Reason::Timeout,
                &format!("the remote vigil did not finish within {secs} s and was stopped on the host"),
            )),
            Err(_) if ran.code() != Some(0) => {
                if ran.code() == Some(127) {
                    // The binary is gone (removed between runs): look again next time.
                    let mut map = self.remotes.lock().unwrap_or_else(PoisonError::into_inner);
                    map.remove(&cache_key(&self.inventory, target));
                }
                Err(classify(ran.code(), &ran.stderr_text()))
            }
            Err(e) => Err(failure(
                Reason::Error,
                &format!(
                    "the remote vigil answered something that is not an answer ({e}); {}",
                    ran.stderr_text().trim()
                ),
            )),
        }
    }
}

impl Drop for Ssh {
    /// Close the shared connections this run opened: nothing is left running.
    fn drop(&mut self) {
        let opened = std::mem::take(self.opened.get_mut().unwrap_or_else(PoisonError::into_inner));
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let live: Vec<&PathBuf> = opened.iter().filter(|c| std::fs::symlink_metadata(c).is_ok()).collect();
        // A few dozen at a time, each given 3 s: a fleet of hundreds closes in seconds.
        for chunk in live.chunks(32) {
            let deadline = Instant::now() + Duration::from_secs(3);
            std::thread::scope(|s| {
                for control in chunk {
                    let (program, env) = (&self.program, &env);
                    s.spawn(move || {
                        let args = vec![
                            "-o".to_string(),
                            format!("ControlPath={}", control.display()),
                            "-O".into(),
                            "exit".into(),
                            "vigil-fleet".into(),
                        ];
                        let _ = process::run(program, &args, env, Vec::new(), deadline, SMALL_MAX);
                    });
                }
            });
        }
    }
}

impl Local {
    /// Hash `path` (streamed) and name our version.
    fn new(path: &Path) -> Result<Local> {
        #[expect(clippy::disallowed_methods, reason = "vigil's own executable, to be pushed to hosts")]
        let mut f =
            std::fs::File::open(path).with_context(|| format!("cannot read vigil's executable {}", path.display()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0u64;
        loop {
            let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            len += n as u64;
        }
        Ok(Local {
            path: path.to_path_buf(),
            len,
            sha256: hex::encode(h.finalize()),
            version: format!("vigil {}", env!("CARGO_PKG_VERSION")),
        })
    }
}
