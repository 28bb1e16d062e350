//! auth-login: sign-up, login and logout with server-side sessions, a CSRF-protected form,
//! and a JSON API protected by JWTs, all from auth-core.
//!
//! Run with: `cargo run -p auth-login`
//! (sessions live in memory; set `REDIS_URL=redis://127.0.0.1:6379` to keep them in Redis)
//!
//! Try:
//!
//! ```text
//! open http://127.0.0.1:8080/        sign up, log in, press "Get an API token"
//! curl -s http://127.0.0.1:8080/.well-known/jwks.json
//! curl -si http://127.0.0.1:8080/api/me                        # 401 with a Bearer challenge
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/me
//! ```
//!
//! `PORT` (default 8080) and `BIND` (default 127.0.0.1) choose the address; the first line on
//! stdout is `listening on http://ADDR`. The signing key is made at start, so API tokens end
//! with the process.
//!
//! The application itself (state, routes, pages) is `src/lib.rs`; this file is the server
//! around it: address, session store choice, accept loop, shutdown.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{MemoryStore, RedisStore, SessionStore};
use auth_login::{App, Settings};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn address() -> Result<SocketAddr, String> {
    let ip = match std::env::var("BIND") {
        Ok(bind) => bind
            .parse::<IpAddr>()
            .map_err(|_| format!("BIND={bind:?} is not an IP address"))?,
        Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 8080,
    };
    Ok(SocketAddr::new(ip, port))
}

async fn run() -> Result<(), String> {
    let addr = address()?;
    let settings = Settings::new(format!("http://{addr}"));
    let listener = bind(addr).await?;

    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let store = RedisStore::connect(&url, "auth-login:")
                .await
                .map_err(|error| format!("REDIS_URL: {error}"))?;
            tracing::info!("sessions in Redis");
            serve(listener, Arc::new(App::new(store, settings)?)).await
        }
        Err(_) => {
            tracing::info!("sessions in memory");
            let app = Arc::new(App::new(MemoryStore::new(), settings)?);
            let sweeper = app.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    sweeper.sweep(SystemTime::now());
                }
            });
            serve(listener, app).await
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::AddrInUse {
            format!("cannot listen on {addr}: address already in use; set PORT to a free port")
        } else {
            format!("cannot listen on {addr}: {error}")
        }
    })?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on http://{local}");
    let _ = stdout.flush();
    Ok(listener)
}

async fn serve<S: SessionStore + 'static>(
    listener: TcpListener,
    app: Arc<App<S>>,
) -> Result<(), String> {
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let app = app.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(peer.ip(), request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

/// Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
