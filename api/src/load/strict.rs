//! Strict deserialization: every unknown field is reported with its path and
//! the fields allowed there, and where the field would be valid one or more
//! levels up, the report says where it belongs.

use serde::de::DeserializeOwned;
use serde_norway::Value;
use serde_path_to_error::Segment;

/// Upper bound on unknown fields collected from one spec.
const MAX_UNKNOWN: usize = 50;

/// Deserializes `value` as `T`, collecting all unknown fields rather than the
/// first. Paths in errors start with `prefix`.
pub fn parse<T: DeserializeOwned>(
    value: Value,
    prefix: &str,
    kind: &str,
) -> Result<T, Vec<(String, String)>> {
    let mut original = None;
    let mut cleaned = value;
    let mut unknown: Vec<(Vec<Step>, String)> = Vec::new();
    let outcome = loop {
        match serde_path_to_error::deserialize::<_, T>(&cleaned) {
            Ok(t) => break Ok(t),
            Err(e) => {
                let mut steps = steps(e.path());
                let message = e.into_inner().to_string();
                match unknown_field(&message) {
                    Some((field, allowed)) if unknown.len() < MAX_UNKNOWN => {
                        if steps.last() != Some(&Step::Key(field.clone())) {
                            steps.push(Step::Key(field.clone()));
                        }
                        original.get_or_insert_with(|| cleaned.clone());
                        if !remove(&mut cleaned, &steps) {
                            break Err((steps, message));
                        }
                        unknown.push((steps, allowed));
                    }
                    _ => break Err((steps, message)),
                }
            }
        }
    };
    let Some(original) = original else {
        return outcome
            .map_err(|(steps, message)| vec![(render(prefix, &steps), explain(message))]);
    };
    let mut errors: Vec<(String, String)> = unknown
        .iter()
        .map(|(steps, allowed)| {
            let message = unknown_message::<T>(&original, &cleaned, steps, allowed, prefix, kind);
            (render(prefix, steps), message)
        })
        .collect();
    if let Err((steps, message)) = outcome {
        errors.push((render(prefix, &steps), explain(message)));
    }
    Err(errors)
}

/// Adds a hint to serde's message where the cause is a common one.
fn explain(message: String) -> String {
    if message.contains("string \"...\"") {
        format!(
            "{message}; \"...\" looks like a placeholder for elided content: write the real fields"
        )
    } else {
        message
    }
}

/// One step of a path into a YAML value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

fn render(prefix: &str, steps: &[Step]) -> String {
    let mut out = prefix.to_string();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into the field
/// and the allowed list.
fn unknown_field(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, tail) = rest.split_once('`')?;
    let allowed = tail
        .trim_start_matches(", ")
        .trim_start_matches("expected one of ")
        .trim_start_matches("expected ")
        .replace('`', "");
    let allowed = if tail.contains("there are no fields") {
        "none".to_string()
    } else {
        allowed
    };
    Some((field.to_string(), allowed))
}

fn get<'v>(value: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    steps.iter().try_fold(value, |v, step| match (step, v) {
        (Step::Key(k), Value::Mapping(m)) => m.get(k.as_str()),
        (Step::Index(i), Value::Sequence(s)) => s.get(*i),
        _ => None,
    })
}

fn get_mut<'v>(value: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(value, |v, step| match (step, v) {
        (Step::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str()),
        (Step::Index(i), Value::Sequence(s)) => s.get_mut(*i),
        _ => None,
    })
}

fn remove(value: &mut Value, steps: &[Step]) -> bool {
    let Some((Step::Key(key), parent)) = steps.split_last() else {
        return false;
    };
    match get_mut(value, parent) {
        Some(Value::Mapping(m)) => m.remove(key.as_str()).is_some(),
        _ => false,
    }
}

fn unknown_message<T: DeserializeOwned>(
    original: &Value,
    cleaned: &Value,
    steps: &[Step],
    allowed: &str,
    prefix: &str,
    kind: &str,
) -> String {
    let Some((Step::Key(field), parent)) = steps.split_last() else {
        return "unknown field".into();
    };
    let mut message = format!("unknown field \"{field}\" (allowed here: {allowed})");
    if let Some(hint) = known_misplacement(kind, field) {
        message.push_str("; ");
        message.push_str(hint);
    } else if let Some(hint) = belongs_higher::<T>(original, cleaned, parent, field, prefix) {
        message.push_str("; ");
        message.push_str(&hint);
    }
    message
}

/// Hints for fields users put on a kind that has no place for them.
fn known_misplacement(kind: &str, field: &str) -> Option<&'static str> {
    match (kind, field) {
        ("ServiceEntry", "tls") => Some(
            "TLS settings belong in a DestinationRule for the host (spec.trafficPolicy.tls); TLS on an HTTPS/TLS port already passes through as is",
        ),
        ("VirtualService", "subsets" | "trafficPolicy") => {
            Some("subsets and traffic policies belong in a DestinationRule for the host")
        }
        ("DestinationRule", "http" | "route") => {
            Some("routes belong in a VirtualService for the host")
        }
        _ => None,
    }
}

/// Tries the field one, two and three levels up; where the spec then parses,
/// says where the field belongs.
fn belongs_higher<T: DeserializeOwned>(
    original: &Value,
    cleaned: &Value,
    parent: &[Step],
    field: &str,
    prefix: &str,
) -> Option<String> {
    let moved = get(
        original,
        &[parent, &[Step::Key(field.to_string())]].concat(),
    )?
    .clone();
    let mut ancestor = parent.to_vec();
    for _ in 0..3 {
        let beside = loop {
            match ancestor.pop()? {
                Step::Key(key) => break key,
                Step::Index(_) => continue,
            }
        };
        let mut candidate = cleaned.clone();
        let Some(Value::Mapping(map)) = get_mut(&mut candidate, &ancestor) else {
            continue;
        };
        if map.contains_key(field) {
            continue;
        }
        map.insert(Value::String(field.to_string()), moved.clone());
        if serde_path_to_error::deserialize::<_, T>(candidate).is_ok() {
            let target = render(
                prefix,
                &[ancestor.as_slice(), &[Step::Key(field.to_string())]].concat(),
            );
            return Some(format!("\"{field}\" belongs beside \"{beside}\": {target}"));
        }
    }
    None
}
