//! Protocol upgrades: which ones the proxy tunnels, and the tunnels themselves.
//!
//! Only WebSocket is tunnelled (as Istio does: its VirtualService has no per-route upgrade
//! setting, and Envoy's sidecar listeners allow `websocket` only). Any other `Upgrade`, `h2c`
//! first among them, is dropped from the request, which is then served as the plain HTTP/1.1
//! request it also is: RFC 9110 §7.8 lets a server ignore `Upgrade`, every client must accept
//! that (curl's `--http2` on `http://` sends `Upgrade: h2c` and carries on), and it is what
//! Envoy does. Tunnelling `h2c` would let a client send requests the proxy never sees, past
//! routing, timeouts and metrics; refusing it with an error would break ordinary clients.
//!
//! A tunnel holds the drain of the connection it came from (draining waits for it, up to the
//! drain timeout), a place in the connection limit, and is closed once idle.

use std::sync::Arc;

use http::Extensions;
use http::header::{CONNECTION, HeaderMap, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::drain;
use crate::limits::Gates;
use crate::tcp::splice;

/// The upgrade protocol tunnelled.
const WEBSOCKET: &str = "websocket";

/// True when the request asks to switch to a protocol the proxy tunnels: `Connection:
/// upgrade` and `Upgrade: websocket`.
pub fn is_allowed(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    let protocols: Vec<&str> = headers
        .get_all(UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    connection_upgrade
        && protocols.len() == 1
        && protocols[0]
            .split('/')
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case(WEBSOCKET))
}

/// What a client connection lends each of its requests for a tunnel (a request extension
/// set by [`crate::http::serve_with`]).
#[derive(Clone, Debug)]
pub struct Tunnels {
    drain: drain::Watch,
    gates: Arc<Gates>,
}

impl Tunnels {
    /// Tunnels of a connection held by `drain`, within `gates`.
    pub fn new(drain: drain::Watch, gates: Arc<Gates>) -> Tunnels {
        Tunnels { drain, gates }
    }
}

/// The client's side of an upgrade it asked for and the proxy tunnels, and the connection's
/// tunnel settings.
#[derive(Debug)]
pub struct ClientUpgrade {
    on_upgrade: OnUpgrade,
    tunnels: Tunnels,
}

impl ClientUpgrade {
    /// Takes the client's upgrade out of a request's extensions: `None` unless the request
    /// asks for an upgrade the proxy tunnels ([`is_allowed`]) on a connection that lends
    /// [`Tunnels`].
    pub fn take(extensions: &mut Extensions, headers: &HeaderMap) -> Option<ClientUpgrade> {
        let tunnels = extensions.remove::<Tunnels>();
        let on_upgrade = extensions.remove::<OnUpgrade>();
        match (on_upgrade, tunnels) {
            (Some(on_upgrade), Some(tunnels)) if is_allowed(headers) => Some(ClientUpgrade {
                on_upgrade,
                tunnels,
            }),
            _ => None,
        }
    }

    /// Joins the client's and the upstream's upgraded connections, on a task that counts in
    /// drain and the connection limit and ends when idle; `false` (and nothing started) when
    /// the connection limit is reached.
    pub fn tunnel(self, upstream: OnUpgrade) -> bool {
        let Tunnels { drain, gates } = self.tunnels;
        let Some(permit) = gates.connection() else {
            return false;
        };
        let idle = gates.limits.tunnel_idle_timeout;
        tokio::spawn(async move {
            let _held = (drain, permit);
            let (client, upstream) = match tokio::try_join!(self.on_upgrade, upstream) {
                Ok(pair) => pair,
                Err(e) => return tracing::debug!("upgrade failed: {e}"),
            };
            let done = splice::splice(
                TokioIo::new(client),
                TokioIo::new(upstream),
                &[],
                &[],
                Some(idle),
            )
            .await;
            if let Some(e) = done.error {
                tracing::debug!("upgraded connection: {e}");
            }
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_websocket_is_tunnelled() {
        let cases: [(&[(&str, &str)], bool); 7] = [
            (&[("connection", "Upgrade"), ("upgrade", "websocket")], true),
            (
                &[
                    ("connection", "keep-alive, upgrade"),
                    ("upgrade", "WebSocket"),
                ],
                true,
            ),
            (
                &[
                    ("connection", "Upgrade, HTTP2-Settings"),
                    ("upgrade", "h2c"),
                ],
                false,
            ),
            (
                &[("connection", "upgrade"), ("upgrade", "websocket, h2c")],
                false,
            ),
            (&[("connection", "upgrade"), ("upgrade", "TLS/1.2")], false),
            (&[("upgrade", "websocket")], false),
            (&[("connection", "upgrade")], false),
        ];
        for (headers, allowed) in cases {
            assert_eq!(is_allowed(&map(headers)), allowed, "{headers:?}");
        }
    }
}
