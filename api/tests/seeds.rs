//! Every configuration example of the seed articles (`examples/seeds`)
//! behaves as the folder's README says: valid ones load, invalid ones are
//! rejected at the field the file names, fragments are errors (or skipped
//! Kubernetes kinds), kinds sluice does not act on get a warning, and Istio's
//! own warnings show up as warnings.

use std::path::{Path, PathBuf};

use sluice_api::{ConfigSet, Diagnostic, Severity, load_paths, validate};

fn seeds_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seeds");
    assert!(dir.is_dir(), "seed examples not found at {}", dir.display());
    dir
}

/// The `# key: value` header lines of a seed file.
fn header(text: &str, key: &str) -> Vec<String> {
    let prefix = format!("# {key}:");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
        .collect()
}

fn load(path: &Path) -> ConfigSet {
    let mut set = load_paths(&[path]);
    validate::validate(&mut set);
    set
}

fn of(set: &ConfigSet, severity: Severity) -> Vec<&Diagnostic> {
    set.diagnostics
        .iter()
        .filter(|d| d.severity == severity)
        .collect()
}

#[test]
fn seeds_behave_as_their_readme_says() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(seeds_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 88, "the README lists 88 seed files");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let validity = header(&text, "validity").pop().expect("validity header");
        let kind = ["valid", "invalid", "fragment", "out-of-scope kind"]
            .into_iter()
            .filter(|k| validity.starts_with(k))
            .max_by_key(|k| k.len())
            .expect("known validity");
        *counts.entry(kind.to_string()).or_default() += 1;
        let set = load(file);
        let name = file.file_name().unwrap().to_string_lossy();
        let errors = of(&set, Severity::Error);
        match kind {
            "valid" => {
                assert!(errors.is_empty(), "{name}: valid but rejected: {errors:#?}");
                assert!(
                    !set.resources.is_empty() || !of(&set, Severity::Note).is_empty(),
                    "{name}: valid but nothing loaded or noted"
                );
            }
            "invalid" => {
                assert!(!errors.is_empty(), "{name}: invalid but accepted");
                for expected in header(&text, "expected-error") {
                    let path = expected.split([':', ' ']).next().unwrap();
                    let field = path.rsplit('.').next().unwrap();
                    assert!(
                        errors.iter().any(|e| e.path.as_deref() == Some(path)
                            && e.message.contains(&format!("unknown field \"{field}\""))),
                        "{name}: expected an error at {path} about \"{field}\", got {errors:#?}"
                    );
                }
            }
            "fragment" => {
                let skipped_only = set.resources.is_empty() && !of(&set, Severity::Note).is_empty();
                assert!(
                    !errors.is_empty() || skipped_only,
                    "{name}: a fragment must be an error or skipped kinds only"
                );
            }
            _ => {
                assert!(
                    errors.is_empty() && set.resources.is_empty(),
                    "{name}: out-of-scope kinds are skipped, not errors"
                );
                let warnings = of(&set, Severity::Warning);
                assert!(
                    warnings.iter().any(|w| w.message.contains("not acted on")
                        || w.message.contains("not a kind sluice acts on")),
                    "{name}: expected a warning that sluice does not act on the kind, got {warnings:#?}"
                );
            }
        }
        if kind != "fragment" {
            let warnings = of(&set, Severity::Warning);
            for expected in header(&text, "expected-warning") {
                assert!(
                    warnings.iter().any(|w| w.message.contains(&expected)),
                    "{name}: expected warning {expected:?}, got {warnings:#?}"
                );
            }
        }
    }
    let expected: std::collections::BTreeMap<String, usize> = [
        ("valid", 64),
        ("invalid", 4),
        ("fragment", 14),
        ("out-of-scope kind", 6),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts, expected, "totals of the seed README");
}

#[test]
fn errors_name_file_document_resource_and_field() {
    let file = seeds_dir().join("000-03-catalog-weighted-90-10.yaml");
    let set = load(&file);
    let first = set.errors().next().expect("an error").to_string();
    assert!(first.ends_with(
        "000-03-catalog-weighted-90-10.yaml: doc 1 (VirtualService default/catalog): spec.http[0].route[0].destination.weight: \
         unknown field \"weight\" (allowed here: host, subset, port); \"weight\" belongs beside \"destination\": spec.http[0].route[0].weight"
    ), "{first}");
}
