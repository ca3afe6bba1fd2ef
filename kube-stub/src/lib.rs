//! A Kubernetes API server stand-in for tests: the real list/watch protocol (JSON over HTTPS with
//! a bearer token, paginated lists, watch streams with bookmarks, 410 Expired) over an in-memory
//! store of any served resource types, checked against kubectl and kube-rs.
#![forbid(unsafe_code)]

pub mod api;
pub mod catalog;
pub mod documents;
pub mod kubeconfig;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod tls;

pub use api::RequestRecord;
pub use catalog::{Catalog, IstioVersion, ResourceType};
pub use documents::StubError;
pub use server::{Options, StartError, StubServer};
pub use status::ApiError;
