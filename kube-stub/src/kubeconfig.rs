//! The kubeconfig clients use to reach the stand-in: one cluster, one user with a token, one
//! context, current.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

/// A kubeconfig (YAML) for `server` (an `https://` URL) trusting `ca_pem` and sending `token`.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "sluice-kube-stub",
            "cluster": {
                "server": server,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{"name": "sluice-kube-stub", "user": {"token": token}}],
        "contexts": [{
            "name": "sluice-kube-stub",
            "context": {"cluster": "sluice-kube-stub", "user": "sluice-kube-stub"},
        }],
        "current-context": "sluice-kube-stub",
        "preferences": {},
    });
    serde_norway::to_string(&config).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_names_server_ca_and_token() {
        let text = render("https://127.0.0.1:6443", "PEM", "secret");
        let parsed: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            parsed["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            parsed["clusters"][0]["cluster"]["certificate-authority-data"],
            STANDARD.encode("PEM")
        );
        assert_eq!(parsed["users"][0]["user"]["token"], "secret");
        assert_eq!(parsed["current-context"], "sluice-kube-stub");
    }
}
