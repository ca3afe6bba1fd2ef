//! Client bytes into the proxy's real HTTP/1.1 server path (request head and chunked body
//! parsing, then the outbound request path) in front of a recording upstream: nothing panics,
//! every connection ends, and whatever reaches the upstream is a sequence of well-framed
//! requests. The rig, checker and upstream are the smuggling test's (`proxy/tests/smuggling/`).
#![no_main]

#[path = "../../proxy/tests/smuggling/rig.rs"]
mod rig;
#[path = "../../proxy/tests/smuggling/strict.rs"]
mod strict;
#[path = "../../proxy/tests/smuggling/upstream.rs"]
mod upstream;

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

/// One runtime, upstream and proxy core for the whole run (as a sidecar lives).
static RIG: LazyLock<(Runtime, rig::Rig)> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let rig = runtime.block_on(rig::Rig::start());
    (runtime, rig)
});

fuzz_target!(|bytes: &[u8]| {
    let (runtime, rig) = &*RIG;
    runtime.block_on(rig.send(bytes, Duration::from_millis(20)));
    if let Err(violation) = rig.check() {
        panic!("the upstream got {violation}");
    }
});
