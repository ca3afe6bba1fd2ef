//! A simulated proxy: a real client of the discovery stream (the proxy's own connector,
//! HTTP/2, hello, full state then deltas, an ack per version) that records when each
//! version arrives and when the text each measured edit made first reaches it, without
//! compiling the config (a thousand of them share the benchmark's process).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sluice_body_lines::Lines;
use sluice_proxy::config::discovery::wire::{self, Update};
use sluice_proxy::config::discovery::{Hello, Target};
use tokio::sync::mpsc;

/// The longest line read (the proxy's own limit).
const MAX_LINE: usize = 512 << 20;

/// A text an edit puts into the stream, and how many clients have received it.
#[derive(Debug)]
pub struct Marker {
    needle: Vec<u8>,
    /// Clients that received it.
    pub arrived: AtomicUsize,
}

/// The markers of the edits made so far, shared by every client.
#[derive(Debug, Default)]
pub struct Markers(RwLock<Vec<Arc<Marker>>>);

impl Markers {
    /// Adds a marker; its index in every client's log.
    pub fn add(&self, needle: &str) -> (usize, Arc<Marker>) {
        let marker = Arc::new(Marker {
            needle: needle.as_bytes().to_vec(),
            arrived: AtomicUsize::new(0),
        });
        let mut list = self.0.write().unwrap_or_else(PoisonError::into_inner);
        list.push(marker.clone());
        (list.len() - 1, marker)
    }

    fn snapshot(&self) -> Vec<Arc<Marker>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct Log {
    /// When the stream was opened (the request sent).
    pub connected: Option<Instant>,
    /// When the full state arrived, its version and size.
    pub full: Option<(Instant, u64, usize)>,
    /// Deltas received: version, arrival, size.
    pub deltas: Vec<(u64, Instant, usize)>,
    /// Per marker index: when it first arrived.
    pub marks: Vec<Option<Instant>>,
    /// Why the stream ended, if it did.
    pub ended: Option<String>,
}

/// A client's log, shared with the driver.
pub type SharedLog = Arc<Mutex<Log>>;

/// Locks a log.
pub fn lock(log: &SharedLog) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens one stream as `hello` says and reads it until it ends, acking each version.
pub async fn run(target: Arc<Target>, hello: Hello, markers: Arc<Markers>, log: SharedLog) {
    let ended = follow(&target, &hello, &markers, &log).await;
    lock(&log).ended = Some(ended.err().unwrap_or_else(|| "closed".into()));
}

async fn follow(
    target: &Target,
    hello: &Hello,
    markers: &Markers,
    log: &SharedLog,
) -> Result<(), String> {
    let (tx, mut lines) = open(target, hello, Some(log)).await?;
    while let Some(line) = lines.next().await {
        let line = line.map_err(|e| e.to_string())?;
        let now = Instant::now();
        let (version, full) = head(&line).ok_or("a line without a version")?;
        {
            let mut log = lock(log);
            if full {
                log.full = Some((now, version, line.len()));
            } else {
                log.deltas.push((version, now, line.len()));
                let markers = markers.snapshot();
                log.marks.resize(markers.len(), None);
                for (i, marker) in markers.iter().enumerate() {
                    if log.marks[i].is_none() && contains(&line, &marker.needle) {
                        log.marks[i] = Some(now);
                        marker.arrived.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
        if tx.send(wire::ack(version)).await.is_err() {
            return Err("the request stream closed".into());
        }
    }
    Ok(())
}

/// The stream's reply sender and its lines, once the hello is sent and the answer is 200.
async fn open(
    target: &Target,
    hello: &Hello,
    log: Option<&SharedLog>,
) -> Result<(mpsc::Sender<Bytes>, Lines<hyper::body::Incoming>), String> {
    let mut sender = target.connect().await?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let body = StreamBody::new(
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .map(|line| Ok::<_, std::convert::Infallible>(Frame::data(line))),
    );
    let request = http::Request::post(target.url().clone())
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .body(BodyExt::boxed(body))
        .map_err(|e| e.to_string())?;
    if let Some(log) = log {
        lock(log).connected = Some(Instant::now());
    }
    let _ = tx.send(hello.line()).await;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the control plane answered {}", response.status()));
    }
    Ok((tx, Lines::new(response.into_body(), MAX_LINE)))
}

/// A full resync of one proxy: from connecting to the full state received and parsed into
/// the proxy's wire type. Returns the time, the line's size and its resources.
pub async fn resync(target: &Target, hello: &Hello) -> Result<(Duration, usize, usize), String> {
    let started = Instant::now();
    let (_tx, mut lines) = open(target, hello, None).await?;
    let line = lines
        .next()
        .await
        .ok_or("the stream ended before the full state")?
        .map_err(|e| e.to_string())?;
    let update: Update = serde_json::from_slice(&line).map_err(|e| e.to_string())?;
    let took = started.elapsed();
    if !update.full {
        return Err("the first line is no full state".into());
    }
    Ok((took, line.len(), update.resources.len()))
}

/// `{"version":N,"full":B,...`: the control plane writes these two first.
fn head(line: &[u8]) -> Option<(u64, bool)> {
    let rest = line.strip_prefix(br#"{"version":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let version = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let full = rest[digits..].starts_with(br#","full":true"#);
    Some((version, full))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_of_a_line_gives_its_version() {
        assert_eq!(
            head(br#"{"version":12,"full":true,"resources":[]}"#),
            Some((12, true))
        );
        assert_eq!(
            head(br#"{"version":3,"full":false,"upsert":[]}"#),
            Some((3, false))
        );
        assert_eq!(head(br#"{"ack":3}"#), None);
        assert!(contains(b"abc/edit-3\"", b"/edit-3\""));
        assert!(!contains(b"abc", b""));
    }
}
