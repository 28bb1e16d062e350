//! The standalone server's connections: [`Proxy`] serves a TCP stream its host accepted
//! (TLS handshake if configured, then HTTP/1 with every request head checked on the raw
//! bytes: requests without a body answered by [`h1_server`], and from the first request
//! that needs more on, hyper reading through [`CheckedIo`]; or HTTP/2 when ALPN chose `h2`
//! or, with `server.http2.h2c`, the connection starts with the HTTP/2 preface: its frames
//! pass through [`H2Guard`] to [`h2_server`], and its requests reach the same routing as
//! HTTP/1's). It binds no socket: `main.rs` owns the listeners, one `SO_REUSEPORT` socket
//! per worker thread.
//!
//! Graceful drain: [`Proxy::shutdown`] tells every connection to finish the request in
//! flight and close (HTTP/1 keep-alive ends), [`Proxy::stopped`] ends the host's accept
//! loops, and [`Proxy::drained`] waits, up to a deadline, for the connections to close.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::header::UPGRADE;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::checked_io::{CheckedIo, Rejection};
use crate::config::Http2Config;
use crate::first::{First, first};
use crate::h2_guard::{GuardLimits, H2Guard, PREFACE, Watch};
use crate::head_wait::{Activity, InProgress, TrackedBody};
use crate::request_timer::RequestTimer;
use crate::routing::{Caller, route_request};
use crate::state::{self, State};
use crate::tunnel::ClientUpgrade;
use crate::{ProxyBody, ServerConfig, background, h1_server, h2_server, plain, tls};

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The standalone proxy: the pools, routes, cache, compression, rate limits and metrics of a
/// [`ServerConfig`], and its TLS acceptor. Cheap to clone (the state is shared).
///
/// Its host binds the listeners (`server.listen`, one per worker thread), runs one
/// current-thread runtime per worker, calls [`Proxy::enter_worker`] on each worker thread,
/// [`Proxy::spawn_background`] once, and spawns [`Proxy::serve`] for every accepted stream.
#[derive(Clone)]
pub struct Proxy {
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http2: Arc<Http2Config>,
    drain: Arc<Drain>,
}

/// What a shutdown needs across worker threads: whether it began, and how many
/// connections are still open.
#[derive(Debug)]
struct Drain {
    stopping: tokio::sync::watch::Sender<bool>,
    open: AtomicUsize,
}

/// Counts one open connection for as long as it lives.
struct Open(Arc<Drain>);

impl Open {
    fn new(drain: &Arc<Drain>) -> Self {
        drain.open.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(drain))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("routes", &self.state.routes.len())
            .field("pools", &self.state.pools.len())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Builds the proxy for [`ServerConfig::workers`] worker threads, with TLS if
    /// `[server.tls]` is set.
    ///
    /// # Errors
    ///
    /// A message when TLS or Redis (for a `store = "redis"` rate limit) cannot be set up.
    pub async fn new(config: &ServerConfig) -> Result<Self, String> {
        let state = Arc::new(State::build(&config.0, config.workers()).await?);
        let tls = config
            .0
            .server
            .tls
            .as_ref()
            .map(|t| tls::acceptor(t, config.0.server.http2.alpn))
            .transpose()?;
        let http2 = Arc::new(config.0.server.http2.clone());
        let drain = Arc::new(Drain {
            stopping: tokio::sync::watch::Sender::new(false),
            open: AtomicUsize::new(0),
        });
        Ok(Self {
            state,
            tls,
            http2,
            drain,
        })
    }

    /// Begins the graceful drain: every connection finishes its request in flight and
    /// closes, and [`Proxy::stopped`] resolves for every accept loop.
    pub fn shutdown(&self) {
        self.drain.stopping.send_replace(true);
    }

    /// Resolves once [`Proxy::shutdown`] was called: an accept loop selects on it and stops
    /// accepting.
    pub async fn stopped(&self) {
        let mut stopping = self.drain.stopping.subscribe();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// Waits until no connection is open, or until `grace` has passed; whether all closed.
    /// Upgraded connections (WebSocket tunnels) are no longer counted: they end with the
    /// process.
    pub async fn drained(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        while self.drain.open.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// `https` with TLS, else `http`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Starts the active health checks, the reaping of idle upstream connections and the
    /// rate limiters' sweeper on the current Tokio runtime; call it once.
    pub fn spawn_background(&self) {
        background::spawn(&self.state);
    }

    /// Marks the current thread as worker `index` (`0..workers`): requests served on it use
    /// that worker's idle upstream connections, so a connection, its requests and their
    /// upstream connections stay on one thread. A thread that never calls it is worker 0.
    pub fn enter_worker(&self, index: usize) {
        state::set_worker(index);
    }

    /// Serves one accepted connection from `peer` until it ends: the TLS handshake (within
    /// 10 s) if configured, then HTTP/1 requests, upgrades included. Spawn it per connection
    /// on the worker's runtime.
    pub fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send + 'static + use<> {
        let _ = stream.set_nodelay(true);
        let (state, tls) = (self.state.clone(), self.tls.clone());
        let http2 = self.http2.clone();
        let open = Open::new(&self.drain);
        let stopping = self.drain.stopping.subscribe();
        async move {
            let _open = open;
            let h2c = tls.is_none()
                && http2.h2c
                && starts_with_preface(&stream, ms(http2.header_read_timeout_ms)).await;
            match tls {
                None if h2c => {
                    serve_h2(state, &http2, stream, peer, "http", stopping).await;
                }
                None => serve_connection(state, stream, peer, "http", stopping).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                            serve_h2(state, &http2, tls, peer, "https", stopping).await;
                        }
                        Ok(Ok(tls)) => {
                            serve_connection(state, tls, peer, "https", stopping).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        }
    }
}

/// HTTP/1 on `stream` until it closes: requests without a body on the lean path
/// ([`h1_server`]), and from the first request that needs hyper on, hyper, reading through
/// the raw-byte checks ([`CheckedIo`]). Once `stopping` turns true, the request in flight
/// finishes and the connection closes.
async fn serve_connection<S>(
    state: Arc<State>,
    mut stream: S,
    peer: SocketAddr,
    scheme: &'static str,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let head_timeout = state.head_timeout;
    let limits = state.limits;
    let connection = Arc::new(Connection {
        state,
        peer,
        scheme,
        rejection: Arc::new(Rejection::default()),
        // The head timeout (see `head_wait`), in place of hyper's per-request timer.
        activity: Arc::new(Activity::default()),
        // The pool's request timeout on one timer for the connection's requests (see
        // `request_timer`), as they come one at a time.
        timer: Arc::new(RequestTimer::default()),
        stopping: stopping.clone(),
    });
    let outcome = {
        let lean = h1_server::serve(&mut stream, &limits, &*connection);
        let mut lean = std::pin::pin!(lean);
        // What ends a connection early is polled only when it wakes (see `first`).
        let ends = async {
            tokio::select! {
                () = connection.activity.idle(head_timeout / 2) => true,
                _ = stopping.wait_for(|stopping| *stopping) => false,
            }
        };
        let ends = std::pin::pin!(ends);
        match first(lean.as_mut(), ends).await {
            First::Main(outcome) => outcome,
            First::Side(true) => {
                tracing::debug!(%peer, "no request within server.head_timeout_ms: connection closed");
                return;
            }
            First::Side(false) => {
                // The request in flight, if any, is answered with `Connection: close`.
                if connection.activity.busy() {
                    let _ = lean.await;
                }
                return;
            }
        }
    };
    let h1_server::Outcome::HandOver(read) = outcome else {
        return;
    };
    let io = CheckedIo::new(
        stream,
        connection.state.limits,
        connection.rejection.clone(),
        connection.state.reject_path.clone(),
    )
    .with_read(&read);
    let activity = connection.activity.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let in_progress = InProgress::begin(&connection.activity);
        let connection = connection.clone();
        let request = request.map(crate::request_body);
        // Boxed: the request's future is several KiB (routing, cache, forwarding, retries),
        // and hyper moves the future it gets by value more than once per request; a box
        // moves as a pointer.
        Box::pin(async move {
            // `CheckedIo` checked the bytes hyper reads; the parsed head is checked again
            // in `route_request`, in case hyper's reading and ours ever part.
            let response = connection.respond_to(request, Caller::Hyper).await;
            Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_progress)))
        })
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = activity.idle(head_timeout / 2) => {
            tracing::debug!(%peer, "no request within server.head_timeout_ms: connection closed");
            return;
        }
        _ = stopping.wait_for(|stopping| *stopping) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// One HTTP/1 connection's handling of its requests, on either path.
struct Connection {
    state: Arc<State>,
    peer: SocketAddr,
    scheme: &'static str,
    /// The error of a head [`CheckedIo`] refused, for its synthetic request.
    rejection: Arc<Rejection>,
    activity: Arc<Activity>,
    timer: Arc<RequestTimer>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    /// `handle`'s future itself: an `async fn` here would only wrap it in one more state
    /// machine, built and polled once per request.
    fn respond_to(
        &self,
        request: Request<ProxyBody>,
        caller: Caller,
    ) -> impl Future<Output = Response<ProxyBody>> + '_ {
        handle(
            &self.state,
            self.peer,
            self.scheme,
            &self.rejection,
            &self.timer,
            request,
            caller,
        )
    }
}

impl h1_server::Handler for Connection {
    fn respond(&self, request: Request<ProxyBody>) -> impl Future<Output = Response<ProxyBody>> {
        // Parsed from the very bytes `check_request_head` passed, whose checks include every
        // one of `check_parsed_request`'s (one `Host`, valid, and the framing fields).
        self.respond_to(request, Caller::Lean)
    }

    fn refuse(&self, error: &proxy_core::SmugglingError) -> Response<ProxyBody> {
        let response = refused(&self.state, self.peer, error);
        finish(&self.state, self.peer, None, Instant::now(), response)
    }

    fn in_progress(&self, busy: bool) {
        if busy {
            self.activity.began();
        } else {
            self.activity.ended();
        }
    }

    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Whether the client's first bytes are the HTTP/2 connection preface (h2c with prior
/// knowledge, RFC 9113 section 3.3). Peeks, so an HTTP/1 connection reads them again.
async fn starts_with_preface(stream: &TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = [0_u8; PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut seen)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        if seen.get(..n) != PREFACE.get(..n) {
            return false;
        }
        if n == PREFACE.len() {
            return true;
        }
        // A preface cut short: wait for the rest (peek returns at once while bytes wait).
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// HTTP/2 on `stream` through [`H2Guard`], with every `[server.http2]` limit set, until it
/// closes; once `stopping` turns true, GOAWAY goes out and the streams in flight finish.
/// The streams' futures run inside this one ([`h2_server::Served`]).
async fn serve_h2<S>(
    state: Arc<State>,
    config: &Http2Config,
    stream: S,
    peer: SocketAddr,
    scheme: &'static str,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = GuardLimits {
        control_frames_per_second: config.max_control_frames_per_second,
        resets_per_second: config.max_resets_per_second,
        header_read_timeout: ms(config.header_read_timeout_ms),
        send_timeout: ms(config.send_timeout_ms),
        max_refused_requests: config.max_refused_requests,
    };
    let watch = Watch::default();
    let io = H2Guard::new(stream, watch.clone(), limits);
    let max_head_bytes = u32::try_from(state.limits.max_head_bytes).unwrap_or(u32::MAX);
    let mut builder = h2::server::Builder::new();
    if config.websocket {
        builder.enable_connect_protocol();
    }
    builder
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_header_list_size(max_head_bytes)
        .header_table_size(4096)
        .max_pending_accept_reset_streams(config.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(config.max_local_error_reset_streams))
        .max_frame_size(config.max_frame_size)
        .initial_window_size(config.initial_stream_window)
        .initial_connection_window_size(config.initial_connection_window)
        .max_send_buffer_size(config.max_send_buf_bytes);
    let (state, watch_ref, limits_ref) = (&state, &watch, &limits);
    let make = move |request, mut respond| {
        let service = h2_server::take_request(request, &mut respond).map(|(request, tunnel)| {
            let (tunnel, pending) = tunnel.unzip();
            let service = Box::pin(handle_h2(
                state, peer, scheme, watch_ref, limits_ref, request, pending,
            ));
            (service, tunnel)
        });
        h2_server::answer(respond, service, watch_ref)
    };
    let mut connection = h2_server::Served::new(&builder, io, make);
    let keepalive = (
        ms(config.keepalive_interval_ms),
        ms(config.keepalive_timeout_ms),
    );
    let mut tick = tokio::time::interval(limits.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    loop {
        tokio::select! {
            // Each poll of the connection is marked for the guard, which holds the
            // connection's writes of one poll and sends them at the next (`H2Guard`'s
            // `poll_flush`).
            _ = Marked { watch: &watch, connection: std::pin::Pin::new(&mut connection) } => return,
            _ = stopping.wait_for(|stopping| *stopping), if !draining => {
                draining = true;
                connection.graceful_shutdown();
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if let Some(violation) = watch.overdue(now, limits.send_timeout) {
                    tracing::warn!(%peer, ?violation, "HTTP/2 connection ended");
                    watch.kill(violation);
                    break;
                }
                connection.keep_alive(watch.reads(), now, keepalive.0, keepalive.1);
            }
        }
    }
    // The guard writes GOAWAY at the next frame boundary and fails the connection's IO.
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        Marked {
            watch: &watch,
            connection: std::pin::Pin::new(&mut connection),
        },
    )
    .await;
}

/// `connection`, each of its polls marked on `watch` ([`Watch::next_poll`]).
struct Marked<'a, F> {
    watch: &'a Watch,
    connection: std::pin::Pin<&'a mut F>,
}

impl<F: Future> Future for Marked<'_, F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.get_mut();
        this.watch.next_poll();
        this.connection.as_mut().poll(cx)
    }
}

/// Answers one HTTP/2 request: its head made what an HTTP/1.1 upstream expects (`Host`
/// from `:authority`, origin-form target) or refused, then [`route_request`].
async fn handle_h2(
    state: &Arc<State>,
    peer: SocketAddr,
    scheme: &'static str,
    watch: &Watch,
    limits: &GuardLimits,
    request: Request<ProxyBody>,
    tunnel_io: Option<h2_server::PendingTunnel>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let logged = logged(state, &request);
    let (mut parts, body) = request.into_parts();
    let key = || state.rng.lock().map_or(0, |mut r| r.next_u64());
    let checked = websocket::upgrade_request(&mut parts, key).and_then(|websocket| {
        downgrade_head(
            &mut parts,
            state.limits.max_headers,
            state.forward_headers.count(),
        )?;
        proxy_core::check_parsed_request(&parts)
            .map_err(|error| (error.status(), format!("bad request: {error}")))?;
        Ok(websocket)
    });
    let response = match checked {
        Err((status, why)) => {
            state.metrics.rejected_heads.fetch_add(1, Ordering::Relaxed);
            watch.refused(limits.max_refused_requests);
            tracing::warn!(%peer, %why, "refused HTTP/2 request head");
            plain(status, &why, false)
        }
        Ok(None) => {
            route_request(
                state,
                peer,
                scheme,
                Request::from_parts(parts, body),
                None,
                None,
                // Checked above.
                Caller::Http2,
            )
            .await
        }
        Ok(Some(tunnel)) => {
            // The tunnel's bytes come through the stream's upgrade, after the 200; the
            // upstream's upgrade request has no body.
            let request = Request::from_parts(parts, crate::full(bytes::Bytes::new()));
            drop(body);
            let response = route_request(
                state,
                peer,
                scheme,
                request,
                tunnel_io.map(ClientUpgrade::H2),
                None,
                Caller::Http2,
            )
            .await;
            websocket::upgrade_response(response, &tunnel)
        }
    };
    finish(state, peer, logged, started, response)
}

/// The method and path of `request` for the access log, when it is on (copied before the
/// request moves on, and only then).
fn logged<B>(state: &State, request: &Request<B>) -> Option<(http::Method, String)> {
    state
        .access_log
        .then(|| (request.method().clone(), request.uri().path().to_owned()))
}

/// WebSockets over HTTP/2 (RFC 8441) to an HTTP/1.1 upstream: the extended CONNECT made the
/// upgrade request an upstream expects, and its 101 made the 200 the client expects.
mod websocket {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
    use http::request::Parts;
    use http::{HeaderValue, Method, Response, StatusCode};
    use sha1::{Digest as _, Sha1};

    use crate::{ProxyBody, plain};

    /// What the upstream's 101 must carry for the key the proxy sent.
    pub(super) struct Tunnel {
        accept: String,
    }

    /// An extended CONNECT with `:protocol websocket` rewritten in place as an HTTP/1.1
    /// upgrade (RFC 8441 section 5): `GET` with `Upgrade: websocket`, `Connection: Upgrade`
    /// and a `Sec-WebSocket-Key` made from `key` (the client's `Sec-WebSocket-Version`,
    /// `-Protocol` and `-Extensions` pass as they are). `None` for any other request;
    /// another `:protocol` is 501.
    pub(super) fn upgrade_request(
        parts: &mut Parts,
        key: impl FnOnce() -> u64,
    ) -> Result<Option<Tunnel>, (StatusCode, String)> {
        let Some(protocol) = parts.extensions.remove::<h2::ext::Protocol>() else {
            return Ok(None);
        };
        if parts.method != Method::CONNECT {
            return Ok(None);
        }
        if !protocol.as_str().eq_ignore_ascii_case("websocket") {
            return Err((
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "extended CONNECT for {:?}: only websocket",
                    protocol.as_str()
                ),
            ));
        }
        let key = key();
        let nonce: Vec<u8> = key
            .to_le_bytes()
            .into_iter()
            .chain(proxy_core::mix64(key).to_le_bytes())
            .collect();
        let key = STANDARD.encode(nonce);
        let accept = STANDARD.encode(
            Sha1::new()
                .chain_update(key.as_bytes())
                .chain_update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                .finalize(),
        );
        parts.method = Method::GET;
        let headers = &mut parts.headers;
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        if let Ok(value) = HeaderValue::from_str(&key) {
            headers.insert(SEC_WEBSOCKET_KEY, value);
        }
        Ok(Some(Tunnel { accept }))
    }

    /// The client's answer: the upstream's 101 (with the right `Sec-WebSocket-Accept`) as a
    /// 200 without the HTTP/1.1 upgrade fields; a 101 with a wrong accept is a 502; anything
    /// else as it is (a non-2xx tells the client the tunnel was refused).
    pub(super) fn upgrade_response(
        mut response: Response<ProxyBody>,
        tunnel: &Tunnel,
    ) -> Response<ProxyBody> {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return response;
        }
        let headers = response.headers_mut();
        if headers.get(SEC_WEBSOCKET_ACCEPT).map(HeaderValue::as_bytes)
            != Some(tunnel.accept.as_bytes())
        {
            return plain(
                StatusCode::BAD_GATEWAY,
                "the upstream's WebSocket handshake did not match",
                false,
            );
        }
        proxy_core::remove_hop_by_hop(headers);
        for name in [UPGRADE, CONNECTION, SEC_WEBSOCKET_ACCEPT] {
            headers.remove(name);
        }
        *response.status_mut() = StatusCode::OK;
        response
    }
}

/// Checks an HTTP/2 request head for what an HTTP/1.1 upstream would read differently and
/// rewrites it as one (RFC 9113 section 8.3.1): `Host` from `:authority` (a `Host` that
/// differs is refused), the target in origin-form, at most `max_headers` fields. h2 already
/// refused connection-specific fields, `te` other than `trailers`, CR, LF and NUL in values
/// (RST_STREAM `PROTOCOL_ERROR`), and holds DATA to `content-length`. `forwarded` is how
/// many forwarding headers the proxy adds after it.
fn downgrade_head(
    request: &mut http::request::Parts,
    max_headers: usize,
    forwarded: usize,
) -> Result<(), (StatusCode, String)> {
    fn refuse(status: StatusCode, why: &str) -> Result<(), (StatusCode, String)> {
        Err((status, format!("bad request: {why}")))
    }
    if request.headers.len() > max_headers {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many header fields",
        );
    }
    if request.method == http::Method::CONNECT {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "CONNECT over HTTP/2");
    }
    let authority = request.uri.authority().cloned();
    let host = request.headers.get(http::header::HOST);
    match (&authority, host) {
        (Some(authority), None) => {
            let value = http::HeaderValue::from_str(authority.as_str()).map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    "bad request: bad :authority".to_owned(),
                )
            })?;
            // Room for `Host` and the forwarding headers, in one growth: `h2` sizes the
            // map to the field counts of recent requests, so it is often full.
            request.headers.reserve(1 + forwarded);
            request.headers.insert(http::header::HOST, value);
        }
        (Some(authority), Some(host))
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            return refuse(StatusCode::BAD_REQUEST, "host and :authority differ");
        }
        (None, None) => return refuse(StatusCode::BAD_REQUEST, "no :authority and no host"),
        _ => {}
    }
    if authority.is_some_and(|a| a.as_str().contains('@')) {
        return refuse(StatusCode::BAD_REQUEST, "userinfo in :authority");
    }
    let target = request
        .uri
        .path_and_query()
        .cloned()
        .ok_or_else(|| (StatusCode::BAD_REQUEST, "bad request: no :path".to_owned()))?;
    request.uri = http::Uri::from(target);
    Ok(())
}

/// Records the metrics and the access log of an answered request.
fn finish(
    state: &State,
    peer: SocketAddr,
    logged: Option<(http::Method, String)>,
    started: Instant,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let status = response.status();
    state.metrics.record(status.as_u16(), started.elapsed());
    if let Some((method, path)) = logged {
        tracing::info!(target: "access", %peer, %method, %path, status = status.as_u16(), took = ?started.elapsed());
    }
    response
}

/// The 400 (or 431) for a request head the raw-byte checks refused; the connection closes
/// after it.
fn refused(
    state: &State,
    peer: SocketAddr,
    error: &proxy_core::SmugglingError,
) -> Response<ProxyBody> {
    state.metrics.rejected_heads.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(%peer, %error, "refused request head");
    plain(error.status(), &format!("bad request: {error}"), true)
}

/// Answers one request of a connection: the 400 for a head [`CheckedIo`] refused (it
/// arrives as a request for the secret reject path), else [`route_request`]; then the
/// metrics and the access log.
async fn handle(
    state: &Arc<State>,
    peer: SocketAddr,
    scheme: &'static str,
    rejection: &Rejection,
    timer: &RequestTimer,
    mut request: Request<ProxyBody>,
    caller: Caller,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let logged = logged(state, &request);
    // The lean path hands every request with `Upgrade` to hyper, so one it parsed
    // has none to look up.
    let client_upgrade = (caller == Caller::Hyper && request.headers().contains_key(UPGRADE))
        .then(|| ClientUpgrade::Hyper(hyper::upgrade::on(&mut request)));
    let response = if request.uri().path() == &*state.reject_path {
        match rejection.take() {
            Some(error) => refused(state, peer, &error),
            None => plain(StatusCode::NOT_FOUND, "not found", false),
        }
    } else {
        route_request(
            state,
            peer,
            scheme,
            request,
            client_upgrade,
            Some(timer),
            caller,
        )
        .await
    };
    finish(state, peer, logged, started, response)
}
