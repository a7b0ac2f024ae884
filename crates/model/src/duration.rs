//! Go-compatible durations.
//!
//! routerd's YAML and status use Go's duration syntax (`30s`, `1m0s`, `250ms`)
//! and status values print it back the Go way (`hysteresis: 1m0s`). Users'
//! files and tooling depend on both directions, and no Rust crate writes Go's
//! format, so the few lines live here.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A signed duration in nanoseconds, parsed from and printed as Go text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub i64);

/// Why a duration string did not parse; the text mirrors Go's
/// `time: invalid duration "x"` so messages match routerd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: {kind} duration \"{input}\"")]
pub struct DurationError {
    kind: &'static str,
    input: String,
}

const NS: i64 = 1;
const US: i64 = 1_000;
const MS: i64 = 1_000_000;
const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;

impl GoDuration {
    /// Zero.
    pub const ZERO: GoDuration = GoDuration(0);

    /// From whole seconds.
    pub const fn from_secs(s: i64) -> Self {
        GoDuration(s.saturating_mul(S))
    }

    /// From whole milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        GoDuration(ms.saturating_mul(MS))
    }

    /// Nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Whether the duration is strictly positive.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// The duration as a std `Duration` (negative values clamp to zero).
    pub fn to_std(self) -> Duration {
        Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }

    /// The duration as a chrono `TimeDelta`.
    pub fn to_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::nanoseconds(self.0)
    }

    /// Parses Go duration syntax: a sequence of decimal numbers with units
    /// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, optionally signed; `0` alone.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let invalid = |kind| DurationError {
            kind,
            input: input.to_string(),
        };
        let mut s = input;
        let mut neg = false;
        if let Some(r) = s.strip_prefix('-') {
            neg = true;
            s = r;
        } else if let Some(r) = s.strip_prefix('+') {
            s = r;
        }
        if s == "0" {
            return Ok(GoDuration(0));
        }
        if s.is_empty() {
            return Err(invalid("invalid"));
        }
        let mut total: i128 = 0;
        while !s.is_empty() {
            let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (int_part, rest) = s.split_at(int_end);
            let (frac_part, rest) = match rest.strip_prefix('.') {
                Some(r) => {
                    let e = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                    r.split_at(e)
                }
                None => ("", rest),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid("invalid"));
            }
            let unit_end = rest
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (unit, rest) = rest.split_at(unit_end);
            let scale: i64 = match unit {
                "ns" => NS,
                "us" | "µs" | "μs" => US,
                "ms" => MS,
                "s" => S,
                "m" => M,
                "h" => H,
                "" => return Err(invalid("missing unit in")),
                _ => return Err(invalid("unknown unit in")),
            };
            let whole: i128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse::<i128>().map_err(|_| invalid("invalid"))?
            };
            // Checked: a 39-digit number of hours overflows even i128.
            let mut v = whole
                .checked_mul(i128::from(scale))
                .ok_or_else(|| invalid("invalid"))?;
            if !frac_part.is_empty() {
                let digits = frac_part.len().min(18);
                let frac: i128 = frac_part[..digits]
                    .parse()
                    .map_err(|_| invalid("invalid"))?;
                v = v
                    .checked_add(frac * i128::from(scale) / 10i128.pow(digits as u32))
                    .ok_or_else(|| invalid("invalid"))?;
            }
            total = total.checked_add(v).ok_or_else(|| invalid("invalid"))?;
            if total > i128::from(i64::MAX) {
                return Err(invalid("invalid"));
            }
            s = rest;
        }
        let total = i64::try_from(total).map_err(|_| invalid("invalid"))?;
        Ok(GoDuration(if neg { -total } else { total }))
    }
}

impl fmt::Display for GoDuration {
    /// Prints like Go's `Duration.String`: `0s`, `1.5s`, `1m0s`, `250ms`, `2h3m4s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let mut u = self.0.unsigned_abs();
        let sign = if neg { "-" } else { "" };
        if u == 0 {
            return f.write_str("0s");
        }
        if u < S as u64 {
            let (unit, scale) = if u < US as u64 {
                ("ns", 1u64)
            } else if u < MS as u64 {
                ("µs", US as u64)
            } else {
                ("ms", MS as u64)
            };
            return write!(f, "{sign}{}{unit}", frac(u, scale));
        }
        let h = u / H as u64;
        u -= h * H as u64;
        let m = u / M as u64;
        u -= m * M as u64;
        let secs = frac(u, S as u64);
        if h > 0 {
            write!(f, "{sign}{h}h{m}m{secs}s")
        } else if m > 0 {
            write!(f, "{sign}{m}m{secs}s")
        } else {
            write!(f, "{sign}{secs}s")
        }
    }
}

/// `v / scale` as a decimal without trailing zeros.
fn frac(v: u64, scale: u64) -> String {
    let whole = v / scale;
    let rem = v % scale;
    if rem == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for GoDuration {
    fn serialize<S2: Serializer>(&self, s: S2) -> Result<S2::Ok, S2::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        assert_eq!(GoDuration::parse("30s").unwrap(), GoDuration::from_secs(30));
        assert_eq!(
            GoDuration::parse("1m30s").unwrap(),
            GoDuration::from_secs(90)
        );
        assert_eq!(
            GoDuration::parse("100ms").unwrap(),
            GoDuration::from_millis(100)
        );
        assert_eq!(
            GoDuration::parse("1.5h").unwrap(),
            GoDuration::from_secs(5400)
        );
        assert_eq!(GoDuration::parse("0").unwrap(), GoDuration::ZERO);
        assert_eq!(GoDuration::parse("-2s").unwrap(), GoDuration::from_secs(-2));
        assert_eq!(GoDuration::parse("10us").unwrap(), GoDuration(10_000));
    }

    #[test]
    fn rejects_like_go() {
        assert_eq!(
            GoDuration::parse("abc").unwrap_err().to_string(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            GoDuration::parse("10").unwrap_err().to_string(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            GoDuration::parse("10x").unwrap_err().to_string(),
            "time: unknown unit in duration \"10x\""
        );
        assert!(GoDuration::parse("").is_err());
        assert!(GoDuration::parse(".s").is_err());
        // Overflow is an error, never a panic.
        assert_eq!(
            GoDuration::parse("999999999999999999999999999999999999999h")
                .unwrap_err()
                .to_string(),
            "time: invalid duration \"999999999999999999999999999999999999999h\""
        );
        assert!(GoDuration::parse("9223372036854775807ns1ns").is_err());
    }

    #[test]
    fn prints_like_go() {
        assert_eq!(GoDuration::from_secs(30).to_string(), "30s");
        assert_eq!(GoDuration::from_secs(60).to_string(), "1m0s");
        assert_eq!(GoDuration::from_secs(3723).to_string(), "1h2m3s");
        assert_eq!(GoDuration::from_millis(1500).to_string(), "1.5s");
        assert_eq!(GoDuration::from_millis(250).to_string(), "250ms");
        assert_eq!(GoDuration::ZERO.to_string(), "0s");
        assert_eq!(GoDuration(1500).to_string(), "1.5µs");
    }

    proptest::proptest! {
        #[test]
        fn display_parses_back(n in -10_000_000_000_000i64..10_000_000_000_000i64) {
            let d = GoDuration(n);
            proptest::prop_assert_eq!(GoDuration::parse(&d.to_string()).unwrap(), d);
        }
    }
}
