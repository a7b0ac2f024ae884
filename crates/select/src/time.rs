//! Status timestamps.
//!
//! routerd writes status times with Go's `RFC3339Nano` layout, which drops
//! trailing zeros of the fraction (`…:05Z`, `…:05.5Z`). Consumers compare
//! these strings for churn, so the format has to match exactly.

use chrono::{DateTime, SecondsFormat, Utc};
use routerd_model::GoDuration;

/// Formats `t` the way Go's `time.RFC3339Nano` does for UTC.
pub fn format_rfc3339_nano(t: DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // `…:05.120000000Z` → `…:05.12Z`, `…:05.000000000Z` → `…:05Z`.
    match s.rsplit_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{digits}Z")
            }
        }
        None => s,
    }
}

/// Parses an RFC 3339 timestamp (any offset) into UTC.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `t + d`, saturating instead of overflowing on absurd inputs.
pub fn add(t: DateTime<Utc>, d: GoDuration) -> DateTime<Utc> {
    t.checked_add_signed(d.to_chrono()).unwrap_or(t)
}

/// `t - d`, saturating.
pub fn sub(t: DateTime<Utc>, d: GoDuration) -> DateTime<Utc> {
    t.checked_sub_signed(d.to_chrono()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        let t = parse_rfc3339("2026-11-21T09:00:05Z").unwrap();
        assert_eq!(format_rfc3339_nano(t), "2026-11-21T09:00:05Z");
        let t = parse_rfc3339("2026-11-21T09:00:05.500Z").unwrap();
        assert_eq!(format_rfc3339_nano(t), "2026-11-21T09:00:05.5Z");
        let t = parse_rfc3339("2026-11-21T18:00:05.000000123+09:00").unwrap();
        assert_eq!(format_rfc3339_nano(t), "2026-11-21T09:00:05.000000123Z");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
