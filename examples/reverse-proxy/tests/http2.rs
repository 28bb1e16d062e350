#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! HTTP/2 towards clients: each known attack sent as raw frames written here by hand (RFC
//! 9113 framing, RFC 7541 HPACK literals), with the GOAWAY or RST_STREAM code it must end
//! with, while a well-behaved client on another connection is still served; the h2-to-h1
//! downgrade checks; GOAWAY on graceful shutdown; and curl as a real client (h2c with prior
//! knowledge, and ALPN over TLS).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{start_origin, start_proxy, start_recording_origin};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn config(origin: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
workers = 1
[server.http2]
h2c = true
{extra}

[[pools]]
name = "app"
upstreams = [{{ address = "{origin}" }}]

[[routes]]
pool = "app"
"#
    )
}

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frame {
    fn code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 section 5.1).
fn integer(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// A literal field without indexing, new name (RFC 7541 section 6.2.2).
fn literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    string(&mut out, name.as_bytes());
    string(&mut out, value);
    out
}

/// A literal field added to the dynamic table (RFC 7541 section 6.2.1): index 62 next.
fn indexed_literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    string(&mut out, name.as_bytes());
    string(&mut out, value);
    out
}

fn request(method: &str, path: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = literal(":method", method.as_bytes());
    block.extend(literal(":scheme", b"http"));
    block.extend(literal(":path", path.as_bytes()));
    block.extend(literal(":authority", b"localhost"));
    for (name, value) in extra {
        block.extend(literal(name, value));
    }
    block
}

struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        // Frames go out as written (no Nagle wait behind an unacknowledged small write).
        stream.set_nodelay(true).unwrap();
        let mut stream = stream;
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &payload));
        hello.extend(frame(SETTINGS, 0x1, 0, &[]));
        stream.write_all(&hello).await.unwrap();
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next frame, `None` at EOF, a reset or `within`.
    async fn next(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.buffer.len() >= 9 {
                let len = (usize::from(self.buffer[0]) << 16)
                    | (usize::from(self.buffer[1]) << 8)
                    | usize::from(self.buffer[2]);
                if self.buffer.len() >= 9 + len {
                    let bytes: Vec<u8> = self.buffer.drain(..9 + len).collect();
                    return Some(Frame {
                        kind: bytes[3],
                        flags: bytes[4],
                        stream: u32::from_be_bytes(bytes[5..9].try_into().unwrap()) & 0x7fff_ffff,
                        payload: bytes[9..].to_vec(),
                    });
                }
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buffer.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Frames until GOAWAY (included) or the end of the connection, within `within`.
    async fn until_goaway(&mut self, within: Duration) -> (Vec<Frame>, Option<Frame>) {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(f) = self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            if f.kind == GOAWAY {
                return (seen, Some(f));
            }
            seen.push(f);
        }
        (seen, None)
    }

    /// The frames of `stream` until it ends (END_STREAM or RST_STREAM), and its DATA.
    async fn response(&mut self, stream: u32) -> (Vec<Frame>, String) {
        let mut frames = Vec::new();
        let mut body = Vec::new();
        while let Some(f) = self.next(Duration::from_secs(10)).await {
            if f.stream != stream && f.kind != GOAWAY {
                continue;
            }
            let ended = f.kind == RST_STREAM || f.kind == GOAWAY || f.flags & END_STREAM != 0;
            if f.kind == DATA {
                body.extend_from_slice(&f.payload);
            }
            frames.push(f);
            if ended {
                break;
            }
        }
        (frames, String::from_utf8_lossy(&body).into_owned())
    }
}

/// A well-behaved HTTP/2 client on its own connection: GET `path`, the body.
async fn served(addr: SocketAddr, path: &str) -> String {
    let mut client = Client::connect(addr, &[]).await;
    client
        .send(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &request("GET", path, &[]),
        ))
        .await
        .unwrap();
    client.response(1).await.1
}

/// Runs `attack` and, meanwhile, a normal client; returns the GOAWAY the attacker got and
/// how long it took.
async fn attacked(
    addr: SocketAddr,
    settings: &[(u16, u32)],
    attack: Vec<u8>,
) -> (Vec<Frame>, Option<Frame>, Duration) {
    attacked_expecting(addr, settings, attack, "origin o /meanwhile").await
}

async fn attacked_expecting(
    addr: SocketAddr,
    settings: &[(u16, u32)],
    attack: Vec<u8>,
    expect: &str,
) -> (Vec<Frame>, Option<Frame>, Duration) {
    let mut attacker = Client::connect(addr, settings).await;
    let started = Instant::now();
    // The write may fail once the proxy closes: what it answered is what counts.
    let _ = attacker.send(&attack).await;
    let normal = tokio::spawn(async move { served(addr, "/meanwhile").await });
    let (frames, goaway) = attacker.until_goaway(Duration::from_secs(10)).await;
    let took = started.elapsed();
    eprintln!(
        "attacker got {:?}, then {goaway:?} after {took:?}",
        frames
            .iter()
            .map(|f| (f.kind, f.stream))
            .collect::<Vec<_>>()
    );
    assert_eq!(normal.await.unwrap(), expect);
    (frames, goaway, took)
}

fn assert_goaway(goaway: Option<&Frame>, code: u32) {
    let goaway = goaway.expect("no GOAWAY before the connection ended");
    assert_eq!(goaway.code(), code, "GOAWAY {goaway:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_ends_with_enhance_your_calm() {
    let (origin, log) = start_recording_origin().await;
    let proxy = start_proxy(&config(origin, ""));
    // CVE-2023-44487: open a stream and cancel it at once, 2000 times.
    let mut attack = Vec::new();
    for i in 0..2000_u32 {
        let id = 2 * i + 1;
        attack.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &request("GET", "/reset", &[]),
        ));
        attack.extend(frame(RST_STREAM, 0, id, &0x8_u32.to_be_bytes()));
    }
    let (_, goaway, _) = attacked_expecting(proxy.addr, &[], attack, "ok").await;
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
    // Bounded work: far fewer than 2000 requests reached the origin.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forwarded = String::from_utf8_lossy(&log.lock().unwrap())
        .matches("GET /reset")
        .count();
    assert!(forwarded <= 150, "{forwarded} requests reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_you_reset_ends_with_enhance_your_calm() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, "max_local_error_reset_streams = 50"));
    // CVE-2025-8671: a frame that makes the server reset the stream, on stream after
    // stream: a WINDOW_UPDATE that overflows the stream's send window is a stream error
    // FLOW_CONTROL_ERROR (RFC 9113 section 6.9.1).
    let mut attack = Vec::new();
    for i in 0..400_u32 {
        let id = 2 * i + 1;
        attack.extend(frame(
            HEADERS,
            END_HEADERS,
            id,
            &request("POST", "/made-you-reset", &[]),
        ));
        attack.extend(frame(WINDOW_UPDATE, 0, id, &0x7fff_ffff_u32.to_be_bytes()));
    }
    let (frames, goaway, took) = attacked(proxy.addr, &[], attack).await;
    // The streams reset before the GOAWAY (h2 may send the GOAWAY before their RST_STREAMs
    // are written) are reset for FLOW_CONTROL_ERROR, and the GOAWAY comes after about 50.
    let resets: Vec<_> = frames.iter().filter(|f| f.kind == RST_STREAM).collect();
    assert!(
        resets.iter().all(|f| f.code() == FLOW_CONTROL_ERROR),
        "{resets:?}"
    );
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
    let last = u32::from_be_bytes(goaway.unwrap().payload[..4].try_into().unwrap());
    assert!(last <= 2 * 52 + 1, "GOAWAY after stream {last}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // A zero increment is refused more strictly still: h2 ends the connection at once with
    // PROTOCOL_ERROR (the RFC allows a stream error).
    let mut attack = frame(HEADERS, END_HEADERS, 1, &request("POST", "/zero", &[]));
    attack.extend(frame(WINDOW_UPDATE, 0, 1, &0_u32.to_be_bytes()));
    let (_, goaway, _) = attacked(proxy.addr, &[], attack).await;
    assert_goaway(goaway.as_ref(), PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_ends_with_enhance_your_calm() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    // A header block that never ends: CONTINUATION after CONTINUATION (2024).
    let mut attack = frame(HEADERS, 0, 1, &request("GET", "/continuation", &[]));
    for i in 0..10_000 {
        attack.extend(frame(
            CONTINUATION,
            0,
            1,
            &literal("x-c", format!("{i}").as_bytes()),
        ));
    }
    let (_, goaway, _) = attacked(proxy.addr, &[], attack).await;
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_continuation_frames_are_a_flood() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    let mut attack = frame(HEADERS, 0, 1, &request("GET", "/continuation", &[]));
    for _ in 0..10_000 {
        attack.extend(frame(CONTINUATION, 0, 1, &[]));
    }
    let (_, goaway, _) = attacked(proxy.addr, &[], attack).await;
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpack_bomb_ends_with_enhance_your_calm() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    // One 4 000-octet field in the dynamic table, then 4 000 one-octet references to it:
    // 16 MB decoded from 8 KB (each field counted at its length plus 32 octets).
    let mut block = request("GET", "/bomb", &[]);
    block.extend(indexed_literal("x-bomb", &[b'a'; 4000]));
    block.extend(std::iter::repeat_n(0x80 | 62, 4000));
    let mut attack = frame(HEADERS, END_STREAM, 1, &block[..8000]);
    attack.extend(frame(CONTINUATION, END_HEADERS, 1, &block[8000..]));
    let (frames, goaway, _) = attacked(proxy.addr, &[], attack).await;
    assert!(
        frames.iter().all(|f| f.kind != DATA),
        "the bomb was answered: {frames:?}"
    );
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_count_floods_are_refused() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    // 200 small fields fit the byte budget but not `max_headers` (100): 431.
    let fields: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("x-f{i}"), b"v".to_vec()))
        .collect();
    let extra: Vec<(&str, &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let block = request("GET", "/count", &extra);
    let (reset, body) = one_request(proxy.addr, block.clone(), None).await;
    assert_eq!(
        (reset, body.as_str()),
        (None, "bad request: too many header fields\n")
    );
    // Again and again on one connection: after `max_refused_requests` (20) it goes.
    let mut attack = Vec::new();
    for i in 0..40_u32 {
        attack.extend(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &block));
    }
    let (_, goaway, _) = attacked(proxy.addr, &[], attack).await;
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);

    // The "HTTP/2 bomb": 20 000 one-octet references to a tiny dynamic-table field; each
    // counts 32 octets, so the decoded budget ends it after about a thousand.
    let mut block = request("GET", "/tiny", &[]);
    block.extend(indexed_literal("a", b"b"));
    block.extend(std::iter::repeat_n(0x80 | 62, 20_000));
    let mut attack = frame(HEADERS, END_STREAM, 1, &block[..16_000]);
    attack.extend(frame(CONTINUATION, END_HEADERS, 1, &block[16_000..]));
    let (_, goaway, _) = attacked(proxy.addr, &[], attack).await;
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_flood_ends_with_enhance_your_calm() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    let attack: Vec<u8> = (0..10_000)
        .flat_map(|_| frame(SETTINGS, 0, 0, &[]))
        .collect();
    let (frames, goaway, took) = attacked(proxy.addr, &[], attack).await;
    let acks = frames
        .iter()
        .filter(|f| f.kind == SETTINGS && f.flags & 1 == 1)
        .count();
    assert!(acks <= 110, "{acks} SETTINGS acknowledged");
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_ends_with_enhance_your_calm() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    let attack: Vec<u8> = (0..10_000_u64)
        .flat_map(|i| frame(PING, 0, 0, &i.to_be_bytes()))
        .collect();
    let (frames, goaway, _) = attacked(proxy.addr, &[], attack).await;
    let pongs = frames.iter().filter(|f| f.kind == PING).count();
    assert!(pongs <= 110, "{pongs} PINGs answered");
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_update_flood_ends_with_enhance_your_calm() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    // Increments of 1 on the connection: legal one by one, nothing flowing to pay for them.
    let attack: Vec<u8> = (0..10_000)
        .flat_map(|_| frame(WINDOW_UPDATE, 0, 0, &1_u32.to_be_bytes()))
        .collect();
    let (_, goaway, took) = attacked(proxy.addr, &[], attack).await;
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// A client that opens the stream's and the connection's window after every DATA frame it
/// reads sends far more WINDOW_UPDATE frames per second than the control budget, and is
/// served all the same: the DATA it reads pays for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_updates_paid_by_data_are_not_a_flood() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    let mut client = Client::connect(proxy.addr, &[]).await;
    let mut updates = 0;
    for n in 0..300_u32 {
        let stream = 2 * n + 1;
        client
            .send(&frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                stream,
                &request("GET", "/paid", &[]),
            ))
            .await
            .unwrap();
        let (frames, body) = client.response(stream).await;
        assert_eq!(body, "origin o /paid", "request {n}: {frames:?}");
        for f in frames
            .iter()
            .filter(|f| f.kind == DATA && !f.payload.is_empty())
        {
            let increment = u32::try_from(f.payload.len()).unwrap().to_be_bytes();
            let mut both = frame(WINDOW_UPDATE, 0, f.stream, &increment);
            both.extend(frame(WINDOW_UPDATE, 0, 0, &increment));
            client.send(&both).await.unwrap();
            updates += 2;
        }
    }
    assert!(updates >= 600, "{updates} WINDOW_UPDATE frames sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_never_opens_ends_the_connection() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, "send_timeout_ms = 500"));
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: the response can never be sent.
    let attack = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request("GET", "/stalled", &[]),
    );
    let (frames, goaway, took) = attacked(proxy.addr, &[(0x4, 0)], attack).await;
    assert!(frames.iter().all(|f| f.kind != DATA), "{frames:?}");
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_header_block_times_out() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, "header_read_timeout_ms = 500"));
    let attack = frame(HEADERS, 0, 1, &request("GET", "/slowloris", &[]));
    let (_, goaway, took) = attacked(proxy.addr, &[], attack).await;
    assert_goaway(goaway.as_ref(), ENHANCE_YOUR_CALM);
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// What the stream got: its RST_STREAM code (or the connection's GOAWAY code), or its DATA.
async fn one_request(
    addr: SocketAddr,
    block: Vec<u8>,
    body: Option<&[u8]>,
) -> (Option<u32>, String) {
    let mut client = Client::connect(addr, &[]).await;
    let flags = if body.is_some() {
        END_HEADERS
    } else {
        END_HEADERS | END_STREAM
    };
    let mut bytes = frame(HEADERS, flags, 1, &block);
    if let Some(body) = body {
        bytes.extend(frame(DATA, END_STREAM, 1, body));
    }
    client.send(&bytes).await.unwrap();
    let (frames, body) = client.response(1).await;
    let reset = frames
        .iter()
        .find(|f| f.kind == RST_STREAM || f.kind == GOAWAY)
        .map(Frame::code);
    (reset, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_smuggling_is_refused() {
    let (origin, log) = start_recording_origin().await;
    let proxy = start_proxy(&config(origin, ""));
    let addr = proxy.addr;
    let refused = |outcome: &(Option<u32>, String)| {
        outcome.0 == Some(PROTOCOL_ERROR) || outcome.1.starts_with("bad request")
    };
    // Pseudo-headers: one missing, one unknown, one after a regular field (RFC 9113 8.3).
    let mut no_scheme = literal(":method", b"GET");
    no_scheme.extend(literal(":path", b"/smuggle-1"));
    no_scheme.extend(literal(":authority", b"localhost"));
    let mut late_pseudo = request("GET", "/smuggle-2", &[("x-a", b"b")]);
    late_pseudo.extend(literal(":status", b"200"));
    let mut unknown_pseudo = request("GET", "/smuggle-3", &[]);
    unknown_pseudo.extend(literal(":foo", b"bar"));
    for (what, block, body) in [
        ("no :scheme", no_scheme, None),
        ("late pseudo-header", late_pseudo, None),
        ("unknown pseudo-header", unknown_pseudo, None),
        // Connection-specific fields (RFC 9113 8.2.2).
        (
            "transfer-encoding",
            request("POST", "/smuggle-4", &[("transfer-encoding", b"chunked")]),
            Some(&b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"[..]),
        ),
        (
            "connection",
            request("GET", "/smuggle-5", &[("connection", b"keep-alive")]),
            None,
        ),
        (
            "keep-alive",
            request("GET", "/smuggle-6", &[("keep-alive", b"5")]),
            None,
        ),
        (
            "te: gzip",
            request("GET", "/smuggle-7", &[("te", b"gzip")]),
            None,
        ),
        // Field values with CR, LF or NUL, and an uppercase name (RFC 9113 8.2.1).
        (
            "CRLF in a value",
            request(
                "GET",
                "/smuggle-8",
                &[("x-a", b"b\r\nGET /smuggled HTTP/1.1")],
            ),
            None,
        ),
        (
            "LF in a value",
            request("GET", "/smuggle-9", &[("x-a", b"b\nc")]),
            None,
        ),
        (
            "NUL in a value",
            request("GET", "/smuggle-10", &[("x-a", b"b\0c")]),
            None,
        ),
        (
            "uppercase name",
            request("GET", "/smuggle-11", &[("X-A", b"b")]),
            None,
        ),
        // content-length against DATA (RFC 9113 8.1.1).
        (
            "DATA longer than content-length",
            request("POST", "/smuggle-12", &[("content-length", b"3")]),
            Some(&b"abcGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"[..]),
        ),
        // Host against :authority, and content-length twice.
        (
            "host differs",
            request("GET", "/smuggle-13", &[("host", b"evil")]),
            None,
        ),
        (
            "two content-lengths",
            request(
                "POST",
                "/smuggle-14",
                &[("content-length", b"3"), ("content-length", b"4")],
            ),
            Some(&b"abc"[..]),
        ),
    ] {
        let outcome = one_request(addr, block, body).await;
        eprintln!("{what}: {outcome:?}");
        assert!(refused(&outcome), "{what}: {outcome:?}");
    }
    // Each refused request got its own answer and nothing smuggled reached the origin.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(!seen.contains("/smuggled"), "{seen}");
    // The well-formed request is forwarded with Host from :authority, as HTTP/1.1.
    let (reset, body) = one_request(addr, request("GET", "/fine", &[]), None).await;
    assert_eq!((reset, body.as_str()), (None, "ok"));
    let seen = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let fine = &seen[seen.find("GET /fine HTTP/1.1\r\n").expect(&seen)..];
    assert!(
        fine.to_ascii_lowercase()
            .contains("\r\nhost: localhost\r\n"),
        "{fine}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_sends_goaway_and_finishes_streams() {
    let origin = start_origin("o", Duration::from_millis(1500)).await;
    let mut proxy = start_proxy(&config(origin.addr, ""));
    let mut client = Client::connect(proxy.addr, &[]).await;
    client
        .send(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &request("GET", "/in-flight", &[]),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let terminated =
        tokio::task::spawn_blocking(move || (proxy.terminate(Duration::from_secs(8)), proxy));
    let mut goaway = None;
    let mut body = Vec::new();
    let mut ended = false;
    while let Some(f) = client.next(Duration::from_secs(6)).await {
        match f.kind {
            GOAWAY => goaway = Some(f),
            DATA if f.stream == 1 => {
                body.extend_from_slice(&f.payload);
                ended |= f.flags & END_STREAM != 0;
            }
            RST_STREAM => panic!("stream reset during the drain: {f:?}"),
            // The shutdown's PING: answered, as any client does.
            PING if f.flags & 1 == 0 => {
                let _ = client.send(&frame(PING, 1, 0, &f.payload)).await;
            }
            _ => {}
        }
        if ended {
            break;
        }
    }
    assert_goaway(goaway.as_ref(), NO_ERROR);
    assert_eq!(String::from_utf8_lossy(&body), "origin o /in-flight");
    let (exit, _proxy) = terminated.await.unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// An origin of raw HTTP/1.1: `GET /ok` is answered `ok`; on `GET /hang` it says so on
/// `hung`, answers nothing, and says on `closed` when the proxy closes that connection.
async fn start_hanging_origin() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hung_tx, hung) = tokio::sync::mpsc::unbounded_channel();
    let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (hung_tx, closed_tx) = (hung_tx.clone(), closed_tx.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0_u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&chunk[..n]);
                    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let request: Vec<u8> = head.drain(..end + 4).collect();
                    if request.starts_with(b"GET /hang ") {
                        let _ = hung_tx.send(());
                        // Nothing more comes from the proxy on this connection but its end.
                        while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
                        let _ = closed_tx.send(());
                        return;
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, hung, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_resets_stops_its_upstream_exchange() {
    let (origin, mut hung, mut closed) = start_hanging_origin().await;
    let proxy = start_proxy(&config(origin, ""));
    let mut client = Client::connect(proxy.addr, &[]).await;
    client
        .send(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &request("GET", "/hang", &[]),
        ))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), hung.recv())
        .await
        .expect("the request did not reach the origin")
        .unwrap();
    // RST_STREAM CANCEL while the answer is awaited: the proxy drops the exchange, which
    // ends its connection to the origin (a response half read cannot be reused).
    const CANCEL: u32 = 0x8;
    client
        .send(&frame(RST_STREAM, 0, 1, &CANCEL.to_be_bytes()))
        .await
        .unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), closed.recv())
        .await
        .expect("the upstream exchange went on after the client reset its stream")
        .unwrap();
    eprintln!("upstream closed {:?} after the reset", started.elapsed());
    // The connection itself goes on serving.
    client
        .send(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &request("GET", "/ok", &[]),
        ))
        .await
        .unwrap();
    let (frames, body) = client.response(3).await;
    assert_eq!(body, "ok", "{frames:?}");
    assert!(frames.iter().all(|f| f.kind != RST_STREAM), "{frames:?}");
}

/// The first PING the proxy sends on `client` within `within`, skipping other frames.
async fn next_ping(client: &mut Client, within: Duration) -> Option<Frame> {
    let deadline = Instant::now() + within;
    while let Some(f) = client
        .next(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        if f.kind == PING && f.flags & 1 == 0 {
            return Some(f);
        }
        assert_ne!(f.kind, GOAWAY, "GOAWAY before the keep-alive PING: {f:?}");
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_connection_is_pinged_and_closed_when_the_ping_goes_unanswered() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(
        origin.addr,
        "keepalive_interval_ms = 300\nkeepalive_timeout_ms = 600",
    ));
    // Answered: the connection stays and serves.
    let mut client = Client::connect(proxy.addr, &[]).await;
    for round in 0..2 {
        let started = Instant::now();
        let ping = next_ping(&mut client, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no keep-alive PING in round {round}"));
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "a PING before the connection was quiet: {:?}",
            started.elapsed()
        );
        client
            .send(&frame(PING, 1, 0, &ping.payload))
            .await
            .unwrap();
    }
    client
        .send(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &request("GET", "/after-pings", &[]),
        ))
        .await
        .unwrap();
    assert_eq!(client.response(1).await.1, "origin o /after-pings");

    // Unanswered: GOAWAY NO_ERROR after the timeout, then the end of the connection.
    let mut silent = Client::connect(proxy.addr, &[]).await;
    next_ping(&mut silent, Duration::from_secs(5))
        .await
        .expect("no keep-alive PING");
    let started = Instant::now();
    let (_, goaway) = silent.until_goaway(Duration::from_secs(5)).await;
    assert_goaway(goaway.as_ref(), NO_ERROR);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed before the keep-alive timeout: {:?}",
        started.elapsed()
    );
    let mut rest = [0_u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.stream.read(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the connection stayed open after its GOAWAY: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_still_works_on_an_h2c_listener() {
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    let (status, _, body) = common::get(&common::client(), &format!("http://{}/h1", proxy.addr))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "origin o /h1"));
}

/// curl, when installed (required under CI=true).
fn curl() -> Option<()> {
    let found = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("HTTP2"));
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "curl with HTTP/2 must be installed under CI=true"
        );
        eprintln!("skipped: no curl with HTTP/2");
    }
    found.then_some(())
}

fn run_curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_h2c_with_prior_knowledge() {
    if curl().is_none() {
        return;
    }
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&config(origin.addr, ""));
    let url = format!("http://{}/curl", proxy.addr);
    let out = tokio::task::spawn_blocking(move || run_curl(&["--http2-prior-knowledge", &url]))
        .await
        .unwrap();
    assert_eq!(out, "origin o /curl\n2 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiates_h2_over_tls_and_http1_still_works() {
    if curl().is_none() {
        return;
    }
    let origin = start_origin("o", Duration::ZERO).await;
    let proxy = start_proxy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[server.tls]\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"{}\" }}]\n[[routes]]\npool = \"a\"\n",
        origin.addr
    ));
    let url = format!("https://localhost:{}/tls", proxy.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", proxy.addr.port());
    let (h2, h1) = tokio::task::spawn_blocking(move || {
        (
            run_curl(&["-k", "--http2", "--resolve", &resolve, &url]),
            run_curl(&["-k", "--http1.1", "--resolve", &resolve, &url]),
        )
    })
    .await
    .unwrap();
    assert_eq!(h2, "origin o /tls\n2 200");
    assert_eq!(h1, "origin o /tls\n1.1 200");
}

#[test]
fn bad_http2_settings_are_refused() {
    let base = "[server]\nlisten = \"127.0.0.1:0\"\n[[pools]]\nname = \"a\"\nupstreams = [{ address = \"127.0.0.1:1\" }]\n[[routes]]\npool = \"a\"\n";
    for (section, needle) in [
        (
            "[server.http2]\nmax_frame_size = 100\n",
            "server.http2.max_frame_size",
        ),
        (
            "[server.http2]\nmax_concurrent_streams = 0\n",
            "server.http2.max_concurrent_streams",
        ),
        (
            "[server.http2]\ninitial_stream_window = 4294967295\n",
            "server.http2.initial_stream_window",
        ),
        (
            "[server.http2]\nh2c = true\n[server.tls]\n",
            "server.http2.h2c",
        ),
        ("[server.http2]\nmax_streams = 5\n", "max_streams"),
    ] {
        let text = base.replacen("\n[[pools]]", &format!("\n{section}[[pools]]"), 1);
        let error = reverse_proxy::ServerConfig::parse(&text).unwrap_err();
        assert!(error.contains(needle), "{section}: {error}");
    }
    assert!(reverse_proxy::ServerConfig::parse(base).is_ok());
}
