//! How `ask` and `chat` show a turn: the model's text streamed on stdout,
//! tool activity on stderr (`→ list_open_ports {…}`, `✓ …`, `✗ refused: …`),
//! a spinner on stderr from the moment a request leaves until the first token
//! ("waiting for Claude…") and while read-only tools run (only on a terminal). Every
//! string from the model or a tool passes `strip_controls` first.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::agent::{Sink, ToolCall, ToolRecord};
use crate::gate::Decision;
use crate::term::{paint, strip_controls};

/// A terminal spinner on stderr, on its own thread.
struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start(label: String) -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Fast tools finish before anything flashes.
            for _ in 0..4 {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let mut i = 0;
            while !flag.load(Ordering::Relaxed) {
                eprint!("\r{} {label}", frames[i % frames.len()]);
                let _ = std::io::stderr().flush();
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        });
        Spinner { stop, thread: Some(thread) }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The console renderer.
pub struct Console {
    stream_text: bool,
    spinner_ok: bool,
    spinner: Option<Spinner>,
    mid_line: bool,
}

impl Console {
    /// Stream text to stdout when `stream_text`; spin while tools run when `spinner` and stderr is a terminal.
    pub fn new(stream_text: bool, spinner: bool) -> Console {
        Console { stream_text, spinner_ok: spinner && std::io::stderr().is_terminal(), spinner: None, mid_line: false }
    }

    /// End the current stdout line, if text left it open.
    pub fn end_line(&mut self) {
        if self.mid_line {
            println!();
            self.mid_line = false;
        }
    }

    /// Stop the spinner (after a cancelled turn).
    pub fn stop_spinner(&mut self) {
        self.spinner = None;
    }
}

/// A compact, bounded, escape-free rendering of a tool input.
pub fn show_input(v: &serde_json::Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    let mut s = strip_controls(&s);
    if s.chars().count() > 160 {
        s = s.chars().take(160).collect::<String>() + "…";
    }
    s
}

fn first_line(s: &str) -> String {
    let s = strip_controls(s);
    let line = s.lines().next().unwrap_or("").to_string();
    if line.chars().count() > 300 { line.chars().take(300).collect::<String>() + "…" } else { line }
}

/// One line saying how a tool call ended.
pub fn outcome_line(rec: &ToolRecord) -> String {
    let name = strip_controls(&rec.name);
    match (&rec.decision, &rec.error) {
        (_, None) => {
            let f = match rec.findings {
                1 => "1 finding".to_string(),
                n => format!("{n} findings"),
            };
            let confirmed = if rec.decision == Decision::Confirmed { "confirmed, " } else { "" };
            paint("32", &format!("✓ {name}: {confirmed}{} ms, {f}", rec.millis))
        }
        (Decision::Refused, Some(e)) => paint("31", &format!("✗ {name} refused: {}", first_line(e))),
        (Decision::Declined, Some(e)) => paint("31", &format!("✗ {name} declined: {}", first_line(e))),
        (_, Some(e)) => paint("31", &format!("✗ {name} failed: {}", first_line(e))),
    }
}

impl Sink for Console {
    fn waiting(&mut self) {
        if self.spinner_ok {
            self.end_line();
            self.spinner = Some(Spinner::start("waiting for Claude…".into()));
        }
    }

    fn text(&mut self, s: &str) {
        self.spinner = None;
        if !self.stream_text {
            return;
        }
        let clean = strip_controls(s);
        if clean.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(clean.as_bytes()).and_then(|_| out.flush());
        self.mid_line = !clean.ends_with('\n');
    }

    fn thinking(&mut self, _s: &str) {
        self.spinner = None;
    }

    fn retrying(&mut self, attempt: u32, delay: Duration, why: &str) {
        self.spinner = None;
        self.end_line();
        eprintln!(
            "{}",
            paint(
                "33",
                &format!("… {}; retrying in {:.1} s (attempt {})", first_line(why), delay.as_secs_f64(), attempt + 1)
            )
        );
    }

    fn batch_start(&mut self, calls: &[ToolCall]) {
        self.spinner = None;
        if self.spinner_ok {
            let names: Vec<String> = calls.iter().map(|c| strip_controls(&c.name)).collect();
            self.spinner = Some(Spinner::start(format!("running {}…", names.join(", "))));
        }
    }

    fn batch_end(&mut self) {
        self.spinner = None;
    }

    fn tool_start(&mut self, call: &ToolCall) {
        self.spinner = None;
        self.end_line();
        eprintln!("{}", paint("2", &format!("→ {} {}", strip_controls(&call.name), show_input(&call.input))));
    }

    fn tool_done(&mut self, rec: &ToolRecord) {
        self.spinner = None;
        eprintln!("{}", outcome_line(rec));
    }

    fn notice(&mut self, msg: &str) {
        self.spinner = None;
        self.end_line();
        eprintln!("{}", paint("33", &format!("vigil: {}", strip_controls(msg))));
    }
}
