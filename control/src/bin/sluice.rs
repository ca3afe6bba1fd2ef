//! `sluice`: the user CLI (validate config, inject sidecars, run the demo).

use std::process::ExitCode;

use clap::Parser;
use sluice_control::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice_control::cli::run(cli)
}
