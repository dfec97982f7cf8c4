//! The redactor's rules: where a secret sits in a line of text.
//!
//! Each rule finds a value in the group `v`; a [`Check`] decides whether the
//! match really is a secret (a flag named `--password-file` is not), and an
//! optional tool pattern says which command the flag belongs to (`-p` is a
//! password for `mysql` and `sshpass`, a port for `ssh` and `docker run`).
//! Every rule also names a cheap trigger: a text matching no trigger is
//! returned untouched without running the rules.

/// What must hold for a match to be masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// Always a secret (token shapes, tool-specific flags).
    Always,
    /// The `name` group is a secret name ([`super::names::secret_name`]).
    Name,
    /// A command-line flag: a secret name, and a separate value starting with `-` only for
    /// flags that always take a value.
    Flag,
    /// Credentials in a URL: not a `host:port/path@…` look-alike.
    Url,
    /// Replaced as a whole with the template (private key blocks).
    Template(&'static str),
}

/// One rule as written: its pattern, check, tool pattern and trigger.
pub(super) struct Spec {
    pub pattern: String,
    pub check: Check,
    pub tool: Option<&'static str>,
    pub trigger: String,
}

/// Words that announce a secret by name: the trigger of the name-based rules.
const WORDS: &str = r"(?i)pass|pwd|pw|secret|token|cred|key|auth|bearer|psk";

fn spec(pattern: &str, check: Check, tool: Option<&'static str>, trigger: &str) -> Spec {
    Spec { pattern: pattern.to_string(), check, tool, trigger: trigger.to_string() }
}

/// A flag of one family of tools: `tools` is a regex over the command before the flag.
fn tool(tools: &'static str, pattern: &str) -> Spec {
    spec(pattern, Check::Always, Some(tools), tools)
}

/// A token recognised by its shape alone.
fn shape(pattern: &str) -> Spec {
    spec(&format!("(?P<v>{pattern})"), Check::Always, None, pattern)
}

/// Quoted or bare value (up to whitespace).
/// Quoted, a `<placeholder>`, or bare: up to whitespace, a closing quote or a shell operator.
const VALUE: &str = r#"(?P<v>"[^"]*"|'[^']*'|<[^<>\n]{1,40}>|[^\s"']\S*?)["']?(?:[\s;|&)]|$)"#;

/// Every rule, in the order they run.
pub(super) fn specs() -> Vec<Spec> {
    let name = |p: &str| spec(p, Check::Name, None, WORDS);
    let mut v = vec![
        // Private key blocks, whole or cut off.
        spec(
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)",
            Check::Template("[REDACTED ${1}PRIVATE KEY]"),
            None,
            "PRIVATE KEY",
        ),
        // PHP defines of passwords, keys and salts.
        spec(
            r#"(?i)define\s*\(\s*['"][A-Z0-9_]*(?:PASSWORD|KEY|SALT|SECRET|TOKEN|PASS|PWD)['"]\s*,\s*(?P<v>'[^']*'|"[^"]*")"#,
            Check::Always,
            None,
            "(?i)define",
        ),
        spec(r"Private-Lines:\s*\d+\s*\n(?P<v>(?:[A-Za-z0-9+/=]+\n?)+)", Check::Always, None, "Private-Lines"),
        // Credentials in URLs: scheme://user:pass@host, the password up to the last `@`
        // (`postgres://u:a@b@h`, `mongodb://u:pa/ss@h`).
        spec(
            r#"(?i)(?-u:\b)[a-z][a-z0-9+.-]*://(?P<name>[^/?#\s:@"<>\[\]{}|\\^`]*):(?P<v>[^\s"<>\\^`{|}\[\]]+)@"#,
            Check::Url,
            None,
            "://",
        ),
        // Telegram bot tokens and chat webhooks.
        spec(r"(?i)api\.telegram\.org/(?:file/)?bot\d+:(?P<v>[A-Za-z0-9_-]+)", Check::Always, None, "telegram"),
        spec(r"(?-u:\b)\d{6,12}:(?P<v>AA[A-Za-z0-9_-]{30,})", Check::Always, None, r":AA"),
        spec(r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9/_-]+)", Check::Always, None, "slack"),
        spec(r"discord(?:app)?\.com/api/webhooks/(?P<v>\d+/[A-Za-z0-9_-]+)", Check::Always, None, "discord"),
        // Authorization headers and bearer tokens.
        spec(
            r#"(?i)(?-u:\b)(?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token|digest|negotiate|bot)\s+)?(?P<v>[^\s,;'"]+)"#,
            Check::Always,
            None,
            "(?i)authorization",
        ),
        spec(r"(?i)(?-u:\b)bearer\s+(?P<v>[a-z0-9._~+/=-]{8,})", Check::Always, None, "(?i)bearer"),
        // A whole argument quoted: "--password=two words", '--token=a b'.
        name(r#""--?(?P<name>[A-Za-z][A-Za-z0-9_.-]*)=(?P<v>[^"]+)""#),
        name(r"'--?(?P<name>[A-Za-z][A-Za-z0-9_.-]*)=(?P<v>[^']+)'"),
        // Environment assignments: DB_PASSWORD=x, export TOKEN="a b", PGPASSWORD=x pg_dump…
        name(&format!(
            r"(?:^|[\s|(`])(?:export\s+|declare\s+-x\s+|set\s+|env\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)={VALUE}"
        )),
        // Command-line flags: --password=x, --requirepass -S, --spring.datasource.password x, -pass pass:x
        spec(
            &format!(r#"(?:^|[\s'"(=,;|&`])(?P<dash>--?)(?P<name>[A-Za-z][A-Za-z0-9_.-]*)(?P<sep>=|[ \t]+){VALUE}"#),
            Check::Flag,
            None,
            WORDS,
        ),
        // A config line `name = rest of the line`, `name: rest` (ini, YAML, properties): the whole rest.
        name(r"(?m)^[ \t]*(?P<name>[A-Za-z0-9_.-]+)(?:[ \t]*:|[ \t]+=|=[ \t]+)[ \t]*(?P<v>[^\s'\x22][^\r\n]*?)[ \t]*$"),
        // key = value, "key": "value", 'key' => 'value', key: value, ?key=value&…
        name(
            r#"(?:^|[^A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]*[A-Za-z0-9])['"]?[ \t]*(?:=>|[=:])[ \t]*(?P<v>"[^"]*"|'[^']*'|[^\s,;'"}\[\]&<>]+)"#,
        ),
        // <password>x</password>
        name(r"<(?P<name>[A-Za-z0-9_.:-]+)>(?P<v>[^<\n]{1,200})</"),
        // Redis config and a .netrc: requirepass x, masterauth x, machine h login u password x
        spec(
            r"(?im)^[ \t]*(?:requirepass|masterauth)[ \t]+(?P<v>\S+)",
            Check::Always,
            None,
            "(?i)requirepass|masterauth",
        ),
        spec(r"(?i)(?-u:\b)machine\s+\S+.*?(?-u:\b)password\s+(?P<v>\S+)", Check::Always, None, "(?i)machine"),
        // SQL: IDENTIFIED BY 'x', PASSWORD('x'), WITH PASSWORD 'x', password 'x'
        spec(
            r#"(?i)(?-u:\b)identified\s+(?:with\s+\S+\s+)?by\s+(?:password\s+)?(?P<v>'[^']*'|"[^"]*")"#,
            Check::Always,
            None,
            "(?i)identified",
        ),
        spec(
            r#"(?i)(?-u:\b)(?:password|passwd|passphrase|secret)(?:\s*\(\s*|\s+)(?P<v>'[^']*'|"[^"]*")"#,
            Check::Always,
            None,
            "(?i)pass|secret",
        ),
        // Flags that are passwords only for some tools.
        tool(
            r"(?i:(?-u:\b)(?:mysql|mariadb|mysqldump|mariadb-dump|mysqladmin|mariadb-admin|mysqlimport|mariadb-import|mysqlcheck|mariadb-check|mysqlshow|mysqlpump|mysqlslap|mysqlbinlog)(?-u:\b))",
            r"\s-p(?P<v>\S+)",
        ),
        tool(
            r"(?-u:\b)(?:mysqladmin|mariadb-admin)(?-u:\b)",
            r"\s(?:password|old-password)\s+(?P<v>'[^']*'|\x22[^\x22]*\x22|\S+)",
        ),
        tool(r"(?-u:\b)mongo(?:sh|dump|restore|export|import|stat|top|files)?(?-u:\b)", r"\s-p\s*(?P<v>[^\s-]\S*)"),
        tool(r"(?-u:\b)(?:redis|keydb|valkey)-cli(?-u:\b)", r"\s-a\s+(?P<v>\S+)"),
        spec(r"(?-u:\b)sshpass(?:\s+-[^p\s]\S*)*\s+-p\s*(?P<v>\S+)", Check::Always, None, "sshpass"),
        tool(
            r"(?-u:\b)(?:curl|wget|http|https|xh|httpie)(?-u:\b)",
            r#"\s(?:-u|--user|-U|--proxy-user|-a|--auth)(?:\s+|=)?'[^':]*:(?P<v>[^']+)'"#,
        ),
        tool(
            r"(?-u:\b)(?:curl|wget|http|https|xh|httpie)(?-u:\b)",
            r#"\s(?:-u|--user|-U|--proxy-user|-a|--auth)(?:\s+|=)?"[^":]*:(?P<v>[^"]+)""#,
        ),
        tool(
            r"(?-u:\b)(?:curl|wget|http|https|xh|httpie)(?-u:\b)",
            r#"\s(?:-u|--user|-U|--proxy-user|-a|--auth)(?:\s+|=)?['"]?[^:\s'"]*:(?P<v>[^\s'"]+)"#,
        ),
        tool(r"(?-u:\b)lftp(?-u:\b)", r#"\s-u\s+['"]?[^,\s'"]*,(?P<v>[^\s'"]+)"#),
        tool(r"(?-u:\b)(?:zip|unzip|zipcloak|funzip)(?-u:\b)", r"\s-P\s*(?P<v>\S+)"),
        tool(r"(?-u:\b)(?:7z|7za|7zr|rar|unrar)(?-u:\b)", r"\s-h?p(?P<v>[^\s-]\S*)"),
        tool(r"(?-u:\b)openssl(?-u:\b)", r"\s-[kK]\s+(?P<v>\S+)"),
        tool(
            r"(?-u:\b)ldap(?:search|modify|add|delete|passwd|compare|modrdn|whoami|exop|url)(?-u:\b)",
            r"\s-w\s*(?P<v>[^\s-]\S*)",
        ),
        tool(r"(?-u:\b)ldappasswd(?-u:\b)", r"\s-[as]\s+(?P<v>\S+)"),
        spec(
            r"(?-u:\b)htpasswd(?:\s+-[A-Za-z]+)*?\s+-[A-Za-z]*b[A-Za-z]*(?:\s+-[A-Za-z]+)*(?:\s+[^\s|;&<>-]\S*){1,2}?\s+(?P<v>[^\s|;&<>-]\S*)\s*(?:$|[|;&<>])",
            Check::Always,
            None,
            "htpasswd",
        ),
        spec(r#"(?:^|\s)(?:-U|--user|--username)(?:\s+|=)['"]?[^%\s'"]+%(?P<v>[^\s'"]+)"#, Check::Always, None, "%"),
        spec(r"(?-u:\b)smbclient\s+(?:-\S+\s+)*//\S+\s+(?P<v>[^\s-]\S*)", Check::Always, None, "smbclient"),
        tool(
            r"(?-u:\b)(?:docker|podman|buildah|skopeo|nerdctl|helm|oras|crane)(?-u:\b).*?(?-u:\b)login(?-u:\b)",
            r"\s-p\s*(?P<v>[^\s-]\S*)",
        ),
        tool(r"(?-u:\b)az(?-u:\b).*?(?-u:\b)login(?-u:\b)", r"\s-p\s+(?P<v>\S+)"),
        tool(r"(?-u:\b)(?:sqlcmd|bcp|osql|isql)(?-u:\b)", r"\s-P\s*(?P<v>\S+)"),
        tool(r"(?-u:\b)(?:useradd|usermod)(?-u:\b)", r"\s-p\s+(?P<v>\S+)"),
        tool(r"(?-u:\b)ncftp(?:put|get|ls)?(?-u:\b)", r"\s-p\s+(?P<v>\S+)"),
        tool(
            r"(?-u:\b)rabbitmqctl(?-u:\b)",
            r"(?-u:\b)(?:add_user|change_password)\s+\S+\s+(?P<v>'[^']*'|\x22[^\x22]*\x22|\S+)",
        ),
        tool(
            r"(?-u:\b)wp(?-u:\b).*?(?-u:\b)config\s+set(?-u:\b)",
            r"\s[A-Z0-9_]*(?:PASSWORD|KEY|SALT|SECRET|TOKEN|PASS)\s+(?P<v>'[^']*'|\x22[^\x22]*\x22|\S+)",
        ),
        tool(r"(?-u:\b)aws\s+configure\s+set(?-u:\b)", r"\s\S*(?:secret|token|password)\S*\s+(?P<v>\S+)"),
        tool(r"(?-u:\b)mc\s+(?:alias|config\s+host)\s+(?:set|add)(?-u:\b)", r"\shttps?://\S+\s+\S+\s+(?P<v>[^\s-]\S*)"),
        spec(
            r#"(?:^|\s)echo\s+(?:-[ne]+\s+)?['"]?[A-Za-z_][A-Za-z0-9_.-]*:(?P<v>[^\s'"|]+)['"]?\s*\|\s*(?:sudo\s+)?chpasswd(?-u:\b)"#,
            Check::Always,
            None,
            "chpasswd",
        ),
        spec(
            r#"(?:^|\s)echo\s+(?:-[ne]+\s+)?(?P<v>'[^']*'|"[^"]*"|[^\s|'"]+)\s*\|\s*(?:sudo\s+)?passwd(?-u:\b)"#,
            Check::Always,
            None,
            "passwd",
        ),
    ];
    // Well-known token shapes.
    for p in [
        r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{10,}",
        r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}(?-u:\b)",
        r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{20,}",
        r"(?-u:\b)github_pat_[A-Za-z0-9_]{20,}",
        r"(?-u:\b)gl(?:pat|dt|rt|ptt|ft|cbt|imt|soat)-[A-Za-z0-9_-]{20,}",
        r"(?-u:\b)xox[abposr]-[A-Za-z0-9-]{10,}",
        r"(?-u:\b)xapp-\d-[A-Za-z0-9-]{10,}",
        r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}",
        r"(?-u:\b)whsec_[A-Za-z0-9]{20,}",
        r"(?-u:\b)SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
        r"(?-u:\b)SK[0-9a-fA-F]{32}(?-u:\b)",
        r"(?-u:\b)AIza[0-9A-Za-z_-]{35}",
        r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)",
        r"(?-u:\b)pypi-[A-Za-z0-9_-]{50,}",
        r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        r"(?-u:\b)dop_v1_[a-f0-9]{64}(?-u:\b)",
        r"(?-u:\b)shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}(?-u:\b)",
        r"(?-u:\b)hf_[A-Za-z0-9]{30,}",
        r"(?-u:\b)dckr_pat_[A-Za-z0-9_-]{20,}",
        r"(?-u:\b)PMAK-[A-Za-z0-9-]{20,}",
        r"(?-u:\b)hv[sb]\.[A-Za-z0-9_-]{20,}",
        r"(?-u:\b)glsa_[A-Za-z0-9_]{20,}",
        r"(?-u:\b)key-[0-9a-f]{32}(?-u:\b)",
        r"(?-u:\b)[0-9a-f]{32}-us\d{1,2}(?-u:\b)",
        r"(?-u:\b)sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}",
        r"(?-u:\b)ya29\.[0-9A-Za-z_-]{20,}",
        r"(?-u:\b)lin_api_[A-Za-z0-9]{40}(?-u:\b)",
        r"(?-u:\b)AGE-SECRET-KEY-1[0-9A-Z]{58}(?-u:\b)",
    ] {
        v.push(shape(p));
    }
    v
}
