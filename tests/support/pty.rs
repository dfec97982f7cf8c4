//! A pseudo-terminal for driving `vigil chat` as a person would: the child is
//! a session leader with the pty as its controlling terminal, so `/dev/tty`
//! (the gate's confirmation prompt) and Ctrl-C (SIGINT) behave as on a real
//! terminal.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child on a pty.
pub struct Pty {
    master: File,
    child: Child,
    screen: Arc<Mutex<String>>,
    seen: usize,
}

impl Pty {
    /// Start `cmd` on a new pty (120×40).
    pub fn spawn(mut cmd: Command) -> Pty {
        let mut master: RawFd = -1;
        let mut slave: RawFd = -1;
        let ws = libc::winsize { ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty with valid out-pointers.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty failed");
        // SAFETY: dup of a valid descriptor; each File owns its own.
        let (i, o, e) = unsafe {
            (
                File::from_raw_fd(libc::dup(slave)),
                File::from_raw_fd(libc::dup(slave)),
                File::from_raw_fd(libc::dup(slave)),
            )
        };
        cmd.stdin(Stdio::from(i)).stdout(Stdio::from(o)).stderr(Stdio::from(e));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY as _, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        // SAFETY: closing our copy of the slave; the child has its own.
        unsafe { libc::close(slave) };
        // SAFETY: we own master.
        let master = unsafe { File::from_raw_fd(master) };
        let mut reader = master.try_clone().unwrap();
        let screen = Arc::new(Mutex::new(String::new()));
        let s = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return, // EIO once the child is gone
                    Ok(n) => s.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        Pty { master, child, screen, seen: 0 }
    }

    /// Everything shown so far, escape sequences removed.
    pub fn screen(&self) -> String {
        vigil::term::strip_controls(&self.screen.lock().unwrap())
    }

    /// Everything written to the terminal so far, byte for byte (lossy UTF-8).
    pub fn raw_screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Wait until `pat` appears after what earlier `expect`s consumed; panics with the screen on timeout.
    pub fn expect(&mut self, pat: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if let Some(p) = s.get(self.seen..).and_then(|rest| rest.find(pat)) {
                let upto = self.seen + p + pat.len();
                let got = s[self.seen..upto].to_string();
                self.seen = upto;
                return got;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {pat:?}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Type bytes.
    pub fn send(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Wait for the child to exit (bounded); its exit code.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("vigil chat did not exit; screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
