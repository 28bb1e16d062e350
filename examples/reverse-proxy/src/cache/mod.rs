//! The response cache: RFC 9111 decisions from `http-cache-semantics` (shared-cache mode),
//! bodies in a `quick_cache` store bounded in bytes, request coalescing per key, RFC 5861
//! `stale-if-error`, and invalidation after unsafe methods (RFC 9111 section 4.4).
//!
//! A response that carries `Set-Cookie` is never stored (nginx and Varnish behave the same
//! by default): a cookie minted for one user would be replayed to others by a hit, a
//! stale-while-revalidate or stale-if-error answer, or a 304 merge; a 304's own
//! `Set-Cookie` goes to the user whose request caused it, never into the stored headers.
//! A URL whose answer turned out unstorable is not coalesced for [`PASS_FOR`]: its
//! requests go to the origin side by side instead of one after another.
//!
//! [`cached`] and [`invalidate`] (in `serve.rs`) answer requests through the cache; this
//! file is the store and the freshness rules.

mod serve;

pub(crate) use serve::{cached, invalidate};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_cache_semantics::{CacheOptions, CachePolicy};
use proxy_core::CacheControl;
use quick_cache::Weighter;

/// One stored response.
pub(crate) struct Stored {
    pub(crate) policy: CachePolicy,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// When it stops being fresh (for stale-if-error).
    pub(crate) fresh_until: SystemTime,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) stale_while_revalidate: Option<Duration>,
}

type Variants = Arc<Vec<Arc<Stored>>>;

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Variants> for ByBytes {
    fn weight(&self, key: &String, value: &Variants) -> u64 {
        let bytes: usize = value
            .iter()
            .map(|s| {
                s.body.len()
                    + s.headers
                        .iter()
                        .map(|(n, v)| n.as_str().len() + v.len() + 32)
                        .sum::<usize>()
                    + 256
            })
            .sum();
        (key.len() + bytes) as u64
    }
}

pub(crate) struct Cache {
    store: quick_cache::sync::Cache<String, Variants, ByBytes>,
    pub(crate) max_object: u64,
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Keys whose last answer was not storable, and until when they skip coalescing.
    passes: Mutex<HashMap<String, Instant>>,
}

/// How long a URL whose answer was not storable skips request coalescing (Varnish calls
/// this hit-for-miss).
pub(crate) const PASS_FOR: Duration = Duration::from_secs(60);

/// Most variants kept per URL (one per `Vary` combination).
const MAX_VARIANTS: usize = 8;

pub(crate) fn options() -> CacheOptions {
    CacheOptions {
        shared: true,
        ..CacheOptions::default()
    }
}

impl Cache {
    pub(crate) fn new(max_bytes: u64, max_object: u64) -> Self {
        let items = usize::try_from(max_bytes / 4096).unwrap_or(1024).max(16);
        Self {
            store: quick_cache::sync::Cache::with_weighter(items, max_bytes.max(1), ByBytes),
            max_object,
            inflight: Mutex::new(HashMap::new()),
            passes: Mutex::new(HashMap::new()),
        }
    }

    /// Records that `key`'s answer could not be stored: its requests stop waiting for
    /// each other for a while.
    pub(crate) fn mark_pass(&self, key: &str, now: Instant) {
        let mut map = self
            .passes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, until| *until > now);
            if map.len() > 10_000 {
                map.clear();
            }
        }
        map.insert(key.to_owned(), now + PASS_FOR);
    }

    /// Whether `key` recently answered with something not storable.
    pub(crate) fn is_pass(&self, key: &str, now: Instant) -> bool {
        let mut map = self
            .passes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(key) {
            Some(until) if *until > now => true,
            Some(_) => {
                map.remove(key);
                false
            }
            None => false,
        }
    }

    /// A stored answer ends the pass.
    fn end_pass(&self, key: &str) {
        let mut map = self
            .passes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !map.is_empty() {
            map.remove(key);
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Variants> {
        self.store.get(key)
    }

    pub(crate) fn insert(&self, key: &str, mut stored: Stored) {
        // Never kept, whoever calls: see the module docs.
        stored.headers.remove(http::header::SET_COOKIE);
        self.end_pass(key);
        let stored = Arc::new(stored);
        let mut variants: Vec<Arc<Stored>> = vec![stored.clone()];
        if let Some(old) = self.store.get(key) {
            // Keep other variants: those whose Vary-selected request headers differ.
            let vary: Vec<String> = vary_names(&stored.headers);
            variants.extend(
                old.iter()
                    .filter(|o| {
                        vary_names(&o.headers) != vary
                            || !vary.is_empty() && differs(o, &stored, &vary)
                    })
                    .take(MAX_VARIANTS - 1)
                    .cloned(),
            );
        }
        self.store.insert(key.to_owned(), Arc::new(variants));
    }

    pub(crate) fn remove(&self, key: &str) {
        self.store.remove(key);
    }

    /// A lock held by the one request that fetches `key` while others wait for it.
    pub(crate) fn fetch_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        map.entry(key.to_owned()).or_default().clone()
    }

    pub(crate) fn release(&self, key: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Two references: the map's and ours.
        if Arc::strong_count(&lock) <= 2 {
            map.remove(key);
        }
    }

    pub(crate) fn weight(&self) -> u64 {
        self.store.weight()
    }
}

fn vary_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names
}

/// Whether two stored variants were selected by different request header values.
fn differs(a: &Stored, b: &Stored, vary: &[String]) -> bool {
    vary.iter().any(|n| {
        let key = format!("x-proxy-vary-{n}");
        a.headers.get(&key) != b.headers.get(&key)
    })
}

/// Records the Vary-selected request header values on a stored response (removed before
/// serving), so variants can be told apart on insert.
pub(crate) fn note_vary(request: &HeaderMap, response: &mut HeaderMap) {
    for name in vary_names(response) {
        let joined: Vec<&[u8]> = request
            .get_all(name.as_str())
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let joined = joined.join(&b", "[..]);
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(format!("x-proxy-vary-{name}").as_bytes()),
            HeaderValue::from_bytes(&joined),
        ) {
            response.insert(k, v);
        }
    }
}

pub(crate) fn strip_notes(headers: &mut HeaderMap) {
    let notes: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-proxy-vary-"))
        .cloned()
        .collect();
    for n in notes {
        headers.remove(n);
    }
}

pub(crate) fn stale_while_revalidate(headers: &HeaderMap) -> Option<Duration> {
    let joined: Vec<&str> = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    CacheControl::parse(&joined.join(","))
        .stale_while_revalidate
        .map(Duration::from_secs)
}

pub(crate) fn stale_if_error(headers: &HeaderMap) -> Option<Duration> {
    let joined: Vec<&str> = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    CacheControl::parse(&joined.join(","))
        .stale_if_error
        .map(Duration::from_secs)
}

/// Whether a stored response satisfies the client's own conditional request, so the
/// answer is 304 (RFC 9110 section 13.1.2 and 13.1.3, weak comparison for GET).
pub(crate) fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    if let Some(inm) = request
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let Some(etag) = stored.get(http::header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        return inm.trim() == "*" || inm.split(',').any(|t| weak(t) == weak(etag));
    }
    if let (Some(ims), Some(lm)) = (
        request
            .get(http::header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(httpdate_parse),
        stored
            .get(http::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(httpdate_parse),
    ) {
        return lm <= ims;
    }
    false
}

fn httpdate_parse(v: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(v).ok()
}

const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// The headers the cache policy should see when the origin sent `CDN-Cache-Control`.
pub(crate) fn cdn_view(headers: &HeaderMap) -> Option<HeaderMap> {
    if !headers.contains_key(CDN_CACHE_CONTROL) {
        return None;
    }
    let mut view = headers.clone();
    view.remove(http::header::CACHE_CONTROL);
    view.remove(http::header::EXPIRES);
    view.remove(http::header::PRAGMA);
    for v in headers.get_all(CDN_CACHE_CONTROL) {
        view.append(http::header::CACHE_CONTROL, v.clone());
    }
    Some(view)
}

/// Puts the origin's `Cache-Control` and `Expires` back on a response built from a policy
/// that saw the `CDN-Cache-Control` view.
pub(crate) fn restore_origin_freshness(stored: &HeaderMap, out: &mut HeaderMap) {
    if !stored.contains_key(CDN_CACHE_CONTROL) {
        return;
    }
    for name in [
        http::header::CACHE_CONTROL,
        http::header::EXPIRES,
        http::header::PRAGMA,
    ] {
        out.remove(&name);
        for v in stored.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
}

/// RFC 9111 section 1.2.2: a delta-seconds value (`max-age`, `Age`, ...) too large to
/// compute with is taken as 2^31 seconds. Larger values overflowed the arithmetic of the
/// freshness calculation (`Age: 18446744073709551615` panicked).
const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// A delta-seconds text clamped to [`MAX_DELTA_SECONDS`], or `None` when it is within it
/// (or not a number, which the policy ignores).
fn clamped_delta(text: &str) -> Option<String> {
    let digits = text.trim().trim_matches('"');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match digits.parse::<u64>() {
        Ok(n) if n <= MAX_DELTA_SECONDS => None,
        _ => Some(MAX_DELTA_SECONDS.to_string()),
    }
}

/// The response headers the cache policy sees: `CDN-Cache-Control` in place of
/// `Cache-Control` (RFC 9213), and every delta-seconds clamped (RFC 9111 section 1.2.2).
pub(crate) fn policy_view(headers: &HeaderMap) -> HeaderMap {
    let mut view = cdn_view(headers).unwrap_or_else(|| headers.clone());
    let ages: Vec<HeaderValue> = view
        .get_all(http::header::AGE)
        .iter()
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(clamped_delta)
                .and_then(|c| HeaderValue::from_str(&c).ok())
                .unwrap_or_else(|| v.clone())
        })
        .collect();
    if !ages.is_empty() {
        view.remove(http::header::AGE);
        for v in ages {
            view.append(http::header::AGE, v);
        }
    }
    let directives: Vec<HeaderValue> = view
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .map(|v| {
            let Ok(text) = v.to_str() else {
                return v.clone();
            };
            let mut changed = false;
            let rewritten: Vec<String> = text
                .split(',')
                .map(|d| match d.split_once('=') {
                    Some((name, value)) => match clamped_delta(value) {
                        Some(c) => {
                            changed = true;
                            format!("{}={c}", name.trim())
                        }
                        None => d.trim().to_owned(),
                    },
                    None => d.trim().to_owned(),
                })
                .collect();
            if changed {
                HeaderValue::from_str(&rewritten.join(", ")).unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            }
        })
        .collect();
    if !directives.is_empty() {
        view.remove(http::header::CACHE_CONTROL);
        for v in directives {
            view.append(http::header::CACHE_CONTROL, v);
        }
    }
    view
}

/// The cache's decision on one response.
pub(crate) struct Assessment {
    pub(crate) policy: CachePolicy,
    /// RFC 9111 storable, and without `Set-Cookie`.
    pub(crate) storable: bool,
    pub(crate) fresh_until: SystemTime,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) stale_while_revalidate: Option<Duration>,
}

/// Decides whether a response to `request` may be stored and until when it is fresh.
pub(crate) fn assess(
    request: &http::request::Parts,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Assessment {
    let mut check = http::Response::new(());
    *check.status_mut() = status;
    *check.headers_mut() = policy_view(headers);
    let policy = CachePolicy::new_options(request, &check, now, options());
    let fresh_until = fresh_until(&policy, now);
    Assessment {
        storable: policy.is_storable() && !headers.contains_key(http::header::SET_COOKIE),
        policy,
        fresh_until,
        stale_if_error: stale_if_error(headers),
        stale_while_revalidate: stale_while_revalidate(headers),
    }
}

/// `now` plus the policy's time to live, never overflowing.
pub(crate) fn fresh_until(policy: &CachePolicy, now: SystemTime) -> SystemTime {
    now.checked_add(policy.time_to_live(now)).unwrap_or(now)
}

/// How the proxy's cache reads a response's headers (see [`cache_freshness`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheFreshness {
    /// Whether the response would be stored (RFC 9111 section 3, and no `Set-Cookie`).
    pub storable: bool,
    /// How long it stays fresh from `now`.
    pub time_to_live: Duration,
    /// Its age at `now` (the `Age` header plus time since `now`, RFC 9111 section 4.2.3).
    pub age: Duration,
    /// The RFC 5861 `stale-while-revalidate` window.
    pub stale_while_revalidate: Option<Duration>,
    /// The RFC 5861 `stale-if-error` window.
    pub stale_if_error: Option<Duration>,
}

/// How the cache judges a response with `status` and `headers` to a plain `GET /`
/// received at `now`: the same computation the proxy runs before storing a response
/// (`CDN-Cache-Control`, delta-seconds clamped to 2^31 as RFC 9111 section 1.2.2 says,
/// `Set-Cookie` never stored). Public for the fuzz target `reverse_proxy_cache_headers`;
/// it never panics, whatever the headers.
#[must_use]
pub fn cache_freshness(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> CacheFreshness {
    let mut request = http::Request::new(());
    request
        .headers_mut()
        .insert(http::header::HOST, HeaderValue::from_static("a"));
    let (parts, ()) = request.into_parts();
    let assessment = assess(&parts, status, headers, now);
    // The same policy later, as a stale lookup sees it.
    let later = now.checked_add(Duration::from_secs(3600)).unwrap_or(now);
    let _ = assessment.policy.before_request(&parts, later);
    CacheFreshness {
        storable: assessment.storable,
        time_to_live: assessment.policy.time_to_live(now),
        age: assessment.policy.age(later),
        stale_while_revalidate: assessment.stale_while_revalidate,
        stale_if_error: assessment.stale_if_error,
    }
}
