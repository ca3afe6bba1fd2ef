//! ReleasePolicies across resources: one policy per host, and fallback subsets that exist.

use std::collections::BTreeMap;

use super::{SubsetIndex, warn};
use crate::diagnostic::Diagnostic;
use crate::host::fqdn;
use crate::resource::{Resource, Spec};

/// Warns about a second ReleasePolicy for a host (the first applies) and about fallback
/// subsets no DestinationRule defines (such a fallback answers 503 like any missing subset).
pub(super) fn analyze(
    resources: &[Resource],
    subsets: &SubsetIndex<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<String, &Resource> = BTreeMap::new();
    for r in resources {
        let Spec::ReleasePolicy(rp) = &r.spec else {
            continue;
        };
        if rp.host.is_empty() {
            continue;
        }
        let host = fqdn(&rp.host, r.meta.namespace());
        match seen.get(&host) {
            Some(first) => out.push(warn(
                r,
                "spec.host".into(),
                format!(
                    "{} also applies to host {host}; only the first one, {}, takes effect",
                    r.title(),
                    first.title()
                ),
            )),
            None => {
                seen.insert(host.clone(), r);
            }
        }
        let Some(fallback) = &rp.fallback else {
            continue;
        };
        for (i, s) in fallback.subsets.iter().enumerate() {
            for (field, name) in [("from", &s.from), ("to", &s.to)] {
                if !name.is_empty() && !subsets.defines(&host, name) {
                    out.push(warn(
                        r,
                        format!("spec.fallback.subsets[{i}].{field}"),
                        format!("no DestinationRule for {host} defines subset {name}"),
                    ));
                }
            }
        }
    }
}
