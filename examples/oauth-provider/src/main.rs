//! oauth-provider: an OAuth 2.0 authorization server with login and consent pages, built on
//! auth-core (`oauth` feature, sessions, passwords, CSRF, login throttling).
//!
//! Run with: `cargo run -p oauth-provider`
//!
//! Try:
//!
//! ```text
//! curl -s http://127.0.0.1:8090/.well-known/oauth-authorization-server
//! cargo run -p oauth-login          # then open http://127.0.0.1:8091/ and "Log in with ..."
//! curl -s -u demo-web:demo-web-secret-change-me -d grant_type=client_credentials -d scope=api \
//!      http://127.0.0.1:8090/token
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8090/api/me
//! ```
//!
//! Registered clients: `demo-app` (public, PKCE) and `demo-web` (confidential,
//! `client_secret_basic`, secret `DEMO_CLIENT_SECRET`, default `demo-web-secret-change-me`),
//! both with the redirect URI `http://127.0.0.1/callback` (any port: RFC 8252 loopback rule)
//! unless `DEMO_REDIRECT_URIS` (comma-separated) says otherwise. One user: `alice`, password
//! `DEMO_PASSWORD` (default `wonderland-rabbit`).
//!
//! `PORT` (default 8090) and `BIND` (default 127.0.0.1) choose the address; the first line on
//! stdout is `listening on http://ADDR`, and that URL is the issuer. Access tokens are
//! RFC 9068 JWTs signed with a key made at start.
//!
//! The provider itself (clients, pages, endpoints) is `src/lib.rs`; this file is the server
//! around it: address, environment, accept loop, shutdown.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oauth_provider::{App, Settings};
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
        Err(_) => 8090,
    };
    Ok(SocketAddr::new(ip, port))
}

async fn run() -> Result<(), String> {
    let listener = bind(address()?).await?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;
    let mut settings = Settings::new(format!("http://{local}"));
    if let Ok(uris) = std::env::var("DEMO_REDIRECT_URIS") {
        settings.redirect_uris = uris
            .split(',')
            .map(|uri| uri.trim().to_owned())
            .filter(|uri| !uri.is_empty())
            .collect();
    }
    if let Ok(secret) = std::env::var("DEMO_CLIENT_SECRET") {
        settings.client_secret = secret;
    }
    if let Ok(password) = std::env::var("DEMO_PASSWORD") {
        settings.demo_password = password;
    }
    let app = Arc::new(App::new(settings)?);
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

async fn serve(listener: TcpListener, app: Arc<App>) -> Result<(), String> {
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
