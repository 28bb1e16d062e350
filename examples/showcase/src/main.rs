//! The backend-kit showcase: one server that shows every crate's capability on embedded
//! defaults, with a landing page that links to each of them.
//!
//! Run with: `cargo run -p showcase`
//!
//! Try:
//!
//! ```text
//! open http://127.0.0.1:8080/
//! curl -i http://127.0.0.1:8080/healthz
//! ```
//!
//! Environment: `PORT` (default 8080; `0` picks a free port) and `BIND` (default `127.0.0.1`)
//! choose the address; `RUST_LOG` sets the log filter (default `info`); `LOG_FORMAT=json`
//! writes one JSON object per log line. The first line on stdout is always
//! `listening on http://ADDR`, so scripts and tests can find an ephemeral port.
//! Ctrl-C or SIGTERM stops accepting, lets requests in flight finish (up to
//! [`SHUTDOWN_GRACE`]), then exits 0.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The landing page: every capability the showcase serves, with a link to try it.
const INDEX_HTML: &str = include_str!("../static/index.html");

type Body = Full<Bytes>;

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.json_logs);

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
    match runtime.block_on(serve(config.addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What the environment asks of the server.
#[derive(Debug)]
struct Config {
    addr: SocketAddr,
    json_logs: bool,
}

impl Config {
    fn from_env() -> Result<Self, String> {
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
        let json_logs = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json");
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            json_logs,
        })
    }
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
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
    announce(local);
    tracing::info!(%local, "showcase listening");

    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service_fn(handle))
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            name = &mut signal => {
                tracing::info!(signal = name, "shutting down: no new connections");
                break;
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period");
        }
    }
    Ok(())
}

/// Writes the bound address as the first stdout line (the contract scripts rely on).
fn announce(local: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the server: the address is in the logs too.
    let _ = writeln!(stdout, "listening on http://{local}");
    let _ = stdout.flush();
}

/// Resolves with the signal's name on Ctrl-C or, on Unix, SIGTERM.
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

async fn handle(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = route(&method, &path);
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(response)
}

fn route(method: &Method, path: &str) -> Response<Body> {
    let Some((content_type, body)) = page(path) else {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        );
    };
    if method == Method::HEAD {
        // HEAD announces the length GET would send (RFC 9110 section 9.3.2).
        let mut response = text(StatusCode::OK, content_type, "");
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        return response;
    }
    if method != Method::GET {
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

/// The static pages: content type and body by path.
fn page(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "/healthz" => Some(("application/json", r#"{"status":"ok"}"#)),
        _ => None,
    }
}

fn text(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
