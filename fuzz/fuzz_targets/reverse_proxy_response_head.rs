#![no_main]
//! Any bytes as an upstream's response head to a `GET`, read by the reverse proxy's lean
//! HTTP/1.1 client both ways: its fields into a `HeaderMap`, and as the raw lines it hands
//! the lean server. Both must give the same refusal, or the same status, framing, connection
//! fate and fields, with every line ending in CRLF.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(differ) = reverse_proxy::fuzzing::response_head_lines_agree(data) {
        panic!("{differ}");
    }
});
