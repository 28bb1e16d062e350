//! Client frames (any bytes) fed in two chunks into a connection with permessage-deflate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_core::{Connection, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame: 1 << 16,
        max_message: 1 << 16,
        max_send_buffer: 1 << 16,
        read_buffer: 512,
    };
    let params = accept_deflate();
    let mut conn = Connection::new(limits, params);
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    for chunk in [a, b] {
        conn.feed(chunk);
        while let Ok(Some(message)) = conn.poll_message() {
            let _ = conn.send(message);
        }
    }
});

fn accept_deflate() -> Option<ws_core::DeflateParams> {
    let (parts, ()) = http::Request::get("/")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-extensions", "permessage-deflate")
        .body(())
        .ok()?
        .into_parts();
    let config = ws_core::HandshakeConfig::default().deflate(ws_core::DeflateConfig::default());
    ws_core::accept(&parts, &config).ok()?.deflate
}
