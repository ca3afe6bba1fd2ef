//! Compiled string matches: exact, prefix, whole-value RE2 regex, or presence.

use regex::Regex;
use serde::{Serialize, Serializer};

use crate::istio::StringMatch;

/// A compiled [`StringMatch`].
#[derive(Clone, Debug)]
pub enum StrMatch {
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// The whole value matches (anchored at compile time, as Istio's RE2 matching is).
    Regex(Regex),
    /// Any value, as long as it is present.
    Present,
}

impl StrMatch {
    /// Compiles a match; `ignore_case` lowercases exact and prefix values
    /// and makes the regex case-insensitive. Regexes were validated at load time.
    pub fn compile(m: &StringMatch, ignore_case: bool) -> StrMatch {
        let fold = |s: &String| {
            if ignore_case {
                s.to_lowercase()
            } else {
                s.clone()
            }
        };
        if let Some(e) = &m.exact {
            StrMatch::Exact(fold(e))
        } else if let Some(p) = &m.prefix {
            StrMatch::Prefix(fold(p))
        } else if let Some(r) = &m.regex {
            let flags = if ignore_case { "(?i)" } else { "" };
            let anchored = format!("{flags}^(?:{r})$");
            Regex::new(&anchored).map_or(StrMatch::Present, StrMatch::Regex)
        } else {
            StrMatch::Present
        }
    }

    /// True when `value` matches. For case-insensitive exact/prefix matches
    /// the caller passes a lowercased value.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StrMatch::Exact(e) => value == e,
            StrMatch::Prefix(p) => value.starts_with(p.as_str()),
            StrMatch::Regex(r) => r.is_match(value),
            StrMatch::Present => true,
        }
    }
}

impl Serialize for StrMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StrMatch::Exact(v) => s.collect_str(&format_args!("exact:{v}")),
            StrMatch::Prefix(v) => s.collect_str(&format_args!("prefix:{v}")),
            StrMatch::Regex(r) => s.collect_str(&format_args!("regex:{}", r.as_str())),
            StrMatch::Present => s.serialize_str("present"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
        StringMatch {
            exact: exact.map(Into::into),
            prefix: prefix.map(Into::into),
            regex: regex.map(Into::into),
        }
    }

    #[test]
    fn table() {
        let cases = [
            (m(Some("internal"), None, None), false, "internal", true),
            (m(Some("internal"), None, None), false, "internal2", false),
            (m(None, Some("/api"), None), false, "/api/v1", true),
            (m(None, Some("/api"), None), false, "/ap", false),
            (m(None, None, Some(".*0")), false, "user10", true),
            (m(None, None, Some("abc")), false, "xabcx", false),
            (m(None, None, Some("Firefox")), true, "firefox", true),
            (m(None, None, None), false, "anything", true),
        ];
        for (spec, ignore_case, value, expected) in cases {
            assert_eq!(
                StrMatch::compile(&spec, ignore_case).matches(value),
                expected,
                "{spec:?} on {value}"
            );
        }
    }
}
