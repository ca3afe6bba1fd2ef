//! Routing decisions: which VirtualService applies to a request, which rule
//! matches, and what it asks for. Pure functions of the model and the request.

mod sticky;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use http::HeaderValue;

use sluice_api::model::routes::{
    HeaderOps, HttpAction, HttpRule, Redirect, RequestInfo, Rewrite, Target, WeightedTargets,
};
use sluice_api::model::{Model, ServiceId, VirtualHost};

use crate::error::ProxyError;
use crate::route::{candidates, default_target};

/// What to do with a request.
#[derive(Debug)]
pub enum Action<'m> {
    /// Forward to a destination.
    Forward {
        /// The destination.
        target: Cow<'m, Target>,
        /// Header changes of the chosen destination.
        headers: Option<&'m HeaderOps>,
    },
    /// Answer with a redirect.
    Redirect {
        /// The Location header.
        location: String,
        /// Status code.
        code: u16,
    },
    /// Answer directly.
    Respond {
        /// Status code.
        status: u16,
        /// Body.
        body: String,
    },
    /// Answer with an error.
    Fail(ProxyError),
}

/// The routing of one request.
#[derive(Debug)]
pub struct Routed<'m> {
    /// The rule that matched, if a VirtualService applies.
    pub rule: Option<&'m HttpRule>,
    /// The uri prefix the rule matched on, for prefix rewrites.
    pub matched_prefix: Option<&'m str>,
    /// What to do.
    pub action: Action<'m>,
    /// A `Set-Cookie` for the answer: the sticky user id the proxy made up.
    pub set_cookie: Option<HeaderValue>,
}

/// Routes a request that was sent to `dst` (the original destination), from a client
/// whose address is unknown (a ReleasePolicy keyed on `clientAddress` then does not apply).
pub fn route<'m>(model: &'m Model, req: &RequestInfo<'_>, dst: SocketAddr) -> Routed<'m> {
    route_from(model, req, dst, None)
}

/// Routes a request from `client` that was sent to `dst` (the original destination). A
/// weighted route whose destination host has a ReleasePolicy with `sticky` picks by the
/// user's bucket rather than the smooth schedule.
pub fn route_from<'m>(
    model: &'m Model,
    req: &RequestInfo<'_>,
    dst: SocketAddr,
    client: Option<IpAddr>,
) -> Routed<'m> {
    let (service, vhost) = select(model, req.authority, dst);
    let Some(vhost) = vhost else {
        let action = match service {
            Some(id) => Action::Forward {
                target: Cow::Owned(default_target(model, id)),
                headers: None,
            },
            None => Action::Fail(ProxyError::UnknownDestination(dst)),
        };
        return Routed {
            rule: None,
            matched_prefix: None,
            action,
            set_cookie: None,
        };
    };
    by_rules(model, vhost, req, client)
}

/// Routes a request by the http rules of the VirtualService that applies to it (the
/// sidecar's and the gateway's routing share this), for a request from `client`.
pub fn by_rules<'m>(
    model: &'m Model,
    vhost: &'m VirtualHost,
    req: &RequestInfo<'_>,
    client: Option<IpAddr>,
) -> Routed<'m> {
    let Some(rule) = vhost.http.iter().find(|r| r.matches(req)) else {
        let err = ProxyError::NoRoute {
            vs: vhost.name.clone(),
            method: req.method.into(),
            path: req.path.into(),
        };
        return Routed {
            rule: None,
            matched_prefix: None,
            action: Action::Fail(err),
            set_cookie: None,
        };
    };
    let mut set_cookie = None;
    let action = match &rule.action {
        HttpAction::Route(targets) => match pick(model, targets, req, client, &mut set_cookie) {
            Some((target, _, headers)) => Action::Forward {
                target: Cow::Borrowed(target),
                headers: Some(headers),
            },
            None => Action::Fail(ProxyError::NoRoute {
                vs: vhost.name.clone(),
                method: req.method.into(),
                path: req.path.into(),
            }),
        },
        HttpAction::Redirect(r) => Action::Redirect {
            location: location(r, req),
            code: r.code,
        },
        HttpAction::DirectResponse { status, body } => Action::Respond {
            status: *status,
            body: body.clone(),
        },
    };
    Routed {
        rule: Some(rule),
        matched_prefix: rule.matched_uri_prefix(req),
        action,
        set_cookie,
    }
}

/// A weighted route's pick: by the sticky user's bucket when the destination host's
/// ReleasePolicy names users and the request has a user, else by the schedule.
fn pick<'m>(
    model: &'m Model,
    targets: &'m WeightedTargets,
    req: &RequestInfo<'_>,
    client: Option<IpAddr>,
    set_cookie: &mut Option<HeaderValue>,
) -> Option<&'m (Target, u32, HeaderOps)> {
    let key = targets
        .targets
        .first()
        .and_then(|(t, ..)| model.releases.get(&t.host))
        .and_then(|r| r.sticky.as_ref());
    match key.and_then(|k| sticky::user(k, req.headers, client)) {
        Some(user) => {
            *set_cookie = user.set_cookie;
            targets.pick_bucket(user.bucket)
        }
        None => targets.pick(),
    }
}

/// The service a request is for and its routing: the host of the authority
/// (Kubernetes short names resolved in the proxy's namespace) when the mesh
/// knows it, else the service of the original destination.
pub fn select<'m>(
    model: &'m Model,
    authority: &str,
    dst: SocketAddr,
) -> (Option<ServiceId>, Option<&'m VirtualHost>) {
    let host = strip_port(authority);
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    for candidate in candidates(
        &host,
        &model.workload.namespace,
        &model.workload.cluster_domain,
    ) {
        if let Some(vhost) = model.routes.lookup(&candidate) {
            return (model.registry.by_host(&candidate), Some(&**vhost));
        }
        if let Some(id) = model.registry.by_host(&candidate) {
            return (Some(id), None);
        }
    }
    match model.registry.by_destination(dst) {
        Some(id) => (
            Some(id),
            model
                .routes
                .lookup(&model.registry.get(id).host)
                .map(|v| &**v),
        ),
        None => (None, None),
    }
}

/// The host part of an authority (`host`, `host:port`, `[v6]:port`).
pub fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(authority, |(h, _)| h);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The path (and query) after a rule's rewrite.
pub fn rewrite_path(
    rewrite: &Rewrite,
    matched_prefix: Option<&str>,
    path: &str,
    query: Option<&str>,
) -> String {
    let new_path = match rewrite {
        Rewrite::Prefix { uri: None, .. } => path.to_string(),
        Rewrite::Prefix { uri: Some(uri), .. } => match matched_prefix {
            Some(prefix) if path.len() >= prefix.len() => {
                let rest = &path[prefix.len()..];
                // `/api` + `/v1` must not become `//v1` when the rewrite ends in a slash.
                if uri.ends_with('/') && rest.starts_with('/') {
                    format!("{uri}{}", &rest[1..])
                } else {
                    format!("{uri}{rest}")
                }
            }
            _ => uri.clone(),
        },
        Rewrite::Regex {
            pattern, rewrite, ..
        } => pattern.replace_all(path, rewrite.as_str()).into_owned(),
    };
    let new_path = if new_path.is_empty() {
        "/".to_string()
    } else {
        new_path
    };
    match query {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    }
}

/// The authority a rewrite sets, if any.
pub fn rewrite_authority(rewrite: &Rewrite) -> Option<&str> {
    match rewrite {
        Rewrite::Prefix { authority, .. } | Rewrite::Regex { authority, .. } => {
            authority.as_deref()
        }
    }
}

fn location(r: &Redirect, req: &RequestInfo<'_>) -> String {
    let scheme = r.scheme.as_deref().unwrap_or(req.scheme);
    let host = r
        .authority
        .as_deref()
        .unwrap_or_else(|| strip_port(req.authority));
    let port = match (r.port, r.port_from_scheme) {
        (Some(p), _) => Some(p),
        (None, true) => None,
        (None, false) => req
            .authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok()),
    };
    let path = match &r.uri {
        Some(uri) => uri.clone(),
        None if req.query.is_empty() => req.path.to_string(),
        None => format!("{}?{}", req.path, req.query),
    };
    let default_port = matches!((scheme, port), ("http", Some(80)) | ("https", Some(443)));
    match port {
        Some(p) if !default_port => format!("{scheme}://{host}:{p}{path}"),
        _ => format!("{scheme}://{host}{path}"),
    }
}

#[cfg(test)]
mod tests;
