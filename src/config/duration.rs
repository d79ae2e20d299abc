//! Human durations in config and flags: `90s`, `5m`, `2h`, `1h30m`, `1d`, and the one check
//! every duration key and flag goes through ([`at_least`]: parses, then meets its floor).

use std::time::Duration;

/// The shortest TTL (config `ttl`, `--ttl`): an environment needs minutes to come up.
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// Why a duration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    /// It parses but is shorter than the floor.
    TooShort,
}

/// `s` as a duration of at least `min`.
pub fn at_least(s: &str, min: Duration) -> Result<Duration, Refused> {
    match parse_duration(s) {
        Some(d) if d >= min => Ok(d),
        Some(_) => Err(Refused::TooShort),
        None => Err(Refused::Malformed),
    }
}

/// Parses a sequence of `<number><unit>` with units d, h, m, s, ms. `None` if malformed.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = rest.get(..unit_len)?;
        rest = rest.get(unit_len..)?;
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// `1h2m3s`-style rendering, for messages.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration("m5"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn a_floor_refuses_what_is_shorter_and_tells_it_from_garbage() {
        assert_eq!(at_least("2h", MIN_TTL), Ok(Duration::from_secs(7200)));
        assert_eq!(at_least("60s", MIN_TTL), Ok(MIN_TTL));
        assert_eq!(at_least("59s", MIN_TTL), Err(Refused::TooShort));
        assert_eq!(at_least("soon", MIN_TTL), Err(Refused::Malformed));
        assert_eq!(at_least("0s", Duration::from_nanos(1)), Err(Refused::TooShort));
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(61)), "1m1s");
        assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
    }
}
