#![no_main]
//! Any bytes as a raw HTTP/1.1 request head.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = proxy_core::check_request_head(data, &proxy_core::HeadLimits::default());
});
