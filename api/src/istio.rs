//! The `networking.istio.io` resource specs, with Istio's field names and meaning.
//!
//! Every struct rejects unknown fields, so a field in the wrong place is an
//! error rather than silently ignored. Deprecated spellings Istio still
//! accepts (`mirrorPercent`, `consecutiveErrors`, `LEAST_CONN`) are kept.

pub mod common;
pub mod destination_rule;
pub mod gateway;
pub mod service_entry;
pub mod virtual_service;

pub use common::{Percent, PortSelector, StringMatch};
pub use destination_rule::DestinationRule;
pub use gateway::Gateway;
pub use service_entry::ServiceEntry;
pub use virtual_service::VirtualService;
