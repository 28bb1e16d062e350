#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `server.head_timeout_ms`: an HTTP/1 connection waiting for a request (a head still
//! arriving, or idle after a response) is closed; one with a request in progress (a
//! response streaming slower than the timeout) is not.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin that answers every request with six chunks, 300 ms apart (1.5 s in all).
async fn slow_chunked_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await;
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if stream.write_all(b"5\r\nhello\r\n").await.is_err() {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

fn config(origin: SocketAddr) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\nhead_timeout_ms = 600\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"{origin}\" }}]\n[[routes]]\npool = \"a\"\n"
    )
}

/// A connection to the proxy with `bytes` written.
async fn sent(proxy: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the proxy closes, which must be after half the 600 ms timeout (less a
/// margin) and within it (plus a margin for a loaded machine).
async fn assert_closed_in_time(stream: &mut TcpStream) {
    let took = closed_after(stream).await;
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(1500),
        "closed too late: {took:?}"
    );
}

/// Reads until the peer closes; how long that took.
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the proxy closes the connection");
        if matches!(read, Ok(0) | Err(_)) {
            return started.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_never_completes_is_closed() {
    let origin = slow_chunked_origin().await;
    let proxy = common::start_proxy(&config(origin));
    let mut stream = sent(proxy.addr, b"GET /slow HTTP/1.1\r\nHost: a\r\n").await;
    assert_closed_in_time(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_slower_than_the_timeout_is_not_cut_and_the_idle_connection_then_is() {
    let origin = slow_chunked_origin().await;
    let proxy = common::start_proxy(&config(origin));
    let mut stream = sent(proxy.addr, b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").await;
    // 1.5 s of response, 2.5 times the head timeout: all six chunks and the end arrive.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the response keeps coming")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(text.matches("hello").count(), 6, "{text}");
    // Then idle: closed within the timeout.
    assert_closed_in_time(&mut stream).await;
}
