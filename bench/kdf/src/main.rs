//! Times vigil's keyed digest (`src/fleet/digest/kdf.rs`, the very file) in a
//! release build: the fleet's parameters were chosen so one digest costs
//! 20-50 ms, and BENCHMARKS.md (section 10) records what this prints.

#[path = "../../../src/fleet/digest/kdf.rs"]
mod kdf;

use std::time::{Duration, Instant};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), String> {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50).max(1);
    let key = [0x5au8; 32];
    let mut kdf = kdf::Kdf::new(&key).map_err(|e| e.to_string())?;
    // Warm up (page in the working memory once).
    kdf.digest(b"warm-up").map_err(|e| e.to_string())?;
    let (mut times, mut cpus) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        let secret = format!("Client{i}-2024!");
        let (t, c) = (Instant::now(), thread_cpu());
        let d = kdf.digest(secret.as_bytes()).map_err(|e| e.to_string())?;
        cpus.push(thread_cpu().saturating_sub(c));
        times.push(t.elapsed());
        std::hint::black_box(d);
    }
    times.sort();
    cpus.sort();
    println!(
        "Argon2id m={} KiB t={} p={} out={} bytes, keyed (32-byte secret), {runs} digests",
        kdf::M_COST_KIB,
        kdf::T_COST,
        kdf::P_COST,
        kdf::OUT_LEN
    );
    println!("wall per digest: min {} / median {} / max {}", ms(times[0]), ms(times[runs / 2]), ms(times[runs - 1]));
    println!(
        "CPU per digest (this thread's): min {} / median {} / max {}",
        ms(cpus[0]),
        ms(cpus[runs / 2]),
        ms(cpus[runs - 1])
    );
    println!("(wall time includes waiting for a core on a busy machine; CPU time does not)");
    Ok(())
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we own; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}
