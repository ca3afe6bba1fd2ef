//! The sluice control plane (admission webhook) and the `sluice` CLI.
#![forbid(unsafe_code)]

pub mod cli;
