//! `VirtualService`: how requests to a host are routed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{Percent, PortSelector, StringMatch};
use crate::duration::Duration;

/// The spec of a VirtualService.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct VirtualService {
    /// Hosts the rules apply to (DNS names, short names, wildcards).
    pub hosts: Vec<String>,
    /// Gateways and sidecars (`mesh`) the rules apply to; empty means `mesh`.
    pub gateways: Vec<String>,
    /// HTTP rules, evaluated in order, first match wins.
    pub http: Vec<HttpRoute>,
    /// TLS (SNI) rules for passthrough TLS traffic.
    pub tls: Vec<TlsRoute>,
    /// Rules for opaque TCP traffic.
    pub tcp: Vec<TcpRoute>,
    /// Namespaces the resource is visible to.
    pub export_to: Vec<String>,
}

/// One HTTP rule: match conditions and what to do with matching requests.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRoute {
    /// Name used in logs and metrics.
    pub name: Option<String>,
    /// Match blocks: AND within a block, OR across blocks; empty matches all.
    #[serde(rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of routing.
    pub redirect: Option<HttpRedirect>,
    /// Answer directly with a fixed response.
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand routing over to another VirtualService.
    pub delegate: Option<Delegate>,
    /// Rewrite the path or authority before forwarding.
    pub rewrite: Option<HttpRewrite>,
    /// Timeout of the whole request, retries included.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retries: Option<HttpRetry>,
    /// Faults to inject (delays, aborts).
    pub fault: Option<HttpFaultInjection>,
    /// Mirror requests to this destination.
    pub mirror: Option<Destination>,
    /// Mirror requests to several destinations.
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated: percentage of requests mirrored, as an integer.
    pub mirror_percent: Option<u32>,
    /// Percentage of requests mirrored.
    pub mirror_percentage: Option<Percent>,
    /// Cross-origin resource sharing policy.
    pub cors_policy: Option<CorsPolicy>,
    /// Header changes for requests and responses.
    pub headers: Option<Headers>,
}

/// Conditions a request must meet (all of them) for a rule to apply.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Name of the match block.
    pub name: Option<String>,
    /// The request path.
    pub uri: Option<StringMatch>,
    /// The URI scheme.
    pub scheme: Option<StringMatch>,
    /// The HTTP method.
    pub method: Option<StringMatch>,
    /// The Host / :authority.
    pub authority: Option<StringMatch>,
    /// Request headers (names lowercase); an empty match means "present".
    pub headers: BTreeMap<String, StringMatch>,
    /// The destination port.
    pub port: Option<u32>,
    /// Labels of the calling workload.
    pub source_labels: BTreeMap<String, String>,
    /// Gateways the match applies to.
    pub gateways: Vec<String>,
    /// Query parameters.
    pub query_params: BTreeMap<String, StringMatch>,
    /// Match the path case-insensitively.
    pub ignore_uri_case: Option<bool>,
    /// Headers that must not match.
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Namespace of the calling workload.
    pub source_namespace: Option<String>,
    /// Stat prefix of the route.
    pub stat_prefix: Option<String>,
}

/// A destination with its share of the traffic.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where the traffic goes.
    pub destination: Destination,
    /// Share of the traffic, 0..=100; required when there are several destinations.
    pub weight: Option<i32>,
    /// Header changes for this destination.
    pub headers: Option<Headers>,
}

/// A service (and optionally a subset and port) traffic is sent to.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Destination {
    /// The service host, from the registry.
    pub host: String,
    /// A subset the DestinationRule defines.
    pub subset: Option<String>,
    /// The service port.
    pub port: Option<PortSelector>,
}

/// A redirect answered instead of routing.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRedirect {
    /// Replaces the path.
    pub uri: Option<String>,
    /// Replaces the authority.
    pub authority: Option<String>,
    /// Replaces the port.
    pub port: Option<u32>,
    /// Derives the port from the protocol or the request.
    pub derive_port: Option<RedirectPortSelection>,
    /// Replaces the scheme.
    pub scheme: Option<String>,
    /// The redirect status code (default 301).
    pub redirect_code: Option<u32>,
}

/// How a redirect chooses its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    FromProtocolDefault,
    /// The port of the request.
    FromRequestPort,
}

/// A fixed response.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpDirectResponse {
    /// The status code.
    pub status: u32,
    /// The body.
    pub body: Option<HttpBody>,
}

/// The body of a direct response.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpBody {
    /// A text body.
    pub string: Option<String>,
    /// A base64-encoded binary body.
    pub bytes: Option<String>,
}

/// Delegation to another VirtualService.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Delegate {
    /// Name of the delegate VirtualService.
    pub name: String,
    /// Its namespace.
    pub namespace: Option<String>,
}

/// Path and authority rewriting.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Replaces the matched path prefix (or the whole path for exact/regex matches).
    pub uri: Option<String>,
    /// Replaces the authority.
    pub authority: Option<String>,
    /// Rewrites the path with a regex.
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A regex-based path rewrite.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RegexRewrite {
    /// RE2 regex to match.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Replacement, with `\1`-style group references.
    pub rewrite: String,
}

/// Retry policy.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries.
    pub attempts: i32,
    /// Timeout of each try.
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated conditions to retry on (Envoy's names and status codes).
    pub retry_on: Option<String>,
    /// Allow retries to other localities.
    pub retry_remote_localities: Option<bool>,
    /// Avoid hosts already tried.
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval between retries.
    pub backoff: Option<Duration>,
}

/// Faults to inject.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpFaultInjection {
    /// Delay requests.
    pub delay: Option<FaultDelay>,
    /// Abort requests.
    pub abort: Option<FaultAbort>,
}

/// A delay fault.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultDelay {
    /// Fixed delay.
    pub fixed_delay: Option<Duration>,
    /// Exponential delay (not supported by Istio either; accepted for compatibility).
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed.
    pub percentage: Option<Percent>,
    /// Deprecated integer share of requests delayed.
    pub percent: Option<i32>,
}

/// An abort fault.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultAbort {
    /// HTTP status to answer with.
    pub http_status: Option<i32>,
    /// gRPC status to answer with.
    pub grpc_status: Option<String>,
    /// HTTP/2 error to reset with.
    pub http2_error: Option<String>,
    /// Share of requests aborted.
    pub percentage: Option<Percent>,
}

/// One mirror destination with its share.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// Where copies go.
    pub destination: Destination,
    /// Share of requests copied.
    pub percentage: Option<Percent>,
}

/// Cross-origin resource sharing.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Deprecated exact origins.
    pub allow_origin: Vec<String>,
    /// Allowed origins.
    pub allow_origins: Vec<StringMatch>,
    /// Allowed methods.
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    pub allow_headers: Vec<String>,
    /// Headers the browser may read.
    pub expose_headers: Vec<String>,
    /// How long preflight answers may be cached.
    pub max_age: Option<Duration>,
    /// Allow credentials.
    pub allow_credentials: Option<bool>,
    /// What to do with preflights from unmatched origins.
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// What to do with preflight requests from origins the policy does not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// Unspecified (forward).
    UnspecifiedUnmatchedPreflights,
    /// Pass them to the upstream.
    Forward,
    /// Answer them without CORS headers.
    Ignore,
}

/// Header changes for requests and responses.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Headers {
    /// Changes to the request.
    pub request: Option<HeaderOperations>,
    /// Changes to the response.
    pub response: Option<HeaderOperations>,
}

/// Set, add and remove headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Overwrite these headers.
    pub set: BTreeMap<String, String>,
    /// Append these headers.
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    pub remove: Vec<String>,
}

/// A rule for passthrough TLS, matched by SNI.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsRoute {
    /// Match blocks (OR).
    #[serde(rename = "match")]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations.
    pub route: Vec<RouteDestination>,
}

/// Conditions on a TLS connection.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsMatchAttributes {
    /// SNI names to match (wildcards allowed).
    pub sni_hosts: Vec<String>,
    /// Destination subnets (CIDR).
    pub destination_subnets: Vec<String>,
    /// Destination port.
    pub port: Option<u32>,
    /// Labels of the calling workload.
    pub source_labels: BTreeMap<String, String>,
    /// Gateways the match applies to.
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    pub source_namespace: Option<String>,
}

/// A rule for opaque TCP traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpRoute {
    /// Match blocks (OR).
    #[serde(rename = "match")]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations.
    pub route: Vec<RouteDestination>,
}

/// Conditions on a TCP connection.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct L4MatchAttributes {
    /// Destination subnets (CIDR).
    pub destination_subnets: Vec<String>,
    /// Destination port.
    pub port: Option<u32>,
    /// Labels of the calling workload.
    pub source_labels: BTreeMap<String, String>,
    /// Gateways the match applies to.
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    pub source_namespace: Option<String>,
    /// Source subnet (gateways only).
    pub source_subnet: Option<String>,
}

/// An L4 destination with its share of the traffic.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteDestination {
    /// Where the traffic goes.
    pub destination: Destination,
    /// Share of the traffic.
    pub weight: Option<i32>,
}
