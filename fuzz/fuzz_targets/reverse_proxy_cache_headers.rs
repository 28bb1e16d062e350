#![no_main]
//! Any text as a response's header lines (`name: value`), read by the reverse proxy's cache:
//! RFC 9111 freshness and age, RFC 5861 windows, `CDN-Cache-Control`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let headers: http::HeaderMap = data
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let (name, value) = line.split_at(colon);
            Some((
                http::HeaderName::from_bytes(name).ok()?,
                http::HeaderValue::from_bytes(value.get(1..)?.trim_ascii()).ok()?,
            ))
        })
        .collect();
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let _ = reverse_proxy::cache_freshness(http::StatusCode::OK, &headers, now);
});
