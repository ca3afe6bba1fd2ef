//! Cross-resource analysis: mistakes no single resource shows, reported as
//! warnings (and one error: two MeshConfigs).

mod release;

use std::collections::BTreeMap;

use crate::delegates::Delegates;
use crate::diagnostic::{Diagnostic, Severity};
use crate::host::{fqdn, matches};
use crate::istio::virtual_service::Destination;
use crate::istio::{DestinationRule, VirtualService};
use crate::resource::{Resource, Spec};

pub(super) fn analyze(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    let rules: Vec<(&Resource, &DestinationRule)> = resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::DestinationRule(dr) => Some((r, &**dr)),
            _ => None,
        })
        .collect();
    duplicate_rules(&rules, out);
    let subsets = SubsetIndex::new(&rules);
    let delegates = Delegates::index(resources);
    let mut claimed: BTreeMap<(String, String), &Resource> = BTreeMap::new();
    for r in resources {
        if let Spec::VirtualService(vs) = &r.spec {
            missing_subsets(r, vs, &subsets, out);
            missing_delegates(r, vs, &delegates, out);
            shadowed(r, vs, &mut claimed, out);
        }
    }
    release::analyze(resources, &subsets, out);
    let meshes: Vec<&Resource> = resources
        .iter()
        .filter(|r| matches!(r.spec, Spec::MeshConfig(_)))
        .collect();
    if let [first, rest @ ..] = meshes.as_slice() {
        for r in rest {
            out.push(
                Diagnostic::new(
                    Severity::Error,
                    &r.origin,
                    format!(
                        "only one MeshConfig may apply; {} ({}) is already loaded",
                        first.title(),
                        first.origin
                    ),
                )
                .subject(r.title()),
            );
        }
    }
}

/// A rule delegating to a VirtualService that is not there (or has hosts) is
/// dropped, as in Istio: its requests fall to the next rules.
fn missing_delegates(
    r: &Resource,
    vs: &VirtualService,
    delegates: &Delegates<'_>,
    out: &mut Vec<Diagnostic>,
) {
    for (i, rule) in vs.http.iter().enumerate() {
        let Some(d) = &rule.delegate else { continue };
        if delegates.find(d, r.meta.namespace()).is_none() {
            let ns = d.namespace.as_deref().unwrap_or(r.meta.namespace());
            out.push(warn(
                r,
                format!("spec.http[{i}].delegate"),
                format!(
                    "delegate VirtualService {ns}/{} not found (a delegate has no hosts): this rule is skipped",
                    d.name
                ),
            ));
        }
    }
}

fn warn(r: &Resource, path: String, message: String) -> Diagnostic {
    Diagnostic::new(Severity::Warning, &r.origin, message)
        .subject(r.title())
        .at(path)
}

fn duplicate_rules(rules: &[(&Resource, &DestinationRule)], out: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<String, &Resource> = BTreeMap::new();
    for (r, dr) in rules {
        if dr.workload_selector.is_some() || dr.host.is_empty() {
            continue;
        }
        let host = fqdn(&dr.host, r.meta.namespace());
        if let Some(first) = seen.get(&host) {
            out.push(warn(
                r,
                "spec.host".into(),
                format!(
                    "{} also applies to host {host}; only the first one, {}, takes effect",
                    r.title(),
                    first.title()
                ),
            ));
        } else {
            seen.insert(host, r);
        }
    }
}

/// Subset names by DestinationRule host: exact hosts, then wildcard hosts.
struct SubsetIndex<'a> {
    exact: BTreeMap<String, Vec<&'a str>>,
    wildcard: Vec<(String, Vec<&'a str>)>,
}

impl<'a> SubsetIndex<'a> {
    fn new(rules: &[(&Resource, &'a DestinationRule)]) -> SubsetIndex<'a> {
        let mut index = SubsetIndex {
            exact: BTreeMap::new(),
            wildcard: Vec::new(),
        };
        for (r, dr) in rules {
            let host = fqdn(&dr.host, r.meta.namespace());
            let names = dr.subsets.iter().map(|s| s.name.as_str());
            if host.starts_with('*') {
                index.wildcard.push((host, names.collect()));
            } else {
                index.exact.entry(host).or_default().extend(names);
            }
        }
        index
    }

    fn defines(&self, host: &str, subset: &str) -> bool {
        self.exact.get(host).is_some_and(|s| s.contains(&subset))
            || self
                .wildcard
                .iter()
                .any(|(h, s)| matches(h, host) && s.contains(&subset))
    }
}

fn missing_subsets(
    r: &Resource,
    vs: &VirtualService,
    subsets: &SubsetIndex<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let ns = r.meta.namespace();
    let mut reported = std::collections::BTreeSet::new();
    let mut check = |d: &Destination, path: String| {
        let Some(subset) = &d.subset else { return };
        let host = fqdn(&d.host, ns);
        if !reported.insert((host.clone(), subset.clone())) {
            return;
        }
        if !subsets.defines(&host, subset) {
            out.push(warn(
                r,
                path,
                format!("subset \"{subset}\" of host {host} is not defined by any DestinationRule; requests routed to it get 503 until one defines it"),
            ));
        }
    };
    for (i, http) in vs.http.iter().enumerate() {
        for (j, d) in http.route.iter().enumerate() {
            check(
                &d.destination,
                format!("spec.http[{i}].route[{j}].destination.subset"),
            );
        }
        if let Some(m) = &http.mirror {
            check(m, format!("spec.http[{i}].mirror.subset"));
        }
        for (j, m) in http.mirrors.iter().enumerate() {
            check(
                &m.destination,
                format!("spec.http[{i}].mirrors[{j}].destination.subset"),
            );
        }
    }
    for (i, tcp) in vs.tcp.iter().enumerate() {
        for (j, d) in tcp.route.iter().enumerate() {
            check(
                &d.destination,
                format!("spec.tcp[{i}].route[{j}].destination.subset"),
            );
        }
    }
    for (i, tls) in vs.tls.iter().enumerate() {
        for (j, d) in tls.route.iter().enumerate() {
            check(
                &d.destination,
                format!("spec.tls[{i}].route[{j}].destination.subset"),
            );
        }
    }
}

fn shadowed<'r>(
    r: &'r Resource,
    vs: &VirtualService,
    claimed: &mut BTreeMap<(String, String), &'r Resource>,
    out: &mut Vec<Diagnostic>,
) {
    let gateways: Vec<String> = if vs.gateways.is_empty() {
        vec!["mesh".into()]
    } else {
        vs.gateways.clone()
    };
    for (i, host) in vs.hosts.iter().enumerate() {
        let host = fqdn(host, r.meta.namespace());
        for gw in &gateways {
            match claimed.get(&(host.clone(), gw.clone())) {
                Some(first) if first.origin != r.origin => out.push(warn(
                    r,
                    format!("spec.hosts[{i}]"),
                    format!("host {host} (gateway {gw}) is already routed by {}; this VirtualService is shadowed for it", first.title()),
                )),
                Some(_) => {}
                None => {
                    claimed.insert((host.clone(), gw.clone()), r);
                }
            }
        }
    }
}
