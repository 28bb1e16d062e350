//! soap-service: an orders and inventory SOAP service (see `src/lib.rs`), served with hyper.
//! SOAP 1.1 and 1.2 on `/soap`, the WSDL at `/soap?wsdl`, `/healthz` answers `ok`.
//!
//! Run with: `cargo run -p soap-service`, then open <http://127.0.0.1:8080/soap?wsdl>.
//!
//! Try:
//!
//! ```text
//! curl -s http://127.0.0.1:8080/soap -H 'content-type: text/xml; charset=utf-8' \
//!      -H 'SOAPAction: "urn:backend-kit:orders/getStock"' \
//!      -d '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><getStock xmlns="urn:backend-kit:orders"><sku>A-1</sku></getStock></s:Body></s:Envelope>'
//! curl -s http://127.0.0.1:8080/soap -H 'content-type: application/soap+xml; charset=utf-8' \
//!      -d '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><placeOrder xmlns="urn:backend-kit:orders"><customer>c-1</customer><line><sku>B-2</sku><quantity>9</quantity></line></placeOrder></e:Body></e:Envelope>'
//! ```
//!
//! Environment: `PORT` (default 8080; `0` picks a free port), `BIND` (default `127.0.0.1`),
//! `DEMO_PASSWORD` (the WS-Security password of user `demo`; default `demo-password`).
//! The first line on stdout is always `listening on http://ADDR`. Ctrl-C stops the server.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use soap_service::{App, Settings};
use tokio::net::TcpListener;

/// Bodies are collected up to this size; soap-core's own limit is the same.
const MAX_BODY: usize = 4 * 1024 * 1024;

fn main() -> ExitCode {
    let addr = match addr_from_env() {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let app = Arc::new(App::new(Settings::default()));
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

async fn handle(
    app: Arc<App>,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let response = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => app.handle(http::Request::from_parts(parts, collected.to_bytes())),
        Err(_) => {
            let mut r = http::Response::new(Bytes::from_static(b"body too large or broken"));
            *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
            r
        }
    };
    response.map(Full::new)
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
                    async move { Ok::<_, Infallible>(handle(app, request).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}
