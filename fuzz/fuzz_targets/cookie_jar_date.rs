//! The RFC 6265 section 5.1.1 cookie-date algorithm.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cookie_jar::parse_cookie_date(data).map(cookie_jar::format_http_date);
});
