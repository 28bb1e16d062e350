//! oauth-login: an application with "Log in with backend-kit provider", using auth-core's
//! OAuth client (authorization code + PKCE S256, `state` and `iss` checks, refresh and
//! revocation) against an OAuth 2.0 provider.
//!
//! Run with (two terminals):
//!
//! ```text
//! cargo run -p oauth-provider                                     # on 127.0.0.1:8090
//! cargo run -p oauth-login -- --provider http://127.0.0.1:8090    # on 127.0.0.1:8091
//! ```
//!
//! Try: open http://127.0.0.1:8091/, press "Log in with backend-kit provider", log in as
//! `alice` / `wonderland-rabbit`, allow, and come back logged in; then "Refresh the token"
//! and "Log out" (which revokes the grant at the provider).
//!
//! The provider is `--provider URL` or `PROVIDER_URL` (default `http://127.0.0.1:8090`); it
//! must serve RFC 8414 metadata. `CLIENT_ID` (default `demo-app`, a public client) and
//! `CLIENT_SECRET` (makes it a confidential `client_secret_basic` client) identify this app;
//! `USERINFO_URL` (default `<provider>/api/me`) answers who logged in (`sub`). The redirect
//! URI is `http://127.0.0.1:<port>/callback`. `PORT` (default 8091) and `BIND` (default
//! 127.0.0.1) choose the address; the first line on stdout is `listening on http://ADDR`.
//!
//! The application itself (pages, OAuth client, provider calls) is `src/lib.rs`; this file
//! is the server around it: address, provider choice, accept loop, shutdown.
//!
//! This example's HTTP client speaks plain `http` only, which is enough for providers on
//! loopback; against a real provider send the same `http::Request` values with an HTTPS
//! client (reqwest, hyper-rustls).

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oauth_login::{App, Settings};
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
        Err(_) => 8091,
    };
    Ok(SocketAddr::new(ip, port))
}

fn provider_url() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut provider = std::env::var("PROVIDER_URL").ok();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--provider" => provider = Some(args.next().ok_or("--provider needs a URL")?),
            other => return Err(format!("unknown argument {other:?} (try --provider URL)")),
        }
    }
    let provider = provider.unwrap_or_else(|| "http://127.0.0.1:8090".to_owned());
    Ok(provider.trim_end_matches('/').to_owned())
}

async fn run() -> Result<(), String> {
    let provider = provider_url()?;
    let listener = bind(address()?).await?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;
    let mut settings = Settings::new(&provider, &format!("http://127.0.0.1:{}", local.port()));
    if let Ok(userinfo) = std::env::var("USERINFO_URL") {
        settings.userinfo = userinfo;
    }
    if let Ok(client_id) = std::env::var("CLIENT_ID") {
        settings.client_id = client_id;
    }
    settings.client_secret = std::env::var("CLIENT_SECRET").ok();
    let app = Arc::new(App::new(settings));
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
                let Ok((stream, _peer)) = accepted else { continue };
                let app = app.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(request).await) }
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
