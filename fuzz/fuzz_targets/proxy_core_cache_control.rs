#![no_main]
//! Any text as a `Cache-Control` value.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = proxy_core::CacheControl::parse(data).shared_max_age();
});
