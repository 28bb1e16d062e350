//! HTTP/2 connections served on the `h2` crate directly, each stream's future polled inside
//! the connection's own task.
//!
//! hyper's HTTP/2 server spawns a task per stream, boxes each service future, adapts the IO,
//! converts each request and response, and strips the connection-specific fields from every
//! response with five lookups. [`Served`] keeps its streams' futures in a `FuturesUnordered`
//! instead, polled by the connection's own task: no task per stream, and the request's
//! future boxed once. With the send-timeout bookkeeping moved into [`answer`]'s pipe, that
//! took about 2,900 of the 42,700 instructions a proxied HTTP/2 request cost, and 4-12% of
//! the proxy's user time (docs/benchmarks.md).
//!
//! What hyper did that a proxy needs is kept:
//! - a stream whose answer is not ready yet is dropped when the client resets it;
//! - a response without `Date` gets one; one with a body of known length gets
//!   `Content-Length`; connection-specific fields never go out (RFC 9113 section 8.2.2);
//! - a body that fails resets its stream with the `h2` reason inside the error, or
//!   `INTERNAL_ERROR`; trailers go out as a trailing HEADERS frame (gRPC);
//! - a `CONNECT` with a body is reset; a successful answer to an extended CONNECT
//!   (RFC 8441) leaves the stream open as the tunnel's byte stream ([`H2Io`]);
//! - GOAWAY on graceful shutdown ([`Served::graceful_shutdown`]), and PING keep-alive on
//!   the connection's timer ([`Served::keep_alive`]).
//!
//! The limits (streams, header list, resets, windows, send buffer) are `h2`'s own, set by
//! the caller on the [`h2::server::Builder`]; the frame-level bounds stay in
//! [`H2Guard`](crate::h2_guard::H2Guard), the IO under this.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes};
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use h2::server::{Connection, Handshake, SendResponse};
use h2::{Ping, PingPong, Reason, RecvStream, SendStream};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::h2_guard::Watch;
use crate::{BoxError, ProxyBody};

/// One downstream HTTP/2 connection: the handshake, then its requests accepted and each
/// answered by the future `make` returns for it, all polled by whoever polls this.
pub(crate) struct Served<T, M, St> {
    state: State<T>,
    make: M,
    streams: FuturesUnordered<St>,
    /// GOAWAY asked for before the handshake finished.
    shutdown_pending: bool,
    keep_alive: KeepAlive,
}

enum State<T> {
    Handshaking(Handshake<T, Bytes>),
    Serving(Connection<T, Bytes>),
    Done,
}

/// PINGs after a quiet spell (the client's reads counted by the caller), and when one went
/// unanswered.
struct KeepAlive {
    pings: Option<PingPong>,
    reads: u64,
    quiet_since: Option<Instant>,
    sent: Option<Instant>,
}

impl<T, M, St> Served<T, M, St>
where
    T: AsyncRead + AsyncWrite + Unpin,
    M: FnMut(Request<RecvStream>, SendResponse<Bytes>) -> St + Unpin,
    St: Future<Output = ()>,
{
    /// Serves `io` with the settings of `builder`, answering each request with `make`.
    pub(crate) fn new(builder: &h2::server::Builder, io: T, make: M) -> Self {
        Self {
            state: State::Handshaking(builder.handshake(io)),
            make,
            streams: FuturesUnordered::new(),
            shutdown_pending: false,
            keep_alive: KeepAlive {
                pings: None,
                reads: 0,
                quiet_since: None,
                sent: None,
            },
        }
    }

    /// GOAWAY: no new streams; the ones open finish, then the connection closes.
    pub(crate) fn graceful_shutdown(&mut self) {
        match &mut self.state {
            State::Serving(connection) => connection.graceful_shutdown(),
            State::Handshaking(_) => self.shutdown_pending = true,
            State::Done => {}
        }
    }

    /// The keep-alive check, on the connection's timer at `now`: `reads` is how many reads
    /// from the client there were so far. After `interval` without one a PING goes out;
    /// unanswered (no read at all) for `timeout`, the connection ends with GOAWAY `NO_ERROR`.
    pub(crate) fn keep_alive(
        &mut self,
        reads: u64,
        now: Instant,
        interval: Duration,
        timeout: Duration,
    ) {
        let State::Serving(connection) = &mut self.state else {
            return;
        };
        let ka = &mut self.keep_alive;
        if reads != ka.reads {
            ka.reads = reads;
            ka.quiet_since = Some(now);
            ka.sent = None;
            return;
        }
        let quiet_since = *ka.quiet_since.get_or_insert(now);
        if let Some(sent) = ka.sent {
            if now.saturating_duration_since(sent) >= timeout {
                tracing::debug!("HTTP/2 keep-alive PING unanswered, closing");
                connection.abrupt_shutdown(Reason::NO_ERROR);
                // Once: no more PINGs, and no second GOAWAY.
                ka.pings = None;
                ka.sent = None;
            }
            return;
        }
        if now.saturating_duration_since(quiet_since) < interval {
            return;
        }
        let Some(pings) = ka.pings.as_mut() else {
            return;
        };
        // An earlier PING's answer (if any) is taken first: one may be outstanding at a time.
        let _ = pings.poll_pong(&mut Context::from_waker(std::task::Waker::noop()));
        if pings.send_ping(Ping::opaque()).is_ok() {
            ka.sent = Some(now);
        }
    }
}

impl<T, M, St> Future for Served<T, M, St>
where
    T: AsyncRead + AsyncWrite + Unpin,
    M: FnMut(Request<RecvStream>, SendResponse<Bytes>) -> St + Unpin,
    St: Future<Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Handshaking(handshake) => match ready!(Pin::new(handshake).poll(cx)) {
                    Ok(mut connection) => {
                        if this.shutdown_pending {
                            connection.graceful_shutdown();
                        }
                        this.keep_alive.pings = connection.ping_pong();
                        this.state = State::Serving(connection);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "HTTP/2 handshake failed");
                        this.state = State::Done;
                        return Poll::Ready(());
                    }
                },
                State::Serving(connection) => {
                    // The streams first (a new one gets its first poll here): what they
                    // queue goes out with the connection's poll after them.
                    while let Poll::Ready(Some(())) = this.streams.poll_next_unpin(cx) {}
                    match connection.poll_accept(cx) {
                        Poll::Ready(Some(Ok((request, respond)))) => {
                            this.streams.push((this.make)(request, respond));
                        }
                        Poll::Ready(Some(Err(error))) => {
                            tracing::debug!(%error, "HTTP/2 connection ended");
                            this.state = State::Done;
                            return Poll::Ready(());
                        }
                        Poll::Ready(None) => {
                            this.state = State::Done;
                            return Poll::Ready(());
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                State::Done => return Poll::Ready(()),
            }
        }
    }
}

/// The byte stream of an extended CONNECT, once its 2xx went out.
pub(crate) type PendingTunnel = tokio::sync::oneshot::Receiver<H2Io>;

/// A request's `h2` parts as the proxy takes them: the body as a [`ProxyBody`], and for a
/// `CONNECT` (whose body is the tunnel) the stream kept for [`answer`] with the receiving
/// end of the tunnel for the caller. `None` for a `CONNECT` with a body, which is reset
/// (as hyper does).
pub(crate) fn take_request(
    request: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
) -> Option<(Request<ProxyBody>, Option<Tunnel>)> {
    let (parts, recv) = request.into_parts();
    if parts.method == Method::CONNECT {
        if content_length(&parts.headers).is_some_and(|n| n != 0) {
            respond.send_reset(Reason::INTERNAL_ERROR);
            return None;
        }
        let (ready, pending) = tokio::sync::oneshot::channel();
        let request = Request::from_parts(parts, crate::empty());
        return Some((request, Some((TunnelParts { recv, ready }, pending))));
    }
    let body = if recv.is_end_stream() {
        crate::empty()
    } else {
        let length = content_length(&parts.headers);
        crate::request_body(RequestBody {
            recv,
            data_done: false,
            length,
        })
    };
    Some((Request::from_parts(parts, body), None))
}

/// A `CONNECT`'s two ends: what [`answer`] keeps, and what the caller awaits.
pub(crate) type Tunnel = (TunnelParts, PendingTunnel);

/// What a `CONNECT` stream keeps until its answer: the client's side of the stream, and
/// where the tunnel goes once the answer is a 2xx.
pub(crate) struct TunnelParts {
    recv: RecvStream,
    ready: tokio::sync::oneshot::Sender<H2Io>,
}

/// Answers one stream with what `service` returns, unless the client resets the stream
/// first (then `service` is dropped, and with it the upstream exchange); `None` when
/// [`take_request`] already reset the stream. `service` comes boxed: the stream's future
/// is moved a few times on its way into the connection's set, and a box moves as a
/// pointer where a request's whole future would be copied each time.
pub(crate) async fn answer<F>(
    mut reply: SendResponse<Bytes>,
    service: Option<(Pin<Box<F>>, Option<TunnelParts>)>,
    watch: &Watch,
) where
    F: Future<Output = Response<ProxyBody>>,
{
    let Some((mut service, tunnel)) = service else {
        return;
    };
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(response) = service.as_mut().poll(cx) {
            return Poll::Ready(Some(response));
        }
        match reply.poll_reset(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let Some(response) = response else {
        return;
    };
    let (mut head, body) = response.into_parts();
    let fields = Fields::of(&head.headers);
    if fields.connection_specific {
        // All of them are hop-by-hop: proxy-core's removal takes them, and whatever else
        // `Connection` names.
        proxy_core::remove_hop_by_hop(&mut head.headers);
    }
    if !fields.date {
        crate::h1_server::date::now(|date| {
            if let Ok(date) = HeaderValue::from_bytes(date) {
                head.headers.insert(DATE, date);
            }
        });
    }
    if let Some(tunnel) = tunnel
        && head.status.is_success()
    {
        // RFC 9113 section 8.5: the stream is now the tunnel; a 2xx to CONNECT has no body.
        if content_length(&head.headers).is_some_and(|n| n != 0) {
            reply.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
        head.headers.remove(CONTENT_LENGTH);
        match reply.send_response(Response::from_parts(head, ()), false) {
            Ok(send) => {
                let _ = tunnel.ready.send(H2Io {
                    send,
                    recv: tunnel.recv,
                    unread: Bytes::new(),
                });
            }
            Err(error) => {
                tracing::debug!(%error, "HTTP/2 answer not sent");
                reply.send_reset(Reason::INTERNAL_ERROR);
            }
        }
        return;
    }
    if body.is_end_stream() {
        if let Err(error) = reply.send_response(Response::from_parts(head, ()), true) {
            tracing::debug!(%error, "HTTP/2 answer not sent");
            reply.send_reset(Reason::INTERNAL_ERROR);
        }
        return;
    }
    if let Some(length) = body.size_hint().exact()
        && !fields.content_length
    {
        head.headers
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    let send = match reply.send_response(Response::from_parts(head, ()), false) {
        Ok(send) => send,
        Err(error) => {
            tracing::debug!(%error, "HTTP/2 answer not sent");
            reply.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
    };
    let mut pipe = Pipe {
        body,
        send,
        waiting: None,
        watch,
        stalled: None,
    };
    std::future::poll_fn(|cx| pipe.poll(cx)).await;
}

/// A response body on its way to the client: each chunk sent once the stream has window
/// for it, then the trailers or an empty end of stream. While a chunk waits for window the
/// response is marked stalled on the connection's [`Watch`] (whose timer ends a connection
/// whose client never opens its window); a chunk that goes out at once marks nothing.
struct Pipe<'a> {
    body: ProxyBody,
    send: SendStream<Bytes>,
    /// A chunk taken from the body that waits for window, and whether it is the last.
    waiting: Option<(Bytes, bool)>,
    watch: &'a Watch,
    /// The mark on `watch` while a chunk waits.
    stalled: Option<u64>,
}

impl Drop for Pipe<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.stalled.take() {
            self.watch.resumed(id);
        }
    }
}

impl Pipe<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // Registered on every pass, so a reset wakes the stream whatever it waits for.
            if let Poll::Ready(reason) = self.send.poll_reset(cx) {
                tracing::debug!(?reason, "HTTP/2 response reset by the client");
                return Poll::Ready(());
            }
            if let Some((chunk, last)) = self.waiting.take() {
                while self.send.capacity() == 0 {
                    match self.send.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(_))) => {}
                        Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                        Poll::Pending => {
                            if self.stalled.is_none() {
                                self.stalled = Some(self.watch.stalled(Instant::now()));
                            }
                            self.waiting = Some((chunk, last));
                            return Poll::Pending;
                        }
                    }
                }
                if let Some(id) = self.stalled.take() {
                    self.watch.resumed(id);
                }
                if self.send.send_data(chunk, last).is_err() || last {
                    return Poll::Ready(());
                }
                continue;
            }
            // The next chunk is asked for before any window is claimed: claiming it ahead
            // would pin connection window a body that sends nothing never uses.
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => {
                        let last = self.body.is_end_stream();
                        if chunk.is_empty() {
                            if self.send.send_data(chunk, last).is_err() || last {
                                return Poll::Ready(());
                            }
                            continue;
                        }
                        // `h2` raises the claim to the chunk's length in `send_data`.
                        self.send.reserve_capacity(1);
                        self.waiting = Some((chunk, last));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.send.reserve_capacity(0);
                            let _ = self.send.send_trailers(trailers);
                            return Poll::Ready(());
                        }
                    }
                },
                Some(Err(error)) => {
                    let reason = h2_reason(&*error);
                    tracing::debug!(%error, ?reason, "HTTP/2 response body failed");
                    self.send.send_reset(reason);
                    return Poll::Ready(());
                }
                None => {
                    let _ = self.send.send_data(Bytes::new(), true);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// The `h2` reason inside `error` (an upstream stream's reset passes on as it came), else
/// `INTERNAL_ERROR`.
fn h2_reason(error: &(dyn StdError + 'static)) -> Reason {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(reason) = error
            .downcast_ref::<h2::Error>()
            .and_then(h2::Error::reason)
        {
            return reason;
        }
        next = error.source();
    }
    Reason::INTERNAL_ERROR
}

/// What a response head holds that [`answer`] acts on, found in one pass over its names
/// (cheaper than a lookup each: the names are compared, not hashed).
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields {
    date: bool,
    content_length: bool,
    /// A field HTTP/2 forbids (RFC 9113 section 8.2.2), which `h2` would refuse to send.
    /// The proxy's own responses and the upstreams' (hop-by-hop fields removed) carry none,
    /// which this pass finds more cheaply than proxy-core's removal would.
    connection_specific: bool,
}

impl Fields {
    fn of(headers: &HeaderMap) -> Self {
        let mut fields = Self::default();
        for name in headers.keys() {
            if *name == DATE {
                fields.date = true;
            } else if *name == CONTENT_LENGTH {
                fields.content_length = true;
            } else if *name == CONNECTION
                || *name == TRANSFER_ENCODING
                || *name == UPGRADE
                || *name == TE
                || name.as_str() == "keep-alive"
                || name.as_str() == "proxy-connection"
            {
                fields.connection_specific = true;
            }
        }
        fields
    }
}

/// The `Content-Length` of a head, when it has one valid value (digits only).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let first = values.next()?;
    let length = crate::h1_client::parse_decimal(first.as_bytes())?;
    values.all(|v| v == first).then_some(length)
}

/// A request body from an `h2` stream: each chunk's window given back as it is read, then
/// the trailers. A reset with `NO_ERROR` after the response (RFC 9113 section 8.1) ends it.
struct RequestBody {
    recv: RecvStream,
    data_done: bool,
    /// What `Content-Length` says is left.
    length: Option<u64>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    let _ = this.recv.flow_control().release_capacity(chunk.len());
                    if let Some(length) = &mut this.length {
                        *length = length.saturating_sub(chunk.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Some(Err(error)) => {
                    if error.reason() == Some(Reason::NO_ERROR) {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(error.into())));
                }
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) if error.reason() == Some(Reason::NO_ERROR) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.length
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// An HTTP/2 stream as a byte stream both ways (the client's side of a WebSocket over an
/// extended CONNECT): what it reads gives its window back, what it writes waits for window.
pub(crate) struct H2Io {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// The rest of a DATA frame the reader has not taken yet.
    unread: Bytes,
}

fn io_error(error: h2::Error) -> io::Error {
    if error.reason() == Some(Reason::CANCEL) || error.is_io() {
        io::Error::new(io::ErrorKind::BrokenPipe, error)
    } else {
        io::Error::other(error)
    }
}

impl AsyncRead for H2Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.unread.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    let _ = this.recv.flow_control().release_capacity(chunk.len());
                    this.unread = chunk;
                }
                Some(Err(error)) if error.reason() == Some(Reason::NO_ERROR) => {
                    return Poll::Ready(Ok(()));
                }
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.unread.len().min(buf.remaining());
        if let Some(bytes) = this.unread.get(..n) {
            buf.put_slice(bytes);
        }
        this.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let send = &mut self.send;
        send.reserve_capacity(buf.len());
        while send.capacity() == 0 {
            match ready!(send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
        let n = send.capacity().min(buf.len());
        let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
        send.send_data(chunk, false).map_err(io_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // END_STREAM; a stream the client already reset has nothing left to end.
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;

    #[test]
    fn connection_specific_fields_are_found_and_go_and_the_rest_stay() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert(
            DATE,
            HeaderValue::from_static("Mon, 07 Dec 2026 06:00:00 GMT"),
        );
        let clean = Fields {
            date: true,
            ..Fields::default()
        };
        assert_eq!(Fields::of(&headers), clean);
        for (name, value) in [
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("connection", "close"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
        ] {
            let mut with = headers.clone();
            with.insert(name, HeaderValue::from_static(value));
            assert!(Fields::of(&with).connection_specific, "{name}");
            proxy_core::remove_hop_by_hop(&mut with);
            assert_eq!(with, headers, "{name}");
        }
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert!(Fields::of(&headers).content_length);
    }

    #[test]
    fn content_length_needs_one_valid_value() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_length(&headers), None);
        headers.append(CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(content_length(&headers), Some(12));
        headers.append(CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(content_length(&headers), Some(12));
        headers.append(CONTENT_LENGTH, HeaderValue::from_static("13"));
        assert_eq!(content_length(&headers), None);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("x"));
        assert_eq!(content_length(&headers), None);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("+3"));
        assert_eq!(content_length(&headers), None);
    }

    #[test]
    fn an_h2_reason_inside_an_error_is_kept() {
        let reset: BoxError = Box::new(h2::Error::from(Reason::CANCEL));
        assert_eq!(h2_reason(&*reset), Reason::CANCEL);
        let other: BoxError = "upstream went away".into();
        assert_eq!(h2_reason(&*other), Reason::INTERNAL_ERROR);
    }
}
