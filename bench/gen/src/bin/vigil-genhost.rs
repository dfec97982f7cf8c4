//! `vigil-genhost`: writes a large, realistic fixture host root for `vigil --root`,
//! deterministic from a seed, so benchmarks measure vigil on hosts far bigger
//! than the hand-made fixtures (thousands of WordPress sites, users, sockets and
//! processes) without a real server of that size.
//!
//! The formats follow `fixtures/hosts/web1` and real Linux: passwd/shadow/group,
//! binary wtmp/lastlog, `proc/net/{tcp,tcp6,udp,udp6}`, `proc/PID/fd/N ->
//! socket:[INODE]` links, WordPress `wp-config.php` / `wp-includes/version.php` /
//! plugin and theme headers, nginx vhosts with a real certificate, a dpkg status
//! database, apt lists, ufw config, backups with a `[[backups]]` config.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt, PermissionsExt, symlink};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_bench::{ALNUM, CORE, Flags, PLUGINS, Rng, THEMES, Version, older, vstr};

const USAGE: &str = "usage: vigil-genhost --out DIR [--sites N] [--users N] [--sockets N] [--processes N] \
[--seed S] [--now EPOCH]\n  writes a fixture host root (default 100 sites, 50 users, 200 sockets, 100 processes, \
seed 1, now 2026-11-27T00:00:00Z)";

/// 2026-11-27T00:00:00Z, the fixtures' "now".
const DEFAULT_NOW: u64 = 1_795_737_600;

/// A wildcard leaf for `*.example.test` issued by "Bench Hosting CA", valid 2026-01-01 .. 2036-01-01
/// (made once with `openssl ca`; the key is not kept).
const LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBsjCCAVegAwIBAgICEAEwCgYIKoZIzj0EAwIwGzEZMBcGA1UEAwwQQmVuY2gg
SG9zdGluZyBDQTAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAwMDBaMBkxFzAV
BgNVBAMMDiouZXhhbXBsZS50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
ic2IBs9t+B8/ZFTT+kDWYA6PZxfouFmanBnHrse5yP6etev7aE3vPX3x62FCMTtD
+ockfsE3CESih2Iv1RDc+6OBjDCBiTAnBgNVHREEIDAegg4qLmV4YW1wbGUudGVz
dIIMZXhhbXBsZS50ZXN0MAkGA1UdEwQCMAAwEwYDVR0lBAwwCgYIKwYBBQUHAwEw
HQYDVR0OBBYEFA2+05uoAt1HupmjCqX1S9FHolPaMB8GA1UdIwQYMBaAFOWtn6Af
x9U3tmiBHLIepViFxSGiMAoGCCqGSM49BAMCA0kAMEYCIQCQ7de63zJvTBj+em93
zbjkGJVLXbupYak520aaGHV7FwIhALvqOr81biK2AYpHpmvmaFDiOK2QuJEkzt/9
UgNap6fn
-----END CERTIFICATE-----
";

/// The issuing CA (chain), valid 2025-01-01 .. 2037-01-01.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBaDCCAQ6gAwIBAgICEAAwCgYIKoZIzj0EAwIwGzEZMBcGA1UEAwwQQmVuY2gg
SG9zdGluZyBDQTAeFw0yNTAxMDEwMDAwMDBaFw0zNzAxMDEwMDAwMDBaMBsxGTAX
BgNVBAMMEEJlbmNoIEhvc3RpbmcgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AATXhCTp6dcP7x0iZ4fQQ5fmAwozA37JSH9jJXlwPmLpHV1UzvozZfX2geu+EkqI
qao9R0fQIr6+YHzT/l206DpDo0IwQDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB
/wQEAwIBBjAdBgNVHQ4EFgQU5a2foB/H1Te2aIEcsh6lWIXFIaIwCgYIKoZIzj0E
AwIDSAAwRQIgMUU5MXNq0xXcJ/xX4uE5nn0X3phd+GeQw13xmR935jUCIQCA9yF/
jeC7dIlQwW8iuMDK3GanTAlnXHrVl2SnOJSJ3g==
-----END CERTIFICATE-----
";

struct Out {
    root: PathBuf,
    files: u64,
    bytes: u64,
}

impl Out {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn dir(&mut self, rel: &str) -> io::Result<()> {
        fs::create_dir_all(self.path(rel))
    }

    fn write(&mut self, rel: &str, data: impl AsRef<[u8]>) -> io::Result<()> {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        let data = data.as_ref();
        fs::write(&p, data)?;
        self.files += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn write_mode(&mut self, rel: &str, data: impl AsRef<[u8]>, mode: u32) -> io::Result<()> {
        self.write(rel, data)?;
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode))
    }

    fn link(&mut self, rel: &str, target: &str) -> io::Result<()> {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink(target, p)?;
        self.files += 1;
        Ok(())
    }

    fn set_mtime(&self, rel: &str, t: u64) -> io::Result<()> {
        let f = fs::File::options().write(true).open(self.path(rel))?;
        f.set_modified(UNIX_EPOCH + Duration::from_secs(t))
    }
}

struct Params {
    sites: usize,
    users: usize,
    sockets: usize,
    processes: usize,
    now: u64,
}

struct User {
    name: String,
    uid: u32,
    admin: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("vigil-genhost: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let flags = Flags::parse(USAGE)?;
    flags.check_known(&["out", "sites", "users", "sockets", "processes", "seed", "now"])?;
    let root = PathBuf::from(flags.required("out")?);
    let p = Params {
        sites: flags.num("sites", 100)? as usize,
        users: flags.num("users", 50)?.max(1) as usize,
        sockets: flags.num("sockets", 200)? as usize,
        processes: flags.num("processes", 100)?.max(1) as usize,
        now: flags.num("now", DEFAULT_NOW)?,
    };
    let seed = flags.num("seed", 1)?;
    if root.exists() && fs::read_dir(&root).map_err(|e| e.to_string())?.next().is_some() {
        return Err(format!("{}: exists and is not empty (refusing to mix hosts)", root.display()));
    }
    let started = SystemTime::now();
    let mut out = Out { root, files: 0, bytes: 0 };
    let mut rng = Rng::new(seed);
    let e = |e: io::Error| e.to_string();
    system(&mut out, &p, &mut rng.fork(1)).map_err(e)?;
    let users = accounts(&mut out, &p, &mut rng.fork(2)).map_err(e)?;
    let docroots = sites(&mut out, &p, &users, &mut rng.fork(3)).map_err(e)?;
    vhosts(&mut out, &docroots).map_err(e)?;
    sockets_and_processes(&mut out, &p, &users, &mut rng.fork(4)).map_err(e)?;
    backups(&mut out, &p, &mut rng.fork(5)).map_err(e)?;
    packages(&mut out, &mut rng.fork(6)).map_err(e)?;
    let took = started.elapsed().unwrap_or_default();
    println!(
        "vigil-genhost: {} sites, {} users, {} listening sockets, {} processes -> {} ({} files, {} MB) in {:.1}s",
        p.sites,
        p.users,
        p.sockets,
        p.processes,
        out.root.display(),
        out.files,
        out.bytes / 1_000_000,
        took.as_secs_f64()
    );
    Ok(())
}

fn days(t: u64) -> u64 {
    t / 86_400
}

fn system(out: &mut Out, p: &Params, _rng: &mut Rng) -> io::Result<()> {
    out.write("/etc/hostname", "bench-web\n")?;
    out.write("/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tbench-web.example.test bench-web\n::1\tlocalhost ip6-localhost ip6-loopback\n")?;
    out.write(
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n\
         VERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n\
         SUPPORT_URL=\"https://www.debian.org/support\"\nBUG_REPORT_URL=\"https://bugs.debian.org/\"\n",
    )?;
    out.write("/etc/debian_version", "12.8\n")?;
    out.write(
        "/etc/ssh/sshd_config",
        "# This is the sshd server system-wide configuration file.  See\n# sshd_config(5) for more information.\n\n\
         Include /etc/ssh/sshd_config.d/*.conf\n\nPort 22\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding no\n\
         AllowAgentForwarding no\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n\n\
         Match Group sftponly\n    ChrootDirectory %h\n    ForceCommand internal-sftp\n",
    )?;
    out.write(
        "/etc/ssh/sshd_config.d/10-hosting.conf",
        "# Managed by the hosting team.\nClientAliveInterval 300\nMaxAuthTries 4\nLoginGraceTime 30\n",
    )?;
    out.write(
        "/etc/pam.d/sshd",
        "# PAM configuration for the Secure Shell service\n@include common-auth\naccount    required     pam_nologin.so\n\
         @include common-account\nsession [success=ok ignore=ignore module_unknown=ignore default=bad] pam_selinux.so close\n\
         session    required     pam_loginuid.so\n@include common-session\n@include common-password\n",
    )?;
    out.write(
        "/etc/pam.d/common-auth",
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\t\t\tpam_deny.so\n\
         auth\trequired\t\t\tpam_permit.so\n",
    )?;
    out.write(
        "/etc/sudoers",
        "Defaults\tenv_reset\nDefaults\tmail_badpass\n\
         Defaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n\
         root\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
    )?;
    out.write("/etc/sudoers.d/README", "# Files in this directory are read by sudo; see sudoers(5).\n")?;
    out.write(
        "/etc/sudoers.d/deploy",
        "# CI deploys restart php-fpm only.\ndeploy ALL=(root) NOPASSWD: /usr/bin/systemctl reload php8.2-fpm\n",
    )?;
    // Firewall: ufw on, default deny, the web ports open.
    out.write("/etc/ufw/ufw.conf", "# /etc/ufw/ufw.conf\nENABLED=yes\nLOGLEVEL=low\n")?;
    out.write(
        "/etc/default/ufw",
        "IPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\nDEFAULT_FORWARD_POLICY=\"DROP\"\n\
         DEFAULT_APPLICATION_POLICY=\"SKIP\"\nMANAGE_BUILTINS=no\nIPT_SYSCTL=/etc/ufw/sysctl.conf\n",
    )?;
    let mut rules = String::from("*filter\n:ufw-user-input - [0:0]\n:ufw-user-output - [0:0]\n\n### RULES ###\n\n");
    for port in [22u16, 80, 443] {
        let _ = write!(
            rules,
            "### tuple ### allow tcp {port} 0.0.0.0/0 any 0.0.0.0/0 in\n-A ufw-user-input -p tcp --dport {port} -j ACCEPT\n\n"
        );
    }
    rules.push_str("### END RULES ###\nCOMMIT\n");
    out.write("/etc/ufw/user.rules", &rules)?;
    out.write("/etc/ufw/user6.rules", rules.replace("0.0.0.0/0", "::/0"))?;
    out.write(
        "/etc/crontab",
        "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\
         17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n\
         25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }\n",
    )?;
    out.write(
        "/etc/cron.d/backups",
        "# Nightly backups of every site and database, then an offsite copy with restic.\n\
         30 2 * * * root /usr/local/sbin/backup-sites >> /var/log/backup-sites.log 2>&1\n\
         10 3 * * * root /usr/local/sbin/backup-db >> /var/log/backup-db.log 2>&1\n\
         0 4 * * * root restic -r sftp:backup@backup.example.test:/srv/restic/bench-web --password-file /root/.restic-pass backup /var/backups >> /var/log/restic.log 2>&1\n",
    )?;
    out.write("/etc/php/8.2/fpm/php.ini", "[PHP]\nengine = On\nexpose_php = Off\ndisplay_errors = Off\nlog_errors = On\nmemory_limit = 256M\nupload_max_filesize = 64M\n")?;
    out.write("/etc/php/8.2/fpm/pool.d/www.conf", "[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm.sock\npm = dynamic\npm.max_children = 50\n")?;
    let _ = p;
    Ok(())
}

fn ed25519_line(rng: &mut Rng, comment: &str) -> String {
    // The real wire format: string "ssh-ed25519", string of 32 key bytes.
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    for _ in 0..4 {
        blob.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    format!("ssh-ed25519 {} {comment}\n", base64(&blob))
}

fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn hash_field(rng: &mut Rng) -> String {
    format!("$y$j9T${}${}", rng.string(ALNUM, 22), rng.string(ALNUM, 43))
}

fn accounts(out: &mut Out, p: &Params, rng: &mut Rng) -> io::Result<Vec<User>> {
    let today = days(p.now);
    let mut passwd = String::from(
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
         bin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\n\
         sync:x:4:65534:sync:/bin:/bin/sync\nman:x:6:12:man:/var/cache/man:/usr/sbin/nologin\n\
         mail:x:8:8:mail:/var/mail:/usr/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
         backup:x:34:34:backup:/var/backups:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
         _apt:x:42:65534::/nonexistent:/usr/sbin/nologin\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n\
         mysql:x:105:110:MariaDB Server,,,:/nonexistent:/bin/false\nredis:x:106:111::/var/lib/redis:/usr/sbin/nologin\n\
         deploy:x:999:999:Deploy bot,,,:/home/deploy:/bin/bash\n",
    );
    let mut shadow = format!(
        "root:{}:{}:0:99999:7:::\ndaemon:*:19402:0:99999:7:::\nbin:*:19402:0:99999:7:::\nsys:*:19402:0:99999:7:::\n\
         sync:*:19402:0:99999:7:::\nman:*:19402:0:99999:7:::\nmail:*:19402:0:99999:7:::\nwww-data:*:19402:0:99999:7:::\n\
         backup:*:19402:0:99999:7:::\nnobody:*:19402:0:99999:7:::\n_apt:*:19402:0:99999:7:::\nsshd:*:19402:0:99999:7:::\n\
         mysql:!:19402::::::\nredis:!:19402::::::\ndeploy:!:{}:0:99999:7:::\n",
        hash_field(rng),
        today - 40,
        today - 200
    );
    let mut group = String::from(
        "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\nmail:x:8:\nwww-data:x:33:deploy\nbackup:x:34:\n\
         mysql:x:110:\nredis:x:111:\nsftponly:x:900:\ndeploy:x:999:\n",
    );
    let mut users = Vec::with_capacity(p.users);
    let mut sftp = Vec::new();
    let mut sudo = Vec::new();
    let mut wtmp = Vec::new();
    let mut lastlog: Vec<(u32, u32, String)> = Vec::new();
    for i in 0..p.users {
        let uid = 1000 + i as u32;
        // Every 25th user is an administrator (at least one).
        let admin = i % 25 == 0;
        let name = if admin { format!("admin{i:05}") } else { format!("user{i:05}") };
        let shell = if admin || rng.chance(30) { "/bin/bash" } else { "/usr/sbin/nologin" };
        let _ = writeln!(passwd, "{name}:x:{uid}:{uid}:{name},,,:/home/{name}:{shell}");
        let changed = today - rng.range(1, 900);
        let expire = if admin && rng.chance(50) { (today + rng.range(30, 400)).to_string() } else { String::new() };
        let locked = !admin && rng.chance(10);
        let _ = writeln!(
            shadow,
            "{name}:{}{}:{changed}:0:99999:7::{expire}:",
            if locked { "!" } else { "" },
            hash_field(rng)
        );
        let _ = writeln!(group, "{name}:x:{uid}:");
        if admin {
            sudo.push(name.clone());
        } else if shell.ends_with("nologin") {
            sftp.push(name.clone());
        }
        // Keys: most users have one or two.
        if admin || rng.chance(70) {
            let mut keys = String::new();
            for k in 0..rng.range(1, if admin { 3 } else { 2 }) {
                keys.push_str(&ed25519_line(rng, &format!("{name}@laptop{k}")));
            }
            out.write_mode(&format!("/home/{name}/.ssh/authorized_keys"), keys, 0o600)?;
        } else {
            out.dir(&format!("/home/{name}"))?;
        }
        // Logins: admins mostly recent, some long ago, some never.
        let roll = rng.below(10);
        if shell == "/bin/bash" && roll < 8 {
            let last =
                if roll < 6 { p.now - rng.range(3_600, 20 * 86_400) } else { p.now - rng.range(100, 400) * 86_400 };
            let from = format!("203.0.113.{}", rng.range(1, 254));
            for back in 0..rng.range(1, 4) {
                let t = last - back * rng.range(86_400, 7 * 86_400);
                wtmp.push((t, name.clone(), from.clone()));
            }
            lastlog.push((uid, last as u32, from));
        }
        users.push(User { name, uid, admin });
    }
    let _ = writeln!(group, "sudo:x:27:{}", sudo.join(","));
    let _ =
        writeln!(group, "sftponly-members:x:901:{}", sftp.iter().take(5_000).cloned().collect::<Vec<_>>().join(","));
    out.write("/etc/passwd", &passwd)?;
    out.write_mode("/etc/shadow", &shadow, 0o640)?;
    out.write("/etc/group", &group)?;
    out.write_mode("/root/.ssh/authorized_keys", ed25519_line(rng, "root@bastion"), 0o600)?;
    out.write_mode("/home/deploy/.ssh/authorized_keys", ed25519_line(rng, "ci@deploy"), 0o600)?;
    // wtmp: a boot record, then logins in time order.
    wtmp.sort();
    let mut w = Vec::with_capacity((wtmp.len() + 1) * 384);
    w.extend(utmp(2, 0, "~", "reboot", "6.1.0-27-amd64", (p.now - 60 * 86_400) as i32));
    for (n, (t, user, from)) in wtmp.iter().enumerate() {
        w.extend(utmp(7, 1000 + n as i32, &format!("pts/{}", n % 8), user, from, *t as i32));
    }
    out.write("/var/log/wtmp", &w)?;
    // lastlog: sparse, indexed by uid.
    let ll = out.path("/var/log/lastlog");
    let f = fs::File::create(&ll)?;
    f.set_len(u64::from(1000 + p.users as u32) * 292)?;
    for (uid, t, from) in &lastlog {
        let mut r = vec![0u8; 292];
        r[0..4].copy_from_slice(&t.to_le_bytes());
        r[4..9].copy_from_slice(b"pts/0");
        r[36..36 + from.len()].copy_from_slice(from.as_bytes());
        f.write_all_at(&r, u64::from(*uid) * 292)?;
    }
    out.files += 2;
    Ok(users)
}

fn utmp(ty: i32, pid: i32, line: &str, user: &str, host: &str, time: i32) -> Vec<u8> {
    let mut r = vec![0u8; 384];
    r[0..4].copy_from_slice(&ty.to_le_bytes());
    r[4..8].copy_from_slice(&pid.to_le_bytes());
    let put = |r: &mut Vec<u8>, off: usize, max: usize, s: &str| {
        let b = s.as_bytes();
        let n = b.len().min(max);
        r[off..off + n].copy_from_slice(&b[..n]);
    };
    put(&mut r, 8, 32, line);
    put(&mut r, 40, 4, line.trim_start_matches("pts/"));
    put(&mut r, 44, 32, user);
    put(&mut r, 76, 256, host);
    r[340..344].copy_from_slice(&time.to_le_bytes());
    r
}

const CLIENTS: &[&str] = &[
    "Acme", "Bakery", "Dental", "Florist", "Garage", "Harbor", "Lawfirm", "Optic", "Pizzeria", "Studio", "Travel",
    "Yoga",
];

/// One site's docroot and server name.
struct Docroot {
    index: usize,
    path: String,
}

fn sites(out: &mut Out, p: &Params, users: &[User], rng: &mut Rng) -> io::Result<Vec<Docroot>> {
    let in_homes = (p.sites / 4).min(users.iter().filter(|u| !u.admin).count());
    let mut homes = users.iter().filter(|u| !u.admin);
    let mut docroots = Vec::with_capacity(p.sites);
    // Passwords reused across sites: one agency template, one shared secret.
    let shared = format!("Hosting{}#", 2019 + rng.below(6));
    for i in 0..p.sites {
        let mut r = rng.fork(i as u64);
        let path = match (i < in_homes).then(|| homes.next()).flatten() {
            Some(u) => format!("/home/{}/public_html", u.name),
            None => format!("/var/www/site-{i}"),
        };
        site(out, &path, i, &shared, &mut r)?;
        docroots.push(Docroot { index: i, path });
    }
    Ok(docroots)
}

fn site(out: &mut Out, root: &str, i: usize, shared: &str, rng: &mut Rng) -> io::Result<()> {
    let core = if rng.chance(55) { CORE[0] } else { *rng.pick(CORE) };
    let password = match rng.below(100) {
        0..=69 => rng.string(b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!%^*-_=+", 24),
        70..=84 => format!("{}{}!", rng.pick(CLIENTS), 2018 + rng.below(8)),
        85..=94 => shared.to_string(),
        _ => (*rng.pick(&["wordpress", "password1", "changeme", "admin123"])).to_string(),
    };
    let debug = rng.chance(4);
    let mut cfg = format!(
        "<?php\n/**\n * The base configuration for WordPress\n *\n * The wp-config.php creation script uses this file during the installation.\n\
         * You don't have to use the website, you can copy this file to \"wp-config.php\"\n * and fill in the values.\n\
         *\n * @link https://wordpress.org/documentation/article/editing-wp-config-php/\n *\n * @package WordPress\n */\n\n\
         // ** Database settings - You can get this info from your web host ** //\n/** The name of the database for WordPress */\n\
         define( 'DB_NAME', 'wp_site{i}' );\n\n/** Database username */\ndefine( 'DB_USER', 'site{i}' );\n\n\
         /** Database password */\ndefine( 'DB_PASSWORD', '{password}' );\n\n/** Database hostname */\n\
         define( 'DB_HOST', 'localhost' );\n\n/** Database charset to use in creating database tables. */\n\
         define( 'DB_CHARSET', 'utf8mb4' );\n\n/** The database collate type. Don't change this if in doubt. */\n\
         define( 'DB_COLLATE', '' );\n\n/**#@+\n * Authentication unique keys and salts.\n */\n"
    );
    for key in [
        "AUTH_KEY",
        "SECURE_AUTH_KEY",
        "LOGGED_IN_KEY",
        "NONCE_KEY",
        "AUTH_SALT",
        "SECURE_AUTH_SALT",
        "LOGGED_IN_SALT",
        "NONCE_SALT",
    ] {
        let salt = rng
            .string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@#%^&*()-_[]{}<>~+=,.;:/?|", 64);
        let _ = writeln!(cfg, "define( '{key}',{}'{salt}' );", " ".repeat(18 - key.len()));
    }
    let _ = write!(
        cfg,
        "\n/**#@-*/\n\n/**\n * WordPress database table prefix.\n */\n$table_prefix = 'wp{}_';\n\n\
         /**\n * For developers: WordPress debugging mode.\n */\ndefine( 'WP_DEBUG', {debug} );\n{}{}\n\
         /* Add any custom values between this line and the \"stop editing\" line. */\n\n\n\n\
         /* That's all, stop editing! Happy publishing. */\n\n/** Absolute path to the WordPress directory. */\n\
         if ( ! defined( 'ABSPATH' ) ) {{\n\tdefine( 'ABSPATH', __DIR__ . '/' );\n}}\n\n\
         /** Sets up WordPress vars and included files. */\nrequire_once ABSPATH . 'wp-settings.php';\n",
        if rng.chance(30) { i.to_string() } else { String::new() },
        if debug { "define( 'WP_DEBUG_LOG', true );\n" } else { "" },
        if rng.chance(50) { "define( 'DISALLOW_FILE_EDIT', true );\n" } else { "" },
    );
    out.write_mode(&format!("{root}/wp-config.php"), cfg, 0o640)?;
    out.write(
        &format!("{root}/index.php"),
        "<?php\n/**\n * Front to the WordPress application.\n *\n * @package WordPress\n */\n\ndefine( 'WP_USE_THEMES', true );\n\nrequire __DIR__ . '/wp-blog-header.php';\n",
    )?;
    out.write(&format!("{root}/wp-load.php"), "<?php\n/** Bootstrap file for setting the ABSPATH constant. */\nif ( ! defined( 'ABSPATH' ) ) {\n\tdefine( 'ABSPATH', __DIR__ . '/' );\n}\n")?;
    out.write(&format!("{root}/wp-settings.php"), "<?php\n/** Used to set up and fix common variables and include the WordPress procedural and class library. */\ndefine( 'WPINC', 'wp-includes' );\n")?;
    out.write(
        &format!("{root}/wp-login.php"),
        "<?php\n/** WordPress User Page */\nrequire __DIR__ . '/wp-load.php';\n",
    )?;
    out.write(
        &format!("{root}/wp-includes/version.php"),
        format!(
            "<?php\n/**\n * WordPress Version\n *\n * Contains version information for the current WordPress release.\n *\n\
             * @package WordPress\n * @since 1.2.0\n */\n\n/**\n * The WordPress version string.\n *\n\
             * Holds the WordPress version string. Sites can use it for the WordPress version.\n *\n\
             * @global string $wp_version\n */\n$wp_version = '{}';\n\n/**\n * Holds the WordPress DB revision, increments when changes are made to the WordPress DB schema.\n *\n\
             * @global int $wp_db_version\n */\n$wp_db_version = {};\n\n$tinymce_version = '49110-20201110';\n\n\
             $required_php_version = '7.0.0';\n\n$required_mysql_version = '5.0';\n",
            short(core),
            55_000 + core[1] * 300 + core[2]
        ),
    )?;
    out.write(&format!("{root}/wp-content/index.php"), "<?php\n// Silence is golden.\n")?;
    out.write(&format!("{root}/wp-content/plugins/index.php"), "<?php\n// Silence is golden.\n")?;
    out.dir(&format!("{root}/wp-content/uploads/2026/11"))?;
    if debug {
        out.write(
            &format!("{root}/wp-content/debug.log"),
            "[26-Nov-2026 10:12:01 UTC] PHP Warning:  Undefined array key \"page\" in /var/www/wp-content/plugins/x/x.php on line 42\n",
        )?;
    }
    // 20 plugins; 40% lag one minor release behind (what the feed catches).
    for idx in rng.sample(PLUGINS.len(), 20) {
        let pl = PLUGINS[idx];
        let v = if rng.chance(40) { older(pl.current) } else { pl.current };
        let dir = format!("{root}/wp-content/plugins/{}", pl.slug);
        out.write(
            &format!("{dir}/{}.php", pl.slug),
            format!(
                "<?php\n/**\n * Plugin Name: {}\n * Plugin URI: https://wordpress.org/plugins/{}/\n\
                 * Description: {} for WordPress.\n * Version: {}\n * Author: {}\n * Text Domain: {}\n\
                 * Requires at least: 5.8\n * Requires PHP: 7.4\n * License: GPLv2 or later\n */\n\n\
                 defined( 'ABSPATH' ) || exit;\n\ndefine( '{}_VERSION', '{}' );\n",
                pl.name,
                pl.slug,
                pl.name,
                vstr(v),
                pl.author,
                pl.slug,
                pl.slug.to_uppercase().replace('-', "_"),
                vstr(v)
            ),
        )?;
        out.write(
            &format!("{dir}/readme.txt"),
            format!(
                "=== {} ===\nContributors: {}\nTags: {}\nRequires at least: 5.8\nTested up to: 6.4\n\
                 Requires PHP: 7.4\nStable tag: {}\nLicense: GPLv2 or later\n\n{} for WordPress.\n\n== Description ==\n\n\
                 The best {} plugin.\n",
                pl.name,
                pl.author.to_lowercase().replace(' ', ""),
                pl.slug.replace('-', ", "),
                vstr(v),
                pl.name,
                pl.slug
            ),
        )?;
        out.write(&format!("{dir}/index.php"), "<?php\n// Silence is golden.\n")?;
    }
    let th = rng.pick(THEMES);
    let tv = if rng.chance(30) { older(th.current) } else { th.current };
    out.write(
        &format!("{root}/wp-content/themes/{}/style.css", th.slug),
        format!(
            "/*\nTheme Name: {}\nTheme URI: https://wordpress.org/themes/{}/\nAuthor: the {} team\n\
             Description: A theme.\nVersion: {}\nRequires at least: 5.9\nTested up to: 6.4\nRequires PHP: 7.4\n\
             License: GNU General Public License v2 or later\nText Domain: {}\n*/\n\nbody {{ margin: 0; }}\n",
            th.name,
            th.slug,
            th.name,
            vstr(tv),
            th.slug
        ),
    )?;
    out.write(&format!("{root}/wp-content/themes/{}/functions.php", th.slug), "<?php\n// Theme functions.\n")?;
    out.write(&format!("{root}/wp-content/themes/{}/index.php", th.slug), "<?php\nget_header();\nget_footer();\n")?;
    Ok(())
}

fn short(v: Version) -> String {
    if v[2] == 0 { format!("{}.{}", v[0], v[1]) } else { vstr(v) }
}

fn vhosts(out: &mut Out, docroots: &[Docroot]) -> io::Result<()> {
    out.write("/etc/ssl/certs/example.test.fullchain.pem", format!("{LEAF_PEM}{CA_PEM}"))?;
    out.write_mode(
        "/etc/ssl/private/example.test.key",
        "-----BEGIN PRIVATE KEY-----\n(bench placeholder: no key material)\n-----END PRIVATE KEY-----\n",
        0o600,
    )?;
    out.write(
        "/etc/nginx/nginx.conf",
        "user www-data;\nworker_processes auto;\npid /run/nginx.pid;\nevents {\n\tworker_connections 768;\n}\n\
         http {\n\tsendfile on;\n\ttcp_nopush on;\n\tssl_protocols TLSv1.2 TLSv1.3;\n\tssl_prefer_server_ciphers on;\n\
         \taccess_log /var/log/nginx/access.log;\n\terror_log /var/log/nginx/error.log;\n\tgzip on;\n\
         \tinclude /etc/nginx/conf.d/*.conf;\n\tinclude /etc/nginx/sites-enabled/*;\n}\n",
    )?;
    for d in docroots {
        let name = format!("site-{}.example.test", d.index);
        let conf = format!(
            "server {{\n\tlisten 80;\n\tlisten [::]:80;\n\tserver_name {name};\n\treturn 301 https://$host$request_uri;\n}}\n\n\
             server {{\n\tlisten 443 ssl http2;\n\tlisten [::]:443 ssl http2;\n\tserver_name {name};\n\
             \troot {};\n\tindex index.php;\n\n\tssl_certificate /etc/ssl/certs/example.test.fullchain.pem;\n\
             \tssl_certificate_key /etc/ssl/private/example.test.key;\n\n\tlocation / {{\n\t\ttry_files $uri $uri/ /index.php?$args;\n\t}}\n\
             \tlocation ~ \\.php$ {{\n\t\tinclude snippets/fastcgi-php.conf;\n\t\tfastcgi_pass unix:/run/php/php8.2-fpm.sock;\n\t}}\n}}\n",
            d.path
        );
        out.write(&format!("/etc/nginx/sites-available/site-{}.conf", d.index), conf)?;
        out.link(
            &format!("/etc/nginx/sites-enabled/site-{}.conf", d.index),
            &format!("../sites-available/site-{}.conf", d.index),
        )?;
    }
    Ok(())
}

/// `proc/net/tcp` address: little-endian hex of the IPv4 address, then the port.
fn v4(a: [u8; 4], port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_le_bytes(a))
}

/// `proc/net/tcp6` address: four little-endian 32-bit words.
fn v6(a: [u8; 16], port: u16) -> String {
    let mut s = String::with_capacity(37);
    for w in a.chunks(4) {
        let _ = write!(s, "{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    let _ = write!(s, ":{port:04X}");
    s
}

struct Sock {
    proto: &'static str,
    v6: bool,
    local: String,
    remote: String,
    state: &'static str,
    uid: u32,
    inode: u64,
    owner: Option<usize>,
}

struct Proc {
    pid: u32,
    comm: String,
    cmdline: Vec<String>,
    uid: u32,
}

fn sockets_and_processes(out: &mut Out, p: &Params, users: &[User], rng: &mut Rng) -> io::Result<()> {
    // Processes: the system daemons first, then application workers.
    let mut procs: Vec<Proc> = Vec::with_capacity(p.processes);
    let fixed: &[(&str, &[&str], u32)] = &[
        ("systemd", &["/sbin/init"], 0),
        ("sshd", &["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"], 0),
        ("nginx", &["nginx: master process /usr/sbin/nginx -g daemon on; master_process on;"], 0),
        ("mariadbd", &["/usr/sbin/mariadbd"], 105),
        ("redis-server", &["/usr/bin/redis-server 127.0.0.1:6379"], 106),
        ("exim4", &["/usr/sbin/exim4", "-bd", "-q30m"], 101),
        ("php-fpm8.2", &["php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"], 0),
        ("cron", &["/usr/sbin/cron", "-f"], 0),
        ("chronyd", &["/usr/sbin/chronyd", "-F", "1"], 102),
    ];
    let mut pid = 1u32;
    for i in 0..p.processes {
        let (comm, cmdline, uid) = match fixed.get(i) {
            Some((c, a, u)) => (c.to_string(), a.iter().map(|s| s.to_string()).collect(), *u),
            None => match rng.below(4) {
                0 => ("nginx".to_string(), vec!["nginx: worker process".to_string()], 33),
                1 => ("php-fpm8.2".to_string(), vec!["php-fpm: pool www".to_string()], 33),
                2 => {
                    let u = rng.pick(users);
                    ("node".to_string(), vec!["/usr/bin/node".into(), format!("/home/{}/app/server.js", u.name)], u.uid)
                }
                _ => {
                    let u = rng.pick(users);
                    (
                        "gunicorn".to_string(),
                        vec![
                            "/usr/bin/python3".into(),
                            "/usr/bin/gunicorn".into(),
                            "--workers".into(),
                            "2".into(),
                            "app:app".into(),
                        ],
                        u.uid,
                    )
                }
            },
        };
        procs.push(Proc { pid, comm, cmdline, uid });
        pid += if i < 20 { rng.range(1, 60) as u32 } else { rng.range(1, 6) as u32 };
    }
    // Listening sockets: the public services, then loopback application backends.
    let mut socks: Vec<Sock> = Vec::with_capacity(p.sockets + p.sockets / 2);
    let mut inode = 40_000u64;
    let owner_of = |comm: &str, procs: &[Proc]| procs.iter().position(|q| q.comm == comm);
    let public: &[(&str, bool, u16, &str, u32)] = &[
        ("tcp", false, 22, "sshd", 0),
        ("tcp", true, 22, "sshd", 0),
        ("tcp", false, 80, "nginx", 0),
        ("tcp", true, 80, "nginx", 0),
        ("tcp", false, 443, "nginx", 0),
        ("tcp", true, 443, "nginx", 0),
        ("tcp", false, 3306, "mariadbd", 105),
        ("tcp", false, 6379, "redis-server", 106),
        ("tcp", false, 25, "exim4", 101),
        ("udp", false, 323, "chronyd", 102),
    ];
    for (n, (proto, is6, port, comm, uid)) in public.iter().enumerate().take(p.sockets) {
        let loopback = matches!(port, 3306 | 6379 | 25 | 323);
        let (local, remote) = if *is6 {
            (v6([0; 16], *port), v6([0; 16], 0))
        } else if loopback {
            (v4([127, 0, 0, 1], *port), v4([0; 4], 0))
        } else {
            (v4([0; 4], *port), v4([0; 4], 0))
        };
        inode += 1;
        socks.push(Sock {
            proto,
            v6: *is6,
            local,
            remote,
            state: if *proto == "tcp" { "0A" } else { "07" },
            uid: *uid,
            inode,
            owner: owner_of(comm, &procs),
        });
        let _ = n;
    }
    // Application backends: 127.0.0.1 (and some ::1) high ports owned by workers.
    let servers: Vec<usize> = (fixed.len().min(procs.len())..procs.len()).filter(|i| i % 5 != 4).collect();
    let mut port = 10_000u32;
    while socks.len() < p.sockets {
        port += 1;
        let is6 = rng.chance(8);
        let udp = rng.chance(2);
        let prt = (port % 65_000) as u16;
        let owner = if servers.is_empty() { None } else { Some(*rng.pick(&servers)) };
        inode += 1;
        socks.push(Sock {
            proto: if udp { "udp" } else { "tcp" },
            v6: is6,
            local: if is6 {
                let mut a = [0u8; 16];
                a[15] = 1;
                v6(a, prt)
            } else {
                v4([127, 0, 0, 1], prt)
            },
            remote: if is6 { v6([0; 16], 0) } else { v4([0; 4], 0) },
            state: if udp { "07" } else { "0A" },
            uid: owner.map_or(33, |o| procs[o].uid),
            inode,
            owner,
        });
    }
    // Established connections (clients of nginx), half as many as listeners: real tables have them.
    let nginx = owner_of("nginx", &procs);
    for _ in 0..p.sockets / 2 {
        inode += 1;
        let client = [198, 51, 100, rng.range(1, 254) as u8];
        socks.push(Sock {
            proto: "tcp",
            v6: false,
            local: v4([10, 0, 0, 5], 443),
            remote: v4(client, rng.range(32_768, 60_999) as u16),
            state: "01",
            uid: 33,
            inode,
            owner: nginx,
        });
    }
    for (name, proto, is6) in
        [("tcp", "tcp", false), ("tcp6", "tcp", true), ("udp", "udp", false), ("udp6", "udp", true)]
    {
        let mut t = if proto == "tcp" {
            String::from(
                "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
            )
        } else {
            String::from(
                "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n",
            )
        };
        for (n, s) in socks.iter().filter(|s| s.proto == proto && s.v6 == is6).enumerate() {
            let ptr = 0xffff_8880_0000_0000u64 + s.inode * 0x800;
            if proto == "tcp" {
                let _ = writeln!(
                    t,
                    "{n:>4}: {} {} {} 00000000:00000000 00:00000000 00000000 {:>5}        0 {} 1 {ptr:016x} 100 0 0 10 0",
                    s.local, s.remote, s.state, s.uid, s.inode
                );
            } else {
                let _ = writeln!(
                    t,
                    "{n:>5}: {} {} {} 00000000:00000000 00:00000000 00000000 {:>5}        0 {} 2 {ptr:016x} 0",
                    s.local, s.remote, s.state, s.uid, s.inode
                );
            }
        }
        out.write(&format!("/proc/net/{name}"), t)?;
    }
    // The processes with their fd links.
    let mut fds: Vec<Vec<u64>> = vec![Vec::new(); procs.len()];
    for s in &socks {
        if let Some(o) = s.owner {
            fds[o].push(s.inode);
        }
    }
    for (q, inodes) in procs.iter().zip(&fds) {
        let dir = format!("/proc/{}", q.pid);
        out.write(&format!("{dir}/comm"), format!("{}\n", q.comm))?;
        let mut cmd = Vec::new();
        for a in &q.cmdline {
            cmd.extend_from_slice(a.as_bytes());
            cmd.push(0);
        }
        out.write(&format!("{dir}/cmdline"), cmd)?;
        out.write(
            &format!("{dir}/status"),
            format!(
                "Name:\t{}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t1\n\
                 Uid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{u}\t{u}\t{u}\t{u}\nThreads:\t1\n",
                q.comm,
                pid = q.pid,
                u = q.uid
            ),
        )?;
        out.link(&format!("{dir}/fd/0"), "/dev/null")?;
        out.link(&format!("{dir}/fd/1"), "/dev/null")?;
        out.link(&format!("{dir}/fd/2"), "/dev/null")?;
        out.link(&format!("{dir}/fd/3"), &format!("pipe:[{}]", 900_000 + q.pid))?;
        out.link(&format!("{dir}/fd/4"), "anon_inode:[eventpoll]")?;
        for (k, ino) in inodes.iter().enumerate() {
            out.link(&format!("{dir}/fd/{}", 5 + k), &format!("socket:[{ino}]"))?;
        }
    }
    let stdout = io::stdout();
    let _ = writeln!(stdout.lock(), "vigil-genhost: pids 1..{pid}, socket inodes 40001..{inode}");
    Ok(())
}

fn backups(out: &mut Out, p: &Params, rng: &mut Rng) -> io::Result<()> {
    // Nightly archives for 14 nights; each job's files are sparse (size without disk).
    let jobs = [("sites", "tar.gz", 4_000_000_000u64), ("mysql", "sql.gz", 600_000_000), ("etc", "tar.gz", 3_000_000)];
    let scale = (p.sites as u64).max(1);
    for (name, ext, base) in jobs {
        let size_base = if name == "etc" { base } else { base / 100 * scale.min(10_000) / 10 + 1_000_000 };
        for night in (0..14u64).rev() {
            let t = p.now - night * 86_400 - 86_400 + 2 * 3_600 + 30 * 60;
            let date = ymd(t);
            let rel = format!("/var/backups/{name}/{name}-{date}.{ext}");
            out.write(&rel, [0x1f, 0x8b, 0x08, 0x00])?;
            let f = fs::File::options().write(true).open(out.path(&rel))?;
            f.set_len(size_base + rng.below(size_base / 50 + 1) + (14 - night) * 1000)?;
            drop(f);
            out.set_mtime(&rel, t)?;
        }
        let log = format!("/var/log/backup-{name}.log");
        let mut text = String::new();
        for night in (0..14u64).rev() {
            let t = p.now - night * 86_400 - 86_400 + 2 * 3_600;
            let _ = writeln!(text, "{} 02:00:01 backup-{name}: starting", ymd(t));
            let _ = writeln!(text, "{} 02:29:44 backup-{name}: done, archive written, exit 0", ymd(t));
        }
        out.write(&log, text)?;
        out.set_mtime(&log, p.now - 86_400 + 2 * 3_600 + 30 * 60)?;
    }
    out.write("/var/log/restic.log", "snapshot 4f2a91c3 saved\n")?;
    out.set_mtime("/var/log/restic.log", p.now - 86_400 + 4 * 3_600 + 600)?;
    out.write_mode("/root/.restic-pass", "(bench placeholder)\n", 0o600)?;
    let mut cfg = String::from(
        "# Generated by vigil-genhost for benchmarks.\n\n\
         [[ports.allowed]]\nport = 323\nproto = \"udp\"\nreason = \"chrony (NTP), loopback\"\nreviewed = 2026-11-01\n\n",
    );
    for (name, ext, _) in jobs {
        let _ = write!(
            cfg,
            "[[backups]]\nname = \"{name}\"\npath = \"/var/backups/{name}/*.{ext}\"\nmax_age_hours = 26\n\
             log = \"/var/log/backup-{name}.log\"\noffsite = \"sftp:backup@backup.example.test:/srv/restic/bench-web\"\n\
             offsite_log = \"/var/log/restic.log\"\n\n"
        );
    }
    out.write_mode("/etc/vigil/config.toml", cfg, 0o600)?;
    Ok(())
}

/// `YYYY-MM-DD` of an epoch time (civil-from-days, proleptic Gregorian).
fn ymd(t: u64) -> String {
    let z = (t / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A dpkg status database and the apt lists (bookworm + security) with a few pending updates.
fn packages(out: &mut Out, rng: &mut Rng) -> io::Result<()> {
    let named: &[(&str, &str)] = &[
        ("base-files", "12.4+deb12u8"),
        ("bash", "5.2.15-2+b7"),
        ("coreutils", "9.1-1"),
        ("libc6", "2.36-9+deb12u8"),
        ("openssl", "3.0.14-1~deb12u2"),
        ("libssl3", "3.0.14-1~deb12u2"),
        ("openssh-server", "1:9.2p1-2+deb12u3"),
        ("openssh-client", "1:9.2p1-2+deb12u3"),
        ("nginx", "1.22.1-9"),
        ("nginx-common", "1.22.1-9"),
        ("php8.2-fpm", "8.2.24-1~deb12u1"),
        ("php8.2-cli", "8.2.24-1~deb12u1"),
        ("php8.2-mysql", "8.2.24-1~deb12u1"),
        ("mariadb-server", "1:10.11.6-0+deb12u1"),
        ("redis-server", "5:7.0.15-1~deb12u1"),
        ("exim4-daemon-light", "4.96-15+deb12u5"),
        ("sudo", "1.9.13p3-1+deb12u1"),
        ("curl", "7.88.1-10+deb12u7"),
        ("libcurl4", "7.88.1-10+deb12u7"),
        ("linux-image-6.1.0-27-amd64", "6.1.115-1"),
        ("ufw", "0.36.2-1"),
        ("restic", "0.14.0-1+b5"),
        ("unattended-upgrades", "2.9.1+nmu3"),
        ("cron", "3.0pl1-162"),
        ("chrony", "4.3-2+deb12u1"),
    ];
    let mut status = String::new();
    let mut all: Vec<(String, String)> = named.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    for i in 0..650 {
        all.push((
            format!("lib{}{}", rng.string(b"abcdefghijklmnopqrstuvwxyz", 6), i),
            format!("{}.{}.{}-{}", rng.below(5), rng.below(20), rng.below(10), rng.range(1, 4)),
        ));
    }
    for (n, v) in &all {
        let _ = write!(
            status,
            "Package: {n}\nStatus: install ok installed\nPriority: optional\nSection: misc\nInstalled-Size: {}\n\
             Maintainer: Debian Developers <debian-devel@lists.debian.org>\nArchitecture: amd64\nVersion: {v}\n\
             Description: {n} package\n This is the {n} package.\n\n",
            rng.range(20, 90_000)
        );
    }
    out.write("/var/lib/dpkg/status", &status)?;
    let mut main = String::new();
    for (n, v) in &all {
        let _ = write!(
            main,
            "Package: {n}\nVersion: {v}\nInstalled-Size: 100\nArchitecture: amd64\nFilename: pool/main/{}/{n}/{n}_{v}_amd64.deb\n\n",
            &n[..1]
        );
    }
    out.write("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages", &main)?;
    let sec: &[(&str, &str)] = &[
        ("openssl", "3.0.15-1~deb12u1"),
        ("libssl3", "3.0.15-1~deb12u1"),
        ("libc6", "2.36-9+deb12u9"),
        ("php8.2-fpm", "8.2.26-1~deb12u1"),
        ("php8.2-cli", "8.2.26-1~deb12u1"),
        ("php8.2-mysql", "8.2.26-1~deb12u1"),
        ("linux-image-6.1.0-28-amd64", "6.1.119-1"),
    ];
    let mut s = String::new();
    for (n, v) in sec {
        let _ = write!(
            s,
            "Package: {n}\nVersion: {v}\nArchitecture: amd64\nFilename: pool/updates/main/{}/{n}/{n}_{v}_amd64.deb\n\n",
            &n[..1]
        );
    }
    out.write(
        "/var/lib/apt/lists/security.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
        &s,
    )?;
    out.write(
        "/etc/apt/sources.list",
        "deb http://deb.debian.org/debian bookworm main\ndeb http://security.debian.org/debian-security bookworm-security main\n",
    )?;
    out.write(
        "/etc/apt/apt.conf.d/20auto-upgrades",
        "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n",
    )?;
    Ok(())
}
