//! `vigil-confine`: what confining vigil's worker costs at start-up, alone.
//!
//! `vigil-confine` starts and exits; `vigil-confine --confine SCRATCH` starts,
//! confines itself exactly as the worker does (`vigil_tools::sandbox::confine`
//! with the worker's policy: non-root user, Landlock, seccomp, an empty network
//! namespace) and exits. Timed back to back by `bench/run`, the difference is
//! the confinement's own start-up cost (`--confine-keep-network`: without the
//! network namespace, to tell its share); `--status` also prints the one-line
//! status and how long `confine` itself took, for the report.

use std::path::PathBuf;
use std::process::ExitCode;

use vigil_tools::sandbox::{Policy, confine};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (show, network) = match args.first().map(String::as_str) {
        None => return ExitCode::SUCCESS,
        Some("--confine") => (false, false),
        Some("--confine-keep-network") => (false, true),
        Some("--status") => (true, false),
        Some(_) => {
            eprintln!("usage: vigil-confine [--confine|--confine-keep-network|--status SCRATCH_DIR]");
            return ExitCode::from(2);
        }
    };
    let scratch = args.get(1).map(PathBuf::from);
    let mut policy = Policy::worker(scratch);
    policy.no_network = !network;
    let started = std::time::Instant::now();
    let confined = confine(&policy);
    let took = started.elapsed();
    match confined {
        Ok(status) if status.enforced() => {
            if show {
                println!("{status}\n{} us", took.as_micros());
            }
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("vigil-confine: {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vigil-confine: {e}");
            ExitCode::FAILURE
        }
    }
}
