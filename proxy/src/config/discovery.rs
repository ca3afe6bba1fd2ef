//! Following the control plane (`--discovery URL`): one long-lived HTTP/2 stream, the hello
//! and replies up, versions down (JSON lines, see [`wire`]). Each version is loaded with
//! local mode's strict loader, compiled for this workload and published through the same
//! [`Store`]; then acknowledged, or nacked with the errors while the last good config
//! stays. The stream is reopened with backoff and jitter, forever; the full state that
//! opens each stream replaces what was held.

mod connect;
mod held;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sluice_api::model::Workload;
use tokio::sync::mpsc;

pub use connect::{Target, TargetError};
use held::Held;
use sluice_body_lines::Lines;
pub use wire::Hello;
use wire::Update;

use super::{ConfigError, Store};

/// The longest update line read: a full state of a large view is tens of MiB.
const MAX_UPDATE: usize = 512 << 20;
/// The first wait before reconnecting...
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...doubled after each failure up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Follows the control plane at `target` as `hello` says, compiling for `workload` into
/// `store`; runs until dropped.
pub async fn follow(target: Target, hello: Hello, workload: Workload, store: Arc<Store>) {
    let mut stream = Stream {
        target,
        hello,
        workload,
        store,
        held: Held::default(),
        backoff: BACKOFF_MIN,
    };
    loop {
        match stream.run().await {
            Ok(()) => {
                tracing::info!(url = %stream.target.url(), "the control plane closed the stream; reconnecting")
            }
            Err(e) => {
                tracing::warn!(url = %stream.target.url(), error = %e, "discovery stream lost; the config in force stays, reconnecting")
            }
        }
        tokio::time::sleep(jitter(stream.backoff)).await;
        stream.backoff = (stream.backoff * 2).min(BACKOFF_MAX);
    }
}

/// Half to all of `backoff`, at random, so proxies that lost one replica do not all call
/// the next at once.
fn jitter(backoff: Duration) -> Duration {
    backoff / 2 + backoff.mul_f64(fastrand::f64() / 2.0)
}

struct Stream {
    target: Target,
    hello: Hello,
    workload: Workload,
    store: Arc<Store>,
    held: Held,
    backoff: Duration,
}

impl Stream {
    /// One stream, from connecting until it ends.
    async fn run(&mut self) -> Result<(), String> {
        let mut sender = self.target.connect().await?;
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let body = StreamBody::new(
            receiver_stream(rx).map(|line| Ok::<_, std::convert::Infallible>(Frame::data(line))),
        );
        let request = http::Request::post(self.target.url().clone())
            .header(http::header::CONTENT_TYPE, "application/x-ndjson")
            .body(BodyExt::boxed(body))
            .map_err(|e| e.to_string())?;
        // The hello goes first; the server answers once it has read it.
        let _ = tx.send(self.hello.line()).await;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let mut lines = Lines::new(response.into_body(), MAX_UPDATE);
        if !status.is_success() {
            let reason = match lines.next().await {
                Some(Ok(line)) => String::from_utf8_lossy(&line).into_owned(),
                _ => String::new(),
            };
            return Err(format!("the control plane answered {status}: {reason}"));
        }
        tracing::info!(url = %self.target.url(), "discovery stream open");
        while let Some(line) = lines.next().await {
            let line = line.map_err(|e| e.to_string())?;
            let update: Update = serde_json::from_slice(&line)
                .map_err(|e| format!("the control plane sent a line that is no update: {e}"))?;
            self.backoff = BACKOFF_MIN;
            let reply = self.apply(update).await?;
            if tx.send(reply).await.is_err() {
                return Err("the request stream closed".into());
            }
        }
        Ok(())
    }

    /// Applies an update and publishes it if it compiles: the ack or nack to send back; an
    /// error when the stream is out of step.
    async fn apply(&mut self, update: Update) -> Result<Bytes, String> {
        let version = update.version;
        let mut held = std::mem::take(&mut self.held);
        let workload = self.workload.clone();
        let role = self.store.role();
        // Loading and compiling is blocking work: keep it off the request path's threads.
        let (held, result) = tokio::task::spawn_blocking(move || {
            let result = held.apply(update).map(|()| held.compile(&workload, role));
            (held, result)
        })
        .await
        .map_err(|e| format!("applying version {version} failed: {e}"))?;
        self.held = held;
        match result? {
            Ok((model, warnings)) => {
                self.store.publish(model, warnings, Some(version));
                Ok(wire::ack(version))
            }
            Err(errors) => {
                let err = ConfigError::Discovery { version, errors };
                self.store.reject(&err);
                Ok(wire::nack(version, &err.to_string()))
            }
        }
    }
}

/// The receiver as a stream.
fn receiver_stream(rx: mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_all_of_the_backoff() {
        for _ in 0..100 {
            let wait = jitter(Duration::from_secs(2));
            assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2));
        }
    }
}
