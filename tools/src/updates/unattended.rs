//! Automatic security updates: `unattended-upgrades` installed and switched on
//! in apt's configuration (`APT::Periodic`), read as apt reads it.

use super::*;

pub(super) fn ignored_conf(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [
            ".disabled",
            ".bak",
            ".save",
            ".orig",
            ".distUpgrade",
            ".dpkg-old",
            ".dpkg-new",
            ".dpkg-dist",
            ".ucf-old",
            ".ucf-new",
            ".ucf-dist",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Parse apt.conf syntax (`A::B "v";` and `A { B "v"; };`) into lowercase keys.
pub fn parse_apt_conf(text: &str) -> Vec<(String, String)> {
    #[derive(Debug)]
    enum Tok {
        Word(String),
        Str(String),
        Open,
        Close,
        Semi,
    }
    let mut toks = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '"' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += 1;
                }
                toks.push(Tok::Str(chars[start..i.min(chars.len())].iter().collect()));
                i += 1;
            }
            '{' => {
                toks.push(Tok::Open);
                i += 1;
            }
            '}' => {
                toks.push(Tok::Close);
                i += 1;
            }
            ';' => {
                toks.push(Tok::Semi);
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"{};\"".contains(chars[i]) {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut key: Option<String> = None;
    let full = |stack: &[String], k: &str| {
        let mut parts: Vec<&str> = stack.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        parts.push(k);
        parts.join("::").to_ascii_lowercase()
    };
    for t in toks {
        match t {
            Tok::Word(w) => match key.take() {
                None => key = Some(w),
                Some(k) => out.push((full(&stack, &k), w)),
            },
            Tok::Str(s) => {
                if let Some(k) = key.take() {
                    out.push((full(&stack, &k), s));
                }
            }
            Tok::Open => stack.push(key.take().unwrap_or_default()),
            Tok::Close => {
                stack.pop();
                key = None;
            }
            Tok::Semi => key = None,
        }
    }
    out
}

pub(super) fn truthy(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    !(v.is_empty() || v == "0" || v == "false" || v == "no" || v == "off")
}

pub(super) fn check_unattended(
    host: &Host,
    installed: &Installed,
    facts: &mut UpdatesFacts,
    findings: &mut Vec<Finding>,
) {
    let mut files = vec!["/etc/apt/apt.conf".to_string()];
    if let Ok(names) = host.read_dir("/etc/apt/apt.conf.d") {
        files.extend(names.into_iter().filter(|n| !ignored_conf(n)).map(|n| format!("/etc/apt/apt.conf.d/{n}")));
    }
    let mut uu: Option<(String, String)> = None;
    let mut periodic_enable: Option<String> = None;
    for f in &files {
        let Ok(Some(text)) = host.read_optional(f) else { continue };
        for (k, v) in parse_apt_conf(&text) {
            match k.as_str() {
                "apt::periodic::unattended-upgrade" => uu = Some((v, f.clone())),
                "apt::periodic::enable" => periodic_enable = Some(v),
                _ => {}
            }
        }
    }
    let pkg = installed.contains_key("unattended-upgrades");
    let enabled = pkg && uu.as_ref().is_some_and(|(v, _)| truthy(v)) && periodic_enable.as_deref().is_none_or(truthy);
    facts.unattended_upgrades =
        UnattendedFacts { installed: pkg, enabled, set_in: uu.as_ref().map(|(_, f)| f.clone()) };
    if enabled {
        return;
    }
    let why = if !pkg {
        "the unattended-upgrades package is not installed".to_string()
    } else if let Some((v, f)) = &uu {
        if periodic_enable.as_deref().is_some_and(|v| !truthy(v)) {
            "APT::Periodic::Enable is \"0\": no periodic apt runs".to_string()
        } else {
            format!("APT::Periodic::Unattended-Upgrade \"{v}\" in {f}")
        }
    } else {
        "APT::Periodic::Unattended-Upgrade is not set (no /etc/apt/apt.conf.d/20auto-upgrades)".to_string()
    };
    findings.push(
        Finding::new(
            "updates.unattended-off",
            Severity::Medium,
            Category::Updates,
            "unattended-upgrades",
            "Security updates are not installed automatically",
        )
        .evidence(why)
        .fix("apt-get install unattended-upgrades && dpkg-reconfigure -plow unattended-upgrades (writes /etc/apt/apt.conf.d/20auto-upgrades with APT::Periodic::Unattended-Upgrade \"1\")."),
    );
}
