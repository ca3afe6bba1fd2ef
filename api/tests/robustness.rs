//! The YAML loader, validator and model compiler never panic, whatever the text: the seeded
//! property harness of `fuzz/harness.rs` over `fuzz/corpus/yaml` (the `yaml` fuzz target's
//! entry point).

#[path = "../../fuzz/harness.rs"]
mod harness;

use sluice_api::model::{Model, Workload};

#[test]
fn the_yaml_loader_and_validator_never_panic() {
    harness::run("yaml", &harness::corpus("yaml"), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let mut set = sluice_api::load::load_str("fuzz.yaml", &text);
        sluice_api::validate::validate(&mut set);
        if !set.has_errors() {
            let _ = Model::compile(&set.resources, &Workload::default());
        }
    });
}
