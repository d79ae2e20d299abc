//! Everything a person or a program reads: progress on stderr, results on stdout as human
//! text or JSON. The only module that prints and the only one that knows indicatif.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod progress;
pub mod render;

pub use progress::{Mode, Progress};

use std::io::{BufRead, IsTerminal, Write};

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

pub fn print_json<T: Serialize>(envelope: &Envelope<'_, T>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(envelope)?;
    println!("{text}");
    Ok(())
}

pub fn print_text(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

pub fn eprint_text(text: &str) {
    eprint!("{text}");
}

/// Asks on the terminal; `None` when stdin is not a terminal (the caller must refuse).
pub fn confirm(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let ok = std::io::stdin().lock().read_line(&mut line).is_ok();
    Some(ok && matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
