//! sluice-init: the pod's init container. Parses flags, runs, and maps the result to an exit
//! status.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;
use sluice_init::{Args, Invocation, config};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_level(false)
        .without_time()
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let result = Invocation::from_args(&args, config::interface_exists)
        .and_then(|invocation| sluice_init::run(&invocation, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sluice-init: error: {err}");
            ExitCode::FAILURE
        }
    }
}
