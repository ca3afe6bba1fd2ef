//! VirtualService delegation, merged as Istio merges it: a root rule with
//! `delegate` stands for the rules of the delegate VirtualService (one without
//! hosts), each joined with the root rule. A delegate rule's match blocks must
//! each fit inside one of the root's (a prefix within the root's prefix, the
//! same exact value, no regex against another kind of match...); a rule that
//! does not fit is dropped, as is a root rule whose delegate does not exist.
//! Route-level settings the delegate rule leaves out come from the root rule.

use std::collections::BTreeMap;

pub use crate::delegates::Delegates;
use crate::istio::common::StringMatch;
use crate::istio::virtual_service::{HttpMatchRequest, HttpRoute};

// `Delegates` lives below both `model` and `validate`; its merging, which
// only the model needs, is implemented here.
impl<'a> Delegates<'a> {
    /// The rules a root rule of namespace `ns` stands for, each with the
    /// namespace its destinations resolve in: the rule itself when it does not
    /// delegate, else the delegate's rules merged with it.
    pub fn expand(&self, root: &'a HttpRoute, ns: &'a str) -> Vec<(HttpRoute, &'a str)> {
        let Some(d) = &root.delegate else {
            return vec![(root.clone(), ns)];
        };
        let Some(delegate) = self.find(d, ns) else {
            return Vec::new();
        };
        let leaf_ns = d.namespace.as_deref().unwrap_or(ns);
        delegate
            .http
            .iter()
            // One level only: a delegate's own delegation is ignored.
            .filter(|leaf| leaf.delegate.is_none())
            .filter_map(|leaf| merge_route(root, leaf))
            .map(|merged| (merged, leaf_ns))
            .collect()
    }
}

/// A delegate rule joined with its root rule; `None` when its matches do not
/// fit the root's.
fn merge_route(root: &HttpRoute, leaf: &HttpRoute) -> Option<HttpRoute> {
    let mut merged = leaf.clone();
    merged.matches = merge_matches(&root.matches, &leaf.matches)?;
    merged.name = joined_name(root.name.as_deref(), leaf.name.as_deref());
    fill(&mut merged.rewrite, &root.rewrite);
    fill(&mut merged.timeout, &root.timeout);
    fill(&mut merged.retries, &root.retries);
    fill(&mut merged.fault, &root.fault);
    fill(&mut merged.mirror, &root.mirror);
    fill(&mut merged.mirror_percent, &root.mirror_percent);
    fill(&mut merged.mirror_percentage, &root.mirror_percentage);
    fill(&mut merged.cors_policy, &root.cors_policy);
    fill(&mut merged.headers, &root.headers);
    if merged.mirrors.is_empty() {
        merged.mirrors = root.mirrors.clone();
    }
    Some(merged)
}

fn fill<T: Clone>(field: &mut Option<T>, root: &Option<T>) {
    if field.is_none() {
        field.clone_from(root);
    }
}

fn joined_name(root: Option<&str>, leaf: Option<&str>) -> Option<String> {
    match (root, leaf) {
        (Some(r), Some(l)) => Some(format!("{r}-{l}")),
        (r, l) => l.or(r).map(str::to_string),
    }
}

/// Every delegate match block joined with each root block it fits; `None`
/// when one fits none.
fn merge_matches(
    root: &[HttpMatchRequest],
    leaf: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if leaf.is_empty() {
        return Some(root.to_vec());
    }
    if root.is_empty() {
        return Some(leaf.to_vec());
    }
    let mut merged = Vec::new();
    for l in leaf {
        let fitting: Vec<HttpMatchRequest> = root
            .iter()
            .filter(|r| !conflicts(r, l))
            .map(|r| merge_match(r, l))
            .collect();
        if fitting.is_empty() {
            return None;
        }
        merged.extend(fitting);
    }
    Some(merged)
}

/// The delegate block with what it leaves out taken from the root block.
fn merge_match(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> HttpMatchRequest {
    let mut m = leaf.clone();
    m.name = joined_name(root.name.as_deref(), leaf.name.as_deref());
    fill(&mut m.uri, &root.uri);
    fill(&mut m.scheme, &root.scheme);
    fill(&mut m.method, &root.method);
    fill(&mut m.authority, &root.authority);
    fill(&mut m.port, &root.port);
    fill(&mut m.source_namespace, &root.source_namespace);
    union(&mut m.headers, &root.headers);
    union(&mut m.without_headers, &root.without_headers);
    union(&mut m.query_params, &root.query_params);
    union(&mut m.source_labels, &root.source_labels);
    if m.gateways.is_empty() {
        m.gateways.clone_from(&root.gateways);
    }
    m
}

/// The root's entries join the leaf's; the leaf's win where both have a key.
fn union<V: Clone>(leaf: &mut BTreeMap<String, V>, root: &BTreeMap<String, V>) {
    for (k, v) in root {
        leaf.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// True when the delegate block asks for something outside the root block.
fn conflicts(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let strings = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    let keyed = |r: &BTreeMap<String, StringMatch>, l: &BTreeMap<String, StringMatch>| {
        l.iter().any(|(k, lv)| string_conflict(r.get(k), Some(lv)))
    };
    strings
        .iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
        || keyed(&root.headers, &leaf.headers)
        || keyed(&root.without_headers, &leaf.without_headers)
        || keyed(&root.query_params, &leaf.query_params)
        || root.ignore_uri_case.unwrap_or(false) != leaf.ignore_uri_case.unwrap_or(false)
        || matches!((root.port, leaf.port), (Some(r), Some(l)) if r != l)
        || root
            .source_namespace
            .as_ref()
            .is_some_and(|r| leaf.source_namespace.as_ref() != Some(r))
        || leaf
            .source_labels
            .iter()
            .any(|(k, v)| root.source_labels.get(k).is_some_and(|r| r != v))
        || (!root.gateways.is_empty() && leaf.gateways.iter().any(|g| !root.gateways.contains(g)))
}

/// True when the delegate's string match can select what the root's cannot.
fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    let any = |m: &StringMatch| m.regex.is_some() || m.prefix.is_some() || m.exact.is_some();
    if root.regex.is_some() || leaf.regex.is_some() {
        return any(root) && any(leaf);
    }
    if let Some(exact) = &root.exact {
        return leaf.prefix.is_some() || leaf.exact.as_ref() != Some(exact);
    }
    if let Some(prefix) = &root.prefix {
        let outside = |v: &Option<String>| v.as_ref().is_some_and(|v| !v.starts_with(prefix));
        return outside(&leaf.prefix) || outside(&leaf.exact);
    }
    false
}

#[cfg(test)]
mod tests;
