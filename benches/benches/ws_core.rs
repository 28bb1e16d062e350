//! ws-core beside its peers, in one run:
//! - echo messages per second through ws-core's tokio adapter vs tokio-tungstenite 0.30
//!   (its echo-server pattern: `read.forward(write)`), same load generator;
//! - broadcast to a room of 10,000 members: ws-core's `Hub` vs a `tokio::sync::broadcast`
//!   channel with 10,000 receivers;
//! - memory per idle connection with 10,000 connections open (ours vs tokio-tungstenite with
//!   its defaults), measured as the RSS growth of a server child process; printed, not
//!   timed (`WS_CORE_MEMORY=0` skips it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY_REQUEST: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[derive(Clone, Copy, Debug)]
enum Server {
    Ours,
    Peer,
}

/// Reads an HTTP request head and builds `request::Parts` (enough for the handshake).
async fn read_head(stream: &mut TcpStream) -> http::request::Parts {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let mut builder = http::Request::get("/");
    for line in text.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            builder = builder.header(name.trim(), value.trim());
        }
    }
    builder.body(()).unwrap().into_parts().0
}

async fn serve_ours(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let parts = read_head(&mut stream).await;
    let accepted = ws_core::accept(&parts, &ws_core::HandshakeConfig::default()).unwrap();
    let mut response = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in accepted.response.headers() {
        response.push_str(&format!("{}: {}\r\n", name, value.to_str().unwrap()));
    }
    response.push_str("\r\n");
    stream.write_all(response.as_bytes()).await.unwrap();
    let conn = ws_core::Connection::new(ws_core::Limits::default(), accepted.deflate);
    let mut ws = ws_core::WebSocket::new(stream, conn);
    while let Some(Ok(message)) = ws.next_message().await {
        if (message.is_text() || message.is_binary()) && ws.queue(message).is_err() {
            break;
        }
    }
}

async fn serve_peer(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|m| std::future::ready(m.is_text() || m.is_binary()))
        .forward(write)
        .await;
}

async fn listen(server: Server) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            match server {
                Server::Ours => tokio::spawn(serve_ours(stream)),
                Server::Peer => tokio::spawn(serve_peer(stream)),
            };
        }
    });
    addr
}

/// The load generator: a raw client that handshakes, then pipelines masked 64-byte text
/// frames in batches and reads the echoes back.
struct Load {
    stream: TcpStream,
    batch: Vec<u8>,
    per_batch: usize,
    echo_len: usize,
    buf: Vec<u8>,
}

impl Load {
    async fn connect(addr: SocketAddr, per_batch: usize) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(KEY_REQUEST.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"));
        let payload = [b'a'; 64];
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | 64];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let batch = frame.repeat(per_batch);
        Self {
            stream,
            batch,
            per_batch,
            echo_len: 2 + 64,
            buf: vec![0; 1 << 16],
        }
    }

    /// Sends `batches` batches and waits for every echo; returns messages echoed.
    async fn run(&mut self, batches: u64) -> u64 {
        for _ in 0..batches {
            self.stream.write_all(&self.batch).await.unwrap();
            let mut want = self.per_batch * self.echo_len;
            while want > 0 {
                let n = self.stream.read(&mut self.buf).await.unwrap();
                assert!(n > 0);
                want -= n.min(want);
            }
        }
        batches * self.per_batch as u64
    }
}

fn echo(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("ws_core_echo_64B");
    let per_batch = 64;
    group.throughput(Throughput::Elements(per_batch as u64));
    for server in [Server::Ours, Server::Peer] {
        let addr = runtime.block_on(listen(server));
        let mut load = runtime.block_on(Load::connect(addr, per_batch));
        let name = match server {
            Server::Ours => "ws-core",
            Server::Peer => "tokio-tungstenite",
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                black_box(runtime.block_on(load.run(iters)));
                started.elapsed()
            });
        });
    }
    group.finish();
}

fn broadcast(c: &mut Criterion) {
    const MEMBERS: usize = 10_000;
    let mut group = c.benchmark_group("ws_core_broadcast_10k");
    group.throughput(Throughput::Elements(MEMBERS as u64));

    let now = Instant::now();
    let mut hub = ws_core::Hub::new(ws_core::HubConfig::default());
    let ids: Vec<_> = (0..MEMBERS)
        .map(|i| hub.connect(format!("c{i}"), now).unwrap())
        .collect();
    for id in &ids {
        hub.join(*id, "room", now).unwrap();
    }
    for id in &ids {
        while hub.poll_transmit(*id).is_some() {}
    }
    let message = ws_core::Message::text("x".repeat(64));
    group.bench_function("ws-core Hub (broadcast + drain every queue)", |b| {
        b.iter(|| {
            hub.broadcast(ids[0], "room", message.clone(), now).unwrap();
            for id in &ids {
                black_box(hub.poll_transmit(*id));
            }
            while hub.poll_ready().is_some() {}
        });
    });

    let (sender, _) = tokio::sync::broadcast::channel::<ws_core::Message>(256);
    let mut receivers: Vec<_> = (0..MEMBERS).map(|_| sender.subscribe()).collect();
    group.bench_function("tokio broadcast channel (send + try_recv each)", |b| {
        b.iter(|| {
            sender.send(message.clone()).unwrap();
            for receiver in &mut receivers {
                let _ = black_box(receiver.try_recv());
            }
        });
    });
    group.finish();
}

/// Runs a server in this process (child mode) and reports its address.
fn child_server(server: Server) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addr = listen(server).await;
        println!("{addr}");
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn idle_memory(server: Server, connections: usize) -> f64 {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("WS_CORE_BENCH_CHILD", format!("{server:?}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        // Warm up: a few connections so the runtime's own allocations are in the baseline.
        let mut warm = Vec::new();
        for _ in 0..10 {
            warm.push(Load::connect(addr, 1).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kib(child.id());
        let mut open = Vec::with_capacity(connections);
        for _ in 0..connections {
            let mut load = Load::connect(addr, 1).await;
            load.run(1).await; // one echo, so each connection has read and written
            open.push(load);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(child.id());
        drop(open);
        (after.saturating_sub(before)) as f64 * 1024.0 / connections as f64
    });
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn main() {
    if let Ok(which) = std::env::var("WS_CORE_BENCH_CHILD") {
        child_server(if which == "Ours" {
            Server::Ours
        } else {
            Server::Peer
        });
        return;
    }
    if std::env::var("WS_CORE_MEMORY").as_deref() != Ok("0")
        && std::env::args().any(|a| a == "--bench")
    {
        let connections = 10_000;
        let ours = idle_memory(Server::Ours, connections);
        let peer = idle_memory(Server::Peer, connections);
        println!(
            "idle memory per connection ({connections} connections, server RSS growth): \
             ws-core {:.0} B ({:.2} KiB), tokio-tungstenite {:.0} B ({:.2} KiB), ratio {:.1}x",
            ours,
            ours / 1024.0,
            peer,
            peer / 1024.0,
            peer / ours
        );
    }
    let mut c = Criterion::default().configure_from_args();
    echo(&mut c);
    broadcast(&mut c);
    c.final_summary();
}
