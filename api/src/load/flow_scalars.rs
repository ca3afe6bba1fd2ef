//! Plain scalars in flow collections as kubectl reads them.
//!
//! Inside `[...]` and `{...}`, YAML 1.2 ends a plain scalar at a `:` that is
//! followed by `,`, `]`, `}` (or `[`, `{`, `?`), and libyaml, under
//! serde_norway, rejects such a scalar ("found unexpected ':'"). kubectl's
//! YAML reader (go-yaml) ends it only at `: ` or at the flow indicator, so
//! `addresses: [1.2.3.4, 2001:db8::]` is two strings to it. The loader asks
//! [`quote_at`] to single-quote exactly the scalar libyaml rejected, then
//! parses again: text libyaml accepts is never changed.

/// The message libyaml gives for such a scalar.
const UNEXPECTED_COLON: &str = "found unexpected ':'";

/// Where (1-based line and column, as serde_norway reports them) libyaml
/// rejected a plain scalar for a `:` before a flow indicator, if that is the error.
pub(super) fn rejected_colon(e: &serde_norway::Error) -> Option<(usize, usize)> {
    let message = e.to_string();
    if !(message.contains(UNEXPECTED_COLON) && message.contains("while scanning a plain scalar")) {
        return None;
    }
    e.location().map(|l| (l.line(), l.column()))
}

/// `text` with the plain scalar around the `:` at `line`:`column` (1-based,
/// in characters), which a flow indicator follows, single-quoted, the scalar going, as in go-yaml, from the
/// last flow indicator (or `: `) before it to the next `,`, `]`, `}`, `[`,
/// `{`, `: ` or ` #` after it. `None` when there is no such `:` there.
pub(super) fn quote_at(text: &str, line: usize, column: usize) -> Option<String> {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let row = &text[line_start..line_end];
    let colon = line_start + row.char_indices().nth(column.checked_sub(1)?)?.0;
    let next = text.as_bytes().get(colon + 1).copied().unwrap_or_default();
    if text.as_bytes()[colon] != b':' || !b",]}[{?".contains(&next) {
        return None;
    }
    let before = &text[line_start..colon];
    let start = line_start
        + before
            .char_indices()
            .rev()
            .find(|&(i, c)| {
                matches!(c, '[' | '{' | ',') || (c.is_whitespace() && before[..i].ends_with(':'))
            })
            .map_or(0, |(i, c)| i + c.len_utf8());
    let after = &text[colon..line_end];
    let bytes = after.as_bytes();
    let end = colon
        + (1..after.len())
            .find(|&i| {
                let b = bytes[i];
                matches!(b, b',' | b']' | b'}' | b'[' | b'{')
                    || (b == b':' && bytes.get(i + 1).is_none_or(u8::is_ascii_whitespace))
                    || (b == b'#' && bytes[i - 1].is_ascii_whitespace())
            })
            .unwrap_or(after.len());
    let scalar = text[start..end].trim();
    if scalar.is_empty() || scalar.starts_with(['\'', '"']) {
        return None;
    }
    let offset = start + text[start..end].find(scalar)?;
    let quoted = format!("'{}'", scalar.replace('\'', "''"));
    Some(format!(
        "{}{quoted}{}",
        &text[..offset],
        &text[offset + scalar.len()..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(text: &str) -> Option<(usize, usize)> {
        serde_norway::from_str::<serde_norway::Value>(text)
            .err()
            .and_then(|e| rejected_colon(&e))
    }

    #[test]
    fn quotes_what_libyaml_rejects_and_go_yaml_reads_as_one_scalar() {
        let cases = [
            (
                "addresses: [1.2.3.4, 2001:db8::]\n",
                "addresses: [1.2.3.4, '2001:db8::']\n",
            ),
            (
                "addresses: [2001:db8::, ::]\n",
                "addresses: ['2001:db8::', ::]\n",
            ),
            ("a: {b: fe80::}\n", "a: {b: 'fe80::'}\n"),
            ("a:\n  - [x, it's::]\n", "a:\n  - [x, 'it''s::']\n"),
        ];
        for (text, quoted) in cases {
            let (line, column) = first_error(text).expect(text);
            assert_eq!(
                quote_at(text, line, column).as_deref(),
                Some(quoted),
                "{text}"
            );
        }
    }

    #[test]
    fn leaves_other_errors_and_places_alone() {
        assert_eq!(first_error("a: [unclosed\n"), None);
        assert_eq!(first_error("a: [x:y, 2001:db8::1]\n"), None);
        assert_eq!(quote_at("a: [b]\n", 1, 2), None);
        assert_eq!(quote_at("a: [b]\n", 9, 1), None);
    }
}
