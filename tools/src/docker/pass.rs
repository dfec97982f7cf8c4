//! The engine pass as one unit: everything `docker_containers` needs from the Engine
//! API, gathered where the engine's socket can be reached.
//!
//! In the confined worker the socket is out of reach (root-only, and the worker has no
//! network), so the worker asks the parent for [`crate::broker::Fact::Docker`] and the
//! parent runs [`run`] with ITS OWN configuration: it names the endpoint ([`engine::resolve`]),
//! connects, lists, inspects and samples with fixed GET requests, and exports the images the
//! containers use (`GET /images/{id}/get`) into a directory it owns, where the worker's
//! trivy reads them. Unconfined (`--no-sandbox`, or a caller without a worker) the tool runs
//! the same function itself. Container environments are never read.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::engine::{self, ConnectError, Observed};
use crate::tool::Ctx;

/// The largest image exported for a scan; a larger one is reported as not checked.
pub const EXPORT_MAX: u64 = 4 << 30;

/// Images exported (and scanned) at once.
pub const EXPORT_CONCURRENCY: usize = 2;

/// What the engine pass found.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EnginePass {
    /// No endpoint could be named (a bad `docker_host`, a TLS `DOCKER_HOST`).
    Unresolved {
        /// Why.
        why: String,
    },
    /// The endpoint could not be reached.
    Unreachable {
        /// The endpoint as shown.
        endpoint: String,
        /// Absent, denied or failed.
        error: ConnectError,
    },
    /// Reached, but the containers could not be listed.
    Unread {
        /// The endpoint as shown.
        endpoint: String,
        /// Why.
        why: String,
    },
    /// The snapshot, CPU sampled, and the images exported for a scan.
    Observed {
        /// The endpoint as shown.
        endpoint: String,
        /// Containers, images and engine facts.
        observed: Observed,
        /// One per image the containers use, when exports were asked for.
        exports: Vec<Export>,
        /// trivy's cache directory of the user vigil runs as (`$HOME/.cache/trivy`), named by
        /// the parent: the worker runs as another user and cannot know it.
        trivy_cache: Option<PathBuf>,
    },
}

/// One image exported for the scanner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Export {
    /// The image id (`sha256:…`).
    pub image_id: String,
    /// The `docker save` archive, or why there is none (too large, the engine failed).
    pub file: Result<PathBuf, String>,
}

/// A directory the exports are written in, held open: files are created in it by
/// descriptor (`openat`, `O_EXCL | O_NOFOLLOW`), so whoever can rename entries around it
/// cannot redirect a write.
#[derive(Debug)]
pub struct ExportDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl ExportDir {
    /// Open `path`, a directory (not a symlink).
    pub fn open(path: &Path) -> std::io::Result<ExportDir> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ExportDir { fd, path: path.to_path_buf() })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove every file in it (what earlier passes exported).
    pub fn clear(&self) {
        use rustix::fs::{AtFlags, Dir};
        let Ok(dup) = rustix::io::dup(self.fd.as_fd()) else { return };
        let Ok(mut dir) = Dir::read_from(dup) else { return };
        let mut names = Vec::new();
        while let Some(Ok(e)) = dir.read() {
            let n = e.file_name().to_owned();
            if n.as_bytes() != b"." && n.as_bytes() != b".." {
                names.push(n);
            }
        }
        for n in names {
            let _ = rustix::fs::unlinkat(self.fd.as_fd(), n.as_c_str(), AtFlags::empty());
        }
    }

    fn create(&self, name: &str) -> std::io::Result<std::fs::File> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::openat(
            self.fd.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )?;
        Ok(std::fs::File::from(fd))
    }

    fn remove(&self, name: &str) {
        let _ = rustix::fs::unlinkat(self.fd.as_fd(), name, rustix::fs::AtFlags::empty());
    }
}

/// The sampling window `[docker] cpu_sample_seconds` asks for, bounded to 0–30 s.
pub fn window(ctx: &Ctx) -> Duration {
    let s = ctx.config.docker.cpu_sample_seconds;
    Duration::from_secs_f64(if s.is_finite() { s.clamp(0.0, 30.0) } else { 0.0 })
}

/// The images the containers use, once each.
fn used_images(obs: &Observed) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for c in &obs.containers {
        if !c.image_id.is_empty() && obs.images.iter().any(|i| i.id == c.image_id) && !ids.contains(&c.image_id) {
            ids.push(c.image_id.clone());
        }
    }
    ids
}

/// The engine pass on `ctx` (its configuration names the engine): resolve, connect,
/// observe (`only`: one container), then the CPU sampling window and, when `export`, the
/// export of every image the containers use into `dir`, at once (without a `dir`, each
/// image says it could not be exported).
pub async fn run(ctx: &Ctx, only: Option<&str>, export: bool, dir: Option<&ExportDir>) -> EnginePass {
    let ep = match engine::resolve(ctx) {
        Ok(ep) => ep,
        Err(why) => return EnginePass::Unresolved { why },
    };
    let docker = match engine::connect(&ep).await {
        Ok(d) => d,
        Err(error) => return EnginePass::Unreachable { endpoint: ep.shown(), error },
    };
    let (mut obs, reads) = match engine::observe(&docker, &ep, only).await {
        Ok(x) => x,
        Err(why) => return EnginePass::Unread { endpoint: ep.shown(), why },
    };
    let limit = Duration::from_secs(ctx.config.docker.trivy_timeout_seconds.max(1));
    let targets = if export { used_images(&obs) } else { Vec::new() };
    let exporting = async {
        futures::stream::iter(targets)
            .map(|id| {
                let docker = &docker;
                async move {
                    let file = match dir {
                        Some(dir) => export_image(docker, &id, dir, EXPORT_MAX, limit).await,
                        None => Err("not checked: there is no directory to export the image into".to_string()),
                    };
                    Export { image_id: id, file }
                }
            })
            .buffer_unordered(EXPORT_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
    };
    let ((), exported) = tokio::join!(engine::sample(&docker, &mut obs, &reads, window(ctx)), exporting);
    let trivy_cache = crate::users::own_home().map(|h| Path::new(&h).join(".cache/trivy"));
    EnginePass::Observed { endpoint: ep.shown(), observed: obs, exports: exported, trivy_cache }
}

/// `GET /images/{id}/get` into a new file in `dir`, at most `cap` bytes within `limit`.
pub async fn export_image(
    docker: &Docker,
    id: &str,
    dir: &ExportDir,
    cap: u64,
    limit: Duration,
) -> Result<PathBuf, String> {
    use std::io::Write;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let hex: String = id.trim_start_matches("sha256:").chars().filter(char::is_ascii_hexdigit).take(12).collect();
    let name = format!("image-{hex}-{}.tar", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut file = dir.create(&name).map_err(|e| format!("cannot create the image archive: {e}"))?;
    let copy = async {
        let mut stream = docker.export_image(id);
        let mut total: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("exporting the image: {e}"))?;
            total += chunk.len() as u64;
            if total > cap {
                return Err(format!(
                    "not checked: the image is larger than the {} MiB export limit for scanning",
                    cap >> 20
                ));
            }
            file.write_all(&chunk).map_err(|e| format!("writing the image archive: {e}"))?;
        }
        file.flush().map_err(|e| format!("writing the image archive: {e}"))?;
        if total == 0 {
            return Err("exporting the image: the engine sent nothing".to_string());
        }
        Ok(())
    };
    let done = match tokio::time::timeout(limit, copy).await {
        Ok(r) => r,
        Err(_) => Err(format!("exporting the image: not done within {} s", limit.as_secs())),
    };
    match done {
        Ok(()) => Ok(dir.path().join(name)),
        Err(e) => {
            dir.remove(&name);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn exports_go_to_the_directory_opened_whatever_is_renamed_around_it() {
        let t = tempfile::tempdir().unwrap();
        let (dir, moved, victim) = (t.path().join("images"), t.path().join("moved"), t.path().join("victim"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(&victim).unwrap();
        let exports = ExportDir::open(&dir).unwrap();
        // Whoever owns the scratch directory swaps the export directory for a symlink elsewhere.
        std::fs::rename(&dir, &moved).unwrap();
        std::os::unix::fs::symlink(&victim, &dir).unwrap();
        exports.create("image-1.tar").unwrap().write_all(b"archive").unwrap();
        assert!(moved.join("image-1.tar").is_file());
        assert!(!victim.join("image-1.tar").exists(), "the write followed the swapped-in symlink");
        // An existing file is never overwritten, a symlink never opened as the directory.
        assert!(exports.create("image-1.tar").is_err());
        assert!(ExportDir::open(&dir).is_err());
        exports.clear();
        assert_eq!(std::fs::read_dir(&moved).unwrap().count(), 0);
    }
}
