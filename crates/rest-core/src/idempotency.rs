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
//! # async fn run(store: MemoryIdempotencyStore, key: IdempotencyKey, print: Fingerprint) -> rest_core::Result<()> {
//! let now = SystemTime::now();
//! assert!(matches!(store.begin(&key, &print, now).await?, Reservation::Started));
//! let created = StoredResponse::new(StatusCode::CREATED, Vec::new(), Bytes::from("{}"));
//! store.complete(&key, &print, created, now).await?;
//! assert!(matches!(store.begin(&key, &print, now).await?, Reservation::Replay(_)));
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(store, key, print))?;
//! # Ok::<(), rest_core::Error>(())
//! ```
//!
//! The store is a trait: [`MemoryIdempotencyStore`] serves one process; with several
//! instances behind one load balancer a retry may land on another instance, so they share a
//! store (`RedisIdempotencyStore`, feature `redis`).

use std::collections::HashMap;
use std::future::Future;
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

    /// The digest, for stores that keep it.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A digest read back from a store.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
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

    /// The response as bytes, for stores that keep it outside the process: the status, the
    /// headers (each name and value length-prefixed) and the body. [`StoredResponse::decode`]
    /// reads it back.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.body.len());
        out.extend_from_slice(&self.status.as_u16().to_be_bytes());
        let count = u16::try_from(self.headers.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for (name, value) in self.headers.iter().take(usize::from(count)) {
            for part in [name.as_str().as_bytes(), value.as_bytes()] {
                let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(part.get(..len as usize).unwrap_or(part));
            }
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// Reads what [`StoredResponse::encode`] wrote; `None` when it is not that.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = bytes.split_at_checked(n)?;
            *bytes = tail;
            Some(head)
        }
        fn length(bytes: &mut &[u8]) -> Option<usize> {
            let raw: [u8; 4] = take(bytes, 4)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(raw)).ok()
        }
        let mut rest = bytes;
        let status: [u8; 2] = take(&mut rest, 2)?.try_into().ok()?;
        let status = StatusCode::from_u16(u16::from_be_bytes(status)).ok()?;
        let count: [u8; 2] = take(&mut rest, 2)?.try_into().ok()?;
        let mut headers = Vec::new();
        for _ in 0..u16::from_be_bytes(count) {
            let n = length(&mut rest)?;
            let name = HeaderName::from_bytes(take(&mut rest, n)?).ok()?;
            let n = length(&mut rest)?;
            let value = HeaderValue::from_bytes(take(&mut rest, n)?).ok()?;
            headers.push((name, value));
        }
        Some(Self::new(status, headers, Bytes::copy_from_slice(rest)))
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

/// Where keys and their responses live. [`MemoryIdempotencyStore`] for one process;
/// `RedisIdempotencyStore` (feature `redis`) or your own over SQL for several.
///
/// `begin` must be atomic: of two concurrent calls for one new key, exactly one gets
/// [`Reservation::Started`], the other [`Error::IdempotencyKeyInProgress`] (409).
/// Implementations map their own failures to [`Error::IdempotencyStoreUnavailable`] (503):
/// a request that cannot be checked is not run.
pub trait IdempotencyStore: Send + Sync {
    /// Reserves `key` for a request with `fingerprint`, or finds what it already holds.
    ///
    /// # Errors
    ///
    /// [`Error::IdempotencyKeyReused`] (422) when the key belongs to another request,
    /// [`Error::IdempotencyKeyInProgress`] (409) while the first request still runs,
    /// [`Error::IdempotencyStoreFull`] (503) when no room is left,
    /// [`Error::IdempotencyStoreUnavailable`] (503) when the store cannot be reached.
    fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: SystemTime,
    ) -> impl Future<Output = Result<Reservation>> + Send;

    /// Stores the response of the request that reserved `key` with `fingerprint`. Does
    /// nothing when the reservation is gone (expired, or now another request's).
    ///
    /// # Errors
    ///
    /// [`Error::IdempotencyStoreUnavailable`] when the store cannot be reached.
    fn complete(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        response: StoredResponse,
        now: SystemTime,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Releases the reservation of a request that failed before acting, so a retry can run.
    /// A completed key, or one reserved by another request, is left alone.
    ///
    /// # Errors
    ///
    /// [`Error::IdempotencyStoreUnavailable`] when the store cannot be reached.
    fn abandon(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
    ) -> impl Future<Output = Result<()>> + Send;
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
    async fn begin(
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

    async fn complete(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        response: StoredResponse,
        now: SystemTime,
    ) -> Result<()> {
        if let Some(entry) = self.lock().get_mut(key)
            && entry.fingerprint == *fingerprint
            && entry.response.is_none()
        {
            entry.response = Some(response);
            entry.expires = now + self.ttl;
        }
        Ok(())
    }

    async fn abandon(&self, key: &IdempotencyKey, fingerprint: &Fingerprint) -> Result<()> {
        let mut entries = self.lock();
        if entries
            .get(key)
            .is_some_and(|entry| entry.fingerprint == *fingerprint && entry.response.is_none())
        {
            entries.remove(key);
        }
        Ok(())
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

    #[tokio::test]
    async fn replays_refuses_other_payloads_and_expires() {
        let store = MemoryIdempotencyStore::new(Duration::from_secs(60), 2);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let k = key("\"k1\"");
        let a = Fingerprint::of(&Method::POST, "/users", b"a");
        let b = Fingerprint::of(&Method::POST, "/users", b"b");
        assert_eq!(
            store.begin(&k, &a, now).await.unwrap(),
            Reservation::Started
        );
        assert_eq!(store.begin(&k, &a, now).await.unwrap_err().status(), 409);
        let stored = StoredResponse::new(StatusCode::CREATED, vec![], Bytes::from_static(b"x"));
        // Another request's completion or abandonment does not touch the reservation.
        store.complete(&k, &b, stored.clone(), now).await.unwrap();
        store.abandon(&k, &b).await.unwrap();
        assert_eq!(store.begin(&k, &a, now).await.unwrap_err().status(), 409);
        store.complete(&k, &a, stored.clone(), now).await.unwrap();
        // A completed key is not abandoned.
        store.abandon(&k, &a).await.unwrap();
        assert_eq!(
            store.begin(&k, &a, now).await.unwrap(),
            Reservation::Replay(stored)
        );
        assert_eq!(store.begin(&k, &b, now).await.unwrap_err().status(), 422);
        let later = now + Duration::from_secs(61);
        assert_eq!(
            store.begin(&k, &b, later).await.unwrap(),
            Reservation::Started
        );
    }

    #[tokio::test]
    async fn capacity_is_bounded() {
        let store = MemoryIdempotencyStore::new(Duration::from_secs(60), 1);
        let now = SystemTime::UNIX_EPOCH;
        let a = Fingerprint::of(&Method::POST, "/", b"");
        store.begin(&key("one"), &a, now).await.unwrap();
        assert_eq!(
            store
                .begin(&key("two"), &a, now)
                .await
                .unwrap_err()
                .status(),
            503
        );
        store.abandon(&key("one"), &a).await.unwrap();
        assert!(store.begin(&key("two"), &a, now).await.is_ok());
    }

    #[test]
    fn stored_responses_round_trip_and_garbage_is_refused() {
        let stored = StoredResponse::new(
            StatusCode::CREATED,
            vec![
                (http::header::LOCATION, HeaderValue::from_static("/users/7")),
                (
                    http::header::ETAG,
                    HeaderValue::from_bytes(b"\"\xe9t\xe9\"").unwrap(),
                ),
            ],
            Bytes::from_static(b"{\"id\":7}"),
        );
        let bytes = stored.encode();
        assert_eq!(StoredResponse::decode(&bytes), Some(stored));
        for cut in 0..12 {
            assert_eq!(StoredResponse::decode(&bytes[..cut]), None, "{cut}");
        }
        assert_eq!(StoredResponse::decode(&[0xff; 64]), None);
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
