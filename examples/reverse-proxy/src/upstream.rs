//! Keep-alive HTTP/1 connections to the upstreams of one pool, kept per worker thread.
//!
//! hyper-util's pooled client served this before, and cost more per request than the proxy
//! needs: a pool key made from the URI (an absolute URI built and parsed per request), a
//! pool shared by every thread behind one lock, the race between checkout and a new
//! connection, and its own retry loop around both. Here each worker thread (one
//! current-thread runtime each) has its own list of idle connections per upstream, so a
//! request takes the newest ready connection under an uncontended lock, and sends its
//! origin-form request on it as it is.
//!
//! A connection goes back to its list when the response body has been read to its end
//! ([`PooledBody`]); one whose body is dropped early is closed, as hyper cannot reuse it.
//! Idle connections past the idle timeout, or closed by the upstream, are never handed out,
//! and are dropped by [`Upstreams::reap`], which the proxy runs every second.
//!
//! A request whose body is in hand ([`SendBody::Bytes`]: empty, or read whole for retries)
//! to a plain-TCP member goes through the lean HTTP/1.1 client ([`crate::h1_client`]) on
//! connections of its own kind in the same idle lists; a streamed body, an upgrade,
//! `CONNECT` or a TLS member take hyper's client.
//!
//! A pool with `protocol = "h2c"` speaks HTTP/2 with prior knowledge instead: per worker
//! thread and member, at most `max_connections` connections, each carrying at most
//! `max_streams_per_connection` streams at once (a semaphore per connection whose permit
//! the response body holds until it ends). A request takes a stream on the oldest
//! connection with one free, else opens a connection (one connect at a time per member, so
//! a burst shares the new connection instead of opening one each), else waits for a stream.
//!
//! A pool with `[pools.tls]` speaks TLS to its members (HTTP/1.1, or HTTP/2 with
//! `protocol = "h2"`, agreed by ALPN); the handshake counts within the connect timeout and
//! a failed one (an unverified certificate, a wrong name, no `h2`) is a connect failure,
//! logged with its reason.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use proxy_core::UpstreamId;

use crate::config::{UpstreamHttp2Config, UpstreamProtocol};
use crate::h1_client;
use crate::tls::UpstreamTls;
use crate::{BoxError, ProxyBody};

/// At most this many idle connections are kept per upstream and worker thread.
const MAX_IDLE_PER_UPSTREAM: usize = 256;

/// How often a request looks for another HTTP/2 connection when the one it took was closed
/// by the upstream meanwhile (GOAWAY) before the request went out.
const MAX_H2_STALE: usize = 3;

struct Idle {
    link: Link,
    since: Instant,
}

/// An idle HTTP/1 connection: hyper's client (a streamed request body, TLS, upgrades), or
/// the lean client's ([`crate::h1_client`]).
enum Link {
    Hyper(SendRequest<ProxyBody>),
    Lean(h1_client::Conn),
}

impl Link {
    fn is_closed(&self) -> bool {
        match self {
            Link::Hyper(sender) => sender.is_closed(),
            // Checked when taken ([`h1_client::Conn::is_idle_clean`]).
            Link::Lean(_) => false,
        }
    }
}

/// A request body on its way upstream.
pub(crate) enum SendBody {
    /// In hand (empty, or read whole so it can be retried): sent by the lean HTTP/1 client
    /// when the pool allows it.
    Bytes(Bytes),
    /// Streamed from the client.
    Stream(ProxyBody),
}

impl SendBody {
    fn into_proxy_body(self) -> ProxyBody {
        match self {
            SendBody::Bytes(bytes) if bytes.is_empty() => crate::empty(),
            SendBody::Bytes(bytes) => crate::full(bytes),
            SendBody::Stream(body) => body,
        }
    }
}

/// A worker's idle connections, by member.
type IdleLists = HashMap<UpstreamId, Vec<Idle>, BuildHasherDefault<IdHasher>>;

/// Hashes an [`UpstreamId`] (a small counter the pool hands out, never a client's input)
/// with one multiplication. Each request looks its member up twice (checkout, checkin), and
/// the default SipHash cost more than the rest of both lookups (callgrind, 280 instructions
/// per request).
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the high bits, which the table's control bytes use, depend on
        // every bit of the id.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The idle connections of one pool: one map per worker thread.
pub(crate) struct Upstreams {
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Indexed by worker thread. Each lock is taken by its own thread, and once a second by
    /// the reaper, so it is almost never contended; a mounted [`crate::App`] (one slot) shares
    /// slot 0 between the threads of its host's runtime.
    idle: Vec<Mutex<IdleLists>>,
    /// For an `h2c` or `h2` pool: its HTTP/2 connections (the idle lists stay empty).
    h2: Option<H2Connections>,
    /// For a pool with `[pools.tls]`: the TLS client towards its members.
    tls: Option<UpstreamTls>,
}

/// The HTTP/2 connections of one pool: per worker thread, per member.
struct H2Connections {
    settings: UpstreamHttp2Config,
    slots: Vec<Mutex<HashMap<UpstreamId, Arc<H2Member>>>>,
}

/// The HTTP/2 connections to one member from one worker thread.
#[derive(Default)]
struct H2Member {
    connections: Mutex<Vec<H2Connection>>,
    /// Held while a connection to the member is being made.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct H2Connection {
    /// Tells connections apart, to forget one found unusable.
    serial: u64,
    sender: hyper::client::conn::http2::SendRequest<ProxyBody>,
    /// One permit per stream the connection may carry.
    streams: Arc<tokio::sync::Semaphore>,
    /// When a stream last began on it.
    used: Instant,
}

/// Why an upstream request failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made (refused, unreachable, timed out, handshake failed).
    Connect,
    /// The connection failed after the request was (or may have been) sent.
    Request,
}

impl Upstreams {
    pub(crate) fn new(
        workers: usize,
        connect_timeout: Duration,
        idle_timeout: Duration,
        protocol: UpstreamProtocol,
        http2: &UpstreamHttp2Config,
        tls: Option<UpstreamTls>,
    ) -> Self {
        let workers = workers.max(1);
        Self {
            connect_timeout,
            idle_timeout,
            idle: (0..workers).map(|_| Mutex::default()).collect(),
            h2: (protocol != UpstreamProtocol::Http1).then(|| H2Connections {
                settings: http2.clone(),
                slots: (0..workers).map(|_| Mutex::new(HashMap::new())).collect(),
            }),
            tls,
        }
    }

    /// Whether the members are spoken to over HTTP/2.
    pub(crate) fn is_h2(&self) -> bool {
        self.h2.is_some()
    }

    fn slot(&self) -> Option<&Mutex<IdleLists>> {
        self.idle
            .get(crate::state::worker())
            .or_else(|| self.idle.first())
    }

    /// An idle connection to `id` that is still open and within the idle timeout: the newest
    /// one that is ready for a request, else the newest usable one. A connection is checked
    /// in as soon as its response body ends, which can be before its connection task has run
    /// and made it ready again; taking a ready one spares the request a wait for that task.
    /// The search stops at the first ready connection from the end (usually the last one);
    /// unusable ones are left for [`Upstreams::reap`], so a checkout never walks the whole
    /// list to clean it.
    fn checkout(&self, id: UpstreamId) -> Option<SendRequest<ProxyBody>> {
        let mut lists = self.slot()?.lock().ok()?;
        let list = lists.get_mut(&id)?;
        let now = Instant::now();
        let usable = |idle: &Idle| {
            matches!(&idle.link, Link::Hyper(sender) if !sender.is_closed())
                && now.saturating_duration_since(idle.since) < self.idle_timeout
        };
        let ready = |idle: &Idle| matches!(&idle.link, Link::Hyper(sender) if sender.is_ready());
        let index = list
            .iter()
            .rposition(|idle| ready(idle) && usable(idle))
            .or_else(|| list.iter().rposition(usable))?;
        match list.swap_remove(index).link {
            Link::Hyper(sender) => Some(sender),
            Link::Lean(_) => None,
        }
    }

    /// The newest idle lean connection to `id` within the idle timeout on which nothing
    /// arrived while it was idle; the unusable ones met on the way are closed.
    fn checkout_lean(&self, id: UpstreamId) -> Option<h1_client::Conn> {
        let mut lists = self.slot()?.lock().ok()?;
        let list = lists.get_mut(&id)?;
        let now = Instant::now();
        while let Some(index) = list
            .iter()
            .rposition(|idle| matches!(idle.link, Link::Lean(_)))
        {
            let idle = list.swap_remove(index);
            if now.saturating_duration_since(idle.since) >= self.idle_timeout {
                continue;
            }
            if let Link::Lean(mut conn) = idle.link
                && conn.is_idle_clean()
            {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, id: UpstreamId, link: Link) {
        if link.is_closed() {
            return;
        }
        let Some(mut lists) = self.slot().and_then(|s| s.lock().ok()) else {
            return;
        };
        let list = lists.entry(id).or_default();
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push(Idle {
                link,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections past the idle timeout, and ones the upstream closed.
    pub(crate) fn reap(&self) {
        let now = Instant::now();
        if let Some(h2) = &self.h2 {
            h2.reap(now, self.idle_timeout);
        }
        for slot in &self.idle {
            if let Ok(mut lists) = slot.lock() {
                for list in lists.values_mut() {
                    list.retain_mut(|idle| {
                        let open = match &mut idle.link {
                            Link::Hyper(sender) => !sender.is_closed(),
                            Link::Lean(conn) => conn.is_idle_clean(),
                        };
                        open && now.saturating_duration_since(idle.since) < self.idle_timeout
                    });
                }
                lists.retain(|_, list| !list.is_empty());
            }
        }
    }

    /// A TCP connection to `address`, and for a TLS pool the TLS handshake over it, within
    /// the connect timeout; then the HTTP handshake over either (`plain` or `tls`).
    async fn dial<T, F, Fut, G, Gut>(&self, address: &str, plain: F, tls: G) -> Result<T, SendError>
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut,
        Fut: Future<Output = Result<T, SendError>>,
        G: FnOnce(tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Gut,
        Gut: Future<Output = Result<T, SendError>>,
    {
        let started = Instant::now();
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            _ => return Err(SendError::Connect),
        };
        // Requests and responses are small writes that must leave at once.
        let _ = stream.set_nodelay(true);
        let Some(upstream_tls) = &self.tls else {
            return plain(stream).await;
        };
        let left = self.connect_timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, upstream_tls.connect(address, stream)).await {
            Ok(Ok(stream)) => tls(stream).await,
            Ok(Err(reason)) => {
                tracing::warn!(upstream = address, %reason, "TLS to the upstream failed");
                Err(SendError::Connect)
            }
            Err(_) => {
                tracing::warn!(
                    upstream = address,
                    "TLS handshake with the upstream timed out"
                );
                Err(SendError::Connect)
            }
        }
    }

    async fn connect(&self, address: &str) -> Result<SendRequest<ProxyBody>, SendError> {
        self.dial(address, handshake_h1, handshake_h1).await
    }

    /// Sends `request` (origin-form target) to the upstream `id` at `address`, on an idle
    /// connection when there is one. `Host` is set to `address` when the request has none.
    /// A request refused unsent by a reused connection (the upstream closed it meanwhile)
    /// is sent again on another, as hyper-util's client did.
    ///
    /// The lean client only reads `request`, which stays the caller's. The other paths hand
    /// a request to hyper: a copy when the caller `keep`s it for another attempt, else the
    /// request itself (the caller's is then left without headers or body). So a request
    /// that may be retried is copied only when it goes through hyper.
    ///
    /// With `raw_fields`, a response from the lean client may carry its fields as
    /// [`h1_client::RawFields`] with an empty `HeaderMap`: only for a caller that writes
    /// them itself and reads none of them ([`crate::routing::Caller::Lean`]).
    pub(crate) async fn send(
        self: &Arc<Self>,
        id: UpstreamId,
        address: &str,
        request: &mut Request<SendBody>,
        keep: bool,
        raw_fields: bool,
    ) -> Result<Response<PooledBody>, SendError> {
        // The HTTP/2 path and the connect below are boxed: their futures (TLS handshakes,
        // HTTP/2 settings) are several KiB, and held inline they made every HTTP/1 request's
        // forward future about 11 KiB, copied whole when it was boxed (a fifth of the
        // instructions of a keep-alive request, by callgrind).
        if let Some(h2) = &self.h2 {
            let request = hand_over(request, keep).map(SendBody::into_proxy_body);
            return Box::pin(self.send_h2(h2, id, address, request)).await;
        }
        if let SendBody::Bytes(bytes) = request.body()
            && self.tls.is_none()
            && request.method() != http::Method::CONNECT
            && !request.headers().contains_key(http::header::UPGRADE)
            && let Some(encoded) = h1_client::encode_request(
                request.method(),
                request.uri().path_and_query().map_or("/", |p| p.as_str()),
                request.headers(),
                address,
                bytes,
            )
        {
            let replayable = proxy_core::is_replayable(request.method(), request.headers());
            return self
                .send_lean(
                    id,
                    address,
                    request.method(),
                    &encoded,
                    replayable,
                    raw_fields,
                )
                .await;
        }
        let (mut parts, body) = hand_over(request, keep).into_parts();
        if !parts.headers.contains_key(HOST)
            && let Ok(host) = HeaderValue::from_str(address)
        {
            parts.headers.insert(HOST, host);
        }
        let request = Request::from_parts(parts, body.into_proxy_body());
        // Boxed too: held inline, this path's request, connection and hyper's send made the
        // lean path's future twice its size (every state of an `async fn` is as large as its
        // largest), and that future is copied once per request.
        Box::pin(self.send_hyper(id, address, request)).await
    }

    /// `request` sent with hyper's client on a connection of the member at `address`.
    async fn send_hyper(
        self: &Arc<Self>,
        id: UpstreamId,
        address: &str,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (mut sender, reused) = match self.checkout(id) {
                Some(sender) => (sender, true),
                None => (Box::pin(self.connect(address)).await?, false),
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(SendError::Connect);
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let upgrade = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    return Ok(response.map(|body| PooledBody::Hyper {
                        body,
                        ended: false,
                        // An upgraded connection belongs to the tunnel from now on.
                        back: if upgrade {
                            Back::Nothing
                        } else {
                            Back::Connection(self.clone(), id, sender)
                        },
                    }));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Request),
                },
            }
        }
    }
}

/// The request to give hyper: a copy of `request` when the caller keeps it, else `request`
/// itself, the caller's left with no headers and an empty body.
fn hand_over(request: &mut Request<SendBody>, keep: bool) -> Request<SendBody> {
    if !keep {
        return std::mem::replace(request, Request::new(SendBody::Bytes(Bytes::new())));
    }
    let body = match request.body_mut() {
        SendBody::Bytes(bytes) => SendBody::Bytes(bytes.clone()),
        // A streamed body cannot be copied: it goes (a request with one is not sent twice).
        body @ SendBody::Stream(_) => std::mem::replace(body, SendBody::Bytes(Bytes::new())),
    };
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// What a response body gives back when it ends.
pub(crate) enum Back {
    Nothing,
    /// An HTTP/1 connection, to its idle list.
    Connection(Arc<Upstreams>, UpstreamId, SendRequest<ProxyBody>),
    /// An HTTP/2 stream's place on its connection (dropped, it frees the place).
    Stream {
        _permit: tokio::sync::OwnedSemaphorePermit,
    },
}

/// A response body from an upstream that returns its connection to the idle list (or its
/// HTTP/2 stream's place) once read to the end. Trailers pass through as they come.
pub(crate) enum PooledBody {
    /// Read by hyper's client.
    Hyper {
        body: Incoming,
        ended: bool,
        back: Back,
    },
    /// Read by the lean HTTP/1 client; its connection goes back to `upstreams`.
    Lean {
        reader: h1_client::Reader,
        upstreams: Arc<Upstreams>,
        id: UpstreamId,
    },
}

impl PooledBody {
    /// Whether the response's head came without hop-by-hop fields (the lean client leaves
    /// them out as it parses), so that nothing is left to remove from it.
    pub(crate) fn head_is_end_to_end(&self) -> bool {
        matches!(self, PooledBody::Lean { .. })
    }

    fn release(&mut self) {
        match self {
            PooledBody::Hyper { back, .. } => {
                if let Back::Connection(upstreams, id, sender) =
                    std::mem::replace(back, Back::Nothing)
                {
                    upstreams.checkin(id, Link::Hyper(sender));
                }
            }
            PooledBody::Lean {
                reader,
                upstreams,
                id,
            } => {
                if let Some(conn) = reader.take_reusable() {
                    upstreams.checkin(*id, Link::Lean(conn));
                }
            }
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        let ended = match self {
            PooledBody::Hyper { body, ended, .. } => *ended || body.is_end_stream(),
            PooledBody::Lean { reader, .. } => reader.is_end_stream(),
        };
        if ended {
            self.release();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = match &mut *self {
            PooledBody::Hyper { body, ended, .. } => {
                let polled = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(None) = polled {
                    *ended = true;
                }
                polled.map_err(BoxError::from)
            }
            PooledBody::Lean { reader, .. } => reader.poll_frame(cx).map_err(BoxError::from),
        };
        if let Poll::Ready(None) = polled {
            self.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match self {
            PooledBody::Hyper { body, .. } => body.is_end_stream(),
            PooledBody::Lean { reader, .. } => reader.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            PooledBody::Hyper { body, .. } => body.size_hint(),
            PooledBody::Lean { reader, .. } => reader.size_hint(),
        }
    }
}

impl Upstreams {
    /// Sends an encoded request on an idle lean connection to `id` (one found clean), else on
    /// a new one. A reused connection that takes none of the request (closed meanwhile) is
    /// dropped and the request goes on another, as hyper's client does with a request it
    /// could not send. So does a `replayable` request whose reused connection ended before
    /// any response came (the member closed it as the request went out), as nginx retries
    /// a cached connection's failure.
    async fn send_lean(
        self: &Arc<Self>,
        id: UpstreamId,
        address: &str,
        method: &http::Method,
        encoded: &[u8],
        replayable: bool,
        raw_fields: bool,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (conn, reused) = match self.checkout_lean(id) {
                Some(conn) => (conn, true),
                None => (Box::pin(self.connect_lean(address)).await?, false),
            };
            match conn.exchange(encoded, method, raw_fields).await {
                Ok((parts, mut reader)) => {
                    // A response without a body (HEAD, 204, 304) frees its connection now.
                    if reader.is_end_stream()
                        && let Some(conn) = reader.take_reusable()
                    {
                        self.checkin(id, Link::Lean(conn));
                    }
                    let body = PooledBody::Lean {
                        reader,
                        upstreams: self.clone(),
                        id,
                    };
                    return Ok(Response::from_parts(parts, body));
                }
                Err(h1_client::ExchangeError::Unsent) if reused => {}
                Err(h1_client::ExchangeError::Closed) if reused && replayable => {}
                Err(_) => return Err(SendError::Request),
            }
        }
    }

    async fn connect_lean(&self, address: &str) -> Result<h1_client::Conn, SendError> {
        self.dial(
            address,
            |io| async move { Ok(h1_client::Conn::new(io)) },
            // The lean client is not used towards TLS members.
            |_| async { Err(SendError::Connect) },
        )
        .await
    }
}

impl Upstreams {
    /// Sends `request` on a stream of an HTTP/2 connection to `address`. The target goes out
    /// as `:scheme http` (`https` over TLS) and `:authority` from `Host` (removed; RFC 9113 section 8.3.1), else
    /// the member's address.
    async fn send_h2(
        &self,
        h2: &H2Connections,
        id: UpstreamId,
        address: &str,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        let authority = request
            .headers_mut()
            .remove(HOST)
            .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok())
            .or_else(|| address.parse().ok())
            .ok_or(SendError::Connect)?;
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(if self.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        parts.authority = Some(authority);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| SendError::Request)?;
        let member = h2.member(id).ok_or(SendError::Connect)?;
        for _ in 0..MAX_H2_STALE {
            let (permit, mut connection, reused) = self.h2_stream(h2, &member, address).await?;
            if connection.sender.ready().await.is_err() {
                member.forget(connection.serial);
                if reused {
                    continue;
                }
                return Err(SendError::Connect);
            }
            return match connection.sender.try_send_request(request).await {
                Ok(response) => Ok(response.map(|body| PooledBody::Hyper {
                    body,
                    ended: false,
                    back: Back::Stream { _permit: permit },
                })),
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => {
                        member.forget(connection.serial);
                        request = unsent;
                        continue;
                    }
                    _ => Err(SendError::Request),
                },
            };
        }
        Err(SendError::Connect)
    }

    /// A stream's place on a connection to the member: on the oldest connection with one
    /// free, else on a new connection if the member has fewer than `max_connections`, else
    /// the first place to free up. Also whether the connection was already open.
    async fn h2_stream(
        &self,
        h2: &H2Connections,
        member: &H2Member,
        address: &str,
    ) -> Result<(tokio::sync::OwnedSemaphorePermit, H2Connection, bool), SendError> {
        if let Some((permit, connection)) = member.free_stream() {
            return Ok((permit, connection, true));
        }
        let connecting = member.connecting.lock().await;
        // Another request may have opened a connection while this one waited.
        if let Some((permit, connection)) = member.free_stream() {
            return Ok((permit, connection, true));
        }
        if member.open() < h2.settings.max_connections {
            let sender = self.connect_h2(&h2.settings, address).await?;
            let streams = Arc::new(tokio::sync::Semaphore::new(
                h2.settings.max_streams_per_connection as usize,
            ));
            let permit = streams
                .clone()
                .try_acquire_owned()
                .map_err(|_| SendError::Connect)?;
            static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let connection = H2Connection {
                serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                sender,
                streams,
                used: Instant::now(),
            };
            if let Ok(mut connections) = member.connections.lock() {
                connections.push(connection.clone());
            }
            return Ok((permit, connection, false));
        }
        drop(connecting);
        // Every connection is full: wait for the least busy one's next free stream.
        let connection = member.least_busy().ok_or(SendError::Connect)?;
        let permit = connection
            .streams
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SendError::Connect)?;
        Ok((permit, connection, true))
    }

    async fn connect_h2(
        &self,
        settings: &UpstreamHttp2Config,
        address: &str,
    ) -> Result<hyper::client::conn::http2::SendRequest<ProxyBody>, SendError> {
        let timeout = self.connect_timeout;
        self.dial(
            address,
            |io| handshake_h2(settings, timeout, io),
            |io| handshake_h2(settings, timeout, io),
        )
        .await
    }
}

/// The HTTP/1.1 handshake over a connection to a member; its connection task spawned.
async fn handshake_h1<I>(io: I) -> Result<SendRequest<ProxyBody>, SendError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| SendError::Connect)?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream connection ended");
        }
    });
    Ok(sender)
}

/// The HTTP/2 handshake over a connection to a member, with every limit of `settings`; its
/// connection task spawned.
async fn handshake_h2<I>(
    settings: &UpstreamHttp2Config,
    timeout: Duration,
    io: I,
) -> Result<hyper::client::conn::http2::SendRequest<ProxyBody>, SendError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .initial_max_send_streams(settings.max_streams_per_connection as usize)
        // Server push is off; no stream may be opened by the server.
        .max_concurrent_streams(0)
        .max_frame_size(settings.max_frame_size)
        .max_header_list_size(settings.max_header_list_size)
        .header_table_size(settings.header_table_size)
        .adaptive_window(false)
        .initial_stream_window_size(settings.initial_stream_window)
        .initial_connection_window_size(settings.initial_connection_window)
        .max_send_buf_size(settings.max_send_buf_bytes)
        .max_concurrent_reset_streams(settings.max_concurrent_reset_streams)
        .reset_stream_duration(Duration::from_millis(settings.reset_stream_ms))
        .max_pending_accept_reset_streams(settings.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(settings.max_local_error_reset_streams)
        .keep_alive_interval(Duration::from_millis(settings.keepalive_interval_ms))
        .keep_alive_timeout(Duration::from_millis(settings.keepalive_timeout_ms))
        // Idle connections are not pinged: gRPC servers answer PINGs without streams
        // more often than every 5 minutes with GOAWAY `too_many_pings`; the reaper
        // closes them after the idle timeout instead.
        .keep_alive_while_idle(false);
    let handshake = builder.handshake(TokioIo::new(io));
    let (sender, connection) = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| SendError::Connect)?
        .map_err(|_| SendError::Connect)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream HTTP/2 connection ended");
        }
    });
    Ok(sender)
}

impl H2Connections {
    fn member(&self, id: UpstreamId) -> Option<Arc<H2Member>> {
        let slot = self
            .slots
            .get(crate::state::worker())
            .or_else(|| self.slots.first())?;
        let mut members = slot.lock().ok()?;
        Some(members.entry(id).or_default().clone())
    }

    /// Drops connections the upstream closed, and idle ones (no stream) past `idle_timeout`.
    fn reap(&self, now: Instant, idle_timeout: Duration) {
        let all = self.settings.max_streams_per_connection as usize;
        for slot in &self.slots {
            let Ok(mut members) = slot.lock() else {
                continue;
            };
            for member in members.values() {
                if let Ok(mut connections) = member.connections.lock() {
                    connections.retain(|c| {
                        !c.sender.is_closed()
                            && (c.streams.available_permits() < all
                                || now.saturating_duration_since(c.used) < idle_timeout)
                    });
                }
            }
            // A member in use (a request holds it) stays, so its connection is not lost.
            members.retain(|_, member| {
                Arc::strong_count(member) > 1
                    || member.connections.lock().is_ok_and(|c| !c.is_empty())
            });
        }
    }
}

impl H2Member {
    /// A free stream on the oldest open connection that has one.
    fn free_stream(&self) -> Option<(tokio::sync::OwnedSemaphorePermit, H2Connection)> {
        let mut connections = self.connections.lock().ok()?;
        connections.retain(|c| !c.sender.is_closed());
        connections.iter_mut().find_map(|c| {
            let permit = c.streams.clone().try_acquire_owned().ok()?;
            c.used = Instant::now();
            Some((permit, c.clone()))
        })
    }

    fn open(&self) -> usize {
        self.connections.lock().map_or(usize::MAX, |c| c.len())
    }

    fn least_busy(&self) -> Option<H2Connection> {
        let connections = self.connections.lock().ok()?;
        connections
            .iter()
            .max_by_key(|c| c.streams.available_permits())
            .cloned()
    }

    /// Removes a connection found unusable.
    fn forget(&self, serial: u64) {
        if let Ok(mut connections) = self.connections.lock() {
            connections.retain(|c| c.serial != serial && !c.sender.is_closed());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn member_ids_spread_over_the_tables_control_bits() {
        // hashbrown groups by the top 7 bits: consecutive ids must not share them.
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut tops = std::collections::HashSet::new();
        let mut lows = std::collections::HashSet::new();
        for id in 0..128_u64 {
            let hash = build.hash_one(id);
            tops.insert(hash >> 57);
            lows.insert(hash & 127);
        }
        assert!(tops.len() >= 64, "{} distinct top bits", tops.len());
        assert!(lows.len() >= 64, "{} distinct low bits", lows.len());
        // And the lists keyed by them behave as a map.
        let mut pool = proxy_core::Pool::new(proxy_core::Algorithm::RoundRobin);
        let ids: Vec<UpstreamId> = (0..50).map(|i| pool.add(format!("h:{i}"), 1)).collect();
        let mut lists = IdleLists::default();
        for id in &ids {
            lists.insert(*id, Vec::new());
        }
        assert_eq!(lists.len(), ids.len());
        assert!(ids.iter().all(|id| lists.contains_key(id)));
        let other = pool.add("h:other", 1);
        assert!(!lists.contains_key(&other));
    }
}
