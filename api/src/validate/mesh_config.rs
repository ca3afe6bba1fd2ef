//! MeshConfig rules.

use super::Findings;
use super::fields::{check_header_name, check_positive};
use crate::mesh_config::MeshConfig;

pub(super) fn check(mc: &MeshConfig, f: &mut Findings<'_>) {
    if let Some(suffix) = &mc.mirror_authority_suffix
        && (suffix.is_empty()
            || !suffix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        f.error(
            "spec.mirrorAuthoritySuffix",
            format!("\"{suffix}\" is not a valid host suffix (letters, digits, '-' and '.')"),
        );
    }
    check_positive(
        mc.protocol_detection_timeout.as_ref(),
        "spec.protocolDetectionTimeout",
        f,
    );
    check_positive(mc.connect_timeout.as_ref(), "spec.connectTimeout", f);
    if let Some(p) = &mc.header_propagation {
        if p.headers.is_empty() {
            f.error(
                "spec.headerPropagation.headers",
                "no headers: name the headers to carry (x-swimlane, baggage)",
            );
        }
        for (i, h) in p.headers.iter().enumerate() {
            check_header_name(h, &format!("spec.headerPropagation.headers[{i}]"), f);
        }
        if let Some(n) = p.max_entries
            && !(1..=1_000_000).contains(&n)
        {
            f.error(
                "spec.headerPropagation.maxEntries",
                format!("{n} is out of range: 1 to 1000000"),
            );
        }
        check_positive(p.ttl.as_ref(), "spec.headerPropagation.ttl", f);
    }
}
