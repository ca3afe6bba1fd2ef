//! Which proxies a VirtualService binds to: sidecars (`mesh`) or named Gateways, with Istio's
//! spellings of a gateway's name.

use serde::Serialize;

/// The proxies route tables are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Binding<'a> {
    /// Sidecars: VirtualServices bound to no gateway, or to `mesh`.
    Mesh,
    /// The servers of one Gateway resource.
    Gateway {
        /// The Gateway's namespace.
        namespace: &'a str,
        /// The Gateway's name.
        name: &'a str,
    },
}

impl Binding<'_> {
    /// True when a `gateways` list written in a VirtualService of namespace `vs_namespace`
    /// reaches these proxies: `mesh` (or nothing) for sidecars; `NAME` (the VirtualService's
    /// namespace), `NS/NAME` or the legacy `NAME.NS[.svc...]` for a Gateway.
    pub fn admits(&self, gateways: &[String], vs_namespace: &str) -> bool {
        match *self {
            Binding::Mesh => gateways.is_empty() || gateways.iter().any(|g| g == "mesh"),
            Binding::Gateway { namespace, name } => gateways
                .iter()
                .any(|g| g != "mesh" && resolve(g, vs_namespace) == Some((namespace, name))),
        }
    }
}

/// `(namespace, name)` of a gateway reference as Istio resolves it.
fn resolve<'g>(reference: &'g str, vs_namespace: &'g str) -> Option<(&'g str, &'g str)> {
    if let Some((ns, name)) = reference.split_once('/') {
        return Some((ns, name));
    }
    let mut parts = reference.split('.');
    let name = parts.next()?;
    Some((parts.next().unwrap_or(vs_namespace), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_references_resolve_as_istio_does() {
        let gw = Binding::Gateway {
            namespace: "istio-system",
            name: "edge",
        };
        let admits = |gws: &[&str], ns: &str| {
            let gws: Vec<String> = gws.iter().map(ToString::to_string).collect();
            gw.admits(&gws, ns)
        };
        assert!(admits(&["istio-system/edge"], "prod"));
        assert!(admits(&["edge"], "istio-system"));
        assert!(
            !admits(&["edge"], "prod"),
            "a short name is in the VirtualService's namespace"
        );
        assert!(admits(&["edge.istio-system.svc.cluster.local"], "prod"));
        assert!(admits(&["mesh", "istio-system/edge"], "prod"));
        assert!(!admits(&["mesh"], "prod"));
        assert!(
            !admits(&[], "istio-system"),
            "no gateways means the mesh only"
        );
        assert!(admits(&["prod/other", "istio-system/edge"], "prod"));
        let mesh = |gws: &[&str]| {
            let gws: Vec<String> = gws.iter().map(ToString::to_string).collect();
            Binding::Mesh.admits(&gws, "prod")
        };
        assert!(mesh(&[]) && mesh(&["mesh", "edge"]) && !mesh(&["edge"]));
    }
}
