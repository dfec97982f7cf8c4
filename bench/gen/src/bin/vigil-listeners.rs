//! `vigil-listeners`: holds many real listening sockets in many real processes,
//! so `list_open_ports` and `ss -tulpn` can be compared on a busy live host
//! (the benchmark's 10,000 sockets in 1,000 processes).
//!
//! Forks `--processes` children; each binds `--per-process` TCP listeners on
//! 127.0.0.1 ephemeral ports and sleeps. When every child is ready the parent
//! prints `ready PROCESSES SOCKETS` and waits for SIGTERM/SIGINT/SIGHUP, then
//! kills and reaps every child. Children die with this process and this
//! process is signalled when its own parent (the bench script) dies
//! (`PR_SET_PDEATHSIG`), so nothing outlives a killed benchmark.

use std::io::{Read, Write};

use vigil_bench::Flags;

const USAGE: &str = "usage: vigil-listeners [--processes N] [--per-process K]\n  \
holds N*K listening TCP sockets on 127.0.0.1 in N processes until SIGTERM (default 1000 x 10)";

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("vigil-listeners: {e}");
            std::process::exit(2);
        }
    }
}

fn child(per: u64, ready_fd: i32) -> ! {
    // SAFETY: plain syscalls in a freshly forked single-threaded child; no allocation.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() == 1 {
            libc::_exit(1);
        }
        let mut status = b'.';
        for _ in 0..per {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if fd < 0 {
                status = b'E';
                break;
            }
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
                sin_zero: [0; 8],
            };
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::bind(fd, (&raw const addr).cast(), len) != 0 || libc::listen(fd, 16) != 0 {
                status = b'E';
                break;
            }
        }
        libc::write(ready_fd, (&raw const status).cast(), 1);
        libc::close(ready_fd);
        loop {
            libc::pause();
        }
    }
}

fn run() -> Result<(), String> {
    let flags = Flags::parse(USAGE)?;
    flags.check_known(&["processes", "per-process"])?;
    let n = flags.num("processes", 1_000)?;
    let per = flags.num("per-process", 10)?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) into a two-element array; signal mask on this (single) thread.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
    }
    let (rfd, wfd) = (fds[0], fds[1]);
    let set = vigil_bench::block_stop_signals();
    let mut pids: Vec<libc::pid_t> = Vec::with_capacity(n as usize);
    let mut failure = None;
    for _ in 0..n {
        // SAFETY: fork in a single-threaded process; the child only makes syscalls.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            failure = Some(format!("fork: {}", std::io::Error::last_os_error()));
            break;
        }
        if pid == 0 {
            // SAFETY: closing our copy of the read end in the child.
            unsafe { libc::close(rfd) };
            child(per, wfd);
        }
        pids.push(pid);
    }
    // SAFETY: the parent's copy of the write end.
    unsafe { libc::close(wfd) };
    let mut ok = 0u64;
    let mut bad = 0u64;
    let mut buf = [0u8; 4096];
    // SAFETY: rfd is our open read end; File takes ownership and closes it.
    let mut reader = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(rfd) };
    while ok + bad < pids.len() as u64 {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                for b in &buf[..k] {
                    if *b == b'.' { ok += 1 } else { bad += 1 }
                }
            }
        }
    }
    if failure.is_none() && bad > 0 {
        failure = Some(format!("{bad} processes could not open their sockets (ulimit -n? ephemeral ports?)"));
    }
    if failure.is_none() {
        println!("ready {} {}", pids.len(), ok * per);
        let _ = std::io::stdout().flush();
        vigil_bench::wait_for_stop(&set);
    }
    for pid in &pids {
        // SAFETY: killing and reaping our own children.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    for pid in &pids {
        // SAFETY: as above.
        unsafe { libc::waitpid(*pid, std::ptr::null_mut(), 0) };
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
