//! The message envelope: a time-ordered id, headers, payload bytes, the delivery attempt
//! and timestamps, plus the text header block that carries them on backends without
//! native headers.
//!
//! ```
//! use broker_core::{Envelope, Headers};
//!
//! let mut envelope = Envelope::new("hello");
//! envelope.headers_mut().insert("correlation-id", "42")?;
//! let wire = envelope.to_wire_headers();
//! let back = Envelope::from_wire(&wire, envelope.payload().clone())?;
//! assert_eq!(back.id(), envelope.id());
//! assert_eq!(back.headers().get("correlation-id"), Some("42"));
//! # Ok::<(), broker_core::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use uuid::Uuid;

use crate::{Error, Result};

/// At most this many headers in one envelope.
pub const MAX_HEADERS: usize = 64;
/// At most this many bytes in a header block on the wire.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// At most this many bytes in one header name.
pub const MAX_HEADER_NAME: usize = 64;

/// Reserved header names, written by the envelope itself.
pub(crate) const H_ID: &str = "bk-id";
pub(crate) const H_ATTEMPT: &str = "bk-attempt";
pub(crate) const H_PUBLISHED: &str = "bk-published-at";
/// Why a message was dead-lettered (set on dead letters).
pub const DEAD_LETTER_REASON: &str = "bk-dead-letter-reason";
/// How many deliveries a dead letter had (set on dead letters).
pub const DEAD_LETTER_ATTEMPTS: &str = "bk-dead-letter-attempts";

/// A message id: a UUIDv7, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(Uuid);

impl MessageId {
    /// A new time-ordered id (UUIDv7, RFC 9562 section 5.7).
    #[must_use]
    pub fn new() -> Self {
        Self(crate::id_clock::next_v7())
    }

    /// The UUID.
    #[must_use]
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for MessageId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for MessageId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Uuid::try_parse(s)
            .map(Self)
            .map_err(|_| Error::InvalidHeader {
                name: H_ID.into(),
                reason: "not a UUID",
            })
    }
}

/// Message headers: lowercase names, UTF-8 values without control characters.
///
/// Well-known names have accessors (content type, correlation id, reply-to, W3C
/// `traceparent`/`tracestate`). Names starting with `bk-` are reserved for the envelope.
// A vector sorted by name rather than a map, boxed and only when there are headers: most
// envelopes carry none, and an absent box is one word to move and free to clone and drop.
#[derive(Clone, Default)]
#[allow(clippy::box_collection)] // the box keeps it one word in the envelope
pub struct Headers(Option<Box<Vec<(String, String)>>>);

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

fn check_name(name: &str) -> Result<String, &'static str> {
    if name.is_empty() {
        return Err("empty header name");
    }
    if name.len() > MAX_HEADER_NAME {
        return Err("header name longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("header name has a character other than A-Z a-z 0-9 - _ .");
    }
    Ok(name.to_ascii_lowercase())
}

fn check_value(value: &str) -> Result<(), &'static str> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err("header value has a control character");
    }
    if value.len() > MAX_HEADER_BYTES {
        return Err("header value longer than the header block limit");
    }
    Ok(())
}

fn truncated(name: &str) -> String {
    name.chars().take(MAX_HEADER_NAME).collect()
}

impl Headers {
    /// No headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a header, replacing an earlier value. Names are case-insensitive.
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] for a name outside `A-Z a-z 0-9 - _ .`, a reserved `bk-`
    /// name, a control character in the value, or more than [`MAX_HEADERS`] headers.
    pub fn insert(&mut self, name: &str, value: impl Into<String>) -> Result<&mut Self> {
        let key = check_name(name).map_err(|reason| Error::InvalidHeader {
            name: truncated(name),
            reason,
        })?;
        if key.starts_with("bk-") {
            return Err(Error::InvalidHeader {
                name: key,
                reason: "names starting with bk- are reserved",
            });
        }
        self.insert_checked(key, value.into())?;
        Ok(self)
    }

    pub(crate) fn insert_checked(&mut self, key: String, value: String) -> Result<()> {
        check_value(&value).map_err(|reason| Error::InvalidHeader {
            name: key.clone(),
            reason,
        })?;
        match self.find(&key) {
            Ok(at) => {
                if let Some(slot) = self.entries_mut().get_mut(at) {
                    slot.1 = value;
                }
            }
            Err(_) if self.len() >= MAX_HEADERS => {
                return Err(Error::InvalidHeader {
                    name: key,
                    reason: "more than 64 headers",
                });
            }
            Err(at) => self.entries_mut().insert(at, (key, value)),
        }
        Ok(())
    }

    #[inline]
    fn entries(&self) -> &[(String, String)] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    fn entries_mut(&mut self) -> &mut Vec<(String, String)> {
        self.0.get_or_insert_with(Box::default)
    }

    /// Where `name` (lowercase) is, or where it would go.
    fn find(&self, name: &str) -> std::result::Result<usize, usize> {
        self.entries()
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    /// Adds a header whose name is checked and known not to be there yet.
    fn put(&mut self, key: String, value: String) {
        if let Err(at) = self.find(&key) {
            self.entries_mut().insert(at, (key, value));
        }
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.find(name).ok()?;
        let entries = self.entries_mut();
        let (_, value) = entries.remove(at);
        if entries.is_empty() {
            self.0 = None;
        }
        Some(value)
    }

    /// A header's value; `name` is case-insensitive.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        if self.is_empty() {
            return None;
        }
        let at = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.find(&name.to_ascii_lowercase())
        } else {
            self.find(name)
        };
        at.ok()
            .and_then(|at| self.entries().get(at))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries().iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many headers there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether there are none.
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// `content-type`, set by [`Envelope::encode`].
    #[must_use]
    pub fn content_type(&self) -> Option<&str> {
        self.get("content-type")
    }

    /// `correlation-id`, which ties a reply or a chain of messages together.
    #[must_use]
    pub fn correlation_id(&self) -> Option<&str> {
        self.get("correlation-id")
    }

    /// `reply-to`: where a reply should be published.
    #[must_use]
    pub fn reply_to(&self) -> Option<&str> {
        self.get("reply-to")
    }

    /// W3C Trace Context `traceparent`.
    #[must_use]
    pub fn traceparent(&self) -> Option<&str> {
        self.get("traceparent")
    }

    /// W3C Trace Context `tracestate`.
    #[must_use]
    pub fn tracestate(&self) -> Option<&str> {
        self.get("tracestate")
    }
}

/// One message: id, headers, payload, the delivery attempt and timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    id: MessageId,
    headers: Headers,
    payload: Bytes,
    // The times are Unix times as integers, not `SystemTime`s (16 bytes each, and the
    // option of one as large): the envelope is moved several times per delivery.
    /// When it was first published, in milliseconds.
    published_ms: u64,
    /// When this delivery was handed out, in nanoseconds (at least 1).
    delivered_ns: Option<NonZeroU64>,
    attempt: u32,
}

/// Milliseconds since the Unix epoch (0 for a time before it).
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch, at least 1 (so a time at or before the epoch reads
/// back as 1 ns after it) and at most `u64::MAX` (the year 2554).
pub(crate) fn unix_nanos(t: SystemTime) -> NonZeroU64 {
    let nanos = t.duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.as_secs()
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(u64::from(d.subsec_nanos())))
            .unwrap_or(u64::MAX)
    });
    NonZeroU64::new(nanos).unwrap_or(NonZeroU64::MIN)
}

/// Truncates to whole milliseconds, the precision the wire keeps.
pub(crate) fn to_millis(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(unix_millis(t))
}

impl Envelope {
    /// A new message with a fresh id, no headers, attempt 0 and the current time.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        let (id, millis) = crate::id_clock::next_v7_and_millis();
        Self {
            id: MessageId(id),
            headers: Headers::new(),
            payload: payload.into(),
            published_ms: millis,
            delivered_ns: None,
            attempt: 0,
        }
    }

    /// New messages for several payloads, as [`new`](Self::new) makes them one at a time
    /// but with one clock read for all: their ids are UUIDv7s of the same millisecond,
    /// distinct and in the payloads' order (RFC 9562 section 6.2, a counter within the
    /// millisecond). For [`Broker::publish_batch`](crate::Broker::publish_batch).
    ///
    /// ```
    /// use broker_core::Envelope;
    ///
    /// let batch = Envelope::batch(["a", "b", "c"]);
    /// assert_eq!(batch.len(), 3);
    /// assert!(batch.windows(2).all(|w| w[0].id() < w[1].id()));
    /// ```
    pub fn batch<P: Into<Bytes>>(payloads: impl IntoIterator<Item = P>) -> Vec<Self> {
        let millis = crate::id_clock::now_millis();
        payloads
            .into_iter()
            .map(|payload| Self {
                id: MessageId(crate::id_clock::next_v7_at(millis)),
                headers: Headers::new(),
                payload: payload.into(),
                published_ms: millis,
                delivered_ns: None,
                attempt: 0,
            })
            .collect()
    }

    /// A message whose payload is `value` encoded by `codec`, with its `content-type`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be encoded.
    pub fn encode<T: ?Sized, C: crate::Codec<T>>(codec: &C, value: &T) -> Result<Self> {
        let mut envelope = Self::new(codec.encode(value)?);
        envelope
            .headers
            .insert_checked("content-type".into(), codec.content_type().into())?;
        Ok(envelope)
    }

    /// Decodes the payload with `codec`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the payload is not a valid `T`.
    pub fn decode<T, C: crate::Codec<T>>(&self, codec: &C) -> Result<T> {
        codec.decode(&self.payload)
    }

    /// Replaces the id (to publish a message idempotently under a known id).
    #[must_use]
    pub fn with_id(mut self, id: MessageId) -> Self {
        self.id = id;
        self
    }

    /// Adds a header.
    ///
    /// # Errors
    /// As [`Headers::insert`].
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Result<Self> {
        self.headers.insert(name, value)?;
        Ok(self)
    }

    /// The id.
    #[must_use]
    pub fn id(&self) -> MessageId {
        self.id
    }
    /// The headers.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
    /// Which delivery this is: 1 on the first, 0 before any.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// When the message was first published (millisecond precision).
    #[must_use]
    pub fn published_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.published_ms)
    }
    /// When this delivery was handed out, if it is a delivery.
    #[must_use]
    pub fn delivered_at(&self) -> Option<SystemTime> {
        self.delivered_ns
            .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns.get()))
    }

    pub(crate) fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    pub(crate) fn set_published_at(&mut self, at: SystemTime) {
        self.published_ms = unix_millis(at);
    }
    /// As [`set_published_at`](Self::set_published_at) with the time already converted
    /// by [`unix_millis`] (once for a batch).
    pub(crate) fn set_published_at_millis(&mut self, millis: u64) {
        self.published_ms = millis;
    }
    pub(crate) fn set_delivered_at(&mut self, at: Option<SystemTime>) {
        self.delivered_ns = at.map(unix_nanos);
    }
    /// As [`set_delivered_at`](Self::set_delivered_at) with the time already converted
    /// by [`unix_nanos`] (once for a fetch).
    pub(crate) fn set_delivered_at_nanos(&mut self, nanos: Option<NonZeroU64>) {
        self.delivered_ns = nanos;
    }

    /// The header block that carries this envelope on a backend without native headers:
    /// `name: value\r\n` lines, the reserved `bk-id`, `bk-attempt` and `bk-published-at`
    /// first, then the user headers. The payload travels separately.
    #[must_use]
    pub fn to_wire_headers(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        for (name, value) in self.wire_pairs() {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// The reserved and user headers as name/value pairs (for backends with native headers).
    pub fn wire_pairs(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        [
            (H_ID, Cow::Owned(self.id.to_string())),
            (H_ATTEMPT, Cow::Owned(self.attempt.to_string())),
            (H_PUBLISHED, Cow::Owned(self.published_ms.to_string())),
        ]
        .into_iter()
        .chain(self.headers.iter().map(|(k, v)| (k, Cow::Borrowed(v))))
    }

    /// Parses a header block made by [`to_wire_headers`](Self::to_wire_headers) (possibly by
    /// another process or language) and joins it with the payload.
    ///
    /// # Errors
    /// [`Error::WireHeader`] with the line and reason: a line without `: `, a bad name or
    /// value, a duplicate, a missing or malformed `bk-id`, `bk-attempt` or
    /// `bk-published-at`, more than [`MAX_HEADERS`] headers or [`MAX_HEADER_BYTES`] bytes.
    pub fn from_wire(headers: &[u8], payload: Bytes) -> Result<Self> {
        Self::from_pairs(parse_wire(headers)?, payload)
    }

    /// Builds an envelope from name/value pairs that include the reserved ones.
    ///
    /// # Errors
    /// As [`from_wire`](Self::from_wire), with `line` the pair's position from 1.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        payload: Bytes,
    ) -> Result<Self> {
        Self::from_pairs_or(pairs, payload, Reserved::default())
    }

    /// As [`from_pairs`](Self::from_pairs), with the reserved values a backend knows
    /// otherwise (its own message id, delivery metadata) standing in for missing pairs.
    pub(crate) fn from_pairs_or<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        payload: Bytes,
        fallback: Reserved,
    ) -> Result<Self> {
        let mut headers = Headers::new();
        let (mut id, mut attempt, mut published) = (None, None, None);
        for (index, (name, value)) in pairs.into_iter().enumerate() {
            let line = index + 1;
            let err = |reason| Error::WireHeader { line, reason };
            // The reserved names are matched without allocating a lowercase copy.
            let reserved = [H_ID, H_ATTEMPT, H_PUBLISHED]
                .into_iter()
                .find(|r| r.eq_ignore_ascii_case(name));
            let key = match reserved {
                Some(r) => Cow::Borrowed(r),
                None => Cow::Owned(check_name(name).map_err(err)?),
            };
            check_value(value).map_err(err)?;
            match &*key {
                H_ID => {
                    // Only the hyphenated form, the one we write.
                    let parsed = Uuid::try_parse(value)
                        .ok()
                        .filter(|_| value.len() == 36)
                        .ok_or(err("bk-id is not a hyphenated UUID"))?;
                    if id.replace(MessageId(parsed)).is_some() {
                        return Err(err("duplicate bk-id"));
                    }
                }
                H_ATTEMPT => {
                    let parsed = parse_decimal(value).ok_or(err("bk-attempt is not a number"))?;
                    let parsed =
                        u32::try_from(parsed).map_err(|_| err("bk-attempt is too large"))?;
                    if attempt.replace(parsed).is_some() {
                        return Err(err("duplicate bk-attempt"));
                    }
                }
                H_PUBLISHED => {
                    let parsed =
                        parse_decimal(value).ok_or(err("bk-published-at is not a number"))?;
                    if published.replace(parsed).is_some() {
                        return Err(err("duplicate bk-published-at"));
                    }
                }
                _ => {
                    if headers.get(&key).is_some() {
                        return Err(err("duplicate header name"));
                    }
                    if headers.len() >= MAX_HEADERS {
                        return Err(err("more than 64 headers"));
                    }
                    headers.put(key.into_owned(), value.to_owned());
                }
            }
        }
        let missing = |reason| Error::WireHeader { line: 0, reason };
        let published_ms = match published {
            Some(ms) => {
                UNIX_EPOCH
                    .checked_add(Duration::from_millis(ms))
                    .ok_or(missing("bk-published-at is out of range"))?;
                ms
            }
            None => fallback
                .published_at
                .map(unix_millis)
                .ok_or(missing("bk-published-at is missing"))?,
        };
        Ok(Self {
            id: id.or(fallback.id).ok_or(missing("bk-id is missing"))?,
            headers,
            payload,
            published_ms,
            delivered_ns: None,
            attempt: attempt
                .or(fallback.attempt)
                .ok_or(missing("bk-attempt is missing"))?,
        })
    }
}

/// Stand-ins for reserved pairs a message does not carry (see
/// [`Envelope::from_pairs_or`]); `None` keeps a missing pair an error.
#[derive(Debug, Default)]
pub(crate) struct Reserved {
    pub(crate) id: Option<MessageId>,
    pub(crate) attempt: Option<u32>,
    pub(crate) published_at: Option<SystemTime>,
}

/// Digits only (no sign, no spaces), at most 19 of them so the value fits a `u64`.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits a header block into `(name, value)` pairs without allocating per header.
fn parse_wire(block: &[u8]) -> Result<Vec<(&str, &str)>> {
    if block.len() > MAX_HEADER_BYTES {
        return Err(Error::WireHeader {
            line: 0,
            reason: "header block larger than 16 KiB",
        });
    }
    let text = std::str::from_utf8(block).map_err(|e| Error::WireHeader {
        line: 1 + block
            .get(..e.valid_up_to())
            .map_or(0, |ok| ok.iter().filter(|&&b| b == b'\n').count()),
        reason: "not UTF-8",
    })?;
    let mut pairs = Vec::new();
    let mut rest = text;
    let mut line = 0;
    while !rest.is_empty() {
        line += 1;
        let err = |reason| Error::WireHeader { line, reason };
        let (current, after) = rest
            .split_once("\r\n")
            .ok_or(err("line does not end with CRLF"))?;
        rest = after;
        if current.is_empty() {
            return Err(err("empty line"));
        }
        let (name, value) = current
            .split_once(": ")
            .ok_or(err("line is not `name: value`"))?;
        if pairs.len() >= MAX_HEADERS + 3 {
            return Err(err("more than 64 headers"));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn wire_round_trip_keeps_everything() {
        let mut e = Envelope::new(&b"payload"[..])
            .with_header(
                "Traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .unwrap();
        e.set_attempt(3);
        let back = Envelope::from_wire(&e.to_wire_headers(), e.payload().clone()).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.headers().traceparent(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
    }

    #[test]
    fn ids_are_time_ordered_v7() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
    }

    fn wire_err(block: &[u8]) -> (usize, &'static str) {
        match Envelope::from_wire(block, Bytes::new()) {
            Err(Error::WireHeader { line, reason }) => (line, reason),
            other => panic!("expected a wire header error, got {other:?}"),
        }
    }

    #[test]
    fn wire_errors_name_line_and_reason() {
        let id = "bk-id: 01890a5d-ac96-774b-bcce-b302099a8057\r\n";
        assert_eq!(wire_err(b"bk-id 1\r\n"), (1, "line is not `name: value`"));
        assert_eq!(
            wire_err(format!("{id}bk-attempt: 1").as_bytes()),
            (2, "line does not end with CRLF")
        );
        assert_eq!(
            wire_err(format!("{id}bk-attempt: -1\r\n").as_bytes()),
            (2, "bk-attempt is not a number")
        );
        assert_eq!(
            wire_err(format!("{id}bk-attempt: 99999999999\r\n").as_bytes()),
            (2, "bk-attempt is too large")
        );
        assert_eq!(
            wire_err(format!("{id}{id}").as_bytes()),
            (2, "duplicate bk-id")
        );
        assert_eq!(
            wire_err(format!("{id}a b: c\r\n").as_bytes()),
            (
                2,
                "header name has a character other than A-Z a-z 0-9 - _ ."
            )
        );
        assert_eq!(
            wire_err(format!("{id}x: a\x01\r\n").as_bytes()),
            (2, "header value has a control character")
        );
        assert_eq!(wire_err(id.as_bytes()), (0, "bk-published-at is missing"));
        assert_eq!(wire_err(b"\xff: x\r\n"), (1, "not UTF-8"));
        assert_eq!(
            wire_err(format!("{id}X: 1\r\nx: 2\r\n").as_bytes()),
            (3, "duplicate header name")
        );
    }

    #[test]
    fn user_headers_cannot_use_reserved_names() {
        let mut h = Headers::new();
        assert!(h.insert("bk-id", "x").is_err());
        assert!(h.insert("", "x").is_err());
        assert!(h.insert("a\r\nb", "x").is_err());
        assert!(h.insert("ok", "line\nbreak").is_err());
        for i in 0..MAX_HEADERS {
            h.insert(&format!("h{i}"), "v").unwrap();
        }
        assert!(h.insert("one-more", "v").is_err());
        assert!(h.insert("h0", "replaced").is_ok());
    }
}
