#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! WebSockets over HTTP/2 (RFC 8441): an HTTP/2 client (hyper's) opens a WebSocket with an
//! extended CONNECT through the proxy to a real WebSocket server upstream (Python
//! `websockets`, `PEER_PYTHON`) that speaks HTTP/1.1 only; the proxy makes the CONNECT an
//! HTTP/1.1 upgrade with its own key, checks the server's accept, answers 200, and frames
//! flow both ways. Another `:protocol` is 501; with `websocket = false` the proxy does not
//! offer extended CONNECT at all. Headless Chromium (which uses RFC 8441 over TLS only)
//! opens a WebSocket on the HTTP/2 connection its page came over.

mod common;

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use common::start_proxy;
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use hyper::ext::Protocol;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// An echo server in Python `websockets`; prints its port.
const ECHO_SERVER: &str = r#"
import asyncio
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"#;

/// The Python echo server, killed when dropped.
struct EchoServer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The echo server when `PEER_PYTHON` has `websockets`; `None` (the test skips) otherwise,
/// a failure under `CI=true`.
fn echo_server() -> Option<EchoServer> {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let Ok(python) = std::env::var("PEER_PYTHON") else {
        assert!(!ci, "PEER_PYTHON must be set under CI=true");
        eprintln!("skipped: PEER_PYTHON is not set (a Python with websockets)");
        return None;
    };
    let mut child = Command::new(&python)
        .args(["-c", ECHO_SERVER])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Ok(port) = line.trim().parse::<u16>() else {
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            !ci,
            "PEER_PYTHON has no websockets under CI=true (.ci/requirements.txt)"
        );
        eprintln!("skipped: PEER_PYTHON ({python}) could not start a websockets server");
        return None;
    };
    Some(EchoServer {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    })
}

fn config(upstream: SocketAddr, http2_extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[server.http2]\nh2c = true\n{http2_extra}\n\
         [[pools]]\nname = \"ws\"\nupstreams = [{{ address = \"{upstream}\" }}]\n[[routes]]\npool = \"ws\"\n"
    )
}

type Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// An HTTP/2 connection (prior knowledge) to the proxy, once its SETTINGS have arrived (a
/// plain request answered).
async fn h2_client(proxy: SocketAddr) -> Sender {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let plain = Request::get(format!("http://{proxy}/"))
        .body(Empty::new())
        .unwrap();
    // websockets answers a plain GET with 426 Upgrade Required.
    let response = sender.send_request(plain).await.unwrap();
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    sender
}

fn extended_connect(proxy: SocketAddr, protocol: &'static str) -> Request<Empty<Bytes>> {
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{proxy}/echo"))
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(Protocol::from_static(protocol));
    request
}

/// A masked client text frame (RFC 6455 section 5.2) of a short `payload`.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | u8::try_from(payload.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_http2_reaches_an_http1_websocket_server() {
    let Some(upstream) = echo_server() else {
        return;
    };
    let proxy = start_proxy(&config(upstream.addr, ""));
    let mut sender = h2_client(proxy.addr).await;
    let response = sender
        .send_request(extended_connect(proxy.addr, "websocket"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    for name in ["upgrade", "connection", "sec-websocket-accept"] {
        assert!(
            !response.headers().contains_key(name),
            "{name} reached the client"
        );
    }
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let mut tunnel = TokioIo::new(upgraded);
    for message in ["hello over h2", "and a second frame"] {
        tunnel
            .write_all(&client_frame(message.as_bytes()))
            .await
            .unwrap();
        // The server's frame: unmasked text, the same payload.
        let mut head = [0u8; 2];
        tunnel.read_exact(&mut head).await.unwrap();
        assert_eq!(head, [0x81, u8::try_from(message.len()).unwrap()]);
        let mut payload = vec![0u8; message.len()];
        tunnel.read_exact(&mut payload).await.unwrap();
        assert_eq!(payload, message.as_bytes());
    }
    // A close frame is answered with one, and the server ends the connection.
    tunnel
        .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tunnel.read_to_end(&mut rest),
    )
    .await
    .expect("the tunnel ends after the close handshake")
    .unwrap();
    assert_eq!(rest.get(..2), Some(&[0x88, 0x02][..]), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_protocol_is_not_implemented() {
    let Some(upstream) = echo_server() else {
        return;
    };
    let proxy = start_proxy(&config(upstream.addr, ""));
    let mut sender = h2_client(proxy.addr).await;
    let response = sender
        .send_request(extended_connect(proxy.addr, "connect-udp"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
    // The connection still serves a WebSocket.
    let response = sender
        .send_request(extended_connect(proxy.addr, "websocket"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_can_be_turned_off() {
    let Some(upstream) = echo_server() else {
        return;
    };
    let proxy = start_proxy(&config(upstream.addr, "websocket = false"));
    let mut sender = h2_client(proxy.addr).await;
    // Not offered (no SETTINGS_ENABLE_CONNECT_PROTOCOL): the client's h2 refuses to send it.
    assert!(
        sender
            .send_request(extended_connect(proxy.addr, "websocket"))
            .await
            .is_err()
    );
}

#[test]
fn chromium_opens_a_websocket_over_http2() {
    let Some(modules) = serve::testing::peer("PEER_NODE_MODULES") else {
        return;
    };
    let Some(chromium) = serve::testing::peer("CHROMIUM_PATH") else {
        return;
    };
    let Some(upstream) = echo_server() else {
        return;
    };
    let cert = std::env::temp_dir().join(format!("rp-ws-h2-cert-{}.pem", std::process::id()));
    let proxy = start_proxy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[server.tls]\ndev_cert_out = \"{}\"\n\
         [[pools]]\nname = \"ws\"\nupstreams = [{{ address = \"{}\" }}]\n[[routes]]\npool = \"ws\"\n",
        cert.display(),
        upstream.addr
    ));
    let _ = std::fs::remove_file(&cert);
    let stdout = serve::testing::run(
        Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/websocket_h2_browser.js"
            ))
            .arg(format!("https://127.0.0.1:{}", proxy.addr.port()))
            .env("NODE_PATH", modules)
            .env("CHROMIUM_PATH", chromium),
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
