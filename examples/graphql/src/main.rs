//! graphql: a small library served with graphql-core on hyper. The application (schema,
//! resolvers, routes, the page) is `src/lib.rs`; this file is the server around it. `/graphql`
//! speaks GraphQL over HTTP (GET and POST, `application/graphql-response+json` or
//! `application/json`, mutations refused over GET). `/` is a page to send queries from a
//! browser; `/healthz` answers `ok`. `Book.author` is loaded through a per-request
//! DataLoader: a list of books costs one author lookup (`{ authorBatches }` counts them).
//!
//! Run with: `cargo run -p graphql`, then open <http://127.0.0.1:8080/>.
//!
//! Try:
//!
//! ```text
//! curl -s 'http://127.0.0.1:8080/graphql?query=%7Bbooks%7Btitle%20author%7Bname%7D%7D%7D'
//! curl -s http://127.0.0.1:8080/graphql -H 'content-type: application/json' \
//!      -H 'accept: application/graphql-response+json' \
//!      -d '{"query":"mutation($t: String!) { addBook(title: $t, authorId: \"1\") { id title } }","variables":{"t":"Dune"}}'
//! curl -si 'http://127.0.0.1:8080/graphql?query=mutation%7BaddBook(title:%22x%22,authorId:%221%22)%7Bid%7D%7D'  # 405
//! ```
//!
//! Environment: `PORT` (default 8080; `0` picks a free port), `BIND` (default `127.0.0.1`).
//! The first line on stdout is always `listening on http://ADDR`. Ctrl-C stops the server.
//!
//! Subscriptions: a WebSocket on `/graphql` with the `graphql-transport-ws` subprotocol
//! (the npm `graphql-ws` client's protocol), e.g. `subscription { bookAdded { title } }`,
//! then add a book with the mutation above.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use graphql::{App, Settings};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let addr = match addr_from_env() {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let app = match App::new(Settings::default()) {
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
    match runtime.block_on(serve(addr, app)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn addr_from_env() -> Result<SocketAddr, String> {
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

async fn serve(addr: SocketAddr, app: Arc<App>) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error} (PORT=0 picks a free port)"))?;
    let local = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on http://{local}");
        let _ = stdout.flush();
    }
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let app = Arc::clone(&app);
                let service = service_fn(move |request| {
                    let app = Arc::clone(&app);
                    async move { Ok::<_, Infallible>(app.handle_streaming(request).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}
