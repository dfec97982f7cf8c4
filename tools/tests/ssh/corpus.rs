//! A generated corpus of sshd configurations for the differential test:
//! `Match` blocks on User, Group, Address, Host, LocalAddress and LocalPort
//! (comma lists, wildcards, `!` negation, CIDR), `Match all`, `Include` globs
//! relative and absolute (inside and outside blocks, nested), duplicates that
//! test first-value-wins, `Keyword=value`, keyword case and comments. Every
//! configuration is one sshd accepts: keywords sshd refuses inside a `Match`
//! (`UsePAM`, `Port`, `ListenAddress`) appear only where sshd's first pass
//! applies them. A fixed seed makes a failure reproducible.

/// xorshift64*: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Keywords a `Match` block may set, with values sshd accepts.
const MATCH_SETTINGS: &[(&str, &[&str])] = &[
    ("PermitRootLogin", &["yes", "no", "prohibit-password", "without-password", "forced-commands-only", "YES"]),
    ("PasswordAuthentication", &["yes", "no", "Yes", "NO"]),
    ("KbdInteractiveAuthentication", &["yes", "no"]),
    ("ChallengeResponseAuthentication", &["yes", "no"]),
    (
        "AuthenticationMethods",
        &[
            "publickey",
            "publickey,password",
            "publickey,keyboard-interactive",
            "publickey,keyboard-interactive:pam publickey,password",
            "password",
            "keyboard-interactive",
            "publickey password",
        ],
    ),
    ("PubkeyAuthentication", &["yes", "no"]),
    ("PermitEmptyPasswords", &["yes", "no"]),
    ("MaxAuthTries", &["1", "3", "6", "10"]),
    ("X11Forwarding", &["yes", "no"]),
    ("AllowTcpForwarding", &["yes", "no", "local", "remote", "all"]),
    ("AllowAgentForwarding", &["yes", "no"]),
];

/// Keywords only the global section may set.
const GLOBAL_SETTINGS: &[(&str, &[&str])] = &[
    ("UsePAM", &["yes", "no"]),
    ("Port", &["22", "2222", "2200"]),
    ("ListenAddress", &["0.0.0.0:2200", "127.0.0.1", "[::1]:2201", "10.0.0.1", "0.0.0.0"]),
];

const USERS: &[&str] = &["root", "alice", "bob", "deploy", "ghost", "a*", "*", "?ob", "de*", "ROOT"];
const GROUPS: &[&str] = &["root", "vadmins", "vweb", "vdeploy", "v*", "*", "nogroup", "sudo"];
const ADDRESSES: &[&str] = &[
    "10.0.0.0/8",
    "192.168.1.0/24",
    "203.0.113.7",
    "2001:db8::/32",
    "127.0.0.1",
    "10.1.*",
    "192.168.1.?0",
    "0.0.0.0/0",
    "203.0.113.0/25",
];
const HOSTS: &[&str] = &["*.example.com", "web.example.com", "gw.internal", "10.1.*", "GW.*"];
const LOCAL_ADDRESSES: &[&str] = &["10.0.0.1", "192.0.2.0/24", "198.51.100.*", "!10.0.0.1"];
const LOCAL_PORTS: &[&str] = &["22", "2222"];

/// One configuration: files relative to the root (`etc/ssh/sshd_config` first).
pub struct Generated {
    pub files: Vec<(String, String)>,
    includes: usize,
}

impl Generated {
    /// Every file with its text, for a failure message.
    pub fn dump(&self) -> String {
        self.files.iter().map(|(p, t)| format!("==> /{p} <==\n{t}")).collect::<Vec<_>>().join("\n")
    }
}

pub fn generate(rng: &mut Rng) -> Generated {
    let mut g = Generated { files: Vec::new(), includes: 0 };
    g.files.push(("etc/ssh/sshd_config".into(), String::new()));
    let text = file(rng, &mut g, true, 0);
    g.files[0].1 = text;
    g
}

fn case(rng: &mut Rng, word: &str) -> String {
    match rng.below(6) {
        0 => word.to_ascii_lowercase(),
        1 => word.to_ascii_uppercase(),
        _ => word.to_string(),
    }
}

/// `AuthenticationMethods` values for the global section: sshd refuses to
/// start when no global chain can be satisfied, so each keeps `publickey`
/// alone (and the global section never turns public keys off). No `any`: sshd
/// 9.2 refuses an `any` after any earlier `AuthenticationMethods` line, even one
/// that does not apply.
const GLOBAL_METHODS: &[&str] = &["publickey", "publickey password", "publickey,keyboard-interactive publickey"];

fn setting(rng: &mut Rng, global: bool) -> String {
    let (k, mut values) = if global && rng.chance(25) { *rng.pick(GLOBAL_SETTINGS) } else { *rng.pick(MATCH_SETTINGS) };
    if global && k == "AuthenticationMethods" {
        values = GLOBAL_METHODS;
    }
    if global && k == "PubkeyAuthentication" {
        values = &["yes"];
    }
    let k = case(rng, k);
    let v = rng.pick(values);
    let indent = if rng.chance(30) { "  " } else { "" };
    let comment = if rng.chance(10) { " # set here" } else { "" };
    match rng.below(5) {
        0 => format!("{indent}{k}={v}{comment}"),
        1 => format!("{indent}{k} = {v}{comment}"),
        2 if k.eq_ignore_ascii_case("AuthenticationMethods") => format!("{indent}{k} {v}{comment}"),
        2 if !v.contains(' ') => format!("{indent}{k} \"{v}\"{comment}"),
        _ => format!("{indent}{k} {v}{comment}"),
    }
}

fn list(rng: &mut Rng, from: &[&str]) -> String {
    let n = 1 + rng.below(3);
    (0..n)
        .map(|i| {
            let p = rng.pick(from);
            // A negation alone matches nothing: put one after a positive entry.
            if i > 0 && rng.chance(35) && !p.starts_with('!') { format!("!{p}") } else { p.to_string() }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn criteria(rng: &mut Rng) -> String {
    if rng.chance(8) {
        return case(rng, "all");
    }
    let n = 1 + rng.below(2);
    let mut out = Vec::new();
    let mut used = Vec::new();
    for _ in 0..n {
        let which = rng.below(6);
        if used.contains(&which) {
            continue;
        }
        used.push(which);
        let (k, v) = match which {
            0 => ("User", list(rng, USERS)),
            1 => ("Group", list(rng, GROUPS)),
            2 => ("Address", list(rng, ADDRESSES)),
            3 => ("Host", list(rng, HOSTS)),
            4 => ("LocalAddress", list(rng, LOCAL_ADDRESSES).replace("!!", "!")),
            _ => ("LocalPort", rng.pick(LOCAL_PORTS).to_string()),
        };
        out.push(format!("{} {v}", case(rng, k)));
    }
    out.join(" ")
}

/// One file's text. `global`: lines outside a block here are applied by
/// sshd's first pass (false inside a file included from a `Match` block).
fn file(rng: &mut Rng, g: &mut Generated, global: bool, depth: usize) -> String {
    let mut lines = Vec::new();
    let mut in_block = false;
    let n = 2 + rng.below(9);
    for _ in 0..n {
        match rng.below(12) {
            0..=5 => lines.push(setting(rng, global && !in_block)),
            6 if depth < 2 => lines.push(include(rng, g, global && !in_block, depth)),
            7 | 8 => {
                let c = criteria(rng);
                in_block = !c.eq_ignore_ascii_case("all");
                lines.push(format!("{} {c}", case(rng, "Match")));
                for _ in 0..1 + rng.below(3) {
                    lines.push(setting(rng, global && !in_block));
                }
            }
            9 => lines.push("# PermitRootLogin yes (a comment)".into()),
            _ => lines.push(String::new()),
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// An `Include` line and the files it reads (plus one its glob must not).
fn include(rng: &mut Rng, g: &mut Generated, global: bool, depth: usize) -> String {
    g.includes += 1;
    let id = g.includes;
    let dir = format!("inc{id}");
    match rng.below(4) {
        0 => {
            let text = file(rng, g, global, depth + 1);
            g.files.push((format!("etc/ssh/{dir}.conf"), text));
            format!("Include {dir}.conf")
        }
        1 => format!("Include /etc/ssh/{dir}/absent.conf"),
        k => {
            for name in ["10-a.conf", "20-b.conf"].iter().take(1 + rng.below(2)) {
                let text = file(rng, g, global, depth + 1);
                g.files.push((format!("etc/ssh/{dir}/{name}"), text));
            }
            g.files.push((format!("etc/ssh/{dir}/README"), "PermitRootLogin yes\nPasswordAuthentication yes\n".into()));
            if k == 2 { format!("Include {dir}/*.conf") } else { format!("Include /etc/ssh/{dir}/*.conf") }
        }
    }
}
