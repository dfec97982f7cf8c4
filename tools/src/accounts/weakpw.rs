//! Guessable passwords, found the way an attacker's first try would find them:
//! the `/etc/shadow` hash of every account that can log in is tried, locally,
//! against the user name and a short list of the most common passwords.
//!
//! The hashes are verified with pure-Rust implementations (RustCrypto's
//! `sha-crypt`, `yescrypt` and `bcrypt`, md5-crypt here on `md-5`), so the check
//! also works in a static build and nothing leaves the machine. Hashing is
//! deliberately slow, so the review has a CPU budget: the user names are tried
//! first for every account, then each common password in rank order across all
//! accounts, and whatever the budget does not reach is reported as "not
//! checked: budget". A hash whose own cost is out of proportion (a hostile
//! `rounds=999999999`) is not tried at all. Neither the hash nor the password
//! tried ever leaves this file: the verdict only says "equals the user name" or
//! "is one of the N most common".

use std::collections::HashMap;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use sha_crypt::PasswordVerifier as _;

/// The CPU time one review may spend trying passwords.
pub const BUDGET: Duration = Duration::from_secs(2);

/// CPU time this thread has used: the budget counts work done, not time spent
/// waiting for a busy machine's cores.
fn thread_cpu() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we own; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0)))
}

/// The most common passwords of public breach corpora (rank order), plus the
/// defaults admins leave on servers.
pub const COMMON: &[&str] = &[
    "123456",
    "password",
    "123456789",
    "12345678",
    "12345",
    "qwerty",
    "1234567",
    "111111",
    "123123",
    "1234567890",
    "abc123",
    "password1",
    "1234",
    "iloveyou",
    "000000",
    "qwerty123",
    "1q2w3e4r",
    "admin",
    "letmein",
    "welcome",
    "changeme",
    "root",
    "toor",
    "P@ssw0rd",
];

/// What trying one account's hash found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The password is the user name.
    EqualsName,
    /// The password is on [`COMMON`].
    Common,
    /// Every candidate was tried; none matched.
    NotGuessed,
    /// Not (fully) tried, and why.
    NotChecked(String),
}

impl Verdict {
    /// One line for the account's facts (never the password).
    pub fn describe(&self) -> String {
        match self {
            Verdict::EqualsName => "weak: equals the user name".into(),
            Verdict::Common => format!("weak: one of the {} most common passwords", COMMON.len()),
            Verdict::NotGuessed => {
                format!("not the user name or one of the {} most common passwords", COMMON.len())
            }
            Verdict::NotChecked(why) => format!("not checked: {why}"),
        }
    }
}

/// The hash schemes we can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Md5,
    Sha,
    Bcrypt,
    Yescrypt,
}

/// Most work one hash may ask for, per try (sha-crypt rounds, bcrypt cost,
/// yescrypt memory): beyond it the hash is reported, not tried.
const MAX_SHA_ROUNDS: u64 = 100_000;
const MAX_BCRYPT_COST: u32 = 12;
const MAX_YESCRYPT_BYTES: u64 = 64 << 20;

/// The scheme of a hash, or why it is not tried.
fn scheme_of(hash: &str) -> Result<Scheme, String> {
    let fields: Vec<&str> = hash.split('$').collect();
    match fields.get(1).copied() {
        Some("1") => Ok(Scheme::Md5),
        Some("5") | Some("6") => {
            let rounds = fields
                .get(2)
                .and_then(|f| f.strip_prefix("rounds="))
                .map(|r| r.parse::<u64>().unwrap_or(u64::MAX))
                .unwrap_or(5_000);
            if rounds > MAX_SHA_ROUNDS {
                return Err(format!("SHA-crypt with rounds={rounds} is too costly to try"));
            }
            Ok(Scheme::Sha)
        }
        Some("2a" | "2b" | "2y" | "2x") => {
            let cost = fields.get(2).and_then(|c| c.parse::<u32>().ok()).unwrap_or(u32::MAX);
            if cost > MAX_BCRYPT_COST {
                return Err(format!("bcrypt with cost {cost} is too costly to try"));
            }
            Ok(Scheme::Bcrypt)
        }
        Some("y") => {
            let params: yescrypt::Params = fields
                .get(2)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| "unreadable yescrypt parameters".to_string())?;
            let bytes = 128u64.saturating_mul(params.n()).saturating_mul(u64::from(params.r()));
            if bytes > MAX_YESCRYPT_BYTES {
                return Err(format!("yescrypt using {} MiB per try is too costly to try", bytes >> 20));
            }
            Ok(Scheme::Yescrypt)
        }
        Some("gy") => Err("gost-yescrypt hashes are not supported".into()),
        Some("7") => Err("scrypt hashes are not supported".into()),
        Some(other) => Err(format!("hash scheme ${other}$ is not supported")),
        None if hash.len() == 13 => Err("legacy DES crypt is not supported".into()),
        None => Err("unrecognised hash format".into()),
    }
}

/// True when `password` produces `hash`. Hostile input (a malformed hash) is a
/// mismatch, never a panic.
fn matches(scheme: Scheme, password: &str, hash: &str) -> bool {
    std::panic::catch_unwind(|| match scheme {
        Scheme::Md5 => md5_crypt(password.as_bytes(), hash).is_some_and(|h| h == hash),
        Scheme::Sha => sha_crypt::ShaCrypt::default().verify_password(password.as_bytes(), hash).is_ok(),
        Scheme::Bcrypt => bcrypt::verify(password, hash).unwrap_or(false),
        Scheme::Yescrypt => yescrypt::Yescrypt::default().verify_password(password.as_bytes(), hash).is_ok(),
    })
    .unwrap_or(false)
}

/// The crypt(3) alphabet.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// md5-crypt (`$1$salt$…`, Poul-Henning Kamp's algorithm), recomputed with the
/// salt of `setting`.
fn md5_crypt(password: &[u8], setting: &str) -> Option<String> {
    let salt = setting.strip_prefix("$1$")?.split('$').next()?;
    let salt = &salt.as_bytes()[..salt.len().min(8)];
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(b"$1$");
    ctx.update(salt);
    let mut n = password.len();
    while n > 0 {
        ctx.update(&alt[..n.min(16)]);
        n = n.saturating_sub(16);
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut d = ctx.finalize();
    for r in 0..1000 {
        let mut c = Md5::new();
        if r & 1 == 1 {
            c.update(password);
        } else {
            c.update(d);
        }
        if r % 3 != 0 {
            c.update(salt);
        }
        if r % 7 != 0 {
            c.update(password);
        }
        if r & 1 == 1 {
            c.update(d);
        } else {
            c.update(password);
        }
        d = c.finalize();
    }
    let mut out = format!("$1${}$", String::from_utf8_lossy(salt));
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 63) as usize]));
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put((u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]), 4);
    }
    put(u32::from(d[11]), 2);
    Some(out)
}

/// Try the hashes of `users` (most important first) within `budget`.
/// `hashes` maps a login name to its shadow password field; users without one
/// are left out of the answer.
pub fn check(users: &[&str], hashes: &HashMap<String, String>, budget: Duration) -> HashMap<String, Verdict> {
    struct Job<'a> {
        user: &'a str,
        hash: &'a str,
        scheme: Scheme,
        found: Option<Verdict>,
    }
    let mut out = HashMap::new();
    let mut jobs = Vec::new();
    for user in users {
        let Some(hash) = hashes.get(*user) else {
            continue;
        };
        match scheme_of(hash) {
            Ok(scheme) => jobs.push(Job { user, hash, scheme, found: None }),
            Err(why) => {
                out.insert((*user).to_string(), Verdict::NotChecked(why));
            }
        }
    }
    // Round 0 is the user name, round k the k-th common password: the likeliest
    // guesses for every account come before the rarer ones for any account.
    // Wall time stands in should the CPU clock be unavailable.
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let spent = || match (thread_cpu(), cpu0) {
        (Some(now), Some(start)) => now.saturating_sub(start),
        _ => wall0.elapsed(),
    };
    let mut out_of_budget = false;
    'rounds: for round in 0..=COMMON.len() {
        for job in jobs.iter_mut().filter(|j| j.found.is_none()) {
            if spent() >= budget {
                out_of_budget = true;
                break 'rounds;
            }
            let (candidate, verdict) = match round {
                0 => (job.user, Verdict::EqualsName),
                k => (COMMON[k - 1], Verdict::Common),
            };
            if matches(job.scheme, candidate, job.hash) {
                job.found = Some(verdict);
            }
        }
    }
    let spent = spent();
    for job in jobs {
        let v = match job.found {
            Some(v) => v,
            None if out_of_budget => Verdict::NotChecked(format!(
                "budget ({:.1} s of CPU for hashing per review spent before all {} candidates were tried)",
                spent.as_secs_f64(),
                COMMON.len() + 1
            )),
            None => Verdict::NotGuessed,
        };
        out.insert(job.user.to_string(), v);
    }
    out
}

/// The raw password field of each `/etc/shadow` line, for [`check`] only.
pub fn shadow_hashes(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let hash = f.next()?;
            let hashed = hash.starts_with('$') || (hash.len() == 13 && !hash.starts_with(['!', '*']));
            (!name.is_empty() && hashed).then(|| (name.to_string(), hash.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `openssl passwd -1 -salt saltsalt password`, `-5`/`-6 -salt saltsalt`, and
    // `perl -e 'print crypt("letmein", q($y$j75$saltsaltsalt$))'` (libxcrypt).
    const MD5_PASSWORD: &str = "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/";

    fn one(user: &str, hash: &str) -> Verdict {
        let hashes = HashMap::from([(user.to_string(), hash.to_string())]);
        check(&[user], &hashes, BUDGET).remove(user).unwrap()
    }

    #[test]
    fn md5_crypt_matches_openssl() {
        assert_eq!(md5_crypt(b"password", MD5_PASSWORD).as_deref(), Some(MD5_PASSWORD));
        assert_eq!(one("bob", MD5_PASSWORD), Verdict::Common);
    }

    #[test]
    fn every_scheme_finds_the_weak_password_and_only_it() {
        // sha256-crypt: the password is the user name.
        let sha256 = "$5$saltsalt$WMwgXxKa8IW5sEttnrWNoDAXoLeUPte0nOOB5H64xG8";
        assert_eq!(one("alice", sha256), Verdict::EqualsName);
        assert_eq!(one("alicia", sha256), Verdict::NotGuessed);
        let sha512 =
            "$6$saltsalt$S9YY9YOAW0hOiRrNaP8VEIeRLALReoMp/E0Pht4dzHwnqjGznyJV7KQHtHBZN3l7.5QmgjbHONPeszlAoLGd8.";
        assert_eq!(one("bob", sha512), Verdict::Common);
        let yescrypt = "$y$j75$saltsaltsalt$htND0YtRLuf0vB4ojPDdOtmvD9ZxCzd8OYbgeYhCjx.";
        assert_eq!(one("bob", yescrypt), Verdict::Common);
        let bcrypt = "$2b$04$abcdefghijklmnopqrstuughE8Ev8uGFaUgY2cNEySvxngrb/Jzdm";
        assert_eq!(one("bob", bcrypt), Verdict::Common);
        assert_eq!(one("password", bcrypt), Verdict::EqualsName);
    }

    #[test]
    fn hostile_hashes_are_refused_not_tried() {
        let v = one("bob", "$6$rounds=999999999$saltsalt$xxxx");
        assert!(matches!(&v, Verdict::NotChecked(w) if w.contains("too costly")), "{v:?}");
        assert!(matches!(one("bob", "$2b$31$abc"), Verdict::NotChecked(_)));
        assert!(matches!(one("bob", "$gy$j9T$a$b"), Verdict::NotChecked(_)));
        // Malformed, but cheap: tried, no panic, no match.
        assert_eq!(one("bob", "$6$"), Verdict::NotGuessed);
        assert_eq!(one("bob", "$1$$$$$$"), Verdict::NotGuessed);
        assert!(matches!(one("bob", "$y$zzzz$a$b"), Verdict::NotChecked(_)));
        // yescrypt asking for a gigabyte per try (N = 2^18, r = 32).
        let v = one("bob", "$y$jFT$saltsaltsalt$htND0YtRLuf0vB4ojPDdOtmvD9ZxCzd8OYbgeYhCjx.");
        assert!(matches!(&v, Verdict::NotChecked(w) if w.contains("yescrypt")), "{v:?}");
    }

    #[test]
    fn a_zero_budget_reports_not_checked() {
        let hashes = HashMap::from([("bob".to_string(), MD5_PASSWORD.to_string())]);
        let v = check(&["bob"], &hashes, Duration::ZERO).remove("bob").unwrap();
        assert!(matches!(&v, Verdict::NotChecked(w) if w.starts_with("budget")), "{v:?}");
    }

    #[test]
    fn shadow_hashes_keeps_only_hashes() {
        let h =
            shadow_hashes("root:$6$a$b:19000:0:99999:7:::\ndaemon:*:19000::::::\nbob:!$6$x$y:1::::::\nweb::1::::::\n");
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("root"));
    }
}
