//! A connection wrapper that checks the raw request bytes before hyper parses them.
//!
//! A connection starts on the lean path ([`crate::h1_server`]), which applies the same head
//! checks itself; it comes here, with the bytes already read ([`CheckedIo::with_read`]),
//! at the first request hyper must answer (a body, an upgrade, `Expect`, HTTP/1.0), and
//! stays for the rest of the connection.
//!
//! Each request head is held back until it is complete and has passed
//! `proxy_core::check_request_head`; then it goes to hyper, followed by exactly the body the
//! checked framing says (Content-Length bytes, or chunked framing parsed strictly here
//! too). A refused head is replaced by a synthetic request for a secret path, after which the
//! stream ends: hyper answers everything before it in order, the handler sees the secret
//! path with the recorded error and answers 400 with `Connection: close`. Nothing after an
//! ambiguous head ever reaches hyper, let alone an upstream.
//!
//! After an upgrade request the bytes that follow are held back until the answer to it is
//! written: only a `101` switches the connection to another protocol (passthrough); any
//! other status, whoever wrote it (no route, the metrics path, a 429, a 502, the cache),
//! sends the held bytes through the checks as the next request head.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use proxy_core::{
    CheckedHead, Framing, HeadLimits, SmugglingError, check_request_head, find_head_end,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The error seen on a connection, shared with its request handler.
#[derive(Debug, Default)]
pub(crate) struct Rejection(Mutex<Option<SmugglingError>>);

impl Rejection {
    pub(crate) fn take(&self) -> Option<SmugglingError> {
        self.0.lock().ok().and_then(|mut e| e.take())
    }
    fn set(&self, e: SmugglingError) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(e);
        }
    }
}

#[derive(Debug)]
enum Chunk {
    SizeLine(Vec<u8>),
    Data(u64),
    DataCr,
    DataLf,
    Trailer(Vec<u8>),
}

#[derive(Debug)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunk),
    /// After an upgrade request, until its answer is written: what arrives is held back.
    AwaitingUpgrade,
    /// After a 101 was written: the bytes are another protocol's.
    Passthrough,
    /// The synthetic request is queued; end the stream after it.
    Closed,
    Broken,
}

const MAX_CHUNK_LINE: usize = 4096;

pub(crate) struct CheckedIo<S> {
    inner: S,
    state: State,
    head: Vec<u8>,
    ready: Vec<u8>,
    ready_pos: usize,
    limits: HeadLimits,
    rejection: Arc<Rejection>,
    reject_path: Arc<str>,
    /// Reused for every read from the socket.
    scratch: Vec<u8>,
    /// Bytes read after an upgrade request, until its answer shows what they are.
    held: Vec<u8>,
    /// The first bytes of the answer to an upgrade request (its status line).
    answer: Vec<u8>,
    /// The reader waiting for the answer to an upgrade request.
    waiting: Option<Waker>,
}

impl<S> std::fmt::Debug for CheckedIo<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedIo")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<S> CheckedIo<S> {
    pub(crate) fn new(
        inner: S,
        limits: HeadLimits,
        rejection: Arc<Rejection>,
        reject_path: Arc<str>,
    ) -> Self {
        Self {
            inner,
            state: State::Head,
            head: Vec::new(),
            ready: Vec::new(),
            ready_pos: 0,
            limits,
            rejection,
            reject_path,
            scratch: vec![0; 16 * 1024],
            held: Vec::new(),
            answer: Vec::new(),
            waiting: None,
        }
    }

    /// The connection's bytes read before it came here (by the lean HTTP/1 path), checked
    /// as if read now.
    pub(crate) fn with_read(mut self, read: &[u8]) -> Self {
        // An error leaves the state Broken; the first read reports it.
        let _ = self.feed(read);
        self
    }

    /// Watches what is written while an upgrade request waits for its answer: the status
    /// line decides whether the held bytes pass through (101) or are checked as HTTP/1.
    fn observe_written<'a>(&mut self, written: impl IntoIterator<Item = &'a [u8]>) {
        if !matches!(self.state, State::AwaitingUpgrade) {
            return;
        }
        const STATUS_LINE_START: usize = b"HTTP/1.1 101".len();
        for piece in written {
            let want = STATUS_LINE_START.saturating_sub(self.answer.len());
            self.answer
                .extend_from_slice(piece.get(..want.min(piece.len())).unwrap_or_default());
        }
        if self.answer.len() < STATUS_LINE_START {
            return;
        }
        let switched =
            self.answer.get(8..) == Some(&b" 101"[..]) && self.answer.starts_with(b"HTTP/1.");
        self.answer.clear();
        let held = std::mem::take(&mut self.held);
        if switched {
            self.state = State::Passthrough;
            self.ready.extend_from_slice(&held);
        } else {
            self.state = State::Head;
            // An error leaves the state Broken; the next read reports it.
            let _ = self.feed(&held);
        }
        if let Some(waker) = self.waiting.take() {
            waker.wake();
        }
    }

    fn reject(&mut self, error: SmugglingError) {
        self.rejection.set(error);
        self.head.clear();
        let synthetic = format!(
            "GET {} HTTP/1.1\r\nHost: reject\r\nConnection: close\r\n\r\n",
            self.reject_path
        );
        self.ready.extend_from_slice(synthetic.as_bytes());
        self.state = State::Closed;
    }

    /// Runs `input` through the framing state machine, moving checked bytes to `ready`.
    fn feed(&mut self, mut input: &[u8]) -> io::Result<()> {
        while !input.is_empty() {
            match &mut self.state {
                State::Closed => return Ok(()),
                State::AwaitingUpgrade => {
                    self.held.extend_from_slice(input);
                    return Ok(());
                }
                State::Passthrough => {
                    self.ready.extend_from_slice(input);
                    return Ok(());
                }
                State::Broken => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad chunked framing",
                    ));
                }
                State::Head => {
                    // The common case: a whole head in this read and nothing held from an
                    // earlier one; checked where it is, without a copy into `head`.
                    if self.head.is_empty()
                        && let Some(end) = find_head_end(input)
                    {
                        let (head, rest) = input.split_at(end);
                        match check_request_head(head, &self.limits) {
                            Err(e) => {
                                self.reject(e);
                                return Ok(());
                            }
                            Ok(checked) => {
                                self.ready.extend_from_slice(head);
                                self.state = after_head(&checked);
                                input = rest;
                                continue;
                            }
                        }
                    }
                    self.head.extend_from_slice(input);
                    input = &[];
                    let Some(end) = find_head_end(&self.head) else {
                        if self.head.len() > self.limits.max_head_bytes {
                            self.reject(SmugglingError::HeadTooLarge(self.limits.max_head_bytes));
                        }
                        return Ok(());
                    };
                    match check_request_head(&self.head, &self.limits) {
                        Err(e) => {
                            self.reject(e);
                            return Ok(());
                        }
                        Ok(checked) => {
                            let rest = self.head.split_off(end);
                            self.ready.append(&mut self.head);
                            self.state = after_head(&checked);
                            self.feed(&rest)?;
                        }
                    }
                }
                State::Length(n) => {
                    let take = usize::try_from(*n).unwrap_or(usize::MAX).min(input.len());
                    let (now, later) = input.split_at(take);
                    self.ready.extend_from_slice(now);
                    *n -= take as u64;
                    if *n == 0 {
                        self.state = State::Head;
                    }
                    input = later;
                }
                State::Chunked(chunk) => {
                    let Some((&byte, rest)) = input.split_first() else {
                        return Ok(());
                    };
                    match chunk {
                        Chunk::Data(n) => {
                            let take = usize::try_from(*n).unwrap_or(usize::MAX).min(input.len());
                            let (now, later) = input.split_at(take);
                            self.ready.extend_from_slice(now);
                            *n -= take as u64;
                            if *n == 0 {
                                *chunk = Chunk::DataCr;
                            }
                            input = later;
                            continue;
                        }
                        Chunk::DataCr if byte == b'\r' => *chunk = Chunk::DataLf,
                        Chunk::DataLf if byte == b'\n' => *chunk = Chunk::SizeLine(Vec::new()),
                        Chunk::DataCr | Chunk::DataLf => {
                            self.state = State::Broken;
                            continue;
                        }
                        Chunk::SizeLine(line) | Chunk::Trailer(line) => {
                            line.push(byte);
                            if line.len() > MAX_CHUNK_LINE {
                                self.state = State::Broken;
                                continue;
                            }
                            if byte == b'\n' {
                                let next = match chunk {
                                    Chunk::SizeLine(line) => parse_size_line(line).map(|size| {
                                        if size == 0 {
                                            Chunk::Trailer(Vec::new())
                                        } else {
                                            Chunk::Data(size)
                                        }
                                    }),
                                    Chunk::Trailer(line) if line.as_slice() == b"\r\n" => {
                                        self.ready.push(byte);
                                        self.state = State::Head;
                                        input = rest;
                                        continue;
                                    }
                                    Chunk::Trailer(line) => {
                                        trailer_ok(line).then(|| Chunk::Trailer(Vec::new()))
                                    }
                                    _ => None,
                                };
                                match next {
                                    Some(next) => *chunk = next,
                                    None => {
                                        self.state = State::Broken;
                                        continue;
                                    }
                                }
                            }
                        }
                    }
                    self.ready.push(byte);
                    input = rest;
                }
            }
        }
        Ok(())
    }
}

/// What follows a checked head: its body's framing, or the answer to an upgrade.
fn after_head(checked: &CheckedHead) -> State {
    match checked.framing {
        Framing::None if checked.upgrade => State::AwaitingUpgrade,
        Framing::None => State::Head,
        Framing::Length(n) => State::Length(n),
        Framing::Chunked => State::Chunked(Chunk::SizeLine(Vec::new())),
    }
}

/// `1*HEXDIG [ ";" ext ] CRLF`, strictly: no spaces, no bare LF, at most 15 hex digits.
fn parse_size_line(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"\r\n")?;
    let (size, ext) = match body.iter().position(|b| *b == b';') {
        Some(i) => body.split_at(i),
        None => (body, &b""[..]),
    };
    if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if ext
        .iter()
        .any(|&b| b == b'\r' || b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()
}

fn trailer_ok(line: &[u8]) -> bool {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return false;
    };
    let Some(colon) = body.iter().position(|b| *b == b':') else {
        return false;
    };
    colon > 0
        && !body.first().is_some_and(|b| *b == b' ' || *b == b'\t')
        && !body
            .get(colon - 1)
            .is_some_and(|b| *b == b' ' || *b == b'\t')
        && !body.contains(&b'\r')
}

impl<S: AsyncRead + Unpin> AsyncRead for CheckedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_pos < this.ready.len() {
                let avail = this.ready.get(this.ready_pos..).unwrap_or_default();
                let n = avail.len().min(buf.remaining());
                buf.put_slice(avail.get(..n).unwrap_or_default());
                this.ready_pos += n;
                if this.ready_pos == this.ready.len() {
                    this.ready.clear();
                    this.ready_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::AwaitingUpgrade) {
                // Nothing more is read until the answer to the upgrade request is written
                // (which wakes this reader).
                this.waiting = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if matches!(this.state, State::Closed) {
                // Not EOF: hyper would drop the connection before answering the synthetic
                // request. It asked for `Connection: close`, so hyper closes after the 400.
                return Poll::Pending;
            }
            let mut scratch = std::mem::take(&mut this.scratch);
            let mut rb = ReadBuf::new(&mut scratch);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut rb);
            let n = rb.filled().len();
            let result = match polled {
                Poll::Pending => Some(Poll::Pending),
                Poll::Ready(Err(e)) => Some(Poll::Ready(Err(e))),
                Poll::Ready(Ok(())) if n == 0 => Some(Poll::Ready(Ok(()))),
                Poll::Ready(Ok(())) => this
                    .feed(scratch.get(..n).unwrap_or_default())
                    .err()
                    .map(|e| Poll::Ready(Err(e))),
            };
            this.scratch = scratch;
            if let Some(result) = result {
                return result;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CheckedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.observe_written([buf.get(..n).unwrap_or_default()]);
        }
        polled
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        // Only the answer to an upgrade request is watched: no list of pieces otherwise.
        if let Poll::Ready(Ok(n)) = polled
            && matches!(this.state, State::AwaitingUpgrade)
        {
            let mut left = n;
            let written: Vec<&[u8]> = bufs
                .iter()
                .map(|b| {
                    let take = left.min(b.len());
                    left -= take;
                    b.get(..take).unwrap_or_default()
                })
                .collect();
            this.observe_written(written);
        }
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
