//! The `sluice` command line: one subcommand per module.

mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sluice: a small, fast sidecar service mesh that speaks Istio's traffic API.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate(args) => validate::run(args),
    }
}
