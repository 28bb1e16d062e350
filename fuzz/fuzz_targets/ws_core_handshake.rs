//! Opening handshakes: header lines (`name: value`) from the input, checked by `accept`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_core::{DeflateConfig, HandshakeConfig, accept, rejection_response};

fuzz_target!(|data: &[u8]| {
    let mut builder = http::Request::get("/ws");
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let (name, value) = line.split_at(colon);
            let value = value.get(1..).unwrap_or_default().trim_ascii();
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name),
                http::HeaderValue::from_bytes(value),
            ) {
                builder = builder.header(name, value);
            }
        }
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let config = HandshakeConfig::default()
        .allow_origins(["https://a.example"])
        .protocols(["chat.v1", "chat.v2"])
        .deflate(DeflateConfig::default().client_max_window_bits(10));
    if let Err(error) = accept(&parts, &config) {
        let _ = rejection_response(&error);
    }
});
