//! Timestamp text.
//!
//! routerd writes `lastCheckedAt` and friends with Go's `time.RFC3339Nano`,
//! which trims trailing zeros of the fraction (and the dot when nothing is
//! left). Selection parses these strings and operators diff them, so we print
//! exactly that shape; chrono's own formats pad to 3, 6 or 9 digits.

use chrono::{DateTime, Timelike, Utc};

/// Formats `t` like Go's `t.UTC().Format(time.RFC3339Nano)`.
pub fn rfc3339_nano(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos == 0 {
        return base + "Z";
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn trims_like_go() {
        let t = Utc.with_ymd_and_hms(2026, 5, 8, 1, 2, 3).unwrap();
        assert_eq!(rfc3339_nano(t), "2026-05-08T01:02:03Z");
        let t2 = t + chrono::TimeDelta::milliseconds(120);
        assert_eq!(rfc3339_nano(t2), "2026-05-08T01:02:03.12Z");
        let t3 = t + chrono::TimeDelta::nanoseconds(7);
        assert_eq!(rfc3339_nano(t3), "2026-05-08T01:02:03.000000007Z");
        // Round-trips through chrono's RFC 3339 parser, which selection uses.
        let back = DateTime::parse_from_rfc3339(&rfc3339_nano(t3)).unwrap();
        assert_eq!(back.with_timezone(&Utc), t3);
    }
}
