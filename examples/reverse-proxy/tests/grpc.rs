#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Upstream HTTP/2 (`protocol = "h2c"` pools) and gRPC pass-through.
//!
//! With a real gRPC client and server (Python `grpcio`, `tests/data/grpc_peer.py`, raw-bytes
//! messages): unary, server streaming, client streaming and ping-pong bidi calls through
//! the proxy over h2c, a handler's error status and trailing metadata kept, a member down
//! answered UNAVAILABLE and a timeout DEADLINE_EXCEEDED. These need `PEER_PYTHON` (a Python
//! with the pinned `grpcio` of .ci/requirements.txt); they skip without it, and fail under
//! `CI=true`.
//!
//! Without Python, against HTTP/2 origins written here: trailers and `te: trailers` kept,
//! the `grpc-timeout` deadline cutting a slow head and a slow stream, streams multiplexed
//! within `max_streams_per_connection` on at most `max_connections` connections, health
//! checks over HTTP/2, and gRPC statuses for calls the proxy cannot route.

mod common;

use std::convert::Infallible;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::start_proxy;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/grpc_peer.py");

fn config(members: &[SocketAddr], pool_extra: &str) -> String {
    let upstreams = members
        .iter()
        .map(|m| format!("{{ address = \"{m}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
workers = 1
[server.http2]
h2c = true

[[pools]]
name = "grpc"
protocol = "h2c"
upstreams = [{upstreams}]
{pool_extra}

[[routes]]
pool = "grpc"
"#
    )
}

/// A port nothing listens on.
fn dead_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

// ---- the real gRPC peer ----

/// `PEER_PYTHON` when it has `grpcio`; `None` (the test skips) otherwise, a failure under
/// `CI=true`.
fn python() -> Option<String> {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let Ok(python) = std::env::var("PEER_PYTHON") else {
        assert!(!ci, "PEER_PYTHON must be set under CI=true");
        eprintln!("skipped: PEER_PYTHON is not set (a Python with grpcio)");
        return None;
    };
    let has_grpc = Command::new(&python)
        .args(["-c", "import grpc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_grpc {
        assert!(
            !ci,
            "PEER_PYTHON has no grpcio under CI=true (.ci/requirements.txt)"
        );
        eprintln!("skipped: PEER_PYTHON ({python}) has no grpcio");
        return None;
    }
    Some(python)
}

/// The grpcio server, killed when dropped.
struct GrpcServer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_grpc_server(python: &str) -> GrpcServer {
    start_grpc_server_with(python, &[])
}

/// The grpcio server with more arguments after `server` (`-tls CERT KEY`).
fn start_grpc_server_with(python: &str, tls: &[&std::path::Path]) -> GrpcServer {
    let mut command = Command::new(python);
    if tls.is_empty() {
        command.args([PEER, "server"]);
    } else {
        command.args([PEER, "server-tls"]).args(tls);
    }
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the gRPC server's port");
    GrpcServer {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// Runs the peer client; its `key<TAB>value` lines.
fn grpc_client(python: &str, args: &[&str]) -> Vec<(String, String)> {
    let output = Command::new(python).arg(PEER).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "gRPC client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn value<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map_or_else(|| panic!("no {key} in {lines:?}"), |(_, v)| v.as_str())
}

#[test]
fn grpc_calls_pass_through_with_statuses_and_trailers() {
    let Some(python) = python() else { return };
    let server = start_grpc_server(&python);
    let proxy = start_proxy(&config(&[server.addr], ""));
    assert_every_call_kind(&grpc_client(&python, &["calls", &proxy.addr.to_string()]));
}

/// What `grpc_peer.py calls` printed: every call kind answered as the server answers it.
fn assert_every_call_kind(lines: &[(String, String)]) {
    assert_eq!(value(lines, "unary"), "echo:hello");
    assert_eq!(value(lines, "unary_code"), "OK");
    // Trailing metadata is in the trailers, after the body: they were kept.
    assert_eq!(value(lines, "unary_trailer"), "kept");
    // The handler's status and its message (percent-encoded on the wire) pass through.
    assert_eq!(
        value(lines, "fail"),
        "PERMISSION_DENIED|not for you: \u{e9} 100%"
    );
    assert_eq!(
        value(lines, "server_stream"),
        "item-0,item-1,item-2,item-3,item-4"
    );
    assert_eq!(value(lines, "client_stream"), "a+b+c");
    // Ping-pong: stalls unless both directions stream unbuffered.
    assert_eq!(value(lines, "bidi"), "PING-0,PING-1,PING-2");
}

/// HTTP/2 over TLS to the member (`protocol = "h2"`, `[pools.tls]`): grpcio's TLS server
/// agrees to `h2` by ALPN, as gRPC requires, and every call kind passes as over h2c.
#[test]
fn grpc_calls_pass_through_over_tls_to_the_member() {
    let Some(python) = python() else { return };
    let pki = common::Pki::new("grpc");
    let server = start_grpc_server_with(&python, &[&pki.server_cert, &pki.server_key]);
    let tls = format!("[pools.tls]\nca = {:?}", pki.ca.display().to_string());
    let proxy = start_proxy(
        &config(&[server.addr], &tls).replace("protocol = \"h2c\"", "protocol = \"h2\""),
    );
    assert_every_call_kind(&grpc_client(&python, &["calls", &proxy.addr.to_string()]));
}

#[test]
fn a_member_down_is_unavailable() {
    let Some(python) = python() else { return };
    let proxy = start_proxy(&config(&[dead_port()], ""));
    let lines = grpc_client(&python, &["unary", &proxy.addr.to_string(), "10"]);
    // The proxy's own answer (a client that cannot connect says something else).
    assert_eq!(
        lines[0],
        ("UNAVAILABLE".into(), "upstream unreachable".into())
    );
}

#[test]
fn deadlines_end_in_deadline_exceeded() {
    let Some(python) = python() else { return };
    let server = start_grpc_server(&python);
    // The client's deadline (sent as grpc-timeout) is shorter than the proxy's.
    let proxy = start_proxy(&config(&[server.addr], ""));
    let lines = grpc_client(&python, &["slow", &proxy.addr.to_string(), "0.5"]);
    assert_eq!(lines[0].0, "DEADLINE_EXCEEDED", "{lines:?}");
    // The proxy's timeout is the shorter: the proxy answers, with its own message.
    let proxy = start_proxy(&config(&[server.addr], "request_timeout_ms = 300"));
    let lines = grpc_client(&python, &["slow", &proxy.addr.to_string(), "20"]);
    assert_eq!(
        lines[0],
        ("DEADLINE_EXCEEDED".into(), "upstream timed out".into())
    );
}

// ---- HTTP/2 origins written here ----

/// What an origin saw: connections, and the most streams in flight on one connection.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    most_streams: AtomicUsize,
}

struct H2Origin {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

type OriginBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// An HTTP/2 (prior knowledge) origin named `name`:
/// - `/healthz`: 200, or 503 when `name` is `sick`;
/// - `/slow-head`: the head after 5 s;
/// - `/slow-body`: the head and one message at once, the rest 5 s later;
/// - `/wait`: 200 after 200 ms;
/// - anything else: `origin NAME`, with what it saw of `te` and `:authority` in
///   `x-seen-te`, `x-seen-authority` and `x-seen-timeout`, and trailers `grpc-status: 0`, `x-trailer: kept`.
async fn start_h2_origin(name: &'static str) -> H2Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let in_flight = Arc::new(AtomicUsize::new(0));
            let seen = shared.clone();
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let (in_flight, seen) = (in_flight.clone(), seen.clone());
                async move { Ok::<_, Infallible>(answer(name, request, &in_flight, &seen).await) }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    H2Origin { addr, seen }
}

fn frames(frames: Vec<Frame<Bytes>>) -> OriginBody {
    StreamBody::new(futures_util::stream::iter(
        frames.into_iter().map(Ok::<_, Infallible>),
    ))
    .boxed_unsync()
}

fn trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers.insert("x-trailer", "kept".parse().unwrap());
    trailers
}

async fn answer(
    name: &'static str,
    request: Request<hyper::body::Incoming>,
    in_flight: &AtomicUsize,
    seen: &Seen,
) -> Response<OriginBody> {
    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.most_streams.fetch_max(now, Ordering::SeqCst);
    let path = request.uri().path().to_owned();
    let te = request
        .headers()
        .get("te")
        .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
    let authority = request
        .uri()
        .authority()
        .map_or("none".to_owned(), ToString::to_string);
    let timeout = request
        .headers()
        .get("grpc-timeout")
        .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
    let _ = request.into_body().collect().await;
    let response = match path.as_str() {
        "/healthz" if name == "sick" => Response::builder()
            .status(503)
            .body(Full::new(Bytes::new()).boxed_unsync())
            .unwrap(),
        "/slow-head" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::new(Full::new(Bytes::new()).boxed_unsync())
        }
        "/slow-body" => {
            let rest = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, Infallible>(Frame::trailers(trailers()))
            });
            let first =
                futures_util::stream::iter([Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01A")))]);
            Response::new(
                StreamBody::new(futures_util::StreamExt::chain(first, rest)).boxed_unsync(),
            )
        }
        "/wait" => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Response::new(Full::new(Bytes::from(format!("origin {name}"))).boxed_unsync())
        }
        _ => Response::builder()
            .header("content-type", "application/grpc")
            .header("x-seen-te", te)
            .header("x-seen-authority", authority)
            .header("x-seen-timeout", timeout)
            .body(frames(vec![
                Frame::data(Bytes::from(format!("origin {name}"))),
                Frame::trailers(trailers()),
            ]))
            .unwrap(),
    };
    in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

/// An HTTP/2 client connection (prior knowledge) to the proxy.
async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

fn grpc_request(addr: SocketAddr, path: &str, timeout: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(timeout) = timeout {
        request = request.header("grpc-timeout", timeout);
    }
    request
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x01x")))
        .unwrap()
}

/// The status, head, body and trailers of a call.
async fn call(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, Bytes, Option<HeaderMap>) {
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (parts.status, parts.headers, collected.to_bytes(), trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_and_te_reach_each_side() {
    let origin = start_h2_origin("a").await;
    let proxy = start_proxy(&config(&[origin.addr], ""));
    let mut client = h2_client(proxy.addr).await;
    let (status, head, body, trailers) =
        call(&mut client, grpc_request(proxy.addr, "/svc/Method", None)).await;
    assert_eq!(status, 200);
    assert_eq!(body, "origin a");
    assert_eq!(head["x-seen-te"], "trailers");
    // The client's :authority, as :authority again (not a Host field).
    assert_eq!(head["x-seen-authority"], proxy.addr.to_string());
    let trailers = trailers.expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-trailer"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_bounds_the_head_and_the_stream() {
    let origin = start_h2_origin("a").await;
    let proxy = start_proxy(&config(&[origin.addr], ""));
    let mut client = h2_client(proxy.addr).await;
    // No head within 300 ms: a trailers-only DEADLINE_EXCEEDED.
    let (status, head, body, _) = call(
        &mut client,
        grpc_request(proxy.addr, "/slow-head", Some("300m")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(head["content-type"], "application/grpc");
    assert_eq!(head["grpc-status"], "4");
    assert!(body.is_empty());
    // The head and a message in time, the rest not: the stream ends with status 4.
    let (status, head, body, trailers) = call(
        &mut client,
        grpc_request(proxy.addr, "/slow-body", Some("300m")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!head.contains_key("grpc-status"));
    assert_eq!(body, &b"\0\0\0\0\x01A"[..]);
    let trailers = trailers.expect("trailers");
    assert_eq!(trailers["grpc-status"], "4");
    assert_eq!(trailers["grpc-message"], "deadline exceeded at the proxy");
    // A malformed grpc-timeout is ignored: the call completes.
    let (_, _, body, trailers) = call(
        &mut client,
        grpc_request(proxy.addr, "/svc/Method", Some("soon")),
    )
    .await;
    assert_eq!(body, "origin a");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_what_is_left_of_the_deadline() {
    let origin = start_h2_origin("a").await;
    let proxy = start_proxy(&config(&[origin.addr], ""));
    let mut client = h2_client(proxy.addr).await;
    let (_, head, _, _) = call(
        &mut client,
        grpc_request(proxy.addr, "/svc/Method", Some("2S")),
    )
    .await;
    let mut seen = HeaderMap::new();
    seen.insert("grpc-timeout", head["x-seen-timeout"].clone());
    let left = proxy_core::grpc_timeout(&seen).expect("a valid grpc-timeout upstream");
    assert!(
        left < Duration::from_secs(2) && left > Duration::from_secs(1),
        "{left:?}"
    );
    // Without a deadline none is made up.
    let (_, head, _, _) = call(&mut client, grpc_request(proxy.addr, "/svc/Method", None)).await;
    assert_eq!(head["x-seen-timeout"], "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_call_is_resource_exhausted() {
    let origin = start_h2_origin("a").await;
    let mut text = config(&[origin.addr], "");
    text.push_str("rate_limit = { rate = 1, period_ms = 60000, burst = 1, key = \"client\" }\n");
    let proxy = start_proxy(&text);
    let mut client = h2_client(proxy.addr).await;
    let (_, _, body, trailers) =
        call(&mut client, grpc_request(proxy.addr, "/svc/Method", None)).await;
    assert_eq!(body, "origin a");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    let (status, head, body, _) =
        call(&mut client, grpc_request(proxy.addr, "/svc/Method", None)).await;
    assert_eq!(status, 200);
    assert_eq!(head["content-type"], "application/grpc");
    assert_eq!(head["grpc-status"], "8");
    assert_eq!(head["grpc-message"], "rate limited");
    assert!(head.contains_key("retry-after"), "{head:?}");
    assert!(body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_failures_are_grpc_statuses() {
    let proxy = start_proxy(&config(
        &[dead_port()],
        "max_retries = 0\n[[pools]]\nname = \"h1\"\nupstreams = [{ address = \"127.0.0.1:9\" }]\n\
         [[routes]]\nprefix = \"/h1/\"\npool = \"h1\"",
    ));
    let mut client = h2_client(proxy.addr).await;
    for (path, code, message) in [
        ("/svc/Method", "14", "upstream unreachable"),
        (
            "/h1/Method",
            "12",
            "pool \"h1\" speaks HTTP/1.1; gRPC needs protocol = \"h2c\"",
        ),
    ] {
        let (status, head, body, _) = call(&mut client, grpc_request(proxy.addr, path, None)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(head["grpc-status"], code, "{path}");
        assert_eq!(head["grpc-message"], message, "{path}");
        assert!(body.is_empty());
    }
    // Not a gRPC call: the HTTP error as before.
    let request = Request::get(format!("http://{}/svc/Method", proxy.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, head, _, _) = call(&mut client, request).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(!head.contains_key("grpc-status"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_multiplexed_within_the_limits() {
    let origin = start_h2_origin("a").await;
    let proxy = start_proxy(&config(
        &[origin.addr],
        "[pools.http2]\nmax_streams_per_connection = 3\nmax_connections = 2",
    ));
    // 12 requests at once from 12 HTTP/1.1 clients.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let addr = proxy.addr;
        tasks.spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let request = Request::get("/wait")
                .header("host", "proxy")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "origin a");
    }
    let connections = origin.seen.connections.load(Ordering::SeqCst);
    let most = origin.seen.most_streams.load(Ordering::SeqCst);
    assert!((1..=2).contains(&connections), "{connections} connections");
    assert!((1..=3).contains(&most), "{most} streams on one connection");
    // 12 requests on at most 2 connections: some shared one.
    assert!(most >= 2, "no connection carried two streams at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_run_over_http2() {
    let well = start_h2_origin("well").await;
    let sick = start_h2_origin("sick").await;
    let proxy = start_proxy(&config(
        &[well.addr, sick.addr],
        "[pools.health]\ninterval_ms = 100\ntimeout_ms = 1000\n\
         healthy_threshold = 1\nunhealthy_threshold = 1",
    ));
    let mut client = h2_client(proxy.addr).await;
    // Until the first round of checks, either member may answer.
    let mut only_well = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let request = Request::get(format!("http://{}/", proxy.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (_, _, body, _) = call(&mut client, request).await;
        if body == "origin well" {
            only_well += 1;
            if only_well == 10 {
                break;
            }
        } else {
            only_well = 0;
        }
    }
    assert_eq!(only_well, 10, "the sick member was never taken out");
    assert!(sick.seen.connections.load(Ordering::SeqCst) >= 1);
}

#[test]
fn http2_pool_settings_are_checked() {
    let base = |extra: &str| config(&[dead_port()], extra);
    for (extra, expected) in [
        (
            "[pools.http2]\nmax_streams_per_connection = 0",
            "max_streams_per_connection",
        ),
        ("[pools.http2]\nmax_connections = 0", "max_connections"),
        ("[pools.http2]\nmax_frame_size = 1000", "max_frame_size"),
        (
            "[pools.http2]\nkeepalive_timeout_ms = 0",
            "keepalive_timeout_ms",
        ),
    ] {
        let error = reverse_proxy::ServerConfig::parse(&base(extra)).unwrap_err();
        assert!(error.contains(expected), "{extra}: {error}");
    }
    let h2 = base("").replace("protocol = \"h2c\"", "protocol = \"h2\"");
    let error = reverse_proxy::ServerConfig::parse(&h2).unwrap_err();
    assert!(error.contains("needs [pools.tls]"), "{error}");
    let bad = base("").replace("protocol = \"h2c\"", "protocol = \"h3\"");
    assert!(reverse_proxy::ServerConfig::parse(&bad).is_err());
    assert!(reverse_proxy::ServerConfig::parse(&base("")).is_ok());
}
