//! YAML output for changed documents, in kubectl's block style, readable the same by YAML 1.1
//! readers (kubectl's, PyYAML) and YAML 1.2 readers: every string that either could take for
//! something else (`yes`, `on`, `0644`, `12:30`, timestamps, numbers) is quoted.

use serde_json::{Map, Value};

/// One document as YAML, ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0),
        other => scalar(&mut out, other, 0),
    }
    out
}

fn mapping(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first entry of a mapping inside a sequence item follows its `- `.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&string(key));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(out, inner, indent + 2);
            }
            // Sequences in mappings are not indented, as kubectl writes them.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, indent);
            }
            other => {
                out.push(' ');
                scalar(out, other, indent + 2);
            }
        }
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        match item {
            Value::Object(map) if !map.is_empty() => {
                out.push_str("- ");
                mapping(out, map, indent + 2);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push_str("-\n");
                sequence(out, inner, indent + 2);
            }
            other => {
                out.push_str("- ");
                scalar(out, other, indent + 2);
            }
        }
    }
}

/// A scalar or empty collection, then the end of the line. Multi-line strings become literal
/// blocks whose lines are indented by `indent`.
fn scalar(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => match literal_block(s) {
            Some((header, body)) => {
                out.push_str(header);
                for line in body.split('\n') {
                    out.push('\n');
                    if !line.is_empty() {
                        pad(out, indent);
                        out.push_str(line);
                    }
                }
            }
            None => out.push_str(&string(s)),
        },
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
    out.push('\n');
}

/// `|` or `|-` and the text without its final newline, for multi-line text that a literal
/// block keeps exactly.
fn literal_block(s: &str) -> Option<(&'static str, &str)> {
    if !s.contains('\n') {
        return None;
    }
    let (header, body) = match s.strip_suffix('\n') {
        Some(body) => ("|", body),
        None => ("|-", s),
    };
    let exact = !body.ends_with('\n')
        && !body.starts_with([' ', '\t'])
        && !body.is_empty()
        && body.split('\n').all(|l| !l.ends_with([' ', '\t']))
        && !body
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t');
    exact.then_some((header, body))
}

/// A string as a plain scalar when no YAML reader can take it for anything else; else
/// single-quoted when it holds double quotes (the status annotation's JSON stays readable),
/// else double-quoted (JSON escapes are valid YAML).
fn string(s: &str) -> String {
    if is_plain(s) || is_quantity(s) {
        s.to_string()
    } else if s.contains('"') && !s.contains('\'') && !s.chars().any(char::is_control) {
        format!("'{s}'")
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

/// Digits then letters (`100m`, `256Mi`): a string to every YAML reader.
fn is_quantity(s: &str) -> bool {
    let letters = s.trim_start_matches(|c: char| c.is_ascii_digit());
    s.starts_with(|c: char| ('1'..='9').contains(&c))
        && !letters.is_empty()
        && letters.chars().all(|c| c.is_ascii_alphabetic())
}

fn is_plain(s: &str) -> bool {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "",
    ];
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let second = chars.next();
    let starts_ok = first.is_ascii_alphabetic()
        || first == '/'
        || (first == '-' && second.is_some_and(|c| c == '-' || c.is_ascii_alphabetic()));
    starts_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-:@+=,()*~ ".contains(c))
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ambiguous_strings_are_quoted_and_read_back_the_same() {
        let tricky = [
            "2025-03-02T10:11:12Z",
            "yes",
            "On",
            "y",
            "NO",
            "0644",
            "1e3",
            "~",
            "null",
            "0x1F",
            "1_000",
            "12:30",
            ".5",
            "+1",
            "-1",
            "=",
            "<<",
            "1.",
            "",
            " x",
            "x ",
            "a: b",
            "a #b",
            "key:",
            "*",
            "&a",
            "!t",
            "|",
            ">",
            "@x",
            "%x",
            "[a]",
            "{a}",
            "'q'",
            "\"q\"",
            "tab\there",
            "é",
            "-",
            "- x",
            "? x",
            "0xff",
            "0o7",
            "1e5",
            "1E",
            "0m",
            "{\"a\":1}",
            "it's \"q\"",
        ];
        let value = json!({ "list": tricky.to_vec(), "map": tricky.iter().map(|s| (s.to_string(), json!(s))).collect::<Map<_, _>>() });
        let yaml = to_yaml(&value);
        let back: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, value, "{yaml}");
        for s in tricky {
            assert!(!is_plain(s), "{s:?} must be quoted");
        }
        for s in ["100m", "256Mi", "2Gi", "1E"] {
            assert!(is_quantity(s), "{s}");
        }
        for s in ["0xff", "1e5", "0m", "12:30", "1_0k", "5"] {
            assert!(!is_quantity(s), "{s}");
        }
    }

    #[test]
    fn kubectl_style_blocks() {
        let value = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "annotations": { "a.io/x": "true" }, "labels": {} },
            "spec": {
                "containers": [{ "name": "app", "args": ["--flag=*", "-XX:Max=75"], "ports": [] }],
                "nested": [[1, 2], []],
                "script": "line 1\n  indented\n\nlast\n",
                "noeol": "a\nb",
            },
        });
        let yaml = to_yaml(&value);
        assert_eq!(
            yaml,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    a.io/x: \"true\"\n  labels: {}\n\
             spec:\n  containers:\n  - args:\n    - --flag=*\n    - -XX:Max=75\n    name: app\n    ports: []\n\
             \x20 nested:\n  -\n    - 1\n    - 2\n  - []\n  noeol: |-\n    a\n    b\n\
             \x20 script: |\n    line 1\n      indented\n\n    last\n"
        );
        assert_eq!(serde_norway::from_str::<Value>(&yaml).unwrap(), value);
    }
}
