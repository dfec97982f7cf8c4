//! The `vigil` binary: parse the command line, run it, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One malloc arena for every thread, set before any thread exists: what one thread frees
    // (the socket walk's buffers, a worker line once parsed) is what the next one allocates,
    // instead of each thread faulting in pages of an arena of its own.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; no allocation is under way.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let cli = vigil::cli::Cli::parse();
    vigil::term::init_color(cli.global.no_color);
    init_tracing(cli.global.verbose);
    // The worker confines itself before any runtime thread exists.
    if let Some(vigil::cli::Command::Worker(w)) = &cli.command {
        return vigil::worker::child::main(w.scratch.clone());
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil: error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(vigil::cmd::run(cli));
    // Everything is written by now: a tool thread stuck in the kernel or a prompt still
    // waiting on stdin must not keep vigil alive, so the runtime does not wait for them.
    rt.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("vigil: error: {}", vigil::term::strip_controls(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("vigil={level},vigil_tools={level}")));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `-vv`: each line says when, since the process started (where a command's time goes).
    let _ = if verbose >= 2 {
        fmt.with_timer(tracing_subscriber::fmt::time::uptime()).try_init()
    } else {
        fmt.without_time().try_init()
    };
}
