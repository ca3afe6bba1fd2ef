//! The running stand-in: listener, TLS, connections, and the handle tests drive it with.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch as channel;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::api::{self, RequestRecord, Shared};
use crate::catalog::{Catalog, split_api_version};
use crate::documents::{self, StubError};
use crate::kubeconfig;
use crate::store::{Store, prepare_new};
use crate::tls::{Pki, TlsError};

/// How to start the stand-in.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The bearer token every request must carry.
    pub token: String,
    /// Served resource types.
    pub catalog: Catalog,
    /// Names (IP addresses or DNS names) the serving certificate covers besides `127.0.0.1`,
    /// `::1` and `localhost`.
    pub extra_names: Vec<String>,
    /// How often a watch that allows bookmarks gets one (the API server: about a minute).
    pub bookmark_interval: Duration,
    /// How long a watch without `timeoutSeconds` lasts (the API server: 30 to 60 minutes).
    pub watch_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: "sluice-kube-stub".into(),
            catalog: Catalog::default(),
            extra_names: Vec::new(),
            bookmark_interval: Duration::from_secs(60),
            watch_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Why the stand-in did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The certificates or TLS config.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address.
    #[error("listening on {address}: {error}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        error: std::io::Error,
    },
    /// The cluster's initial namespaces could not be made.
    #[error("making the initial namespaces: {0}")]
    Namespaces(#[from] StubError),
}

/// A running stand-in; dropping it stops the server and closes its connections.
pub struct StubServer {
    shared: Arc<Shared>,
    address: SocketAddr,
    ca_pem: String,
    accept: JoinHandle<()>,
}

/// The namespaces a new cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-node-lease", "kube-public", "kube-system"];

impl StubServer {
    /// Makes the certificates, binds the address and starts serving.
    pub async fn start(options: Options) -> Result<Self, StartError> {
        let pki = Pki::new(&options.extra_names)?;
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|error| StartError::Listen {
                    address: options.listen,
                    error,
                })?;
        let address = listener.local_addr().map_err(|error| StartError::Listen {
            address: options.listen,
            error,
        })?;
        let serves_namespaces = options.catalog.by_kind("", "Namespace").is_some();
        let shared = Arc::new(Shared {
            store: Store::new(serves_namespaces),
            catalog: options.catalog,
            token: options.token,
            ends: channel::Sender::new(0),
            bookmark_interval: options.bookmark_interval,
            watch_timeout: options.watch_timeout,
            address: address.to_string(),
            requests: Mutex::new(Vec::new()),
        });
        if serves_namespaces {
            let yaml: String = INITIAL_NAMESPACES
                .iter()
                .map(|ns| {
                    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n")
                })
                .collect();
            apply(&shared, &yaml)?;
        }
        let acceptor = TlsAcceptor::from(pki.server_config);
        let accept = tokio::spawn(accept_loop(listener, acceptor, shared.clone()));
        tracing::info!(%address, "sluice-kube-stub serving");
        Ok(Self {
            shared,
            address,
            ca_pem: pki.ca_pem,
            accept,
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https://ADDRESS:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// A kubeconfig (YAML) for this server: its URL, CA and token.
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url(), &self.ca_pem, &self.shared.token)
    }

    /// Writes [`Self::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Creates or replaces every object of `yaml` (one or many documents, `List`s unpacked), in
    /// order, as `kubectl apply` would; returns them as stored. Namespaced objects without a
    /// namespace go to `default`. Stops at the first refused object (earlier ones stay).
    pub fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>, StubError> {
        apply(&self.shared, yaml)
    }

    /// The object `name` of `kind` in `api_version` (namespace empty for cluster-scoped kinds),
    /// as served at that version.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, StubError> {
        let place = || format!("{kind} {namespace}/{name}");
        let resource = self.resource(api_version, kind, &place())?;
        let (_, version) = split_api_version(api_version);
        let object = self
            .shared
            .store
            .get(resource, namespace, name)
            .map_err(|error| StubError::Rejected {
                place: place(),
                error,
            })?;
        Ok(api::present(&object, resource, version))
    }

    /// Deletes an object (a Namespace with its contents).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), StubError> {
        let place = || format!("{kind} {namespace}/{name}");
        let resource = self.resource(api_version, kind, &place())?;
        self.shared
            .store
            .delete(resource, namespace, name)
            .map(drop)
            .map_err(|error| StubError::Rejected {
                place: place(),
                error,
            })
    }

    /// Forgets the history: watches and continue tokens from older resourceVersions get 410
    /// Expired, as after an etcd compaction.
    pub fn compact(&self) {
        self.shared.store.compact();
    }

    /// Ends every open watch stream (clients re-watch), as an API server restart or a load
    /// balancer would.
    pub fn end_watches(&self) {
        self.shared.ends.send_modify(|n| *n += 1);
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        place: &str,
    ) -> Result<&crate::ResourceType, StubError> {
        let (group, version) = split_api_version(api_version);
        self.shared
            .catalog
            .by_kind(group, kind)
            .filter(|r| r.serves(version))
            .ok_or_else(|| StubError::NotServed {
                place: place.to_string(),
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.end_watches();
        self.accept.abort();
    }
}

fn apply(shared: &Shared, yaml: &str) -> Result<Vec<Value>, StubError> {
    let mut stored = Vec::new();
    for mut document in documents::parse(&shared.catalog, yaml)? {
        let resource = document.resource;
        let namespace = document
            .object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default")
            .to_string();
        let result = prepare_new(resource, &namespace, &mut document.object)
            .and_then(|()| shared.store.upsert(resource, document.object.clone()));
        match result {
            Ok(object) => stored.push(object.as_ref().clone()),
            Err(error) => {
                return Err(StubError::Rejected {
                    place: document.place(),
                    error,
                });
            }
        }
    }
    Ok(stored)
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    // Connections live in this set, so aborting the loop closes them all.
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        connections.spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(api::handle(shared, request).await) }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
