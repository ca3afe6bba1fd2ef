//! Gateway rules, as Istio validates them.

use super::Findings;
use super::fields::{check_host, check_labels, check_port};
use crate::istio::gateway::{Gateway, ServerTlsMode};

pub(super) fn check(gw: &Gateway, f: &mut Findings<'_>) {
    if gw.servers.is_empty() {
        f.error(
            "spec.servers",
            "required: a Gateway needs at least one server",
        );
    }
    check_labels(&gw.selector, "spec.selector", f);
    for (i, s) in gw.servers.iter().enumerate() {
        let path = format!("spec.servers[{i}]");
        check_port(s.port.number, &format!("{path}.port.number"), f);
        let proto = s.port.protocol.to_ascii_uppercase();
        if proto.is_empty() {
            f.error(
                &format!("{path}.port.protocol"),
                "required: HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS",
            );
        }
        if s.hosts.is_empty() {
            f.error(
                &format!("{path}.hosts"),
                "required: a server needs at least one host",
            );
        }
        for (j, h) in s.hosts.iter().enumerate() {
            let host = h.split_once('/').map_or(h.as_str(), |(_, host)| host);
            check_host(host, &format!("{path}.hosts[{j}]"), f);
        }
        let tls = s.tls.as_ref();
        let redirect = tls.and_then(|t| t.https_redirect).unwrap_or(false);
        let mode = tls.and_then(|t| t.mode);
        if (proto == "HTTPS" || proto == "TLS") && mode.is_none() {
            f.error(
                &format!("{path}.tls"),
                format!("a {proto} server needs tls settings with a mode"),
            );
        }
        if redirect && proto != "HTTP" {
            f.error(
                &format!("{path}.tls.httpsRedirect"),
                "httpsRedirect applies to HTTP servers only",
            );
        }
        if let Some(t) = tls {
            let has_cert = t.credential_name.is_some()
                || !t.credential_names.is_empty()
                || (t.server_certificate.is_some() && t.private_key.is_some());
            if matches!(
                mode,
                Some(ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual)
            ) && !has_cert
            {
                f.error(
                    &format!("{path}.tls"),
                    "SIMPLE and MUTUAL need credentialName or serverCertificate and privateKey",
                );
            }
        }
    }
}
