//! The connected proxies and the version each holds, for `GET /v1/proxies`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;

use super::metrics::Metrics;
use super::wire::Hello;

/// One connected proxy, as `GET /v1/proxies` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    /// Its pod.
    pub pod_name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its pod's labels.
    pub labels: BTreeMap<String, String>,
    /// Its pod's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// Its service account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// When this stream began.
    pub connected_since: SystemTime,
    /// The last version sent.
    pub version_sent: Option<u64>,
    /// The last version it acknowledged: the one in force there.
    pub version_acked: Option<u64>,
    /// The last version it rejected, with its error; cleared by a later ack.
    pub last_nack: Option<Nack>,
}

/// A version a proxy rejected.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Nack {
    /// The version.
    pub version: u64,
    /// The proxy's error, naming resources and fields.
    pub error: String,
}

/// Every connected proxy, by stream.
#[derive(Debug)]
pub struct Proxies {
    streams: Mutex<(u64, HashMap<u64, ProxyStatus>)>,
    metrics: Arc<Metrics>,
}

impl Proxies {
    /// No proxy yet.
    pub fn new(metrics: Arc<Metrics>) -> Proxies {
        Proxies {
            streams: Mutex::default(),
            metrics,
        }
    }

    /// Registers a stream; dropping the returned handle unregisters it.
    pub fn connect(self: &Arc<Self>, hello: &Hello) -> Connected {
        let status = ProxyStatus {
            pod_name: hello.pod_name.clone(),
            namespace: hello.namespace.clone(),
            labels: hello.labels.clone(),
            pod_ip: hello.pod_ip.clone(),
            service_account: hello.service_account.clone(),
            connected_since: SystemTime::now(),
            version_sent: None,
            version_acked: None,
            last_nack: None,
        };
        let id = {
            let mut streams = self.lock();
            streams.0 += 1;
            let id = streams.0;
            streams.1.insert(id, status);
            id
        };
        self.metrics.connected.inc();
        Connected {
            proxies: self.clone(),
            id,
        }
    }

    /// The connected proxies, by namespace and pod.
    pub fn list(&self) -> Vec<ProxyStatus> {
        let mut list: Vec<ProxyStatus> = self.lock().1.values().cloned().collect();
        list.sort_by(|a, b| (&a.namespace, &a.pod_name).cmp(&(&b.namespace, &b.pod_name)));
        list
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<u64, ProxyStatus>)> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A registered stream: updates its status; unregisters when dropped.
#[derive(Debug)]
pub struct Connected {
    proxies: Arc<Proxies>,
    id: u64,
}

impl Connected {
    /// Changes this proxy's status.
    pub fn update(&self, change: impl FnOnce(&mut ProxyStatus)) {
        if let Some(status) = self.proxies.lock().1.get_mut(&self.id) {
            change(status);
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.proxies.lock().1.remove(&self.id);
        self.proxies.metrics.connected.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_listed_while_connected() {
        let metrics = Arc::new(Metrics::default());
        let proxies = Arc::new(Proxies::new(metrics.clone()));
        let hello = |ns: &str, pod: &str| Hello {
            namespace: ns.into(),
            pod_name: pod.into(),
            ..Hello::default()
        };
        let b = proxies.connect(&hello("shop", "web-b"));
        let a = proxies.connect(&hello("shop", "web-a"));
        a.update(|s| s.version_acked = Some(4));
        let list = proxies.list();
        assert_eq!(list[0].pod_name, "web-a");
        assert_eq!(list[0].version_acked, Some(4));
        assert_eq!(metrics.connected.get(), 2);
        drop(a);
        drop(b);
        assert!(proxies.list().is_empty());
        assert_eq!(metrics.connected.get(), 0);
    }
}
