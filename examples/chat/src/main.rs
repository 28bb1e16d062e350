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
//!
//! The chat itself (hub, pages, sessions) is `src/lib.rs`; this file is the server around
//! it: address, origins, accept loop, shutdown.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat::{App, Settings};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// How long connections may take to drain after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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

    let origins: Vec<String> = match std::env::var("ALLOWED_ORIGINS") {
        Ok(list) => list.split(',').map(|o| o.trim().to_owned()).collect(),
        Err(_) => vec![
            format!("http://{local}"),
            format!("http://localhost:{}", local.port()),
        ],
    };
    let app = Arc::new(App::new(Settings {
        base_path: String::new(),
        allowed_origins: origins,
    }));
    tokio::spawn(app.clone().run_timers());

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
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(request).await) }
                    });
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
    app.shutdown();
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !app.is_drained() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!("chat connections drained");
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
