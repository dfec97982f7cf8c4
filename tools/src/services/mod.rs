//! `check_services`: how the host's long-running services are set up, where
//! no other tool looks. Cron jobs that download and run code ([`cron`]),
//! brute-force protection for SSH and WordPress logins ([`bruteforce`]),
//! Postfix as an open relay or listening to the world on a host that only
//! sends ([`mail`]), time synchronisation ([`clock`]), and services still
//! running libraries an update replaced ([`libs`]). Everything is judged from
//! files through [`Host`]; crontabs are tenant-written and only read.

pub mod bruteforce;
pub mod clock;
pub mod cron;
pub mod libs;
pub mod mail;
pub mod units;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Category, Finding};
use crate::format::format_date;
use crate::tool::{Ctx, Effect, Outcome, Tool, ToolError};

/// The tool.
#[derive(Debug, Clone, Copy)]
pub struct CheckServices;

/// Input of `check_services` (none).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicesInput {}

/// Facts of `check_services`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ServicesFacts {
    /// Crontabs read and the suspicious jobs in them.
    pub cron: cron::CronFacts,
    /// Ban tools and what they protect.
    pub brute_force: bruteforce::BruteForceFacts,
    /// Postfix's relay and listening settings, when Postfix is installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<mail::MailFacts>,
    /// Time synchronisation.
    pub time_sync: String,
    /// Services running replaced libraries (live host only).
    pub replaced_libraries: String,
}

/// `YYYY-MM-DD` of a unix time.
pub(crate) fn date(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|d| format_date(d.date()))
        .unwrap_or_else(|_| format!("@{secs}"))
}

#[async_trait]
impl Tool for CheckServices {
    type Input = ServicesInput;
    type Output = ServicesFacts;

    fn name(&self) -> &'static str {
        "check_services"
    }

    fn description(&self) -> &'static str {
        "Check how the host's services are set up: cron jobs (system and every user's crontab) that download \
         or decode code and run it, or fetch from a raw IP — a classic persistence trick; brute-force protection \
         (fail2ban, sshguard, CrowdSec) while SSH accepts passwords, and a jail or plugin for WordPress's \
         wp-login.php/xmlrpc.php; Postfix relaying for networks wider than the host (open relay) or listening on \
         every interface on a host that only sends; time synchronisation (timesyncd, chrony, ntp); and, on the \
         live host, services still running libraries an update replaced. Read-only. Use it for 'is anything \
         persisting in cron', 'is SSH protected against guessing', 'is this an open relay' or 'is the clock synced'."
    }

    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }

    async fn run(&self, ctx: &Ctx, _input: ServicesInput) -> Result<Outcome<ServicesFacts>, ToolError> {
        let host = &ctx.host;
        let mut findings = Vec::new();
        let mut problems = Vec::new();
        let mut facts = ServicesFacts::default();
        cron::check(host, &mut facts.cron, &mut findings, &mut problems);
        let sshd = crate::ssh::effective_config(host);
        let sites = crate::wordpress::discover_sites(ctx);
        facts.brute_force = bruteforce::check(host, &sshd, &sites, &mut findings);
        facts.mail = mail::check(host, &mut findings, &mut problems);
        facts.time_sync = clock::check(host, &mut findings);
        facts.replaced_libraries = libs::check(host, &mut findings);
        if !problems.is_empty() {
            findings.push(Finding::could_not_check(
                Category::Hardening,
                "check_services",
                "cron and mail files",
                problems.join("; "),
            ));
        }
        Ok(Outcome::new(facts, findings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;
    use crate::testutil::fixture_ctx;

    #[tokio::test]
    async fn the_clean_fixture_raises_nothing_above_info() {
        let out = CheckServices.run(&fixture_ctx("clean"), ServicesInput::default()).await.unwrap();
        let loud: Vec<String> = out
            .findings
            .iter()
            .filter(|f| f.severity > Severity::Info)
            .map(|f| format!("{} {}", f.id, f.subject))
            .collect();
        assert!(loud.is_empty(), "{loud:?}");
        assert_eq!(out.facts.brute_force.tools, ["fail2ban"]);
        assert!(out.facts.brute_force.jails.contains(&"wordpress".to_string()));
    }

    #[tokio::test]
    async fn web1_has_no_guard_against_password_guessing() {
        let out = CheckServices.run(&fixture_ctx("web1"), ServicesInput::default()).await.unwrap();
        let ids: Vec<&str> = out.findings.iter().map(|f| f.id.as_str()).collect();
        assert!(ids.contains(&"hardening.no-bruteforce-protection"), "{ids:?}");
        assert!(ids.contains(&"hardening.no-wp-login-jail"), "{ids:?}");
        // Its crontabs run backups and an rclone sync: nothing downloads code.
        assert!(!ids.iter().any(|i| i.starts_with("hardening.cron-")), "{ids:?}");
        assert!(out.facts.cron.jobs >= 4, "{:?}", out.facts.cron);
    }
}
