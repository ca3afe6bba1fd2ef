//! The metadata the API server owns: uid, creationTimestamp, resourceVersion and generation.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// Stamps a new object: uid, creation time, generation 1 and resourceVersion `rv`.
pub(super) fn on_create(object: &mut Value, rv: u64) {
    let meta = metadata(object);
    meta.insert("uid".into(), Value::String(uid()));
    meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    meta.insert("generation".into(), json!(1));
    meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
}

/// Carries the server-owned fields of `old` over to its replacement `new`, bumping the generation
/// when anything but metadata and status changed, and sets resourceVersion `rv`.
pub(super) fn on_update(old: &Value, new: &mut Value, rv: u64) {
    let old_meta = old.get("metadata").and_then(Value::as_object);
    let old_generation = old_meta
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let generation = if without_meta_and_status(old) == without_meta_and_status(new) {
        old_generation
    } else {
        old_generation + 1
    };
    let meta = metadata(new);
    for field in ["uid", "creationTimestamp"] {
        match old_meta.and_then(|m| m.get(field)) {
            Some(value) => meta.insert(field.into(), value.clone()),
            None => meta.remove(field),
        };
    }
    meta.insert("generation".into(), json!(generation));
    meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
}

/// Sets resourceVersion `rv` (a deleted object carries the deletion's version).
pub(super) fn set_resource_version(object: &mut Value, rv: u64) {
    metadata(object).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

/// The object's `metadata` map, made if missing.
pub(super) fn metadata(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let Value::Object(map) = object else {
        unreachable!("made an object above")
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Value::Object(meta) = meta else {
        unreachable!("made an object above")
    };
    meta
}

fn without_meta_and_status(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        for field in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(field);
        }
    }
    object
}

/// A random version-4 UUID.
fn uid() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A random suffix for `generateName`, from the alphabet the API server uses.
pub(super) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// The current time as RFC 3339 in UTC with seconds, as Kubernetes writes timestamps.
pub(super) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn generation_moves_with_spec_only() {
        let mut old = json!({"metadata": {"name": "a"}, "spec": {"x": 1}});
        on_create(&mut old, 5);
        assert_eq!(old["metadata"]["generation"], 1);
        let mut relabelled =
            json!({"metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"x": 1}});
        on_update(&old, &mut relabelled, 6);
        assert_eq!(relabelled["metadata"]["generation"], 1);
        assert_eq!(relabelled["metadata"]["uid"], old["metadata"]["uid"]);
        assert_eq!(relabelled["metadata"]["resourceVersion"], "6");
        let mut changed = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        on_update(&relabelled, &mut changed, 7);
        assert_eq!(changed["metadata"]["generation"], 2);
    }

    #[test]
    fn uids_look_like_uuids() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
