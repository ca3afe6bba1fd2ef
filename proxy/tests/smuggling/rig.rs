//! Arbitrary client bytes through the proxy's real HTTP/1.1 server and outbound request path,
//! in process over a `tokio::io::duplex`, to the recording upstream: the entry point of the
//! `http1` fuzz target and of its seeded run in `cargo test` (`request_framing`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_api::model::{Model, Workload};
use sluice_api::{load_str, validate};
use sluice_proxy::config::Store;
use sluice_proxy::http::{Outbound, serve_with};
use sluice_proxy::metrics::Metrics;
use sluice_proxy::{Identity, Ports, Sidecar, drain};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::upstream::Upstream;

/// The destination clients "were going to": the catalog service's address.
pub const VIP: &str = "10.96.0.10:80";

/// A proxy core routing `catalog` to a recording upstream.
pub struct Rig {
    pub upstream: Upstream,
    sidecar: Arc<Sidecar>,
    _drain: drain::Signal,
    watch: drain::Watch,
}

impl Rig {
    /// Starts the upstream and the proxy core (within a Tokio runtime).
    pub async fn start() -> Rig {
        let upstream = Upstream::start().await;
        let workload = Workload {
            namespace: "default".into(),
            labels: [("app".into(), "client".into())].into(),
            cluster_domain: Default::default(),
        };
        let mut set = load_str("catalog.yaml", &upstream.catalog());
        validate::validate(&mut set);
        assert!(!set.has_errors(), "{:?}", set.errors().collect::<Vec<_>>());
        let model = Model::compile(&set.resources, &workload);
        let metrics = Arc::new(Metrics::new(false));
        let store = Arc::new(Store::with_model(model, metrics.config.clone()));
        let no_capture = |_: &tokio::net::TcpStream| -> std::io::Result<SocketAddr> {
            Err(std::io::Error::other("no capture in process"))
        };
        let sidecar = Arc::new(Sidecar::new(
            store,
            Arc::new(no_capture),
            metrics,
            Identity::of(&workload),
            Ports::default(),
        ));
        let (signal, watch) = drain::channel();
        Rig {
            upstream,
            sidecar,
            _drain: signal,
            watch,
        }
    }

    /// Serves `bytes` as one client connection: writes them, reads the answers until the
    /// proxy closes or nothing more comes for `quiet`, then closes. Returns what the client
    /// got.
    pub async fn send(&self, bytes: &[u8], quiet: Duration) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let outbound = Outbound::new(
            self.sidecar.clone(),
            VIP.parse().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
        );
        let (watch, gates) = (self.watch.clone(), self.sidecar.gates.clone());
        let served = tokio::spawn(async move {
            serve_with(
                server,
                move |req| outbound.clone().handle(req),
                &watch,
                &gates,
            )
            .await;
        });
        let (mut reader, mut writer) = tokio::io::split(&mut client);
        let write = async {
            let _ = writer.write_all(bytes).await;
        };
        let read = async {
            let mut got = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            while let Ok(Ok(n @ 1..)) = tokio::time::timeout(quiet, reader.read(&mut chunk)).await {
                got.extend_from_slice(&chunk[..n]);
            }
            got
        };
        let ((), got) = tokio::join!(write, read);
        drop(client);
        if tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .is_err()
        {
            panic!("the proxy still serves a connection its client closed 5 s ago");
        }
        got
    }

    /// Checks everything the upstream received since the last check: `Err` names the first
    /// framing violation; `Ok` counts the well-framed requests.
    pub fn check(&self) -> Result<usize, String> {
        let got = self.upstream.take();
        if let Some(v) = got.violations.first() {
            return Err(v.clone());
        }
        Ok(got.requests.len())
    }
}
