//! Compiled ReleasePolicies by destination host: the sticky user key, the fallback
//! subsets (resolved against the registry) and the access-log release fields.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use super::registry::Registry;
use super::routes::Target;
use crate::istio::virtual_service::Destination;
use crate::release_policy::{JwtCheck, ProtectedHeaders, ReleasePolicy, Sticky};
use crate::resource::{Resource, Spec};

/// The response header that marks a fallback answer unless the policy names another.
pub const DEFAULT_FALLBACK_HEADER: &str = "x-sluice-fallback";

/// The release of one destination host.
#[derive(Debug, Serialize)]
pub struct Release {
    /// `namespace/name` of the ReleasePolicy.
    pub name: String,
    /// Who a user is, for sticky weighted routing.
    pub sticky: Option<StickyKey>,
    /// Fallback of empty subsets.
    pub fallback: Option<FallbackPlan>,
    /// Request headers (lowercase) logged as access-log fields.
    pub access_log_headers: Vec<String>,
    /// Protected gray headers at the edge.
    pub protect: Option<Protect>,
}

/// The default protected header names (a trailing `*` is a prefix).
pub const DEFAULT_PROTECTED: [&str; 3] = ["x-gray-*", "x-swimlane", "x-target-version"];

/// Protected gray headers: which gateways, which headers, and the checks that let a
/// request keep them. Files are read by the proxy.
#[derive(Debug, Serialize)]
pub struct Protect {
    /// Gateways, `namespace/name`.
    pub gateways: Vec<String>,
    /// Header names or `prefix*`, lowercase.
    pub headers: Vec<String>,
    /// `(header, secret file)` of the shared token.
    pub token: Option<(String, String)>,
    /// Trusted client networks.
    pub trusted: Vec<IpNet>,
    /// The JWT check.
    pub jwt: Option<JwtCheck>,
}

/// The request property that names a user.
#[derive(Debug, Serialize)]
pub enum StickyKey {
    /// A request header (lowercase name).
    Header(String),
    /// A cookie, set by the proxy when missing.
    Cookie(StickyCookie),
    /// The client's IP address.
    ClientAddress,
}

/// The sticky cookie and the attributes of the `Set-Cookie` the proxy sends.
#[derive(Debug, Serialize)]
pub struct StickyCookie {
    /// Cookie name.
    pub name: String,
    /// `Max-Age`; zero makes a session cookie.
    pub ttl: Duration,
    /// `Path`.
    pub path: String,
    /// Extra attributes, as written.
    pub attributes: Vec<String>,
}

impl StickyCookie {
    /// The `Set-Cookie` value for a generated user id.
    pub fn set_cookie(&self, value: &str) -> String {
        let mut out = format!("{}={value}; Path={}", self.name, self.path);
        if !self.ttl.is_zero() {
            out += &format!("; Max-Age={}", self.ttl.as_secs());
        }
        for a in &self.attributes {
            out += "; ";
            out += a;
        }
        out
    }
}

/// Where requests for empty subsets go.
#[derive(Debug, Serialize)]
pub struct FallbackPlan {
    /// Response header marking a fallback answer (lowercase).
    pub header: String,
    /// `(from subset, fallback target)`.
    pub subsets: Vec<(String, Target)>,
}

impl FallbackPlan {
    /// The fallback of subset `name`, if it has one.
    pub fn of(&self, name: &str) -> Option<&Target> {
        self.subsets
            .iter()
            .find_map(|(from, to)| (from == name).then_some(to))
    }
}

/// ReleasePolicies by fully qualified host; the first loaded for a host applies.
#[derive(Debug, Default, Serialize)]
pub struct Releases {
    hosts: HashMap<String, Arc<Release>>,
}

impl Releases {
    /// Compiles the ReleasePolicies among `resources`.
    pub fn build(resources: &[Resource], registry: &Registry) -> Releases {
        let mut hosts = HashMap::new();
        for r in resources {
            let Spec::ReleasePolicy(rp) = &r.spec else {
                continue;
            };
            let ns = r.meta.namespace();
            let host = registry.fqdn(&rp.host, ns);
            hosts.entry(host.clone()).or_insert_with(|| {
                Arc::new(compile(
                    rp,
                    format!("{ns}/{}", r.meta.name),
                    ns,
                    &host,
                    registry,
                ))
            });
        }
        Releases { hosts }
    }

    /// The release of a fully qualified destination host.
    pub fn get(&self, host: &str) -> Option<&Release> {
        self.hosts.get(host).map(|r| &**r)
    }

    /// Every release, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Release> {
        self.hosts.values().map(|r| &**r)
    }

    /// True when no host has a release.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

fn compile(rp: &ReleasePolicy, name: String, ns: &str, host: &str, registry: &Registry) -> Release {
    let fallback = rp.fallback.as_ref().map(|fb| FallbackPlan {
        header: fb
            .response_header
            .as_deref()
            .unwrap_or(DEFAULT_FALLBACK_HEADER)
            .to_ascii_lowercase(),
        subsets: fb
            .subsets
            .iter()
            .map(|s| {
                let to = Destination {
                    host: host.to_string(),
                    subset: Some(s.to.clone()),
                    ..Destination::default()
                };
                (s.from.clone(), Target::resolve(&to, "", registry))
            })
            .collect(),
    });
    Release {
        name,
        sticky: rp.sticky.as_ref().map(sticky_key),
        fallback,
        access_log_headers: rp.access_log.as_ref().map_or_else(Vec::new, |l| {
            l.headers.iter().map(|h| h.to_ascii_lowercase()).collect()
        }),
        protect: rp.protected_headers.as_ref().map(|p| protect(p, ns)),
    }
}

fn protect(p: &ProtectedHeaders, ns: &str) -> Protect {
    let headers = if p.headers.is_empty() {
        DEFAULT_PROTECTED.iter().map(|h| h.to_string()).collect()
    } else {
        p.headers.iter().map(|h| h.to_ascii_lowercase()).collect()
    };
    Protect {
        gateways: p
            .gateways
            .iter()
            .map(|g| match g.split_once('/') {
                Some(_) => g.clone(),
                None => format!("{ns}/{g}"),
            })
            .collect(),
        headers,
        token: p
            .token
            .as_ref()
            .map(|t| (t.header.to_ascii_lowercase(), t.secret_file.clone())),
        trusted: p
            .trusted_cidrs
            .iter()
            .filter_map(|c| {
                c.parse::<IpNet>()
                    .ok()
                    .or_else(|| c.parse::<std::net::IpAddr>().ok().map(IpNet::from))
            })
            .collect(),
        jwt: p.jwt.clone(),
    }
}

fn sticky_key(s: &Sticky) -> StickyKey {
    match (&s.header, &s.cookie) {
        (Some(h), _) => StickyKey::Header(h.to_ascii_lowercase()),
        (None, Some(c)) => StickyKey::Cookie(StickyCookie {
            name: c.name.clone(),
            ttl: c.ttl.map_or(Duration::ZERO, |d| d.get()),
            path: c.path.clone().unwrap_or_else(|| "/".into()),
            attributes: c.attributes.clone(),
        }),
        (None, None) => StickyKey::ClientAddress,
    }
}
