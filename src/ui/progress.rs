//! The terminal side of [`Reporter`]: one spinner line per step in flight with its elapsed
//! time (indicatif, when stderr is a terminal), plain timestamped lines otherwise, or nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::reporter::Reporter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spinners on a terminal.
    Bars,
    /// One line per event on stderr, for CI logs.
    Lines,
    /// Errors only.
    Quiet,
    /// One JSON object per event on stderr (NDJSON), with per-step timings, for CI logs.
    Events,
}

pub struct Progress {
    mode: Mode,
    started: Instant,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, Instant)>>,
}

impl Progress {
    pub fn new(mode: Mode) -> Self {
        let multi = MultiProgress::with_draw_target(if mode == Mode::Bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Self { mode, started: Instant::now(), multi, bars: Mutex::new(HashMap::new()) }
    }

    /// `{"t":1.234,"event":"finish","key":"vpc","message":"...","elapsed_ms":412}`
    fn event(&self, event: &str, key: &str, message: &str, elapsed: Option<Duration>) {
        let mut obj = serde_json::json!({
            "t": (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "event": event,
            "key": key,
            "message": message,
        });
        if let (Some(d), Some(map)) = (elapsed, obj.as_object_mut()) {
            map.insert("elapsed_ms".into(), serde_json::Value::from(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
        }
        super::write_stderr(&format!("{obj}\n"));
    }

    fn line(&self, sigil: &str, key: &str, message: &str) {
        let t = self.started.elapsed().as_secs_f64();
        super::write_stderr(&format!("[{t:6.1}s] {sigil} {key}: {message}\n"));
    }

    fn end(&self, key: &str, sigil: &str, message: &str) {
        let entry = self.bars.lock().ok().and_then(|mut b| b.remove(key));
        match self.mode {
            Mode::Bars => {
                let took = entry.as_ref().map_or(Duration::ZERO, |(_, t)| t.elapsed());
                let text = format!("{sigil} {key}: {message} ({:.1}s)", took.as_secs_f64());
                match entry {
                    Some((bar, _)) => {
                        bar.set_style(
                            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.finish_with_message(text);
                    }
                    None => {
                        let _ = self.multi.println(text);
                    }
                }
            }
            Mode::Lines => self.line(sigil, key, message),
            Mode::Events => {
                let took = entry.map(|(_, t)| t.elapsed());
                self.event(if sigil == "ok" { "finish" } else { "fail" }, key, message, took);
            }
            Mode::Quiet => {}
        }
    }
}

impl Reporter for Progress {
    fn start(&self, key: &str, message: &str) {
        match self.mode {
            Mode::Bars => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                let style = ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_prefix(key.to_string());
                bar.set_message(message.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut b) = self.bars.lock()
                    && let Some((old, _)) = b.insert(key.to_string(), (bar, Instant::now()))
                {
                    old.finish_and_clear();
                }
            }
            Mode::Lines => self.line("..", key, message),
            Mode::Events => {
                if let Ok(mut b) = self.bars.lock() {
                    b.insert(key.to_string(), (ProgressBar::hidden(), Instant::now()));
                }
                self.event("start", key, message, None);
            }
            Mode::Quiet => {}
        }
    }

    fn update(&self, key: &str, message: &str) {
        match self.mode {
            Mode::Bars => {
                if let Some((bar, _)) = self.bars.lock().ok().as_ref().and_then(|b| b.get(key)) {
                    bar.set_message(message.to_string());
                }
            }
            Mode::Lines => self.line("..", key, message),
            Mode::Events => self.event("update", key, message, None),
            Mode::Quiet => {}
        }
    }

    fn finish(&self, key: &str, message: &str) {
        self.end(key, "ok", message);
    }

    fn fail(&self, key: &str, message: &str) {
        let mode = self.mode;
        self.end(key, "!!", message);
        if mode == Mode::Quiet {
            self.line("!!", key, message);
        }
    }

    fn note(&self, message: &str) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(format!("note: {message}"));
            }
            Mode::Events => self.event("note", "", message, None),
            Mode::Lines | Mode::Quiet => super::write_stderr(&format!("note: {message}\n")),
        }
    }
}
