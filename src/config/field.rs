//! What every section's validation shares (`validate.rs`, `cluster.rs`, `stack.rs`): [`Ctx`],
//! which points a rejection at the key's place in the file, and the field rules more than one
//! section uses (deadlines, names). A leaf: it imports no section, so the sections import in
//! one direction (`validate` -> `cluster`, `stack` -> `field`).

use std::path::Path;
use std::time::Duration;

use super::duration::parse_duration;
use super::error::ConfigError;
use super::raw::S;

/// The file being validated: where a rejection points.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    source: &'a str,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(file: &'a Path, source: &'a str) -> Ctx<'a> {
        Ctx { file, source }
    }

    pub(super) fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        msg: String,
        hint: &str,
    ) -> Result<T, ConfigError> {
        let e = ConfigError::new(self.file, msg).key(key).hint(hint);
        // An empty span is a default that is not written in the file: it has no place.
        Err(if span.is_empty() { e } else { e.at(self.source, span) })
    }
}

/// An optional deadline of at least ten seconds, e.g. `cluster.bootstrap_timeout`.
pub(super) fn deadline(cx: &Ctx, v: Option<&S<String>>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    let Some(t) = v else { return Ok(default) };
    match parse_duration(t.get_ref()) {
        Some(d) if d >= Duration::from_secs(10) => Ok(d),
        _ => {
            cx.err(t.span(), key, format!("{:?} is not a duration of at least 10s", t.get_ref()), "write e.g. \"15m\"")
        }
    }
}

/// Valid as a project or environment name: goes into tags, IAM names and DNS names.
pub fn is_valid_name(s: &str) -> bool {
    let ok_chars = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let ends = s.chars().last().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !s.is_empty() && s.len() <= 24 && ok_chars && starts && ends && !s.contains("--")
}
