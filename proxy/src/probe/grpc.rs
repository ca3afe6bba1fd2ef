//! A `grpc` probe: `grpc.health.v1.Health/Check` over plaintext HTTP/2, the request and the
//! answer encoded by hand (one string field out, one enum field back), so no protoc is needed.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

const PATH: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// Asks the server at `addr` whether `service` is serving.
pub async fn check(addr: SocketAddr, service: &str, timeout: Duration) -> Result<(), String> {
    let what = format!("grpc health check of {service:?} at {addr}");
    let tcp = super::connect_app(addr, timeout)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| format!("{what}: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://{addr}{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/sluice")
        .body(Full::new(Bytes::from(request(service))))
        .map_err(|e| format!("{what}: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!("{what}: HTTP status {}", resp.status().as_u16()));
    }
    let header_status = grpc_status(resp.headers());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let status = body.trailers().and_then(grpc_status).or(header_status);
    match status {
        Some((0, _)) => {}
        Some((code, message)) => return Err(format!("{what}: grpc-status {code} {message}")),
        None => return Err(format!("{what}: no grpc-status")),
    }
    match serving_status(&body.to_bytes()) {
        Some(SERVING) => Ok(()),
        Some(other) => Err(format!("{what}: status {}", status_name(other))),
        None => Err(format!("{what}: malformed HealthCheckResponse")),
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some((code, message))
}

fn status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// A length-prefixed `HealthCheckRequest { string service = 1; }`.
pub fn request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        varint(service.len() as u64, &mut message);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

/// The `status` (field 1, varint) of a length-prefixed `HealthCheckResponse`; unknown fields
/// are skipped, an absent status is UNKNOWN (0).
pub fn serving_status(framed: &[u8]) -> Option<u64> {
    let (&compressed, rest) = framed.split_first()?;
    if compressed != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
    let mut message = rest.get(4..4 + len)?;
    let mut status = 0;
    while !message.is_empty() {
        let key = read_varint(&mut message)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = read_varint(&mut message)?,
            (_, 0) => {
                read_varint(&mut message)?;
            }
            (_, 2) => {
                let n = usize::try_from(read_varint(&mut message)?).ok()?;
                message = message.get(n..)?;
            }
            (_, 1) => message = message.get(8..)?,
            (_, 5) => message = message.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}
