//! The web-side checks of issue 17 on a real Debian 12 hosting root (`scripts/debroot`:
//! nginx, Apache, PHP-FPM, MariaDB, Redis, Memcached, WordPress from Debian's packages).
//!
//! The cached root, untouched, is the clean control: Debian's defaults (datastores on
//! loopback, an unused `www` pool, the stock sites) raise none of these findings. A copy
//! gets each mistake planted, next to a site that does each thing right (a redirect on
//! port 80, a denied `.git`, `/.well-known/acme-challenge/`, an isolated pool, WordPress
//! owned by root) which must stay silent. Needs root and `scripts/debroot` (mmdebstrap).
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test setup: a failure should stop the test")]

use std::path::Path;
use std::process::Command;

use vigil_tools::ports::{ListOpenPorts, PortsInput};
use vigil_tools::tls::{CheckTls, TlsInput};
use vigil_tools::tool::NoInput;
use vigil_tools::web::CheckWeb;
use vigil_tools::wordpress::{WordpressInventory, WpInput};
use vigil_tools::{Ctx, Finding, Host, Severity, Tool};

/// The ids this web checks produce (and the older ids they share).
const WEB_IDS: &[&str] = &[
    "ports.datastore-config-public",
    "hardening.git-exposed",
    "hardening.env-exposed",
    "hardening.database-dump",
    "hardening.config-backup",
    "hardening.phpinfo-exposed",
    "hardening.site-archive",
    "hardening.web-shell",
    "hardening.web-scan-incomplete",
    "hardening.fpm-pool-root",
    "hardening.fpm-shared-user",
    "hardening.fpm-no-open-basedir",
    "hardening.fpm-exec-allowed",
    "hardening.fpm-allow-url-include",
    "updates.fpm-pool-eol-php",
    "hardening.wp-config-writable",
    "hardening.wp-core-writable",
    "hardening.http-no-redirect",
    "hardening.php-in-uploads",
];

async fn all_findings(root: &Path) -> Vec<Finding> {
    let ctx = Ctx::new(Host::at(root));
    let mut out = CheckWeb.run(&ctx, NoInput {}).await.unwrap().findings;
    out.extend(CheckTls.run(&ctx, TlsInput::default()).await.unwrap().findings);
    out.extend(ListOpenPorts.run(&ctx, PortsInput::default()).await.unwrap().findings);
    out.extend(WordpressInventory.run(&ctx, WpInput::default()).await.unwrap().findings);
    out
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn append(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    let mut old = std::fs::read_to_string(&p).unwrap();
    old.push_str(text);
    std::fs::write(p, old).unwrap();
}

fn sh(args: &[&str]) {
    assert!(Command::new(args[0]).args(&args[1..]).status().unwrap().success(), "{args:?}");
}

const WP_CONFIG: &str = "<?php\ndefine('DB_NAME', 'blog');\ndefine('DB_USER', 'blog');\ndefine('DB_PASSWORD', 'Qm7#vT2!pX9$wL4@');\n\
define('DB_HOST', 'localhost');\ndefine('DISALLOW_FILE_EDIT', true);\n$table_prefix = 'wp_';\n\
if ( ! defined( 'ABSPATH' ) ) { define( 'ABSPATH', __DIR__ . '/' ); }\nrequire_once ABSPATH . 'wp-settings.php';\n";

/// Plant every mistake, and every control, in a copy of the root.
fn plant(r: &Path) {
    let rs = r.to_str().unwrap();
    // 1. Datastores bound to every interface in their configuration (no /proc in an image).
    write(r, "/etc/mysql/mariadb.conf.d/99-remote.cnf", "[mysqld]\nbind-address = 0.0.0.0\n");
    let redis = r.join("etc/redis/redis.conf");
    let text = std::fs::read_to_string(&redis).unwrap();
    std::fs::write(
        &redis,
        text.replace("bind 127.0.0.1 -::1", "bind 0.0.0.0").replace("protected-mode yes", "protected-mode no"),
    )
    .unwrap();
    // Memcached stays on 127.0.0.1: the control.

    // 2–5. Sites: shop (mistakes), safe (controls), blog (WordPress writable by www-data), old (PHP 7.4).
    write(
        r,
        "/etc/nginx/sites-enabled/shop",
        "server { listen 80; listen 443 ssl; server_name shop.test; root /var/www/shop;\n\
         ssl_certificate /etc/ssl/certs/ssl-cert-snakeoil.pem;\n\
         location / { try_files $uri $uri/ =404; }\n\
         location ~ \\.php$ { include snippets/fastcgi-php.conf; fastcgi_pass unix:/run/php/php8.2-fpm.sock; } }\n",
    );
    write(
        r,
        "/etc/nginx/sites-enabled/safe",
        "server { listen 80; server_name safe.test;\n\
           location /.well-known/acme-challenge/ { root /var/www/letsencrypt; }\n\
           location / { return 301 https://$host$request_uri; } }\n\
         server { listen 443 ssl; server_name safe.test; root /var/www/safe;\n\
           ssl_certificate /etc/ssl/certs/ssl-cert-snakeoil.pem;\n\
           location ~ /\\.well-known { allow all; }\n\
           location ~ /\\. { deny all; }\n\
           location ~ \\.php$ { fastcgi_pass unix:/run/php/safe.sock; } }\n",
    );
    write(
        r,
        "/etc/nginx/sites-enabled/blog",
        "server { listen 443 ssl; server_name blog.test; root /var/www/blog;\n\
         ssl_certificate /etc/ssl/certs/ssl-cert-snakeoil.pem;\n\
         location ~ \\.php$ { fastcgi_pass unix:/run/php/php8.2-fpm.sock; } }\n\
         server { listen 80; server_name blog.test; return 301 https://blog.test$request_uri; }\n",
    );
    write(
        r,
        "/etc/nginx/sites-enabled/old",
        "server { listen 443 ssl; server_name old.test; root /var/www/old;\n\
         location ~ \\.php$ { fastcgi_pass unix:/run/php/php7.4-fpm.sock; } }\n",
    );
    // An Apache site whose .git is denied by <DirectoryMatch>, but whose dump is not.
    write(
        r,
        "/etc/apache2/sites-enabled/legacy.conf",
        "<VirtualHost *:80>\n ServerName legacy.test\n DocumentRoot /var/www/legacy\n\
         <DirectoryMatch \"/\\.git\">\n  Require all denied\n </DirectoryMatch>\n</VirtualHost>\n",
    );

    // shop: everything a browser should not get.
    write(r, "/var/www/shop/index.php", "<?php echo 'shop';\n");
    write(r, "/var/www/shop/.git/HEAD", "ref: refs/heads/main\n");
    write(
        r,
        "/var/www/shop/.git/config",
        "[remote \"origin\"]\n\turl = https://deploy:ghp_Zx81TokenNeverShown@github.com/acme/shop.git\n",
    );
    write(r, "/var/www/shop/.env", "APP_KEY=base64:NeverShownEither\nDB_PASSWORD=hunter2\n");
    write(r, "/var/www/shop/backup/shop-2026-11-01.sql.gz", "\u{1f}\u{8b}not really gzip");
    write(r, "/var/www/shop/wp-config.php.bak", "<?php define('DB_PASSWORD', 'x');\n");
    write(r, "/var/www/shop/phpinfo.php", "<?php phpinfo();\n");
    write(r, "/var/www/shop/shop-site.tar.gz", "archive");
    write(r, "/var/www/shop/lib/cache/.sess.php", "<?php @eval($_POST['k']); ?>\n");
    write(
        r,
        "/var/www/shop/lib/vendor/pack.php",
        "<?php\n$a = 1;\neval(gzinflate(base64_decode('S0zJzE1VKEktLlEoLinKzEsHAA==')));\n",
    );
    write(r, "/var/www/shop/.well-known/acme-challenge/Xy12token", "Xy12token.thumbprint\n");

    // safe: the same kinds of files, closed by its configuration.
    write(r, "/var/www/safe/index.php", "<?php echo 'safe';\n");
    write(r, "/var/www/safe/.git/HEAD", "ref: refs/heads/main\n");
    write(r, "/var/www/safe/.git/config", "[remote \"origin\"]\n\turl = git@github.com:acme/safe.git\n");
    write(r, "/var/www/safe/.env", "APP_KEY=x\n");
    write(r, "/var/www/safe/.well-known/acme-challenge/Ab34token", "Ab34token.thumbprint\n");
    write(r, "/var/www/letsencrypt/.well-known/acme-challenge/Ab34token", "Ab34token.thumbprint\n");
    write(r, "/var/www/legacy/index.html", "legacy\n");
    write(r, "/var/www/legacy/.git/HEAD", "ref: refs/heads/main\n");
    write(r, "/var/www/legacy/.git/config", "[core]\n");
    write(r, "/var/www/legacy/legacy.sql", "-- dump\n");
    write(r, "/var/www/old/index.php", "<?php echo 'old';\n");

    // Pools: a root pool with allow_url_include, an isolated pool, a PHP 7.4 pool.
    write(
        r,
        "/etc/php/8.2/fpm/pool.d/legacy.conf",
        "[legacy]\nuser = root\ngroup = root\nlisten = /run/php/legacy.sock\nphp_admin_flag[allow_url_include] = on\n",
    );
    write(
        r,
        "/etc/php/8.2/fpm/pool.d/safe.conf",
        "[safe]\nuser = safe\ngroup = safe\nlisten = /run/php/safe.sock\n\
         php_admin_value[open_basedir] = /var/www/safe/:/tmp/\n\
         php_admin_value[disable_functions] = exec,passthru,shell_exec,system,proc_open,popen\n",
    );
    write(
        r,
        "/etc/php/7.4/fpm/pool.d/old.conf",
        "[old]\nuser = old\nlisten = /run/php/php7.4-fpm.sock\nphp_admin_value[open_basedir] = /var/www/old/\n",
    );
    append(
        r,
        "/etc/passwd",
        "safe:x:1001:1001::/var/www/safe:/usr/sbin/nologin\nold:x:1002:1002::/var/www/old:/usr/sbin/nologin\n",
    );

    // blog: Debian's WordPress, owned by www-data (the pool's user), with PHP planted in uploads.
    sh(&["cp", "-a", &format!("{rs}/usr/share/wordpress"), &format!("{rs}/var/www/blog")]);
    std::fs::remove_file(r.join("var/www/blog/.htaccess")).ok();
    write(r, "/var/www/blog/wp-config.php", WP_CONFIG);
    sh(&["chown", "-R", "33:33", &format!("{rs}/var/www/blog")]);
    write(r, "/var/www/blog/wp-content/uploads/2026/11/photo.phtml", "<?php echo 1;\n");
    write(r, "/var/www/blog/wp-content/uploads/2026/11/.htaccess", "AddHandler application/x-httpd-php .jpg\n");
    // safe is WordPress too, owned by root, its config readable by its own pool's group only.
    sh(&["cp", "-a", &format!("{rs}/usr/share/wordpress/."), &format!("{rs}/var/www/safe/")]);
    std::fs::remove_file(r.join("var/www/safe/.htaccess")).ok();
    write(r, "/var/www/safe/wp-config.php", WP_CONFIG);
    sh(&["chown", "root:1001", &format!("{rs}/var/www/safe/wp-config.php")]);
    sh(&["chmod", "640", &format!("{rs}/var/www/safe/wp-config.php")]);
}

fn ours(findings: &[Finding]) -> Vec<&Finding> {
    findings.iter().filter(|f| WEB_IDS.contains(&f.id.as_str())).collect()
}

#[tokio::test]
#[cfg_attr(
    any(vigil_missing = "root", vigil_missing = "mmdebstrap"),
    ignore = "needs root, mmdebstrap (scripts/debroot: a Debian 12 root built with mmdebstrap)"
)]
async fn every_web_mistake_is_found_on_a_real_debian_root_and_every_control_is_silent() {
    vigil_testkit::require(&["root", "mmdebstrap"]);
    let base = vigil_testkit::debroot();

    // The untouched root: Debian's defaults raise none of these findings.
    let clean = all_findings(&base).await;
    let loud: Vec<String> = ours(&clean).iter().map(|f| format!("{} {} {}", f.severity, f.id, f.subject)).collect();
    assert!(loud.is_empty(), "Debian's defaults are clean, yet:\n{}", loud.join("\n"));

    let t = tempfile::tempdir().unwrap();
    sh(&["cp", "-a", &format!("{}/.", base.display()), t.path().to_str().unwrap()]);
    plant(t.path());
    let found = all_findings(t.path()).await;
    let got: Vec<(String, String, Severity)> =
        found.iter().map(|f| (f.id.clone(), f.subject.clone(), f.severity)).collect();
    let has = |id: &str, subject: &str| {
        found
            .iter()
            .find(|f| f.id == id && f.subject.contains(subject))
            .unwrap_or_else(|| panic!("no {id} for {subject}:\n{got:#?}"))
    };

    // 1. Datastores.
    let my = has("ports.datastore-config-public", "tcp:3306");
    assert!(my.evidence.iter().any(|e| e.contains("99-remote.cnf: bind-address = 0.0.0.0")), "{my:?}");
    assert_eq!(my.severity, Severity::High);
    assert_eq!(has("ports.datastore-config-public", "tcp:6379").severity, Severity::Critical);
    assert!(
        !got.iter().any(|(id, s, _)| id == "ports.datastore-config-public" && s == "tcp:11211"),
        "memcached on 127.0.0.1"
    );

    // 2. Downloadable files: reported on shop, closed on safe and legacy's .git.
    let git = has("hardening.git-exposed", "/var/www/shop/.git");
    assert_eq!(git.severity, Severity::Critical, "credentials in the remote URL");
    has("hardening.env-exposed", "/var/www/shop/.env");
    has("hardening.database-dump", "/var/www/shop/backup/shop-2026-11-01.sql.gz");
    has("hardening.config-backup", "/var/www/shop/wp-config.php.bak");
    has("hardening.phpinfo-exposed", "/var/www/shop/phpinfo.php");
    has("hardening.site-archive", "/var/www/shop/shop-site.tar.gz");
    has("hardening.database-dump", "/var/www/legacy/legacy.sql");
    for quiet in ["/var/www/safe", "/var/www/legacy/.git", ".well-known"] {
        let hits: Vec<&(String, String, Severity)> = got
            .iter()
            .filter(|(id, s, _)| {
                WEB_IDS.contains(&id.as_str()) && s.contains(quiet) && !id.starts_with("hardening.fpm")
            })
            .collect();
        assert!(hits.is_empty(), "{quiet} is closed or public by design: {hits:?}");
    }
    // Secrets are judged, never shown.
    let all = format!("{found:?}");
    for secret in ["ghp_Zx81TokenNeverShown", "NeverShownEither", "hunter2", "Qm7#vT2!pX9$wL4@"] {
        assert!(!all.contains(secret), "{secret} leaked");
    }

    // 3. Pools.
    has("hardening.fpm-pool-root", "legacy.conf[legacy]");
    has("hardening.fpm-allow-url-include", "legacy.conf[legacy]");
    let shared = has("hardening.fpm-shared-user", "www-data");
    assert!(shared.evidence.iter().any(|e| e.contains("/var/www/shop") && e.contains("/var/www/blog")), "{shared:?}");
    has("hardening.fpm-no-open-basedir", "www.conf[www]");
    has("hardening.fpm-exec-allowed", "www.conf[www]");
    has("updates.fpm-pool-eol-php", "old.conf[old]");
    assert!(!got.iter().any(|(_, s, _)| s.contains("safe.conf")), "the isolated pool: {got:#?}");

    // 4. WordPress writable by its PHP user; the root-owned copy is not.
    has("hardening.wp-config-writable", "/var/www/blog");
    has("hardening.wp-core-writable", "/var/www/blog");
    assert!(!got.iter().any(|(id, s, _)| id.contains("writable") && s.contains("/var/www/safe")));

    // 5. Web shells (and nothing in WordPress core), PHP in uploads in its disguises.
    has("hardening.web-shell", "/var/www/shop/lib/cache/.sess.php");
    has("hardening.web-shell", "/var/www/shop/lib/vendor/pack.php");
    let shells: Vec<&String> = got.iter().filter(|(id, ..)| id == "hardening.web-shell").map(|(_, s, _)| s).collect();
    assert_eq!(shells.len(), 2, "WordPress core has no shell markers: {shells:?}");
    let uploads = has("hardening.php-in-uploads", "/var/www/blog");
    assert!(uploads.evidence.iter().any(|e| e.ends_with("photo.phtml")), "{uploads:?}");
    assert!(uploads.evidence.iter().any(|e| e.contains(".htaccess (makes other files run as PHP")), "{uploads:?}");

    // 6. Plain HTTP next to TLS: shop serves both; safe and blog redirect.
    let http = has("hardening.http-no-redirect", "shop.test");
    assert!(http.remediation.contains("return 301 https://"), "{http:?}");
    assert!(!got.iter().any(|(id, s, _)| id == "hardening.http-no-redirect" && !s.contains("shop.test")), "{got:#?}");
}
