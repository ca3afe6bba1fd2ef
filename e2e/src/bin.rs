//! Finds the workspace's binaries for tests, building them once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of a workspace binary (`target/debug/<name>`, or `$SLUICE_BIN_DIR/<name>` when set). The first
/// call in a process runs `cargo build --bins` for the workspace once, so `cargo test` alone works.
///
/// Panics when the build fails (with cargo's output) or when no such binary exists.
pub fn binary(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| match std::env::var_os("SLUICE_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => build_workspace_bins(),
    });
    let path = dir.join(name);
    assert!(path.is_file(), "no binary {name} at {}", path.display());
    path
}

/// Builds every binary of the workspace with the profile of the running test and returns the
/// directory they land in: the parent of the test executable's `deps/` directory.
fn build_workspace_bins() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running test executable");
    let dir = profile_dir(&exe);
    let profile = match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--workspace", "--bins", "--profile", profile])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", cargo.to_string_lossy()));
    assert!(
        output.status.success(),
        "`cargo build --workspace --bins` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

/// `target/<profile>` for an executable in `target/<profile>/deps/` (tests) or `target/<profile>/`.
fn profile_dir(exe: &Path) -> PathBuf {
    let dir = exe
        .parent()
        .expect("the test executable lies in a directory");
    if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}
