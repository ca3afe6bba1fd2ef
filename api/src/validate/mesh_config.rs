//! MeshConfig rules.

use super::Findings;
use super::fields::check_positive;
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
}
