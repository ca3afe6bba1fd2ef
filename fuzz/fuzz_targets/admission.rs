//! The webhook's AdmissionReview handler on arbitrary bodies.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice_control::InjectConfig;

static CONFIG: LazyLock<InjectConfig> = LazyLock::new(InjectConfig::default);

fuzz_target!(|body: &[u8]| {
    let _ = sluice_control::webhook::review(body, &CONFIG);
});
