use super::*;
use crate::config::Config;
use crate::testutil::{fixture, fixture_ctx};

#[tokio::test]
async fn maps_listeners_to_processes_and_scopes() {
    let ctx = fixture_ctx("web1");
    let out = ListOpenPorts.run(&ctx, PortsInput::default()).await.unwrap();
    let l = &out.facts.listeners;
    let es = l.iter().find(|l| l.port == 9200).unwrap();
    assert_eq!(es.scope, Scope::AllInterfaces);
    assert_eq!(es.pid, Some(800));
    assert_eq!(es.process.as_deref(), Some("java"));
    assert_eq!(es.user, "elasticsearch");
    assert_eq!(es.service.as_deref(), Some("Elasticsearch"));
    let redis = l.iter().find(|l| l.port == 6379).unwrap();
    assert_eq!(redis.scope, Scope::Loopback);
    // The established connection on :80 is not a listener, the IPv6 sshd is.
    assert_eq!(l.iter().filter(|l| l.port == 80).count(), 1);
    assert!(l.iter().any(|l| l.port == 22 && l.address == "::" && l.pid == Some(410)));
    // UDP: memcached public, DNS on loopback.
    assert!(l.iter().any(|l| l.proto == "udp" && l.port == 11211 && l.scope == Scope::AllInterfaces));
}

#[tokio::test]
async fn exposed_datastores_are_flagged_and_loopback_ones_are_not() {
    let ctx = fixture_ctx("web1");
    let out = ListOpenPorts.run(&ctx, PortsInput::default()).await.unwrap();
    let ids: Vec<(&str, &str, Severity)> =
        out.findings.iter().map(|f| (f.id.as_str(), f.subject.as_str(), f.severity)).collect();
    assert!(ids.contains(&("ports.exposed-datastore", "tcp:9200", Severity::Critical)), "{ids:?}");
    assert!(ids.contains(&("ports.exposed-datastore", "udp:11211", Severity::High)), "{ids:?}");
    assert!(!ids.iter().any(|(_, s, _)| *s == "tcp:6379"), "loopback Redis is fine: {ids:?}");
    assert!(!ids.iter().any(|(_, s, _)| *s == "tcp:3306"), "loopback MariaDB is fine: {ids:?}");
    let es = out.findings.iter().find(|f| f.subject == "tcp:9200").unwrap();
    assert!(es.evidence.iter().any(|e| e.contains("java (pid 800")), "{:?}", es.evidence);
}

#[tokio::test]
async fn the_port_ledger_documents_ports() {
    let ctx = fixture_ctx("web1");
    let out = ListOpenPorts.run(&ctx, PortsInput::default()).await.unwrap();
    let subjects: Vec<(&str, &str)> = out.findings.iter().map(|f| (f.id.as_str(), f.subject.as_str())).collect();
    assert!(subjects.contains(&("ports.undocumented", "tcp:8080")), "{subjects:?}");
    assert!(!subjects.iter().any(|(_, s)| *s == "tcp:8443"), "documented, recently reviewed: {subjects:?}");
    assert!(!subjects.iter().any(|(_, s)| *s == "tcp:22" || *s == "tcp:80"), "standard ports: {subjects:?}");

    // The same ledger entry a year later is stale.
    let cfg = Config::parse(
        "[[ports.allowed]]\nport = 8443\nreason = \"Plesk panel\"\nreviewed = 2025-06-01\n",
        std::path::Path::new("c"),
    )
    .unwrap();
    let ctx = Ctx::new(fixture("web1")).with_config(cfg);
    let out = ListOpenPorts.run(&ctx, PortsInput::default()).await.unwrap();
    assert!(out.findings.iter().any(|f| f.id == "ports.ledger-stale" && f.subject == "tcp:8443"));
}

#[tokio::test]
async fn filters_and_redaction() {
    let reg = crate::registry::Registry::builtin();
    let ctx = fixture_ctx("web1");
    let out = reg.call(&ctx, "list_open_ports", serde_json::json!({"port": 6379})).await.unwrap();
    let text = out.to_value().to_string();
    assert!(!text.contains("Company2024"), "the Redis password must not leave the tool: {text}");
    assert!(text.contains("--requirepass [REDACTED]"), "{text}");
    assert_eq!(out.facts["listeners"].as_array().unwrap().len(), 1);
    let out = reg.call(&ctx, "list_open_ports", serde_json::json!({"public_only": true})).await.unwrap();
    assert!(out.facts["listeners"].as_array().unwrap().iter().all(|l| l["scope"] != "loopback"));
}

#[tokio::test]
async fn live_proc_is_readable() {
    let out = ListOpenPorts.run(&Ctx::new(Host::live()), PortsInput::default()).await;
    assert!(out.is_ok(), "{:?}", out.err());
}

#[tokio::test]
async fn missing_proc_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = ListOpenPorts.run(&Ctx::new(Host::at(dir.path())), PortsInput::default()).await.unwrap_err();
    assert!(err.to_string().contains("is /proc mounted"), "{err}");
}

/// A copy of a fixture host in a temp dir, to change files in.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = format!("{}/.", crate::testutil::fixture_path(name).display());
    assert!(std::process::Command::new("cp").args(["-a", &from]).arg(dir.path()).status().unwrap().success());
    dir
}

#[tokio::test]
async fn listeners_are_cross_checked_with_the_firewall() {
    // web1: ufw is disabled, so every public listener is reachable.
    let out = ListOpenPorts.run(&fixture_ctx("web1"), PortsInput::default()).await.unwrap();
    let es = out.findings.iter().find(|f| f.subject == "tcp:9200").unwrap();
    assert!(es.evidence.contains(&"firewall: no firewall".to_string()), "{:?}", es.evidence);
    let l = out.facts.listeners.iter().find(|l| l.port == 9200).unwrap();
    assert_eq!(l.firewall.as_deref(), Some("no firewall"));
    assert!(l.http_probe.is_none(), "no probe off the live host");
    assert!(out.facts.listeners.iter().filter(|l| l.scope == Scope::Loopback).all(|l| l.firewall.is_none()));

    // The same host with ufw enabled: its saved rules allow 9200 from anywhere.
    let root = copy_fixture("web1");
    let conf = root.path().join("etc/ufw/ufw.conf");
    std::fs::write(&conf, std::fs::read_to_string(&conf).unwrap().replace("ENABLED=no", "ENABLED=yes")).unwrap();
    let ctx = || Ctx::new(Host::at(root.path()).with_now(fixture("web1").now()));
    let out = ListOpenPorts.run(&ctx(), PortsInput::default()).await.unwrap();
    let es = out.findings.iter().find(|f| f.subject == "tcp:9200").unwrap();
    assert_eq!(es.severity, Severity::Critical);
    assert!(es.evidence.contains(&"firewall: allowed from anywhere".to_string()), "{:?}", es.evidence);

    // ...and once that rule is gone, the firewall blocks it: still a finding, lower.
    for f in ["etc/ufw/user.rules", "etc/ufw/user6.rules"] {
        let p = root.path().join(f);
        std::fs::write(&p, std::fs::read_to_string(&p).unwrap().replace("### tuple ### allow tcp 9200", "### x"))
            .unwrap();
    }
    let out = ListOpenPorts.run(&ctx(), PortsInput::default()).await.unwrap();
    let es = out.findings.iter().find(|f| f.subject == "tcp:9200").unwrap();
    assert_eq!(es.severity, Severity::Medium, "{es:?}");
    assert!(es.evidence.contains(&"firewall: blocked".to_string()), "{:?}", es.evidence);
    assert!(es.title.contains("only the firewall"), "{}", es.title);
    let undocumented = out.findings.iter().find(|f| f.subject == "tcp:8080").unwrap();
    assert_eq!(undocumented.severity, Severity::Low);
}

#[tokio::test]
async fn the_clean_host_has_nothing_to_report() {
    let out = ListOpenPorts.run(&fixture_ctx("clean"), PortsInput::default()).await.unwrap();
    assert!(out.findings.iter().all(|f| f.severity == Severity::Info), "{:?}", out.findings);
    let public: Vec<(u16, &str)> = out
        .facts
        .listeners
        .iter()
        .filter(|l| l.scope != Scope::Loopback)
        .map(|l| (l.port, l.firewall.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        public,
        [
            (22, "allowed from anywhere"),
            (22, "allowed from anywhere"),
            (80, "allowed from anywhere"),
            (80, "allowed from anywhere"),
            (443, "allowed from anywhere"),
            (443, "allowed from anywhere")
        ]
    );
    let redis = out.facts.listeners.iter().find(|l| l.port == 6379).unwrap();
    assert_eq!((redis.scope, redis.pid), (Scope::Loopback, Some(705)));
}

/// Serve one canned HTTP answer on an ephemeral loopback port.
async fn serve_once(answer: &'static str) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET / HTTP/1.0\r\n"));
        s.write_all(answer.as_bytes()).await.unwrap();
    });
    addr
}

#[tokio::test]
async fn the_http_probe_tells_open_from_protected() {
    let es = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"name\":\"node-1\",\"cluster_name\":\"elasticsearch\",\"tagline\":\"You Know, for Search\"}";
    assert_eq!(probe_http(serve_once(es).await, "/").await, HTTP_OPEN);
    let auth = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"security\"\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(probe_http(serve_once(auth).await, "/").await, HTTP_AUTH);
    let html = "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n<html>";
    assert_eq!(probe_http(serve_once(html).await, "/").await, "answered HTTP 200");
    assert!(probe_http(serve_once("\u{15}\u{3}\u{3}").await, "/").await.contains("TLS"));
    // Nothing listening: a clear answer, quickly.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    assert!(probe_http(free, "/").await.starts_with("did not answer"));
    // A listener that never answers hits the 2 s limit instead of hanging.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let start = std::time::Instant::now();
    assert_eq!(probe_http(silent.local_addr().unwrap(), "/").await, "did not answer within 2 s");
    assert!(start.elapsed() < std::time::Duration::from_secs(3));
}

#[tokio::test]
async fn an_elasticsearch_that_answers_without_authentication_is_critical() {
    let ctx = fixture_ctx("web1");
    let (facts, _) = scan(&ctx.host).unwrap();
    let mut listeners = facts.listeners;
    for l in listeners.iter_mut().filter(|l| l.port == 9200) {
        l.http_probe = Some(HTTP_OPEN.into());
        l.firewall = Some("blocked".into());
    }
    let blocked = judge(&ctx, &listeners, &|_| Some(false));
    let es = blocked.iter().find(|f| f.subject == "tcp:9200").unwrap();
    assert_eq!(es.severity, Severity::High);
    assert!(es.evidence.contains(&format!("HTTP on loopback: {HTTP_OPEN}")), "{:?}", es.evidence);
    let open = judge(&ctx, &listeners, &|_| Some(true));
    let es = open.iter().find(|f| f.subject == "tcp:9200").unwrap();
    assert_eq!(es.severity, Severity::Critical);
    assert!(es.title.contains(HTTP_OPEN), "{}", es.title);
}

#[tokio::test]
async fn configured_binds_fold_into_the_proc_finding_and_stand_alone_otherwise() {
    let root = copy_fixture("web1");
    let w = |p: &str, s: &str| {
        let p = root.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    // Elasticsearch already listens publicly (in /proc): its config becomes evidence of that finding.
    w("etc/elasticsearch/elasticsearch.yml", "network.host: 0.0.0.0\nxpack.security.enabled: false\n");
    // MongoDB is stopped, but starts on every interface without authorization.
    w("etc/mongod.conf", "net:\n  port: 27017\n  bindIp: 0.0.0.0\n");
    let ctx = || Ctx::new(Host::at(root.path()).with_now(fixture("web1").now()));
    let out = ListOpenPorts.run(&ctx(), PortsInput::default()).await.unwrap();
    let on = |port: &str| out.findings.iter().filter(|f| f.subject == format!("tcp:{port}")).collect::<Vec<_>>();
    let es = on("9200");
    assert_eq!(es.len(), 1, "one port, one finding: {es:?}");
    assert_eq!(es[0].id, "ports.exposed-datastore");
    assert!(es[0].evidence.iter().any(|e| e.contains("elasticsearch.yml: network.host = 0.0.0.0")), "{:?}", es[0]);
    let mongo = on("27017");
    assert_eq!((mongo[0].id.as_str(), mongo[0].severity), ("ports.datastore-config-public", Severity::Critical));
    assert!(out.facts.configured.iter().any(|c| c.service == "MongoDB" && c.public));

    // With ufw on (web1's rules allow 9200, not 27017), the stopped MongoDB is only kept private by it: lower.
    let conf = root.path().join("etc/ufw/ufw.conf");
    std::fs::write(&conf, std::fs::read_to_string(&conf).unwrap().replace("ENABLED=no", "ENABLED=yes")).unwrap();
    let out = ListOpenPorts.run(&ctx(), PortsInput::default()).await.unwrap();
    let mongo = out.findings.iter().find(|f| f.subject == "tcp:27017").unwrap();
    assert_eq!(mongo.severity, Severity::Medium, "{mongo:?}");
    assert!(mongo.title.contains("only the firewall"), "{}", mongo.title);

    // Bound to loopback in its config: nothing.
    w("etc/mongod.conf", "net:\n  bindIp: 127.0.0.1\n");
    let out = ListOpenPorts.run(&ctx(), PortsInput::default()).await.unwrap();
    assert!(!out.findings.iter().any(|f| f.subject == "tcp:27017"));
}

#[tokio::test]
async fn an_image_without_proc_still_reports_its_configured_datastores() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("etc/memcached.conf");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, "-m 64\n-l 0.0.0.0\n").unwrap();
    let out = ListOpenPorts.run(&Ctx::new(Host::at(dir.path())), PortsInput::default()).await.unwrap();
    let ids: Vec<&str> = out.findings.iter().map(|f| f.id.as_str()).collect();
    assert!(ids.contains(&"ports.datastore-config-public"), "{ids:?}");
    assert!(ids.contains(&"ports.check-failed"), "the sockets were not checked, and it says so: {ids:?}");
}

#[tokio::test]
async fn an_ipv6_only_wildcard_is_judged_by_the_ipv6_rules_alone() {
    // web1 with ufw enabled and 9200 allowed over IPv4 only: IPv6 drops it.
    let root = copy_fixture("web1");
    let conf = root.path().join("etc/ufw/ufw.conf");
    std::fs::write(&conf, std::fs::read_to_string(&conf).unwrap().replace("ENABLED=no", "ENABLED=yes")).unwrap();
    let p = root.path().join("etc/ufw/user6.rules");
    std::fs::write(&p, std::fs::read_to_string(&p).unwrap().replace("### tuple ### allow tcp 9200", "### x")).unwrap();
    let host = Host::at(root.path());
    let fw = crate::firewall::active_rules(&host).await;
    let l = |address: &str, v6only: Option<bool>| Listener {
        proto: "tcp".into(),
        address: address.into(),
        port: 9200,
        scope: Scope::AllInterfaces,
        service: None,
        pid: None,
        process: None,
        command: None,
        user: "root".into(),
        firewall: None,
        http_probe: None,
        device: None,
        v6only,
        inode: 1,
    };
    assert_eq!(reach(&fw, &l("0.0.0.0", None)), Some(true));
    // A dual-stack `::` takes IPv4 too, so the IPv4 rule lets it be reached...
    assert_eq!(reach(&fw, &l("::", Some(false))), Some(true));
    // ...as it does when that is unknown (/proc/net does not say): the worse case.
    assert_eq!(reach(&fw, &l("::", None)), Some(true));
    // An IPv6-only one is not reachable over IPv4: only the IPv6 rules count, and they block it.
    assert_eq!(reach(&fw, &l("::", Some(true))), Some(false));
    let judged = judge(&Ctx::new(host), &[l("::", Some(true))], &|l| reach(&fw, l));
    let f = judged.iter().find(|f| f.subject == "tcp:9200").unwrap();
    assert_eq!(f.severity, Severity::Medium, "only the firewall keeps it private: {f:?}");
    assert!(f.evidence[0].contains("[::]:9200/tcp (IPv6 only)"), "{:?}", f.evidence);
}

#[test]
fn a_wildcard_bound_to_lo_is_loopback_and_to_another_device_is_that_interface() {
    let any4: IpAddr = "0.0.0.0".parse().unwrap();
    let any6: IpAddr = "::".parse().unwrap();
    assert_eq!(scope_of(any4, Some("lo")), Scope::Loopback);
    assert_eq!(scope_of(any6, Some("lo")), Scope::Loopback);
    assert_eq!(scope_of(any4, Some("eth1")), Scope::Interface);
    assert_eq!(scope_of(any4, None), Scope::AllInterfaces);
    assert_eq!(scope_of("10.0.0.5".parse().unwrap(), Some("eth1")), Scope::Specific);
    assert_eq!(scope_of("::ffff:127.0.0.1".parse().unwrap(), None), Scope::Loopback);
}

/// The parent's side of a worker's probe request: it connects only to a probe port the
/// socket table shows listening and reachable at the address asked, sends only the fixed
/// request, and refuses the rest without connecting anywhere.
#[tokio::test]
async fn the_parent_probes_only_a_listening_probe_port_at_an_address_that_reaches_it() {
    use std::net::Ipv4Addr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let live = Host::live();
    let lo = IpAddr::from(Ipv4Addr::LOCALHOST);
    // A forged request for another port: refused, and the listener there is never contacted.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let port = other.local_addr().unwrap().port();
    let e = answer_probe(&live, lo, port).await.unwrap_err();
    assert!(e.contains("not one of the HTTP probes"), "{e}");
    assert_eq!(other.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "nothing connected");
    // Elasticsearch's port on loopback, answering without authentication.
    let es = tokio::net::TcpListener::bind("127.0.0.1:9200")
        .await
        .expect("port 9200 on 127.0.0.1 must be free for this test (is an Elasticsearch running?)");
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = es.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let _ = seen_tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"tagline\":\"You Know, for Search\"}")
            .await
            .unwrap();
    });
    // Somewhere the table shows nothing listening (a documentation address): refused.
    let e = answer_probe(&live, IpAddr::from([192, 0, 2, 1]), 9200).await.unwrap_err();
    assert!(e.contains("no TCP socket listens on 192.0.2.1:9200"), "{e}");
    assert!(answer_probe(&Host::at("/nonexistent"), lo, 9200).await.is_err(), "never for an audited root");
    assert_eq!(answer_probe(&live, lo, 9200).await.unwrap(), HTTP_OPEN);
    assert!(seen_rx.await.unwrap().starts_with("GET / HTTP/1.0\r\n"), "the fixed request");
}
