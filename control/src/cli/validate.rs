//! `sluice validate`: load and check config files, print what was found.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use sluice_api::{Severity, load_paths, validate};

/// Check Istio and sluice config files: prints `ok KIND NAMESPACE/NAME` for each
/// valid resource, then errors, warnings and notes, each naming file, document,
/// resource and field. Exits 0 when valid, 1 when any error, 2 for unusable arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories of YAML/JSON documents (`-` for standard input).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Do not print warnings and notes.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `sluice validate`.
pub fn run(args: Args) -> ExitCode {
    if let Some(missing) = args
        .paths
        .iter()
        .find(|p| p.as_os_str() != "-" && !p.exists())
    {
        eprintln!(
            "sluice validate: {}: no such file or directory",
            missing.display()
        );
        return ExitCode::from(2);
    }
    let mut set = load_paths(&args.paths);
    validate::validate(&mut set);
    let mut out = std::io::stdout().lock();
    let failed: std::collections::HashSet<_> =
        set.errors().filter_map(|d| d.origin.clone()).collect();
    for resource in &set.resources {
        if !failed.contains(&resource.origin) {
            let _ = writeln!(out, "ok {}", resource.title());
        }
    }
    for d in &set.diagnostics {
        if args.quiet && d.severity != Severity::Error {
            continue;
        }
        let _ = writeln!(out, "{}: {d}", d.severity);
    }
    if set.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
