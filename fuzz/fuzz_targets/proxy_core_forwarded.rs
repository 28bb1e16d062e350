#![no_main]
//! Any text as `Forwarded` and `X-Forwarded-For`, parsed and used to find the client.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = proxy_core::parse_forwarded(data);
    let _ = proxy_core::parse_x_forwarded_for(data);
    let _ = proxy_core::node_ip(data);
    if let Ok(value) = http::HeaderValue::from_str(data) {
        let mut headers = http::HeaderMap::new();
        headers.insert("forwarded", value.clone());
        headers.insert("x-forwarded-for", value);
        let trusted = proxy_core::TrustedProxies::parse(["0.0.0.0/0", "::/0"]).unwrap_or_default();
        let _ = proxy_core::client_address([127, 0, 0, 1].into(), &headers, &trusted);
    }
});
