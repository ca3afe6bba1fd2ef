//! `sluice.dev/status`: a record of exactly what injection added, so an injected pod is
//! recognised (idempotence) and `sluice uninject` can take it all out again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{INIT_CONTAINER, InjectError, PROXY_CONTAINER};
use crate::config::InjectConfig;

/// Where the proxy runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// An init container with `restartPolicy: Always`.
    Native,
    /// The first app container, with a postStart hook.
    Classic,
}

/// The value of `sluice.dev/status` (compact JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The injector's version.
    pub version: String,
    pub mode: Mode,
    /// Names of the init containers added.
    pub init_containers: Vec<String>,
    /// Names of the app containers added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    /// Names of the volumes added.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Container name → image.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Annotation keys added (they were absent before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
    /// Fields that did not exist before (`spec.initContainers`, `metadata.annotations`...),
    /// removed again when uninjecting leaves them empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// Probes rewritten to go through the proxy: container → field → original probe.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probes: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Status {
    pub(super) fn new(native: bool, config: &InjectConfig) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").into(),
            mode: if native { Mode::Native } else { Mode::Classic },
            init_containers: Vec::new(),
            containers: Vec::new(),
            volumes: Vec::new(),
            images: BTreeMap::from([
                (INIT_CONTAINER.into(), config.images.init.clone()),
                (PROXY_CONTAINER.into(), config.images.proxy.clone()),
            ]),
            annotations: Vec::new(),
            created: Vec::new(),
            probes: BTreeMap::new(),
        }
    }

    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the annotation's value.
    pub fn parse(text: &str) -> Result<Self, InjectError> {
        serde_json::from_str(text).map_err(|e| {
            InjectError::Status(format!(
                "not a status written by sluice inject ({e}); remove the \
                                         sluice containers by hand"
            ))
        })
    }
}
