//! The protocol sniffer (TLS ClientHello and SNI, HTTP/2 preface, HTTP/1 request line) on a
//! client's first bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = sluice_proxy::protocol::sniff(bytes);
});
