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

use common::{frame, raw_request, read_close_code, start, start_without_echo, upgrade_request};

#[test]
fn garbage_handshake_is_400() {
    let server = start();
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
    let server = start();
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
    let server = start();
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
    let server = start();
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
    let server = start();
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

/// A client that never reads is dropped by the hub's slow-consumer policy while a
/// flooder that reads keeps its connection. Found on 2026-12-05: in about one run in six
/// the server dropped the *flooder's* connection, because a message that did not fit in
/// what was left of its send buffer (queued output under `max_send_buffer` but not by the
/// message's length) was refused and the refusal ended the connection. Such a message is
/// now held and queued after the next flush.
#[test]
fn client_that_never_reads_is_disconnected_by_the_slow_consumer_policy() {
    let server = start();
    let join = frame(0x81, br#"{"type":"join","room":"flood"}"#);
    // The slow client joins, then never reads again.
    let _slow = joined(&server, "slow", &join);
    // The flooder joins and broadcasts 30 KiB messages while draining its own socket.
    let mut flooder = joined(&server, "flooder", &join);
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

/// The reproducer of the bug above: 30 KB messages paced 1 ms apart leave the flooder's
/// queued output just under the 256 KiB limit far more often (35 runs in 40 failed).
#[test]
fn a_message_that_does_not_fit_the_send_buffer_waits_instead_of_ending_the_connection() {
    let server = start();
    let join = frame(0x81, br#"{"type":"join","room":"paced"}"#);
    let mut flooder = joined(&server, "paced", &join);
    let mut reader = flooder.try_clone().unwrap();
    const SENT: usize = 300;
    // Counts the flooder's own messages coming back (the sender is a member of the room).
    let echoed = std::thread::spawn(move || {
        reader
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut count = 0;
        let mut window = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while count < SENT {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            window.extend_from_slice(&buf[..n]);
            let marker = br#""type":"message""#;
            while let Some(at) = window.windows(marker.len()).position(|w| w == marker) {
                count += 1;
                window.drain(..at + marker.len());
            }
            let keep = window.len().saturating_sub(marker.len());
            window.drain(..keep);
        }
        count
    });
    let text = "y".repeat(30_000);
    let say = frame(
        0x81,
        format!(r#"{{"type":"say","room":"paced","text":"{text}"}}"#).as_bytes(),
    );
    for _ in 0..SENT {
        flooder.write_all(&say).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        echoed.join().unwrap(),
        SENT,
        "every message came back over the same connection"
    );
}

/// A chat member named `name`, upgraded on the server's own origin, that has sent `join`.
fn joined(server: &serve::testing::Process, name: &str, join: &[u8]) -> std::net::TcpStream {
    let own = format!("Origin: {}\r\n", server.origin());
    let path = format!("/ws?name={name}");
    let (mut stream, head) = raw_request(server.addr, &upgrade_request(&path, &own));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(join).unwrap();
    stream
}

/// The next text frame the server sends (pings are skipped).
fn read_text(stream: &mut std::net::TcpStream) -> serde_json::Value {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).unwrap();
        let mut len = usize::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            len = usize::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).unwrap();
            len = u64::from_be_bytes(b) as usize;
        }
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).unwrap();
        if head[0] & 0x0f == 0x1 {
            return serde_json::from_slice(&payload).unwrap();
        }
    }
}

/// Issue 14, finding 15: every member got the whole member list with every join (quadratic
/// in the room's size, built under the hub's lock). Now the joiner alone gets the list.
#[test]
fn presence_sends_the_member_list_only_to_the_joiner() {
    let server = start();
    let join = frame(0x81, br#"{"type":"join","room":"r"}"#);
    let mut ada = joined(&server, "ada", &join);
    let mut own_join = read_text(&mut ada);
    while own_join["type"] != "presence" {
        own_join = read_text(&mut ada);
    }
    assert_eq!(own_join["members"].as_array().unwrap().len(), 1);
    let mut bob = joined(&server, "bob", &join);
    let mut bobs = read_text(&mut bob);
    while bobs["type"] != "presence" {
        bobs = read_text(&mut bob);
    }
    assert_eq!(bobs["name"], "bob");
    assert_eq!(bobs["members"].as_array().unwrap().len(), 2, "{bobs}");
    let seen_by_ada = read_text(&mut ada);
    assert_eq!(seen_by_ada["type"], "presence");
    assert_eq!(seen_by_ada["name"], "bob");
    assert_eq!(seen_by_ada["joined"], true);
    assert!(seen_by_ada.get("members").is_none(), "{seen_by_ada}");
}

/// Issue 14, finding 15: one connection could join rooms without end. The 65th is refused
/// with an error message; the connection stays usable.
#[test]
fn joining_more_than_64_rooms_is_refused() {
    let server = start();
    let own = format!("Origin: {}\r\n", server.origin());
    let (mut ada, head) = raw_request(server.addr, &upgrade_request("/ws?name=ada", &own));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for n in 0..65 {
        let join = format!(r#"{{"type":"join","room":"room-{n}"}}"#);
        ada.write_all(&frame(0x81, join.as_bytes())).unwrap();
    }
    // The error is written at once, the presence events when the hub's queue is drained:
    // read until both are in.
    let mut presences = 0;
    let mut error = None;
    while presences < 64 || error.is_none() {
        let message = read_text(&mut ada);
        match message["type"].as_str() {
            Some("presence") => presences += 1,
            Some("error") => error = Some(message),
            _ => {}
        }
        assert!(presences <= 64, "a 65th room was joined");
    }
    let error = error.unwrap();
    assert!(
        error["message"].as_str().unwrap().contains("64 rooms"),
        "{error}"
    );
}

/// Issue 22, item 13: the 32 MiB echo endpoint, open to any origin, is for tests only.
#[test]
fn echo_is_off_unless_a_test_turns_it_on() {
    let server = start_without_echo();
    let (_, head) = raw_request(server.addr, &upgrade_request("/echo", ""));
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let own = format!("Origin: {}\r\n", server.origin());
    let (_, head) = raw_request(server.addr, &upgrade_request("/ws?name=ada", &own));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

/// Issue 22, item 2: a second "Zoë 😀" in a room is refused with a reason, and the name
/// arrives whole (percent-encoded UTF-8, cut by characters).
#[test]
fn a_duplicate_nickname_is_refused_in_the_room() {
    let server = start();
    let own = format!("Origin: {}\r\n", server.origin());
    let join = frame(0x81, br#"{"type":"join","room":"r"}"#);
    let path = "/ws?name=Zo%C3%AB%20%F0%9F%98%80";
    let (mut first, head) = raw_request(server.addr, &upgrade_request(path, &own));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let welcome = read_text(&mut first);
    assert_eq!(welcome["name"], "Zoë 😀");
    assert_eq!(welcome["max_message"], 65536);
    first.write_all(&join).unwrap();
    assert_eq!(read_text(&mut first)["type"], "presence");
    let (mut second, head) = raw_request(server.addr, &upgrade_request(path, &own));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(read_text(&mut second)["type"], "welcome");
    second.write_all(&join).unwrap();
    let refusal = read_text(&mut second);
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["code"], "name-taken", "{refusal}");
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("already called “Zoë 😀”"),
        "{refusal}"
    );
}
