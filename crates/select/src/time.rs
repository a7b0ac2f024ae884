//! Status timestamps.
//!
//! routerd writes status times with Go's `RFC3339Nano` layout, which drops
//! trailing zeros of the fraction (`…:05Z`, `…:05.5Z`). Consumers compare
//! these strings for churn, so the format has to match exactly.

use chrono::{DateTime, SecondsFormat, Utc};
use routerd_model::GoDuration;

/// Formats `t` the way Go's `time.RFC3339Nano` does for UTC.
///
/// Written digit by digit: every candidate that turns ready stamps a
/// `readySince`, and going through `chrono`'s formatter plus a second
/// `format!` to trim the fraction cost more than the rest of its status
/// update. Years outside 0..=9999 and leap seconds take the general path.
pub fn format_rfc3339_nano(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (t.year(), t.nanosecond());
    let Ok(year) = u32::try_from(year) else {
        return format_general(t);
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return format_general(t);
    }
    let mut out = String::with_capacity(30);
    push_digits(&mut out, year, 4);
    for (sep, n) in [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ] {
        out.push(sep);
        push_digits(&mut out, n, 2);
    }
    if nanos > 0 {
        let (mut frac, mut width) = (nanos, 9);
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        out.push('.');
        push_digits(&mut out, frac, width);
    }
    out.push('Z');
    out
}

/// Appends the last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for k in (0..width).rev() {
        let d = n / 10u32.pow(k) % 10;
        out.push(char::from_digit(d, 10).unwrap_or('0'));
    }
}

fn format_general(t: DateTime<Utc>) -> String {
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
    fn fast_path_matches_the_general_one() {
        let base = parse_rfc3339("2026-05-29T12:00:00Z").unwrap();
        let mut ns: i64 = 1;
        for i in 0..400i64 {
            ns = (ns * 7919 + i * 104_729) % 1_000_000_000;
            for t in [
                base + chrono::TimeDelta::nanoseconds(ns),
                base + chrono::TimeDelta::milliseconds(i * 250),
                base + chrono::TimeDelta::seconds(i * 86_399 * 37),
                base - chrono::TimeDelta::seconds(i * 86_400 * 1_000),
            ] {
                assert_eq!(format_rfc3339_nano(t), format_general(t), "{t:?}");
            }
        }
        let far = parse_rfc3339("0001-01-01T00:00:00.1Z").unwrap();
        assert_eq!(format_rfc3339_nano(far), "0001-01-01T00:00:00.1Z");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
