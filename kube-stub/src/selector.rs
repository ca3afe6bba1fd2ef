//! Label and field selectors of list and watch requests, parsed and matched as the API server
//! does.

use serde_json::Value;

use crate::catalog::ResourceType;

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    /// Parses the equality-based (`a=b`, `a==b`, `a!=b`) and set-based (`a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`) forms, comma-separated.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(Self { requirements })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<LabelRequirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelRequirement::DoesNotExist(label_key(key, part)?));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            label_key(key, part)?,
            label_value(value, part)?,
        ));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(LabelRequirement::Equals(
            label_key(key, part)?,
            label_value(value, part)?,
        ));
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim_start();
    if rest.is_empty() {
        return Ok(LabelRequirement::Exists(label_key(key, part)?));
    }
    let (set_op, values) = if let Some(v) = rest.strip_prefix("notin") {
        (false, v)
    } else if let Some(v) = rest.strip_prefix("in") {
        (true, v)
    } else {
        return Err(format!(
            "unable to parse requirement {part:?}: expected one of =, ==, !=, in, notin"
        ));
    };
    let values = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement {part:?}: expected (values)"))?;
    let values = values
        .split(',')
        .map(|v| label_value(v, part))
        .collect::<Result<Vec<_>, _>>()?;
    let key = label_key(key, part)?;
    Ok(if set_op {
        LabelRequirement::In(key, values)
    } else {
        LabelRequirement::NotIn(key, values)
    })
}

fn label_key(key: &str, part: &str) -> Result<String, String> {
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!(
            "unable to parse requirement {part:?}: invalid label key {key:?}"
        ))
    }
}

fn label_value(value: &str, part: &str) -> Result<String, String> {
    let value = value.trim();
    let valid = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(value.to_string())
    } else {
        Err(format!(
            "unable to parse requirement {part:?}: invalid label value {value:?}"
        ))
    }
}

/// A parsed `fieldSelector`: `field=value`, `field==value` or `field!=value`, comma-separated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<(Vec<String>, bool, String)>,
}

impl FieldSelector {
    /// Parses `text`, accepting `metadata.name`, `metadata.namespace` and the type's own
    /// field selectors; any other field is refused as the API server refuses it.
    pub fn parse(text: &str, resource: &ResourceType) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: {part:?}; expected field=value"));
            };
            let field = field.trim();
            let supported = matches!(field, "metadata.name" | "metadata.namespace")
                || resource.field_selectors.iter().any(|f| f == field);
            if !supported {
                return Err(format!(
                    "field label not supported: {field} (resource {})",
                    resource.plural
                ));
            }
            let path = field.split('.').map(str::to_string).collect();
            requirements.push((path, equal, value.trim().to_string()));
        }
        Ok(Self { requirements })
    }

    /// Whether `object` is selected (a missing field reads as the empty string).
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(path, equal, value)| {
            let found = path
                .iter()
                .try_fold(object, |v, key| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default();
            (found == value) == *equal
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn label_selectors_match_as_kubernetes_does() {
        let l = labels(json!({"app": "web", "tier": "front", "sluice.dev/x": "1"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("missing notin (a)", true),
            ("app in (db)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (front,back),sluice.dev/x", true),
            ("app=web,tier=back", false),
        ];
        for (text, expected) in cases {
            let selector = LabelSelector::parse(text).unwrap();
            assert_eq!(selector.matches(Some(&l)), expected, "{text}");
        }
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
    }

    #[test]
    fn bad_label_selectors_are_refused() {
        for text in ["app in db", "app=we b", "=x", "app ~ x"] {
            assert!(LabelSelector::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn field_selectors_know_their_fields() {
        let catalog = crate::Catalog::kubernetes();
        let pods = catalog.by_kind("", "Pod").unwrap();
        let pod =
            json!({"metadata": {"name": "a", "namespace": "shop"}, "spec": {"nodeName": "n1"}});
        let yes = FieldSelector::parse("metadata.name=a,metadata.namespace==shop", pods).unwrap();
        assert!(yes.matches(&pod));
        assert!(
            FieldSelector::parse("spec.nodeName!=n2", pods)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("status.phase=Running", pods)
                .unwrap()
                .matches(&pod)
        );
        let services = catalog.by_kind("", "Service").unwrap();
        let err = FieldSelector::parse("spec.nodeName=n1", services).unwrap_err();
        assert!(
            err.contains("field label not supported: spec.nodeName"),
            "{err}"
        );
    }
}
