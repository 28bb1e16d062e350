//! reverse-proxy: a load-balancing reverse proxy built on proxy-core, as a library. It opens
//! no listening socket and picks no runtime: its host does.
//!
//! The binary (`src/main.rs`, run with
//! `cargo run -p reverse-proxy -- --config examples/reverse-proxy/proxy.toml`) parses a
//! [`ServerConfig`], builds a [`Proxy`] from it, binds one `SO_REUSEPORT` listener per worker
//! thread and spawns [`Proxy::serve`] for each accepted connection: TLS if configured, and
//! every request head checked on the raw bytes, requests without a body answered on a lean
//! path (`h1_server`) and the rest by hyper reading through the same checks (`checked_io`); or
//! HTTP/2 (ALPN `h2`, or h2c with prior knowledge when `server.http2.h2c` is set) served by
//! `h2_server` on the `h2` crate, its frames counted and timed by `h2_guard`, its requests
//! rewritten as HTTP/1.1's.
//!
//! The showcase mounts the same proxy under a path prefix with [`App`]: [`App::new`] builds
//! the pools, routes, cache, compression, rate limits and metrics from the same TOML (the
//! `[server] listen`, `tls` and `workers` fields are then unused, since the host server owns
//! the socket), [`Settings::base_path`] is stripped from the path before routing, so a
//! route `prefix = "/api/"` mounted at `/proxy` answers `/proxy/api/...` and forwards
//! `/api/...` upstream, and [`App::respond`] answers one request (`App` implements
//! `serve::App`, so a host mounts it like any example). A mounted proxy sees
//! requests the host server already parsed, so the raw-byte smuggling checks do not apply
//! there; the checks on the parsed head ([`proxy_core::check_parsed_request`]) still do.
//!
//! ```text
//! curl -si http://127.0.0.1:8080/                  # proxied to a pool member
//! curl -s http://127.0.0.1:8080/__proxy/metrics    # Prometheus metrics
//! printf 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n' \
//!   | nc 127.0.0.1 8080                             # 400: CL and TE together
//! ```
//!
//! Upstreams are picked by the pool's algorithm, health-checked actively and passively, and
//! retried only when safe. A bad config file is refused with a message naming the field.
//!
//! Modules, in the order a request meets them: `server` (a standalone connection, with
//! `h1_server` and `checked_io` for HTTP/1, `h2_server` and `h2_guard` for HTTP/2) or `mount`
//! (a mounted app), `routing` (route, rate limit, cache or forward, compression), `admin`
//! (metrics and the admin API), `rate_limit`, `cache`, `forward` (one request upstream, with
//! retries; `grpc` for gRPC calls, `tunnel` for upgraded connections), `upstream` (HTTP/1.1 or HTTP/2 connections to upstreams); `config` and `state` build what they
//! share, `background` keeps it up to date (health checks, reaping, sweeps).

mod admin;
mod background;
mod cache;
mod checked_io;
mod compress;
mod config;
mod first;
mod forward;
mod grpc;
mod h1_client;
mod h1_server;
mod h2_guard;
mod h2_server;
mod head_wait;
mod metrics;
mod mount;
mod rate_limit;
mod request_timer;
mod routing;
mod server;
mod state;
#[cfg(test)]
mod test_support;
mod tls;
mod tunnel;
mod upstream;

/// Entry points for the fuzz targets of the repository's `fuzz/` workspace; not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Whether `bytes`, as an upstream's response head to a `GET`, gets the same answer from
    /// the lean client with its fields in a `HeaderMap` and as raw lines (`Ok(true)` when
    /// they went as lines); `Err` says how the two differ.
    ///
    /// # Errors
    /// When the two answers differ.
    pub fn response_head_lines_agree(bytes: &[u8]) -> Result<bool, String> {
        crate::h1_client::lines_agree_with_map(bytes)
    }

    /// Whether the lean HTTP/1.1 server, sent `bytes` (after a first byte that picks the
    /// size of the client's reads and the head limits), answers each request it takes with
    /// the method, target and fields that were sent, hands hyper exactly the bytes it did not
    /// answer, closes only where it should, and writes one well-framed response per request
    /// (`Ok` holds how many it answered); `Err` says what went wrong.
    ///
    /// # Errors
    /// When any of that does not hold.
    pub fn request_bytes_agree(bytes: &[u8]) -> Result<usize, String> {
        crate::h1_server::requests_agree(bytes)
    }
}

pub use config::ServerConfig;
pub use mount::{App, Settings};
pub use server::Proxy;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};

/// The error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every request the proxy forwards and every response it sends.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A whole body.
fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A short plain-text answer the proxy writes itself; `close` ends the connection after it.
fn plain(status: StatusCode, message: &str, close: bool) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// An empty body. Unlike `full(Bytes::new())` it allocates nothing: its box holds a
/// zero-sized value (most proxied requests have no body).
fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A request body of any kind as a [`ProxyBody`]: hyper's `Incoming` in the standalone
/// server, a host's [`serve::Body`] when mounted (which is not `Sync`; [`SyncBody`] makes
/// it so, since a body is only ever polled through `&mut`).
fn request_body<B>(body: B) -> ProxyBody
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    // A request without a body (most are) needs no wrapper: nothing will poll it.
    if body.is_end_stream() {
        return empty();
    }
    SyncBody {
        hint: Some(body.size_hint()),
        ended: body.is_end_stream(),
        inner: sync_wrapper::SyncWrapper::new(body),
    }
    .map_err(Into::into)
    .boxed()
}

/// A body that is `Sync` because its inner body is reachable only through `&mut`
/// ([`sync_wrapper::SyncWrapper`]). Its size hint and end are those read when it was
/// wrapped, which is when the proxy decides whether to buffer it; once polled, the hint is
/// unknown.
struct SyncBody<B> {
    inner: sync_wrapper::SyncWrapper<B>,
    hint: Option<hyper::body::SizeHint>,
    ended: bool,
}

impl<B> hyper::body::Body for SyncBody<B>
where
    B: hyper::body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        self.hint = None;
        let polled = std::pin::Pin::new(self.inner.get_mut()).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.hint.unwrap_or_default()
    }
}
