//! The sluice control plane (admission webhook, discovery and its stream) and the `sluice` CLI.
#![forbid(unsafe_code)]

pub mod ca_bundle;
pub mod cli;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod inject;
pub mod manifest;
pub mod run;
pub mod serve;
pub mod webhook;

pub use config::InjectConfig;
pub use inject::{InjectError, Namespace, Outcome, inject, uninject};
