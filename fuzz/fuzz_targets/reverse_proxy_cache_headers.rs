#![no_main]
//! Any text as a response's header lines (`name: value`), read by the cache the reverse proxy
//! runs (proxy-core's `CachePolicy`): RFC 9111 storability, freshness and age, RFC 5861
//! windows, `CDN-Cache-Control`, and the stored response answering plain and range requests.

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
    let policy = proxy_core::CachePolicy::default();
    let (request, ()) = http::Request::get("/")
        .body(())
        .unwrap_or_default()
        .into_parts();
    let mut response = http::Response::new(());
    *response.headers_mut() = headers;
    let (head, ()) = response.into_parts();
    let body = bytes::Bytes::from_static(b"0123456789");
    if let Ok(entry) = policy.entry(&request, &head, body, now, now) {
        let later = now + std::time::Duration::from_secs(3600);
        let _ = entry.respond(&request, later);
        let _ = policy.lookup(&request, &[std::sync::Arc::new(entry)], later);
    }
});
