//! Compiled HTTP rules: match conditions, the action, and the policies
//! (rewrite, timeout, retries, fault, mirrors, header changes) applied on the way.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::{Serialize, Serializer};

use super::{Cors, Scope, Target, WeightedTargets, weights};
use crate::istio::StringMatch;
use crate::istio::virtual_service::{
    HeaderOperations, Headers, HttpMatchRequest, HttpRedirect, HttpRetry, HttpRoute,
    RedirectPortSelection,
};
use crate::model::Workload;
use crate::model::registry::Registry;
use crate::model::string_match::StrMatch;

/// What the proxy needs to know about a request to match it.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo<'a> {
    /// Method.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Host / :authority as sent.
    pub authority: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query string without `?`.
    pub query: &'a str,
    /// Destination port.
    pub port: u16,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
}

/// One compiled match block: all its conditions must hold.
#[derive(Debug, Default, Serialize)]
pub struct RequestMatch {
    uri: Option<StrMatch>,
    ignore_uri_case: bool,
    scheme: Option<StrMatch>,
    method: Option<StrMatch>,
    authority: Option<StrMatch>,
    headers: Vec<(String, StrMatch)>,
    without_headers: Vec<(String, StrMatch)>,
    query_params: Vec<(String, StrMatch)>,
    port: Option<u16>,
}

impl RequestMatch {
    fn compile(m: &HttpMatchRequest) -> RequestMatch {
        let ignore = m.ignore_uri_case.unwrap_or(false);
        let one = |sm: &Option<StringMatch>| sm.as_ref().map(|s| StrMatch::compile(s, false));
        let many = |map: &BTreeMap<String, StringMatch>| {
            map.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), StrMatch::compile(v, false)))
                .collect()
        };
        RequestMatch {
            uri: m.uri.as_ref().map(|s| StrMatch::compile(s, ignore)),
            ignore_uri_case: ignore,
            scheme: one(&m.scheme),
            method: one(&m.method),
            authority: one(&m.authority),
            headers: many(&m.headers),
            without_headers: many(&m.without_headers),
            query_params: m
                .query_params
                .iter()
                .map(|(k, v)| (k.clone(), StrMatch::compile(v, false)))
                .collect(),
            port: m.port.and_then(|p| u16::try_from(p).ok()),
        }
    }

    /// True when the request meets every condition of the block.
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let uri_ok = match &self.uri {
            None => true,
            Some(m) if self.ignore_uri_case => m.matches(&req.path.to_lowercase()),
            Some(m) => m.matches(req.path),
        };
        uri_ok
            && self.port.is_none_or(|p| p == req.port)
            && self.scheme.as_ref().is_none_or(|m| m.matches(req.scheme))
            && self.method.as_ref().is_none_or(|m| m.matches(req.method))
            && self
                .authority
                .as_ref()
                .is_none_or(|m| m.matches(req.authority))
            && self
                .headers
                .iter()
                .all(|(n, m)| header(n).is_some_and(|v| m.matches(v)))
            && !self
                .without_headers
                .iter()
                .any(|(n, m)| header(n).is_some_and(|v| m.matches(v)))
            && self
                .query_params
                .iter()
                .all(|(n, m)| query_param(req.query, n).is_some_and(|v| m.matches(v)))
    }
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// True when a match block's source conditions select the workload.
pub(super) fn selects(
    workload: &Workload,
    labels: &BTreeMap<String, String>,
    namespace: Option<&str>,
) -> bool {
    labels
        .iter()
        .all(|(k, v)| workload.labels.get(k) == Some(v))
        && namespace.is_none_or(|ns| ns == workload.namespace)
}

/// Header changes: set (overwrite), add (append), remove; names and values parsed once, when
/// the config is compiled (the request path inserts them as they are). A name or value
/// that is not a valid header is left out (validation reports it).
#[derive(Clone, Debug, Default, Serialize)]
pub struct HeaderOps {
    /// Headers overwritten.
    #[serde(serialize_with = "pairs_as_text")]
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers appended.
    #[serde(serialize_with = "pairs_as_text")]
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Headers removed.
    #[serde(serialize_with = "names_as_text")]
    pub remove: Vec<HeaderName>,
}

impl HeaderOps {
    fn compile(ops: Option<&HeaderOperations>) -> HeaderOps {
        let Some(ops) = ops else {
            return HeaderOps::default();
        };
        let parsed = |m: &BTreeMap<String, String>| {
            m.iter()
                .filter_map(|(k, v)| {
                    let name = HeaderName::from_bytes(k.as_bytes()).ok()?;
                    Some((name, HeaderValue::from_str(v).ok()?))
                })
                .collect()
        };
        HeaderOps {
            set: parsed(&ops.set),
            add: parsed(&ops.add),
            remove: ops
                .remove
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
        }
    }

    /// True when there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// `[[name, value], ...]`, as the config dump shows header operations.
fn pairs_as_text<S: Serializer>(
    pairs: &[(HeaderName, HeaderValue)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        pairs
            .iter()
            .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes()))),
    )
}

/// `[name, ...]`.
fn names_as_text<S: Serializer>(names: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(names.iter().map(HeaderName::as_str))
}

/// A redirect answer.
#[derive(Clone, Debug, Serialize)]
pub struct Redirect {
    /// New path.
    pub uri: Option<String>,
    /// New authority.
    pub authority: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// Derive the port from the scheme.
    pub port_from_scheme: bool,
    /// New scheme.
    pub scheme: Option<String>,
    /// Status code.
    pub code: u16,
}

/// What a matching rule does.
#[derive(Debug, Serialize)]
pub enum HttpAction {
    /// Forward to weighted destinations.
    Route(WeightedTargets),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer directly.
    DirectResponse {
        /// Status code.
        status: u16,
        /// Body.
        body: String,
    },
}

/// A path or authority rewrite.
#[derive(Clone, Debug, Serialize)]
pub enum Rewrite {
    /// Replace the matched prefix (or whole path) and/or the authority.
    Prefix {
        /// New path prefix.
        uri: Option<String>,
        /// New authority.
        authority: Option<String>,
    },
    /// Replace by regex (with `\1` references).
    Regex {
        /// Compiled pattern.
        #[serde(skip)]
        pattern: regex::Regex,
        /// Replacement.
        rewrite: String,
        /// New authority.
        authority: Option<String>,
    },
}

/// Conditions a retry is made on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetryOn {
    /// Any 5xx answer (also: connect failures, resets).
    pub server_error: bool,
    /// 502, 503, 504.
    pub gateway_error: bool,
    /// Connection could not be made.
    pub connect_failure: bool,
    /// Connection reset before the answer.
    pub reset: bool,
    /// HTTP/2 REFUSED_STREAM.
    pub refused_stream: bool,
    /// 409.
    pub retriable_4xx: bool,
    /// gRPC statuses by name (`unavailable`, `cancelled`...).
    pub grpc: Vec<String>,
    /// Explicit status codes.
    pub codes: Vec<u16>,
}

impl RetryOn {
    /// Parses Envoy's comma-separated list; unknown names were rejected at load time.
    pub fn parse(text: &str) -> RetryOn {
        let mut on = RetryOn::default();
        for c in text.split(',').map(str::trim) {
            match c {
                "5xx" => on.server_error = true,
                "gateway-error" => on.gateway_error = true,
                "connect-failure" => on.connect_failure = true,
                "reset" => on.reset = true,
                "refused-stream" => on.refused_stream = true,
                "retriable-4xx" => on.retriable_4xx = true,
                "cancelled" | "deadline-exceeded" | "internal" | "resource-exhausted"
                | "unavailable" => {
                    on.grpc.push(c.to_string());
                }
                other => {
                    if let Ok(code) = other.parse() {
                        on.codes.push(code);
                    }
                }
            }
        }
        on
    }

    /// True when an answer with this status is retried.
    pub fn status(&self, status: u16) -> bool {
        (self.server_error && status >= 500)
            || (self.gateway_error && matches!(status, 502..=504))
            || (self.retriable_4xx && status == 409)
            || self.codes.contains(&status)
    }
}

/// Retry policy.
#[derive(Clone, Debug, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    /// Timeout of each try.
    pub per_try_timeout: Option<Duration>,
    /// Conditions.
    pub on: RetryOn,
    /// Base backoff between tries.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// Istio's default when a route sets none: 2 retries on connection
    /// failures and refused streams.
    pub fn mesh_default() -> RetryPolicy {
        RetryPolicy::compile(&HttpRetry {
            attempts: 2,
            ..HttpRetry::default()
        })
    }

    fn compile(r: &HttpRetry) -> RetryPolicy {
        let on = r.retry_on.as_deref().unwrap_or(
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        );
        RetryPolicy {
            attempts: r.attempts.max(0) as u32,
            per_try_timeout: r.per_try_timeout.map(|d| d.get()),
            on: RetryOn::parse(on),
            backoff: r.backoff.map_or(Duration::from_millis(25), |d| d.get()),
        }
    }
}

/// Faults to inject.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Fault {
    /// Delay and the share of requests delayed.
    pub delay: Option<(Duration, f64)>,
    /// Status and the share of requests aborted.
    pub abort: Option<(u16, f64)>,
}

/// A mirror destination and the share of requests copied to it.
#[derive(Clone, Debug, Serialize)]
pub struct Mirror {
    /// Where copies go.
    pub target: Target,
    /// Share of requests copied, 0..=100.
    pub percent: f64,
}

/// One compiled HTTP rule.
#[derive(Debug, Serialize)]
pub struct HttpRule {
    /// The rule's name.
    pub name: Option<String>,
    /// Match blocks (OR); empty matches every request.
    pub matches: Vec<RequestMatch>,
    /// What to do.
    pub action: HttpAction,
    /// Rewrite before forwarding.
    pub rewrite: Option<Rewrite>,
    /// Timeout of the whole request.
    pub timeout: Option<Duration>,
    /// Retry policy (Istio's default when the rule sets none).
    pub retries: RetryPolicy,
    /// Faults.
    pub fault: Option<Fault>,
    /// Mirrors.
    pub mirrors: Vec<Mirror>,
    /// Request header changes.
    pub request_headers: HeaderOps,
    /// Response header changes.
    pub response_headers: HeaderOps,
    /// CORS policy.
    pub cors: Option<Cors>,
}

impl HttpRule {
    /// Compiles a rule; `None` when none of its match blocks can select this workload.
    pub(super) fn compile(
        r: &HttpRoute,
        scope: Scope<'_>,
        registry: &Registry,
    ) -> Option<HttpRule> {
        let ns = scope.ns;
        let matches: Vec<RequestMatch> = r
            .matches
            .iter()
            .filter(|m| scope.selects(&m.source_labels, m.source_namespace.as_deref(), &m.gateways))
            .map(RequestMatch::compile)
            .collect();
        if matches.is_empty() && !r.matches.is_empty() {
            return None;
        }
        let (request_headers, response_headers) = headers(r.headers.as_ref());
        Some(HttpRule {
            name: r.name.clone(),
            matches,
            action: action(r, ns, registry),
            rewrite: r.rewrite.as_ref().map(|rw| match &rw.uri_regex_rewrite {
                Some(rr) => Rewrite::Regex {
                    pattern: regex::Regex::new(&rr.pattern)
                        .unwrap_or_else(|_| regex::Regex::new("$^").expect("valid")),
                    rewrite: rr.rewrite.replace("\\", "$"),
                    authority: rw.authority.clone(),
                },
                None => Rewrite::Prefix {
                    uri: rw.uri.clone(),
                    authority: rw.authority.clone(),
                },
            }),
            timeout: r.timeout.map(|d| d.get()),
            retries: r
                .retries
                .as_ref()
                .map_or_else(RetryPolicy::mesh_default, RetryPolicy::compile),
            fault: r.fault.as_ref().map(|f| Fault {
                delay: f.delay.as_ref().and_then(|d| {
                    let pct = d
                        .percentage
                        .map(|p| p.value)
                        .or(d.percent.map(f64::from))
                        .unwrap_or(100.0);
                    Some((d.fixed_delay?.get(), pct))
                }),
                abort: f.abort.as_ref().and_then(|a| {
                    let status = u16::try_from(a.http_status?).ok()?;
                    Some((status, a.percentage.map_or(100.0, |p| p.value)))
                }),
            }),
            mirrors: mirrors(r, ns, registry),
            request_headers,
            response_headers,
            cors: r.cors_policy.as_ref().map(Cors::compile),
        })
    }

    /// True when any match block matches the request (or the rule has none).
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(req))
    }

    /// The uri prefix that selected the request, when the first matching block
    /// matched the uri by prefix: a prefix rewrite replaces just that part.
    pub fn matched_uri_prefix(&self, req: &RequestInfo<'_>) -> Option<&str> {
        match &self.matches.iter().find(|m| m.matches(req))?.uri {
            Some(StrMatch::Prefix(p)) => Some(p.as_str()),
            _ => None,
        }
    }
}

fn headers(h: Option<&Headers>) -> (HeaderOps, HeaderOps) {
    let h = h.cloned().unwrap_or_default();
    (
        HeaderOps::compile(h.request.as_ref()),
        HeaderOps::compile(h.response.as_ref()),
    )
}

fn action(r: &HttpRoute, ns: &str, registry: &Registry) -> HttpAction {
    if let Some(rd) = &r.redirect {
        return HttpAction::Redirect(redirect(rd));
    }
    if let Some(dr) = &r.direct_response {
        let body = dr
            .body
            .as_ref()
            .and_then(|b| b.string.clone())
            .unwrap_or_default();
        return HttpAction::DirectResponse {
            status: u16::try_from(dr.status).unwrap_or(500),
            body,
        };
    }
    let weights = weights(&r.route, |d| d.weight);
    let targets = r
        .route
        .iter()
        .zip(weights)
        .map(|(d, w)| {
            let (req, _) = headers(d.headers.as_ref());
            (Target::resolve(&d.destination, ns, registry), w, req)
        })
        .collect();
    HttpAction::Route(WeightedTargets::new(targets))
}

fn redirect(rd: &HttpRedirect) -> Redirect {
    Redirect {
        uri: rd.uri.clone(),
        authority: rd.authority.clone(),
        port: rd.port.and_then(|p| u16::try_from(p).ok()),
        port_from_scheme: rd.derive_port == Some(RedirectPortSelection::FromProtocolDefault),
        scheme: rd.scheme.clone(),
        code: rd
            .redirect_code
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(301),
    }
}

fn mirrors(r: &HttpRoute, ns: &str, registry: &Registry) -> Vec<Mirror> {
    let mut out = Vec::new();
    if let Some(m) = &r.mirror {
        let percent = r
            .mirror_percentage
            .map(|p| p.value)
            .or(r.mirror_percent.map(f64::from))
            .unwrap_or(100.0);
        out.push(Mirror {
            target: Target::resolve(m, ns, registry),
            percent,
        });
    }
    for m in &r.mirrors {
        let percent = m.percentage.map_or(100.0, |p| p.value);
        out.push(Mirror {
            target: Target::resolve(&m.destination, ns, registry),
            percent,
        });
    }
    out
}
