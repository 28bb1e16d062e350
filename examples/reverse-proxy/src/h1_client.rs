//! A lean HTTP/1.1 client for the proxy's common case: a request whose body is in hand
//! (empty, or buffered for retries) to a plain-TCP member, no upgrade.
//!
//! hyper's client runs each connection as its own task, fed through a channel: a request
//! crosses to that task, its response head is parsed there into a `HeaderMap` and crosses
//! back, and the body is relayed frame by frame. By callgrind that machinery was about a
//! third of the proxy's user-space instructions per keep-alive request. Here the request's
//! own future writes the head (and body) with one write and parses the response head with
//! `httparse` straight from the connection's buffer; the body is read from the same buffer
//! when hyper's server polls it, so a small response costs one read and no task switch.
//!
//! The response's framing follows RFC 9112 section 6.3: no body for `HEAD`, 1xx, 204 and
//! 304; `Transfer-Encoding: chunked` decoded, trailers passed on; a final coding other
//! than `chunked` runs to the connection's close; else `Content-Length` (a list of equal
//! values allowed); else the body runs to the close. Both framings at once, a transfer
//! coding from an HTTP/1.0 server, codings under `chunked` (they could not be removed), a
//! bad length, a head past [`MAX_HEAD`] or [`MAX_HEADERS`] fields, or an unexpected
//! `101`: the member's response is refused (a 502 to the client), never guessed at.
//! Interim 1xx responses are skipped, as hyper's client skips them.
//!
//! A connection is reused only after its response was read to the end with nothing after
//! it, when the member kept it alive (HTTP/1.1 without `Connection: close`, or HTTP/1.0
//! with `keep-alive`). Before an idle connection carries a request, [`Conn::is_idle_clean`]
//! asks tokio's readiness whether anything (an end, stray bytes) arrived on it while it was
//! idle; that costs no system call unless something did.
//!
//! Requests with a streamed body, upgrades, `CONNECT` and TLS members stay on hyper's
//! client ([`crate::upstream`]), which writes a body while it reads the response.

use std::io;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use hyper::body::{Frame, SizeHint};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// The largest response head accepted (status line, fields and blank line).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most fields in a response head, and in a chunked body's trailers.
pub(crate) const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (extensions included) or trailer line.
const MAX_LINE: usize = 8 * 1024;
/// The most trailer bytes in all.
const MAX_TRAILERS: usize = 16 * 1024;
/// Room made in the buffer before each read.
const READ_AHEAD: usize = 16 * 1024;

/// One keep-alive connection to a member, with the bytes read from it and not yet used.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    names: Names,
}

/// The field names of the connection's last response head, as they came and as parsed. A
/// member sends the same names in the same order response after response; a name equal to
/// the one at its place last time is cloned rather than parsed again (`HeaderName::from_bytes`
/// cost about 120 instructions a field by callgrind, the comparison a tenth of that).
#[derive(Debug, Default)]
struct Names {
    seen: Vec<(Box<[u8]>, HeaderName)>,
}

impl Names {
    /// The name of the field at `place` among those kept, spelled `raw`.
    fn name(&mut self, place: usize, raw: &[u8]) -> Result<HeaderName, ()> {
        if let Some((seen, name)) = self.seen.get(place)
            && **seen == *raw
        {
            return Ok(name.clone());
        }
        let name = HeaderName::from_bytes(raw).map_err(|_| ())?;
        let entry = (Box::from(raw), name.clone());
        match self.seen.get_mut(place) {
            Some(slot) => *slot = entry,
            None => self.seen.push(entry),
        }
        Ok(name)
    }
}

/// Why an exchange on a [`Conn`] failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// Writing the request failed before any of it was taken by the connection.
    Unsent,
    /// The connection ended (closed or reset) before any byte of a response came: the
    /// member may or may not have seen the request.
    Closed,
    /// The connection failed, or the member's response was refused, after the request
    /// (or part of it) went out.
    Failed,
}

/// How the response body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

impl Conn {
    pub(crate) fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            names: Names::default(),
        }
    }

    /// Whether an idle connection may carry another request: the member neither closed it
    /// nor sent anything since the last response. Tokio tracks readiness, so this reads
    /// (and makes a system call) only when the connection became readable meanwhile.
    pub(crate) fn is_idle_clean(&mut self) -> bool {
        let mut probe = [0_u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes `request` (a whole encoded request, see [`encode_request`]) and reads the
    /// response head, skipping interim responses. A `HEAD` request's response has no body.
    /// With `raw_fields`, the head's fields may come as [`RawFields`] (see there).
    pub(crate) async fn exchange(
        mut self,
        request: &[u8],
        method: &Method,
        raw_fields: bool,
    ) -> Result<(http::response::Parts, Reader), ExchangeError> {
        self.write(request).await?;
        let mut received = false;
        loop {
            let parsed = if self.buf.is_empty() {
                Ok(None)
            } else {
                parse_head(&mut self.buf, &mut self.names, method, raw_fields)
            };
            let (parts, framing, keep_alive) = match parsed {
                Ok(Some(head)) => head,
                Ok(None) => {
                    if self.buf.len() >= MAX_HEAD {
                        return Err(ExchangeError::Failed);
                    }
                    self.buf.reserve(READ_AHEAD);
                    match self.io.read_buf(&mut self.buf).await {
                        Ok(0) | Err(_) if !received => return Err(ExchangeError::Closed),
                        Ok(0) | Err(_) => return Err(ExchangeError::Failed),
                        Ok(_) => {
                            received = true;
                            continue;
                        }
                    }
                }
                Err(()) => return Err(ExchangeError::Failed),
            };
            if parts.status.is_informational() {
                continue;
            }
            let state = match framing {
                Framing::None | Framing::Length(0) => State::Done,
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::ChunkSize,
                Framing::Close => State::Close,
            };
            let reader = Reader {
                conn: Some(self),
                state,
                keep_alive,
                trailers: None,
                trailer_bytes: 0,
            };
            return Ok((parts, reader));
        }
    }

    async fn write(&mut self, mut request: &[u8]) -> Result<(), ExchangeError> {
        use tokio::io::AsyncWriteExt as _;
        let mut written = 0;
        while !request.is_empty() {
            match self.io.write(request).await {
                Ok(0) | Err(_) if written == 0 => return Err(ExchangeError::Unsent),
                Ok(0) | Err(_) => return Err(ExchangeError::Failed),
                Ok(n) => {
                    written += n;
                    request = request.get(n..).unwrap_or_default();
                }
            }
        }
        Ok(())
    }
}

/// A response's end-to-end fields as `name: value` lines (each ending in CRLF), for a
/// server that writes the head itself and reads none of the fields ([`crate::h1_server`]).
/// They are left out of the response's `HeaderMap`, which then holds only what the proxy
/// adds (a sticky cookie). Building that map cost about a fifth of a proxied request's
/// instructions by callgrind: a validated `HeaderValue`, a hashed insertion and a
/// `HeaderName` per field, and a table of over a KiB; `httparse` has already checked names
/// and values against the same character sets.
///
/// Only for a `GET` whose response has content, no `Trailer` field (the server's encoder
/// must see it) and no reason phrase of its own. `Content-Length` is left out as well: the
/// body's exact size (the length the framing took from that field) says it again. Names
/// keep the member's spelling, as nginx passes them on.
#[derive(Debug, Clone)]
pub(crate) struct RawFields {
    pub(crate) lines: Vec<u8>,
    /// Whether one of the lines is `Date`.
    pub(crate) date: bool,
}

/// The fields of `head` as [`RawFields`], or `None` when it has a `Trailer` field (or, which
/// cannot happen, a field outside it). A line the member wrote as `name: value` CRLF is
/// copied as it is, a run of such lines with one copy; another (other spacing, a bare LF)
/// is written that way.
fn raw_lines(
    head: &[u8],
    fields: &[httparse::Header<'_>],
    kinds: &[Kind],
    facts: &Facts<'_>,
) -> Option<RawFields> {
    let base = head.as_ptr() as usize;
    let size = fields
        .iter()
        .map(|f| f.name.len() + f.value.len() + 4)
        .sum();
    let mut lines = Vec::with_capacity(size);
    let mut date = false;
    // The run of lines as written, not copied yet.
    let mut run: Option<std::ops::Range<usize>> = None;
    for (field, &kind) in fields.iter().zip(kinds) {
        let name = field.name.as_bytes();
        if kind == Kind::Trailer {
            return None;
        }
        if kind == Kind::ContentLength || facts.is_hop_by_hop(kind, name) {
            continue;
        }
        date |= kind == Kind::Date;
        let start = (name.as_ptr() as usize).checked_sub(base)?;
        let name_end = start.checked_add(name.len())?;
        let value_start = (field.value.as_ptr() as usize).checked_sub(base)?;
        let value_end = value_start.checked_add(field.value.len())?;
        let as_written = value_start == name_end + 2
            && head.get(name_end..value_start) == Some(b": ")
            && head.get(value_end..value_end + 2) == Some(b"\r\n");
        if as_written && let Some(run) = run.as_mut().filter(|run| run.end == start) {
            run.end = value_end + 2;
            continue;
        }
        if let Some(run) = run.take() {
            lines.extend_from_slice(head.get(run)?);
        }
        if as_written {
            run = Some(start..value_end + 2);
        } else {
            lines.extend_from_slice(name);
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(field.value);
            lines.extend_from_slice(b"\r\n");
        }
    }
    if let Some(run) = run {
        lines.extend_from_slice(head.get(run)?);
    }
    Some(RawFields { lines, date })
}

/// The response head at the start of the buffer, taken out of it: `Ok(None)` while it
/// is incomplete, `Err` when it is refused. An interim (1xx) head is returned too. The
/// head's fields are read once, raw, for the framing and the connection's fate; the
/// hop-by-hop ones (and those `Connection` names) are left out of the returned
/// `HeaderMap`, as the proxy would remove them from it anyway. With `raw_fields`, a head
/// [`RawFields`] can carry comes with them, in the parts' extensions, and an empty map.
#[allow(clippy::type_complexity)]
fn parse_head(
    buf: &mut BytesMut,
    names: &mut Names,
    method: &Method,
    raw_fields: bool,
) -> Result<Option<(http::response::Parts, Framing, bool)>, ()> {
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let code = response.code.ok_or(())?;
    let status = StatusCode::from_u16(code).map_err(|_| ())?;
    let http10 = response.version == Some(0);
    // A reason phrase other than the status's own is passed on (hyper writes it); an
    // empty or missing one gets the canonical phrase.
    let reason = response
        .reason
        .filter(|r| !r.is_empty() && status.canonical_reason() != Some(*r));
    let mut facts = Facts::default();
    let mut kinds = [Kind::Other; MAX_HEADERS];
    for (field, kind) in response.headers.iter().zip(kinds.iter_mut()) {
        *kind = Kind::of(field.name.as_bytes());
        facts.observe(*kind, field.value);
    }
    if raw_fields
        && reason.is_none()
        && *method == Method::GET
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
        && let Some(raw) = raw_lines(buf.get(..len).ok_or(())?, response.headers, &kinds, &facts)
    {
        let framing = facts.framing(method, status, http10)?;
        let keep_alive = framing != Framing::Close && facts.keeps_alive(http10);
        buf.advance(len);
        let mut parts = response_parts(status, http10);
        parts.extensions.insert(raw);
        return Ok(Some((parts, framing, keep_alive)));
    }
    // Where each field to keep lies in the buffer, so the head can be taken out of it
    // as shared bytes that the values then point into (no copy per value).
    let base = buf.as_ptr() as usize;
    let place = |part: &[u8]| {
        let start = (part.as_ptr() as usize).checked_sub(base)?;
        Some(start..start.checked_add(part.len())?)
    };
    let mut places = Vec::with_capacity(response.headers.len());
    for (field, &kind) in response.headers.iter().zip(kinds.iter()) {
        if facts.is_hop_by_hop(kind, field.name.as_bytes()) {
            continue;
        }
        places.push((
            place(field.name.as_bytes()).ok_or(())?,
            place(field.value).ok_or(())?,
        ));
    }
    let reason = reason.and_then(|r| place(r.as_bytes()));
    let framing = if status.is_informational() {
        Ok(Framing::None)
    } else {
        facts.framing(method, status, http10)
    };
    let keep_alive = facts.keeps_alive(http10);
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(places.len());
    for (place, (name, value)) in places.into_iter().enumerate() {
        let name = names.name(place, head.get(name).ok_or(())?)?;
        let value = shared(&head, value).ok_or(())?;
        let value = HeaderValue::from_maybe_shared(value).map_err(|_| ())?;
        headers.append(name, value);
    }
    let mut parts = response_parts(status, http10);
    if let Some(reason) = reason.and_then(|r| shared(&head, r))
        && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason)
    {
        parts.extensions.insert(reason);
    }
    if status.is_informational() {
        // A 101 answers an upgrade, which this client never asks for.
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(());
        }
        return Ok(Some((parts, Framing::None, false)));
    }
    let framing = framing?;
    let keep_alive = framing != Framing::Close && keep_alive;
    parts.headers = headers;
    Ok(Some((parts, framing, keep_alive)))
}

/// Whether `bytes`, as the response head to a `GET`, gets the same answer with its fields in
/// the `HeaderMap` and as [`RawFields`]: the same refusal, or the same status, version,
/// framing, connection fate, fields (every line ending in CRLF) and place where the body
/// starts. `Ok(true)` when the fields went as lines; `Err` says how the two differ. For the
/// unit tests and the fuzz target (`crate::fuzzing`).
pub(crate) fn lines_agree_with_map(bytes: &[u8]) -> Result<bool, String> {
    let mut in_map = BytesMut::from(bytes);
    let mut in_lines = BytesMut::from(bytes);
    let map = parse_head(&mut in_map, &mut Names::default(), &Method::GET, false);
    let lines = parse_head(&mut in_lines, &mut Names::default(), &Method::GET, true);
    let shown = String::from_utf8_lossy(bytes);
    let (map, lines) = match (map, lines) {
        (Ok(Some(map)), Ok(Some(lines))) => (map, lines),
        (Ok(None), Ok(None)) | (Err(()), Err(())) => return Ok(false),
        (map, lines) => {
            return Err(format!(
                "{shown:?}: refused or incomplete one way only (in the map: {}, as lines: {})",
                map.is_ok(),
                lines.is_ok()
            ));
        }
    };
    let (map_parts, lines_parts) = (&map.0, &lines.0);
    if (map_parts.status, map_parts.version, map.1, map.2)
        != (lines_parts.status, lines_parts.version, lines.1, lines.2)
    {
        return Err(format!(
            "{shown:?}: the heads differ: {map:?} against {lines:?}"
        ));
    }
    if in_map != in_lines {
        return Err(format!("{shown:?}: the body starts elsewhere"));
    }
    let (in_map, as_lines) = (fields_of(map_parts)?, fields_of(lines_parts)?);
    if in_map != as_lines {
        return Err(format!(
            "{shown:?}: the fields differ: {in_map:?} against {as_lines:?}"
        ));
    }
    match lines_parts.extensions.get::<RawFields>() {
        Some(raw) if raw.date != map_parts.headers.contains_key(http::header::DATE) => {
            Err(format!("{shown:?}: `date` says {}", raw.date))
        }
        raw => Ok(raw.is_some()),
    }
}

/// Fields as `(name, value)` pairs.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The fields of parsed response parts as sorted `(lower-case name, value)` pairs: those of
/// its [`RawFields`], else those of its map but `Content-Length` (which the lines leave
/// out). `Err` for lines that are not `name: value` CRLF.
fn fields_of(parts: &http::response::Parts) -> Result<Fields, String> {
    let mut fields = Vec::new();
    match parts.extensions.get::<RawFields>() {
        Some(raw) => {
            let mut rest = &raw.lines[..];
            while !rest.is_empty() {
                let end = rest
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .ok_or("a line without CRLF")?;
                let (line, after) = rest.split_at(end);
                rest = after.get(2..).unwrap_or_default();
                if line.contains(&b'\r') || line.contains(&b'\n') {
                    return Err(format!("a bare CR or LF in {line:?}"));
                }
                let colon = line
                    .iter()
                    .position(|&b| b == b':')
                    .ok_or("a line without a colon")?;
                let (name, value) = line.split_at(colon);
                let value = value.strip_prefix(b": ").ok_or("no `: ` after a name")?;
                fields.push((name.to_ascii_lowercase(), value.to_vec()));
            }
        }
        None => {
            for (name, value) in &parts.headers {
                if *name != CONTENT_LENGTH {
                    fields.push((name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()));
                }
            }
        }
    }
    fields.sort();
    Ok(fields)
}

/// Empty response parts with `status`, from an HTTP/1.0 member or an HTTP/1.1 one.
fn response_parts(status: StatusCode, http10: bool) -> http::response::Parts {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts
}

/// The bytes of `head` in `range`, sharing its memory; `None` outside it.
fn shared(head: &Bytes, range: std::ops::Range<usize>) -> Option<Bytes> {
    (range.start <= range.end && range.end <= head.len()).then(|| head.slice(range))
}

/// The most names a `Connection` field may list for removal; a head that lists more is
/// refused.
const MAX_CONNECTION_NAMES: usize = 16;

/// What a response head's fields say about its framing and its connection.
#[derive(Debug, Default)]
struct Facts<'a> {
    /// `Transfer-Encoding` fields seen, codings named in them, and whether the last coding
    /// is `chunked`.
    transfer_encoding: bool,
    codings: usize,
    last_chunked: bool,
    /// `Content-Length` fields seen, the length, and whether two disagreed or one was bad.
    content_length: bool,
    length: Option<u64>,
    bad_length: bool,
    /// `Connection` options.
    close: bool,
    keep_alive: bool,
    /// Other names `Connection` lists (removed too); `too_many` past the limit.
    listed: [&'a [u8]; MAX_CONNECTION_NAMES],
    listed_count: usize,
    too_many: bool,
}

/// What a field's name means to this client, found once per field (a length, then at most
/// one comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ContentLength,
    TransferEncoding,
    Connection,
    Date,
    Trailer,
    /// One of [`proxy_core::HOP_BY_HOP`] other than `Connection` and `Transfer-Encoding`.
    HopByHop,
    Other,
}

impl Kind {
    fn of(name: &[u8]) -> Self {
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        match name.len() {
            2 if is(b"te") => Kind::HopByHop,
            4 if is(b"date") => Kind::Date,
            7 if is(b"trailer") => Kind::Trailer,
            7 if is(b"upgrade") => Kind::HopByHop,
            10 if is(b"connection") => Kind::Connection,
            10 if is(b"keep-alive") => Kind::HopByHop,
            14 if is(b"content-length") => Kind::ContentLength,
            16 if is(b"proxy-connection") => Kind::HopByHop,
            17 if is(b"transfer-encoding") => Kind::TransferEncoding,
            18 if is(b"proxy-authenticate") => Kind::HopByHop,
            19 if is(b"proxy-authorization") => Kind::HopByHop,
            _ => Kind::Other,
        }
    }
}

impl<'a> Facts<'a> {
    fn observe(&mut self, kind: Kind, value: &'a [u8]) {
        let tokens = || {
            value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|t| !t.is_empty())
        };
        if kind == Kind::TransferEncoding {
            self.transfer_encoding = true;
            for token in tokens() {
                self.codings += 1;
                self.last_chunked = token.eq_ignore_ascii_case(b"chunked");
            }
        } else if kind == Kind::ContentLength {
            self.content_length = true;
            for item in value.split(|&b| b == b',') {
                match parse_decimal(item.trim_ascii()) {
                    Some(n) if self.length.is_none_or(|l| l == n) => self.length = Some(n),
                    _ => self.bad_length = true,
                }
            }
        } else if kind == Kind::Connection {
            for token in tokens() {
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                } else if let Some(slot) = self.listed.get_mut(self.listed_count) {
                    *slot = token;
                    self.listed_count += 1;
                } else {
                    self.too_many = true;
                }
            }
        }
    }

    /// Whether a field of this name (and kind) is not passed on.
    fn is_hop_by_hop(&self, kind: Kind, name: &[u8]) -> bool {
        matches!(
            kind,
            Kind::HopByHop | Kind::Connection | Kind::TransferEncoding
        ) || self
            .listed
            .iter()
            .take(self.listed_count)
            .any(|l| name.eq_ignore_ascii_case(l))
    }

    /// The body's framing, or `Err` when it is ambiguous or unknown.
    fn framing(&self, method: &Method, status: StatusCode, http10: bool) -> Result<Framing, ()> {
        if self.too_many {
            return Err(());
        }
        if method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::None);
        }
        if self.transfer_encoding {
            // Both framings at once is how responses are split, and a transfer coding from
            // an HTTP/1.0 server is faulty framing (RFC 9112 section 6.1).
            if http10 || self.content_length {
                return Err(());
            }
            return match (self.last_chunked, self.codings) {
                (true, 1) => Ok(Framing::Chunked),
                // Codings under the chunked one could not be removed here, and the field
                // that names them is not passed on (it is hop-by-hop): refused, as nginx
                // does.
                (true, _) => Err(()),
                // Not chunked last: the body runs to the close (RFC 9112 section 6.3), and
                // goes on as it came.
                (false, _) => Ok(Framing::Close),
            };
        }
        if self.bad_length {
            return Err(());
        }
        Ok(self.length.map_or(Framing::Close, Framing::Length))
    }

    /// Whether the member keeps the connection open after this response.
    fn keeps_alive(&self, http10: bool) -> bool {
        !self.close && (!http10 || self.keep_alive)
    }
}

/// A `Content-Length` value: 1 to 19 digits (so it fits in a `u64`), nothing else.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0_u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// Writes the request line, the fields (`Content-Length` set to the body's length when it
/// has one or the request named one; `Host: default_host` when the fields have no `Host`)
/// and the body into one buffer. `None` when the request is not for this client: a
/// `Transfer-Encoding` (its body is streamed).
pub(crate) fn encode_request(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    default_host: &str,
    body: &[u8],
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + headers.len() * 32 + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let fields_start = out.len();
    // `Host` and `Transfer-Encoding` are noticed on the way rather than looked up (each
    // lookup hashes the name; this runs per request).
    let mut named_length = false;
    let mut named_host = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            named_length = true;
            continue;
        }
        if name == TRANSFER_ENCODING {
            return None;
        }
        named_host |= name == HOST;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // An address is a host and port: nothing to escape, but nothing written that is not.
    // First, as a client writes it (rare: an HTTP/1.1 client must send `Host`).
    if !named_host && default_host.bytes().all(|b| b.is_ascii_graphic()) {
        let line = [&b"host: "[..], default_host.as_bytes(), b"\r\n"].concat();
        out.splice(fields_start..fields_start, line);
    }
    if named_length || !body.is_empty() {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Some(out)
}

/// Where a body's reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes are left.
    Length(u64),
    /// Until the member closes the connection.
    Close,
    /// A chunk-size line is next.
    ChunkSize,
    /// This many bytes of the current chunk are left.
    ChunkData(u64),
    /// The CRLF after a chunk's data is next.
    ChunkEnd,
    /// Trailer lines, up to the blank line.
    Trailers,
    Done,
    /// The body broke off or was malformed; its connection is closed.
    Failed,
}

/// A response body as it is read from its connection.
#[derive(Debug)]
pub(crate) struct Reader {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
    trailers: Option<HeaderMap>,
    trailer_bytes: usize,
}

fn broken(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Reader {
    /// Whether the body has been read to its end.
    pub(crate) fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }

    /// The connection, when the body was read to its end, the member keeps it alive and
    /// nothing follows the response.
    pub(crate) fn take_reusable(&mut self) -> Option<Conn> {
        if !self.is_end_stream() || !self.keep_alive {
            return None;
        }
        self.conn.take().filter(|conn| conn.buf.is_empty())
    }

    /// The next frame of the body: data as it arrives, then the trailers of a chunked body
    /// if it had any. After an error the connection is closed and every later poll fails.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.state == State::Failed {
            return Poll::Ready(Some(Err(broken("the body already failed"))));
        }
        let polled = self.poll_next(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.state = State::Failed;
            self.conn = None;
        }
        polled
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let buf = &mut conn.buf;
            match self.state {
                State::Done | State::Failed => return Poll::Ready(None),
                State::Length(0) => {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                State::Length(left) | State::ChunkData(left) if !buf.is_empty() => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - take as u64;
                    self.state = match self.state {
                        State::ChunkData(_) if left == 0 => State::ChunkEnd,
                        State::ChunkData(_) => State::ChunkData(left),
                        _ => State::Length(left),
                    };
                    let data = buf.split_to(take).freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Close if !buf.is_empty() => {
                    let data = buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Length(_) | State::ChunkData(_) | State::Close => {}
                State::ChunkEnd if buf.len() >= 2 => {
                    if !buf.starts_with(b"\r\n") {
                        return Poll::Ready(Some(Err(broken("chunk data not followed by CRLF"))));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                    continue;
                }
                State::ChunkEnd => {}
                State::ChunkSize | State::Trailers => {
                    if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                        let line = buf.split_to(end + 2);
                        let line = line.get(..end).unwrap_or_default();
                        match self.line(line) {
                            Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                            Ok(None) => continue,
                            Err(error) => return Poll::Ready(Some(Err(error))),
                        }
                    }
                    if buf.len() > MAX_LINE {
                        return Poll::Ready(Some(Err(broken("chunk line too long"))));
                    }
                }
            }
            // The buffer holds too little: read more.
            buf.reserve(READ_AHEAD);
            let read = loop {
                if let Err(error) = ready!(conn.io.poll_read_ready(cx)) {
                    break Err(error);
                }
                match conn.io.try_read_buf(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    other => break other,
                }
            };
            match read {
                Ok(0) if self.state == State::Close => {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the member closed the connection within the body",
                    ))));
                }
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
    }

    /// One chunk-size or trailer line (without its CRLF): the trailers frame when the
    /// body ends with some, else `None` to go on.
    fn line(&mut self, line: &[u8]) -> Result<Option<Frame<Bytes>>, io::Error> {
        if self.state == State::ChunkSize {
            let size = parse_chunk_size(line).ok_or_else(|| broken("bad chunk size"))?;
            self.state = if size == 0 {
                State::Trailers
            } else {
                State::ChunkData(size)
            };
            return Ok(None);
        }
        if line.is_empty() {
            self.state = State::Done;
            return Ok(self.trailers.take().map(Frame::trailers));
        }
        self.trailer_bytes += line.len() + 2;
        let trailers = self.trailers.get_or_insert_with(HeaderMap::new);
        if self.trailer_bytes > MAX_TRAILERS || trailers.len() >= MAX_HEADERS {
            return Err(broken("too many trailers"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| broken("bad trailer"))?;
        let (name, value) = line.split_at(colon);
        let name = HeaderName::from_bytes(name).map_err(|_| broken("bad trailer name"))?;
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        let value = HeaderValue::from_bytes(value).map_err(|_| broken("bad trailer value"))?;
        trailers.append(name, value);
        Ok(None)
    }
}

/// A chunk-size line: hex digits, then optional whitespace and extensions (`;name=value`),
/// which are ignored.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = line.get(digits..)?.trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    line.get(..digits)?.iter().try_fold(0_u64, |n, &d| {
        let v = (d as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(v))
    })
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
    use crate::test_support::mangled;

    #[test]
    fn decimal_lengths_are_digits_only_and_fit_a_u64() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"0012"), Some(12));
        assert_eq!(
            parse_decimal(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_decimal(b"18446744073709551615"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"+3"), None);
        assert_eq!(parse_decimal(b" 3"), None);
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"A;name=value"), Some(10));
        assert_eq!(parse_chunk_size(b"5 ;x"), Some(5));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
        assert_eq!(parse_chunk_size(b"5x"), None);
        assert_eq!(parse_chunk_size(b"ffffffffffffffffff"), None);
        assert_eq!(parse_chunk_size(b"0x5"), None);
    }

    fn facts<'a>(pairs: &[(&'a str, &'a str)]) -> Facts<'a> {
        let mut facts = Facts::default();
        for (name, value) in pairs {
            facts.observe(Kind::of(name.as_bytes()), value.as_bytes());
        }
        facts
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = Method::GET;
        let ok = StatusCode::OK;
        let framing = |pairs: &[(&str, &str)]| facts(pairs).framing(&get, ok, false);
        assert_eq!(framing(&[]), Ok(Framing::Close));
        assert_eq!(
            framing(&[("Content-Length", "7, 7")]),
            Ok(Framing::Length(7))
        );
        assert_eq!(
            framing(&[("content-length", "7"), ("content-length", "7")]),
            Ok(Framing::Length(7))
        );
        assert_eq!(framing(&[("content-length", "7, 8")]), Err(()));
        assert_eq!(framing(&[("content-length", "+7")]), Err(()));
        assert_eq!(framing(&[("content-length", "")]), Err(()));
        assert_eq!(
            framing(&[("transfer-encoding", "Chunked")]),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing(&[("transfer-encoding", "chunked"), ("content-length", "3")]),
            Err(())
        );
        assert_eq!(framing(&[("transfer-encoding", "gzip, chunked")]), Err(()));
        assert_eq!(
            framing(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ]),
            Err(())
        );
        assert_eq!(
            framing(&[("transfer-encoding", "x-custom")]),
            Ok(Framing::Close)
        );
        assert_eq!(
            framing(&[("transfer-encoding", "chunked, gzip")]),
            Ok(Framing::Close)
        );
        let chunked = facts(&[("transfer-encoding", "chunked")]);
        assert_eq!(chunked.framing(&get, ok, true), Err(()));
        let nine = facts(&[("content-length", "9")]);
        assert_eq!(nine.framing(&Method::HEAD, ok, false), Ok(Framing::None));
        assert_eq!(
            nine.framing(&get, StatusCode::NOT_MODIFIED, false),
            Ok(Framing::None)
        );
        assert!(facts(&[]).keeps_alive(false));
        assert!(!facts(&[("connection", "Close")]).keeps_alive(false));
        assert!(!facts(&[]).keeps_alive(true));
        assert!(facts(&[("connection", "keep-alive")]).keeps_alive(true));
    }

    #[test]
    fn hop_by_hop_fields_and_the_ones_connection_names_are_left_out() {
        let facts = facts(&[("connection", "keep-alive, X-Secret")]);
        for name in [
            "Connection",
            "keep-alive",
            "TE",
            "transfer-encoding",
            "x-secret",
        ] {
            assert!(
                facts.is_hop_by_hop(Kind::of(name.as_bytes()), name.as_bytes()),
                "{name}"
            );
        }
        // Every name proxy-core calls hop-by-hop, in any case.
        for name in proxy_core::HOP_BY_HOP {
            for spelled in [name.to_owned(), name.to_ascii_uppercase()] {
                let kind = Kind::of(spelled.as_bytes());
                assert!(
                    Facts::default().is_hop_by_hop(kind, spelled.as_bytes()),
                    "{spelled}"
                );
            }
        }
        for name in [
            "content-length",
            "Date",
            "trailer",
            "x-te",
            "server",
            "connections",
        ] {
            let kind = Kind::of(name.as_bytes());
            assert!(!facts.is_hop_by_hop(kind, name.as_bytes()), "{name}");
        }
        assert_eq!(Kind::of(b"Content-Length"), Kind::ContentLength);
        assert_eq!(Kind::of(b"DATE"), Kind::Date);
        assert_eq!(Kind::of(b"Trailer"), Kind::Trailer);
        let many = (0..=MAX_CONNECTION_NAMES)
            .map(|i| format!("x-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut too_many = Facts::default();
        too_many.observe(Kind::Connection, many.as_bytes());
        assert_eq!(
            too_many.framing(&Method::GET, StatusCode::OK, false),
            Err(())
        );
    }

    #[test]
    fn heads_are_parsed_and_mangled_heads_never_panic() {
        let head = b"HTTP/1.1 299 Odd\r\nContent-Length: 2\r\nConnection: keep-alive, x-a\r\nx-a: 1\r\nx-b: 2\r\n\r\nok";
        let mut buf = BytesMut::from(&head[..]);
        let (parts, framing, keep_alive) =
            parse_head(&mut buf, &mut Names::default(), &Method::GET, false)
                .unwrap()
                .unwrap();
        assert_eq!(parts.status.as_u16(), 299);
        assert_eq!((framing, keep_alive), (Framing::Length(2), true));
        assert_eq!(parts.headers.len(), 2, "{:?}", parts.headers);
        assert_eq!(parts.headers["x-b"], "2");
        assert_eq!(
            parts
                .extensions
                .get::<hyper::ext::ReasonPhrase>()
                .unwrap()
                .as_bytes(),
            b"Odd"
        );
        assert_eq!(&buf[..], b"ok");
        let mut bare = BytesMut::from(&b"HTTP/1.1 200\r\n\r\n"[..]);
        let (parts, ..) = parse_head(&mut bare, &mut Names::default(), &Method::GET, false)
            .unwrap()
            .unwrap();
        assert!(parts.extensions.get::<hyper::ext::ReasonPhrase>().is_none());
        // Every prefix, and heads with bytes replaced, dropped or doubled: an answer or a
        // refusal, never a panic.
        for end in 0..head.len() {
            let _ = parse_head(
                &mut BytesMut::from(&head[..end]),
                &mut Names::default(),
                &Method::GET,
                false,
            );
        }
        let mut names = Names::default();
        for bytes in mangled(
            head,
            0x9e37_79b9_7f4a_7c15,
            b"\r\n :,;0123456789aAxX\t\x00\x7f\xff",
        ) {
            // The same answer with the names remembered from the heads before as without.
            let fresh = parse_head(
                &mut BytesMut::from(&bytes[..]),
                &mut Names::default(),
                &Method::GET,
                false,
            );
            let remembered = parse_head(
                &mut BytesMut::from(&bytes[..]),
                &mut names,
                &Method::GET,
                false,
            );
            assert_eq!(
                summary(fresh),
                summary(remembered),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    /// A parsed head in comparable form: status, fields in order, framing, keep-alive.
    #[allow(clippy::type_complexity)]
    fn summary(
        parsed: Result<Option<(http::response::Parts, Framing, bool)>, ()>,
    ) -> Option<Option<(u16, Vec<(String, Vec<u8>)>, Framing, bool)>> {
        let parsed = parsed.ok()?;
        Some(parsed.map(|(parts, framing, keep_alive)| {
            let fields = parts
                .headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                .collect();
            (parts.status.as_u16(), fields, framing, keep_alive)
        }))
    }

    #[test]
    fn names_remembered_from_the_last_head_are_the_names_of_this_one() {
        let mut names = Names::default();
        let heads: [&[u8]; 5] = [
            b"HTTP/1.1 200 OK\r\nServer: a\r\nContent-Length: 0\r\nX-Custom: 1\r\n\r\n",
            // The same names: cloned from the memory.
            b"HTTP/1.1 200 OK\r\nServer: b\r\nContent-Length: 0\r\nX-Custom: 2\r\n\r\n",
            // Other spellings, another order, one more and a custom one renamed.
            b"HTTP/1.1 200 OK\r\nserver: c\r\nX-Other: 3\r\nContent-Length: 0\r\nETag: \"e\"\r\n\r\n",
            // Fewer fields.
            b"HTTP/1.1 204 No Content\r\nX-Other: 4\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: d\r\nContent-Length: 0\r\nX-Custom: 5\r\n\r\n",
        ];
        for head in heads {
            let fresh = parse_head(
                &mut BytesMut::from(head),
                &mut Names::default(),
                &Method::GET,
                false,
            );
            let remembered = parse_head(&mut BytesMut::from(head), &mut names, &Method::GET, false);
            let fresh = summary(fresh);
            assert!(matches!(fresh, Some(Some(_))), "{fresh:?}");
            assert_eq!(fresh, summary(remembered));
        }
        assert_eq!(names.seen.len(), 4);
        assert_eq!(names.seen[0].1, http::header::SERVER);
    }

    #[test]
    fn raw_fields_say_what_the_map_says() {
        let head = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 06 Dec 2026 18:00:00 GMT\r\n\
            Content-Type: text/html\r\nContent-Length: 5\r\nConnection: keep-alive, X-A\r\n\
            x-a: 1\r\nSet-Cookie: a=1\r\nx-b:  2 \r\nSet-Cookie: b=2\r\nKeep-Alive: timeout=5\r\n\r\nhello";
        let (parts, framing, keep_alive) = parse_head(
            &mut BytesMut::from(&head[..]),
            &mut Names::default(),
            &Method::GET,
            true,
        )
        .unwrap()
        .unwrap();
        let raw = parts.extensions.get::<RawFields>().unwrap();
        assert!(parts.headers.is_empty());
        assert_eq!(
            raw.lines,
            b"Server: nginx\r\nDate: Sun, 06 Dec 2026 18:00:00 GMT\r\nContent-Type: text/html\r\n\
              Set-Cookie: a=1\r\nx-b: 2\r\nSet-Cookie: b=2\r\n"
                .to_vec()
        );
        assert!(raw.date);
        assert_eq!((framing, keep_alive), (Framing::Length(5), true));
        // Not for HEAD, a 304, a reason phrase of its own or a head with `Trailer`.
        let not_raw = |head: &[u8], method: &Method| {
            let (parts, ..) = parse_head(
                &mut BytesMut::from(head),
                &mut Names::default(),
                method,
                true,
            )
            .unwrap()
            .unwrap();
            parts.extensions.get::<RawFields>().is_none() && !parts.headers.is_empty()
        };
        assert!(not_raw(head, &Method::HEAD));
        assert!(not_raw(
            b"HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n",
            &Method::GET
        ));
        assert!(not_raw(
            b"HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n",
            &Method::GET
        ));
        assert!(not_raw(
            b"HTTP/1.1 200 OK\r\nTrailer: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            &Method::GET
        ));

        // Mangled heads: the same answer either way, the fields as lines or in the map. The
        // alphabet has delimiters a name may not hold and the token characters it may, for
        // the names `httparse` and `http` must agree on.
        let alphabet = b"\r\n :,;0123456789aAxX\t\x00\x7f\xff\"(){}[]<>@/\\?=_.!#$%&'*+^`|~";
        let mut as_lines = 0;
        for bytes in mangled(head, 0x2545_f491_4f6c_dd1d, alphabet) {
            match lines_agree_with_map(&bytes) {
                Ok(true) => as_lines += 1,
                Ok(false) => {}
                Err(differ) => panic!("{differ}"),
            }
        }
        // Most mangled heads still parse, and most of those as lines.
        assert!(as_lines > 5_000, "{as_lines}");
    }

    #[test]
    fn requests_are_encoded_with_their_length() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "a".parse().unwrap());
        headers.insert("content-length", "0003".parse().unwrap());
        let out = encode_request(&Method::POST, "/x?y", &headers, "m:1", b"abc").unwrap();
        assert_eq!(
            out,
            b"POST /x?y HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc".to_vec()
        );
        // Without a `Host`, the member's address.
        let out = encode_request(&Method::GET, "/", &HeaderMap::new(), "m:1", b"").unwrap();
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: m:1\r\n\r\n".to_vec());
        let mut chunked = HeaderMap::new();
        chunked.insert("transfer-encoding", "chunked".parse().unwrap());
        assert!(encode_request(&Method::POST, "/", &chunked, "m:1", b"").is_none());
    }
}
