//! An RFC 9111 shared cache as sans-IO parts a proxy composes: [`CachePolicy`] decides
//! (storable? fresh? how to validate? what does a `304` change?), [`CacheEntry`] is a stored
//! response that answers requests (ranges, conditionals, `HEAD`), a [`CacheStore`] keeps
//! entries by [`cache_key`] ([`MemoryStore`]: bounded in bytes), and a [`Coalescer`] lets
//! one request per key go to the origin while the others wait. Nothing here performs IO or
//! reads a clock; the caller passes `now`.
//!
//! ```
//! use std::time::SystemTime;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use proxy_core::{CachePolicy, CacheStore, Lookup, MemoryStore, cache_key};
//!
//! let policy = CachePolicy::default();
//! let store = MemoryStore::new(64 << 20);
//! let (request, ()) = Request::get("/logo.svg")
//!     .header("host", "example.com")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! let key = cache_key(&request);
//! let now = SystemTime::now();
//!
//! // A miss: the proxy forwards the request, then stores what may be stored.
//! assert!(matches!(policy.lookup(&request, &store.get(&key), now), Lookup::Miss));
//! let (response, ()) = Response::builder()
//!     .header("cache-control", "max-age=300")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! if let Ok(entry) = policy.entry(&request, &response, Bytes::from_static(b"<svg/>"), now, now) {
//!     store.put(&key, entry);
//! }
//!
//! // A hit, even for a range of it.
//! let (ranged, ()) = Request::get("/logo.svg")
//!     .header("host", "example.com")
//!     .header("range", "bytes=0-3")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! let Lookup::Fresh(entry) = policy.lookup(&ranged, &store.get(&key), now) else { panic!() };
//! let answer = entry.respond(&ranged, now);
//! assert_eq!(answer.status(), StatusCode::PARTIAL_CONTENT);
//! assert_eq!(answer.body().as_ref(), b"<svg");
//! ```

mod coalesce;
mod policy;
mod range;
mod store;

pub use coalesce::{Coalescer, Joined, Lead, Wait};
pub use policy::{CacheEntry, CacheOptions, CachePolicy, Lookup, NotStorable, StaleUse};
pub use store::{CacheStore, MemoryStore};

use http::header::{CONTENT_LOCATION, HOST, LOCATION};
use http::{HeaderMap, Method, StatusCode, request};

/// The key a request's responses are stored under: the lowercased `Host` (or the URI's
/// authority) and the path with query (RFC 9111 section 2: the target URI).
#[must_use]
pub fn cache_key(request: &request::Parts) -> String {
    let host = request
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri.authority().map(http::uri::Authority::as_str))
        .unwrap_or("");
    let target = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // One allocation: this runs for every request a caching route sees.
    let mut key = String::with_capacity(host.len() + target.len());
    key.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    key.push_str(target);
    key
}

/// The keys a response to an unsafe request invalidates (RFC 9111 section 4.4): none for a
/// safe method or an unsuccessful status; else the target URI and the same-origin
/// `Location` and `Content-Location` URIs.
///
/// ```
/// use http::{HeaderMap, Request, StatusCode};
/// use proxy_core::invalidated_keys;
///
/// let (post, ()) = Request::post("/items/1").header("host", "a.example").body(()).unwrap().into_parts();
/// let mut response = HeaderMap::new();
/// response.insert("location", "/items".parse().unwrap());
/// response.insert("content-location", "http://b.example/x".parse().unwrap());
/// assert_eq!(
///     invalidated_keys(&post, StatusCode::CREATED, &response),
///     ["a.example/items/1", "a.example/items"]
/// );
/// ```
#[must_use]
pub fn invalidated_keys(
    request: &request::Parts,
    status: StatusCode,
    response: &HeaderMap,
) -> Vec<String> {
    let safe = matches!(
        request.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if safe || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let key = cache_key(request);
    let host = key
        .split_once('/')
        .map_or(key.as_str(), |(h, _)| h)
        .to_owned();
    let mut keys = vec![key];
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(target) = response
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.parse::<http::Uri>().ok())
        else {
            continue;
        };
        let same_origin = target
            .authority()
            .is_none_or(|a| a.as_str().eq_ignore_ascii_case(&host));
        if same_origin {
            let path = target.path_and_query().map_or("/", |pq| pq.as_str());
            let other = format!("{host}{path}");
            if !keys.contains(&other) {
                keys.push(other);
            }
        }
    }
    keys
}
