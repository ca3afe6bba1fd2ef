//! `sluice demo` in its non-interactive form: every step's promise holds, and
//! nothing is left behind (namespaces, config folders, processes).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder with sluice-proxy and sluice-init: `$SLUICE_BIN_DIR` when set, else that of this
/// package's `sluice`, after building both there with the same profile (so `cargo test` alone works).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_BIN_DIR") {
        return dir.into();
    }
    let dir = Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap();
    let profile = match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let output = Command::new(cargo)
        .args(["build", "-p", "sluice-proxy", "-p", "sluice-init", "--bins"])
        .args(["--profile", profile, "--manifest-path"])
        .arg(manifest)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "building sluice-proxy and sluice-init:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.to_path_buf()
}

#[test]
fn the_demo_passes_every_step_and_cleans_up() {
    let bin_dir = bin_dir();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("demo")
        .env("SLUICE_BIN_DIR", &bin_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    let steps = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--list"])
        .output()
        .unwrap();
    let count = String::from_utf8_lossy(&steps.stdout).lines().count();
    assert!(count >= 8, "the demo has its steps");
    assert!(
        stdout.contains(&format!("\n{count}/{count} steps passed")),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.matches("PASS").count() >= count, "{stdout}");

    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&namespaces.stdout)
        .lines()
        .filter(|l| l.contains(&format!("-{pid}-")))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let tmp: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains(&format!("-{pid}-"))
        })
        .collect();
    assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");
}

#[test]
fn an_unknown_step_is_refused_with_the_list() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--step", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no step \"nope\"; steps: header-routing, canary-90-10"),
        "{err}"
    );
}

#[test]
fn the_edge_demo_walks_the_five_stages_and_cleans_up() {
    let bin_dir = bin_dir();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--edge"])
        .env("SLUICE_BIN_DIR", &bin_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "edge demo failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("\n5/5 steps passed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("stage-3-weighted-90-10.yaml"), "{stdout}");
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&format!("-{pid}-")),
        "namespaces left behind"
    );
    let left = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .contains(&format!("-{pid}-"))
        });
    assert!(!left, "temporary files left behind");
}
