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
