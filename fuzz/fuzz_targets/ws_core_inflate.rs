//! Compressed message payloads (any bytes) inflated under a 64 KiB message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_core::{Connection, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame: 1 << 20,
        max_message: 1 << 16,
        max_send_buffer: 1 << 16,
        read_buffer: 512,
    };
    let (parts, ()) = http::Request::get("/")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-extensions", "permessage-deflate")
        .body(())
        .unwrap_or_default()
        .into_parts();
    let config = ws_core::HandshakeConfig::default().deflate(ws_core::DeflateConfig::default());
    let Ok(accepted) = ws_core::accept(&parts, &config) else {
        return;
    };
    let mut conn = Connection::new(limits, accepted.deflate);
    // One masked binary frame with RSV1 set (a compressed message), mask of zeros.
    let mut frame = vec![0xc2, 0x80 | 127];
    frame.extend_from_slice(&(data.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(data);
    conn.feed(&frame);
    let _ = conn.poll_message();
});
