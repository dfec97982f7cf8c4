//! Brute-force protection: password guessing against SSH and against
//! WordPress's `wp-login.php` / `xmlrpc.php` never stops on a public host. A
//! ban tool (fail2ban, sshguard, CrowdSec) makes it slow; without one, every
//! weak password is found eventually. SSH is judged with the sshd settings
//! [`crate::ssh`] computes (does it accept passwords at all?); WordPress sites
//! come from [`crate::wordpress::discover`] and are protected by a fail2ban
//! jail or CrowdSec scenario for WordPress, or by a login-limiting plugin.

use serde::{Deserialize, Serialize};

use super::units;
use crate::finding::{Category, Finding, Severity};
use crate::host::Host;
use crate::ssh::SshdConfig;
use crate::wordpress::Site;

/// Plugins that limit WordPress login attempts on their own.
const WP_LIMITERS: &[&str] = &[
    "wordfence",
    "limit-login-attempts-reloaded",
    "limit-login-attempts",
    "wp-fail2ban",
    "loginizer",
    "all-in-one-wp-security-and-firewall",
    "wp-limit-login-attempts",
    "login-lockdown",
    "ithemes-security",
    "better-wp-security",
    "sucuri-scanner",
];

/// Ban tools found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BruteForceFacts {
    /// Ban tools installed and enabled (`fail2ban`, `sshguard`, `crowdsec`).
    pub tools: Vec<String>,
    /// Enabled fail2ban jails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jails: Vec<String>,
    /// How sshd accepts passwords, or why it does not.
    pub ssh_passwords: String,
    /// WordPress sites without a login limiter (when no host-wide one covers them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unprotected_sites: Vec<String>,
}

/// An enabled fail2ban jail: its name and filter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Jail {
    name: String,
    filter: String,
}

/// fail2ban's jails, read in its own order: jail.conf, jail.d/*.conf, jail.local, jail.d/*.local.
fn fail2ban_jails(host: &Host) -> Vec<Jail> {
    let mut files = vec!["/etc/fail2ban/jail.conf".to_string()];
    let dir: Vec<String> = host.read_dir("/etc/fail2ban/jail.d").unwrap_or_default();
    files.extend(dir.iter().filter(|n| n.ends_with(".conf")).map(|n| format!("/etc/fail2ban/jail.d/{n}")));
    files.push("/etc/fail2ban/jail.local".into());
    files.extend(dir.iter().filter(|n| n.ends_with(".local")).map(|n| format!("/etc/fail2ban/jail.d/{n}")));
    // section → (enabled, filter)
    let mut sections: Vec<(String, Option<bool>, Option<String>)> = Vec::new();
    for f in files {
        let Ok(Some(text)) = host.read_optional(&f) else { continue };
        let mut cur: Option<usize> = None;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('#') || t.starts_with(';') || t.is_empty() {
                continue;
            }
            if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                let name = name.trim().to_string();
                cur = Some(match sections.iter().position(|s| s.0 == name) {
                    Some(i) => i,
                    None => {
                        sections.push((name, None, None));
                        sections.len() - 1
                    }
                });
                continue;
            }
            let (Some(i), Some((k, v))) = (cur, t.split_once('=')) else { continue };
            match k.trim() {
                "enabled" => {
                    sections[i].1 = Some(matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1"))
                }
                "filter" => sections[i].2 = Some(v.split_whitespace().next().unwrap_or("").to_string()),
                _ => {}
            }
        }
    }
    let default_on = sections.iter().find(|s| s.0 == "DEFAULT").and_then(|s| s.1).unwrap_or(false);
    sections
        .into_iter()
        .filter(|s| !matches!(s.0.as_str(), "DEFAULT" | "INCLUDES" | "Definition") && s.1.unwrap_or(default_on))
        .map(|(name, _, filter)| Jail { filter: filter.unwrap_or_else(|| name.clone()), name })
        .collect()
}

/// Does this jail watch WordPress logins? By name, filter, or what the filter matches.
fn is_wp_jail(host: &Host, j: &Jail) -> bool {
    let wp = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("wordpress") || s.contains("wp-login") || s.contains("xmlrpc") || s.starts_with("wp")
    };
    if wp(&j.name) || wp(&j.filter) {
        return true;
    }
    let base = j.filter.split('[').next().unwrap_or(&j.filter).trim();
    ["conf", "local"].iter().any(|ext| {
        host.read_optional(&format!("/etc/fail2ban/filter.d/{base}.{ext}"))
            .ok()
            .flatten()
            .is_some_and(|t| t.contains("wp-login") || t.contains("xmlrpc"))
    })
}

/// Judge brute-force protection for SSH and WordPress.
pub fn check(host: &Host, sshd: &SshdConfig, sites: &[Site], findings: &mut Vec<Finding>) -> BruteForceFacts {
    let mut facts = BruteForceFacts::default();
    let manager = units::has_service_manager(host);
    let on = |unit: &str, openrc: &str| !manager || units::enabled_by(host, unit, openrc).is_some();
    let fail2ban = host.exists("/etc/fail2ban/jail.conf") && on("fail2ban.service", "fail2ban");
    let sshguard =
        (host.exists("/etc/sshguard") || host.exists("/etc/sshguard.conf")) && on("sshguard.service", "sshguard");
    let crowdsec = host.exists("/etc/crowdsec/config.yaml") && on("crowdsec.service", "crowdsec");
    let jails = if fail2ban { fail2ban_jails(host) } else { Vec::new() };
    facts.jails = jails.iter().map(|j| j.name.clone()).collect();
    for (name, yes) in [("fail2ban", fail2ban), ("sshguard", sshguard), ("crowdsec", crowdsec)] {
        if yes {
            facts.tools.push(name.into());
        }
    }
    let ssh_jail = jails.iter().any(|j| j.name.starts_with("ssh") || j.filter.starts_with("sshd"));
    let ssh_guarded = sshguard || crowdsec || ssh_jail;

    // SSH: the same judgement as `check_ssh`'s hardening.ssh-password-auth (per account,
    // Match blocks included).
    let guessable = if sshd.is_present() { crate::ssh::password_login_accounts(host, sshd) } else { Vec::new() };
    let via = (!guessable.is_empty()).then(|| sshd.password_login().unwrap_or("PasswordAuthentication"));
    let passwords = via.is_some();
    let at = |k: &str| sshd.setting(k).map(|s| format!(" ({})", s.at())).unwrap_or_else(|| " (default)".into());
    facts.ssh_passwords = match via {
        _ if !sshd.is_present() => "no OpenSSH server configured".into(),
        Some(k) => format!("a password alone can log in over SSH: {k} is on{}", at(k)),
        None => "a password alone cannot log in over SSH".into(),
    };
    if passwords && !ssh_guarded {
        let root_pw = sshd.permit_root_login() == "yes";
        let installed = if fail2ban {
            "fail2ban is enabled but has no sshd jail".to_string()
        } else {
            "no fail2ban, sshguard or CrowdSec is installed and enabled".to_string()
        };
        let mut f = Finding::new(
            "hardening.no-bruteforce-protection",
            if root_pw { Severity::High } else { Severity::Medium },
            Category::Hardening,
            "ssh",
            "SSH accepts passwords and nothing stops guessing",
        )
        .evidence(facts.ssh_passwords.clone())
        .evidence(installed);
        if root_pw {
            f = f.evidence(format!("PermitRootLogin yes{}: root's password can be guessed too", at("PermitRootLogin")));
        }
        findings.push(f.fix(
            "Best: log in with keys only — once every admin's key works, set `PasswordAuthentication no` and \
             `KbdInteractiveAuthentication no` in /etc/ssh/sshd_config.d/50-keys-only.conf, check with `sshd -t`, \
             `systemctl reload ssh`. Otherwise install a ban tool: `apt-get install fail2ban` (Debian enables its \
             sshd jail; see `fail2ban-client status sshd`).",
        ));
    }

    // WordPress.
    let host_wide = jails.iter().any(|j| is_wp_jail(host, j))
        || (crowdsec
            && ["/etc/crowdsec/collections", "/etc/crowdsec/scenarios"].iter().any(|d| {
                host.read_dir(d).unwrap_or_default().iter().any(|n| n.contains("wordpress") || n.contains("wp-"))
            }));
    let live: Vec<&Site> = sites.iter().filter(|s| !(s.debian && s.host.is_none())).collect();
    if host_wide || live.is_empty() {
        return facts;
    }
    facts.unprotected_sites = live
        .iter()
        .filter(|s| !s.plugins.iter().chain(&s.mu_plugins).any(|p| WP_LIMITERS.contains(&p.slug.as_str())))
        .map(|s| s.subject())
        .collect();
    if facts.unprotected_sites.is_empty() {
        return facts;
    }
    let n = facts.unprotected_sites.len();
    let shown: Vec<&str> = facts.unprotected_sites.iter().take(5).map(String::as_str).collect();
    let more = if n > 5 { format!(" and {} more", n - 5) } else { String::new() };
    let tools = if facts.tools.is_empty() {
        "no ban tool is enabled".to_string()
    } else {
        format!("{} enabled, with no WordPress jail or scenario", facts.tools.join(", "))
    };
    findings.push(
        Finding::new(
            "hardening.no-wp-login-jail",
            Severity::Medium,
            Category::Hardening,
            "wp-login.php",
            format!("Nothing limits password guessing on {n} WordPress site(s)"),
        )
        .evidence(format!("sites: {}{more}", shown.join(", ")))
        .evidence(format!("{tools}; no login-limiting plugin ({}…) in these sites", WP_LIMITERS[..3].join(", ")))
        .evidence(
            "wp-login.php and xmlrpc.php (system.multicall tries hundreds of passwords per request) are open to anyone",
        )
        .fix(
            "Add a fail2ban jail for WordPress: `apt-get install fail2ban`, write a filter \
             /etc/fail2ban/filter.d/wordpress.conf with `failregex = ^<HOST> .* \"POST /(wp-login\\.php|xmlrpc\\.php)` \
             and a jail in /etc/fail2ban/jail.d/wordpress.local (`[wordpress]`, `enabled = true`, `port = http,https`, \
             `logpath = /var/log/nginx/access.log` or Apache's), then `fail2ban-client reload`; or install a \
             login-limiting plugin in each site.",
        ),
    );
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jails_follow_fail2bans_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let e = dir.path().join("etc/fail2ban");
        std::fs::create_dir_all(e.join("jail.d")).unwrap();
        std::fs::create_dir_all(e.join("filter.d")).unwrap();
        std::fs::write(
            e.join("jail.conf"),
            "[DEFAULT]\nenabled = false\n[sshd]\nport = ssh\n[wp]\nfilter = wpf\n[apache-auth]\n",
        )
        .unwrap();
        std::fs::write(e.join("jail.d/defaults-debian.conf"), "[sshd]\nenabled = true\n").unwrap();
        std::fs::write(e.join("jail.d/site.local"), "[mylogins]\nenabled = true\nfilter = logins\n").unwrap();
        std::fs::write(e.join("filter.d/logins.conf"), "[Definition]\nfailregex = ^<HOST> .* \"POST /wp-login.php\n")
            .unwrap();
        let host = Host::at(dir.path());
        let jails = fail2ban_jails(&host);
        let names: Vec<&str> = jails.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["sshd", "mylogins"]);
        assert!(!is_wp_jail(&host, &jails[0]));
        assert!(is_wp_jail(&host, &jails[1]), "a filter that matches wp-login.php");
    }
}
