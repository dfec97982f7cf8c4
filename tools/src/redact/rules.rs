//! The redactor's rules: where a secret sits in a line of text.
//!
//! Each rule finds a value in the group `v`; a [`Check`] decides whether the
//! match really is a secret (a flag named `--password-file` is not), and an
//! optional tool pattern says which command the flag belongs to (`-p` is a
//! password for `mysql` and `sshpass`, a port for `ssh` and `docker run`).
//! Every rule also names what a text it can change always holds: literals
//! ([`Spec::needs`]: one of each group, ASCII case aside), found for every rule
//! at once by one Aho-Corasick automaton, and the same condition as a regex
//! ([`Spec::trigger`]), used for text that is not ASCII (where `(?i)` also folds
//! `ſ` and `K`). A text that meets no rule's condition is returned untouched
//! without running the rules.

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
    /// A regex every text the rule can change matches.
    pub trigger: String,
    /// Literals every ASCII text the rule can change holds, ASCII case aside: one of each
    /// group. Each is a necessary part of `trigger` (a test checks it over the corpora).
    pub needs: Needs,
}

/// Groups of literals: one of each group must occur.
pub(super) type Needs = &'static [&'static [&'static str]];

/// Words that announce a secret by name: the trigger of the name-based rules.
const WORDS: &str = r"(?i)pass|pwd|pw|secret|token|cred|key|auth|bearer|psk";
/// [`WORDS`] as literals.
const WORD_LITERALS: Needs = &[&["pass", "pw", "secret", "token", "cred", "key", "auth", "bearer", "psk"]];

fn spec(pattern: &str, check: Check, tool: Option<&'static str>, trigger: &str, needs: Needs) -> Spec {
    Spec { pattern: pattern.to_string(), check, tool, trigger: trigger.to_string(), needs }
}

/// A flag of one family of tools: `tools` is a regex over the command before the flag
/// (`needs`: its literals).
fn tool(tools: &'static str, needs: Needs, pattern: &str) -> Spec {
    spec(pattern, Check::Always, Some(tools), tools, needs)
}

/// A token recognised by its shape alone (`needs`: the literals every such token holds).
fn shape(pattern: &str, needs: Needs) -> Spec {
    spec(&format!("(?P<v>{pattern})"), Check::Always, None, pattern, needs)
}

/// Quoted or bare value (up to whitespace).
/// Quoted, a `<placeholder>`, or bare: up to whitespace, a closing quote or a shell operator.
const VALUE: &str = r#"(?P<v>"[^"]*"|'[^']*'|<[^<>\n]{1,40}>|[^\s"']\S*?)["']?(?:[\s;|&)]|$)"#;

/// Every rule, in the order they run.
pub(super) fn specs() -> Vec<Spec> {
    let name = |p: &str| spec(p, Check::Name, None, WORDS, WORD_LITERALS);
    let mut v = vec![
        // Private key blocks, whole or cut off.
        spec(
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)",
            Check::Template("[REDACTED ${1}PRIVATE KEY]"),
            None,
            "PRIVATE KEY",
            &[&["PRIVATE KEY"]],
        ),
        // PHP defines of passwords, keys and salts.
        spec(
            r#"(?i)define\s*\(\s*['"][A-Z0-9_]*(?:PASSWORD|KEY|SALT|SECRET|TOKEN|PASS|PWD)['"]\s*,\s*(?P<v>'[^']*'|"[^"]*")"#,
            Check::Always,
            None,
            "(?i)define",
            &[&["define"]],
        ),
        spec(
            r"Private-Lines:\s*\d+\s*\n(?P<v>(?:[A-Za-z0-9+/=]+\n?)+)",
            Check::Always,
            None,
            "Private-Lines",
            &[&["Private-Lines"]],
        ),
        // Credentials in URLs: scheme://user:pass@host, the password up to the last `@`
        // (`postgres://u:a@b@h`, `mongodb://u:pa/ss@h`).
        spec(
            r#"(?i)(?-u:\b)[a-z][a-z0-9+.-]*://(?P<name>[^/?#\s:@"<>\[\]{}|\\^`]*):(?P<v>[^\s"<>\\^`{|}\[\]]+)@"#,
            Check::Url,
            None,
            "://",
            &[&["://"]],
        ),
        // Telegram bot tokens and chat webhooks.
        spec(
            r"(?i)api\.telegram\.org/(?:file/)?bot\d+:(?P<v>[A-Za-z0-9_-]+)",
            Check::Always,
            None,
            "telegram",
            &[&["telegram"]],
        ),
        spec(r"(?-u:\b)\d{6,12}:(?P<v>AA[A-Za-z0-9_-]{30,})", Check::Always, None, r":AA", &[&[":AA"]]),
        spec(
            r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9/_-]+)",
            Check::Always,
            None,
            "slack",
            &[&["slack"]],
        ),
        spec(
            r"discord(?:app)?\.com/api/webhooks/(?P<v>\d+/[A-Za-z0-9_-]+)",
            Check::Always,
            None,
            "discord",
            &[&["discord"]],
        ),
        // Authorization headers and bearer tokens.
        spec(
            r#"(?i)(?-u:\b)(?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token|digest|negotiate|bot)\s+)?(?P<v>[^\s,;'"]+)"#,
            Check::Always,
            None,
            "(?i)authorization",
            &[&["authorization"]],
        ),
        spec(r"(?i)(?-u:\b)bearer\s+(?P<v>[a-z0-9._~+/=-]{8,})", Check::Always, None, "(?i)bearer", &[&["bearer"]]),
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
            WORD_LITERALS,
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
            &[&["requirepass", "masterauth"]],
        ),
        spec(
            r"(?i)(?-u:\b)machine\s+\S+.*?(?-u:\b)password\s+(?P<v>\S+)",
            Check::Always,
            None,
            "(?i)machine",
            &[&["machine"]],
        ),
        // SQL: IDENTIFIED BY 'x', PASSWORD('x'), WITH PASSWORD 'x', password 'x'
        spec(
            r#"(?i)(?-u:\b)identified\s+(?:with\s+\S+\s+)?by\s+(?:password\s+)?(?P<v>'[^']*'|"[^"]*")"#,
            Check::Always,
            None,
            "(?i)identified",
            &[&["identified"]],
        ),
        spec(
            r#"(?i)(?-u:\b)(?:password|passwd|passphrase|secret)(?:\s*\(\s*|\s+)(?P<v>'[^']*'|"[^"]*")"#,
            Check::Always,
            None,
            "(?i)pass|secret",
            &[&["pass", "secret"]],
        ),
        // Flags that are passwords only for some tools.
        tool(
            r"(?i:(?-u:\b)(?:mysql|mariadb|mysqldump|mariadb-dump|mysqladmin|mariadb-admin|mysqlimport|mariadb-import|mysqlcheck|mariadb-check|mysqlshow|mysqlpump|mysqlslap|mysqlbinlog)(?-u:\b))",
            &[&["mysql", "mariadb"]],
            r"\s-p(?P<v>\S+)",
        ),
        tool(
            r"(?-u:\b)(?:mysqladmin|mariadb-admin)(?-u:\b)",
            &[&["mysqladmin", "mariadb-admin"]],
            r"\s(?:password|old-password)\s+(?P<v>'[^']*'|\x22[^\x22]*\x22|\S+)",
        ),
        tool(
            r"(?-u:\b)mongo(?:sh|dump|restore|export|import|stat|top|files)?(?-u:\b)",
            &[&["mongo"]],
            r"\s-p\s*(?P<v>[^\s-]\S*)",
        ),
        tool(
            r"(?-u:\b)(?:redis|keydb|valkey)-cli(?-u:\b)",
            &[&["redis-cli", "keydb-cli", "valkey-cli"]],
            r"\s-a\s+(?P<v>\S+)",
        ),
        spec(r"(?-u:\b)sshpass(?:\s+-[^p\s]\S*)*\s+-p\s*(?P<v>\S+)", Check::Always, None, "sshpass", &[&["sshpass"]]),
        tool(
            r"(?-u:\b)(?:curl|wget|http|https|xh|httpie)(?-u:\b)",
            &[&["curl", "wget", "http", "xh"]],
            r#"\s(?:-u|--user|-U|--proxy-user|-a|--auth)(?:\s+|=)?'[^':]*:(?P<v>[^']+)'"#,
        ),
        tool(
            r"(?-u:\b)(?:curl|wget|http|https|xh|httpie)(?-u:\b)",
            &[&["curl", "wget", "http", "xh"]],
            r#"\s(?:-u|--user|-U|--proxy-user|-a|--auth)(?:\s+|=)?"[^":]*:(?P<v>[^"]+)""#,
        ),
        tool(
            r"(?-u:\b)(?:curl|wget|http|https|xh|httpie)(?-u:\b)",
            &[&["curl", "wget", "http", "xh"]],
            r#"\s(?:-u|--user|-U|--proxy-user|-a|--auth)(?:\s+|=)?['"]?[^:\s'"]*:(?P<v>[^\s'"]+)"#,
        ),
        tool(r"(?-u:\b)lftp(?-u:\b)", &[&["lftp"]], r#"\s-u\s+['"]?[^,\s'"]*,(?P<v>[^\s'"]+)"#),
        tool(r"(?-u:\b)(?:zip|unzip|zipcloak|funzip)(?-u:\b)", &[&["zip"]], r"\s-P\s*(?P<v>\S+)"),
        tool(r"(?-u:\b)(?:7z|7za|7zr|rar|unrar)(?-u:\b)", &[&["7z", "rar"]], r"\s-h?p(?P<v>[^\s-]\S*)"),
        tool(r"(?-u:\b)openssl(?-u:\b)", &[&["openssl"]], r"\s-[kK]\s+(?P<v>\S+)"),
        tool(
            r"(?-u:\b)ldap(?:search|modify|add|delete|passwd|compare|modrdn|whoami|exop|url)(?-u:\b)",
            &[&["ldap"]],
            r"\s-w\s*(?P<v>[^\s-]\S*)",
        ),
        tool(r"(?-u:\b)ldappasswd(?-u:\b)", &[&["ldappasswd"]], r"\s-[as]\s+(?P<v>\S+)"),
        spec(
            r"(?-u:\b)htpasswd(?:\s+-[A-Za-z]+)*?\s+-[A-Za-z]*b[A-Za-z]*(?:\s+-[A-Za-z]+)*(?:\s+[^\s|;&<>-]\S*){1,2}?\s+(?P<v>[^\s|;&<>-]\S*)\s*(?:$|[|;&<>])",
            Check::Always,
            None,
            "htpasswd",
            &[&["htpasswd"]],
        ),
        spec(
            r#"(?:^|\s)(?:-U|--user|--username)(?:\s+|=)['"]?[^%\s'"]+%(?P<v>[^\s'"]+)"#,
            Check::Always,
            None,
            "%",
            &[&["%"]],
        ),
        spec(
            r"(?-u:\b)smbclient\s+(?:-\S+\s+)*//\S+\s+(?P<v>[^\s-]\S*)",
            Check::Always,
            None,
            "smbclient",
            &[&["smbclient"]],
        ),
        tool(
            r"(?-u:\b)(?:docker|podman|buildah|skopeo|nerdctl|helm|oras|crane)(?-u:\b).*?(?-u:\b)login(?-u:\b)",
            &[&["docker", "podman", "buildah", "skopeo", "nerdctl", "helm", "oras", "crane"], &["login"]],
            r"\s-p\s*(?P<v>[^\s-]\S*)",
        ),
        tool(r"(?-u:\b)az(?-u:\b).*?(?-u:\b)login(?-u:\b)", &[&["az"], &["login"]], r"\s-p\s+(?P<v>\S+)"),
        tool(r"(?-u:\b)(?:sqlcmd|bcp|osql|isql)(?-u:\b)", &[&["sqlcmd", "bcp", "osql", "isql"]], r"\s-P\s*(?P<v>\S+)"),
        tool(r"(?-u:\b)(?:useradd|usermod)(?-u:\b)", &[&["useradd", "usermod"]], r"\s-p\s+(?P<v>\S+)"),
        tool(r"(?-u:\b)ncftp(?:put|get|ls)?(?-u:\b)", &[&["ncftp"]], r"\s-p\s+(?P<v>\S+)"),
        tool(
            r"(?-u:\b)rabbitmqctl(?-u:\b)",
            &[&["rabbitmqctl"]],
            r"(?-u:\b)(?:add_user|change_password)\s+\S+\s+(?P<v>'[^']*'|\x22[^\x22]*\x22|\S+)",
        ),
        tool(
            r"(?-u:\b)wp(?-u:\b).*?(?-u:\b)config\s+set(?-u:\b)",
            &[&["wp"], &["config"], &["set"]],
            r"\s[A-Z0-9_]*(?:PASSWORD|KEY|SALT|SECRET|TOKEN|PASS)\s+(?P<v>'[^']*'|\x22[^\x22]*\x22|\S+)",
        ),
        tool(
            r"(?-u:\b)aws\s+configure\s+set(?-u:\b)",
            &[&["aws"], &["configure"], &["set"]],
            r"\s\S*(?:secret|token|password)\S*\s+(?P<v>\S+)",
        ),
        tool(
            r"(?-u:\b)mc\s+(?:alias|config\s+host)\s+(?:set|add)(?-u:\b)",
            &[&["mc"], &["alias", "config"]],
            r"\shttps?://\S+\s+\S+\s+(?P<v>[^\s-]\S*)",
        ),
        spec(
            r#"(?:^|\s)echo\s+(?:-[ne]+\s+)?['"]?[A-Za-z_][A-Za-z0-9_.-]*:(?P<v>[^\s'"|]+)['"]?\s*\|\s*(?:sudo\s+)?chpasswd(?-u:\b)"#,
            Check::Always,
            None,
            "chpasswd",
            &[&["chpasswd"]],
        ),
        spec(
            r#"(?:^|\s)echo\s+(?:-[ne]+\s+)?(?P<v>'[^']*'|"[^"]*"|[^\s|'"]+)\s*\|\s*(?:sudo\s+)?passwd(?-u:\b)"#,
            Check::Always,
            None,
            "passwd",
            &[&["passwd"]],
        ),
    ];
    // Well-known token shapes.
    let shapes: &[(&str, Needs)] = &[
        (r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{10,}", &[&["sk-ant-"]]),
        (r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", &[&["sk-"]]),
        (
            r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}(?-u:\b)",
            &[&["AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"]],
        ),
        (r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{20,}", &[&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]]),
        (r"(?-u:\b)github_pat_[A-Za-z0-9_]{20,}", &[&["github_pat_"]]),
        (
            r"(?-u:\b)gl(?:pat|dt|rt|ptt|ft|cbt|imt|soat)-[A-Za-z0-9_-]{20,}",
            &[&["glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glcbt-", "glimt-", "glsoat-"]],
        ),
        (r"(?-u:\b)xox[abposr]-[A-Za-z0-9-]{10,}", &[&["xox"]]),
        (r"(?-u:\b)xapp-\d-[A-Za-z0-9-]{10,}", &[&["xapp-"]]),
        (r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}", &[&["sk_live_", "sk_test_", "rk_live_", "rk_test_"]]),
        (r"(?-u:\b)whsec_[A-Za-z0-9]{20,}", &[&["whsec_"]]),
        (r"(?-u:\b)SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", &[&["SG."]]),
        (r"(?-u:\b)SK[0-9a-fA-F]{32}(?-u:\b)", &[&["SK"]]),
        (r"(?-u:\b)AIza[0-9A-Za-z_-]{35}", &[&["AIza"]]),
        (r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)", &[&["npm_"]]),
        (r"(?-u:\b)pypi-[A-Za-z0-9_-]{50,}", &[&["pypi-"]]),
        (r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", &[&["eyJ"]]),
        (r"(?-u:\b)dop_v1_[a-f0-9]{64}(?-u:\b)", &[&["dop_v1_"]]),
        (r"(?-u:\b)shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}(?-u:\b)", &[&["shpat_", "shpss_", "shpca_", "shppa_"]]),
        (r"(?-u:\b)hf_[A-Za-z0-9]{30,}", &[&["hf_"]]),
        (r"(?-u:\b)dckr_pat_[A-Za-z0-9_-]{20,}", &[&["dckr_pat_"]]),
        (r"(?-u:\b)PMAK-[A-Za-z0-9-]{20,}", &[&["PMAK-"]]),
        (r"(?-u:\b)hv[sb]\.[A-Za-z0-9_-]{20,}", &[&["hvs.", "hvb."]]),
        (r"(?-u:\b)glsa_[A-Za-z0-9_]{20,}", &[&["glsa_"]]),
        (r"(?-u:\b)key-[0-9a-f]{32}(?-u:\b)", &[&["key-"]]),
        (r"(?-u:\b)[0-9a-f]{32}-us\d{1,2}(?-u:\b)", &[&["-us"]]),
        (r"(?-u:\b)sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}", &[&["sq0atp-", "sq0csp-"]]),
        (r"(?-u:\b)ya29\.[0-9A-Za-z_-]{20,}", &[&["ya29."]]),
        (r"(?-u:\b)lin_api_[A-Za-z0-9]{40}(?-u:\b)", &[&["lin_api_"]]),
        (r"(?-u:\b)AGE-SECRET-KEY-1[0-9A-Z]{58}(?-u:\b)", &[&["AGE-SECRET-KEY-1"]]),
    ];
    for &(p, needs) in shapes {
        v.push(shape(p, needs));
    }
    v
}
