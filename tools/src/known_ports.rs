//! Well-known services by port, and which of them are datastores or admin
//! APIs that must never face the internet (pattern 5: Elasticsearch on 9200
//! with no authentication).

use crate::finding::Severity;

/// A datastore or admin API that should stay on loopback.
#[derive(Debug, Clone, Copy)]
pub struct Datastore {
    /// Product name.
    pub name: &'static str,
    /// What it is.
    pub kind: &'static str,
    /// How bad it is to expose it.
    pub severity: Severity,
}

const DATASTORES: &[(u16, &str, &str, Severity)] = &[
    (2375, "Docker Engine API", "unauthenticated root-equivalent API", Severity::Critical),
    (2376, "Docker Engine API (TLS)", "container admin API", Severity::High),
    (2379, "etcd", "cluster key-value store", Severity::Critical),
    (3306, "MySQL/MariaDB", "database", Severity::High),
    (4369, "Erlang port mapper", "cluster admin service", Severity::High),
    (5432, "PostgreSQL", "database", Severity::High),
    (5601, "Kibana", "search admin UI", Severity::High),
    (5672, "RabbitMQ", "message broker", Severity::High),
    (5984, "CouchDB", "database", Severity::Critical),
    (6379, "Redis", "in-memory datastore", Severity::Critical),
    (6380, "Redis", "in-memory datastore", Severity::Critical),
    (7000, "Cassandra", "database cluster port", Severity::High),
    (8086, "InfluxDB", "time-series database", Severity::High),
    (8983, "Solr", "search engine admin API", Severity::High),
    (9042, "Cassandra", "database", Severity::High),
    (9200, "Elasticsearch", "search datastore with no authentication by default", Severity::Critical),
    (9300, "Elasticsearch", "cluster transport", Severity::Critical),
    (10250, "Kubelet API", "node admin API", Severity::Critical),
    (11211, "Memcached", "cache, also a UDP amplification vector", Severity::High),
    (15672, "RabbitMQ management", "admin UI", Severity::High),
    (27017, "MongoDB", "database", Severity::Critical),
    (27018, "MongoDB", "database", Severity::Critical),
];

/// The datastore on this port, if any.
pub fn datastore(proto: &str, port: u16) -> Option<Datastore> {
    if proto == "udp" && port != 11211 {
        return None;
    }
    DATASTORES.iter().find(|d| d.0 == port).map(|&(_, name, kind, severity)| Datastore { name, kind, severity })
}

/// The well-known service name of a port.
pub fn service_name(proto: &str, port: u16) -> Option<&'static str> {
    if let Some(d) = datastore(proto, port) {
        return Some(d.name);
    }
    Some(match (proto, port) {
        ("tcp", 21) => "ftp",
        ("tcp", 22) => "ssh",
        ("tcp", 25) => "smtp",
        (_, 53) => "dns",
        ("udp", 67) | ("udp", 68) => "dhcp",
        ("tcp", 80) => "http",
        ("tcp", 110) => "pop3",
        ("udp", 123) => "ntp",
        ("tcp", 143) => "imap",
        ("udp", 161) => "snmp",
        ("tcp", 443) => "https",
        ("udp", 443) => "http3",
        ("tcp", 465) => "smtps",
        ("udp", 546) => "dhcpv6",
        ("tcp", 587) => "submission",
        ("tcp", 631) => "ipp",
        ("tcp", 993) => "imaps",
        ("tcp", 995) => "pop3s",
        ("tcp", 2082) | ("tcp", 2083) => "cpanel",
        ("tcp", 2086) | ("tcp", 2087) => "whm",
        ("tcp", 3000) => "dev server",
        ("tcp", 4190) => "sieve",
        ("udp", 5353) => "mdns",
        ("tcp", 8080) => "http-alt",
        ("tcp", 8443) => "https-alt/plesk",
        ("tcp", 9000) => "php-fpm",
        ("tcp", 10000) => "webmin",
        _ => return None,
    })
}
