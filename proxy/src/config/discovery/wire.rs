//! The discovery stream's JSON lines, as the proxy writes and reads them (the control
//! plane's `discovery::stream::wire` is the other side).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Who this proxy is: the first line it sends.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// The workload's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The workload's labels.
    pub labels: BTreeMap<String, String>,
    /// The pod's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// The pod's service account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl Hello {
    /// The hello as a line.
    pub fn line(&self) -> Bytes {
        line(serde_json::to_value(self).unwrap_or_default())
    }
}

/// One version from the control plane: the full state, or the changes since the last.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Update {
    /// The control plane's version.
    pub version: u64,
    /// True: `resources` replaces everything held.
    pub full: bool,
    /// The full state.
    #[serde(default)]
    pub resources: Vec<Entry>,
    /// Resources new or changed.
    #[serde(default)]
    pub upsert: Vec<Entry>,
    /// Ids of resources gone.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Every id in order, when keeping the order held and appending new ones does not give it.
    #[serde(default)]
    pub order: Option<Vec<String>>,
}

/// One resource: the object it was made from, and its document.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(from = "ParsedEntry")]
pub struct Entry {
    /// Names the Kubernetes object (`kubernetes Service shop/reviews`); errors cite it.
    pub id: String,
    /// The resource as a Kubernetes-style object, in JSON text, as the line holds it: each
    /// document is checked to be well-formed JSON and copied out of the line, never built
    /// as a `serde_json::Value` tree (~14 KB per bench Service against ~1 KB of text).
    pub doc: String,
}

/// An entry as the line holds it.
#[derive(Deserialize)]
struct ParsedEntry {
    id: String,
    doc: Box<RawValue>,
}

impl From<ParsedEntry> for Entry {
    fn from(parsed: ParsedEntry) -> Entry {
        Entry {
            id: parsed.id,
            doc: Box::<str>::from(parsed.doc).into_string(),
        }
    }
}

/// `{"ack":N}`: version N is in force.
pub fn ack(version: u64) -> Bytes {
    line(serde_json::json!({ "ack": version }))
}

/// `{"nack":N,"error":"..."}`: version N could not be applied.
pub fn nack(version: u64, error: &str) -> Bytes {
    line(serde_json::json!({ "nack": version, "error": error }))
}

fn line(value: serde_json::Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}
