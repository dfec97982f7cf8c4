//! The redactor against real-world secret shapes, and against lines it must leave alone.
//!
//! `fixtures/redact/must_mask.txt` holds one case a line with the secret part
//! marked `⟪…⟫`; the redacted line must equal the line with each marked part
//! replaced by `[REDACTED]`. `fixtures/redact/must_not_mask.txt` must pass
//! unchanged. Property tests (a seeded generator, so a failure reproduces)
//! plant random secrets in each shape and check none survives, and vary the
//! numbers of every must-not-mask line and check it still passes unchanged.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil_tools::Redactor;
use vigil_tools::redact::MASK;

/// The cases of a corpus file: comment and blank lines dropped, `⏎` turned into a newline.
fn corpus(name: &str) -> Vec<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redact").join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.replace('⏎', "\n"))
        .collect()
}

/// A marked case split into (text, expected, secrets).
fn parse(case: &str) -> (String, String, Vec<String>) {
    let (mut text, mut expected, mut secrets) = (String::new(), String::new(), Vec::new());
    let mut rest = case;
    while let Some(i) = rest.find('⟪') {
        let j = rest[i..].find('⟫').map(|j| i + j).unwrap_or_else(|| panic!("unclosed ⟪ in {case}"));
        text.push_str(&rest[..i]);
        expected.push_str(&rest[..i]);
        let secret = &rest[i + '⟪'.len_utf8()..j];
        text.push_str(secret);
        expected.push_str(MASK);
        secrets.push(secret.to_string());
        rest = &rest[j + '⟫'.len_utf8()..];
    }
    text.push_str(rest);
    expected.push_str(rest);
    (text, expected, secrets)
}

fn r(s: &str) -> String {
    Redactor::global().text(s).into_owned()
}

/// Every failing case at once, so one run shows them all.
fn check_all(cases: impl Iterator<Item = (String, String)>) {
    let mut bad = Vec::new();
    let mut n = 0;
    for (text, expected) in cases {
        n += 1;
        let got = r(&text);
        if got != expected {
            bad.push(format!("  in:   {text}\n  want: {expected}\n  got:  {got}"));
        }
    }
    assert!(bad.is_empty(), "{} of {n} cases wrong:\n{}", bad.len(), bad.join("\n\n"));
}

#[test]
fn every_secret_shape_in_the_corpus_is_masked() {
    let cases = corpus("must_mask.txt");
    assert!(cases.len() >= 200, "the corpus has {} cases; keep at least 200", cases.len());
    for c in &cases {
        assert!(c.contains('⟪'), "a must-mask case without a marked secret: {c}");
    }
    check_all(cases.iter().map(|c| {
        let (text, expected, _) = parse(c);
        (text, expected)
    }));
}

#[test]
fn lines_that_only_look_secret_pass_unchanged() {
    let cases = corpus("must_not_mask.txt");
    assert!(cases.len() >= 100, "the corpus has {} cases", cases.len());
    check_all(cases.iter().map(|c| (c.clone(), c.clone())));
}

/// Known token prefixes a mutation must keep, longest first.
const PREFIXES: &[&str] = &[
    "AGE-SECRET-KEY-1",
    "sk-ant-admin01-",
    "sk-ant-api03-",
    "github_pat_",
    "dckr_pat_",
    "sk-proj-",
    "lin_api_",
    "sk_live_",
    "rk_live_",
    "sk_test_",
    "dop_v1_",
    "sq0atp-",
    "whsec_",
    "shpat_",
    "glpat-",
    "xapp-1-",
    "ya29.",
    "glrt-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "pypi-",
    "PMAK-",
    "glsa_",
    "hvs.",
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "ghr_",
    "AKIA",
    "ASIA",
    "AIza",
    "npm_",
    "key-",
    "hf_",
    "SG.",
    "sk-",
    "SK",
    "AA",
];

/// The secret with every letter and digit replaced by a random one of the same kind (letters
/// within a–f so hex stays hex), keeping a known token prefix, JWT segment heads (`eyJ`) and
/// Mailchimp's `-us` suffix so the shape stays the same.
fn mutate(secret: &str, rng: &mut StdRng) -> String {
    let keep = PREFIXES.iter().find(|p| secret.starts_with(*p)).map_or(0, |p| p.len());
    let fixed: Vec<bool> = {
        let mut f = vec![false; secret.len()];
        for pat in ["eyJ", "-us"] {
            for (i, _) in secret.match_indices(pat) {
                f[i..i + pat.len()].iter_mut().for_each(|x| *x = true);
            }
        }
        f
    };
    secret
        .char_indices()
        .map(|(i, c)| {
            if i < keep || fixed[i] {
                c
            } else if c.is_ascii_digit() {
                char::from(b'0' + rng.random_range(0..10u8))
            } else if c.is_ascii_lowercase() {
                char::from(b'a' + rng.random_range(0..6u8))
            } else if c.is_ascii_uppercase() {
                char::from(b'A' + rng.random_range(0..6u8))
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn random_secrets_in_every_corpus_shape_are_masked() {
    let mut rng = StdRng::seed_from_u64(0x5ec7e7);
    let cases = corpus("must_mask.txt");
    for _ in 0..24 {
        check_all(cases.iter().map(|c| {
            // Re-mark the case with mutated secrets, then parse it as usual.
            let mut out = String::new();
            let mut rest = c.as_str();
            while let Some(i) = rest.find('⟪') {
                let j = i + rest[i..].find('⟫').unwrap();
                out.push_str(&rest[..i + '⟪'.len_utf8()]);
                out.push_str(&mutate(&rest[i + '⟪'.len_utf8()..j], &mut rng));
                rest = &rest[j..];
            }
            out.push_str(rest);
            let (text, expected, _) = parse(&out);
            (text, expected)
        }));
    }
}

/// Characters of a secret in a bare shell word: no space, quote or shell metacharacter.
const BARE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#%*+,-./:=?@^_~[]{}";
/// Every character legal in a URL's userinfo, plus `@` and `/` that people use unencoded.
const USERINFO: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:%@/";

fn random_secret(rng: &mut StdRng, alphabet: &str, first: &str) -> String {
    let a: Vec<char> = alphabet.chars().collect();
    let f: Vec<char> = first.chars().collect();
    let len = rng.random_range(8..28);
    let mut s = String::new();
    s.push(f[rng.random_range(0..f.len())]);
    for _ in 1..len {
        s.push(a[rng.random_range(0..a.len())]);
    }
    s
}

/// No 6-character piece of `secret` is left in `out`.
fn leaks(secret: &str, out: &str) -> Option<String> {
    let c: Vec<char> = secret.chars().collect();
    c.windows(6.min(c.len())).map(|w| w.iter().collect::<String>()).find(|w| out.contains(w.as_str()))
}

#[test]
fn a_planted_random_secret_never_survives() {
    const LETTER: &str = "abcdefghijklmnopqrstuvwxyz";
    // (shape with {S}, alphabet of S, alphabet of its first character)
    let shapes: &[(&str, &str, &str)] = &[
        ("0 2 * * * sshpass -p {S} rsync -a /srv/ backup@nas:/srv/", BARE, LETTER),
        ("30 3 * * * curl -fsS -u backup:{S} -T /backup/site.tgz ftp://ftp.example.net/", BARE, LETTER),
        ("lftp -u backup,{S} -e 'mirror -R /srv /www; quit' ftp.example.net", BARE, LETTER),
        ("zip -P {S} -r /backup/site.zip /srv/www", BARE, LETTER),
        ("redis-cli --pass {S} ping", BARE, LETTER),
        ("redis-cli -h 127.0.0.1 -a {S} info", BARE, LETTER),
        ("java -jar app.jar --spring.datasource.password {S} --server.port=8080", BARE, LETTER),
        ("redis-server --port 6380 --requirepass {S}", BARE, "-"),
        ("mysqldump -u wp -p{S} wpdb", BARE, LETTER),
        ("app --password={S} --port 80", BARE, "-abc"),
        ("app '--password={S}' --port 80", &format!("{BARE} \""), LETTER),
        ("app \"--password={S}\" --port 80", &format!("{BARE} '"), LETTER),
        ("app --password='{S}' --port 80", &format!("{BARE} \""), LETTER),
        ("DB_PASSWORD={S}", BARE, LETTER),
        ("export API_TOKEN=\"{S}\"", &format!("{BARE} '"), LETTER),
        ("  password: {S}", &format!("{BARE} "), LETTER),
        ("db_password = '{S}'", &format!("{BARE} \""), LETTER),
        ("{\"client_secret\": \"{S}\", \"user\": \"bob\"}", &format!("{BARE} '"), LETTER),
        ("define( 'DB_PASSWORD', '{S}' );", &format!("{BARE} \""), LETTER),
        ("mongodump --uri mongodb://admin:{S}@db.example.net:27017/shop", USERINFO, LETTER),
        ("pg_dump postgres://app:{S}@db.internal:5432/app > /backup/app.sql", USERINFO, LETTER),
        ("git clone https://oauth2:{S}@gitlab.com/acme/site.git", USERINFO, LETTER),
        ("curl -s https://api.telegram.org/bot123456:{S}/sendMessage", "abcdefABCDEF0123456789_-", LETTER),
        ("Authorization: Bearer {S}", "abcdefABCDEF0123456789._~+/=-", LETTER),
        ("ldapsearch -x -D cn=admin,dc=ex -w {S} -b dc=ex", BARE, LETTER),
        ("smbclient //nas/backup -U backup%{S} -c 'ls'", BARE, LETTER),
        ("htpasswd -b /etc/nginx/.htpasswd admin {S}", BARE, LETTER),
        ("docker login -u deploy -p {S} registry.example.com", BARE, LETTER),
        ("openssl enc -aes-256-cbc -pass pass:{S} -in a -out b", BARE, LETTER),
        ("7z a -p{S} /backup/site.7z /srv", BARE, LETTER),
        ("RSYNC_PASSWORD={S} rsync -a /srv/ backup@nas::www/", BARE, LETTER),
        ("mysql://wp:{S}@db:3306/wp", USERINFO, LETTER),
    ];
    let mut rng = StdRng::seed_from_u64(14);
    let mut bad = Vec::new();
    for (shape, alphabet, first) in shapes {
        for _ in 0..150 {
            let s = random_secret(&mut rng, alphabet, first);
            let text = shape.replace("{S}", &s);
            let out = r(&text);
            if let Some(piece) = leaks(&s, &out) {
                bad.push(format!("  {text}\n  -> {out}\n  (left {piece:?})"));
                break;
            }
        }
    }
    assert!(bad.is_empty(), "secrets survived:\n{}", bad.join("\n\n"));
}

#[test]
fn must_not_mask_lines_stay_unchanged_whatever_their_numbers() {
    let mut rng = StdRng::seed_from_u64(2222);
    let cases = corpus("must_not_mask.txt");
    for _ in 0..24 {
        check_all(cases.iter().map(|c| {
            let v: String = c
                .chars()
                .map(|ch| if ch.is_ascii_digit() { char::from(b'0' + rng.random_range(0..10u8)) } else { ch })
                .collect();
            (v.clone(), v)
        }));
    }
}

#[test]
fn private_key_blocks_of_every_kind_are_removed_whole() {
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7PLANTEDKEYBODY";
    for kind in ["", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED "] {
        let block = format!("-----BEGIN {kind}PRIVATE KEY-----\n{body}\n{body}\n-----END {kind}PRIVATE KEY-----");
        let text = format!("found in /root/key.pem:\n{block}\nend of file");
        assert_eq!(r(&text), format!("found in /root/key.pem:\n[REDACTED {kind}PRIVATE KEY]\nend of file"));
        // Cut off mid-block (a capped read): the rest is removed too.
        let cut = format!("head\n-----BEGIN {kind}PRIVATE KEY-----\n{body}\n{}", &body[..20]);
        assert_eq!(r(&cut), format!("head\n[REDACTED {kind}PRIVATE KEY]"));
    }
    let pgp = format!("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{body}\n-----END PGP PRIVATE KEY BLOCK-----");
    assert_eq!(r(&pgp), "[REDACTED PGP PRIVATE KEY]");
    let putty = format!("PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\n{body}\nPrivate-MAC: abc\n");
    assert!(!r(&putty).contains("PLANTEDKEYBODY"), "{}", r(&putty));
}
