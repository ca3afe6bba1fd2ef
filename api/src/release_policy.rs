//! `sluice.dev/v1alpha1` `ReleasePolicy`: how a gray release of one host behaves beyond the
//! VirtualService's weights: sticky users, fallback of empty subsets, release fields in logs.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::duration::Duration;

/// The spec of a ReleasePolicy. Like a DestinationRule it names the destination host it
/// is about; the VirtualService's weights stay the only source of percentages.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleasePolicy {
    /// The destination host (a short name resolves in the policy's namespace).
    pub host: String,
    /// Who a user is, so a weighted route sends each user to the same version.
    pub sticky: Option<Sticky>,
    /// Where requests for a subset without healthy endpoints go instead.
    pub fallback: Option<Fallback>,
    /// Request headers written as fields of the access log line.
    pub access_log: Option<AccessLog>,
    /// Routing headers that outside requests may not set at the named gateways.
    pub protected_headers: Option<ProtectedHeaders>,
}

/// Protected gray headers at the edge: the named headers are removed from a request that
/// arrives at one of the named Gateways unless it passes one of the checks.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ProtectedHeaders {
    /// The Gateways (`name` in the policy's namespace, or `namespace/name`) whose requests
    /// are guarded.
    pub gateways: Vec<String>,
    /// Header names, or prefixes written `x-gray-*` (default `x-gray-*`, `x-swimlane`,
    /// `x-target-version`).
    pub headers: Vec<String>,
    /// A shared token in a request header (removed before forwarding).
    pub token: Option<TokenCheck>,
    /// Client networks (the client address after `numTrustedProxies`) that may set them.
    pub trusted_cidrs: Vec<String>,
    /// A JWT whose claim has one of the values.
    pub jwt: Option<JwtCheck>,
}

/// The shared-token check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenCheck {
    /// The request header carrying the token.
    pub header: String,
    /// A file holding the token (a mounted Secret); surrounding whitespace is ignored.
    pub secret_file: String,
}

/// The JWT check: a bearer token signed (RS256 or ES256) by a key of a JWKS file.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtCheck {
    /// A file holding the JSON Web Key Set (a mounted Secret or ConfigMap).
    pub jwks_file: String,
    /// The `iss` the token must have, if set.
    pub issuer: Option<String>,
    /// The claim checked (`gray`, `groups`).
    pub claim: String,
    /// Accepted values: the claim equals one, or is a list holding one.
    pub values: Vec<String>,
}

/// The user key of sticky routing: exactly one of the fields.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Sticky {
    /// A request header carrying the user (`x-user-id`).
    pub header: Option<String>,
    /// A cookie; the proxy sets it on the answer when the request has none.
    pub cookie: Option<StickyCookie>,
    /// The client's IP address (`true`).
    pub client_address: Option<bool>,
}

/// The cookie sticky routing reads and, when missing, sets.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StickyCookie {
    /// Cookie name.
    pub name: String,
    /// Lifetime of a set cookie (`Max-Age`); absent or `0s`: a session cookie.
    pub ttl: Option<Duration>,
    /// `Path` of a set cookie (default `/`).
    pub path: Option<String>,
    /// Extra attributes of a set cookie: `Secure`, `SameSite=Lax`, `Domain=example.com`.
    pub attributes: Vec<String>,
}

/// Fallback of subsets that have no healthy endpoint.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Fallback {
    /// Response header that marks an answer of the fallback subset (default
    /// `x-sluice-fallback`; its value is `FROM->TO`).
    pub response_header: Option<String>,
    /// The subsets that fall back, each to one other subset.
    pub subsets: Vec<SubsetFallback>,
}

/// One subset's fallback.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SubsetFallback {
    /// The subset that may be empty.
    pub from: String,
    /// The subset its requests go to meanwhile.
    pub to: String,
}

/// Release fields of the access log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessLog {
    /// Request headers logged as fields (named by the lowercase header name).
    pub headers: Vec<String>,
}
