//! The limits on the client-facing side of the proxy, in one place so that every listener
//! (inbound, outbound, a gateway) applies the same ones: how long a client may take to send
//! headers and bodies or sit idle, how large its headers may be, its HTTP/2 settings, and how
//! many connections and requests in flight the proxy takes before it sheds load.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::LimitMetrics;

/// The client-facing limits and their defaults (each has a `sluice-proxy` flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Longest time to receive a request's headers, from the moment the connection waits for
    /// them (Envoy's `request_headers_timeout`).
    pub header_read_timeout: Duration,
    /// A client connection (HTTP/1.1 keep-alive or HTTP/2) with no request in flight for this
    /// long is closed (HTTP/2 with a GOAWAY), as Envoy's `idle_timeout`.
    pub idle_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Most bytes of a request body kept while it streams upstream, so that a retry can send
    /// it again (Envoy's `per_request_buffer_limit_bytes`); a larger body is sent once.
    pub retry_buffer_bytes: usize,
    /// Largest request head (request line and headers), in bytes (Envoy's
    /// `max_request_headers_kb`: 60 KiB); the HTTP/2 header list size too.
    pub max_header_bytes: u32,
    /// Most header fields in a request (Envoy's `max_headers_count`: 100).
    pub max_headers: usize,
    /// HTTP/2: most concurrent streams per client connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: initial flow-control window of a stream, in bytes.
    pub h2_stream_window: u32,
    /// HTTP/2: initial flow-control window of a connection, in bytes.
    pub h2_connection_window: u32,
    /// Most client connections the proxy holds, across its listeners; connections beyond it
    /// are accepted and closed at once.
    pub max_connections: usize,
    /// Most requests in flight across the proxy; beyond it a request is answered 503 at once
    /// (load shedding).
    pub max_requests: usize,
    /// An upgraded connection (WebSocket) that carried nothing either way for this long is
    /// closed.
    pub tunnel_idle_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
            body_read_timeout: Duration::from_secs(300),
            retry_buffer_bytes: 64 * 1024,
            max_header_bytes: 60 * 1024,
            max_headers: 100,
            h2_max_concurrent_streams: 1024,
            h2_stream_window: 1024 * 1024,
            h2_connection_window: 4 * 1024 * 1024,
            max_connections: 100_000,
            max_requests: 10_000,
            tunnel_idle_timeout: Duration::from_secs(3600),
        }
    }
}

/// The limits in force and the counts they bound, shared by the listeners of one proxy.
#[derive(Debug)]
pub struct Gates {
    /// The limits.
    pub limits: ClientLimits,
    connections: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    /// What the limits turned away, and panics.
    pub counts: LimitMetrics,
}

/// A client connection's place in [`ClientLimits::max_connections`], held until it closes
/// (through an upgrade too), counted in the open connections meanwhile.
#[derive(Debug)]
pub struct ConnectionPermit {
    _place: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A request's place in [`ClientLimits::max_requests`], held until its response has been sent.
#[derive(Debug)]
pub struct RequestPermit(#[expect(dead_code, reason = "held, never read")] OwnedSemaphorePermit);

impl Gates {
    /// Gates enforcing `limits`, counting in `counts`.
    pub fn new(limits: ClientLimits, counts: LimitMetrics) -> Arc<Gates> {
        Arc::new(Gates {
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            requests: Arc::new(Semaphore::new(limits.max_requests)),
            limits,
            counts,
        })
    }

    /// A place for a new connection, if one is free (else counted as refused).
    pub fn connection(&self) -> Option<ConnectionPermit> {
        let Ok(place) = self.connections.clone().try_acquire_owned() else {
            self.counts.connections_refused.inc();
            return None;
        };
        self.counts.connections_open.inc();
        Some(ConnectionPermit {
            _place: place,
            open: self.counts.connections_open.clone(),
        })
    }

    /// A place for a new request, if one is free (else counted as shed).
    pub fn request(&self) -> Option<RequestPermit> {
        let permit = self.requests.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.counts.requests_shed.inc();
        }
        permit.map(RequestPermit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_admit_up_to_the_limit_and_again_once_places_free() {
        let counts = LimitMetrics::default();
        let limits = ClientLimits {
            max_connections: 2,
            max_requests: 1,
            ..ClientLimits::default()
        };
        let gates = Gates::new(limits, counts.clone());
        let (a, b) = (gates.connection().unwrap(), gates.connection().unwrap());
        assert!(gates.connection().is_none());
        assert_eq!(counts.connections_open.get(), 2);
        drop(a);
        assert_eq!(counts.connections_open.get(), 1);
        assert!(gates.connection().is_some());
        drop(b);
        let r = gates.request().unwrap();
        assert!(gates.request().is_none());
        drop(r);
        assert!(gates.request().is_some());
        assert_eq!(counts.connections_refused.get(), 1);
        assert_eq!(counts.requests_shed.get(), 1);
    }
}
