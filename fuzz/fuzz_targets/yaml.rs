//! The YAML loader, validator and model compiler on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_api::model::{Model, Workload};

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let mut set = sluice_api::load::load_str("fuzz.yaml", &text);
    sluice_api::validate::validate(&mut set);
    if !set.has_errors() {
        let _ = Model::compile(&set.resources, &Workload::default());
    }
});
