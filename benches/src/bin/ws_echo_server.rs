//! A WebSocket echo server for scripts/bench-ws.sh: `ws_echo_server ws-core|tokio-tungstenite|fastwebsockets`.
//! Prints its address on the first line, then echoes every text and binary message on every
//! connection. One runtime thread by default (`THREADS=N` for more), so that the server's CPU
//! time per message is read from /proc without the load generator on the same thread pool.
//! ws-core negotiates permessage-deflate when the client offers it; the two peers do not
//! support it (tokio-tungstenite 0.30 and fastwebsockets 0.10 have no permessage-deflate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest message each server accepts: above the benchmark's 64 KiB messages.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Kind {
    Ours,
    Tungstenite,
    Fast,
}

/// Reads the request head byte by byte (only once per connection) into `request::Parts`.
async fn read_head(stream: &mut TcpStream) -> Option<http::request::Parts> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.ok()?;
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            return None;
        }
    }
    let text = String::from_utf8(head).ok()?;
    let mut builder = http::Request::get("/");
    for line in text.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            builder = builder.header(name.trim(), value.trim());
        }
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

async fn write_101(stream: &mut TcpStream, response: &http::Response<()>) -> Option<()> {
    let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in response.headers() {
        head.push_str(&format!("{}: {}\r\n", name, value.to_str().ok()?));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.ok()
}

async fn serve_ours(mut stream: TcpStream) -> Option<()> {
    let parts = read_head(&mut stream).await?;
    let config = ws_core::HandshakeConfig::default().deflate(ws_core::DeflateConfig::default());
    let accepted = ws_core::accept(&parts, &config).ok()?;
    write_101(&mut stream, &accepted.response).await?;
    let limits = ws_core::Limits {
        max_frame: MAX_MESSAGE,
        max_message: MAX_MESSAGE,
        ..ws_core::Limits::default()
    };
    let mut ws =
        ws_core::WebSocket::new(stream, ws_core::Connection::new(limits, accepted.deflate));
    while let Some(Ok(message)) = ws.next_message().await {
        if (message.is_text() || message.is_binary()) && ws.queue(message).is_err() {
            break;
        }
    }
    Some(())
}

async fn serve_tungstenite(stream: TcpStream) -> Option<()> {
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config))
        .await
        .ok()?;
    // The echo pattern of its own examples: the read half forwarded into the write half.
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|m| std::future::ready(m.is_text() || m.is_binary()))
        .forward(write)
        .await;
    Some(())
}

async fn serve_fast(mut stream: TcpStream) -> Option<()> {
    let parts = read_head(&mut stream).await?;
    // The handshake by ws-core's function (the same bytes any server must send); the
    // connection after it is fastwebsockets' own.
    let accepted = ws_core::accept(&parts, &ws_core::HandshakeConfig::default()).ok()?;
    write_101(&mut stream, &accepted.response).await?;
    let mut ws = fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Server);
    ws.set_max_message_size(MAX_MESSAGE);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    // Whole messages, as the other two deliver them.
    let mut ws = fastwebsockets::FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await.ok()?;
        match frame.opcode {
            fastwebsockets::OpCode::Close => return Some(()),
            fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => {
                ws.write_frame(frame).await.ok()?;
            }
            _ => {}
        }
    }
}

async fn listen(kind: Kind) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    println!("{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        match kind {
            Kind::Ours => tokio::spawn(serve_ours(stream)),
            Kind::Tungstenite => tokio::spawn(serve_tungstenite(stream)),
            Kind::Fast => tokio::spawn(serve_fast(stream)),
        };
    }
}

fn main() {
    let kind = match std::env::args().nth(1).as_deref() {
        Some("ws-core") => Kind::Ours,
        Some("tokio-tungstenite") => Kind::Tungstenite,
        Some("fastwebsockets") => Kind::Fast,
        _ => {
            eprintln!("usage: ws_echo_server ws-core|tokio-tungstenite|fastwebsockets");
            std::process::exit(2);
        }
    };
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    if let Err(error) = runtime.block_on(listen(kind)) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
