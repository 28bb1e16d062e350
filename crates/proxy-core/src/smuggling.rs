//! Request-smuggling defense: a strict check of a raw HTTP/1.x request head.
//!
//! A proxy and its origin must agree where each request ends. They disagree when a head is
//! ambiguous: both `Content-Length` and `Transfer-Encoding` (RFC 9112 section 6.1), repeated
//! or differing `Content-Length` (section 6.3), a `Transfer-Encoding` that is not exactly
//! `chunked`, line folding (section 5.2), whitespace before a colon (section 5.1), a bare CR
//! or LF (section 2.2), or a header name that some servers normalize into a framing header
//! (`Content_Length`). [`check_request_head`] refuses all of them; the caller answers 400 and
//! closes the connection.
//!
//! ```
//! use proxy_core::{Framing, HeadLimits, SmugglingError, check_request_head};
//!
//! let ok = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
//! let head = check_request_head(ok, &HeadLimits::default()).unwrap();
//! assert_eq!(head.framing, Framing::Length(3));
//! assert_eq!(&ok[head.head_len..], b"abc");
//!
//! let clte = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
//! assert_eq!(check_request_head(clte, &HeadLimits::default()), Err(SmugglingError::LengthAndChunked));
//! ```

/// Why a request head was refused. Every variant maps to `400 Bad Request` (or
/// `431` for [`SmugglingError::HeadTooLarge`]) and a closed connection. It is the detail of
/// the crate's one [`Error`](crate::Error) (`Error::Smuggling`, converted by `?`), kept
/// apart so the head check's callers can match on the reason without the other variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmugglingError {
    /// The head is not complete yet (no blank line within the buffer).
    #[error("incomplete request head")]
    Incomplete,
    /// The head exceeds [`HeadLimits::max_head_bytes`].
    #[error("request head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// More header fields than [`HeadLimits::max_headers`].
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// A CR not followed by LF (RFC 9112 section 2.2).
    #[error("bare CR at byte {0}")]
    BareCr(usize),
    /// A LF not preceded by CR (RFC 9112 section 2.2).
    #[error("bare LF at byte {0}")]
    BareLf(usize),
    /// The request line is not `method SP target SP HTTP/1.x`.
    #[error("malformed request line")]
    RequestLine,
    /// A field line starting with whitespace: obsolete line folding (RFC 9112 section 5.2).
    #[error("obsolete line folding at line {0}")]
    ObsFold(usize),
    /// Whitespace between a field name and its colon (RFC 9112 section 5.1).
    #[error("whitespace before colon at line {0}")]
    WhitespaceBeforeColon(usize),
    /// A field name that is empty or not a token, or a line without a colon.
    #[error("malformed field name at line {0}")]
    FieldName(usize),
    /// A field value with a control character (NUL, DEL, ...).
    #[error("control character in field value at line {0}")]
    FieldValue(usize),
    /// A name that differs from a framing header only by case folding `_` to `-`.
    #[error("ambiguous header name at line {0}")]
    AmbiguousName(usize),
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    /// `Content-Length` given more than once (even with equal values) or as a list.
    #[error("repeated Content-Length")]
    RepeatedContentLength,
    /// `Content-Length` is not 1*DIGIT or overflows.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// `Transfer-Encoding` is anything but a single `chunked`.
    #[error("unsupported or obfuscated Transfer-Encoding")]
    TransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 section 6.1).
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingHttp10,
    /// An HTTP/1.1 request without exactly one `Host` (RFC 9112 section 3.2).
    #[error("missing or repeated Host")]
    Host,
    /// A `Host` value that is not `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986
    /// section 3.2.2): a space, `/`, `@`, a non-ASCII byte, a bad port, ...
    #[error("invalid Host value")]
    InvalidHost,
}

impl SmugglingError {
    /// The status to answer with.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::HeadTooLarge(_) | Self::TooManyHeaders(_) => {
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// Size limits on a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// The largest head, request line and blank line included.
    pub max_head_bytes: usize,
    /// The most header fields.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 32 * 1024,
            max_headers: 100,
        }
    }
}

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A head that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedHead {
    /// Bytes up to and including the blank line.
    pub head_len: usize,
    /// The body framing.
    pub framing: Framing,
    /// `true` for HTTP/1.0.
    pub http10: bool,
    /// The request asks for a protocol upgrade (`Upgrade` plus `Connection: upgrade`);
    /// after a `101` the bytes that follow are no longer HTTP/1.
    pub upgrade: bool,
}

/// The end of the head in `buf` (index after the blank line), tolerating bare LFs so they
/// can be reported, or `None` when it is not complete.
#[must_use]
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for lf in memchr::memchr_iter(b'\n', buf) {
        if lf == line_start || (lf == line_start + 1 && buf.get(line_start) == Some(&b'\r')) {
            // An empty line: the end of the head unless it is a leading one.
            if line_start > 0 {
                return Some(lf + 1);
            }
        }
        line_start = lf + 1;
    }
    None
}

/// `tchar` (RFC 9110 section 5.6.2): a field name or method byte.
const TCHAR: u8 = 1;
/// A field value byte: HTAB, SP, VCHAR or obs-text (no other control byte, no DEL).
const FIELD_VALUE: u8 = 2;
/// A request-target byte: VCHAR.
const TARGET: u8 = 4;
/// A `reg-name` byte other than `%` (RFC 3986 unreserved and sub-delims, without `,`).
const REG_NAME: u8 = 8;

/// The classes of each byte, so that the checks that run on every byte of every request
/// head are one load and a mask each. Built at compile time: an index out of range there
/// fails the build, never a request.
#[allow(clippy::indexing_slicing)]
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        // `i < 256`, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric() || is_in(b, b"!#$%&'*+-.^_`|~") {
            class |= TCHAR;
        }
        if b == b'\t' || (b >= 0x20 && b != 0x7f) {
            class |= FIELD_VALUE;
        }
        if b >= 0x21 && b < 0x7f {
            class |= TARGET;
        }
        if b.is_ascii_alphanumeric() || is_in(b, b"-._~!$&'()*+;=") {
            class |= REG_NAME;
        }
        table[i] = class;
        i += 1;
    }
    table
};

/// `b` is one of `set` (usable in the table's constant initializer, where `get` is not).
#[allow(clippy::indexing_slicing)]
const fn is_in(b: u8, set: &[u8]) -> bool {
    let mut i = 0;
    while i < set.len() {
        if set[i] == b {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether every byte of `bytes` is of `class`.
fn all_of(bytes: &[u8], class: u8) -> bool {
    bytes
        .iter()
        .all(|&b| CLASSES.get(usize::from(b)).is_some_and(|c| c & class != 0))
}

/// Checks a raw request head (the buffer may hold body bytes after it).
///
/// # Errors
/// The first [`SmugglingError`] found, scanning in order.
pub fn check_request_head(buf: &[u8], limits: &HeadLimits) -> Result<CheckedHead, SmugglingError> {
    let end = match find_head_end(buf) {
        Some(end) => end,
        None if buf.len() > limits.max_head_bytes => {
            return Err(SmugglingError::HeadTooLarge(limits.max_head_bytes));
        }
        None => return Err(SmugglingError::Incomplete),
    };
    if end > limits.max_head_bytes {
        return Err(SmugglingError::HeadTooLarge(limits.max_head_bytes));
    }
    let head = buf.get(..end).ok_or(SmugglingError::Incomplete)?;
    // A bare CR or LF is reported as such wherever it is, before anything else the head
    // has wrong; looked for only when the head is refused anyway, since every way of
    // having one makes the checks below fail (see `check_lines`).
    check_lines(head, end, limits).map_err(|e| bare_line_ending(head).unwrap_or(e))
}

/// The first bare LF or bare CR in `head`.
fn bare_line_ending(head: &[u8]) -> Option<SmugglingError> {
    head.iter().enumerate().find_map(|(i, b)| match b {
        b'\n' if i == 0 || head.get(i - 1) != Some(&b'\r') => Some(SmugglingError::BareLf(i)),
        b'\r' if head.get(i + 1) != Some(&b'\n') => Some(SmugglingError::BareCr(i)),
        _ => None,
    })
}

/// [`check_request_head`] on the complete `head` (`end` bytes), except that a bare CR or
/// LF may be reported as another error. It cannot pass one: the head must end with
/// CRLF CRLF, every line before the last must end with CRLF, and a CR anywhere else fails
/// the byte classes of the method, target, version, field names and values.
fn check_lines(
    head: &[u8],
    end: usize,
    limits: &HeadLimits,
) -> Result<CheckedHead, SmugglingError> {
    if !head.ends_with(b"\r\n\r\n") {
        return Err(SmugglingError::RequestLine);
    }
    let text = head
        .get(..end.saturating_sub(4))
        .ok_or(SmugglingError::Incomplete)?;
    // Every line but the last ends with CRLF within `text`; the last one's CRLF is the
    // first of the final four bytes.
    let last_start = memchr::memrchr(b'\n', text).map_or(0, |lf| lf + 1);
    let (before_last, last) = text.split_at(last_start);
    let mut lines = before_last
        .split_inclusive(|b| *b == b'\n')
        .map(|line| {
            line.strip_suffix(b"\r\n")
                .ok_or(SmugglingError::RequestLine)
        })
        .chain(std::iter::once(Ok(last)));
    // RFC 9112 section 2.2: a server SHOULD ignore empty lines before the request line.
    let mut request_line = lines.next().unwrap_or(Ok(&[]))?;
    while request_line.is_empty() {
        request_line = lines.next().ok_or(SmugglingError::RequestLine)??;
    }
    let http10 = check_request_line(request_line)?;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<Vec<u8>> = None;
    let mut hosts = 0usize;
    let mut upgrade_header = false;
    let mut connection_upgrade = false;
    for (n, line) in lines.enumerate() {
        let number = n + 2;
        if n >= limits.max_headers {
            return Err(SmugglingError::TooManyHeaders(limits.max_headers));
        }
        let line = line?;
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err(SmugglingError::ObsFold(number));
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or(SmugglingError::FieldName(number))?;
        let (name, rest) = line.split_at(colon);
        let value = rest.get(1..).unwrap_or_default();
        if name.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err(SmugglingError::WhitespaceBeforeColon(number));
        }
        if name.is_empty() || !all_of(name, TCHAR) {
            return Err(SmugglingError::FieldName(number));
        }
        if !all_of(value, FIELD_VALUE) {
            return Err(SmugglingError::FieldValue(number));
        }
        let value = value.trim_ascii();
        // Compared without lowercased copies: this runs for every header of every request.
        let is = |target: &[u8]| name.eq_ignore_ascii_case(target);
        // A name that becomes a framing name when `_` reads as `-` is refused: some
        // servers behind a proxy fold them.
        if name.contains(&b'_')
            && [&b"content-length"[..], b"transfer-encoding", b"host"]
                .iter()
                .any(|target| {
                    name.len() == target.len()
                        && name.iter().zip(target.iter()).all(|(&b, &t)| {
                            (if b == b'_' {
                                b'-'
                            } else {
                                b.to_ascii_lowercase()
                            }) == t
                        })
                })
        {
            return Err(SmugglingError::AmbiguousName(number));
        }
        if is(b"content-length") {
            if content_length.is_some() {
                return Err(SmugglingError::RepeatedContentLength);
            }
            if value.contains(&b',') {
                return Err(SmugglingError::RepeatedContentLength);
            }
            if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
                return Err(SmugglingError::InvalidContentLength);
            }
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(SmugglingError::InvalidContentLength)?;
            content_length = Some(parsed);
        } else if is(b"transfer-encoding") {
            let all = transfer_encoding.get_or_insert_with(Vec::new);
            if !all.is_empty() {
                all.push(b',');
            }
            all.extend_from_slice(value);
        } else if is(b"host") {
            hosts += 1;
            if !is_valid_host(value) {
                return Err(SmugglingError::InvalidHost);
            }
        } else if is(b"upgrade") {
            upgrade_header = true;
        } else if is(b"connection") {
            connection_upgrade |= value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
        }
    }
    let framing = match (content_length, transfer_encoding) {
        (Some(_), Some(_)) => return Err(SmugglingError::LengthAndChunked),
        (_, Some(_)) if http10 => return Err(SmugglingError::TransferEncodingHttp10),
        (_, Some(te)) => {
            // Exactly one coding, `chunked`, in any case; anything else (a list, unknown
            // codings, quoted or padded forms) is refused rather than guessed at.
            if !te.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(SmugglingError::TransferEncoding);
            }
            Framing::Chunked
        }
        (Some(0), None) | (None, None) => Framing::None,
        (Some(n), None) => Framing::Length(n),
    };
    if !http10 && hosts != 1 || hosts > 1 {
        return Err(SmugglingError::Host);
    }
    Ok(CheckedHead {
        head_len: end,
        framing,
        http10,
        upgrade: upgrade_header && connection_upgrade,
    })
}

/// Checks `method SP request-target SP HTTP-version`; returns whether it is HTTP/1.0.
fn check_request_line(line: &[u8]) -> Result<bool, SmugglingError> {
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SmugglingError::RequestLine);
    };
    if method.is_empty() || !all_of(method, TCHAR) {
        return Err(SmugglingError::RequestLine);
    }
    if target.is_empty() || !all_of(target, TARGET) {
        return Err(SmugglingError::RequestLine);
    }
    match version {
        b"HTTP/1.1" => Ok(false),
        b"HTTP/1.0" => Ok(true),
        _ => Err(SmugglingError::RequestLine),
    }
}

/// Whether a `Host` value is `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986
/// section 3.2.2), or empty (allowed when the target has no authority). `uri-host` is an
/// IP literal in brackets or a reg-name of unreserved characters, percent-encodings and
/// sub-delims, except `,`: a comma would let a list-minded origin read two hosts. Anything
/// else (`u@a`, `a/b`, `a b`, non-ASCII bytes) is refused with 400, as section 3.2 requires.
#[must_use]
pub fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|b| *b == b']') else {
            return false;
        };
        let (literal, after) = rest.split_at(close);
        let after = after.get(1..).unwrap_or_default();
        // IPv6address or IPvFuture: hex digits, `:`, `.`, and for IPvFuture `v` plus
        // unreserved and sub-delims; checked loosely but never `]`, `[`, `/`, `@`.
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b":._~-!$&'()*+;=".contains(&b))
        {
            return false;
        }
        match after {
            [] => return true,
            [b':', port @ ..] => (literal, Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().position(|b| *b == b':') {
            Some(i) => (
                value.get(..i).unwrap_or_default(),
                Some(value.get(i + 1..).unwrap_or_default()),
            ),
            None => (value, None),
        }
    };
    if port.is_some_and(|p| !p.iter().all(u8::is_ascii_digit)) {
        return false;
    }
    if value.first() == Some(&b'[') {
        return true;
    }
    let mut i = 0;
    while let Some(&b) = host.get(i) {
        if b == b'%' {
            let hex = host.get(i + 1..i + 3).unwrap_or_default();
            if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                return false;
            }
            i += 3;
            continue;
        }
        if !all_of(&[b], REG_NAME) {
            return false;
        }
        i += 1;
    }
    // A port without a host (`:80`) is not a host.
    !(host.is_empty() && port.is_some())
}

/// Up to this many field values, [`check_parsed_request`] finds the fields it checks in one
/// pass over them rather than by a lookup each.
const SCAN_FIELDS: usize = 12;

/// Checks a request hyper (or another parser) has already parsed: the framing headers must
/// be unambiguous there too, and an HTTP/1.1 request needs exactly one valid `Host` (RFC 9112
/// section 3.2; HTTP/2 and later carry the authority in `:authority`, so only a repeated or
/// invalid `Host` is refused there). A second line of defense behind
/// [`check_request_head`], and the only one where the server parsed the request itself.
///
/// # Errors
/// The [`SmugglingError`] for the ambiguity.
pub fn check_parsed_request(parts: &http::request::Parts) -> Result<(), SmugglingError> {
    // The first value of each and whether there is another, read without collecting the
    // values (this runs for every request).
    fn first_and_more<'a>(
        mut values: http::header::ValueIter<'a, http::HeaderValue>,
    ) -> (Option<&'a http::HeaderValue>, bool) {
        let first = values.next();
        (first, values.next().is_some())
    }
    let headers = &parts.headers;
    let [(cl, more_cl), (te, more_te), (host, more_hosts)] = if headers.len() <= SCAN_FIELDS {
        // Most requests carry a few fields: one pass comparing names costs less than a
        // hashed lookup for each of the three.
        let mut found = [(None, false); 3];
        for (name, value) in headers {
            let slot = if *name == http::header::CONTENT_LENGTH {
                &mut found[0]
            } else if *name == http::header::TRANSFER_ENCODING {
                &mut found[1]
            } else if *name == http::header::HOST {
                &mut found[2]
            } else {
                continue;
            };
            if slot.0.is_some() {
                slot.1 = true;
            } else {
                slot.0 = Some(value);
            }
        }
        found
    } else {
        [
            first_and_more(headers.get_all(http::header::CONTENT_LENGTH).iter()),
            first_and_more(headers.get_all(http::header::TRANSFER_ENCODING).iter()),
            first_and_more(headers.get_all(http::header::HOST).iter()),
        ]
    };
    if more_cl {
        return Err(SmugglingError::RepeatedContentLength);
    }
    if cl.is_some() && te.is_some() {
        return Err(SmugglingError::LengthAndChunked);
    }
    if cl.is_some_and(|v| parse_content_length(v.as_bytes()).is_none()) {
        return Err(SmugglingError::InvalidContentLength);
    }
    if more_te || te.is_some_and(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked")) {
        return Err(SmugglingError::TransferEncoding);
    }
    let needs_host = parts.version == http::Version::HTTP_11;
    match host {
        _ if more_hosts => return Err(SmugglingError::Host),
        None if needs_host => return Err(SmugglingError::Host),
        None => {}
        Some(host) if !is_valid_host(host.as_bytes().trim_ascii()) => {
            return Err(SmugglingError::InvalidHost);
        }
        Some(_) => {}
    }
    Ok(())
}

/// `1*DIGIT`, at most 18 digits (so it fits in a `u64`).
fn parse_content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Rewrites a request's `Content-Length` in canonical form (`0003` becomes `3`) before it is
/// forwarded: we read it as decimal, but an origin that reads a leading zero as octal, or
/// stops at it, would see another body length and so another request boundary. Call it
/// after [`check_parsed_request`].
///
/// # Errors
/// [`SmugglingError::RepeatedContentLength`] or [`SmugglingError::InvalidContentLength`]
/// when the header is not one valid value.
pub fn canonicalize_content_length(headers: &mut http::HeaderMap) -> Result<(), SmugglingError> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(SmugglingError::RepeatedContentLength);
    }
    let length =
        parse_content_length(first.as_bytes()).ok_or(SmugglingError::InvalidContentLength)?;
    // Canonical: digits only (no whitespace around them) and no leading zero, so the value
    // is already how `length` prints; compared without printing it.
    let bytes = first.as_bytes();
    let canonical =
        bytes.iter().all(u8::is_ascii_digit) && (bytes == b"0" || bytes.first() != Some(&b'0'));
    if !canonical {
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(length),
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(raw: &[u8]) -> Result<CheckedHead, SmugglingError> {
        check_request_head(raw, &HeadLimits::default())
    }

    /// The head check as it was before the byte-class table and the single pass over line
    /// endings, kept to show that the faster one decides every head the same way.
    mod reference {
        #![allow(clippy::indexing_slicing)]
        use super::super::{CheckedHead, Framing, HeadLimits, SmugglingError};

        pub(super) fn find_head_end(buf: &[u8]) -> Option<usize> {
            let mut i = 0;
            while let Some(off) = buf
                .get(i..)
                .and_then(|s| s.iter().position(|b| *b == b'\n'))
            {
                let lf = i + off;
                let line_start = i;
                if lf == line_start || (lf == line_start + 1 && buf.get(line_start) == Some(&b'\r'))
                {
                    // An empty line: the end of the head unless it is a leading one.
                    if line_start > 0 {
                        return Some(lf + 1);
                    }
                }
                i = lf + 1;
            }
            None
        }

        pub(super) fn check_request_head(
            buf: &[u8],
            limits: &HeadLimits,
        ) -> Result<CheckedHead, SmugglingError> {
            let end = match find_head_end(buf) {
                Some(end) => end,
                None if buf.len() > limits.max_head_bytes => {
                    return Err(SmugglingError::HeadTooLarge(limits.max_head_bytes));
                }
                None => return Err(SmugglingError::Incomplete),
            };
            if end > limits.max_head_bytes {
                return Err(SmugglingError::HeadTooLarge(limits.max_head_bytes));
            }
            let head = buf.get(..end).ok_or(SmugglingError::Incomplete)?;
            // Line endings first: every LF preceded by CR, every CR followed by LF.
            for (i, b) in head.iter().enumerate() {
                match b {
                    b'\n' if i == 0 || head.get(i - 1) != Some(&b'\r') => {
                        return Err(SmugglingError::BareLf(i));
                    }
                    b'\r' if head.get(i + 1) != Some(&b'\n') => {
                        return Err(SmugglingError::BareCr(i));
                    }
                    _ => {}
                }
            }
            let text = head
                .get(..end.saturating_sub(4))
                .ok_or(SmugglingError::Incomplete)?;
            let mut lines = text
                .split(|b| *b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
            // RFC 9112 section 2.2: a server SHOULD ignore empty lines before the request line.
            let mut request_line = lines.next().unwrap_or_default();
            while request_line.is_empty() {
                request_line = lines.next().ok_or(SmugglingError::RequestLine)?;
            }
            let http10 = old_request_line(request_line)?;
            let mut content_length: Option<u64> = None;
            let mut transfer_encoding: Option<Vec<u8>> = None;
            let mut hosts = 0usize;
            let mut upgrade_header = false;
            let mut connection_upgrade = false;
            for (n, line) in lines.enumerate() {
                let number = n + 2;
                if n >= limits.max_headers {
                    return Err(SmugglingError::TooManyHeaders(limits.max_headers));
                }
                if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                    return Err(SmugglingError::ObsFold(number));
                }
                let colon = line
                    .iter()
                    .position(|b| *b == b':')
                    .ok_or(SmugglingError::FieldName(number))?;
                let (name, rest) = line.split_at(colon);
                let value = rest.get(1..).unwrap_or_default();
                if name.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
                    return Err(SmugglingError::WhitespaceBeforeColon(number));
                }
                if name.is_empty() || !name.iter().copied().all(is_tchar) {
                    return Err(SmugglingError::FieldName(number));
                }
                if value.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
                    return Err(SmugglingError::FieldValue(number));
                }
                let value = value.trim_ascii();
                // Compared without lowercased copies: this runs for every header of every request.
                let is = |target: &[u8]| name.eq_ignore_ascii_case(target);
                // A name that becomes a framing name when `_` reads as `-` is refused: some
                // servers behind a proxy fold them.
                if name.contains(&b'_')
                    && [&b"content-length"[..], b"transfer-encoding", b"host"]
                        .iter()
                        .any(|target| {
                            name.len() == target.len()
                                && name.iter().zip(target.iter()).all(|(&b, &t)| {
                                    (if b == b'_' {
                                        b'-'
                                    } else {
                                        b.to_ascii_lowercase()
                                    }) == t
                                })
                        })
                {
                    return Err(SmugglingError::AmbiguousName(number));
                }
                if is(b"content-length") {
                    if content_length.is_some() {
                        return Err(SmugglingError::RepeatedContentLength);
                    }
                    if value.contains(&b',') {
                        return Err(SmugglingError::RepeatedContentLength);
                    }
                    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit)
                    {
                        return Err(SmugglingError::InvalidContentLength);
                    }
                    let parsed = std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or(SmugglingError::InvalidContentLength)?;
                    content_length = Some(parsed);
                } else if is(b"transfer-encoding") {
                    let all = transfer_encoding.get_or_insert_with(Vec::new);
                    if !all.is_empty() {
                        all.push(b',');
                    }
                    all.extend_from_slice(value);
                } else if is(b"host") {
                    hosts += 1;
                    if !old_valid_host(value) {
                        return Err(SmugglingError::InvalidHost);
                    }
                } else if is(b"upgrade") {
                    upgrade_header = true;
                } else if is(b"connection") {
                    connection_upgrade |= value
                        .split(|b| *b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
                }
            }
            let framing = match (content_length, transfer_encoding) {
                (Some(_), Some(_)) => return Err(SmugglingError::LengthAndChunked),
                (_, Some(_)) if http10 => return Err(SmugglingError::TransferEncodingHttp10),
                (_, Some(te)) => {
                    // Exactly one coding, `chunked`, in any case; anything else (a list, unknown
                    // codings, quoted or padded forms) is refused rather than guessed at.
                    if !te.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                        return Err(SmugglingError::TransferEncoding);
                    }
                    Framing::Chunked
                }
                (Some(0), None) | (None, None) => Framing::None,
                (Some(n), None) => Framing::Length(n),
            };
            if !http10 && hosts != 1 || hosts > 1 {
                return Err(SmugglingError::Host);
            }
            Ok(CheckedHead {
                head_len: end,
                framing,
                http10,
                upgrade: upgrade_header && connection_upgrade,
            })
        }

        fn old_request_line(line: &[u8]) -> Result<bool, SmugglingError> {
            let mut parts = line.split(|b| *b == b' ');
            let (Some(method), Some(target), Some(version), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(SmugglingError::RequestLine);
            };
            if method.is_empty() || !method.iter().copied().all(is_tchar) {
                return Err(SmugglingError::RequestLine);
            }
            if target.is_empty() || !target.iter().all(|b| (0x21..0x7f).contains(b)) {
                return Err(SmugglingError::RequestLine);
            }
            match version {
                b"HTTP/1.1" => Ok(false),
                b"HTTP/1.0" => Ok(true),
                _ => Err(SmugglingError::RequestLine),
            }
        }

        pub(super) fn old_valid_host(value: &[u8]) -> bool {
            let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
                let Some(close) = rest.iter().position(|b| *b == b']') else {
                    return false;
                };
                let (literal, after) = rest.split_at(close);
                let after = after.get(1..).unwrap_or_default();
                // IPv6address or IPvFuture: hex digits, `:`, `.`, and for IPvFuture `v` plus
                // unreserved and sub-delims; checked loosely but never `]`, `[`, `/`, `@`.
                if literal.is_empty()
                    || !literal
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b":._~-!$&'()*+;=".contains(&b))
                {
                    return false;
                }
                match after {
                    [] => return true,
                    [b':', port @ ..] => (literal, Some(port)),
                    _ => return false,
                }
            } else {
                match value.iter().position(|b| *b == b':') {
                    Some(i) => (
                        value.get(..i).unwrap_or_default(),
                        Some(value.get(i + 1..).unwrap_or_default()),
                    ),
                    None => (value, None),
                }
            };
            if port.is_some_and(|p| !p.iter().all(u8::is_ascii_digit)) {
                return false;
            }
            if value.first() == Some(&b'[') {
                return true;
            }
            let mut i = 0;
            while let Some(&b) = host.get(i) {
                if b == b'%' {
                    let hex = host.get(i + 1..i + 3).unwrap_or_default();
                    if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                        return false;
                    }
                    i += 3;
                    continue;
                }
                if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=".contains(&b)) {
                    return false;
                }
                i += 1;
            }
            // A port without a host (`:80`) is not a host.
            !(host.is_empty() && port.is_some())
        }

        fn is_tchar(b: u8) -> bool {
            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
        }
    }

    /// Both checks on many heads: clean ones, and ones with bytes replaced, inserted or
    /// removed (CR, LF, space, tab, colon, comma, underscore, control and non-ASCII bytes
    /// among them), with limits small enough to be reached.
    #[test]
    #[allow(clippy::indexing_slicing)]
    fn decides_like_the_reference_check() {
        let seeds: [&[u8]; 8] = [
            b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: x\r\n\r\n",
            b"\r\nPOST /x?y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\n",
            b"PUT /a HTTP/1.0\r\nContent-Length: 12\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n",
            b"GET http://[::1]:80/ HTTP/1.1\r\nHost: [::1]:80\r\nX_Y: %41\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a%2Eb\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost:\r\nA: b\tc\r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        ];
        let specials = b"\r\n :\t,_%[]\x00\x7f\x80\xffaA0-";
        let limits = HeadLimits {
            max_head_bytes: 96,
            max_headers: 3,
        };
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % (n.max(1) as u64)).unwrap()
        };
        let mut compared = 0;
        for seed in seeds {
            for limits in [HeadLimits::default(), limits] {
                assert_eq!(
                    check_request_head(seed, &limits),
                    reference::check_request_head(seed, &limits),
                    "{}",
                    String::from_utf8_lossy(seed)
                );
            }
            for _ in 0..4000 {
                let mut head = seed.to_vec();
                for _ in 0..=next(3) {
                    let at = next(head.len() + 1);
                    let byte = specials[next(specials.len())];
                    match next(3) {
                        0 if at < head.len() => head[at] = byte,
                        1 if at < head.len() => {
                            head.remove(at);
                        }
                        _ => head.insert(at, byte),
                    }
                }
                for limits in [HeadLimits::default(), limits] {
                    assert_eq!(
                        check_request_head(&head, &limits),
                        reference::check_request_head(&head, &limits),
                        "{:?}",
                        String::from_utf8_lossy(&head)
                    );
                }
                assert_eq!(find_head_end(&head), reference::find_head_end(&head));
                let host = head.get(head.len() / 2..).unwrap_or_default();
                assert_eq!(is_valid_host(host), reference::old_valid_host(host));
                compared += 1;
            }
        }
        assert_eq!(compared, 32_000);
    }

    #[test]
    fn accepts_clean_heads() {
        let h = check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::None);
        let h =
            check(b"\r\nPOST /x?y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\n")
                .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(check(b"GET / HTTP/1.0\r\n\r\n").unwrap().http10);
    }

    #[test]
    fn refuses_ambiguity() {
        use SmugglingError as E;
        let cases: &[(&[u8], SmugglingError)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n", E::Incomplete),
            (b"GET / HTTP/1.1\nHost: a\r\n\r\n", E::BareLf(14)),
            (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", E::BareCr(23)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", E::ObsFold(4)),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", E::WhitespaceBeforeColon(2)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: a\r\n\r\n", E::FieldName(3)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00\r\n\r\n", E::FieldValue(3)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n", E::AmbiguousName(3)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", E::RepeatedContentLength),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", E::RepeatedContentLength),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", E::InvalidContentLength),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", E::InvalidContentLength),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", E::LengthAndChunked),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", E::TransferEncoding),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", E::TransferEncoding),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", E::TransferEncoding),
            (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", E::TransferEncodingHttp10),
            (b"GET / HTTP/1.1\r\n\r\n", E::Host),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", E::Host),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", E::RequestLine),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", E::RequestLine),
            (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", E::RequestLine),
        ];
        for (raw, want) in cases {
            assert_eq!(
                &check(raw).unwrap_err(),
                want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn host_values_follow_rfc_3986() {
        // Issue 14 finding 18.
        for good in [
            &b""[..],
            b"a",
            b"a.example:8080",
            b"A-B.example",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:80",
            b"[v1.x]",
            b"%41b",
            b"a:",
        ] {
            assert!(is_valid_host(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"a\xc2b"[..],
            b"a b",
            b"a/b",
            b"u@a",
            b"a:b",
            b"a:80:80",
            b"[::1",
            b"[::1]x",
            b"[]",
            b"a?b",
            b"a#b",
            b"a\\b",
            b"a,b",
            b"%4",
            b"%zz",
            b":80",
        ] {
            assert!(!is_valid_host(bad), "{}", String::from_utf8_lossy(bad));
            let mut raw = b"GET / HTTP/1.1\r\nHost: ".to_vec();
            raw.extend_from_slice(bad);
            raw.extend_from_slice(b"\r\n\r\n");
            assert!(check(&raw).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn parsed(version: http::Version, headers: &[(&str, &[u8])]) -> Result<(), SmugglingError> {
        let mut request = http::Request::new(());
        *request.version_mut() = version;
        for (name, value) in headers {
            request.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        check_parsed_request(&request.into_parts().0)
    }

    #[test]
    fn parsed_requests_need_one_valid_host() {
        // Issue 14 findings 9 and 18, for a proxy mounted in a server that parsed the head.
        use http::Version;
        assert!(parsed(Version::HTTP_11, &[("host", b"a")]).is_ok());
        assert!(parsed(Version::HTTP_11, &[("host", b"a"), ("host", b"b")]).is_err());
        assert!(parsed(Version::HTTP_11, &[]).is_err());
        assert!(parsed(Version::HTTP_10, &[]).is_ok());
        assert!(parsed(Version::HTTP_2, &[]).is_ok());
        assert!(parsed(Version::HTTP_2, &[("host", b"a"), ("host", b"a")]).is_err());
        for bad in [&b"a\xc2b"[..], b"a b", b"a/b", b"u@a"] {
            assert!(parsed(Version::HTTP_11, &[("host", bad)]).is_err());
        }
        assert!(
            parsed(
                Version::HTTP_11,
                &[("host", b"a"), ("content-length", b"+3")]
            )
            .is_err()
        );
    }

    #[test]
    fn parsed_requests_get_the_same_answer_scanned_and_looked_up() {
        // A few fields are scanned, many looked up: each head, padded past SCAN_FIELDS with
        // fields that do not matter, must get the same answer.
        use http::Version;
        type Fields<'a> = &'a [(&'a str, &'a [u8])];
        let heads: &[(Version, Fields<'_>)] = &[
            (Version::HTTP_11, &[("host", b"a")]),
            (Version::HTTP_11, &[("host", b"a"), ("host", b"a")]),
            (Version::HTTP_11, &[]),
            (Version::HTTP_2, &[]),
            (Version::HTTP_11, &[("host", b"a b")]),
            (
                Version::HTTP_11,
                &[("host", b"a"), ("content-length", b"3")],
            ),
            (
                Version::HTTP_11,
                &[
                    ("host", b"a"),
                    ("content-length", b"3"),
                    ("content-length", b"3"),
                ],
            ),
            (
                Version::HTTP_11,
                &[
                    ("host", b"a"),
                    ("content-length", b"3"),
                    ("transfer-encoding", b"chunked"),
                ],
            ),
            (
                Version::HTTP_11,
                &[("host", b"a"), ("transfer-encoding", b"gzip")],
            ),
            (
                Version::HTTP_11,
                &[
                    ("transfer-encoding", b"chunked"),
                    ("host", b"a"),
                    ("transfer-encoding", b"chunked"),
                ],
            ),
            (
                Version::HTTP_11,
                &[("host", b"a"), ("transfer-encoding", b" Chunked ")],
            ),
        ];
        for (version, fields) in heads {
            let few = parsed(*version, fields);
            assert!(fields.len() <= SCAN_FIELDS);
            let mut padded = fields.to_vec();
            let names: Vec<String> = (0..=SCAN_FIELDS).map(|i| format!("x-pad-{i}")).collect();
            padded.extend(names.iter().map(|n| (n.as_str(), &b"1"[..])));
            assert!(padded.len() > SCAN_FIELDS);
            assert_eq!(few, parsed(*version, &padded), "{fields:?}");
        }
    }

    #[test]
    fn content_length_is_made_canonical() {
        // Issue 14 finding 16.
        let mut h = http::HeaderMap::new();
        h.insert("content-length", "0003".parse().unwrap());
        canonicalize_content_length(&mut h).unwrap();
        assert_eq!(h["content-length"], "3");
        h.insert("content-length", "000".parse().unwrap());
        canonicalize_content_length(&mut h).unwrap();
        assert_eq!(h["content-length"], "0");
        h.insert("content-length", "12".parse().unwrap());
        canonicalize_content_length(&mut h).unwrap();
        assert_eq!(h["content-length"], "12");
        h.insert("content-length", "1 2".parse().unwrap());
        assert!(canonicalize_content_length(&mut h).is_err());
        h.append("content-length", "12".parse().unwrap());
        assert!(canonicalize_content_length(&mut h).is_err());
        h.clear();
        assert!(canonicalize_content_length(&mut h).is_ok());
        // Whatever way a length is written, it leaves as the length prints.
        for n in (0..1_100_u64).chain([u64::from(u32::MAX), 9_999_999_999_999_999]) {
            for written in [
                n.to_string(),
                format!("0{n}"),
                format!("00{n}"),
                format!(" {n}"),
                format!("{n}\t"),
            ] {
                h.insert("content-length", written.parse().unwrap());
                canonicalize_content_length(&mut h).unwrap();
                assert_eq!(h["content-length"], n.to_string().as_str(), "{written:?}");
            }
        }
    }

    #[test]
    fn limits() {
        let limits = HeadLimits {
            max_head_bytes: 64,
            max_headers: 2,
        };
        let big = [
            b"GET / HTTP/1.1\r\nHost: a\r\nX: ".as_slice(),
            &[b'a'; 100],
            b"\r\n\r\n",
        ]
        .concat();
        assert_eq!(
            check_request_head(&big, &limits),
            Err(SmugglingError::HeadTooLarge(64))
        );
        assert_eq!(
            check_request_head(&big[..80], &limits),
            Err(SmugglingError::HeadTooLarge(64))
        );
        let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(
            check_request_head(many, &limits),
            Err(SmugglingError::TooManyHeaders(2))
        );
        assert_eq!(SmugglingError::TooManyHeaders(2).status(), 431);
    }
}
