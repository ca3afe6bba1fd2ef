//! The Istio-compatible config model of sluice: resource types, loading from
//! YAML with strict checking, validation with errors that name the file,
//! document, resource and field, and the compiled mesh model the proxy reads.
#![forbid(unsafe_code)]

pub mod delegates;
pub mod diagnostic;
pub mod duration;
pub mod host;
pub mod istio;
pub mod load;
pub mod mesh_config;
pub mod model;
pub mod net;
pub mod release_policy;
pub mod resource;
pub mod validate;

pub use diagnostic::{Diagnostic, Severity};
pub use load::{ConfigSet, load_paths, load_str};
pub use resource::{Meta, Origin, Resource, Spec};
