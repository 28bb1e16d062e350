//! The reverse proxy mounted at `/proxy/` (issue 14, findings 9, 15 and 18): ambiguous or
//! invalid `Host` is refused, headers an untrusted client could use to steer the origin or
//! poison its cache are not forwarded, and the header echo does not show cookie values.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Server;

/// Sends raw bytes and returns (status, whole response text).
fn raw(server: &Server, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn mounted_proxy_refuses_ambiguous_host_and_strips_unkeyed_headers() {
    let server = Server::start();
    let host = server.addr.to_string();
    let path = "/proxy/origin/headers";
    // Two Host headers: refused before anything is forwarded.
    let (status, text) = raw(
        &server,
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 400, "{text}");
    // No Host in HTTP/1.1.
    let (status, text) = raw(
        &server,
        format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 400, "{text}");
    // Host values that are not RFC 3986 host[:port].
    for bad in ["u@evil.example", "a/b", "a b"] {
        let (status, text) = raw(
            &server,
            format!("GET {path} HTTP/1.1\r\nHost: {bad}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status, 400, "{bad}: {text}");
    }
    // Headers some frameworks read as the client's address, scheme, host, port, prefix or
    // URL are not passed from an untrusted client; the cookie's value is not echoed.
    let spoofed = [
        "X-Real-IP: 6.6.6.6",
        "X-Forwarded-Prefix: //evil.example",
        "X-Forwarded-Port: 1",
        "X-Forwarded-Host: evil.example",
        "X-Forwarded-Proto: gopher",
        "X-Forwarded-Scheme: gopher",
        "X-Forwarded-Server: evil.example",
        "X-Forwarded-Ssl: on",
        "X-Original-URL: /admin",
        "X-Rewrite-URL: /admin",
        "X-Original-Host: evil.example",
        "X-Host: evil.example",
        "X-Client-IP: 6.6.6.6",
        "True-Client-IP: 6.6.6.6",
        "Front-End-Https: on",
    ];
    let (status, text) = raw(
        &server,
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: session=very-secret-value\r\n{}\r\nConnection: close\r\n\r\n",
            spoofed.join("\r\n")
        )
        .as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let lower = text.to_ascii_lowercase();
    for header in spoofed {
        let (name, value) = header.split_once(": ").unwrap();
        let name = name.to_ascii_lowercase();
        assert!(
            !lower.contains(&format!("\"{name}\"")) || !lower.contains(&value.to_ascii_lowercase()),
            "{name} reached the origin: {text}"
        );
    }
    assert!(lower.contains("\"cookie\""), "{text}");
    assert!(
        !text.contains("very-secret-value"),
        "the echo shows cookie values: {text}"
    );
}
