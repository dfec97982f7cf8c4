//! Passwordless sudo as a finding of its own: a sudoers rule granting `ALL`
//! with `NOPASSWD:` (or `Defaults !authenticate`) turns anything that runs as
//! one of its users — a stolen SSH key, a compromised deploy script, a web
//! shell in a site running as that user — into root without a second secret.
//! The rules come from [`super::parse::read_sudoers`] (includes, aliases,
//! `ALL`, `%group`, `#uid`).

use super::parse::{Grantee, Sudoers};
use crate::finding::{Category, Finding, Severity};

fn who_text(g: &Grantee) -> String {
    match g {
        Grantee::User(u) => u.clone(),
        Grantee::Uid(u) => format!("#{u}"),
        Grantee::Group(g) => format!("%{g}"),
        Grantee::Gid(g) => format!("%#{g}"),
        Grantee::All => "ALL".into(),
    }
}

/// One finding per sudoers rule that lets someone become root without a
/// password. `accounts` is (login name, how it is privileged) as judged by the
/// audit; the privilege lines name the rule's `file:line`.
pub fn findings(sudoers: &Sudoers, accounts: &[(&str, &[String])]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for grant in &sudoers.grants {
        let who = who_text(&grant.who);
        let global = sudoers.no_authenticate.iter().find(|(_, scope)| scope.is_empty() || *scope == who);
        let how = match (grant.nopasswd, global) {
            (true, _) => format!("{}: `{who}` may run ALL commands as root with NOPASSWD", grant.at),
            (false, Some((at, _))) => {
                format!("{}: `{who}` may run ALL commands as root, and {at} sets `!authenticate`", grant.at)
            }
            (false, None) => continue,
        };
        let covered: Vec<&str> = accounts
            .iter()
            .filter(|(_, privs)| privs.iter().any(|p| p.contains(&format!("({}", grant.at))))
            .map(|(n, _)| *n)
            .collect();
        let file = grant.at.rsplit_once(':').map(|(f, _)| f).unwrap_or(&grant.at);
        let line = grant.at.rsplit_once(':').map(|(_, l)| l).unwrap_or("");
        let (sev, accounts_line) = if covered.is_empty() {
            (Severity::Low, "no account has it today, but anyone added later gets it".to_string())
        } else {
            (Severity::High, format!("accounts it covers: {}", covered.join(", ")))
        };
        let subject = format!("{who} in {file}");
        if out.iter().any(|f| f.subject == subject) {
            continue;
        }
        let fix = if grant.nopasswd {
            format!(
                "Remove the NOPASSWD tag from line {line} with `visudo -f {file}` so sudo asks the user's own password"
            )
        } else {
            "Remove `!authenticate` from the Defaults line with `visudo` so sudo asks the user's own password"
                .to_string()
        };
        out.push(
            Finding::new(
                "accounts.sudo-nopasswd",
                sev,
                Category::Accounts,
                subject,
                format!("Passwordless sudo: {who} becomes root without a password"),
            )
            .evidence(how)
            .evidence(accounts_line)
            .evidence("anything running as these users (a stolen key, a deploy script, a web shell) is root at once")
            .fix(format!(
                "{fix}; if an automation needs it, list only the exact commands it runs in its rule instead of ALL. \
                 Check with `sudo -l -U USER`."
            )),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse::Grant;
    use super::*;

    fn grant(who: Grantee, at: &str, nopasswd: bool) -> Grant {
        Grant { who, at: at.into(), nopasswd }
    }

    #[test]
    fn only_passwordless_grants_are_findings() {
        let s = Sudoers {
            grants: vec![
                grant(Grantee::Group("sudo".into()), "/etc/sudoers:20", false),
                grant(Grantee::User("deploy".into()), "/etc/sudoers.d/deploy:1", true),
                grant(Grantee::Group("wheel".into()), "/etc/sudoers.d/wheel:1", true),
            ],
            ..Default::default()
        };
        let privs = vec!["sudoers deploy (/etc/sudoers.d/deploy:1, NOPASSWD)".to_string()];
        let f = findings(&s, &[("deploy", privs.as_slice())]);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[0].subject, "deploy in /etc/sudoers.d/deploy");
        assert_eq!(f[0].severity, Severity::High);
        assert!(f[0].evidence.iter().any(|e| e.contains("covers: deploy")));
        // %wheel has no members: still a rule waiting for one.
        assert_eq!(f[1].severity, Severity::Low);
    }

    #[test]
    fn defaults_not_authenticate_counts() {
        let s = Sudoers {
            grants: vec![grant(Grantee::Group("sudo".into()), "/etc/sudoers:20", false)],
            no_authenticate: vec![("/etc/sudoers:9".into(), String::new())],
            ..Default::default()
        };
        let f = findings(&s, &[]);
        assert_eq!(f.len(), 1);
        assert!(f[0].evidence[0].contains("!authenticate"));
    }
}
