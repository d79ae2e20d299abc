//! Environment expiry (`tagstack:expires-at`): which value the resources should carry, and
//! how much time is left. Pure: the caller passes "now".

use std::time::{Duration, SystemTime};

use super::observed::ExpirySeen;

pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// The expiry resources should carry after this run.
/// - `up --ttl X` (`flag`) sets now + X on everything: the explicit way to extend;
/// - otherwise an existing expiry is kept as it is (a converged `up` changes nothing);
/// - otherwise the config's `ttl` starts counting now (a new environment, or one that had none).
pub fn resolve(flag: Option<Duration>, config: Option<Duration>, seen: &ExpirySeen, now: SystemTime) -> Option<String> {
    if let Some(ttl) = flag {
        return Some(format(now + ttl));
    }
    if let Some(existing) = seen.earliest() {
        return Some(existing.to_string());
    }
    config.map(|ttl| format(now + ttl))
}

/// "1h12m left" or "expired 5m ago"; `None` for an unparsable value.
pub fn time_left(expires_at: &str, now: SystemTime) -> Option<String> {
    let at = parse(expires_at)?;
    Some(match at.duration_since(now) {
        Ok(left) => format!("{} left", crate::config::format_duration(Duration::from_secs(left.as_secs()))),
        Err(e) => {
            format!("expired {} ago", crate::config::format_duration(Duration::from_secs(e.duration().as_secs())))
        }
    })
}

pub fn is_expired(expires_at: &str, now: SystemTime) -> Option<bool> {
    parse(expires_at).map(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        parse(s).unwrap()
    }

    #[test]
    fn flag_extends_config_starts_existing_is_kept() {
        let now = at("2026-11-22T10:00:00Z");
        let none = ExpirySeen::default();
        let mut seen = ExpirySeen::default();
        seen.record(Some("2026-11-22T12:00:00Z"));
        seen.record(Some("2026-11-22T11:00:00Z"));
        let h2 = Some(Duration::from_secs(7200));
        assert_eq!(resolve(h2, None, &seen, now).as_deref(), Some("2026-11-22T12:00:00Z"));
        assert_eq!(resolve(None, h2, &seen, now).as_deref(), Some("2026-11-22T11:00:00Z"), "earliest kept");
        assert_eq!(resolve(None, h2, &none, now).as_deref(), Some("2026-11-22T12:00:00Z"));
        assert_eq!(resolve(None, None, &none, now), None);
    }

    #[test]
    fn time_left_both_ways() {
        let now = at("2026-11-22T10:00:00Z");
        assert_eq!(time_left("2026-11-22T11:12:00Z", now).as_deref(), Some("1h12m left"));
        assert_eq!(time_left("2026-11-22T09:55:00Z", now).as_deref(), Some("expired 5m ago"));
        assert_eq!(time_left("yesterday", now), None);
        assert_eq!(is_expired("2026-11-22T10:00:00Z", now), Some(true));
        assert_eq!(is_expired("2026-11-22T10:00:01Z", now), Some(false));
    }
}
