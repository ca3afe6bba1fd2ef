//! Durations as Istio writes them (`300ms`, `2s`, `1.5s`, `1h30m`, `86400s`).

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration in Istio's (Go's) notation: a sequence of decimal numbers each
/// with a unit out of `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// The duration as a `std::time::Duration`.
    pub fn get(self) -> StdDuration {
        self.0
    }

    /// Parses Go duration notation; the error says what is wrong with the text.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("empty duration; write e.g. `5s` or `300ms`".into());
        }
        if s == "0" {
            return Ok(Duration(StdDuration::ZERO));
        }
        if s.starts_with('-') {
            return Err(format!("negative duration `{text}`"));
        }
        let mut rest = s.strip_prefix('+').unwrap_or(s);
        let mut total = 0f64;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (num, tail) = rest.split_at(num_len);
            let value: f64 = num.parse().map_err(|_| {
                format!("invalid duration `{text}`: expected a number before the unit")
            })?;
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, next) = tail.split_at(unit_len);
            let scale = match unit {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "" => {
                    return Err(format!(
                        "invalid duration `{text}`: missing unit (use ns, us, ms, s, m or h)"
                    ));
                }
                other => {
                    return Err(format!(
                        "invalid duration `{text}`: unknown unit `{other}` (use ns, us, ms, s, m or h)"
                    ));
                }
            };
            total += value * scale;
            rest = next;
        }
        if !total.is_finite() || total > 1e12 {
            return Err(format!("invalid duration `{text}`: too large"));
        }
        Ok(Duration(StdDuration::from_secs_f64(total)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.as_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}ns", d.as_nanos())
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_notation() {
        let cases = [
            ("300ms", 300_000_000u128),
            ("2s", 2_000_000_000),
            ("1.5s", 1_500_000_000),
            ("1h30m", 5_400_000_000_000),
            ("86400s", 86_400_000_000_000),
            ("10us", 10_000),
            ("0", 0),
        ];
        for (text, nanos) in cases {
            assert_eq!(Duration::parse(text).unwrap().0.as_nanos(), nanos, "{text}");
        }
    }

    #[test]
    fn rejects_bad_text_with_reason() {
        for (text, reason) in [
            ("5", "missing unit"),
            ("5x", "unknown unit `x`"),
            ("-1s", "negative"),
            ("", "empty"),
            ("s", "expected a number"),
        ] {
            let err = Duration::parse(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(Duration::parse("1.5s").unwrap().to_string(), "1500ms");
        assert_eq!(Duration::parse("1m").unwrap().to_string(), "60s");
    }
}
