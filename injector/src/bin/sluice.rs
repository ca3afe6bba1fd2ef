//! `sluice`: the user CLI (validate config, inject sidecars, run the demo).

use std::process::ExitCode;

use clap::Parser;
use sluice_injector::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice_injector::cli::run(cli)
}
