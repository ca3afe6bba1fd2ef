//! `Gateway`: a load balancer at the edge of the mesh.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// The spec of a Gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Gateway {
    /// Servers (ports and hosts) the gateway exposes.
    pub servers: Vec<Server>,
    /// Labels of the gateway workloads.
    pub selector: BTreeMap<String, String>,
}

/// One exposed port with its hosts.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Server {
    /// The port.
    pub port: GatewayPort,
    /// Address to bind to.
    pub bind: Option<String>,
    /// Hosts exposed (`namespace/host` allowed).
    pub hosts: Vec<String>,
    /// TLS settings.
    pub tls: Option<ServerTlsSettings>,
    /// Default endpoint.
    pub default_endpoint: Option<String>,
    /// Server name.
    pub name: Option<String>,
}

/// A gateway port.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayPort {
    /// Port number.
    pub number: u32,
    /// Protocol: HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS.
    pub protocol: String,
    /// Port name.
    pub name: String,
    /// Port on the gateway workload, if different.
    pub target_port: Option<u32>,
}

/// TLS settings of a gateway server.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerTlsSettings {
    /// Redirect HTTP to HTTPS.
    pub https_redirect: Option<bool>,
    /// TLS mode.
    pub mode: Option<ServerTlsMode>,
    /// Server certificate file.
    pub server_certificate: Option<String>,
    /// Private key file.
    pub private_key: Option<String>,
    /// CA certificates file.
    pub ca_certificates: Option<String>,
    /// Certificate revocation list file.
    pub ca_crl: Option<String>,
    /// Secret holding the certificates.
    pub credential_name: Option<String>,
    /// Secrets holding the certificates.
    pub credential_names: Vec<String>,
    /// Accepted client names.
    pub subject_alt_names: Vec<String>,
    /// Accepted client key hashes.
    pub verify_certificate_spki: Vec<String>,
    /// Accepted client certificate hashes.
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS version.
    pub min_protocol_version: Option<TlsProtocol>,
    /// Maximum TLS version.
    pub max_protocol_version: Option<TlsProtocol>,
    /// Cipher suites.
    pub cipher_suites: Vec<String>,
}

/// TLS modes of a gateway server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Forward TLS as is, routed by SNI.
    Passthrough,
    /// Terminate TLS.
    Simple,
    /// Terminate TLS, require client certificates.
    Mutual,
    /// Forward TLS as is, by SNI, to a mesh destination.
    AutoPassthrough,
    /// Terminate with mesh certificates.
    IstioMutual,
    /// Terminate, client certificates optional.
    OptionalMutual,
}

/// TLS protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsProtocol {
    /// Automatic.
    #[serde(rename = "TLS_AUTO")]
    Auto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    V1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    V1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    V1_3,
}
