//! Inbound requests: forwarded to the app in this pod on the port they were
//! sent to, over pooled connections, and recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, Response};
use sluice_api::model::Protocol;
use sluice_api::model::policy::Settings;

use super::record::{Recorded, Recorder};
use super::timed::BodyTimeout;
use super::upgrade::ClientUpgrade;
use super::{Body, forward, headers, incoming, respond};
use crate::Sidecar;
use crate::metrics::{AccessDetails, RequestRecord};
use crate::tcp::OriginalSrc;

/// The inbound side of one client connection: the app port it was sent to, and in tproxy
/// mode the client's address the connections to the app come from.
#[derive(Clone, Debug)]
pub struct Inbound {
    sidecar: Arc<Sidecar>,
    dst: SocketAddr,
    from: Option<OriginalSrc>,
}

impl Inbound {
    /// The handler for requests sent to the app at `dst`, on connections from `from` when given.
    pub fn new(sidecar: Arc<Sidecar>, dst: SocketAddr, from: Option<OriginalSrc>) -> Inbound {
        Inbound { sidecar, dst, from }
    }

    /// Forwards one request to the app.
    pub async fn handle(self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let mut record = self.record(&req);
        let grpc = respond::is_grpc(req.headers());
        let (mut parts, body) = req.into_parts();
        let client_upgrade = ClientUpgrade::take(&mut parts.extensions, &parts.headers);
        let upgrade = headers::is_upgrade(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        let host = match forward::authority(&parts.uri, &parts.headers) {
            Some(a) => forward::host(a),
            None => forward::host(&self.dst.to_string()),
        };
        let path = forward::path(&parts.uri);
        let version = forward::version(
            Protocol::Detect,
            parts.version,
            upgrade,
            &Settings::default(),
        );
        let current = self.sidecar.store.current();
        if let Some(propagation) = current
            .as_ref()
            .and_then(|s| s.model.mesh.propagation.as_ref())
        {
            self.sidecar.propagation.record(propagation, &parts.headers);
        }
        let head = forward::head(parts.method, host, path, parts.headers, version);
        let body_timeout = parts.extensions.get::<BodyTimeout>().copied();
        let req = Request::from_parts(head, incoming(body, body_timeout));
        let timeout = current.map_or(std::time::Duration::from_secs(10), |s| {
            s.model.mesh.connect_timeout
        });
        let to = super::Upstream {
            addr: self.dst,
            version,
            connect_timeout: timeout,
            cluster: &self.sidecar.app,
        };
        let resp = match self
            .sidecar
            .inbound_pool
            .send_from(&to, self.from, req)
            .await
        {
            Ok(resp) => forward::response(resp, parts.version, client_upgrade),
            Err(failed) => {
                record.set_error(&failed.error);
                respond::remote_error(&failed.error, grpc)
            }
        };
        record.response_code = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let body = Recorded::new(
            body,
            Recorder::new(self.sidecar.metrics.clone(), record, started),
        );
        Response::from_parts(parts, Body::new(body))
    }

    fn record(&self, req: &Request<Incoming>) -> RequestRecord {
        let id = &self.sidecar.identity;
        let access = self.sidecar.metrics.access_log().then(|| {
            let authority = forward::authority(req.uri(), req.headers()).unwrap_or_default();
            let mut access = AccessDetails::of(req, authority);
            access.upstream = Some(self.dst);
            access
        });
        let series = self.sidecar.metrics.inbound(id, self.dst.port());
        RequestRecord::new(series, access)
    }
}
