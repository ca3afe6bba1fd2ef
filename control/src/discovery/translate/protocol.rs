//! The protocol of a Service port, as Istio derives it (`ConvertProtocol` in
//! istio/istio `pkg/config/kube/conversion.go`, names from `pkg/config/protocol`).

/// What a Service port carries, for sluice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortProtocol {
    /// A protocol a ServiceEntry port can declare (`HTTP`, `GRPC`, `TCP`...).
    Declared(&'static str),
    /// Nothing declared: the proxy detects it from the first bytes.
    Detect,
    /// UDP (by `protocol: UDP`, or a TCP port named `udp-...`, as Istio reads it):
    /// Istio builds no listener for it, and sluice captures TCP only.
    Udp,
}

/// Ports Istio treats as TCP when nothing else declares a protocol, because sniffing
/// would break their server-first protocols: SMTP, DNS, MySQL, MongoDB.
const SERVER_FIRST_PORTS: [i32; 4] = [25, 53, 3306, 27017];

/// The protocol of a port: `appProtocol` when set (the Kubernetes standard names
/// `kubernetes.io/h2c`, `kubernetes.io/ws` and `kubernetes.io/wss` first), else the
/// port name; in both, `grpc-web...` and then the text before the first `-` are
/// matched without regard to case. Unknown names leave the protocol to detection,
/// except on the server-first ports (TCP).
pub fn port_protocol(number: i32, name: Option<&str>, app_protocol: Option<&str>) -> PortProtocol {
    let name = match app_protocol {
        Some("kubernetes.io/h2c") => return PortProtocol::Declared("HTTP2"),
        Some("kubernetes.io/ws") => return PortProtocol::Declared("HTTP"),
        Some("kubernetes.io/wss") => return PortProtocol::Declared("HTTPS"),
        Some(app) => app,
        None => name.unwrap_or_default(),
    };
    if name
        .get(..GRPC_WEB.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(GRPC_WEB))
    {
        return PortProtocol::Declared("GRPC-WEB");
    }
    let prefix = name.split_once('-').map_or(name, |(p, _)| p);
    let declared = match prefix.to_ascii_lowercase().as_str() {
        "udp" => return PortProtocol::Udp,
        "tcp" => "TCP",
        "http" => "HTTP",
        "http2" => "HTTP2",
        "https" => "HTTPS",
        "grpc" => "GRPC",
        "tls" => "TLS",
        "mongo" => "MONGO",
        "redis" => "REDIS",
        "mysql" => "MYSQL",
        _ if SERVER_FIRST_PORTS.contains(&number) => "TCP",
        _ => return PortProtocol::Detect,
    };
    PortProtocol::Declared(declared)
}

const GRPC_WEB: &str = "grpc-web";

#[cfg(test)]
mod tests {
    use super::PortProtocol::{Declared, Detect, Udp};
    use super::*;

    #[test]
    fn follows_istio_convert_protocol() {
        let cases = [
            (80, None, None, Detect),
            (80, Some("http"), None, Declared("HTTP")),
            (80, Some("http-web"), None, Declared("HTTP")),
            (80, Some("HTTP-web"), None, Declared("HTTP")),
            (80, Some("http2"), None, Declared("HTTP2")),
            (80, Some("grpc-api"), None, Declared("GRPC")),
            (80, Some("grpc-web"), None, Declared("GRPC-WEB")),
            (80, Some("grpc-web-ui"), None, Declared("GRPC-WEB")),
            (80, Some("grpcweb-ui"), None, Detect),
            (443, Some("https"), None, Declared("HTTPS")),
            (443, Some("tls-passthrough"), None, Declared("TLS")),
            (5432, Some("tcp-postgres"), None, Declared("TCP")),
            (27017, Some("mongo"), None, Declared("MONGO")),
            (6379, Some("redis-main"), None, Declared("REDIS")),
            (3306, Some("mysql"), None, Declared("MYSQL")),
            (80, Some("udp-stats"), None, Udp),
            (80, Some("web"), None, Detect),
            (80, Some("http_proxy"), None, Detect),
            (80, Some("httpx-web"), None, Detect),
            // Server-first well-known ports are TCP when nothing declares another protocol.
            (3306, Some("db"), None, Declared("TCP")),
            (53, None, None, Declared("TCP")),
            (25, Some("smtp"), None, Declared("TCP")),
            (3306, Some("http-admin"), None, Declared("HTTP")),
            // appProtocol wins over the name, and is read the same way.
            (80, Some("http-web"), Some("https"), Declared("HTTPS")),
            (
                80,
                Some("something-httpx"),
                Some("HTTP2"),
                Declared("HTTP2"),
            ),
            (80, Some("http"), Some("grpc"), Declared("GRPC")),
            (80, Some("http"), Some("custom.example.com/proto"), Detect),
            (
                80,
                Some("web"),
                Some("kubernetes.io/h2c"),
                Declared("HTTP2"),
            ),
            (80, Some("web"), Some("kubernetes.io/ws"), Declared("HTTP")),
            (
                443,
                Some("web"),
                Some("kubernetes.io/wss"),
                Declared("HTTPS"),
            ),
            (80, None, Some("tcp"), Declared("TCP")),
            // A multi-byte character where grpc-web would end must not split a char.
            (80, Some("grpc-weé"), None, Declared("GRPC")),
        ];
        for (number, name, app, expected) in cases {
            assert_eq!(
                port_protocol(number, name, app),
                expected,
                "port {number} name {name:?} appProtocol {app:?}"
            );
        }
    }
}
