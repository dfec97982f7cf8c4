//! The per-host lock: one vigil run at a time reads and rewrites a host's state.
//!
//! Acknowledgements, the review history and the run records are
//! read-modify-write files; a manual review, the scheduled one and a fleet run
//! over the same host must never interleave, or one silently drops what the
//! other wrote. The lock is an `flock` on `HOST_DIR/lock` (released by the
//! kernel when the process ends, however it ends), holding the owner's pid for
//! the message the next run shows while it waits.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Held while a run reads and rewrites a host's state; dropping it releases the lock.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

fn try_lock(f: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(e) }
}

impl HostLock {
    /// Take the lock of `host_dir`, waiting up to `wait` for another run to finish.
    pub async fn acquire(host_dir: &Path, wait: Duration) -> Result<HostLock> {
        let path = host_dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("cannot open the lock {}", path.display()))?;
        let until = Instant::now() + wait;
        let mut told = false;
        while !try_lock(&file).with_context(|| format!("cannot lock {}", path.display()))? {
            let mut holder = String::new();
            let _ = file.seek(SeekFrom::Start(0)).and_then(|_| (&file).take(32).read_to_string(&mut holder));
            let holder = holder.trim().parse::<u32>().map(|p| format!(" (pid {p})")).unwrap_or_default();
            if Instant::now() >= until {
                bail!(
                    "another vigil run{holder} is still working on this host after {} s ({} is locked); try again when it has finished",
                    wait.as_secs(),
                    path.display()
                );
            }
            if !told {
                eprintln!("vigil: waiting for another vigil run{holder} on this host to finish…");
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        Ok(HostLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_run_waits_then_gives_up_naming_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let held = HostLock::acquire(d.path(), Duration::from_secs(1)).await.unwrap();
        let started = Instant::now();
        let e = HostLock::acquire(d.path(), Duration::from_millis(500)).await.unwrap_err().to_string();
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(e.contains(&format!("(pid {})", std::process::id())), "{e}");
        // Released on drop: the next run gets it at once.
        drop(held);
        let again = HostLock::acquire(d.path(), Duration::from_millis(100)).await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn a_waiting_run_proceeds_when_the_holder_finishes() {
        let d = tempfile::tempdir().unwrap();
        let held = HostLock::acquire(d.path(), Duration::from_secs(1)).await.unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let started = Instant::now();
        HostLock::acquire(d.path(), Duration::from_secs(5)).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
        release.await.unwrap();
    }
}
