//! `sluice inject`: add the sidecar to the workloads of manifests, as the webhook would.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::InjectConfig;
use crate::manifest::{self, Action, Source};

/// Add sluice-init and sluice-proxy to the pod templates of manifests (Pod, Deployment,
/// StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, also inside
/// Lists), exactly as the webhook does; every other document is passed through unchanged, in
/// order. Example: `sluice inject -f app.yaml | kubectl apply -f -`.
///
/// Exit status: 0 on success (skipped workloads are noted on stderr), 1 when a document
/// cannot be read or injected (each named; nothing is written), 2 for unusable arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    io: Io,
    /// Injector config (the webhook's YAML); built-in defaults when not given.
    #[arg(long, env = "SLUICE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Proxy as a native sidecar (init container with restartPolicy: Always, Kubernetes ≥ 1.28)
    /// or classic (first container); overrides the config.
    #[arg(long, env = "SLUICE_NATIVE_SIDECAR", value_name = "true|false")]
    native_sidecar: Option<bool>,
}

/// Input and output flags shared with `sluice uninject`.
#[derive(Debug, clap::Args)]
pub struct Io {
    /// Manifest file, directory (its .yaml, .yml and .json files, sorted), or `-` for standard
    /// input; repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        env = "SLUICE_FILENAME",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    files: Vec<PathBuf>,
    /// Write the result to FILE instead of standard output.
    #[arg(short = 'o', long, env = "SLUICE_OUTPUT", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `sluice inject`.
pub fn run(args: Args) -> ExitCode {
    let mut config = match &args.config {
        Some(path) => match InjectConfig::load(path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("sluice inject: {e}");
                return ExitCode::from(2);
            }
        },
        None => InjectConfig::default(),
    };
    if let Some(native) = args.native_sidecar {
        config.native_sidecar = native;
    }
    transform("inject", &args.io, Action::Inject(&config))
}

/// Reads the inputs, transforms them, and writes everything or nothing.
pub(super) fn transform(command: &str, io: &Io, action: Action) -> ExitCode {
    let sources = match read_sources(&io.files) {
        Ok(sources) => sources,
        Err(e) => {
            eprintln!("sluice {command}: {e}");
            return ExitCode::from(2);
        }
    };
    match manifest::process(&sources, action) {
        Ok(output) => {
            for note in &output.notes {
                eprintln!("sluice {command}: {note}");
            }
            match write_output(io.output.as_deref(), &output.text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluice {command}: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(errors) => {
            for error in errors {
                eprintln!("sluice {command}: error: {error}");
            }
            eprintln!("sluice {command}: nothing written");
            ExitCode::from(1)
        }
    }
}

fn read_sources(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            sources.push(Source {
                name: "-".into(),
                text,
            });
            continue;
        }
        let files =
            sluice_api::load::config_files(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
            sources.push(Source {
                name: file.display().to_string(),
                text,
            });
        }
    }
    Ok(sources)
}

fn write_output(path: Option<&Path>, text: &str) -> Result<(), String> {
    match path {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write standard output: {e}"))
        }
    }
}
