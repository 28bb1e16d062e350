//! The standalone server's HTTP/1.1 hot path without hyper: requests without a body read,
//! checked and parsed here, their responses written here.
//!
//! Most proxied requests are a `GET` or `HEAD` head and nothing else. For those, hyper's
//! server connection (its dispatcher, its read buffer behind [`crate::checked_io`], its
//! generic encoder) cost about a third of the proxy's instructions per request
//! (docs/benchmarks.md). Here a connection reads into one buffer, checks each head with
//! `proxy_core::check_request_head` (the same checks `checked_io` applies), parses it with
//! `httparse` into an `http::Request` whose fields share the buffer, answers it through the
//! same routing, and writes the response head and body with one write when they are ready
//! together.
//!
//! Everything else goes to hyper for the rest of the connection ([`Outcome::HandOver`], with
//! the bytes read so far): a request with a body, an upgrade, `Expect`, `CONNECT`, HTTP/1.0,
//! or a head `httparse` or `http` would not take. A head the checks refuse is answered here
//! with the 400 (or 431) the hyper path writes, and the connection closes.
//!
//! The response is framed as hyper frames it (RFC 9112 section 6): `Content-Length` from the
//! header or the body's exact size, else chunked; no body for `HEAD`, 1xx, 204 and 304;
//! trailers only when the request said `TE: trailers` and the response announced them in
//! `Trailer`; `Date` added when missing; `Connection: close` when the client asked for it or
//! the server is draining.
//!
//! A response from the lean upstream client may carry the member's fields as raw lines
//! (`crate::h1_client::RawFields`, asked for with [`crate::routing::Caller::Lean`] when
//! nothing on the route reads them): they are written first, as they came, then the
//! fields of the response's `HeaderMap` (what the proxy added).

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRAILER, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::{Body as _, Frame};
use proxy_core::{Framing, SmugglingError, check_request_head};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::ProxyBody;
use crate::h1_client::{RawFields, parse_decimal};

mod agree;
pub(crate) use agree::requests_agree;

/// The most header fields parsed here; a head with more goes to hyper, whose limit is the
/// same.
const MAX_HEADERS: usize = 100;
/// Bytes read from the socket at a time, at least.
const READ_SIZE: usize = 8 * 1024;
/// Data frames up to this size are copied behind the head (one write for both); larger
/// ones are written as they are.
const COPY_LIMIT: usize = 16 * 1024;

/// How the lean path ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The connection is done (closed by either side, or after an error).
    Closed,
    /// The next request needs hyper: these bytes were read and not answered (they start
    /// with its head).
    HandOver(BytesMut),
}

/// What a connection's requests are answered with: the routing, the metrics and the
/// access log, as for hyper's requests ([`crate::server`]).
pub(crate) trait Handler {
    /// Answers one parsed request, whose head passed `check_request_head` as the bytes it
    /// was parsed from.
    fn respond(&self, request: Request<ProxyBody>) -> impl Future<Output = Response<ProxyBody>>;
    /// The answer to a head the checks refused (the connection closes after it).
    fn refuse(&self, error: &SmugglingError) -> Response<ProxyBody>;
    /// Called once a request's head is in, and with `false` once its response is written.
    fn in_progress(&self, busy: bool);
    /// Whether the server is draining: the response in flight is the connection's last.
    fn stopping(&self) -> bool;
}

/// Serves requests on `io` until it closes or a request needs hyper.
pub(crate) async fn serve<S, H>(io: &mut S, limits: &proxy_core::HeadLimits, handler: &H) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(4096);
    loop {
        // A whole head checked, or what says it will never pass.
        let checked = match check_request_head(&buf, limits) {
            Ok(checked) => checked,
            // (Never past the limit: the checks refuse a longer head as too large.)
            Err(SmugglingError::Incomplete) if buf.len() <= limits.max_head_bytes => {
                buf.reserve(READ_SIZE);
                match io.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return Outcome::Closed,
                    Ok(_) => continue,
                }
            }
            Err(error) => return refuse(io, &mut out, handler, &error).await,
        };
        if checked.framing != Framing::None || checked.upgrade || checked.http10 {
            return Outcome::HandOver(buf);
        }
        let Some((request, asked)) = parse(&mut buf, checked.head_len) else {
            return Outcome::HandOver(buf);
        };
        handler.in_progress(true);
        let response = handler.respond(request).await;
        let asked = Asked {
            close: asked.close || handler.stopping(),
            ..asked
        };
        let written = write_response(io, &mut out, response, &asked).await;
        handler.in_progress(false);
        match written {
            Ok(true) => {}
            Ok(false) => {
                let _ = io.shutdown().await;
                return Outcome::Closed;
            }
            Err(_) => return Outcome::Closed,
        }
    }
}

/// Answers a head the checks refused, and ends the connection (nothing after that head is
/// read).
async fn refuse<S, H>(io: &mut S, out: &mut Vec<u8>, handler: &H, error: &SmugglingError) -> Outcome
where
    S: AsyncWrite + Unpin,
    H: Handler,
{
    handler.in_progress(true);
    let answer = handler.refuse(error);
    if write_response(io, out, answer, &Asked::refused())
        .await
        .is_ok()
    {
        let _ = io.shutdown().await;
    }
    handler.in_progress(false);
    Outcome::Closed
}

/// What the request said about its response.
#[derive(Debug, Clone, Copy)]
struct Asked {
    head: bool,
    /// `Connection: close` (or the server is draining).
    close: bool,
    /// `TE: trailers`.
    trailers: bool,
}

impl Asked {
    /// For the answer to a refused head.
    fn refused() -> Self {
        Self {
            head: false,
            close: true,
            trailers: false,
        }
    }
}

/// The request whose checked head ends at `end` in `buf`, taken out of it, with what it
/// asked of its response; `None` (and `buf` as it was) for one hyper must take.
fn parse(buf: &mut BytesMut, end: usize) -> Option<(Request<ProxyBody>, Asked)> {
    if end > buf.len() {
        return None;
    }
    // Taken out first, so that the fields can share its memory.
    let head = buf.split_to(end).freeze();
    let parsed = build(&head);
    if parsed.is_none() {
        // Put the head back: hyper answers it (rare: see the module's documentation).
        let mut whole = BytesMut::with_capacity(head.len() + buf.len() + READ_SIZE);
        whole.extend_from_slice(&head);
        whole.extend_from_slice(buf);
        *buf = whole;
    }
    parsed
}

/// The request in `head`, its fields sharing its memory; `None` for one hyper must take.
fn build(head: &Bytes) -> Option<(Request<ProxyBody>, Asked)> {
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        head,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        _ => return None,
    }
    if parsed.version != Some(1) {
        return None;
    }
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    let mut asked = Asked {
        head: method == Method::HEAD,
        close: false,
        trailers: false,
    };
    // The bytes of `part` (a slice of `head`) as shared bytes.
    let base = head.as_ptr() as usize;
    let shared = |part: &[u8]| {
        let start = (part.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(part.len())?;
        (end <= head.len()).then(|| head.slice(start..end))
    };
    let uri = http::Uri::from_maybe_shared(shared(parsed.path?.as_bytes())?).ok()?;
    // Room for the fields the proxy adds before forwarding.
    let mut headers = HeaderMap::with_capacity(parsed.headers.len() + 4);
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"upgrade") || name.eq_ignore_ascii_case(b"expect") {
            return None;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            asked.close |= has_token(field.value, b"close");
        } else if name.eq_ignore_ascii_case(b"te") {
            asked.trailers |= has_token(field.value, b"trailers");
        }
        let name = HeaderName::from_bytes(name).ok()?;
        let value = HeaderValue::from_maybe_shared(shared(field.value)?).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(crate::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Some((request, asked))
}

/// Whether the comma-separated `value` lists `token` (any case).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoder {
    /// Exactly this many bytes more.
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 response of unknown length).
    CloseDelimited,
}

/// What the body says of its length before it is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLength {
    /// Already at its end.
    Empty,
    Known(u64),
    Unknown,
}

/// Writes `response` (head, then body) and says whether the connection stays open.
async fn write_response<S>(
    io: &mut S,
    out: &mut Vec<u8>,
    response: Response<ProxyBody>,
    asked: &Asked,
) -> io::Result<bool>
where
    S: AsyncWrite + Unpin,
{
    let (mut parts, mut body) = response.into_parts();
    if parts.status.is_informational() {
        // As hyper: a 1xx cannot be the answer (an upgrade never comes this way).
        parts = Response::new(()).into_parts().0;
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        body = crate::empty();
    }
    let length = if body.is_end_stream() {
        BodyLength::Empty
    } else {
        body.size_hint()
            .exact()
            .map_or(BodyLength::Unknown, BodyLength::Known)
    };
    out.clear();
    let head = encode_head(out, &parts, length, asked);
    let Ok((mut encoder, keep_alive, allowed)) = head else {
        // A response head hyper would refuse too (conflicting lengths): nothing is sent.
        return Ok(false);
    };
    let mut done = encoder == Encoder::Length(0);
    while !done {
        // A body at its end is polled no further, as hyper does.
        let frame = if body.is_end_stream() {
            None
        } else {
            match next_frame(&mut body) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    // Send what is ready before waiting for more.
                    io.write_all(out).await?;
                    out.clear();
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                }
            }
        };
        match frame {
            None => {
                done = true;
                match encoder {
                    Encoder::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
                    // Shorter than it said: the client must see the connection end.
                    Encoder::Length(n) if n > 0 => {
                        io.write_all(out).await?;
                        return Ok(false);
                    }
                    Encoder::Length(_) | Encoder::CloseDelimited => {}
                }
            }
            Some(Err(_)) => {
                // The body failed part way: the client sees the connection end without the
                // body's end.
                io.write_all(out).await?;
                return Ok(false);
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if data.is_empty() {
                        continue;
                    }
                    match &mut encoder {
                        Encoder::Length(left) => {
                            let len = data.len() as u64;
                            if len > *left {
                                // Longer than it said: what fits, then the connection ends.
                                let fits = usize::try_from(*left).unwrap_or(usize::MAX);
                                out.extend_from_slice(data.get(..fits).unwrap_or_default());
                                io.write_all(out).await?;
                                return Ok(false);
                            }
                            *left -= len;
                            put(io, out, &data).await?;
                            done = *left == 0;
                        }
                        Encoder::Chunked => {
                            let mut size = [0_u8; 16];
                            out.extend_from_slice(hex(data.len(), &mut size));
                            out.extend_from_slice(b"\r\n");
                            put(io, out, &data).await?;
                            out.extend_from_slice(b"\r\n");
                        }
                        Encoder::CloseDelimited => put(io, out, &data).await?,
                    }
                }
                Err(frame) => {
                    if let (Ok(trailers), Encoder::Chunked) = (frame.into_trailers(), encoder) {
                        out.extend_from_slice(b"0\r\n");
                        if asked.trailers {
                            encode_trailers(out, &trailers, allowed.as_deref());
                        }
                        out.extend_from_slice(b"\r\n");
                        done = true;
                    }
                }
            },
        }
    }
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(keep_alive && encoder != Encoder::CloseDelimited)
}

/// The body's next frame if it is ready now.
fn next_frame(body: &mut ProxyBody) -> Poll<Option<Result<Frame<Bytes>, crate::BoxError>>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    Pin::new(body).poll_frame(&mut cx)
}

/// Appends `data` to `out`, or for a large piece writes `out` and then `data` itself.
async fn put<S>(io: &mut S, out: &mut Vec<u8>, data: &Bytes) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if data.len() <= COPY_LIMIT {
        out.extend_from_slice(data);
        if out.len() > 4 * COPY_LIMIT {
            io.write_all(out).await?;
            out.clear();
        }
        return Ok(());
    }
    io.write_all(out).await?;
    out.clear();
    io.write_all(data).await
}

/// `n` in lower-case hexadecimal.
fn hex(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(slot) = buf.get_mut(at) {
            *slot = b"0123456789abcdef".get(n & 0xf).copied().unwrap_or(b'0');
        }
        n >>= 4;
        if n == 0 || at == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or_default()
}

/// RFC 9110 section 6.4.1: no content after `HEAD`, 1xx, 204 and 304.
fn can_have_body(head: bool, status: StatusCode) -> bool {
    !head
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// Whether a `Content-Length` may be sent with the status (RFC 9110 section 8.6).
fn can_have_content_length(status: StatusCode) -> bool {
    !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// The response head into `out`: the body's encoder, whether the connection stays open, and
/// the trailer fields the response announced. `Err` for a head with conflicting
/// `Content-Length` values or an invalid one when the body's length is unknown.
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    length: BodyLength,
    asked: &Asked,
) -> Result<(Encoder, bool, Option<Vec<HeaderName>>), ()> {
    let http10 = parts.version == Version::HTTP_10;
    let status = parts.status;
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    if !http10 && status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        match reason {
            Some(reason) => out.extend_from_slice(reason.as_bytes()),
            None => out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    let can_chunk = !http10 && can_have_body(asked.head, status);
    // The `Content-Length` to send and the framing it gives.
    let mut content_length: Option<(&HeaderValue, u64)> = None;
    let mut keep_alive = !asked.close && !http10;
    let mut close_written = false;
    let mut date_written = false;
    let mut allowed: Option<Vec<HeaderName>> = None;
    let mut te: Vec<&HeaderValue> = Vec::new();
    let mut connection: Vec<&HeaderValue> = Vec::new();
    let mut trailer: Vec<&HeaderValue> = Vec::new();
    // The upstream's fields, when they came as lines (none of the framing fields is among
    // them), then those in the map.
    if let Some(raw) = parts.extensions.get::<RawFields>() {
        out.extend_from_slice(&raw.lines);
        date_written = raw.date;
    }
    for (name, value) in &parts.headers {
        if *name == CONTENT_LENGTH {
            let framed = match length {
                BodyLength::Known(n) => n,
                BodyLength::Unknown => parse_decimal(value.as_bytes()).ok_or(())?,
                // No body: the field says how long a `GET` would have been.
                BodyLength::Empty if asked.head => 0,
                BodyLength::Empty => continue,
            };
            match content_length {
                None => content_length = Some((value, framed)),
                Some((_, before)) if length == BodyLength::Unknown && before != framed => {
                    return Err(());
                }
                Some(_) => {}
            }
        } else if *name == TRANSFER_ENCODING {
            if can_chunk {
                te.push(value);
            }
        } else if *name == CONNECTION {
            connection.push(value);
        } else if *name == TRAILER {
            if can_chunk {
                trailer.push(value);
            }
        } else {
            date_written |= *name == DATE;
            field(out, name.as_str(), value.as_bytes());
        }
    }
    // A length wins over `Transfer-Encoding` (a sender never sends both).
    let mut encoder = None;
    if let Some((value, framed)) = content_length {
        field(out, "content-length", value.as_bytes());
        encoder = Some(Encoder::Length(framed));
    } else if !te.is_empty() {
        encoder = Some(Encoder::Chunked);
        out.extend_from_slice(b"transfer-encoding: ");
        join(out, &te);
        let last_chunked = te.last().is_some_and(|v| {
            v.as_bytes()
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        });
        if !last_chunked {
            out.extend_from_slice(b", chunked");
        }
        out.extend_from_slice(b"\r\n");
    }
    if !connection.is_empty() {
        out.extend_from_slice(b"connection: ");
        join(out, &connection);
        if connection.iter().any(|v| has_token(v.as_bytes(), b"close")) {
            keep_alive = false;
            close_written = true;
        }
        if asked.close && !close_written && !http10 {
            out.extend_from_slice(b", close");
            close_written = true;
        }
        out.extend_from_slice(b"\r\n");
    }
    if asked.close && !close_written && !http10 {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !trailer.is_empty() {
        out.extend_from_slice(b"trailer: ");
        join(out, &trailer);
        out.extend_from_slice(b"\r\n");
        allowed = Some(
            trailer
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect(),
        );
    }
    let encoder = match encoder {
        Some(encoder) => encoder,
        None => match length {
            BodyLength::Unknown if can_chunk => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Encoder::Chunked
            }
            BodyLength::Unknown => Encoder::CloseDelimited,
            BodyLength::Empty | BodyLength::Known(0) => {
                if can_have_content_length(status) && !asked.head {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Encoder::Length(0)
            }
            BodyLength::Known(n) => {
                if can_have_content_length(status) {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                    Encoder::Length(n)
                } else {
                    Encoder::Length(0)
                }
            }
        },
    };
    // The fields stay (a `HEAD` answer's length is the `GET`'s), the body does not.
    let encoder = if can_have_body(asked.head, status) {
        encoder
    } else {
        Encoder::Length(0)
    };
    if !date_written {
        out.extend_from_slice(b"date: ");
        date::now(|date| out.extend_from_slice(date));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok((encoder, keep_alive, allowed))
}

/// `name: value` CRLF.
fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The values joined with `, `.
fn join(out: &mut Vec<u8>, values: &[&HeaderValue]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(value.as_bytes());
    }
}

/// The trailer fields the response announced, as `name: value` lines (RFC 9110 section
/// 6.5: none that frame, route or authenticate the message).
fn encode_trailers(out: &mut Vec<u8>, trailers: &HeaderMap, allowed: Option<&[HeaderName]>) {
    let Some(allowed) = allowed else {
        return;
    };
    for (name, value) in trailers {
        if allowed.contains(name) && allowed_in_trailer(name) {
            field(out, name.as_str(), value.as_bytes());
        }
    }
}

/// RFC 9110 section 6.5.1: fields that frame, route, modify or authenticate a message, or
/// describe its content, are not sent as trailers.
fn allowed_in_trailer(name: &HeaderName) -> bool {
    use http::header::{
        AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_RANGE, CONTENT_TYPE, HOST,
        MAX_FORWARDS, SET_COOKIE, TE,
    };
    ![
        AUTHORIZATION,
        CACHE_CONTROL,
        CONTENT_ENCODING,
        CONTENT_LENGTH,
        CONTENT_RANGE,
        CONTENT_TYPE,
        HOST,
        MAX_FORWARDS,
        SET_COOKIE,
        TRAILER,
        TRANSFER_ENCODING,
        TE,
    ]
    .contains(name)
}

/// `Date` values, formatted once a second per thread.
pub(crate) mod date {
    use std::cell::Cell;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// IMF-fixdate is always 29 bytes.
    const LEN: usize = 29;

    thread_local! {
        static CACHED: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
    }

    /// Calls `with` on the current time as an HTTP-date.
    pub(crate) fn now(with: impl FnOnce(&[u8])) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (at, mut text) = CACHED.get();
        if at != second {
            let formatted = proxy_core::format_http_date(now);
            if let Some(bytes) = formatted.as_bytes().get(..LEN) {
                text.copy_from_slice(bytes);
                CACHED.set((second, text));
            } else {
                return with(formatted.as_bytes());
            }
        }
        with(&text);
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

    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use http_body_util::BodyExt as _;
    use proxy_core::HeadLimits;
    use tokio::io::AsyncWriteExt as _;

    use super::*;
    use crate::test_support::mangled;

    /// A body of the given frames; its length is unknown unless `exact`.
    struct Frames {
        frames: VecDeque<Frame<Bytes>>,
        exact: Option<u64>,
    }

    impl hyper::body::Body for Frames {
        type Data = Bytes;
        type Error = crate::BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, crate::BoxError>>> {
            Poll::Ready(self.frames.pop_front().map(Ok))
        }
        fn size_hint(&self) -> hyper::body::SizeHint {
            self.exact.map_or_else(
                hyper::body::SizeHint::default,
                hyper::body::SizeHint::with_exact,
            )
        }
    }

    fn frames(data: &[&str], trailers: Option<(&str, &str)>, exact: Option<u64>) -> ProxyBody {
        let mut frames: VecDeque<Frame<Bytes>> = data
            .iter()
            .map(|d| Frame::data(Bytes::copy_from_slice(d.as_bytes())))
            .collect();
        if let Some((name, value)) = trailers {
            let mut map = HeaderMap::new();
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
            frames.push_back(Frame::trailers(map));
        }
        Frames { frames, exact }.boxed()
    }

    /// Answers by path: `/chunked` streams with a trailer, `/long` sends more than its
    /// length, `/short` less, `/close` asks to close; anything else echoes its path.
    #[derive(Default)]
    struct Stub {
        seen: Mutex<Vec<String>>,
        busy: AtomicUsize,
        stopping: AtomicBool,
    }

    impl Handler for Stub {
        async fn respond(&self, request: Request<ProxyBody>) -> Response<ProxyBody> {
            let path = request.uri().path().to_owned();
            self.seen
                .lock()
                .unwrap()
                .push(format!("{} {path}", request.method()));
            let mut response = match path.as_str() {
                "/chunked" => {
                    let mut r = Response::new(frames(&["hel", "lo"], Some(("x-sum", "5")), None));
                    r.headers_mut()
                        .insert(TRAILER, HeaderValue::from_static("x-sum"));
                    r
                }
                "/long" => Response::new(frames(&["123", "4567"], None, Some(5))),
                "/short" => Response::new(frames(&["12"], None, Some(5))),
                "/close" => crate::plain(StatusCode::OK, "bye", true),
                _ => Response::new(crate::full(path.clone())),
            };
            if path == "/reason" {
                response
                    .extensions_mut()
                    .insert(hyper::ext::ReasonPhrase::from_static(b"Fine"));
            }
            response
        }
        fn refuse(&self, error: &SmugglingError) -> Response<ProxyBody> {
            crate::plain(error.status(), &format!("bad request: {error}"), true)
        }
        fn in_progress(&self, busy: bool) {
            if busy {
                self.busy.fetch_add(1, Ordering::SeqCst);
            } else {
                self.busy.fetch_sub(1, Ordering::SeqCst);
            }
        }
        fn stopping(&self) -> bool {
            self.stopping.load(Ordering::SeqCst)
        }
    }

    /// Pipelined requests, sent in reads of several sizes, and 20,000 copies of each with bytes
    /// replaced, dropped or doubled: the handler gets what was sent, hyper gets exactly what
    /// was not answered, and each request gets one well-framed response
    /// (`requests_agree`, which the fuzz target `reverse_proxy_request_bytes` runs too).
    #[test]
    fn requests_reach_the_handler_as_sent_and_the_rest_reaches_hyper() {
        let requests: &[u8] = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-A: 1\r\n\
            x-a: 2\r\nCookie: c=1\r\n\r\nHEAD /h HTTP/1.1\r\nHost: x\r\n\r\n\
            GET http://x/abs HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n\
            POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
            GET /after HTTP/1.1\r\nHost: x\r\n\r\n";
        let closing: &[u8] =
            b"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
        // Reads of 1, 2 and 8 bytes and all at once, with the default limits and the small ones.
        for first in [0_u8, 4, 28, 252, 253, 255] {
            let with = |input: &[u8]| [&[first][..], input].concat();
            assert_eq!(requests_agree(&with(requests)), Ok(3));
            assert_eq!(requests_agree(&with(closing)), Ok(1));
        }
        // Stopped at every byte: the unfinished head is left unanswered.
        for end in 0..requests.len() {
            requests_agree(&[&[252][..], &requests[..end]].concat()).unwrap();
        }
        let (mut answered, mut some) = (0, 0);
        for (seed, input) in [
            (0x51_7cc1_b727_220a, requests),
            (0x2d35_8dcc_aa6c_78a5, closing),
        ] {
            for bytes in mangled(
                &[&[0][..], input].concat(),
                seed,
                b"\r\n :,;/?0123456789aAxX\t\x00\x7f\xff",
            ) {
                let n = requests_agree(&bytes)
                    .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(&bytes)));
                answered += n;
                some += usize::from(n > 0);
            }
        }
        // About half the copies still start with a request the lean path answers (a byte
        // changed in the first head mostly gets it refused).
        assert!(
            some > 15_000,
            "{some} of 40,000 answered anything ({answered} requests)"
        );
    }

    /// Sends `input` at once (then ends the client's side), serves it; the outcome and
    /// everything written back.
    async fn exchange(stub: &Stub, input: &[u8]) -> (Outcome, String) {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let outcome = serve(&mut server, &HeadLimits::default(), stub).await;
        drop(server);
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        (outcome, String::from_utf8(written).unwrap())
    }

    fn handed_over(outcome: &Outcome) -> &[u8] {
        match outcome {
            Outcome::HandOver(read) => read,
            Outcome::Closed => panic!("closed, not handed over"),
        }
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order_until_one_with_a_body() {
        let stub = Stub::default();
        let post = "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let input =
            format!("GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n{post}");
        let (outcome, written) = exchange(&stub, input.as_bytes()).await;
        assert_eq!(handed_over(&outcome), post.as_bytes());
        assert_eq!(*stub.seen.lock().unwrap(), ["GET /a", "HEAD /b"]);
        assert_eq!(stub.busy.load(Ordering::SeqCst), 0);
        let (first, second) = written.split_once("\r\n\r\n/a").unwrap();
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{written}");
        assert!(first.contains("\r\ncontent-length: 2\r\n"), "{written}");
        assert!(first.contains("\r\ndate: "), "{written}");
        // HEAD: the length of what a GET would get, and no body.
        assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{written}");
        assert!(second.contains("content-length: 2\r\n"), "{written}");
        assert!(second.ends_with("\r\n\r\n"), "{written}");
    }

    #[tokio::test]
    async fn heads_hyper_answers_are_handed_over_as_they_came() {
        for head in [
            "GET / HTTP/1.0\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            let stub = Stub::default();
            let input = format!("GET /first HTTP/1.1\r\nHost: x\r\n\r\n{head}");
            let (outcome, written) = exchange(&stub, input.as_bytes()).await;
            assert_eq!(handed_over(&outcome), head.as_bytes(), "{head}");
            assert_eq!(*stub.seen.lock().unwrap(), ["GET /first"], "{head}");
            assert!(written.ends_with("/first"), "{written}");
        }
    }

    #[tokio::test]
    async fn refused_heads_get_their_status_and_the_connection_ends() {
        let folded = "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n";
        let too_large = format!("GET /{} HTTP/1.1\r\n", "a".repeat(40 * 1024));
        for (input, status) in [(folded.to_owned(), "400"), (too_large, "431")] {
            let stub = Stub::default();
            let input = format!(
                "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n{input}GET /never HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            let (outcome, written) = exchange(&stub, input.as_bytes()).await;
            assert!(matches!(outcome, Outcome::Closed));
            assert_eq!(*stub.seen.lock().unwrap(), ["GET /ok"]);
            let refusal = written.split_once("/ok").unwrap().1;
            assert!(
                refusal.starts_with(&format!("HTTP/1.1 {status} ")),
                "{written}"
            );
            assert!(refusal.contains("\r\nconnection: close\r\n"), "{written}");
            assert!(refusal.contains("bad request: "), "{written}");
        }
    }

    #[tokio::test]
    async fn a_client_that_asks_to_close_gets_close_and_the_end() {
        let stub = Stub::default();
        let input = "GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let (outcome, written) = exchange(&stub, input.as_bytes()).await;
        assert!(matches!(outcome, Outcome::Closed));
        assert_eq!(*stub.seen.lock().unwrap(), ["GET /a"]);
        assert!(written.contains("\r\nconnection: close\r\n"), "{written}");
        assert!(written.ends_with("/a"), "{written}");

        // Draining: the response in flight is the last, and says so.
        let stub = Stub::default();
        stub.stopping.store(true, Ordering::SeqCst);
        let (outcome, written) = exchange(&stub, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(matches!(outcome, Outcome::Closed));
        assert!(written.contains("\r\nconnection: close\r\n"), "{written}");

        // The response asks to close.
        let stub = Stub::default();
        let input = "GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let (outcome, written) = exchange(&stub, input.as_bytes()).await;
        assert!(matches!(outcome, Outcome::Closed));
        assert_eq!(written.matches("connection: close").count(), 1, "{written}");
        assert!(written.ends_with("bye\n"), "{written}");
    }

    #[tokio::test]
    async fn unknown_lengths_are_chunked_and_trailers_go_to_who_asked() {
        for (te, trailer) in [("", ""), ("TE: trailers\r\n", "x-sum: 5\r\n")] {
            let stub = Stub::default();
            let input = format!("GET /chunked HTTP/1.1\r\nHost: x\r\n{te}\r\n");
            let (_, written) = exchange(&stub, input.as_bytes()).await;
            assert!(
                written.contains("\r\ntransfer-encoding: chunked\r\n"),
                "{written}"
            );
            assert!(written.contains("\r\ntrailer: x-sum\r\n"), "{written}");
            let body = written.split_once("\r\n\r\n").unwrap().1;
            assert_eq!(body, format!("3\r\nhel\r\n2\r\nlo\r\n0\r\n{trailer}\r\n"));
        }
    }

    #[tokio::test]
    async fn a_body_that_breaks_its_length_ends_the_connection() {
        for (path, body) in [("/long", "12345"), ("/short", "12")] {
            let stub = Stub::default();
            let input =
                format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
            let (outcome, written) = exchange(&stub, input.as_bytes()).await;
            assert!(matches!(outcome, Outcome::Closed), "{path}");
            assert_eq!(stub.seen.lock().unwrap().len(), 1, "{path}");
            assert!(written.contains("\r\ncontent-length: 5\r\n"), "{written}");
            assert_eq!(written.split_once("\r\n\r\n").unwrap().1, body);
        }
    }

    #[tokio::test]
    async fn reason_phrases_pass() {
        let stub = Stub::default();
        let (_, written) = exchange(&stub, b"GET /reason HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(written.starts_with("HTTP/1.1 200 Fine\r\n"), "{written}");
    }

    /// The head `encode_head` writes for a response with these fields, and its framing.
    fn head_of(
        status: u16,
        version: Version,
        fields: &[(&str, &str)],
        length: BodyLength,
        asked: Asked,
    ) -> Result<(String, Encoder, bool), ()> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        *response.version_mut() = version;
        for (name, value) in fields {
            response.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let (parts, ()) = response.into_parts();
        let mut out = Vec::new();
        let (encoder, keep_alive, _) = encode_head(&mut out, &parts, length, &asked)?;
        let text = String::from_utf8(out).unwrap();
        // The date changes; the rest does not.
        let text = text
            .lines()
            .filter(|line| !line.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("|");
        Ok((text, encoder, keep_alive))
    }

    #[test]
    fn raw_fields_come_first_and_say_whether_a_date_came() {
        let encode = |lines: &[u8], date: bool| {
            let mut response = Response::new(());
            response.extensions_mut().insert(RawFields {
                lines: lines.to_vec(),
                date,
            });
            // What the proxy adds: a sticky cookie.
            response
                .headers_mut()
                .append(http::header::SET_COOKIE, HeaderValue::from_static("s=1"));
            let (parts, ()) = response.into_parts();
            let asked = Asked {
                head: false,
                close: true,
                trailers: false,
            };
            let mut out = Vec::new();
            let (encoder, keep_alive, _) =
                encode_head(&mut out, &parts, BodyLength::Known(5), &asked).unwrap();
            assert_eq!((encoder, keep_alive), (Encoder::Length(5), false));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            encode(
                b"Server: nginx\r\nDate: Sun, 06 Dec 2026 18:00:00 GMT\r\n",
                true
            ),
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 06 Dec 2026 18:00:00 GMT\r\n\
             set-cookie: s=1\r\nconnection: close\r\ncontent-length: 5\r\n\r\n"
        );
        let without = encode(b"Server: nginx\r\n", false);
        let (before, date) = without.split_once("date: ").unwrap();
        assert_eq!(
            before,
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nset-cookie: s=1\r\nconnection: close\r\n\
             content-length: 5\r\n"
        );
        assert!(date.ends_with(" GMT\r\n\r\n"), "{date:?}");
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn response_heads_are_framed_as_rfc_9112_says() {
        use BodyLength::{Empty, Known, Unknown};
        let get = Asked {
            head: false,
            close: false,
            trailers: false,
        };
        let head = Asked { head: true, ..get };
        let close = Asked { close: true, ..get };
        let v11 = Version::HTTP_11;
        let cases: Vec<(
            u16,
            Version,
            Vec<(&str, &str)>,
            BodyLength,
            Asked,
            &str,
            Encoder,
            bool,
        )> = vec![
            (
                200,
                v11,
                vec![],
                Known(5),
                get,
                "HTTP/1.1 200 OK|content-length: 5|",
                Encoder::Length(5),
                true,
            ),
            (
                200,
                v11,
                vec![],
                Unknown,
                get,
                "HTTP/1.1 200 OK|transfer-encoding: chunked|",
                Encoder::Chunked,
                true,
            ),
            (
                200,
                v11,
                vec![],
                Empty,
                get,
                "HTTP/1.1 200 OK|content-length: 0|",
                Encoder::Length(0),
                true,
            ),
            (
                200,
                v11,
                vec![("content-length", "7")],
                Unknown,
                get,
                "HTTP/1.1 200 OK|content-length: 7|",
                Encoder::Length(7),
                true,
            ),
            // A length wins over Transfer-Encoding.
            (
                200,
                v11,
                vec![("transfer-encoding", "chunked"), ("content-length", "7")],
                Unknown,
                get,
                "HTTP/1.1 200 OK|content-length: 7|",
                Encoder::Length(7),
                true,
            ),
            (
                200,
                v11,
                vec![("transfer-encoding", "gzip")],
                Unknown,
                get,
                "HTTP/1.1 200 OK|transfer-encoding: gzip, chunked|",
                Encoder::Chunked,
                true,
            ),
            (
                204,
                v11,
                vec![("content-length", "0")],
                Empty,
                get,
                "HTTP/1.1 204 No Content|",
                Encoder::Length(0),
                true,
            ),
            (
                304,
                v11,
                vec![("etag", "\"x\"")],
                Empty,
                get,
                "HTTP/1.1 304 Not Modified|etag: \"x\"|",
                Encoder::Length(0),
                true,
            ),
            (
                200,
                v11,
                vec![("content-length", "42")],
                Empty,
                head,
                "HTTP/1.1 200 OK|content-length: 42|",
                Encoder::Length(0),
                true,
            ),
            (
                200,
                v11,
                vec![],
                Empty,
                head,
                "HTTP/1.1 200 OK|",
                Encoder::Length(0),
                true,
            ),
            (
                200,
                Version::HTTP_10,
                vec![],
                Unknown,
                get,
                "HTTP/1.0 200 OK|",
                Encoder::CloseDelimited,
                false,
            ),
            (
                404,
                v11,
                vec![("connection", "close")],
                Known(1),
                get,
                "HTTP/1.1 404 Not Found|connection: close|content-length: 1|",
                Encoder::Length(1),
                false,
            ),
            (
                200,
                v11,
                vec![],
                Known(1),
                close,
                "HTTP/1.1 200 OK|connection: close|content-length: 1|",
                Encoder::Length(1),
                false,
            ),
            (
                299,
                v11,
                vec![],
                Known(1),
                get,
                "HTTP/1.1 299 <none>|content-length: 1|",
                Encoder::Length(1),
                true,
            ),
        ];
        for (status, version, fields, length, asked, text, encoder, keep_alive) in cases {
            let got = head_of(status, version, &fields, length, asked).unwrap();
            assert_eq!(
                got,
                (text.to_owned(), encoder, keep_alive),
                "{status} {fields:?} {length:?}"
            );
        }
        // Two lengths that disagree, or one that is not a number, when the body does not say.
        for fields in [
            vec![("content-length", "5"), ("content-length", "6")],
            vec![("content-length", "5x")],
        ] {
            assert!(
                head_of(200, v11, &fields, Unknown, get).is_err(),
                "{fields:?}"
            );
        }
    }

    /// Mangled runs of requests (bytes replaced, inserted, removed, the input cut short):
    /// no panic, every request the handler saw answered once and in order (one response
    /// head each, its body as long as it says), at most one refusal after them, and what is
    /// handed to hyper is the unread end of the input, never more or less.
    #[tokio::test]
    async fn mangled_requests_are_answered_refused_or_handed_over_whole() {
        const SEEDS: [&str; 4] = [
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            "HEAD /b?q=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nTE: trailers\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
        ];
        const BYTES: [u8; 12] = [
            b'\r', b'\n', 0, b' ', b'\t', b':', b'a', 0x80, 0xff, b'/', b',', b'\x7f',
        ];
        // xorshift64: the same runs every time.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % below as u64).unwrap()
        };
        // Runs that ended handed over, with a refusal, and requests answered.
        let (mut handed, mut refused, mut requests) = (0, 0, 0);
        for _ in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..=next(3) {
                input.extend_from_slice(SEEDS[next(SEEDS.len())].as_bytes());
            }
            for _ in 0..=next(4) {
                if input.is_empty() {
                    break;
                }
                let at = next(input.len());
                match next(4) {
                    0 => input[at] = BYTES[next(BYTES.len())],
                    1 => input.insert(at, BYTES[next(BYTES.len())]),
                    2 => {
                        input.remove(at);
                    }
                    _ => input.truncate(at.max(1)),
                }
            }
            let stub = Stub::default();
            let (mut client, mut server) = tokio::io::duplex(1 << 20);
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            let outcome = serve(&mut server, &HeadLimits::default(), &stub).await;
            drop(server);
            let mut written = Vec::new();
            client.read_to_end(&mut written).await.unwrap();
            let shown = String::from_utf8_lossy(&input).into_owned();
            if let Outcome::HandOver(rest) = &outcome {
                assert!(input.ends_with(rest), "{shown:?}");
                assert!(!rest.is_empty(), "{shown:?}");
            }
            assert_eq!(stub.busy.load(Ordering::SeqCst), 0, "{shown:?}");
            // The responses, one per request seen, then at most one refusal.
            let seen = stub.seen.lock().unwrap().clone();
            let mut rest = &written[..];
            let mut answered = 0;
            while !rest.is_empty() {
                let mut fields = [httparse::EMPTY_HEADER; 16];
                let mut response = httparse::Response::new(&mut fields);
                let Ok(httparse::Status::Complete(len)) = response.parse(rest) else {
                    panic!("not a response head after {answered}: {shown:?}");
                };
                let length: usize = response
                    .headers
                    .iter()
                    .find(|f| f.name == "content-length")
                    .map_or(0, |f| {
                        std::str::from_utf8(f.value).unwrap().parse().unwrap()
                    });
                let code = response.code.unwrap();
                let head = seen.get(answered).is_some_and(|s| s.starts_with("HEAD "));
                let body = if head { 0 } else { length };
                if answered < seen.len() {
                    assert_eq!(code, 200, "{shown:?}");
                } else {
                    assert!((400..500).contains(&code), "{code} for {shown:?}");
                    assert!(matches!(outcome, Outcome::Closed), "{shown:?}");
                }
                rest = &rest[len + body..];
                answered += 1;
            }
            assert!(
                answered == seen.len() || answered == seen.len() + 1,
                "{answered} responses for {} requests: {shown:?}",
                seen.len()
            );
            handed += usize::from(matches!(outcome, Outcome::HandOver(_)));
            refused += answered - seen.len();
            requests += seen.len();
        }
        println!(
            "3000 runs: {handed} handed over, {refused} refused, {requests} requests answered"
        );
        // Every kind of ending happened.
        assert!(handed > 100 && refused > 100 && requests > 500);
    }

    #[test]
    fn chunk_sizes_are_lower_case_hex() {
        let mut buf = [0; 16];
        assert_eq!(hex(0, &mut buf), b"0");
        assert_eq!(hex(0x1a2b, &mut buf), b"1a2b");
        assert_eq!(hex(usize::MAX, &mut buf), b"ffffffffffffffff");
    }
}
