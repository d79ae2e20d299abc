//! What every section's validation shares (`validate.rs`, `cluster.rs`, `stack.rs`): [`Ctx`],
//! which points a rejection at the key's place in the file, and the field rules more than one
//! section uses (durations with their floors and texts, names). A leaf: it imports no section, so the sections import in
//! one direction (`validate` -> `cluster`, `stack` -> `field`).

use std::path::Path;
use std::time::Duration;

use super::duration::{Refused, at_least};
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

/// A kind of duration key: its floor, and for each refusal the message after the quoted value
/// and the hint.
pub(super) struct DurationRule {
    pub(super) min: Duration,
    pub(super) malformed: (&'static str, &'static str),
    pub(super) too_short: (&'static str, &'static str),
}

/// The stages' deadlines, e.g. `cluster.bootstrap_timeout`.
pub(super) const DEADLINE: DurationRule = DurationRule {
    min: Duration::from_secs(10),
    malformed: ("is not a duration of at least 10s", "write e.g. \"15m\""),
    too_short: ("is not a duration of at least 10s", "write e.g. \"15m\""),
};

/// `[timeouts]`: any positive duration.
pub(super) const TIMEOUT: DurationRule = DurationRule {
    min: Duration::from_nanos(1),
    malformed: ("is not a duration", "write e.g. \"90s\", \"5m\" or \"1h30m\""),
    too_short: ("is zero", "a timeout must be positive, e.g. \"90s\""),
};

/// `ttl`.
pub(super) const TTL: DurationRule = DurationRule {
    min: super::duration::MIN_TTL,
    malformed: ("is not a duration", "write e.g. \"2h\", \"45m\" or \"1d\""),
    too_short: ("is shorter than a minute", "an environment needs minutes to come up; write e.g. \"2h\""),
};

/// The one check of a duration key: `v` per `rule`, or a rejection pointing at it.
pub(super) fn duration(cx: &Ctx, v: &S<String>, key: &str, rule: &DurationRule) -> Result<Duration, ConfigError> {
    let (what, hint) = match at_least(v.get_ref(), rule.min) {
        Ok(d) => return Ok(d),
        Err(Refused::Malformed) => rule.malformed,
        Err(Refused::TooShort) => rule.too_short,
    };
    cx.err(v.span(), key, format!("{:?} {what}", v.get_ref()), hint)
}

/// An optional deadline, e.g. `cluster.bootstrap_timeout`.
pub(super) fn deadline(cx: &Ctx, v: Option<&S<String>>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    v.map_or(Ok(default), |v| duration(cx, v, key, &DEADLINE))
}

/// Valid as a project or environment name: goes into tags, IAM names and DNS names.
pub fn is_valid_name(s: &str) -> bool {
    let ok_chars = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let ends = s.chars().last().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !s.is_empty() && s.len() <= 24 && ok_chars && starts && ends && !s.contains("--")
}
