//! What a request URL names: a discovery document, a collection or one object.

use crate::catalog::{Catalog, ResourceType};
use crate::status::ApiError;

/// The target of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/version`.
    Version,
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: the groups.
    Groups,
    /// `/apis/GROUP`.
    Group(&'a str),
    /// `/api/v1` or `/apis/GROUP/VERSION`: the resources of a group version.
    Resources {
        /// API group.
        group: &'a str,
        /// Version.
        version: &'a str,
    },
    /// `/openapi/v2`: the OpenAPI v2 document (empty: no schemas).
    OpenApiV2,
    /// `/openapi/v3`: where the group versions' OpenAPI documents are.
    OpenApiRoot,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`.
    OpenApi {
        /// API group.
        group: &'a str,
        /// Version.
        version: &'a str,
    },
    /// A collection: all objects of a type, or those of one namespace.
    Collection(Target<'a>),
    /// One object.
    Object(Target<'a>, &'a str),
}

/// A resource type at a version, with the namespace of the URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The resource type.
    pub resource: &'a ResourceType,
    /// The version of the URL.
    pub version: &'a str,
    /// The namespace of the URL (`None`: all namespaces, or a cluster-scoped type).
    pub namespace: Option<&'a str>,
}

/// Parses `path` against the served types.
pub fn parse<'a>(catalog: &'a Catalog, path: &'a str) -> Result<Route<'a>, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::no_route(path);
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz" | "readyz" | "livez"] => return Ok(Route::Health),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiRoot),
        ["openapi", "v3", "api", version] => ("", *version, &[][..]),
        ["openapi", "v3", "apis", group, version] => (*group, *version, &[][..]),
        ["apis", group] => {
            return if catalog.groups().iter().any(|(g, _)| g == group) {
                Ok(Route::Group(group))
            } else {
                Err(not_found())
            };
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found()),
    };
    if catalog.at_version(group, version).next().is_none() {
        return Err(not_found());
    }
    let find = |plural: &str| {
        catalog
            .by_plural(group, version, plural)
            .ok_or_else(not_found)
    };
    let target = |resource, namespace| Target {
        resource,
        version,
        namespace,
    };
    if segments.first() == Some(&"openapi") {
        return Ok(Route::OpenApi { group, version });
    }
    match rest {
        [] => Ok(Route::Resources { group, version }),
        [plural] => Ok(Route::Collection(target(find(plural)?, None))),
        [plural, name] => {
            let resource = find(plural)?;
            if resource.namespaced {
                return Err(not_found());
            }
            Ok(Route::Object(target(resource, None), name))
        }
        ["namespaces", namespace, plural] => {
            let resource = find(plural)?;
            if !resource.namespaced {
                return Err(not_found());
            }
            Ok(Route::Collection(target(resource, Some(namespace))))
        }
        ["namespaces", namespace, plural, name] => {
            let resource = find(plural)?;
            if !resource.namespaced {
                return Err(not_found());
            }
            Ok(Route::Object(target(resource, Some(namespace)), name))
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::IstioVersion;

    #[test]
    fn urls_name_collections_and_objects() {
        let catalog = Catalog::kubernetes().with_istio(&[IstioVersion::V1alpha3]);
        let route = |path| parse(&catalog, path);
        assert_eq!(route("/api").unwrap(), Route::CoreVersions);
        assert_eq!(
            route("/api/v1").unwrap(),
            Route::Resources {
                group: "",
                version: "v1"
            }
        );
        let Route::Collection(t) = route("/api/v1/pods").unwrap() else {
            panic!("pods is a collection")
        };
        assert_eq!((t.resource.kind.as_str(), t.namespace), ("Pod", None));
        let Route::Object(t, name) = route("/api/v1/namespaces/shop").unwrap() else {
            panic!("a namespace is an object")
        };
        assert_eq!((t.resource.kind.as_str(), name), ("Namespace", "shop"));
        let Route::Object(t, name) =
            route("/apis/networking.istio.io/v1alpha3/namespaces/shop/virtualservices/vs").unwrap()
        else {
            panic!("a virtual service is an object")
        };
        assert_eq!(
            (t.version, t.namespace, name),
            ("v1alpha3", Some("shop"), "vs")
        );
        for missing in [
            "/apis/networking.istio.io/v1/virtualservices",
            "/api/v1/pods/x",
            "/api/v1/namespaces/shop/namespaces",
            "/api/v1/namespaces/shop/pods/x/status",
            "/apis/example.com",
            "/metrics",
        ] {
            assert_eq!(route(missing).unwrap_err().code, 404, "{missing}");
        }
    }
}
