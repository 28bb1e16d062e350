#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The chat server over real TCP: handshake rejections and bad frames.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Server, frame, raw_request, read_close_code, upgrade_request};

#[test]
fn garbage_handshake_is_400() {
    let server = Server::start();
    let (_, head) = raw_request(server.addr, "GARBAGE \x01\x02 nonsense\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (_, head) = raw_request(
        server.addr,
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

#[test]
fn wrong_version_is_426_with_the_supported_version() {
    let server = Server::start();
    let request = upgrade_request("/echo", "").replace("Version: 13", "Version: 8");
    let (_, head) = raw_request(server.addr, &request);
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
}

#[test]
fn foreign_origin_is_403_and_own_origin_is_101() {
    let server = Server::start();
    let (_, head) = raw_request(
        server.addr,
        &upgrade_request("/ws", "Origin: https://evil.example\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let own = format!(
        "Origin: {}\r\nSec-WebSocket-Protocol: x, chat.v1\r\n",
        server.origin()
    );
    let (_, head) = raw_request(server.addr, &upgrade_request("/ws", &own));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: chat.v1")
    );
}

fn close_code_after(frames: &[u8]) -> Option<u16> {
    let server = Server::start();
    let (mut stream, head) = raw_request(server.addr, &upgrade_request("/echo", ""));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(frames).unwrap();
    read_close_code(&mut stream)
}

#[test]
fn invalid_utf8_text_closes_1007() {
    assert_eq!(
        close_code_after(&frame(0x81, &[0x68, 0xc3, 0x28])),
        Some(1007)
    );
}

#[test]
fn unmasked_frame_closes_1002() {
    assert_eq!(close_code_after(&[0x81, 0x02, b'h', b'i']), Some(1002));
}

#[test]
fn fragmented_ping_closes_1002() {
    assert_eq!(close_code_after(&frame(0x09, b"p")), Some(1002));
}

#[test]
fn oversized_chat_message_closes_1009() {
    let server = Server::start();
    let own = format!("Origin: {}\r\n", server.origin());
    let (mut stream, head) = raw_request(server.addr, &upgrade_request("/ws", &own));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The chat endpoint allows 64 KiB frames; announce 1 MiB and send only the header.
    let mut header = frame(0x82, &[]);
    header[1] = 0x80 | 127;
    header.splice(2..2, (1u64 << 20).to_be_bytes());
    stream.write_all(&header).unwrap();
    assert_eq!(read_close_code(&mut stream), Some(1009));
}

#[test]
fn client_that_never_reads_is_disconnected_by_the_slow_consumer_policy() {
    let server = Server::start();
    let own = format!("Origin: {}\r\n", server.origin());
    let join = frame(0x81, br#"{"type":"join","room":"flood"}"#);
    // The slow client joins, then never reads again.
    let (mut slow, head) = raw_request(server.addr, &upgrade_request("/ws?name=slow", &own));
    assert!(head.starts_with("HTTP/1.1 101"));
    slow.write_all(&join).unwrap();
    // The flooder joins and broadcasts 30 KiB messages while draining its own socket.
    let (mut flooder, head) = raw_request(server.addr, &upgrade_request("/ws?name=flooder", &own));
    assert!(head.starts_with("HTTP/1.1 101"));
    flooder.write_all(&join).unwrap();
    let mut reader = flooder.try_clone().unwrap();
    let seen = std::thread::spawn(move || {
        let mut window = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            window.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&window);
            if text.contains(r#""joined":false"#) && text.contains(r#""name":"slow""#) {
                return true;
            }
            let keep = window.len().saturating_sub(256);
            window.drain(..keep);
        }
        false
    });
    let text = "x".repeat(30_000);
    let say = frame(
        0x81,
        format!(r#"{{"type":"say","room":"flood","text":"{text}"}}"#).as_bytes(),
    );
    for _ in 0..2000 {
        if seen.is_finished() || flooder.write_all(&say).is_err() {
            break;
        }
    }
    assert!(
        seen.join().unwrap(),
        "the slow client was dropped and its leave announced"
    );
}
