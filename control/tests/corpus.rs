//! Injection over a corpus of real-world manifests (`tests/corpus/`): the output matches the
//! reviewed golden file (`tests/golden/`; `SLUICE_BLESS=1` rewrites them), validates against
//! the Kubernetes schema (kubernetes-validate, strict), re-injecting changes nothing, and
//! uninjecting gives back the input.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sluice_control::InjectConfig;
use sluice_control::config::DiscoveryConfig;
use sluice_control::manifest::{Action, Output, Source, parse_all, process, to_yaml};

/// Kubernetes versions the output must be valid for (native sidecars need ≥ 1.28).
const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

struct Case {
    name: String,
    input: Source,
    output: Output,
}

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// Files named `classic-*` run in classic mode, `discovery-*` with the control plane's
/// discovery (as the chart configures it), the rest with the default config.
fn config_for(name: &str) -> InjectConfig {
    InjectConfig {
        native_sidecar: !name.starts_with("classic-"),
        discovery: name.starts_with("discovery-").then(|| DiscoveryConfig {
            address: "sluice-control.sluice-system.svc:15012".into(),
            ..DiscoveryConfig::default()
        }),
        ..InjectConfig::default()
    }
}

fn cases() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir("corpus"))
        .expect("tests/corpus")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus went missing");
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let input = Source {
                name: name.clone(),
                text: std::fs::read_to_string(&path).unwrap(),
            };
            let config = config_for(&name);
            let output = process(std::slice::from_ref(&input), Action::Inject(&config))
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            Case {
                name,
                input,
                output,
            }
        })
        .collect()
}

fn golden_text(output: &Output) -> String {
    let notes: String = output
        .notes
        .iter()
        .map(|n| format!("# note: {n}\n"))
        .collect();
    format!("{notes}{}", output.text)
}

#[test]
fn outputs_match_the_reviewed_golden_files() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for case in cases() {
        let stem = Path::new(&case.name)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let path = dir("golden").join(format!("{stem}.yaml"));
        let want = golden_text(&case.output);
        if bless {
            std::fs::create_dir_all(dir("golden")).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(got) if got == want => {}
            Ok(_) => stale.push(format!("{}: differs from the new output", path.display())),
            Err(e) => stale.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "golden files out of date (review the change, then rerun with SLUICE_BLESS=1):\n{}",
        stale.join("\n")
    );
}

#[test]
fn reinjecting_changes_nothing() {
    for case in cases() {
        let again = Source {
            name: case.name.clone(),
            text: case.output.text.clone(),
        };
        let config = config_for(&case.name);
        let out = process(&[again], Action::Inject(&config)).unwrap();
        assert_eq!(out.text, case.output.text, "{}", case.name);
        let injected = case.output.text.matches("sluice.dev/status").count();
        let already = out
            .notes
            .iter()
            .filter(|n| n.contains("already injected"))
            .count();
        assert_eq!(already, injected, "{}: {:?}", case.name, out.notes);
    }
}

#[test]
fn uninject_gives_back_the_input() {
    let mut injected = 0;
    for case in cases() {
        let output = Source {
            name: case.name.clone(),
            text: case.output.text.clone(),
        };
        let back = process(&[output], Action::Uninject).unwrap();
        let back = Source {
            name: case.name.clone(),
            text: back.text,
        };
        assert_eq!(
            parse_all(&back).unwrap(),
            parse_all(&case.input).unwrap(),
            "{}",
            case.name
        );
        injected += case.output.text.matches("sluice.dev/status").count();
    }
    assert!(
        injected >= 15,
        "the corpus should inject many workloads, injected {injected}"
    );
}

#[test]
fn outputs_validate_against_the_kubernetes_schema() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus-validate");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut files = Vec::new();
    for case in cases() {
        // kubernetes-validate has no schema for List: validate the items one by one.
        let source = Source {
            name: case.name.clone(),
            text: case.output.text.clone(),
        };
        let mut docs = Vec::new();
        for doc in parse_all(&source).unwrap() {
            match doc.get("items").and_then(Value::as_array) {
                Some(items) if doc["kind"] == "List" => docs.extend(items.iter().cloned()),
                _ => docs.push(doc),
            }
        }
        let text: Vec<String> = docs.iter().map(to_yaml).collect();
        let path = out_dir.join(format!("{}.yaml", case.name));
        std::fs::write(&path, text.join("---\n")).unwrap();
        files.push(path);
    }
    require_kubernetes_validate();
    for version in KUBERNETES_VERSIONS {
        let out = Command::new("python3")
            .args([
                "-m",
                "kubernetes_validate",
                "--strict",
                "--quiet",
                "--no-warn",
                "-k",
                version,
            ])
            .args(&files)
            .output()
            .expect("run python3 -m kubernetes_validate");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !report.contains("ERROR"),
            "injected manifests do not validate against Kubernetes {version}:\n{report}"
        );
    }
}

fn require_kubernetes_validate() {
    let found = Command::new("python3")
        .args(["-c", "import kubernetes_validate"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs python3 with the kubernetes-validate package (PyPI), which validates \
         offline: run ./scripts/setup, or `python3 -m pip install kubernetes-validate`"
    );
}
