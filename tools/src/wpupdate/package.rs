//! Packages: fetched from WordPress.org's download URLs (or `[wordpress]
//! download_base`, a mirror or a test server) and verified before anything
//! uses them. A zip unpacks only when every member stays inside its one top
//! directory (no absolute paths, no `..`, no symlinks) and the whole stays
//! under a size cap; its version header must be the one asked for; and the
//! checksums WordPress.org publishes (per-file SHA-256 for plugins, the zip's
//! SHA-1/MD5 for core) must match. A missing checksum file is noted, a
//! mismatch is fatal. Unpacking into a site goes through descriptors
//! ([`super::tree`]), so a name planted by the site's owner is never written through.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::tree::{self, Dir};
use super::{UpdateKind, failed};
use crate::archive_path::safe_rel;
use crate::tool::{Ctx, ToolError};

/// WordPress.org's plugin and theme downloads.
pub const DEFAULT_BASE: &str = "https://downloads.wordpress.org";
/// WordPress.org's core downloads.
pub const DEFAULT_CORE_BASE: &str = "https://wordpress.org";
/// Largest package downloaded.
pub const MAX_DOWNLOAD: u64 = 200 << 20;
/// Largest unpacked package.
pub const MAX_UNPACKED: u64 = 1 << 30;
/// Most members in a package.
pub const MAX_MEMBERS: usize = 100_000;

fn base(ctx: &Ctx) -> String {
    ctx.config.wordpress.download_base.clone().unwrap_or_else(|| DEFAULT_BASE.into()).trim_end_matches('/').into()
}

fn core_base(ctx: &Ctx) -> String {
    ctx.config.wordpress.download_base.clone().unwrap_or_else(|| DEFAULT_CORE_BASE.into()).trim_end_matches('/').into()
}

/// The zip's URL (`version` absent: the latest release).
pub fn zip_url(ctx: &Ctx, kind: UpdateKind, slug: &str, version: Option<&str>) -> String {
    match (kind, version) {
        (UpdateKind::Core, Some(v)) => format!("{}/wordpress-{v}.zip", core_base(ctx)),
        (UpdateKind::Core, None) => format!("{}/latest.zip", core_base(ctx)),
        (k, Some(v)) => format!("{}/{}/{slug}.{v}.zip", base(ctx), k.as_str()),
        (k, None) => format!("{}/{}/{slug}.zip", base(ctx), k.as_str()),
    }
}

/// Where WordPress.org publishes the checksums, when it does.
pub fn checksum_url(ctx: &Ctx, kind: UpdateKind, slug: &str, version: &str) -> Option<String> {
    match kind {
        UpdateKind::Plugin => Some(format!("{}/plugin-checksums/{slug}/{version}.json", base(ctx))),
        UpdateKind::Core => Some(format!("{}/wordpress-{version}.zip.sha1", core_base(ctx))),
        UpdateKind::Theme => None,
    }
}

fn client() -> Result<reqwest::Client, ToolError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(20))
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| failed(format!("HTTP client: {e}")))
}

/// GET a URL into memory with a size cap; `Ok(None)` on 404.
pub async fn get(url: &str, cap: u64) -> Result<Option<Vec<u8>>, ToolError> {
    let mut r = client()?.get(url).send().await.map_err(|e| failed(format!("GET {url}: {e}")))?;
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !r.status().is_success() {
        return Err(failed(format!("GET {url}: HTTP {}", r.status())));
    }
    if r.content_length().is_some_and(|n| n > cap) {
        return Err(failed(format!("GET {url}: larger than {} MiB: refused", cap >> 20)));
    }
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| failed(format!("GET {url}: {e}")))? {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > cap {
            return Err(failed(format!("GET {url}: larger than {} MiB: refused", cap >> 20)));
        }
    }
    Ok(Some(out))
}

/// What unpacking found.
#[derive(Debug, Clone, Default)]
pub struct Unpacked {
    /// Files written, relative to the package's top directory, with their SHA-256.
    pub files: BTreeMap<String, String>,
    /// Bytes written.
    pub bytes: u64,
}

/// The top directory a package must have: the slug, or `wordpress` for core.
pub fn top_dir(kind: UpdateKind, slug: &str) -> String {
    if kind == UpdateKind::Core { "wordpress".into() } else { slug.into() }
}

/// Unpack `zip` into `dest` (which becomes the package's top directory; vigil's own private
/// scratch space), refusing anything unsafe.
pub fn unpack(zip: &Path, kind: UpdateKind, slug: &str, dest: &Path) -> Result<Unpacked, ToolError> {
    let open = || {
        std::fs::create_dir_all(dest)?;
        Dir::open(dest)
    };
    unpack_with(zip, kind, slug, dest, open, None)
}

/// Unpack `zip` into `dest`, a directory vigil created (in a site, still root's 0700) and holds
/// open: every directory and file is created relative to descriptors, files with `O_EXCL`, so
/// nothing is written through a name the site's owner planted; each is given `owner` at once
/// (directories 0755, files 0644 — a package's own modes are not trusted).
pub fn unpack_into(
    zip: &Path,
    kind: UpdateKind,
    slug: &str,
    dest: &Dir,
    owner: Option<(u32, u32)>,
) -> Result<Unpacked, ToolError> {
    unpack_with(zip, kind, slug, dest.path(), || dest.open_dir(Path::new("")), owner)
}

#[expect(
    clippy::disallowed_methods,
    reason = "the zip vigil itself downloaded, verified and wrote to its state directory, not a tenant file"
)]
fn unpack_with(
    zip: &Path,
    kind: UpdateKind,
    slug: &str,
    shown: &Path,
    open_dest: impl FnOnce() -> std::io::Result<Dir>,
    owner: Option<(u32, u32)>,
) -> Result<Unpacked, ToolError> {
    let top = top_dir(kind, slug);
    let f = std::fs::File::open(zip).map_err(|e| failed(format!("cannot read {}: {e}", zip.display())))?;
    let mut ar = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| ToolError::Refused(format!("the package is not a readable zip: {e}")))?;
    if ar.len() > MAX_MEMBERS {
        return Err(ToolError::Refused(format!("the package has {} members (limit {MAX_MEMBERS})", ar.len())));
    }
    let refuse = |m: String| {
        ToolError::Refused(format!("the package is unsafe: {m}; nothing was written outside {}", shown.display()))
    };
    // Check every name before writing anything.
    let mut planned = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut declared = 0u64;
    for i in 0..ar.len() {
        let m = ar.by_index_raw(i).map_err(|e| refuse(format!("member {i}: {e}")))?;
        let name = m.name().to_string();
        let rel = safe_rel(&name).map_err(refuse)?;
        if m.unix_mode().is_some_and(|mode| mode & 0o170000 == 0o120000) {
            return Err(refuse(format!("member `{name}` is a symlink")));
        }
        let Ok(inner) = rel.strip_prefix(&top) else {
            return Err(refuse(format!("member `{name}` is outside the package's directory `{top}/`")));
        };
        if !m.is_dir() && !seen.insert(inner.to_path_buf()) {
            return Err(refuse(format!("member `{name}` appears twice")));
        }
        declared = declared.saturating_add(m.size());
        planned.push((i, name, inner.to_path_buf(), m.is_dir()));
    }
    if declared > MAX_UNPACKED {
        return Err(refuse(format!("it would unpack to {} MiB (limit {} MiB)", declared >> 20, MAX_UNPACKED >> 20)));
    }
    let dest = open_dest().map_err(|e| failed(format!("cannot create {}: {e}", shown.display())))?;
    let wr = |e: std::io::Error| failed(format!("unpacking into {}: {e}", shown.display()));
    let mut out = Unpacked::default();
    for (i, name, inner, is_dir) in planned {
        let comps: Vec<&std::ffi::OsStr> = inner.iter().collect();
        let Some((last, dirs)) = comps.split_last() else {
            if is_dir {
                continue; // the top directory itself
            }
            return Err(refuse(format!("member `{name}` is a file where the package's directory should be")));
        };
        let mut d = dest.open_dir(Path::new("")).map_err(wr)?;
        for c in dirs {
            d = d.ensure_dir(c, 0o755, owner).map_err(wr)?;
        }
        if is_dir {
            d.ensure_dir(last, 0o755, owner).map_err(wr)?;
            continue;
        }
        let mut m = ar.by_index(i).map_err(|e| refuse(format!("member `{name}`: {e}")))?;
        let mut w = d.create(last, 0o644).map_err(wr)?;
        let mut h = Sha256::new();
        let room = MAX_UNPACKED - out.bytes;
        let mut r = (&mut m).take(room + 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = r.read(&mut buf).map_err(|e| refuse(format!("member `{name}`: {e}")))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            w.write_all(&buf[..k]).map_err(wr)?;
            n += k as u64;
        }
        if n > room {
            return Err(refuse(format!("it unpacks to more than {} MiB", MAX_UNPACKED >> 20)));
        }
        match owner {
            Some((uid, gid)) => tree::set_owner_mode(&w, uid, gid, 0o644).map_err(wr)?,
            None => w.set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(wr)?,
        }
        out.bytes += n;
        out.files.insert(inner.to_string_lossy().into_owned(), hex::encode(h.finalize()));
    }
    if out.files.is_empty() {
        return Err(ToolError::Refused("the package is empty".into()));
    }
    Ok(out)
}

/// The version an unpacked package declares (plugin header, theme `style.css`, core `version.php`).
#[expect(
    clippy::disallowed_methods,
    reason = "an unpacked package in vigil's own root-only scratch directory (created by vigil from a verified download), not a tenant path"
)]
pub fn package_version(kind: UpdateKind, slug: &str, dir: &Path) -> Option<String> {
    use crate::wordpress::discover::header_field;
    let head = |p: PathBuf| -> Option<String> {
        let mut s = Vec::new();
        std::fs::File::open(p).ok()?.take(8192).read_to_end(&mut s).ok()?;
        Some(String::from_utf8_lossy(&s).into_owned())
    };
    match kind {
        UpdateKind::Core => crate::wordpress::discover::core_version(&crate::host::Host::at(dir), "/"),
        UpdateKind::Theme => head(dir.join("style.css")).and_then(|t| header_field(&t, "Version")),
        UpdateKind::Plugin => {
            let main = dir.join(format!("{slug}.php"));
            let mut candidates = vec![main];
            if let Ok(rd) = std::fs::read_dir(dir) {
                let mut others: Vec<PathBuf> =
                    rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "php")).collect();
                others.sort();
                candidates.extend(others);
            }
            candidates.into_iter().find_map(|p| {
                let t = head(p)?;
                header_field(&t, "Plugin Name")?;
                header_field(&t, "Version")
            })
        }
    }
}

/// Check a plugin's files against WordPress.org's per-file checksums (JSON).
pub fn check_plugin_checksums(json: &[u8], files: &BTreeMap<String, String>) -> Result<usize, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("the checksum file is not JSON: {e}"))?;
    let Some(listed) = v.get("files").and_then(|f| f.as_object()) else {
        return Err("the checksum file has no `files`".into());
    };
    let mut bad = Vec::new();
    for (name, sum) in files {
        let Some(entry) = listed.get(name) else {
            bad.push(format!("{name} is not in WordPress.org's checksums"));
            continue;
        };
        let ok = match entry.get("sha256") {
            Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case(sum),
            Some(serde_json::Value::Array(a)) => {
                a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(sum)))
            }
            _ => false,
        };
        if !ok {
            bad.push(format!("{name}: SHA-256 differs from WordPress.org's"));
        }
    }
    for name in listed.keys() {
        if !files.contains_key(name) {
            bad.push(format!("{name} is missing from the package"));
        }
    }
    if bad.is_empty() {
        Ok(files.len())
    } else {
        let n = bad.len();
        bad.truncate(5);
        Err(format!("{n} file(s) do not match: {}", bad.join("; ")))
    }
}

/// The first hex digest in a `.sha1`/`.md5` file.
pub fn first_hex(text: &str, len: usize) -> Option<String> {
    text.split_whitespace()
        .next()
        .filter(|w| w.len() == len && w.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

/// A fetched, verified package, kept for applying.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Where it came from.
    pub url: String,
    /// The zip, kept in the state directory.
    pub zip: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// The version it declares.
    pub version: String,
    /// How its checksums went.
    pub checksum: String,
    /// Its PHP files.
    pub php_files: usize,
}

/// Fetch a package into `dir` and verify it (unpacked once into a scratch directory there).
pub async fn fetch_verified(
    ctx: &Ctx,
    kind: UpdateKind,
    slug: &str,
    version: Option<&str>,
    dir: &Path,
) -> Result<Verified, ToolError> {
    let url = zip_url(ctx, kind, slug, version);
    let bytes = get(&url, MAX_DOWNLOAD)
        .await?
        .ok_or_else(|| failed(format!("{url}: not found (404): no such {} version", kind.as_str())))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let zip = dir.join(format!("{}-{slug}-{}.zip", kind.as_str(), &sha256[..12]));
    super::write_atomic(&zip, &bytes).map_err(|e| failed(format!("cannot write {}: {e}", zip.display())))?;
    let scratch = tempfile::Builder::new()
        .prefix("unpack-")
        .tempdir_in(dir)
        .map_err(|e| failed(format!("cannot create a scratch directory in {}: {e}", dir.display())))?;
    let unpacked = unpack(&zip, kind, slug, &scratch.path().join("pkg"))?;
    let declared = package_version(kind, slug, &scratch.path().join("pkg")).ok_or_else(|| {
        ToolError::Refused(format!("{url}: the package declares no version (not a WordPress {})", kind.as_str()))
    })?;
    if let Some(v) = version {
        if v != declared {
            return Err(ToolError::Refused(format!("{url}: the package says version {declared}, not {v}")));
        }
    }
    check_version(&declared)?;
    let checksum = match checksum_url(ctx, kind, slug, &declared) {
        None => "no checksums published for themes".to_string(),
        Some(cu) => match (kind, get(&cu, 16 << 20).await?) {
            (_, None) => format!("no checksum file published ({cu} not found)"),
            (UpdateKind::Core, Some(text)) => {
                let want = first_hex(&String::from_utf8_lossy(&text), 40)
                    .ok_or_else(|| failed(format!("{cu}: not a SHA-1 checksum")))?;
                let have = {
                    use sha1::Digest as _;
                    hex::encode(sha1::Sha1::digest(&bytes))
                };
                if want != have {
                    return Err(ToolError::Refused(format!("{url}: SHA-1 {have} differs from WordPress.org's {want}")));
                }
                format!("SHA-1 of the zip matches {cu}")
            }
            (_, Some(json)) => {
                let n = check_plugin_checksums(&json, &unpacked.files)
                    .map_err(|e| ToolError::Refused(format!("{url}: checksums do not match {cu}: {e}")))?;
                format!("SHA-256 of all {n} files match {cu}")
            }
        },
    };
    let php_files = unpacked.files.keys().filter(|f| f.ends_with(".php")).count();
    Ok(Verified { url, zip, sha256, version: declared, checksum, php_files })
}

fn check_version(v: &str) -> Result<(), ToolError> {
    super::check_version(v).map_err(|_| ToolError::Refused(format!("the package declares an odd version `{v}`")))
}
