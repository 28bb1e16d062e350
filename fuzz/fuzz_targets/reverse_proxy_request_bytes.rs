#![no_main]
//! Any bytes sent to the reverse proxy's lean HTTP/1.1 server (the first byte picks the
//! size of the client's reads and the head limits). Every request it answers must reach the
//! handler with the method, target and fields that were sent; the bytes it hands to hyper
//! must be exactly the rest of what it read; it may close only at the input's end, after a
//! refusal or after `Connection: close`; and each request gets one well-framed response.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(wrong) = reverse_proxy::fuzzing::request_bytes_agree(data) {
        panic!("{wrong}");
    }
});
