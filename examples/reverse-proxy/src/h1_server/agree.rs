//! The lean server's request path held against an independent reading of the same bytes,
//! for the unit tests and the fuzz target (`crate::fuzzing`).
//!
//! A client sends some bytes, in reads of a chosen size, and ends its side. The server
//! answers each request it takes with its target as the body. The check then reads the
//! same bytes again, head by head, with `proxy_core::check_request_head` and `httparse`,
//! and asks:
//! - was every answered request one the lean path may take, and did the handler get the
//!   method, target and fields that the client sent, in the same order?
//! - were the bytes handed to hyper exactly the rest of what was read, starting with a
//!   head that passes the checks? (Nothing may be lost or changed on the way.)
//! - did the connection close only where it should: at the input's end, after a refusal,
//!   or after `Connection: close`?
//! - did the client get one well-framed response per request, plus the refusal if there
//!   was one?

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use http::{Request, Response};
use proxy_core::{Framing, HeadLimits, SmugglingError, check_request_head};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Handler, Outcome, has_token, serve};
use crate::ProxyBody;

/// A client that sends `input` in reads of at most `chunk` bytes, then ends its side, and
/// keeps what it is sent.
struct Client<'a> {
    input: &'a [u8],
    chunk: usize,
    read: usize,
    written: Vec<u8>,
}

impl AsyncRead for Client<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let rest = this.input.get(this.read..).unwrap_or_default();
        let n = rest.len().min(this.chunk).min(buf.remaining());
        buf.put_slice(rest.get(..n).unwrap_or_default());
        this.read += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A request head in comparable form: method, target, and fields (lower-case names) in the
/// order a `HeaderMap` walks them (by name, in order of first appearance).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    fields: Vec<(String, Vec<u8>)>,
}

/// Answers every request with its target; keeps what it saw.
#[derive(Default)]
struct Recorder {
    seen: RefCell<Vec<Seen>>,
    busy: Cell<i64>,
    refused: Cell<Option<SmugglingError>>,
}

impl Handler for Recorder {
    async fn respond(&self, request: Request<ProxyBody>) -> Response<ProxyBody> {
        let target = request.uri().to_string();
        self.seen.borrow_mut().push(Seen {
            method: request.method().as_str().to_owned(),
            target: target.clone(),
            fields: request
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect(),
        });
        Response::new(crate::full(target))
    }
    fn refuse(&self, error: &SmugglingError) -> Response<ProxyBody> {
        self.refused.set(Some(error.clone()));
        crate::plain(error.status(), &format!("bad request: {error}"), true)
    }
    fn in_progress(&self, busy: bool) {
        self.busy.set(self.busy.get() + if busy { 1 } else { -1 });
    }
    fn stopping(&self) -> bool {
        false
    }
}

/// Serves `bytes` and checks the answers (see the module's documentation). The first
/// byte picks the size of the client's reads (1 to 63 bytes, or all at once) and the
/// limits (the defaults, or 512 bytes and 8 fields); the rest is what the client sends.
/// `Ok` holds how many requests were answered; `Err` says what went wrong.
pub(crate) fn requests_agree(bytes: &[u8]) -> Result<usize, String> {
    let Some((&first, input)) = bytes.split_first() else {
        return Ok(0);
    };
    let chunk = match first >> 2 {
        63 => usize::MAX,
        n => usize::from(n) + 1,
    };
    let defaults = HeadLimits::default();
    let limits = HeadLimits {
        max_head_bytes: if first & 1 == 0 {
            defaults.max_head_bytes
        } else {
            512
        },
        max_headers: if first & 2 == 0 {
            defaults.max_headers
        } else {
            8
        },
    };
    let recorder = Recorder::default();
    let mut client = Client {
        input,
        chunk,
        read: 0,
        written: Vec::new(),
    };
    let outcome = {
        let mut serving = pin!(serve(&mut client, &limits, &recorder));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match serving.as_mut().poll(&mut cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Err("the server waited on a client that never waits".into()),
        }
    };
    if recorder.busy.get() != 0 {
        return Err(format!(
            "in_progress(true) and in_progress(false) differ by {}",
            recorder.busy.get()
        ));
    }
    let read = input.get(..client.read).ok_or("read past the input")?;
    let seen = recorder.seen.into_inner();
    let refused = recorder.refused.take();
    let shown = |bytes: &[u8]| format!("{:?}", String::from_utf8_lossy(bytes));

    // Each answered request, read again.
    let mut at = 0;
    for (i, seen) in seen.iter().enumerate() {
        let rest = read.get(at..).unwrap_or_default();
        let checked = check_request_head(rest, &limits)
            .map_err(|e| format!("request {i} was answered, but its head is refused ({e})"))?;
        if checked.framing != Framing::None || checked.upgrade || checked.http10 {
            return Err(format!(
                "request {i} was answered, but it is hyper's to answer"
            ));
        }
        let head = rest.get(..checked.head_len).unwrap_or_default();
        let expected = independent(head).ok_or_else(|| {
            format!(
                "request {i} was answered, but {} does not parse",
                shown(head)
            )
        })?;
        if expected != *seen {
            return Err(format!(
                "request {i}, {}: the handler saw {seen:?}, not {expected:?}",
                shown(head)
            ));
        }
        at += checked.head_len;
    }
    let rest = read.get(at..).unwrap_or_default();

    match (&outcome, &refused) {
        (Outcome::HandOver(handed), None) => {
            if handed[..] != *rest {
                return Err(format!(
                    "handed {} to hyper, but {} was left",
                    shown(handed),
                    shown(rest)
                ));
            }
            check_request_head(handed, &limits)
                .map_err(|e| format!("handed a head to hyper that the checks refuse ({e})"))?;
        }
        (Outcome::HandOver(_), Some(_)) => {
            return Err("handed a connection to hyper after refusing a head".into());
        }
        (Outcome::Closed, Some(error)) => match check_request_head(rest, &limits) {
            Err(SmugglingError::Incomplete) if rest.len() <= limits.max_head_bytes => {
                return Err(format!(
                    "refused an unfinished head ({error}): {}",
                    shown(rest)
                ));
            }
            Err(_) => {}
            Ok(_) => {
                return Err(format!(
                    "refused a head the checks pass ({error}): {}",
                    shown(rest)
                ));
            }
        },
        // The last answered request asked to close: what follows it is not read.
        (Outcome::Closed, None) if seen.last().is_some_and(asked_close) => {}
        (Outcome::Closed, None) => {
            if client.read != input.len() {
                return Err(format!(
                    "closed before the input's end, after {} of {} bytes",
                    client.read,
                    input.len()
                ));
            }
            if !rest.is_empty()
                && !matches!(
                    check_request_head(rest, &limits),
                    Err(SmugglingError::Incomplete)
                )
            {
                return Err(format!("closed on a whole head: {}", shown(rest)));
            }
        }
    }

    // One response per answered request, each framed by its Content-Length, then the
    // refusal's, and nothing else.
    let mut out = client.written.as_slice();
    for (i, seen) in seen.iter().enumerate() {
        let (status, length, close, head_len) = response_head(out)
            .ok_or_else(|| format!("response {i} does not parse: {}", shown(out)))?;
        out = out.get(head_len..).unwrap_or_default();
        if status != 200 {
            return Err(format!("response {i} has status {status}"));
        }
        if seen.method != "HEAD" {
            if length != Some(seen.target.len()) {
                return Err(format!("response {i} says its length is {length:?}"));
            }
            let body = out.get(..seen.target.len()).unwrap_or_default();
            if body != seen.target.as_bytes() {
                return Err(format!("response {i}'s body is {}", shown(body)));
            }
            out = out.get(seen.target.len()..).unwrap_or_default();
        }
        if close != asked_close(seen) {
            return Err(format!("response {i} says Connection: close {close}"));
        }
    }
    if let Some(error) = &refused {
        let (status, length, close, head_len) = response_head(out)
            .ok_or_else(|| format!("the refusal does not parse: {}", shown(out)))?;
        if status != error.status().as_u16() || !close {
            return Err(format!(
                "the refusal has status {status} (not {}), Connection: close {close}",
                error.status()
            ));
        }
        out = out
            .get(head_len + length.unwrap_or(0)..)
            .ok_or("the refusal's body is short")?;
    }
    if !out.is_empty() {
        return Err(format!("more was written: {}", shown(out)));
    }
    Ok(seen.len())
}

/// Whether the request said `Connection: close`.
fn asked_close(seen: &Seen) -> bool {
    seen.fields
        .iter()
        .any(|(name, value)| name == "connection" && has_token(value, b"close"))
}

/// `head` read by `httparse` alone, in the form the handler's view is kept in; `None` when
/// it is not one whole request head with a target `http` takes.
fn independent(head: &[u8]) -> Option<Seen> {
    let mut fields = [httparse::EMPTY_HEADER; 100];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        _ => return None,
    }
    let target = http::Uri::try_from(parsed.path?).ok()?.to_string();
    let mut grouped: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for field in parsed.headers.iter() {
        let name = field.name.to_ascii_lowercase();
        match grouped.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, values)) => values.push(field.value.to_vec()),
            None => grouped.push((name, vec![field.value.to_vec()])),
        }
    }
    Some(Seen {
        method: parsed.method?.to_owned(),
        target,
        fields: grouped
            .into_iter()
            .flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v)))
            .collect(),
    })
}

/// The response head at the start of `out`: its status, `Content-Length`, whether it says
/// `Connection: close`, and its length.
fn response_head(out: &[u8]) -> Option<(u16, Option<usize>, bool, usize)> {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(len)) = parsed.parse(out) else {
        return None;
    };
    let mut length = None;
    let mut close = false;
    for field in parsed.headers.iter() {
        if field.name.eq_ignore_ascii_case("content-length") {
            length = Some(std::str::from_utf8(field.value).ok()?.parse().ok()?);
        } else if field.name.eq_ignore_ascii_case("connection") {
            close |= has_token(field.value, b"close");
        }
    }
    Some((parsed.code?, length, close, len))
}
