//! The AdmissionReview handler never panics, whatever the body: it answers a review or a
//! reason. The seeded property harness of `fuzz/harness.rs` over `fuzz/corpus/admission` (the
//! `admission` fuzz target's entry point).

#[path = "../../fuzz/harness.rs"]
mod harness;

use sluice_control::InjectConfig;

#[test]
fn the_admission_review_handler_never_panics() {
    let config = InjectConfig::default();
    harness::run("admission", &harness::corpus("admission"), |body| {
        let _ = sluice_control::webhook::review(body, &config);
    });
}
