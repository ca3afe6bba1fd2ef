//! Field types shared by several Istio resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Matches a string exactly, by prefix or by RE2 regex (whole value).
/// An empty match (no field set) means "present" where Istio allows it
/// (header and query parameter matches).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StringMatch {
    /// The value must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The whole value must match this RE2 regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A percentage in `0.0..=100.0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    /// The percentage.
    pub value: f64,
}

/// Selects a port of a service by number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    /// The port number.
    #[serde(default)]
    pub number: u32,
}

/// Selects workloads by labels, as ServiceEntry writes it (`labels`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels the selected workloads carry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Selects workloads by labels, as DestinationRule writes it (`matchLabels`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchLabels {
    /// Labels the selected workloads carry.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}
