//! `list_open_ports`: every listening TCP/UDP socket, who owns it, and who can reach it.
//!
//! Sockets and owners come from [`sockets::listeners`] (the kernel's table
//! through `NETLINK_SOCK_DIAG` on the live host, `ROOT/proc/net` for an
//! audited root; owners from `ROOT/proc/*/fd`). Findings: a datastore or admin
//! API bound beyond loopback (pattern 5), undocumented non-standard public
//! ports, and stale entries in the port ledger. A socket bound to `lo` with
//! `SO_BINDTODEVICE` is loopback-only whatever its address. Each public
//! listener is cross-checked with the firewall (`crate::firewall::port_allowed`,
//! read only when some socket or configured datastore is public):
//! a datastore only the firewall keeps private stays a finding, one step lower;
//! an IPv6-only `::` socket is judged by the IPv6 rules alone. Elasticsearch
//! and Kibana on the live host are asked over plain HTTP on loopback whether
//! they answer without authentication (critical when they do and are reachable).
//! In the confined worker (no network, no other processes' descriptors) the
//! socket table and the probes are the parent's, asked through the broker.

pub mod config;
mod diag;
mod owners;
pub mod sockets;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding, Severity};
use crate::host::Host;
pub use crate::known_ports::{Datastore, datastore, service_name};
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};
pub use sockets::{Source, listeners, scope_of};

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct ListOpenPorts;

/// Input of `list_open_ports`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortsInput {
    /// Only sockets reachable from other machines (skip loopback-only listeners).
    #[serde(default)]
    pub public_only: bool,
    /// Only this port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// Who can reach a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// 127.0.0.0/8 or ::1: this machine only.
    Loopback,
    /// 0.0.0.0 or ::: every interface.
    AllInterfaces,
    /// 0.0.0.0 or :: bound to one interface (`SO_BINDTODEVICE`, shown as `0.0.0.0%eth1` by `ss`).
    Interface,
    /// One specific address.
    Specific,
}

/// One listening socket.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Listener {
    /// `tcp` or `udp`.
    pub proto: String,
    /// Bound address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Who can reach it.
    pub scope: Scope,
    /// Well-known service on this port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Owning process id, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Process name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Command line (secrets redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// User owning the socket.
    pub user: String,
    /// For a socket reachable from other machines: what the firewall does with
    /// new connections to it (`allowed from anywhere`, `blocked`, `no firewall`, `unknown…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firewall: Option<String>,
    /// For Elasticsearch/Kibana on the live host: what a plain HTTP request on
    /// loopback got (`answers without authentication`, `requires authentication`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_probe: Option<String>,
    /// Interface the socket is bound to (`SO_BINDTODEVICE`), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// For an IPv6 socket: true when it takes IPv6 only, false when IPv4 too; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6only: Option<bool>,
    /// Socket inode.
    #[serde(skip)]
    pub inode: u64,
}

/// Facts of `list_open_ports`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct PortsFacts {
    /// Listening sockets, by port.
    pub listeners: Vec<Listener>,
    /// Processes whose file descriptors could not be read (their sockets show no owner).
    pub unreadable_processes: usize,
    /// Datastores' listening addresses as their configuration files set them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configured: Vec<config::ConfiguredBind>,
    /// Where the socket table was read.
    #[serde(default)]
    pub source: Source,
}

#[async_trait]
impl Tool for ListOpenPorts {
    type Input = PortsInput;
    type Output = PortsFacts;

    fn name(&self) -> &'static str {
        "list_open_ports"
    }

    fn description(&self) -> &'static str {
        "List every listening TCP and UDP socket (IPv4 and IPv6) on the host with its bind scope \
         (loopback, all interfaces, a specific address), the well-known service on that port, and the \
         owning process (pid, name, command line with secrets redacted). Findings flag datastores and \
         admin APIs (Elasticsearch, Redis, MySQL, MongoDB, Docker API...) reachable from other machines, \
         undocumented non-standard public ports and stale port-ledger entries. Each public listener is \
         cross-checked with the firewall (allowed from anywhere / blocked / no firewall), and on the live \
         host Elasticsearch and Kibana are probed on loopback to see whether they answer without \
         authentication. Use it to answer 'what is open and why' or 'why is port N open'."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, input: PortsInput) -> Result<Outcome<PortsFacts>, ToolError> {
        // The /proc walk (blocking) and the firewall's rules (commands on the live host) at
        // once; the firewall only judges sockets reachable from other machines, so it is read
        // only when the socket table (read first, in a few milliseconds) or a datastore's
        // configuration has one.
        let host = ctx.host.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let walk = tokio::task::spawn_blocking(move || {
            sockets::listeners_then(&host, move |public| {
                let _ = tx.send(public);
            })
        });
        let configured = config::configured_binds(&ctx.host);
        // No answer (the table could not be read): ask the firewall anyway rather than
        // judge a public socket without it.
        let public = rx.await.unwrap_or(true) || configured.iter().any(|c| c.public);
        let fw = if public { crate::firewall::active_rules(&ctx.host).await } else { Default::default() };
        let scanned = walk.await.map_err(|e| ToolError::Failed(format!("the socket scan stopped: {e}")))?;
        let (mut facts, mut findings) = match scanned {
            Ok(s) => s,
            // An image without /proc: its datastores' configuration still says how they will listen.
            Err(e) if !configured.is_empty() => (
                PortsFacts::default(),
                vec![Finding::could_not_check(Category::Ports, "list_open_ports", "the listening sockets", e)],
            ),
            Err(e) => return Err(e),
        };
        let mut verdicts = HashMap::new();
        for l in facts.listeners.iter_mut() {
            if l.scope != Scope::Loopback {
                let allowed = reach(&fw, l);
                verdicts.insert(l.inode, allowed);
                l.firewall = Some(crate::firewall::describe_reach(&fw, allowed));
            }
            if ctx.host.is_live() && l.proto == "tcp" && probe_path(l.port).is_some() {
                l.http_probe = Some(probe(&ctx.host, probe_addr(l)).await);
            }
        }
        findings.extend(judge(ctx, &facts.listeners, &|l: &Listener| verdicts.get(&l.inode).copied().flatten()));
        config::fold(&mut findings, &configured, &fw);
        facts.configured = configured;
        if input.public_only || input.port.is_some() {
            facts.listeners.retain(|l| {
                (!input.public_only || l.scope != Scope::Loopback) && input.port.is_none_or(|p| p == l.port)
            });
            findings.retain(|f| input.port.is_none_or(|p| f.subject.ends_with(&format!(":{p}"))));
        }
        Ok(Outcome::new(facts, findings))
    }
}

/// The socket scan: [`sockets::listeners`] (kept under this name for its callers).
pub fn scan(host: &Host) -> Result<(PortsFacts, Vec<Finding>), ToolError> {
    listeners(host)
}

/// Does the firewall let new connections from anywhere reach this socket?
/// An IPv6 wildcard socket also takes IPv4 (reachable when either family is)
/// unless it is IPv6-only; when that is unknown it is taken to take both.
fn reach(fw: &crate::firewall::FirewallState, l: &Listener) -> Option<bool> {
    use crate::firewall::{model::Family, port_allowed_on};
    let v4 = || port_allowed_on(fw, Family::V4, &l.proto, l.port);
    let v6 = || port_allowed_on(fw, Family::V6, &l.proto, l.port);
    match l.address.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => v4(),
        Ok(IpAddr::V6(a)) if a.is_unspecified() && l.v6only == Some(true) => v6(),
        Ok(IpAddr::V6(a)) if a.is_unspecified() => match (v4(), v6()) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Ok(IpAddr::V6(a)) if a.to_ipv4_mapped().is_some() => v4(),
        Ok(IpAddr::V6(_)) => v6(),
        Err(_) => None,
    }
}

/// Where to reach a listener from this machine: loopback for a wildcard or
/// loopback socket (`::1` for an IPv6-only one), its own address otherwise.
fn probe_addr(l: &Listener) -> SocketAddr {
    let ip = l.address.parse::<IpAddr>().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    reach_from_here(SocketAddr::new(ip, l.port), l.v6only)
}

/// [`probe_addr`] for a socket bound to `bound`.
fn reach_from_here(bound: SocketAddr, v6only: Option<bool>) -> SocketAddr {
    let ip = match bound.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() && v6only == Some(true) => {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        }
        ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// The datastore APIs probed over plain HTTP, and the one request each gets: `(port, path)`
/// (Elasticsearch, Kibana).
pub const HTTP_PROBES: &[(u16, &str)] = &[(9200, "/"), (5601, "/api/status")];

/// The path probed on `port`, when it is one of [`HTTP_PROBES`].
fn probe_path(port: u16) -> Option<&'static str> {
    HTTP_PROBES.iter().find(|(p, _)| *p == port).map(|(_, path)| *path)
}

/// Probe `addr` here, or in the worker ask the parent to ([`crate::broker::Fact::HttpProbe`]).
async fn probe(host: &Host, addr: SocketAddr) -> String {
    let Some(path) = probe_path(addr.port()) else { return format!("port {} is not probed", addr.port()) };
    match host.ask_parent_async(crate::broker::Fact::HttpProbe { address: addr.ip(), port: addr.port() }).await {
        None => probe_http(addr, path).await,
        Some(Ok(crate::broker::FactAnswer::Probe { verdict })) => verdict,
        Some(Ok(_)) => "not probed: the parent answered with something else".into(),
        Some(Err(crate::broker::FactError::NotFound { what } | crate::broker::FactError::Failed { why: what })) => {
            format!("not probed: {what}")
        }
    }
}

/// The parent's side of [`crate::broker::Fact::HttpProbe`]: the fixed request of
/// [`HTTP_PROBES`] for `port`, sent to `address` only when the live socket table shows a TCP
/// socket listening on `port` that `address` reaches from here (as [`probe_addr`] chooses:
/// loopback for a wildcard or loopback socket, the socket's own address otherwise).
/// Anything else the worker asks is refused, nothing connected to.
pub async fn answer_probe(host: &Host, address: IpAddr, port: u16) -> Result<String, String> {
    let path = probe_path(port).ok_or_else(|| format!("port {port} is not one of the HTTP probes"))?;
    if !host.is_live() {
        return Err("probes are only made on the live host".into());
    }
    let h = host.clone();
    let table = tokio::task::spawn_blocking(move || sockets::tcp_listening(&h))
        .await
        .map_err(|e| format!("the socket table read stopped: {e}"))?
        .map_err(|e| e.to_string())?;
    let target = SocketAddr::new(address, port);
    if !table.iter().any(|(bound, v6only)| bound.port() == port && reach_from_here(*bound, *v6only) == target) {
        return Err(format!("no TCP socket listens on {target}: not probed"));
    }
    Ok(probe_http(target, path).await)
}

/// The judgement of one plain HTTP probe.
pub const HTTP_OPEN: &str = "answers without authentication";
/// The judgement when the service asks for credentials.
pub const HTTP_AUTH: &str = "requires authentication";

/// `GET path` over plain HTTP with a 2 s limit, judged: does the service
/// answer without authentication (200 with a JSON body), ask for it (401),
/// or something else? A hand-written request: no HTTP client needed.
pub async fn probe_http(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: vigil\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            if addr.is_ipv6() { format!("[{}]", addr.ip()) } else { addr.ip().to_string() }
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while buf.len() < 65_536 {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<Vec<u8>, std::io::Error>(buf)
    };
    let buf = match tokio::time::timeout(std::time::Duration::from_secs(2), work).await {
        Err(_) => return "did not answer within 2 s".into(),
        Ok(Err(e)) => return format!("did not answer over plain HTTP ({e})"),
        Ok(Ok(b)) => b,
    };
    let text = String::from_utf8_lossy(&buf);
    let Some(status) = text.lines().next().and_then(|l| {
        let mut w = l.split_whitespace();
        w.next().filter(|v| v.starts_with("HTTP/"))?;
        w.next()?.parse::<u16>().ok()
    }) else {
        return "answered, but not over plain HTTP (TLS?)".into();
    };
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.trim_start()).unwrap_or("");
    match status {
        200 if body.starts_with('{') || body.starts_with('[') => HTTP_OPEN.into(),
        401 => HTTP_AUTH.into(),
        code => format!("answered HTTP {code}"),
    }
}

/// Standard web-hosting ports that need no ledger entry when public.
pub fn is_standard_port(proto: &str, port: u16) -> bool {
    match proto {
        "tcp" => matches!(port, 22 | 25 | 53 | 80 | 110 | 143 | 443 | 465 | 587 | 993 | 995),
        _ => matches!(port, 53 | 68 | 123 | 443 | 546),
    }
}

fn judge(ctx: &Ctx, listeners: &[Listener], allowed: &dyn Fn(&Listener) -> Option<bool>) -> Vec<Finding> {
    let today = ctx.host.now_unix() / 86_400;
    let stale_days = i64::from(ctx.config.review.rule_review_days);
    let ledger = &ctx.config.ports.allowed;
    let documented = |proto: &str, port: u16| {
        ledger.iter().find(|a| a.port == port && a.proto.as_deref().is_none_or(|p| p.eq_ignore_ascii_case(proto)))
    };
    let mut out = Vec::new();
    // One finding per (proto, port), evidence from every public socket on it.
    let mut public: BTreeMap<(String, u16), Vec<&Listener>> = BTreeMap::new();
    for l in listeners.iter().filter(|l| l.scope != Scope::Loopback) {
        public.entry((l.proto.clone(), l.port)).or_default().push(l);
    }
    for ((proto, port), socks) in &public {
        let mut evidence: Vec<String> = socks.iter().map(|l| describe(l)).collect();
        let subject = format!("{proto}:{port}");
        // Blocked only when the firewall blocks every public socket on the port.
        let verdicts: Vec<Option<bool>> = socks.iter().map(|l| allowed(l)).collect();
        let blocked = verdicts.iter().all(|v| *v == Some(false));
        let mut fw: Vec<&str> = socks.iter().filter_map(|l| l.firewall.as_deref()).collect();
        fw.dedup();
        if !fw.is_empty() {
            evidence.push(format!("firewall: {}", fw.join(" / ")));
        }
        let probes: Vec<&str> = socks.iter().filter_map(|l| l.http_probe.as_deref()).collect();
        let open_http = probes.contains(&HTTP_OPEN);
        for p in &probes {
            evidence.push(format!("HTTP on loopback: {p}"));
        }
        if let Some(ds) = datastore(proto, *port) {
            let severity = match (blocked, open_http) {
                (false, true) => Severity::Critical,
                (true, true) => Severity::High,
                (true, false) => ds.severity.min(Severity::Medium),
                (false, false) => ds.severity,
            };
            let title = if blocked {
                format!(
                    "{} ({}) listens on all interfaces on port {port}; only the firewall keeps it private",
                    ds.name, ds.kind
                )
            } else if open_http {
                format!("{} on port {port} is reachable from other machines and {HTTP_OPEN}", ds.name)
            } else {
                format!("{} ({}) is reachable from other machines on port {port}", ds.name, ds.kind)
            };
            let mut f = Finding::new("ports.exposed-datastore", severity, Category::Ports, subject.clone(), title);
            for e in &evidence {
                f = f.evidence(e.clone());
            }
            if let Some(a) = documented(proto, *port) {
                f = f.evidence(format!("documented in the port ledger: \"{}\" (reviewed {})", a.reason, a.reviewed));
            }
            out.push(f.fix(format!(
                "Bind {} to 127.0.0.1 (or a private interface) and reach it over an SSH tunnel \
                 (ssh -L {port}:127.0.0.1:{port} host); if it must stay public, firewall it to known \
                 addresses and enable authentication.",
                ds.name
            )));
            continue;
        }
        if is_standard_port(proto, *port) {
            continue;
        }
        match documented(proto, *port) {
            Some(a) => {
                let age = today - a.reviewed.0.to_julian_day() as i64 + 2_440_588;
                if age > stale_days {
                    out.push(
                        Finding::new(
                            "ports.ledger-stale",
                            Severity::Low,
                            Category::Ports,
                            subject.clone(),
                            format!("Port {port} is documented but not reviewed for {age} days"),
                        )
                        .evidence(format!("ledger: \"{}\" reviewed {}", a.reason, a.reviewed))
                        .evidence(evidence.join("; "))
                        .fix(format!("Confirm port {port} still needs to be open, then update `reviewed` in [[ports.allowed]]; close it if not.")),
                    );
                }
            }
            None => {
                let mut f = Finding::new(
                    "ports.undocumented",
                    if blocked { Severity::Low } else { Severity::Medium },
                    Category::Ports,
                    subject.clone(),
                    format!("Non-standard port {port}/{proto} is open to other machines and not in the port ledger"),
                );
                for e in &evidence {
                    f = f.evidence(e.clone());
                }
                out.push(f.fix(format!(
                    "If it is needed, document it in [[ports.allowed]] (port = {port}, reason, reviewed); \
                     if not, stop the service or bind it to 127.0.0.1."
                )));
            }
        }
    }
    out
}

fn describe(l: &Listener) -> String {
    let who = match (&l.process, l.pid) {
        (Some(p), Some(pid)) => format!("{p} (pid {pid}, user {})", l.user),
        _ => format!("owner unknown (user {})", l.user),
    };
    let mut addr = if l.address.contains(':') { format!("[{}]", l.address) } else { l.address.clone() };
    if let Some(d) = &l.device {
        addr = format!("{addr}%{d}");
    }
    let only = if l.v6only == Some(true) { " (IPv6 only)" } else { "" };
    format!("{addr}:{}/{}{only} by {who}", l.port, l.proto)
}

#[cfg(test)]
mod tests;
