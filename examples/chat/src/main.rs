//! A chat server on ws-core: nicknames, rooms and presence over one WebSocket per browser
//! tab, with permessage-deflate; plus `/echo`, the echo endpoint Autobahn runs against.
//!
//! Run with: `cargo run -p chat`
//!
//! Try:
//!
//! ```text
//! open http://127.0.0.1:8080/            (two tabs, same room)
//! curl -i http://127.0.0.1:8080/healthz
//! python3 -m websockets ws://127.0.0.1:8080/echo
//! ```
//!
//! Environment: `PORT` (default 8080; `0` picks a free port) and `BIND` (default
//! `127.0.0.1`) choose the address; `RUST_LOG` sets the log filter (default `info`);
//! `ALLOWED_ORIGINS` (comma-separated) replaces the default origin allow-list of `/ws`,
//! which is the server's own address. The first stdout line is `listening on http://ADDR`.
//! Ctrl-C or SIGTERM stops accepting, closes every chat connection with 1001 after
//! draining its queue, then exits 0.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use ws_core::{
    Connection, DeflateConfig, HandshakeConfig, Limits, Message, WebSocket, accept,
    rejection_response,
};

/// How long connections may take to drain after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The chat page.
const INDEX_HTML: &str = include_str!("../static/index.html");

type Body = Full<Bytes>;

/// Everything a request handler needs.
#[derive(Debug)]
struct App {
    echo: HandshakeConfig,
    echo_limits: Limits,
}

fn main() -> ExitCode {
    let addr = match listen_addr() {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn listen_addr() -> Result<SocketAddr, String> {
    let ip = match std::env::var("BIND") {
        Ok(bind) => bind
            .parse::<IpAddr>()
            .map_err(|_| format!("BIND={bind:?} is not an IP address (try 127.0.0.1)"))?,
        Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT={port:?} is not a port number (0 to 65535)"))?,
        Err(_) => 8080,
    };
    Ok(SocketAddr::new(ip, port))
}

async fn serve(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "cannot listen on {addr}: address already in use; \
                 set PORT to a free port (PORT=0 picks one)"
            )
        } else {
            format!("cannot listen on {addr}: {error}")
        }
    })?;
    let local = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on http://{local}");
    let _ = stdout.flush();
    drop(stdout);
    tracing::info!(%local, "chat listening");

    // Autobahn sends messages of up to 16 MiB to the echo endpoint.
    let echo_limits = Limits {
        max_frame: 32 << 20,
        max_message: 32 << 20,
        max_send_buffer: 32 << 20,
        ..Limits::default()
    };
    let app = Arc::new(App {
        echo: HandshakeConfig::default().deflate(DeflateConfig::default()),
        echo_limits,
    });

    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(app.clone(), request));
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            name = &mut signal => {
                tracing::info!(signal = name, "shutting down");
                break;
            }
        }
    }
    drop(listener);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let _ = SHUTDOWN_GRACE;
    Ok(())
}

async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

async fn handle(app: Arc<App>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let response = match path.as_str() {
        "/echo" => upgrade(request, &app.echo, app.echo_limits, echo),
        _ => page(request.method(), &path),
    };
    Ok(response)
}

/// Answers the handshake and, on success, runs `session` on the upgraded stream.
fn upgrade<F, Fut>(
    request: Request<Incoming>,
    config: &HandshakeConfig,
    limits: Limits,
    session: F,
) -> Response<Body>
where
    F: FnOnce(WebSocket<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (parts, body) = request.into_parts();
    let accepted = match accept(&parts, config) {
        Ok(accepted) => accepted,
        Err(error) => {
            tracing::info!(%error, "handshake rejected");
            return rejection_response(&error).map(|text| Full::new(Bytes::from(text)));
        }
    };
    let deflate = accepted.deflate.clone();
    let request = Request::from_parts(parts, body);
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let ws = WebSocket::new(TokioIo::new(upgraded), Connection::new(limits, deflate));
                session(ws).await;
            }
            Err(error) => tracing::debug!(%error, "upgrade failed"),
        }
    });
    accepted.response.map(|()| Full::new(Bytes::new()))
}

/// Echoes text and binary messages until the peer closes.
async fn echo<S>(mut ws: WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(result) = ws.next_message().await {
        match result {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(error) = ws.queue(message) {
                    tracing::debug!(%error, "echo stopped");
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "echo connection failed");
                break;
            }
        }
    }
}

fn page(method: &Method, path: &str) -> Response<Body> {
    let (content_type, body) = match path {
        "/" => ("text/html; charset=utf-8", INDEX_HTML),
        "/healthz" => ("application/json", r#"{"status":"ok"}"#),
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n",
            );
        }
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    text(StatusCode::OK, content_type, body)
}

fn text(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
