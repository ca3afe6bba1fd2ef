//! Names of the namespaces a node owns: `sl<test hash>-<pid>-<counter>[-<pod>]`, short, unique per
//! process and node, and carrying the pid so leftovers of a crashed run can be recognised.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace the harness creates.
const PREFIX: &str = "sl";

/// A fresh name for a node of `test` in this process.
pub(crate) fn node(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut hasher = DefaultHasher::new();
    test.hash(&mut hasher);
    let hash = hasher.finish() & 0xff_ffff;
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{hash:06x}-{}-{counter}", std::process::id())
}

/// The name of pod `pod` of the node named `node`.
pub(crate) fn pod(node: &str, pod: &str) -> anyhow::Result<String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    anyhow::ensure!(
        (1..=15).contains(&pod.len()) && pod.chars().all(valid),
        "pod name {pod:?}: use 1 to 15 ASCII letters, digits, '-' or '_'"
    );
    Ok(format!("{node}-{pod}"))
}

/// The pid of the process that created the namespace `name`, if the harness made it.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix(PREFIX)?.splitn(4, '-');
    let hash = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    let is_hash = hash.len() == 6 && hash.chars().all(|c| c.is_ascii_hexdigit());
    is_hash.then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_short_unique_and_carry_the_pid() {
        let first = node("some::module::a_rather_long_test_name_that_goes_on");
        let second = node("some::module::a_rather_long_test_name_that_goes_on");
        assert_ne!(first, second);
        assert!(first.len() <= 24, "{first}");
        assert_eq!(owner_pid(&first), Some(std::process::id()));
    }

    #[test]
    fn pod_names_carry_the_owner_pid_too() {
        let name = pod(&node("t"), "client-1").unwrap();
        assert_eq!(owner_pid(&name), Some(std::process::id()));
    }

    #[test]
    fn rejects_pod_names_unfit_for_a_file_name() {
        for bad in ["", "a/b", "a b", "much-too-long-pod-name"] {
            assert!(pod("sl000000-1-0", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn foreign_names_have_no_owner() {
        for name in [
            "cni-1234",
            "sl12345-1-0",
            "slzzzzzz-1-0",
            "sl123456-x-0",
            "sl123456-1",
        ] {
            assert_eq!(owner_pid(name), None, "{name}");
        }
    }
}
