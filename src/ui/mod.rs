//! Everything a person or a program reads: progress on stderr, results on stdout as human
//! text or JSON. The only module that prints and the only one that knows indicatif.
//!
//! Nothing here can panic on a closed pipe (no `print!`/`eprintln!`): stdout goes through
//! [`write_stdout`], which turns a reader that went away into a quiet end of output, and
//! stderr (progress, logs, the final error) through [`write_stderr`], which ignores write
//! errors, so an `up` whose log reader closed still finishes its work.

pub mod json;
mod progress;
pub mod render;

pub use crate::hint::Line as HintLine;
pub use progress::{Mode, Progress};

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// JSON outputs carry this; it changes only with an incompatible change to their shape.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Human,
    Json,
}

/// Envelope of every JSON document on stdout.
#[derive(Serialize)]
pub struct Envelope<'a, T: Serialize> {
    pub schema_version: u32,
    pub command: &'a str,
    pub project: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub region: Option<&'a str>,
    #[serde(flatten)]
    pub data: &'a T,
}

/// Set once stdout's reader went away (EPIPE): later output is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first stdout write error other than a closed reader (a full disk, say); `main` reports
/// it once the command finished, so a failing stdout does not cut an `up` short either.
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Writes `bytes` to stdout and flushes. A closed reader (`tagstack ... | head -1`) is the
/// reader's choice, not a failure: the rest of the output is dropped and the command goes on
/// (ripgrep's convention; the exit code stays the command's own). Another write error is
/// remembered for [`stdout_error`] and also drops the rest.
pub fn write_stdout(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::SeqCst);
        if e.kind() != std::io::ErrorKind::BrokenPipe
            && let Ok(mut first) = STDOUT_ERROR.lock()
        {
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// A stdout write error that was not a closed reader, if any happened.
pub fn stdout_error() -> Option<String> {
    STDOUT_ERROR.lock().ok().and_then(|e| e.clone())
}

/// Writes to stderr, ignoring errors: progress and logs must never stop the work.
pub fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// Stderr as an `io::Write` that never fails (for the tracing subscriber, whose own error
/// report would otherwise `eprintln!` and panic on a closed stderr).
#[derive(Debug, Default, Clone, Copy)]
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

pub fn print_json<T: Serialize>(envelope: &Envelope<'_, T>) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(envelope)?;
    text.push('\n');
    write_stdout(text.as_bytes());
    Ok(())
}

pub fn print_text(text: &str) {
    write_stdout(text.as_bytes());
}

pub fn eprint_text(text: &str) {
    write_stderr(text);
}

/// Asks on the terminal; `None` when stdin is not a terminal (the caller must refuse).
pub fn confirm(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    write_stderr(&format!("{question} [y/N] "));
    let mut line = String::new();
    let ok = std::io::stdin().lock().read_line(&mut line).is_ok();
    Some(ok && matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
