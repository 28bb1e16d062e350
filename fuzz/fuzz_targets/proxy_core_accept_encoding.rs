#![no_main]
//! Any text as an `Accept-Encoding` value.

use libfuzzer_sys::fuzz_target;
use proxy_core::Coding;

fuzz_target!(|data: &str| {
    let _ = proxy_core::negotiate_encoding(data, &[Coding::Brotli, Coding::Zstd, Coding::Gzip]);
});
