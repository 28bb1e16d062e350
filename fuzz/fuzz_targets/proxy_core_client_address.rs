#![no_main]
//! Any bytes as `X-Forwarded-For` and `Forwarded` (split at the first newline), read into
//! the client's address behind a trusted proxy, with either header configured.

use libfuzzer_sys::fuzz_target;
use proxy_core::{ClientAddressHeader, TrustedProxies, client_address};

fuzz_target!(|data: &[u8]| {
    let (xff, forwarded) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let mut headers = http::HeaderMap::new();
    for (name, value) in [("x-forwarded-for", xff), ("forwarded", forwarded)] {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let Ok(trusted) = TrustedProxies::parse(["127.0.0.0/8", "10.0.0.0/8", "::1"]) else {
        return;
    };
    let peer = [127, 0, 0, 1].into();
    for header in [
        ClientAddressHeader::XForwardedFor,
        ClientAddressHeader::Forwarded,
    ] {
        let _ = client_address(peer, &headers, &trusted.clone().with_client_header(header));
    }
});
