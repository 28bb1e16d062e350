//! rest-api: users and posts over SQLite, served with rest-core primitives on hyper: full
//! CRUD, cursor and page paging with `Link` headers, ETags on reads, `If-Match` on writes
//! (428 without it), CORS, idempotent POSTs (`Idempotency-Key`) and an OpenAPI 3.1 document.
//! Every error is an RFC 9457 `application/problem+json` body.
//!
//! Run with: `cargo run -p rest-api` (in memory) or
//! `cargo run -p rest-api -- --db rest-api.sqlite` (a file that survives restarts).
//!
//! Try:
//!
//! ```text
//! curl -s http://127.0.0.1:8080/openapi.json | head -c 300
//! curl -i -X POST http://127.0.0.1:8080/users -H 'content-type: application/json' \
//!      -H 'idempotency-key: signup-ada-1' -d '{"name":"Ada","email":"ada@example.com"}'
//! curl -i http://127.0.0.1:8080/users/1                          # ETag: "v1"
//! curl -i http://127.0.0.1:8080/users/1 -H 'if-none-match: "v1"'  # 304
//! curl -i -X PUT http://127.0.0.1:8080/users/1 -H 'content-type: application/json' \
//!      -H 'if-match: "v1"' -d '{"name":"Ada L.","email":"ada@example.com"}'
//! curl -i -X PUT http://127.0.0.1:8080/users/1 -H 'content-type: application/json' \
//!      -d '{"name":"x","email":"x@y"}'                            # 428
//! curl -i -X POST http://127.0.0.1:8080/users/1/posts -H 'content-type: application/json' \
//!      -d '{"title":"Hello","body":"First post"}'
//! curl -i 'http://127.0.0.1:8080/users?limit=1'                   # Link: <...>; rel="next"
//! curl -i 'http://127.0.0.1:8080/users/1/posts?page=1&per_page=10'
//! curl -i -X DELETE http://127.0.0.1:8080/users/1 -H 'if-match: "v2"'
//! ```
//!
//! Environment: `PORT` (default 8080; `0` picks a free port), `BIND` (default `127.0.0.1`),
//! `CORS_ORIGIN` (default `http://localhost:3000`), `RUST_LOG`, `LOG_FORMAT=json`. The first
//! line on stdout is always `listening on http://ADDR`. Ctrl-C or SIGTERM stops accepting and
//! lets requests in flight finish (up to [`SHUTDOWN_GRACE`]).
//!
//! The API itself (resources, routes, OpenAPI) is `src/lib.rs`; this file is the server
//! around it: configuration, logging, accept loop, graceful shutdown.
//!
//! SQLite calls are short and run on the request's task behind one mutex: fine for an
//! example; a busy service would use a connection pool and `spawn_blocking`.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rest_api::{App, Settings};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let config = match Config::from_env_and_args() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.json_logs);
    let app = match App::new(&config.app) {
        Ok(app) => Arc::new(app),
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
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
    match runtime.block_on(serve(config.addr, app)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What the environment and the command line ask of the server.
#[derive(Debug)]
struct Config {
    addr: SocketAddr,
    json_logs: bool,
    app: Settings,
}

impl Config {
    fn from_env_and_args() -> Result<Self, String> {
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
        let mut db = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--db" => {
                    db = Some(args.next().ok_or("--db needs a file path")?);
                }
                "--memory" => db = None,
                "--help" | "-h" => {
                    return Err(
                        "usage: rest-api [--db FILE | --memory] (default: in memory)".to_owned(),
                    );
                }
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            json_logs: std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json"),
            app: Settings {
                db,
                cors_origin: std::env::var("CORS_ORIGIN")
                    .unwrap_or_else(|_| "http://localhost:3000".to_owned()),
                // Set the same CURSOR_KEY (32+ bytes) on every instance behind one load
                // balancer; unset, each process draws its own at random.
                cursor_key: std::env::var("CURSOR_KEY").ok().map(String::into_bytes),
                ..Settings::default()
            },
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

// ---------------------------------------------------------------------------------------
// Serving

async fn serve(addr: SocketAddr, app: Arc<App>) -> Result<(), String> {
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
    tracing::info!(%local, "rest-api listening");

    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
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
                let app = Arc::clone(&app);
                let service = service_fn(move |request| {
                    let app = Arc::clone(&app);
                    async move { Ok::<_, Infallible>(app.handle(request).await) }
                });
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
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
