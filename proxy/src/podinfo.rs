//! The pod's downward-API files: the labels file the kubelet writes (`key="value"` per line,
//! values quoted as Go's `strconv.Quote` does), since labels as a whole are no env variable.

use std::collections::BTreeMap;
use std::path::Path;

/// The labels file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// The file is missing or unreadable.
    #[error("cannot read the labels file {path}: {source} (is the sluice-podinfo volume mounted?)")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `key="value"`.
    #[error("labels file {path} line {line}: {text:?} is not key=\"value\"")]
    Line {
        /// The file.
        path: String,
        /// Its line number (from 1).
        line: usize,
        /// The line.
        text: String,
    },
}

/// Reads the labels file at `path`.
pub fn read_labels(path: &Path) -> Result<BTreeMap<String, String>, LabelsError> {
    let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_labels(&text).map_err(|(line, text)| LabelsError::Line {
        path: path.display().to_string(),
        line,
        text,
    })
}

/// Parses the labels file's text; an error gives the bad line's number and text.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let bad = || (i + 1, line.to_string());
            let (key, value) = line.split_once('=').ok_or_else(bad)?;
            let key = key.trim();
            if key.is_empty() {
                return Err(bad());
            }
            Ok((key.to_string(), unquote(value.trim()).ok_or_else(bad)?))
        })
        .collect()
}

/// Undoes Go's `strconv.Quote`: `"…"` with `\"`, `\\`, `\n`, `\t`, `\r`, `\a`, `\b`, `\f`,
/// `\v`, `\xHH`, `\uHHHH`, `\UHHHHHHHH` and octal `\ooo` escapes.
pub fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            return None;
        }
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let simple = match chars.clone().next()? {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            '\'' => Some(b'\''),
            _ => None,
        };
        if let Some(b) = simple {
            chars.next();
            out.push(b);
            continue;
        }
        match chars.next()? {
            'x' => out.push(u8::try_from(hex(&mut chars, 2)?).ok()?),
            'u' => push_char(&mut out, char::from_u32(hex(&mut chars, 4)?)?),
            'U' => push_char(&mut out, char::from_u32(hex(&mut chars, 8)?)?),
            d @ '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let n = u32::from_str_radix(&format!("{d}{rest}"), 8).ok()?;
                out.push(u8::try_from(n).ok()?);
            }
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn hex(chars: &mut std::str::Chars<'_>, n: usize) -> Option<u32> {
    let digits: String = chars.take(n).collect();
    (digits.len() == n).then_some(())?;
    u32::from_str_radix(&digits, 16).ok()
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Parses `--labels`: `key=value` pairs separated by commas.
pub fn parse_flag_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!("{kv:?} is not key=value")),
        })
        .collect()
}

/// The workload's labels: the downward-API file's, then `--labels` over them.
pub fn workload_labels(
    file: Option<&Path>,
    extra: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, LabelsError> {
    let mut labels = match file {
        Some(path) => read_labels(path)?,
        None => BTreeMap::new(),
    };
    labels.extend(extra.clone());
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_go_strings() {
        let cases = [
            (r#""web""#, Some("web")),
            (r#""""#, Some("")),
            (r#""a\"b\\c""#, Some("a\"b\\c")),
            (r#""l1\nl2\tx""#, Some("l1\nl2\tx")),
            (r#""\u00e9\U0001F600""#, Some("é😀")),
            (r#""\xc3\xa9""#, Some("é")),
            (r#""\101""#, Some("A")),
            ("web", None),
            (r#""a"b""#, None),
            (r#""\q""#, None),
            (r#""\u12""#, None),
        ];
        for (text, want) in cases {
            assert_eq!(unquote(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn parses_the_downward_api_file() {
        let text = "app=\"web\"\npod-template-hash=\"6d4cf56db6\"\n\nnote=\"a=b\"\n";
        let labels = parse_labels(text).unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels["pod-template-hash"], "6d4cf56db6");
        assert_eq!(labels["note"], "a=b");
        assert_eq!(parse_labels("app=web\n"), Err((1, "app=web".into())));
        assert_eq!(parse_labels("ok=\"1\"\n=\"x\""), Err((2, "=\"x\"".into())));
    }

    #[test]
    fn reads_a_file() {
        let dir = std::env::temp_dir().join(format!("sluice-podinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels");
        std::fs::write(&path, "app=\"web\"\nversion=\"v1\"\n").unwrap();
        assert_eq!(read_labels(&path).unwrap().len(), 2);
        let missing = read_labels(&dir.join("nope")).unwrap_err().to_string();
        assert!(missing.contains("sluice-podinfo"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
