//! Shared pieces of vigil's benchmark helpers: a tiny deterministic PRNG, a
//! flag parser, and the catalogue of WordPress plugins, themes and core
//! versions that both the host generator and the feed generator draw from —
//! so the generated feed really matches some of the generated sites.
//!
//! Nothing here is part of vigil; `bench/run` builds and uses these binaries.

#![deny(missing_docs)]

use std::collections::HashMap;

/// xorshift64* seeded through splitmix64: deterministic, fast, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// A derived, independent stream (so adding items to one part of the
    /// output does not shift every other part).
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng::new(self.next_u64() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` random characters from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    /// `k` distinct indices out of `0..n` (partial Fisher–Yates), in draw order.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        let k = k.min(n);
        for i in 0..k {
            let j = i + self.below((n - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(k);
        idx
    }

    /// A random UUID-looking id (v4 layout).
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

/// Alphanumerics.
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `--key value` flags, with defaults and a usage line on error.
#[derive(Debug)]
pub struct Flags {
    values: HashMap<String, String>,
    usage: &'static str,
}

impl Flags {
    /// Parse `std::env::args()`; `--help` prints `usage` and exits 0.
    pub fn parse(usage: &'static str) -> Result<Flags, String> {
        let mut values = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            if a == "--help" || a == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(key) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument `{a}`\n{usage}"));
            };
            let (key, value) = match key.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (key.to_string(), args.next().ok_or_else(|| format!("--{key} needs a value\n{usage}"))?),
            };
            values.insert(key, value);
        }
        Ok(Flags { values, usage })
    }

    /// A string flag.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A required string flag.
    pub fn required(&self, key: &str) -> Result<&str, String> {
        self.str(key).ok_or_else(|| format!("--{key} is required\n{}", self.usage))
    }

    /// A number flag with a default.
    pub fn num(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.str(key) {
            None => Ok(default),
            Some(v) => v.replace('_', "").parse().map_err(|_| format!("--{key}: `{v}` is not a number")),
        }
    }

    /// Flags nobody asked for (typos), given the known ones.
    pub fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.values.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown flag --{k}\n{}", self.usage)),
            None => Ok(()),
        }
    }
}

/// A version as numbers (`8.2.1` → `[8, 2, 1]`).
pub type Version = [u32; 3];

/// `8.2.1`, `8.2` when the patch is 0 and `short` is set.
pub fn vstr(v: Version) -> String {
    format!("{}.{}.{}", v[0], v[1], v[2])
}

/// The release before `v` that sites lag on (one minor back).
pub fn older(v: Version) -> Version {
    if v[1] > 0 { [v[0], v[1] - 1, v[2].min(3)] } else { [v[0].saturating_sub(1), 9, 2] }
}

/// A version between `old` and `cur` (exclusive of `cur`): the last vulnerable one.
pub fn last_vulnerable(old: Version, cur: Version) -> Version {
    if old[1] == cur[1] && old[0] == cur[0] { old } else { [old[0], old[1], old[2] + 5] }
}

/// One plugin of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// Directory name and wordpress.org slug.
    pub slug: &'static str,
    /// `Plugin Name:`.
    pub name: &'static str,
    /// `Author:`.
    pub author: &'static str,
    /// Current release.
    pub current: Version,
}

/// Popular plugins, with their release around late 2023.
pub const PLUGINS: &[Plugin] = &[
    Plugin { slug: "woocommerce", name: "WooCommerce", author: "Automattic", current: [8, 2, 1] },
    Plugin { slug: "akismet", name: "Akismet Anti-spam: Spam Protection", author: "Automattic", current: [5, 3, 0] },
    Plugin { slug: "contact-form-7", name: "Contact Form 7", author: "Takayuki Miyoshi", current: [5, 8, 4] },
    Plugin { slug: "elementor", name: "Elementor", author: "Elementor.com", current: [3, 18, 0] },
    Plugin { slug: "wordpress-seo", name: "Yoast SEO", author: "Team Yoast", current: [21, 5, 0] },
    Plugin { slug: "jetpack", name: "Jetpack", author: "Automattic", current: [12, 8, 0] },
    Plugin { slug: "wordfence", name: "Wordfence Security", author: "Wordfence", current: [7, 10, 7] },
    Plugin { slug: "classic-editor", name: "Classic Editor", author: "WordPress Contributors", current: [1, 6, 3] },
    Plugin {
        slug: "really-simple-ssl",
        name: "Really Simple SSL",
        author: "Really Simple Plugins",
        current: [7, 2, 0],
    },
    Plugin {
        slug: "updraftplus",
        name: "UpdraftPlus - Backup/Restore",
        author: "UpdraftPlus.Com",
        current: [1, 23, 12],
    },
    Plugin { slug: "wpforms-lite", name: "WPForms Lite", author: "WPForms", current: [1, 8, 5] },
    Plugin { slug: "all-in-one-seo-pack", name: "All in One SEO", author: "All in One SEO Team", current: [4, 5, 1] },
    Plugin { slug: "litespeed-cache", name: "LiteSpeed Cache", author: "LiteSpeed Technologies", current: [5, 7, 0] },
    Plugin { slug: "wp-super-cache", name: "WP Super Cache", author: "Automattic", current: [1, 11, 0] },
    Plugin { slug: "w3-total-cache", name: "W3 Total Cache", author: "BoldGrid", current: [2, 6, 1] },
    Plugin { slug: "redirection", name: "Redirection", author: "John Godley", current: [5, 3, 10] },
    Plugin {
        slug: "duplicate-post",
        name: "Yoast Duplicate Post",
        author: "Enrico Battocchi & Team Yoast",
        current: [4, 5, 0],
    },
    Plugin { slug: "wp-mail-smtp", name: "WP Mail SMTP", author: "WP Mail SMTP", current: [3, 10, 0] },
    Plugin { slug: "google-site-kit", name: "Site Kit by Google", author: "Google", current: [1, 115, 0] },
    Plugin {
        slug: "mailchimp-for-wp",
        name: "MC4WP: Mailchimp for WordPress",
        author: "ibericode",
        current: [4, 9, 9],
    },
    Plugin { slug: "advanced-custom-fields", name: "Advanced Custom Fields", author: "WP Engine", current: [6, 2, 4] },
    Plugin { slug: "regenerate-thumbnails", name: "Regenerate Thumbnails", author: "Alex Mills", current: [3, 1, 6] },
    Plugin { slug: "tablepress", name: "TablePress", author: "Tobias Baethge", current: [2, 2, 1] },
    Plugin { slug: "wp-fastest-cache", name: "WP Fastest Cache", author: "Emre Vona", current: [1, 2, 2] },
    Plugin { slug: "wp-smushit", name: "Smush", author: "WPMU DEV", current: [3, 15, 0] },
    Plugin { slug: "ewww-image-optimizer", name: "EWWW Image Optimizer", author: "Exactly WWW", current: [7, 2, 2] },
    Plugin { slug: "loco-translate", name: "Loco Translate", author: "Tim Whitlock", current: [2, 6, 6] },
    Plugin {
        slug: "limit-login-attempts-reloaded",
        name: "Limit Login Attempts Reloaded",
        author: "Limit Login Attempts Reloaded",
        current: [2, 25, 26],
    },
    Plugin { slug: "better-wp-security", name: "Solid Security", author: "SolidWP", current: [9, 1, 2] },
    Plugin { slug: "sucuri-scanner", name: "Sucuri Security", author: "Sucuri Inc.", current: [1, 8, 39] },
    Plugin { slug: "ninja-forms", name: "Ninja Forms", author: "Saturday Drive", current: [3, 7, 1] },
    Plugin { slug: "duplicator", name: "Duplicator", author: "Snap Creek", current: [1, 5, 7] },
    Plugin { slug: "wp-file-manager", name: "WP File Manager", author: "mndpsingh287", current: [7, 2, 1] },
    Plugin { slug: "revslider", name: "Slider Revolution", author: "ThemePunch", current: [6, 6, 15] },
    Plugin {
        slug: "js_composer",
        name: "WPBakery Page Builder",
        author: "Michael M - WPBakery.com",
        current: [7, 1, 0],
    },
    Plugin {
        slug: "the-events-calendar",
        name: "The Events Calendar",
        author: "The Events Calendar",
        current: [6, 2, 8],
    },
    Plugin { slug: "bbpress", name: "bbPress", author: "The bbPress Contributors", current: [2, 6, 9] },
    Plugin { slug: "buddypress", name: "BuddyPress", author: "The BuddyPress Community", current: [11, 4, 0] },
    Plugin { slug: "woocommerce-payments", name: "WooPayments", author: "Automattic", current: [6, 8, 0] },
    Plugin {
        slug: "woocommerce-gateway-stripe",
        name: "WooCommerce Stripe Gateway",
        author: "WooCommerce",
        current: [7, 7, 0],
    },
    Plugin { slug: "mailpoet", name: "MailPoet", author: "MailPoet", current: [4, 38, 0] },
    Plugin { slug: "cookie-notice", name: "Cookie Notice & Compliance", author: "Hu-manity.co", current: [2, 4, 12] },
    Plugin { slug: "complianz-gdpr", name: "Complianz GDPR/CCPA", author: "Really Simple Plugins", current: [6, 5, 5] },
    Plugin { slug: "wp-optimize", name: "WP-Optimize", author: "David Anderson", current: [3, 2, 22] },
    Plugin {
        slug: "header-footer-elementor",
        name: "Elementor Header & Footer Builder",
        author: "Brainstorm Force",
        current: [1, 6, 20],
    },
    Plugin {
        slug: "essential-addons-for-elementor-lite",
        name: "Essential Addons for Elementor",
        author: "WPDeveloper",
        current: [5, 9, 2],
    },
    Plugin { slug: "ultimate-addons-for-gutenberg", name: "Spectra", author: "Brainstorm Force", current: [2, 10, 3] },
    Plugin { slug: "wp-statistics", name: "WP Statistics", author: "VeronaLabs", current: [14, 3, 2] },
    Plugin { slug: "broken-link-checker", name: "Broken Link Checker", author: "WPMU DEV", current: [2, 2, 3] },
    Plugin {
        slug: "instagram-feed",
        name: "Smash Balloon Instagram Feed",
        author: "Smash Balloon",
        current: [6, 2, 6],
    },
    Plugin { slug: "custom-post-type-ui", name: "Custom Post Type UI", author: "WebDevStudios", current: [1, 15, 1] },
    Plugin { slug: "polylang", name: "Polylang", author: "WP SYNTEX", current: [3, 5, 2] },
    Plugin { slug: "popup-maker", name: "Popup Maker", author: "Popup Maker", current: [1, 18, 2] },
    Plugin { slug: "backwpup", name: "BackWPup", author: "WP Media", current: [4, 0, 1] },
    Plugin {
        slug: "all-in-one-wp-migration",
        name: "All-in-One WP Migration",
        author: "ServMask",
        current: [7, 79, 0],
    },
    Plugin { slug: "wp-reset", name: "WP Reset", author: "WebFactory Ltd", current: [2, 0, 0] },
    Plugin {
        slug: "shortpixel-image-optimiser",
        name: "ShortPixel Image Optimizer",
        author: "ShortPixel",
        current: [5, 5, 3],
    },
    Plugin { slug: "insert-headers-and-footers", name: "WPCode Lite", author: "WPCode", current: [2, 1, 6] },
    Plugin { slug: "wp-google-maps", name: "WP Go Maps", author: "WP Go Maps", current: [9, 0, 28] },
    Plugin { slug: "members", name: "Members", author: "MemberPress", current: [3, 2, 9] },
];

/// One theme of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    /// Directory name and slug.
    pub slug: &'static str,
    /// `Theme Name:`.
    pub name: &'static str,
    /// Current release.
    pub current: Version,
}

/// Common themes.
pub const THEMES: &[Theme] = &[
    Theme { slug: "twentytwentyfour", name: "Twenty Twenty-Four", current: [1, 0, 0] },
    Theme { slug: "twentytwentythree", name: "Twenty Twenty-Three", current: [1, 3, 0] },
    Theme { slug: "astra", name: "Astra", current: [4, 5, 2] },
    Theme { slug: "generatepress", name: "GeneratePress", current: [3, 3, 1] },
    Theme { slug: "oceanwp", name: "OceanWP", current: [3, 5, 2] },
    Theme { slug: "kadence", name: "Kadence", current: [1, 1, 50] },
    Theme { slug: "hello-elementor", name: "Hello Elementor", current: [2, 9, 0] },
    Theme { slug: "Divi", name: "Divi", current: [4, 23, 1] },
];

/// WordPress core releases seen on the generated sites (newest first).
pub const CORE: &[Version] = &[[6, 4, 2], [6, 4, 1], [6, 3, 2], [6, 2, 3], [6, 1, 9], [5, 9, 8], [5, 8, 8]];

/// Words for realistic prose (descriptions, comments, names).
pub const WORDS: &[&str] = &[
    "the",
    "plugin",
    "for",
    "WordPress",
    "is",
    "vulnerable",
    "to",
    "via",
    "parameter",
    "in",
    "all",
    "versions",
    "up",
    "and",
    "including",
    "due",
    "insufficient",
    "input",
    "sanitization",
    "output",
    "escaping",
    "on",
    "user",
    "supplied",
    "attributes",
    "this",
    "makes",
    "it",
    "possible",
    "authenticated",
    "attackers",
    "with",
    "contributor",
    "level",
    "access",
    "above",
    "inject",
    "arbitrary",
    "web",
    "scripts",
    "pages",
    "that",
    "will",
    "execute",
    "whenever",
    "accesses",
    "an",
    "injected",
    "page",
    "missing",
    "capability",
    "check",
    "function",
    "unauthenticated",
    "nonce",
    "validation",
    "shortcode",
    "settings",
    "AJAX",
    "action",
    "REST",
    "endpoint",
    "file",
    "upload",
    "path",
    "traversal",
    "SQL",
    "query",
    "database",
    "information",
    "sensitive",
    "exposure",
    "administrator",
    "privileges",
    "site",
    "options",
    "update",
    "delete",
    "forged",
    "request",
    "if",
    "they",
    "can",
    "trick",
    "a",
    "into",
    "performing",
    "such",
    "as",
    "clicking",
    "link",
    "server",
    "side",
    "remote",
    "code",
    "execution",
    "object",
    "injection",
    "deserialization",
    "PHP",
    "gadget",
    "chain",
    "present",
    "additional",
    "installed",
    "target",
    "system",
];

/// For a helper that holds something (processes, sockets, servers) until the
/// bench script stops it: block SIGTERM, SIGINT and SIGHUP on this (only)
/// thread, ask for SIGTERM when the parent dies (`PR_SET_PDEATHSIG`), and
/// return the set for [`wait_for_stop`]. Call it before printing `ready`, so a
/// stop signal sent at once is not lost, and after starting any program that
/// must not inherit the blocked mask.
pub fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid value to initialise with sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: building and installing this thread's signal mask; prctl on this process.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    set
}

/// Wait until one of the signals [`block_stop_signals`] blocked arrives.
pub fn wait_for_stop(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: waiting on a set of signals this thread blocked.
    unsafe { libc::sigwait(set, &mut sig) };
}
