//! Gateway rules, as Istio validates them.

use std::collections::BTreeMap;

use super::Findings;
use super::fields::{check_labels, check_port, host_problem, is_dns_label, is_partial_wildcard};
use super::service_entry::PROTOCOLS;
use crate::istio::gateway::{Gateway, Server, ServerTlsMode, ServerTlsSettings, TlsProtocol};

/// The prefix of a Unix domain socket bind address.
const UNIX_PREFIX: &str = "unix://";

pub(super) fn check(gw: &Gateway, name: &str, f: &mut Findings<'_>) {
    if name.contains('.') {
        f.error(
            "metadata.name",
            format!("\"{name}\" is not a valid Gateway name: it must be a DNS label (no '.')"),
        );
    }
    if gw.servers.is_empty() {
        f.error(
            "spec.servers",
            "required: a Gateway needs at least one server",
        );
    }
    check_labels(&gw.selector, "spec.selector", f);
    let mut port_names = BTreeMap::new();
    for (i, s) in gw.servers.iter().enumerate() {
        let path = format!("spec.servers[{i}]");
        check_server(s, &path, f);
        if !s.port.name.is_empty()
            && let Some(first) = port_names.insert(s.port.name.as_str(), i)
        {
            f.error(
                &format!("{path}.port.name"),
                format!(
                    "port name \"{}\" is already used by spec.servers[{first}]",
                    s.port.name
                ),
            );
        }
    }
}

fn check_server(s: &Server, path: &str, f: &mut Findings<'_>) {
    let proto = s.port.protocol.to_ascii_uppercase();
    let bind = s.bind.as_deref().unwrap_or_default();
    let unix = bind.strip_prefix(UNIX_PREFIX);
    if !PROTOCOLS.contains(&proto.as_str()) {
        f.error(
            &format!("{path}.port.protocol"),
            format!(
                "protocol \"{}\" is not one of {}",
                s.port.protocol,
                PROTOCOLS.join(", ")
            ),
        );
    }
    if s.port.number > 0 || unix.is_none() {
        check_port(s.port.number, &format!("{path}.port.number"), f);
    }
    if s.port.name.is_empty() {
        f.error(
            &format!("{path}.port.name"),
            "required: a port needs a name",
        );
    }
    if s.port.target_port.is_some_and(|t| t > 0) {
        f.error(
            &format!("{path}.port.targetPort"),
            "targetPort has no effect on Gateways",
        );
    }
    match unix {
        Some(socket) => {
            if !socket.starts_with('@') && (!socket.starts_with('/') || socket.ends_with('/')) {
                f.error(
                    &format!("{path}.bind"),
                    format!("\"{socket}\" is not an absolute path to a socket file"),
                );
            }
            if s.port.number != 0 {
                f.error(
                    &format!("{path}.port.number"),
                    "must be 0 when binding to a unix socket",
                );
            }
        }
        None if !bind.is_empty() && bind.parse::<std::net::IpAddr>().is_err() => f.error(
            &format!("{path}.bind"),
            format!("\"{bind}\" is not an IP address or unix:// path"),
        ),
        None => {}
    }
    if s.hosts.is_empty() {
        f.error(
            &format!("{path}.hosts"),
            "required: a server needs at least one host",
        );
    }
    for (j, h) in s.hosts.iter().enumerate() {
        check_server_host(h, &format!("{path}.hosts[{j}]"), f);
    }
    let is_tls = matches!(proto.as_str(), "HTTPS" | "TLS");
    let is_http = matches!(
        proto.as_str(),
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTP_PROXY"
    );
    match &s.tls {
        None if is_tls => f.error(
            &format!("{path}.tls"),
            format!("a {proto} server needs tls settings"),
        ),
        None => {}
        Some(tls) => {
            let passthrough = matches!(
                tls.mode,
                None | Some(ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough)
            );
            let files = tls.ca_certificates.is_some()
                || tls.private_key.is_some()
                || tls.server_certificate.is_some();
            if !is_tls && is_http && (!passthrough || files) {
                f.error(
                    &format!("{path}.tls"),
                    "a plain-text HTTP server takes no TLS settings besides httpsRedirect",
                );
            } else if !is_tls && !is_http {
                f.error(
                    &format!("{path}.tls"),
                    format!("a {proto} server takes no TLS settings"),
                );
            }
            if tls.https_redirect == Some(true) && !is_http {
                f.warn(
                    &format!("{path}.tls.httpsRedirect"),
                    "httpsRedirect applies to HTTP servers only",
                );
            }
            check_tls(tls, &format!("{path}.tls"), f);
        }
    }
}

/// `namespace/host` or `host`: the namespace `*`, `.` or a name; the host a
/// DNS name (not a short name), an IP address or a `*`/`*.suffix` wildcard.
fn check_server_host(h: &str, path: &str, f: &mut Findings<'_>) {
    let (ns, host) = match h.split_once('/') {
        Some((ns, host)) => (Some(ns), host),
        None => (None, h),
    };
    if let Some(ns) = ns
        && !(ns == "*" || ns == "." || is_dns_label(ns))
    {
        f.error(
            path,
            format!("\"{ns}\" in \"{h}\" is not a namespace (use *, . or a name)"),
        );
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return;
    }
    let problem = if host != "*" && !host.contains('.') {
        Some("short names are not allowed: write the full DNS name".to_string())
    } else if is_partial_wildcard(host) {
        Some("partial wildcards are not allowed: use * or *.suffix".to_string())
    } else {
        host_problem(host)
    };
    if let Some(problem) = problem {
        f.error(path, format!("\"{h}\" is not a valid host: {problem}"));
    }
}

fn check_tls(t: &ServerTlsSettings, path: &str, f: &mut Findings<'_>) {
    let at = |field: &str| format!("{path}.{field}");
    if matches!(
        t.min_protocol_version,
        Some(TlsProtocol::V1_0 | TlsProtocol::V1_1)
    ) && t.cipher_suites.is_empty()
    {
        f.warn(
            &at("minProtocolVersion"),
            "TLS versions below 1.2 need cipherSuites: the default ones no longer include compatible ciphers",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in t.cipher_suites.iter().enumerate() {
        if !seen.insert(c) {
            f.warn(
                &at(&format!("cipherSuites[{i}]")),
                format!("duplicate cipher suite \"{c}\" is ignored"),
            );
        }
    }
    let credential =
        t.credential_name.as_ref().is_some_and(|c| !c.is_empty()) || !t.credential_names.is_empty();
    let files = t.server_certificate.is_some() || t.private_key.is_some();
    match t.mode {
        Some(ServerTlsMode::IstioMutual) => {
            if files || t.ca_certificates.is_some() || credential {
                f.error(path, "ISTIO_MUTUAL uses mesh certificates: do not set serverCertificate, privateKey, caCertificates or credentialName");
            }
            return;
        }
        None | Some(ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough) => {
            if files || t.ca_certificates.is_some() || t.ca_crl.is_some() || credential {
                f.warn(
                    path,
                    "passthrough modes do not use certificates; they are ignored",
                );
            }
        }
        Some(ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual) => {
            let mode = if t.mode == Some(ServerTlsMode::Simple) {
                "SIMPLE"
            } else {
                "MUTUAL"
            };
            if !credential {
                if t.server_certificate.is_none() {
                    f.error(
                        &at("serverCertificate"),
                        format!("{mode} needs serverCertificate (or credentialName)"),
                    );
                }
                if t.private_key.is_none() {
                    f.error(
                        &at("privateKey"),
                        format!("{mode} needs privateKey (or credentialName)"),
                    );
                }
                if mode == "MUTUAL" && t.ca_certificates.is_none() {
                    f.error(
                        &at("caCertificates"),
                        "MUTUAL needs caCertificates (or credentialName)",
                    );
                }
            }
        }
    }
    if t.ca_crl.is_some() {
        if credential {
            f.error(
                &at("caCrl"),
                "with credentialName, the CRL belongs in the credential",
            );
        }
        if t.mode == Some(ServerTlsMode::Simple) {
            f.error(&at("caCrl"), "a CRL has no use with SIMPLE TLS");
        }
    }
}
