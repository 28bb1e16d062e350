//! `Idempotency-Key` (IETF httpapi draft "The Idempotency-Key HTTP Header Field"): a retried
//! non-idempotent request with the same key replays the first response instead of acting
//! twice; the same key with a different request is refused.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use bytes::Bytes;
//! use http::{HeaderMap, Method, StatusCode};
//! use rest_core::{Fingerprint, IdempotencyKey, IdempotencyStore, MemoryIdempotencyStore, Reservation, StoredResponse};
//!
//! let store = MemoryIdempotencyStore::new(Duration::from_secs(3600), 10_000);
//! let mut headers = HeaderMap::new();
//! headers.insert("idempotency-key", "\"abc-1\"".parse().unwrap());
//! let key = IdempotencyKey::from_headers(&headers)?.unwrap();
//! let print = Fingerprint::of(&Method::POST, "/users", b"{\"name\":\"a\"}");
//! let now = SystemTime::now();
//! assert!(matches!(store.begin(&key, &print, now)?, Reservation::Started));
//! store.complete(&key, StoredResponse::new(StatusCode::CREATED, Vec::new(), Bytes::from("{}")), now);
//! assert!(matches!(store.begin(&key, &print, now)?, Reservation::Replay(_)));
//! # Ok::<(), rest_core::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The header's name.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A validated idempotency key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Reads the key from the headers: the draft's structured-field string (`"..."`), or a
    /// bare value for clients that omit the quotes. `Ok(None)` when absent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHeader`] (400) when repeated, empty, longer than 255 or not visible ASCII.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>> {
        let invalid = |reason: &str| Error::InvalidHeader {
            name: "Idempotency-Key",
            reason: reason.to_owned(),
        };
        let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(invalid("sent more than once"));
        }
        let raw = value
            .to_str()
            .map_err(|_| invalid("not visible ASCII"))?
            .trim();
        let key = match raw.strip_prefix('"') {
            Some(rest) => rest
                .strip_suffix('"')
                .ok_or_else(|| invalid("unclosed quote"))?,
            None => raw,
        };
        if key.is_empty() || key.len() > 255 {
            return Err(invalid("must be 1 to 255 characters"));
        }
        if !key
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(invalid(
                "must be visible ASCII without quotes or backslashes",
            ));
        }
        Ok(Some(Self(key.to_owned())))
    }

    /// The key's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of what makes two requests "the same" (method, path, body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// SHA-256 over the method, the path (with query) and the body, length-prefixed.
    #[must_use]
    pub fn of(method: &Method, path_and_query: &str, body: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        for part in [method.as_str().as_bytes(), path_and_query.as_bytes(), body] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Self(hasher.finalize().into())
    }
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// Its status.
    pub status: StatusCode,
    /// The headers to replay (e.g. `Content-Type`, `Location`, `ETag`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Its body.
    pub body: Bytes,
}

impl StoredResponse {
    /// A stored response.
    #[must_use]
    pub fn new(status: StatusCode, headers: Vec<(HeaderName, HeaderValue)>, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }

    /// The response to send on replay.
    #[must_use]
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = Response::new(B::from(self.body.clone()));
        *response.status_mut() = self.status;
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response
    }
}

/// What [`IdempotencyStore::begin`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// The key is new and now reserved: process the request, then
    /// [`complete`](IdempotencyStore::complete) or [`abandon`](IdempotencyStore::abandon).
    Started,
    /// The same request was already processed: send this response again.
    Replay(StoredResponse),
}

/// Where keys and their responses live. Implement it over Redis or SQL for several servers.
pub trait IdempotencyStore: Send + Sync {
    /// Reserves `key` for a request with `fingerprint`, or finds what it already holds.
    ///
    /// # Errors
    ///
    /// [`Error::IdempotencyKeyReused`] (422) when the key belongs to another request,
    /// [`Error::IdempotencyKeyInProgress`] (409) while the first request still runs,
    /// [`Error::IdempotencyStoreFull`] (503) when no room is left.
    fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: SystemTime,
    ) -> Result<Reservation>;

    /// Stores the response of a reserved key.
    fn complete(&self, key: &IdempotencyKey, response: StoredResponse, now: SystemTime);

    /// Releases a reservation whose request failed before acting, so a retry can run.
    fn abandon(&self, key: &IdempotencyKey);
}

#[derive(Debug)]
struct Entry {
    fingerprint: Fingerprint,
    response: Option<StoredResponse>,
    expires: SystemTime,
}

/// An in-memory store with a time to live and a capacity (one process only).
#[derive(Debug)]
pub struct MemoryIdempotencyStore {
    entries: Mutex<HashMap<IdempotencyKey, Entry>>,
    ttl: Duration,
    capacity: usize,
}

impl MemoryIdempotencyStore {
    /// A store that keeps keys for `ttl` and at most `capacity` of them.
    #[must_use]
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdempotencyKey, Entry>> {
        // A panic elsewhere cannot leave the map half-updated: every update is one call.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: SystemTime,
    ) -> Result<Reservation> {
        let mut entries = self.lock();
        if let Some(entry) = entries.get(key)
            && entry.expires > now
        {
            if entry.fingerprint != *fingerprint {
                return Err(Error::IdempotencyKeyReused);
            }
            return match &entry.response {
                Some(response) => Ok(Reservation::Replay(response.clone())),
                None => Err(Error::IdempotencyKeyInProgress),
            };
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| entry.expires > now);
            if entries.len() >= self.capacity {
                return Err(Error::IdempotencyStoreFull);
            }
        }
        entries.insert(
            key.clone(),
            Entry {
                fingerprint: *fingerprint,
                response: None,
                expires: now + self.ttl,
            },
        );
        Ok(Reservation::Started)
    }

    fn complete(&self, key: &IdempotencyKey, response: StoredResponse, now: SystemTime) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.response = Some(response);
            entry.expires = now + self.ttl;
        }
    }

    fn abandon(&self, key: &IdempotencyKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &'static str) -> IdempotencyKey {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static(value));
        IdempotencyKey::from_headers(&headers).unwrap().unwrap()
    }

    #[test]
    fn replays_refuses_other_payloads_and_expires() {
        let store = MemoryIdempotencyStore::new(Duration::from_secs(60), 2);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let k = key("\"k1\"");
        let a = Fingerprint::of(&Method::POST, "/users", b"a");
        let b = Fingerprint::of(&Method::POST, "/users", b"b");
        assert_eq!(store.begin(&k, &a, now).unwrap(), Reservation::Started);
        assert_eq!(store.begin(&k, &a, now).unwrap_err().status(), 409);
        let stored = StoredResponse::new(StatusCode::CREATED, vec![], Bytes::from_static(b"x"));
        store.complete(&k, stored.clone(), now);
        assert_eq!(
            store.begin(&k, &a, now).unwrap(),
            Reservation::Replay(stored)
        );
        assert_eq!(store.begin(&k, &b, now).unwrap_err().status(), 422);
        let later = now + Duration::from_secs(61);
        assert_eq!(store.begin(&k, &b, later).unwrap(), Reservation::Started);
    }

    #[test]
    fn capacity_is_bounded() {
        let store = MemoryIdempotencyStore::new(Duration::from_secs(60), 1);
        let now = SystemTime::UNIX_EPOCH;
        let a = Fingerprint::of(&Method::POST, "/", b"");
        store.begin(&key("one"), &a, now).unwrap();
        assert_eq!(store.begin(&key("two"), &a, now).unwrap_err().status(), 503);
        store.abandon(&key("one"));
        assert!(store.begin(&key("two"), &a, now).is_ok());
    }

    #[test]
    fn keys_are_validated() {
        let mut headers = HeaderMap::new();
        assert!(IdempotencyKey::from_headers(&headers).unwrap().is_none());
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("\"\""));
        assert!(IdempotencyKey::from_headers(&headers).is_err());
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("\"open"));
        assert!(IdempotencyKey::from_headers(&headers).is_err());
        let long = "x".repeat(256);
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(&long).unwrap());
        assert!(IdempotencyKey::from_headers(&headers).is_err());
        assert_eq!(key("\"abc\"").as_str(), "abc");
    }
}
