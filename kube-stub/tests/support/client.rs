//! Test support: a stand-in with objects, a kube-rs client for it, and bounded waits on watcher
//! streams and server state.

#![allow(dead_code)]

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use kube::runtime::watcher;
use sluice_kube_stub::{Options, StubServer};

/// How long any awaited condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Starts a stand-in with `options` and applies `yaml`.
pub async fn start(options: Options, yaml: &str) -> StubServer {
    let server = StubServer::start(options)
        .await
        .expect("start the stand-in");
    server.apply_yaml(yaml).expect("apply the test objects");
    server
}

/// A kube-rs client configured from the server's kubeconfig, as a program would be.
pub async fn client(server: &StubServer) -> kube::Client {
    client_for(&server.kubeconfig()).await
}

/// A kube-rs client from kubeconfig text.
pub async fn client_for(kubeconfig: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("parse kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config from kubeconfig");
    kube::Client::try_from(config).expect("client")
}

/// A namespace and `count` Services `svc-0`.. labelled `app: web`.
pub fn services(namespace: &str, count: usize) -> String {
    let mut yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n");
    for i in 0..count {
        yaml += &service(namespace, &format!("svc-{i}"), "web");
    }
    yaml
}

/// One Service labelled `app: APP`, as a YAML document.
pub fn service(namespace: &str, name: &str, app: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{app: {app}}}}}\n\
         spec: {{ports: [{{port: 80, name: http}}]}}\n"
    )
}

/// A watcher driven by its own task, as a controller's is, with bounded waits on its events;
/// watcher errors are kept for assertions.
pub struct Watch<K> {
    events: tokio::sync::mpsc::UnboundedReceiver<Result<watcher::Event<K>, String>>,
    task: tokio::task::JoinHandle<()>,
    /// Errors the watcher reported (it retries after each).
    pub errors: Vec<String>,
}

impl<K: Send + Debug + 'static> Watch<K> {
    /// Starts driving a watcher stream.
    pub fn new(
        stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    ) -> Self {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if tx.send(item.map_err(|e| e.to_string())).is_err() {
                    return;
                }
            }
        });
        Self {
            events,
            task,
            errors: Vec::new(),
        }
    }

    /// The next event, failing the test if none comes within [`WAIT`].
    pub async fn next(&mut self, what: &str) -> watcher::Event<K> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let item = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no watcher event within {WAIT:?}: waiting for {what}"))
                .unwrap_or_else(|| panic!("the watcher stream ended: waiting for {what}"));
            match item {
                Ok(event) => return event,
                Err(e) => self.errors.push(e),
            }
        }
    }
}

impl<K> Drop for Watch<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until `check` holds, polling, failing the test with `what` after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {WAIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
