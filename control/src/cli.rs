//! The `sluice` command line: one subcommand per module.

mod check;
mod inject;
mod uninject;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sluice: a small, fast sidecar service mesh that speaks Istio's traffic API.
#[derive(Debug, Parser)]
#[command(name = "sluice", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Check(check::Args),
    Inject(inject::Args),
    Uninject(uninject::Args),
    Demo(crate::demo::Args),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Check(args) => check::run(args),
        Command::Inject(args) => inject::run(args),
        Command::Uninject(args) => uninject::run(args),
        Command::Demo(args) => crate::demo::run(args),
    }
}
