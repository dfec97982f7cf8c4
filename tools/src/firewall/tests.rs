use super::*;
use crate::testutil::{FIXTURE_NOW, fixture_ctx, fixture_path};
use std::time::{Duration, SystemTime};

fn ids(findings: &[Finding]) -> Vec<(&str, &str, Severity)> {
    findings.iter().map(|f| (f.id.as_str(), f.subject.as_str(), f.severity)).collect()
}

/// A copy of a fixture host in a temp dir, to change files in.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture_path(name).display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

fn at(root: &std::path::Path, days_after_fixture: u64) -> Host {
    Host::at(root).with_now(SystemTime::UNIX_EPOCH + Duration::from_secs(FIXTURE_NOW + days_after_fixture * 86_400))
}

#[tokio::test]
async fn a_disabled_ufw_is_no_firewall() {
    let ctx = fixture_ctx("web1");
    let out = CheckFirewall.run(&ctx, FirewallInput::default()).await.unwrap();
    let found = ids(&out.findings);
    assert!(found.contains(&("hardening.firewall-off", "firewall", Severity::High)), "{found:?}");
    let off = out.findings.iter().find(|f| f.id == "hardening.firewall-off").unwrap();
    assert!(off.evidence.iter().any(|e| e.contains("ENABLED=no")), "{:?}", off.evidence);
    assert!(off.remediation.contains("ufw"), "{}", off.remediation);
    assert!(!out.facts.active);
    assert_eq!(out.facts.backend, "ufw");
    // ufw's saved rules are not loaded, so they are not the reviewed ruleset.
    assert!(out.facts.rules.is_empty(), "{:?}", out.facts.rules);
    let st = active_rules(&ctx.host).await;
    assert_eq!(port_allowed(&st, "tcp", 9200), Some(true));
    assert_eq!(describe_reach(&st, port_allowed(&st, "tcp", 9200)), "no firewall");
}

#[tokio::test]
async fn the_clean_host_has_a_working_firewall_and_no_findings() {
    let ctx = fixture_ctx("clean");
    let out = CheckFirewall.run(&ctx, FirewallInput { port: Some(9200), proto: None }).await.unwrap();
    assert!(out.findings.iter().all(|f| f.severity == Severity::Info), "{:?}", ids(&out.findings));
    assert!(out.facts.active);
    assert_eq!(out.facts.backend, "ufw");
    assert_eq!(out.facts.input_policy.as_deref(), Some("drop"));
    let rules: Vec<&str> = out.facts.rules.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "ufw input: accept tcp port 22 from anywhere",
            "ufw input: accept tcp port 443 from anywhere",
            "ufw input: accept tcp port 80 from anywhere",
            "ufw6 input: accept tcp port 22 from anywhere",
            "ufw6 input: accept tcp port 443 from anywhere",
            "ufw6 input: accept tcp port 80 from anywhere",
        ]
    );
    assert_eq!(out.facts.open_to_anywhere, ["tcp:22", "tcp:443", "tcp:80"]);
    let pc = out.facts.port_check.unwrap();
    assert_eq!((pc.ipv4.as_str(), pc.ipv6.as_str()), ("blocked", "blocked"));
    let st = active_rules(&ctx.host).await;
    assert_eq!(port_allowed(&st, "tcp", 443), Some(true));
    assert_eq!(port_allowed(&st, "tcp", 6379), Some(false));
    assert_eq!(port_allowed(&st, "udp", 443), Some(false));
}

#[tokio::test]
async fn rules_added_between_reviews_and_rules_nobody_reviewed_are_reported() {
    let root = copy_fixture("clean");
    let state = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(at(root.path(), 0)).with_state_dir(state.path());

    // First review: everything is new to vigil, but nothing was "added since the last review".
    let out = CheckFirewall.run(&ctx, FirewallInput::default()).await.unwrap();
    assert!(out.findings.is_empty(), "{:?}", ids(&out.findings));
    assert!(out.facts.rules.iter().all(|r| r.first_seen.as_deref() == Some("2026-11-27")));
    let file = state.path().join("firewall-rules.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // Someone opens Elasticsearch "for debugging"; the next review (30 days on) sees it.
    let rules = root.path().join("etc/ufw/user.rules");
    let text = std::fs::read_to_string(&rules).unwrap().replace(
        "### END RULES ###",
        "### tuple ### allow tcp 9200 0.0.0.0/0 any 0.0.0.0/0 in\n-A ufw-user-input -p tcp --dport 9200 -j ACCEPT\n\n### END RULES ###",
    );
    std::fs::write(&rules, text).unwrap();
    let ctx = Ctx::new(at(root.path(), 30)).with_state_dir(state.path());
    let out = CheckFirewall.run(&ctx, FirewallInput::default()).await.unwrap();
    let added = out.findings.iter().find(|f| f.id == "ports.firewall-rule-added").expect("added rule");
    assert_eq!(added.severity, Severity::Medium);
    assert_eq!(added.subject, rule_hash("ufw input: accept tcp port 9200 from anywhere"));
    assert!(added.evidence.iter().any(|e| e.contains("/etc/ufw/user.rules")), "{:?}", added.evidence);
    assert!(added.evidence.iter().any(|e| e.contains("2026-11-27")), "{:?}", added.evidence);
    let ds = out.findings.iter().find(|f| f.id == "ports.firewall-allows-datastore").expect("datastore");
    assert_eq!((ds.subject.as_str(), ds.severity), ("tcp:9200", Severity::High));
    assert_eq!(out.findings.iter().filter(|f| f.id == "ports.firewall-rule-added").count(), 1);

    // 100 days after the first review the original six rules are unreviewed; the new one is not yet.
    let ctx = Ctx::new(at(root.path(), 100)).with_state_dir(state.path());
    let out = CheckFirewall.run(&ctx, FirewallInput::default()).await.unwrap();
    let stale: Vec<&Finding> = out.findings.iter().filter(|f| f.id == "ports.firewall-rule-unreviewed").collect();
    assert_eq!(stale.len(), 6, "{:?}", ids(&out.findings));
    assert!(stale.iter().all(|f| f.severity == Severity::Low && f.subject.len() == 12));
    assert!(stale.iter().any(|f| f.evidence.contains(&"first seen 2026-11-27".to_string())));
    assert!(!out.findings.iter().any(|f| f.id == "ports.firewall-rule-added"));

    // Removing the rule shows up as a fact.
    let text = std::fs::read_to_string(&rules).unwrap().replace("### tuple ### allow tcp 9200", "### removed");
    std::fs::write(&rules, text).unwrap();
    let out = CheckFirewall.run(&ctx, FirewallInput::default()).await.unwrap();
    assert_eq!(out.facts.removed_since_last_review, ["ufw input: accept tcp port 9200 from anywhere"]);

    // Without a state directory there is no history and no history finding.
    let out = CheckFirewall.run(&Ctx::new(at(root.path(), 400)), FirewallInput::default()).await.unwrap();
    assert!(out.findings.is_empty(), "{:?}", ids(&out.findings));
}

#[tokio::test]
async fn a_corrupt_history_is_reported_not_overwritten() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("firewall-rules.json"), "{not json").unwrap();
    let ctx = fixture_ctx("clean").with_state_dir(state.path());
    let out = CheckFirewall.run(&ctx, FirewallInput::default()).await.unwrap();
    assert!(out.findings.iter().any(|f| f.id == "ports.check-failed"), "{:?}", ids(&out.findings));
    assert_eq!(std::fs::read_to_string(state.path().join("firewall-rules.json")).unwrap(), "{not json");
}

#[tokio::test]
async fn nftables_conf_counts_only_when_loaded_at_boot() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/systemd/system/sysinit.target.wants")).unwrap();
    std::fs::write(
        root.path().join("etc/nftables.conf"),
        "#!/usr/sbin/nft -f\nflush ruleset\ndefine SSH = 22\ninclude \"/etc/nftables.d/*.nft\"\n\
         table inet filter {\n  chain input {\n    type filter hook input priority filter; policy drop;\n\
         ct state { established, related } accept # keep sessions\n    iifname \"lo\" accept\n    tcp dport $SSH accept\n  }\n}\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("etc/nftables.d")).unwrap();
    std::fs::write(
        root.path().join("etc/nftables.d/web.nft"),
        "add rule inet filter input tcp dport { http, https } accept\n",
    )
    .unwrap();
    let host = Host::at(root.path());
    let st = active_rules(&host).await;
    assert!(!st.active, "nftables.service is not enabled");
    assert!(st.backends.iter().any(|b| b.note.as_deref().is_some_and(|n| n.contains("not enabled"))));
    assert!(judge(&st).iter().any(|f| f.id == "hardening.firewall-off"));

    std::os::unix::fs::symlink(
        "/lib/systemd/system/nftables.service",
        root.path().join("etc/systemd/system/sysinit.target.wants/nftables.service"),
    )
    .unwrap();
    let st = active_rules(&host).await;
    assert!(st.active);
    assert_eq!(st.backend, "nftables");
    assert_eq!(port_allowed(&st, "tcp", 22), Some(true));
    assert_eq!(port_allowed(&st, "tcp", 443), Some(true), "from the included file");
    assert_eq!(port_allowed(&st, "tcp", 3306), Some(false));
    let rules: Vec<String> = ruleset(&st).into_iter().map(|r| r.rule).collect();
    assert!(
        rules.contains(&"nft inet filter input: accept all from anywhere state established,related".into()),
        "{rules:?}"
    );
    assert!(judge(&st).is_empty());
}

#[tokio::test]
async fn iptables_persistent_rules_and_an_accept_all_policy() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/iptables")).unwrap();
    // Rules that log and count but never drop: a firewall in name only.
    std::fs::write(
        root.path().join("etc/iptables/rules.v4"),
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -j LOG --log-prefix \"in: \"\nCOMMIT\n",
    )
    .unwrap();
    let st = active_rules(&Host::at(root.path())).await;
    assert!(!st.active);
    assert_eq!(st.backend, "iptables");
    let f = judge(&st);
    assert!(f.iter().any(|f| f.id == "hardening.firewall-accept-all" && f.severity == Severity::High), "{f:?}");
    assert!(!f.iter().any(|f| f.id == "hardening.firewall-off"));
}

#[tokio::test]
async fn an_unreadable_config_file_is_a_check_that_could_not_run() {
    let root = tempfile::tempdir().unwrap();
    // A directory where a file should be: reading it fails with something other than "not found".
    std::fs::create_dir_all(root.path().join("etc/nftables.conf")).unwrap();
    let ctx = Ctx::new(Host::at(root.path()));
    let out = CheckFirewall.run(&ctx, FirewallInput::default()).await.unwrap();
    let f = out.findings.iter().find(|f| f.id == "hardening.check-failed").expect("could not check");
    assert!(f.subject.contains("/etc/nftables.conf"), "{}", f.subject);
}

#[test]
fn ufw_status_verbose_is_parsed() {
    // Captured from ufw 0.36.2.
    let text = "Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), deny (routed)\n\
New profiles: skip\n\nTo                         Action      From\n--                         ------      ----\n\
22/tcp                     ALLOW IN    Anywhere                  \n\
80,443/tcp                 ALLOW IN    Anywhere                  \n\
2222/tcp                   LIMIT IN    Anywhere                  \n\
9200/tcp                   ALLOW IN    10.0.0.0/8                \n\
8080 on eth0               ALLOW IN    Anywhere                  \n\
3306                       DENY IN     Anywhere                   # old db\n\
80,443/tcp (Nginx Full)    ALLOW IN    Anywhere                  \n\
25/tcp                     ALLOW OUT   Anywhere                  \n\
22/tcp (v6)                ALLOW IN    Anywhere (v6)             \n\
8080 (v6) on eth0          ALLOW IN    Anywhere (v6)             \n";
    let s = parse::ufw_status(text);
    assert!(s.active);
    assert_eq!(s.default_incoming.as_deref(), Some("deny"));
    assert_eq!(s.v4.len(), 7, "the outgoing rule is not an incoming one");
    assert_eq!(s.v6.len(), 2);
    let r: Vec<String> = s.v4.iter().map(|r| r.render()).collect();
    assert_eq!(r[1], "accept tcp port 80,443 from anywhere");
    assert_eq!(r[2], "limit tcp port 2222 from anywhere");
    assert_eq!(r[3], "accept tcp port 9200 from 10.0.0.0/8");
    assert_eq!(r[4], "accept all port 8080 from anywhere in eth0");
    assert_eq!(r[5], "drop all port 3306 from anywhere");
    assert_eq!(r[6], "accept tcp port 80,443 from anywhere");
    assert_eq!(s.v6[1].render(), "accept all port 8080 from anywhere in eth0");
    assert!(!parse::ufw_status("Status: inactive\n").active);
}

#[test]
fn firewalld_zones_are_parsed() {
    let text = "public (active)\n  target: default\n  icmp-block-inversion: no\n  interfaces: eth0\n  sources: \n\
  services: dhcpv6-client ssh http\n  ports: 9200/tcp 6000-6010/udp\n  protocols: \n  forward: yes\n  masquerade: no\n\
  forward-ports: \n  source-ports: \n  icmp-blocks: \n  rich rules: \n\
\trule family=\"ipv4\" source address=\"10.0.0.0/8\" port port=\"5432\" protocol=\"tcp\" accept\n";
    let services = |n: &str| match n {
        "ssh" => vec![("tcp".to_string(), (22, 22))],
        "http" => vec![("tcp".to_string(), (80, 80))],
        _ => vec![],
    };
    let t = parse::firewalld_list_all(text, "firewall-cmd --list-all", &services);
    let st = from_tables(vec![t]);
    assert!(st.active);
    assert_eq!(st.backend, "firewalld");
    assert_eq!(port_allowed(&st, "tcp", 22), Some(true));
    assert_eq!(port_allowed(&st, "tcp", 9200), Some(true));
    assert_eq!(port_allowed(&st, "udp", 6005), Some(true));
    assert_eq!(port_allowed(&st, "tcp", 5432), Some(false), "only from 10/8");
    assert_eq!(port_allowed(&st, "tcp", 3306), Some(false));
    let f = judge(&st);
    assert!(f.iter().any(|f| f.id == "ports.firewall-allows-datastore" && f.subject == "tcp:9200"), "{f:?}");
    assert_eq!(
        parse::firewalld_service_xml("<service><port protocol=\"tcp\" port=\"9090\"/></service>"),
        vec![("tcp".to_string(), (9090, 9090))]
    );
}

#[test]
fn nothing_readable_means_nothing_known() {
    let st = FirewallState::default();
    assert_eq!(port_allowed(&st, "tcp", 22), None);
    assert!(judge(&st).is_empty(), "an unknown firewall is not reported as off");
    assert!(describe_reach(&st, None).starts_with("unknown"));
}

#[tokio::test]
async fn the_registry_runs_it_read_only() {
    let reg = crate::registry::Registry::builtin();
    assert_eq!(reg.effect("check_firewall"), Effect::ReadOnly);
    let ctx = fixture_ctx("clean");
    let out = reg.call(&ctx, "check_firewall", serde_json::json!({"port": 443})).await.unwrap();
    assert_eq!(out.facts["port_check"]["ipv4"], "allowed from anywhere");
    assert!(reg.call(&ctx, "check_firewall", serde_json::json!({"path": "/etc/shadow"})).await.is_err());
}
