#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! A protocol upgrade (WebSocket-style) passes through to the upstream: the 101 comes back
//! and bytes flow both ways afterwards.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// An origin that answers `Upgrade: echo` with 101 and then echoes bytes upper-cased.
async fn upgrade_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(
                    |mut req: hyper::Request<hyper::body::Incoming>| async move {
                        let on_upgrade = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            if let Ok(upgraded) = on_upgrade.await {
                                let mut io = TokioIo::new(upgraded);
                                let mut buf = [0u8; 64];
                                while let Ok(n) = io.read(&mut buf).await {
                                    if n == 0 {
                                        break;
                                    }
                                    let upper: Vec<u8> = buf[..n].to_ascii_uppercase();
                                    if io.write_all(&upper).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        });
                        let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                        resp.headers_mut()
                            .insert("upgrade", "echo".parse().unwrap());
                        resp.headers_mut()
                            .insert("connection", "upgrade".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// Sends the upgrade request through `proxy` and reads the 101's head.
async fn open_tunnel(proxy: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    stream
}

async fn echo(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).await.unwrap();
    let mut got = vec![0u8; message.len()];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, message.to_ascii_uppercase());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_tunnel_is_closed_after_its_idle_timeout() {
    let origin = upgrade_origin().await;
    let proxy = common::start_proxy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"{origin}\" }}]\ntunnel_idle_timeout_ms = 600\n[[routes]]\npool = \"a\"\n"
    ));
    // Busy: a message every 100 ms for well past the timeout keeps it open.
    let mut busy = open_tunnel(proxy.addr).await;
    for _ in 0..15 {
        echo(&mut busy, b"still here").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    echo(&mut busy, b"after 1.5 seconds").await;
    // Quiet: closed once nothing moved for 600 ms.
    let mut quiet = open_tunnel(proxy.addr).await;
    echo(&mut quiet, b"hello").await;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), quiet.read(&mut buf))
        .await
        .expect("the proxy closes a quiet tunnel");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "closed too early"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_passes_through() {
    let origin = upgrade_origin().await;
    let proxy = common::start_proxy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"{origin}\" }}]\n[[routes]]\npool = \"a\"\n"
    ));
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: echo"),
        "{head}"
    );
    for message in [
        &b"hello"[..],
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    ] {
        stream.write_all(message).await.unwrap();
        let mut got = vec![0u8; message.len()];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(
            got,
            message.to_ascii_uppercase(),
            "after the 101 the bytes are not HTTP"
        );
    }
}
