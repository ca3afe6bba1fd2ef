//! `sluice uninject`: take out exactly what `sluice inject` or the webhook added.

use std::process::ExitCode;

use super::inject::{Io, transform};
use crate::manifest::Action;

/// Remove the sidecar from injected manifests, exactly inverting injection (driven by each
/// pod's `sluice.dev/status` annotation); documents that are not injected pass through
/// unchanged. Example: `kubectl get deploy web -o yaml | sluice uninject -f -`.
///
/// Exit status: 0 on success, 1 when a document cannot be read (each named; nothing is
/// written), 2 for unusable arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    io: Io,
}

/// Runs `sluice uninject`.
pub fn run(args: Args) -> ExitCode {
    transform("uninject", &args.io, Action::Uninject)
}
