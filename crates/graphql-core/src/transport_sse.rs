//! GraphQL over Server-Sent Events (the `graphql-sse` protocol, both modes), sans IO: which
//! kind of request an HTTP request is ([`sse_request`]), the events to write
//! ([`SseEvent`]), and the reservations of the "single connection" mode
//! ([`SseStreams`]: bounded, expiring). The server owns the sockets, the tasks and the
//! clock.
//!
//! - **Distinct connections**: a `GET` or `POST` with `Accept: text/event-stream` is one
//!   operation; its results (a query's one result, a subscription's events, the payloads of
//!   `@defer`/`@stream`) are `next` events, then one `complete` event.
//! - **Single connection**: `PUT` reserves a stream and answers `201` with a token
//!   (`text/plain`); a `GET` with `Accept: text/event-stream` and the token (header
//!   [`EVENT_STREAM_TOKEN`] or query parameter `token`) opens it; operations are `POST`ed
//!   with the token and `extensions.operationId` and answered `202`, their results come on
//!   the stream as `next`/`complete` events carrying the id; `DELETE ?operationId=` stops one.
//!
//! ```
//! use std::time::Instant;
//! use graphql_core::{SseEvent, SseLimits, SseRequest, SseStreams, sse_request};
//!
//! let (parts, ()) = http::Request::put("/graphql").body(()).unwrap().into_parts();
//! assert_eq!(sse_request(&parts), Some(Ok(SseRequest::Reserve { token: None })));
//!
//! // The per-stream value is the server's own (a channel to the open stream, say).
//! let mut streams: SseStreams<&str, ()> = SseStreams::new(SseLimits::default());
//! let now = Instant::now();
//! let token = streams.reserve([7; 16], None, "stream", now).unwrap();
//! streams.open(&token, now).unwrap();
//! streams.start_operation(&token, "op1", (), now).unwrap();
//! let event = SseEvent::Next { id: Some("op1"), payload: r#"{"data":{"a":1}}"# };
//! assert_eq!(
//!     event.encode(),
//!     b"event: next\ndata: {\"id\":\"op1\",\"payload\":{\"data\":{\"a\":1}}}\n\n".to_vec()
//! );
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::header::ACCEPT;
use http::{Method, StatusCode, request};
use serde_json::Value;

use crate::execution::Request;
use crate::over_http::{HttpRejection, ResponseFormat, read_request};

/// The `Content-Type` of an event stream.
pub const TEXT_EVENT_STREAM: &str = "text/event-stream; charset=utf-8";

/// The header that carries a single-connection stream's token (the query parameter `token`
/// may carry it instead, for `EventSource`, which cannot set headers).
pub const EVENT_STREAM_TOKEN: &str = "x-graphql-event-stream-token";

/// Longest token accepted from a client; longer ones are unknown tokens.
const MAX_TOKEN: usize = 128;
/// Longest operation id accepted.
const MAX_OPERATION_ID: usize = 128;

/// One event of the stream, in the `text/event-stream` format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseEvent<'a> {
    /// A result (`payload`, JSON text: a response or an incremental payload); `id` is the
    /// operation's id in the single-connection mode, `None` in the distinct mode.
    Next {
        /// The operation id (single connection mode).
        id: Option<&'a str>,
        /// The result as JSON text.
        payload: &'a str,
    },
    /// The operation has no more results.
    Complete {
        /// The operation id (single connection mode).
        id: Option<&'a str>,
    },
    /// A comment line that keeps proxies from closing an idle stream.
    KeepAlive,
}

impl SseEvent<'_> {
    /// The event's bytes, blank line included. `data` is split at line breaks into
    /// several `data:` lines (the client joins them with `\n`, which JSON reads as
    /// whitespace); `complete` without an id has an empty `data:` line, without which an
    /// `EventSource` would not dispatch it (WHATWG HTML 9.2.6).
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            SseEvent::KeepAlive => b":\n\n".to_vec(),
            SseEvent::Next { id, payload } => {
                let data = match id {
                    Some(id) => format!(r#"{{"id":{},"payload":{payload}}}"#, json_string(id)),
                    None => payload.to_owned(),
                };
                event("next", &data)
            }
            SseEvent::Complete { id } => {
                let data = match id {
                    Some(id) => format!(r#"{{"id":{}}}"#, json_string(id)),
                    None => String::new(),
                };
                event("complete", &data)
            }
        }
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn event(name: &str, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + name.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    // `split` yields at least one item, so an empty `data` gives one empty `data:` line.
    for line in data.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// What kind of graphql-sse request an HTTP request is; see [`sse_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseRequest {
    /// `PUT`: reserve a single-connection stream ([`SseStreams::reserve`]). `token` is the
    /// one the client already sent, if any: a registered one is a conflict.
    Reserve {
        /// The token the request carried.
        token: Option<String>,
    },
    /// `Accept: text/event-stream` with a token: open the reserved stream
    /// ([`SseStreams::open`]).
    OpenStream {
        /// The stream's token.
        token: String,
    },
    /// `Accept: text/event-stream` without a token: one operation on its own stream; read it
    /// with [`read_sse_request`].
    Distinct,
    /// `GET`/`POST` with a token: an operation whose results go to the token's stream; read
    /// it with [`read_sse_request`], its id with [`operation_id`].
    Operation {
        /// The stream's token.
        token: String,
    },
    /// `DELETE` with a token and `?operationId=`: stop an operation
    /// ([`SseStreams::stop_operation`]).
    Stop {
        /// The stream's token.
        token: String,
        /// The operation to stop.
        operation_id: String,
    },
}

fn rejection(status: StatusCode, message: impl Into<String>) -> HttpRejection {
    HttpRejection {
        status,
        message: message.into(),
        allow: None,
        format: ResponseFormat::Json,
    }
}

/// Whether the request's `Accept` names `text/event-stream` with a non-zero quality.
pub fn accepts_event_stream(parts: &request::Parts) -> bool {
    parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut params = item.split(';');
            let media = params.next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("text/event-stream")
                && !params.any(|p| {
                    let p = p.trim().replace(' ', "");
                    p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
                })
        })
}

fn query_param(parts: &request::Parts, name: &str) -> Option<String> {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The stream token of a request: the [`EVENT_STREAM_TOKEN`] header, else the `token`
/// query parameter. An empty one counts as none.
pub fn event_stream_token(parts: &request::Parts) -> Option<String> {
    let header = parts
        .headers
        .get(EVENT_STREAM_TOKEN)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    header
        .or_else(|| query_param(parts, "token"))
        .filter(|t| !t.is_empty())
}

/// Classifies an HTTP request on the GraphQL endpoint: `None` for a plain GraphQL over HTTP
/// request (no token, no `Accept: text/event-stream`, `GET` or `POST`), which the server
/// answers as usual.
///
/// # Errors
///
/// `DELETE` without a token (404, as graphql-sse answers: there is no stream to stop an
/// operation of) or without `operationId` (400).
pub fn sse_request(parts: &request::Parts) -> Option<Result<SseRequest, HttpRejection>> {
    let token = event_stream_token(parts);
    if parts.method == Method::PUT {
        return Some(Ok(SseRequest::Reserve { token }));
    }
    if parts.method == Method::DELETE {
        let Some(token) = token else {
            return Some(Err(rejection(
                StatusCode::NOT_FOUND,
                "Stream not found: DELETE stops an operation of a single-connection stream \
                 and needs its token.",
            )));
        };
        return Some(
            match query_param(parts, "operationId").filter(|s| !s.is_empty()) {
                Some(operation_id) => Ok(SseRequest::Stop {
                    token,
                    operation_id,
                }),
                None => Err(rejection(
                    StatusCode::BAD_REQUEST,
                    "Operation ID is missing: DELETE needs ?operationId=.",
                )),
            },
        );
    }
    if parts.method != Method::GET && parts.method != Method::POST {
        return None;
    }
    match (accepts_event_stream(parts), token) {
        (true, Some(token)) => Some(Ok(SseRequest::OpenStream { token })),
        (true, None) => Some(Ok(SseRequest::Distinct)),
        (false, Some(token)) => Some(Ok(SseRequest::Operation { token })),
        (false, None) => None,
    }
}

/// Reads the GraphQL request of a [`SseRequest::Distinct`] or [`SseRequest::Operation`]
/// request: as [`read_http_request`](crate::read_http_request) does (`GET` query string or
/// `POST` JSON body, mutations refused over `GET`), without looking at `Accept`, and
/// subscriptions allowed. Errors found when running it (a document that does not parse or
/// validate) are results, sent as events as the protocol asks.
///
/// # Errors
///
/// The request is not a GraphQL request (405, 413, 415, 400), with an `application/json`
/// error body.
pub fn read_sse_request(
    parts: &request::Parts,
    body: &[u8],
    max_body: usize,
) -> Result<Request, HttpRejection> {
    read_request(parts, body, max_body, ResponseFormat::Json, true)
}

/// The `extensions.operationId` of a single-connection operation (a string; a number is
/// taken as its decimal text, as graphql-sse does).
///
/// # Errors
///
/// Missing or empty (400), not a string or number, or longer than 128 characters (400).
pub fn operation_id(request: &Request) -> Result<String, HttpRejection> {
    let id = match request
        .extensions
        .as_ref()
        .and_then(|e| e.get("operationId"))
    {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(rejection(
                StatusCode::BAD_REQUEST,
                "extensions.operationId must be a string.",
            ));
        }
    };
    if id.is_empty() {
        return Err(rejection(
            StatusCode::BAD_REQUEST,
            "Operation ID is missing: send it as extensions.operationId.",
        ));
    }
    if id.len() > MAX_OPERATION_ID {
        return Err(rejection(
            StatusCode::BAD_REQUEST,
            format!("extensions.operationId is longer than {MAX_OPERATION_ID} bytes."),
        ));
    }
    Ok(id)
}

/// Bounds of the single-connection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLimits {
    /// Most streams reserved or open at once, over all clients (default 1000); a `PUT`
    /// past it gets 503.
    pub max_streams: usize,
    /// Most operations running at once on one stream (default 100); a `POST` past it gets
    /// 429.
    pub max_operations: usize,
    /// How long a reservation waits for its stream to be opened (default 30 s); then it is
    /// dropped with its operations.
    pub reservation_ttl: Duration,
}

impl Default for SseLimits {
    fn default() -> Self {
        SseLimits {
            max_streams: 1000,
            max_operations: 100,
            reservation_ttl: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Reservation<S, O> {
    stream: S,
    /// Until when an unopened reservation is kept; `None` once its stream is open.
    expires: Option<Instant>,
    operations: HashMap<String, O>,
}

/// What a dropped reservation leaves to its owner: its stream value and the operations to
/// stop.
pub type SseClosed<S, O> = (S, Vec<O>);

/// The streams of the single-connection mode: each reserved by a `PUT`, opened at most once
/// by an event-stream request, and holding the operations whose results it carries. `S` is
/// the server's value for a stream (say, the sending end of a channel to it), `O` its value
/// for an operation (say, a handle that stops its task); both come back when the stream or
/// the operation ends, so nothing outlives it.
///
/// Bounded: at most [`SseLimits::max_streams`] streams, [`SseLimits::max_operations`]
/// operations each, and a reservation not opened within [`SseLimits::reservation_ttl`] is
/// dropped ([`SseStreams::expire`], [`SseStreams::poll_timeout`]).
#[derive(Debug)]
pub struct SseStreams<S, O> {
    limits: SseLimits,
    streams: HashMap<String, Reservation<S, O>>,
}

fn not_found() -> HttpRejection {
    rejection(StatusCode::NOT_FOUND, "Stream not found.")
}

fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN
}

impl<S, O> SseStreams<S, O> {
    /// No streams yet.
    pub fn new(limits: SseLimits) -> Self {
        SseStreams {
            limits,
            streams: HashMap::new(),
        }
    }

    /// How many streams are reserved or open.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is reserved or open.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// How many operations the stream `token` holds (0 for an unknown token).
    pub fn operations(&self, token: &str) -> usize {
        self.streams.get(token).map_or(0, |r| r.operations.len())
    }

    fn live(&mut self, token: &str, now: Instant) -> Option<&mut Reservation<S, O>> {
        if !is_valid_token(token) {
            return None;
        }
        self.streams
            .get_mut(token)
            .filter(|r| r.expires.is_none_or(|at| now < at))
    }

    /// Reserves a stream (`PUT`): the token is `random` (16 bytes from a cryptographic
    /// source: the token is all that gives access to the stream) in hex; answer it with
    /// 201 and `text/plain`. `sent` is the token the request already carried, if any.
    /// Expired reservations are dropped first: their values are lost here, so call
    /// [`SseStreams::expire`] on time to stop their operations.
    ///
    /// # Errors
    ///
    /// `sent` names a registered stream (409), or [`SseLimits::max_streams`] are reserved
    /// (503).
    pub fn reserve(
        &mut self,
        random: [u8; 16],
        sent: Option<&str>,
        stream: S,
        now: Instant,
    ) -> Result<String, HttpRejection> {
        if let Some(sent) = sent
            && self.live(sent, now).is_some()
        {
            return Err(rejection(
                StatusCode::CONFLICT,
                "Stream already registered.",
            ));
        }
        drop(self.expire(now));
        if self.streams.len() >= self.limits.max_streams {
            return Err(rejection(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many event streams are reserved; try again later.",
            ));
        }
        let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
        if self.streams.contains_key(&token) {
            return Err(rejection(
                StatusCode::CONFLICT,
                "Stream already registered.",
            ));
        }
        self.streams.insert(
            token.clone(),
            Reservation {
                stream,
                expires: Some(now + self.limits.reservation_ttl),
                operations: HashMap::new(),
            },
        );
        Ok(token)
    }

    /// Opens the reserved stream `token` (an event-stream request): it no longer expires,
    /// and lives until [`SseStreams::close`]. Gives the stream's value, to take what the
    /// response body needs from it.
    ///
    /// # Errors
    ///
    /// Unknown or expired token (404), or the stream is already open (409: only one
    /// connection may fulfil a reservation).
    pub fn open(&mut self, token: &str, now: Instant) -> Result<&mut S, HttpRejection> {
        let reservation = self.live(token, now).ok_or_else(not_found)?;
        if reservation.expires.is_none() {
            return Err(rejection(StatusCode::CONFLICT, "Stream already open."));
        }
        reservation.expires = None;
        Ok(&mut reservation.stream)
    }

    /// The stream's connection ended: the stream is dropped, and its value and operations
    /// (to stop) are handed back. `None` when it was not there.
    pub fn close(&mut self, token: &str) -> Option<SseClosed<S, O>> {
        self.streams
            .remove(token)
            .map(|r| (r.stream, r.operations.into_values().collect()))
    }

    /// Registers an operation of the stream `token` (a `POST` with the token, answered
    /// 202 when this succeeds). The stream may be reserved and not yet open: its results
    /// wait for it. Gives the stream's value, to send the results with.
    ///
    /// # Errors
    ///
    /// Unknown or expired token (404), an empty `id` (400), an operation with this id
    /// already running on the stream (409), or [`SseLimits::max_operations`] running (429).
    pub fn start_operation(
        &mut self,
        token: &str,
        id: &str,
        operation: O,
        now: Instant,
    ) -> Result<&S, HttpRejection> {
        let max = self.limits.max_operations;
        let reservation = self.live(token, now).ok_or_else(not_found)?;
        if id.is_empty() {
            return Err(rejection(
                StatusCode::BAD_REQUEST,
                "Operation ID is missing.",
            ));
        }
        if reservation.operations.contains_key(id) {
            return Err(rejection(
                StatusCode::CONFLICT,
                "Operation with ID already exists.",
            ));
        }
        if reservation.operations.len() >= max {
            return Err(rejection(
                StatusCode::TOO_MANY_REQUESTS,
                format!("This stream already runs {max} operations."),
            ));
        }
        reservation.operations.insert(id.to_owned(), operation);
        Ok(&reservation.stream)
    }

    /// The operation ended by itself (its `complete` event is sent): forgets it and gives
    /// its value back.
    pub fn finish_operation(&mut self, token: &str, id: &str) -> Option<O> {
        self.streams.get_mut(token)?.operations.remove(id)
    }

    /// Stops an operation at the client's request (`DELETE`, answered 200 when this
    /// succeeds): gives its value back, to stop it with. No `complete` event follows.
    ///
    /// # Errors
    ///
    /// Unknown or expired token (404), or no operation `id` on the stream (404: never
    /// started, already completed, or already stopped).
    pub fn stop_operation(
        &mut self,
        token: &str,
        id: &str,
        now: Instant,
    ) -> Result<O, HttpRejection> {
        let reservation = self.live(token, now).ok_or_else(not_found)?;
        reservation
            .operations
            .remove(id)
            .ok_or_else(|| rejection(StatusCode::NOT_FOUND, "Operation not found."))
    }

    /// Drops the reservations whose stream was not opened in time, handing back their
    /// values and operations (to stop).
    pub fn expire(&mut self, now: Instant) -> Vec<SseClosed<S, O>> {
        let expired: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, r)| r.expires.is_some_and(|at| at <= now))
            .map(|(t, _)| t.clone())
            .collect();
        expired.iter().filter_map(|t| self.close(t)).collect()
    }

    /// When the next reservation expires: call [`SseStreams::expire`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.streams.values().filter_map(|r| r.expires).min()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn events_are_encoded_per_the_event_stream_format() {
        assert_eq!(SseEvent::KeepAlive.encode(), b":\n\n");
        assert_eq!(
            SseEvent::Next {
                id: None,
                payload: "{\"data\":\n{}}"
            }
            .encode(),
            b"event: next\ndata: {\"data\":\ndata: {}}\n\n"
        );
        assert_eq!(
            SseEvent::Complete { id: None }.encode(),
            b"event: complete\ndata: \n\n"
        );
        assert_eq!(
            SseEvent::Complete { id: Some("a\"b") }.encode(),
            b"event: complete\ndata: {\"id\":\"a\\\"b\"}\n\n"
        );
    }
}
