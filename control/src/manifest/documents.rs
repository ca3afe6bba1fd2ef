//! A YAML stream as documents: split at `---` so that unchanged documents can be written back
//! exactly as they were, parsed one by one so an error names its document, and converted to
//! JSON the way `kubectl` reads YAML.

use serde_json::Value;

/// One document's text and its 1-based position in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub index: usize,
    pub text: String,
}

/// Splits a stream at document markers (`---` at the start of a line). Text before the first
/// marker that holds only comments or directives is not a document; nor is an empty text
/// after the last marker.
pub fn split(text: &str) -> Vec<Chunk> {
    let mut raw = vec![String::new()];
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = marker(bare) {
            let rest = rest.trim();
            raw.push(if rest.is_empty() {
                String::new()
            } else {
                format!("{rest}\n")
            });
        } else if bare != "..."
            && let Some(current) = raw.last_mut()
        {
            current.push_str(line);
        }
    }
    if raw.len() > 1 && is_preamble(&raw[0]) {
        raw.remove(0);
    }
    if raw.len() > 1 && raw.last().is_some_and(|t| t.trim().is_empty()) {
        raw.pop();
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, text)| Chunk { index: i + 1, text })
        .collect()
}

/// The rest of a document-start line, or `None` if the line is not one.
fn marker(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("---")?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

fn is_preamble(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l.starts_with('%')
    })
}

/// Parses one document; `None` when it is empty (only comments).
pub fn parse(text: &str) -> Result<Option<serde_norway::Value>, String> {
    if is_preamble(text) {
        return Ok(None);
    }
    let mut value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    value.apply_merge().map_err(|e| e.to_string())?;
    Ok((!value.is_null()).then_some(value))
}

/// Converts to JSON as the API server would receive it from `kubectl`: file modes written
/// with a leading zero (`defaultMode: 0644`) are octal, as in YAML 1.1.
pub fn to_json(value: serde_norway::Value) -> Result<Value, String> {
    let mut json =
        serde_json::to_value(value).map_err(|e| format!("cannot convert to JSON: {e}"))?;
    octal_modes(&mut json);
    Ok(json)
}

fn octal_modes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if let (true, Value::String(s)) = (key == "defaultMode" || key == "mode", &*v)
                    && let Some(digits) = s.strip_prefix('0').filter(|d| !d.is_empty())
                    && let Ok(mode) = u32::from_str_radix(digits, 8)
                {
                    *v = Value::from(mode);
                } else {
                    octal_modes(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(stream: &str) -> Vec<(usize, String)> {
        split(stream)
            .into_iter()
            .map(|c| (c.index, c.text))
            .collect()
    }

    #[test]
    fn splits_at_markers_only() {
        let stream = "# license\n---\na: 1\n---\nb: |\n  ---x\n  y\n--- # c\nc: 3\n...\n";
        assert_eq!(
            texts(stream),
            [
                (1, "a: 1\n".to_string()),
                (2, "b: |\n  ---x\n  y\n".to_string()),
                (3, "# c\nc: 3\n".to_string())
            ]
        );
        assert_eq!(texts("a: 1\n"), [(1, "a: 1\n".to_string())]);
        assert_eq!(texts("a: 1\n---\n"), [(1, "a: 1\n".to_string())]);
        assert_eq!(
            texts("a: 1\n---\n---\nb: 2"),
            [(1, "a: 1\n".into()), (2, "".into()), (3, "b: 2".into())]
        );
    }

    #[test]
    fn octal_file_modes_and_merge_keys() {
        let yaml =
            "base: &b {x: 1}\nv:\n  <<: *b\n  defaultMode: 0644\n  mode: '0400'\n  name: '0755'\n";
        let json = to_json(parse(yaml).unwrap().unwrap()).unwrap();
        assert_eq!(json["v"]["x"], 1);
        assert_eq!(json["v"]["defaultMode"], 420);
        assert_eq!(json["v"]["mode"], 256);
        assert_eq!(json["v"]["name"], "0755");
    }
}
