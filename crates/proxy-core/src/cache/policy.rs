//! RFC 9111 decisions for a shared cache: whether a response may be stored (section 3),
//! what is kept of it (section 3.1), how fresh it is (section 4.2), whether a stored
//! response answers a request (section 4), how to validate it (section 4.3) and what a
//! `304` changes (section 3.2). Everything takes the time from the caller.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, DATE, ETAG, EXPIRES,
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
    PRAGMA, RANGE, SET_COOKIE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, request};

use super::range::ContentRange;
use crate::CacheControl;
use crate::http_date::parse_http_date;

/// RFC 9111 section 1.2.2: delta-seconds too large to compute with are taken as 2^31.
const MAX_DELTA: u64 = 1 << 31;

/// `CDN-Cache-Control` (RFC 9213).
const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// Status codes whose responses are heuristically cacheable (RFC 9110 section 15.1).
const HEURISTIC: [u16; 12] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Status codes whose caching semantics this cache knows, for `must-understand` (RFC 9111
/// section 5.2.2.3).
const UNDERSTOOD: [u16; 21] = [
    200, 203, 204, 206, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 500, 501, 502,
    503, 504,
];

/// Header fields a cache never stores (RFC 9111 section 3.1: hop-by-hop fields and the
/// proxy's own authentication fields).
const NOT_STORED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
];

/// Fields that describe the stored body's bytes, which a `304` does not change (RFC 9111
/// section 3.2: `Content-Length`, and fields the stored response depends upon).
const DESCRIBE_STORED_BYTES: [&str; 4] = [
    "content-length",
    "content-range",
    "content-encoding",
    "content-md5",
];

/// How a cache behaves where RFC 9111 leaves the choice to it.
///
/// ```
/// use std::time::Duration;
/// use proxy_core::CacheOptions;
///
/// let options = CacheOptions::default()
///     .store_set_cookie(false)
///     .max_heuristic(Duration::from_secs(3600));
/// assert!(options.shared);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheOptions {
    /// A shared cache (a proxy's, the default) honours `private` and `s-maxage` and does
    /// not store answers to requests with `Authorization` unless the response allows it.
    pub shared: bool,
    /// The heuristic freshness lifetime, in percent of the time since `Last-Modified`
    /// (RFC 9111 section 4.2.2 suggests 10).
    pub heuristic_percent: u32,
    /// The longest heuristic freshness lifetime.
    pub max_heuristic: Duration,
    /// Whether responses with `Set-Cookie` are stored (with the field, as RFC 9111
    /// section 3.1 requires) or passed through unstored, as nginx and Varnish do by default,
    /// so that a cookie minted for one user is never replayed to another.
    pub store_set_cookie: bool,
    /// Whether `CDN-Cache-Control` (RFC 9213) replaces `Cache-Control` and `Expires` for
    /// this cache.
    pub cdn_cache_control: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            shared: true,
            heuristic_percent: 10,
            max_heuristic: Duration::from_secs(86_400),
            store_set_cookie: true,
            cdn_cache_control: true,
        }
    }
}

impl CacheOptions {
    /// Sets [`CacheOptions::shared`].
    #[must_use]
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Sets [`CacheOptions::store_set_cookie`].
    #[must_use]
    pub fn store_set_cookie(mut self, store: bool) -> Self {
        self.store_set_cookie = store;
        self
    }

    /// Sets [`CacheOptions::max_heuristic`].
    #[must_use]
    pub fn max_heuristic(mut self, max: Duration) -> Self {
        self.max_heuristic = max;
        self
    }

    /// Sets [`CacheOptions::cdn_cache_control`].
    #[must_use]
    pub fn cdn_cache_control(mut self, honour: bool) -> Self {
        self.cdn_cache_control = honour;
        self
    }
}

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotStorable {
    /// Only responses to `GET` are stored.
    Method,
    /// An interim or `304` response, an unknown status with `must-understand`, or a `206`
    /// without one satisfiable `Content-Range`.
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private`, in a shared cache.
    Private,
    /// The request carried `Authorization` and the response did not allow sharing it
    /// (RFC 9111 section 3.5).
    Authorization,
    /// The response has `Set-Cookie` and [`CacheOptions::store_set_cookie`] is off.
    SetCookie,
    /// Neither freshness information nor a validator: a stored copy could never be used.
    Useless,
}

/// Whether a stale response may be served, and why it is stale-served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleUse {
    /// Within `stale-while-revalidate` (RFC 5861 section 3): serve it and revalidate in the
    /// background.
    WhileRevalidate,
    /// The origin answered with a 5xx: within `stale-if-error` (RFC 5861 section 4).
    Error,
    /// The origin could not be reached (RFC 9111 section 4.2.4), and nothing forbids it.
    Disconnected,
}

/// The outcome of looking a request up among the stored variants of its URI.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Lookup {
    /// This stored response answers the request as it is (fresh, or stale within the
    /// client's `max-stale`); build the answer with [`CacheEntry::respond`].
    Fresh(Arc<CacheEntry>),
    /// A stored response matches but must be validated first: send `revalidation`
    /// upstream, then [`CachePolicy::freshen`] on a `304`.
    Stale {
        /// The matching stored response.
        entry: Arc<CacheEntry>,
        /// The conditional request to send (RFC 9111 section 4.3.1).
        revalidation: Box<request::Parts>,
    },
    /// Nothing stored answers the request.
    Miss,
}

/// A stored response with what the cache computed from it when it arrived.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// The selecting request header values (RFC 9111 section 4.1); `None` for `Vary: *`.
    selection: Option<Vec<(HeaderName, String)>>,
    /// For a stored `206`: the range held.
    range: Option<ContentRange>,
    response_time: SystemTime,
    corrected_initial_age: Duration,
    lifetime: Duration,
    directives: CacheControl,
}

/// RFC 9111 decisions with a set of [`CacheOptions`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use proxy_core::{CachePolicy, Lookup};
///
/// let policy = CachePolicy::default();
/// let (request, ()) = Request::get("http://example.com/a").body(()).unwrap().into_parts();
/// let (response, ()) = Response::builder()
///     .header("cache-control", "max-age=60")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let now = SystemTime::now();
/// let entry = policy
///     .entry(&request, &response, Bytes::from_static(b"hello"), now, now)
///     .unwrap();
/// let variants = [std::sync::Arc::new(entry)];
/// // Thirty seconds later it is fresh; two minutes later it must be validated.
/// let later = now + Duration::from_secs(30);
/// let Lookup::Fresh(hit) = policy.lookup(&request, &variants, later) else { panic!() };
/// let answer = hit.respond(&request, later);
/// assert_eq!(answer.headers()["age"], "30");
/// assert_eq!(answer.body().as_ref(), b"hello");
/// let much_later = now + Duration::from_secs(120);
/// assert!(matches!(policy.lookup(&request, &variants, much_later), Lookup::Stale { .. }));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CachePolicy {
    options: CacheOptions,
}

impl CachePolicy {
    /// A policy with these options.
    #[must_use]
    pub fn new(options: CacheOptions) -> Self {
        Self { options }
    }

    /// The options in force.
    #[must_use]
    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// The directives this cache obeys in a response: `CDN-Cache-Control` when present and
    /// well-formed (RFC 9213), else `Cache-Control`. The flag says whether the targeted
    /// field was used (`Expires` is then ignored).
    #[must_use]
    pub fn response_directives(&self, headers: &HeaderMap) -> (CacheControl, bool) {
        if self.options.cdn_cache_control
            && headers.contains_key(CDN_CACHE_CONTROL)
            && let Some(cc) = joined(headers, CDN_CACHE_CONTROL)
                .as_deref()
                .and_then(CacheControl::parse_targeted)
        {
            return (cc, true);
        }
        (
            CacheControl::parse(&joined(headers, CACHE_CONTROL.as_str()).unwrap_or_default()),
            false,
        )
    }

    /// Whether a response with `status` and `headers` to `request` may be stored (RFC 9111
    /// section 3).
    ///
    /// # Errors
    ///
    /// [`NotStorable`] says why not.
    pub fn storable(
        &self,
        request: &request::Parts,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<(), NotStorable> {
        if request.method != Method::GET {
            return Err(NotStorable::Method);
        }
        let code = status.as_u16();
        if code < 200 || status == StatusCode::NOT_MODIFIED {
            return Err(NotStorable::Status);
        }
        if status == StatusCode::PARTIAL_CONTENT
            && content_range(headers).is_none_or(|r| r.complete_length.is_none())
        {
            return Err(NotStorable::Status);
        }
        let request_cc = request_directives(&request.headers);
        if request_cc.no_store {
            return Err(NotStorable::NoStore);
        }
        let (cc, targeted) = self.response_directives(headers);
        if cc.must_understand {
            if !UNDERSTOOD.contains(&code) {
                return Err(NotStorable::Status);
            }
        } else if cc.no_store {
            return Err(NotStorable::NoStore);
        }
        if self.options.shared && cc.private {
            return Err(NotStorable::Private);
        }
        if self.options.shared
            && request.headers.contains_key(AUTHORIZATION)
            && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
        {
            return Err(NotStorable::Authorization);
        }
        if !self.options.store_set_cookie && headers.contains_key(SET_COOKIE) {
            return Err(NotStorable::SetCookie);
        }
        let explicit = cc.max_age.is_some()
            || (self.options.shared && cc.s_maxage.is_some())
            || (!targeted && headers.contains_key(EXPIRES));
        let validators = headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED);
        let heuristic = cc.public || HEURISTIC.contains(&code);
        if !(explicit || (heuristic && validators)) {
            // Storable in principle (section 3), but never usable: no freshness and no
            // validator means every later request goes to the origin anyway.
            return Err(NotStorable::Useless);
        }
        Ok(())
    }

    /// Builds the entry to store for a response (head `response`, whole `body`) to
    /// `request`, sent at `request_time` and received at `response_time`: the fields kept
    /// (section 3.1: no hop-by-hop fields, none named by `private=`/`no-cache=`), the
    /// selecting request headers (section 4.1), its initial age and freshness lifetime
    /// (section 4.2).
    ///
    /// # Errors
    ///
    /// [`NotStorable`] when [`CachePolicy::storable`] refuses it.
    pub fn entry(
        &self,
        request: &request::Parts,
        response: &http::response::Parts,
        body: Bytes,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Result<CacheEntry, NotStorable> {
        self.storable(request, response.status, &response.headers)?;
        let range = if response.status == StatusCode::PARTIAL_CONTENT {
            let range = content_range(&response.headers).ok_or(NotStorable::Status)?;
            if range.len() != body.len() as u64 {
                return Err(NotStorable::Status);
            }
            Some(range)
        } else {
            None
        };
        let mut headers = response.headers.clone();
        self.strip_unstored(&mut headers);
        Ok(self.build(
            response.status,
            headers,
            body,
            selection(&request.headers, &response.headers),
            range,
            request_time,
            response_time,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        selection: Option<Vec<(HeaderName, String)>>,
        range: Option<ContentRange>,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> CacheEntry {
        let (directives, targeted) = self.response_directives(&headers);
        let date = single_date(&headers, DATE).flatten();
        let date_value = date.unwrap_or(response_time);
        // Section 4.2.3.
        let apparent_age = response_time.duration_since(date_value).unwrap_or_default();
        let response_delay = response_time
            .duration_since(request_time)
            .unwrap_or_default();
        let corrected_age_value = age_value(&headers).saturating_add(response_delay);
        let corrected_initial_age = apparent_age.max(corrected_age_value);
        let lifetime = self.lifetime(status, &headers, &directives, targeted, date_value);
        CacheEntry {
            status,
            headers,
            body,
            selection,
            range,
            response_time,
            corrected_initial_age,
            lifetime,
            directives,
        }
    }

    /// Section 4.2.1 and 4.2.2.
    fn lifetime(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        cc: &CacheControl,
        targeted: bool,
        date: SystemTime,
    ) -> Duration {
        if self.options.shared
            && let Some(s) = cc.s_maxage
        {
            return Duration::from_secs(s.min(MAX_DELTA));
        }
        if let Some(m) = cc.max_age {
            return Duration::from_secs(m.min(MAX_DELTA));
        }
        if !targeted && headers.contains_key(EXPIRES) {
            // Section 5.3: an invalid date (or more than one) means "already expired".
            return match single_date(headers, EXPIRES) {
                Some(Some(expires)) => expires.duration_since(date).unwrap_or_default(),
                _ => Duration::ZERO,
            };
        }
        if (cc.public || HEURISTIC.contains(&status.as_u16()))
            && let Some(Some(modified)) = single_date(headers, LAST_MODIFIED)
        {
            let since = date.duration_since(modified).unwrap_or_default();
            let heuristic = since.as_secs() / 100 * u64::from(self.options.heuristic_percent);
            return Duration::from_secs(heuristic).min(self.options.max_heuristic);
        }
        Duration::ZERO
    }

    /// Removes the fields a cache does not store or must not serve without validation.
    fn strip_unstored(&self, headers: &mut HeaderMap) {
        let listed: Vec<String> = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        for name in NOT_STORED.iter().map(|n| (*n).to_owned()).chain(listed) {
            headers.remove(name.as_str());
        }
        let (cc, _) = self.response_directives(headers);
        // Section 5.2.2.4 and 5.2.2.7: qualified `no-cache` and (shared) `private` fields.
        let mut fields = cc.no_cache_fields;
        if self.options.shared {
            fields.extend(cc.private_fields);
        }
        for name in fields {
            headers.remove(name.as_str());
        }
        if !self.options.store_set_cookie {
            headers.remove(SET_COOKIE);
        }
    }

    /// Finds the stored response (among `variants` of the request's URI, newest first)
    /// that can answer `request` at `now` (RFC 9111 section 4).
    #[must_use]
    pub fn lookup(
        &self,
        request: &request::Parts,
        variants: &[Arc<CacheEntry>],
        now: SystemTime,
    ) -> Lookup {
        if request.method != Method::GET && request.method != Method::HEAD {
            return Lookup::Miss;
        }
        let range = super::range::requested(&request.headers);
        let Some(entry) = variants.iter().find(|e| {
            e.matches_vary(&request.headers)
                && e.range
                    .is_none_or(|held| range.is_some_and(|r| held.covers(r)))
        }) else {
            return Lookup::Miss;
        };
        if self.usable_without_validation(request, entry, now) {
            return Lookup::Fresh(entry.clone());
        }
        Lookup::Stale {
            entry: entry.clone(),
            revalidation: Box::new(revalidation(request, entry)),
        }
    }

    fn usable_without_validation(
        &self,
        request: &request::Parts,
        entry: &CacheEntry,
        now: SystemTime,
    ) -> bool {
        let req = request_directives(&request.headers);
        if req.no_cache || entry.directives.no_cache {
            return false;
        }
        let age = entry.age(now);
        if req.max_age.is_some_and(|max| age.as_secs() > max) {
            return false;
        }
        if let Some(min_fresh) = req.min_fresh
            && entry.lifetime < age.saturating_add(Duration::from_secs(min_fresh))
        {
            return false;
        }
        if entry.lifetime > age {
            return true;
        }
        let staleness = age - entry.lifetime;
        req.max_stale
            .is_some_and(|max| staleness.as_secs() <= max && !self.stale_forbidden(entry))
    }

    /// Section 4.2.4: `must-revalidate`, `no-cache`, and for a shared cache
    /// `proxy-revalidate` and `s-maxage`, forbid serving the response stale.
    fn stale_forbidden(&self, entry: &CacheEntry) -> bool {
        let cc = &entry.directives;
        cc.must_revalidate
            || cc.no_cache
            || (self.options.shared && (cc.proxy_revalidate || cc.s_maxage.is_some()))
    }

    /// Whether `entry`, stale at `now`, may be served stale for `why` (RFC 5861 windows,
    /// RFC 9111 section 4.2.4; a client's own `stale-if-error` counts too).
    #[must_use]
    pub fn may_serve_stale(
        &self,
        request: &request::Parts,
        entry: &CacheEntry,
        why: StaleUse,
        now: SystemTime,
    ) -> bool {
        if self.stale_forbidden(entry) {
            return false;
        }
        let staleness = entry.age(now).saturating_sub(entry.lifetime);
        let within = |window: Option<u64>| window.is_some_and(|w| staleness.as_secs() <= w);
        match why {
            StaleUse::WhileRevalidate => within(entry.directives.stale_while_revalidate),
            StaleUse::Error => {
                within(entry.directives.stale_if_error)
                    || within(request_directives(&request.headers).stale_if_error)
            }
            StaleUse::Disconnected => true,
        }
    }

    /// The stored response refreshed by a `304` (head `not_modified`) to its validation
    /// (RFC 9111 sections 3.2 and 4.3.4): the `304`'s fields replace the stored ones (not
    /// those describing the stored bytes: `Content-Length`, `Content-Range`,
    /// `Content-Encoding`, `Content-MD5`; nor fields never stored), and age and freshness
    /// start again.
    /// `request` is the client's request the validation was made for.
    #[must_use]
    pub fn freshen(
        &self,
        request: &request::Parts,
        entry: &CacheEntry,
        not_modified: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> CacheEntry {
        let mut update = not_modified.clone();
        self.strip_unstored(&mut update);
        // Fields the stored bytes depend on (section 3.2) stay as stored.
        for name in DESCRIBE_STORED_BYTES {
            update.remove(name);
        }
        let mut headers = entry.headers.clone();
        for name in update.keys() {
            headers.remove(name);
        }
        for (name, value) in &update {
            headers.append(name.clone(), value.clone());
        }
        if !not_modified.contains_key(AGE) {
            headers.remove(AGE);
        }
        self.build(
            entry.status,
            headers,
            entry.body.clone(),
            selection(&request.headers, &entry.headers),
            entry.range,
            request_time,
            response_time,
        )
    }

    /// Whether a `304` (its fields `not_modified`) validates `entry` (RFC 9111 section
    /// 4.3.4): the same strong entity tag, else the same `Last-Modified`, else neither
    /// carries a validator.
    #[must_use]
    pub fn validates(&self, entry: &CacheEntry, not_modified: &HeaderMap) -> bool {
        let stored_etag = entry.headers.get(ETAG);
        if let Some(tag) = not_modified.get(ETAG) {
            return stored_etag.is_some_and(|s| strong_equal(s, tag) || weak_equal(s, tag));
        }
        if let Some(modified) = not_modified.get(LAST_MODIFIED) {
            return entry.headers.get(LAST_MODIFIED) == Some(modified);
        }
        true
    }
}

impl CacheEntry {
    /// The stored status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stored fields (what the origin sent, less those never stored).
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The stored body (for a `206`, the range held).
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The response's directives as this cache read them.
    #[must_use]
    pub fn directives(&self) -> &CacheControl {
        &self.directives
    }

    /// Its freshness lifetime (RFC 9111 section 4.2.1).
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// When it was received.
    #[must_use]
    pub fn response_time(&self) -> SystemTime {
        self.response_time
    }

    /// Its current age at `now` (RFC 9111 section 4.2.3).
    #[must_use]
    pub fn age(&self, now: SystemTime) -> Duration {
        let resident = now.duration_since(self.response_time).unwrap_or_default();
        self.corrected_initial_age.saturating_add(resident)
    }

    /// Whether it is fresh at `now`.
    #[must_use]
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.lifetime > self.age(now)
    }

    /// Whether this is a stored `206` (part of a representation).
    #[must_use]
    pub fn is_partial(&self) -> bool {
        self.range.is_some()
    }

    /// Roughly how many bytes it holds, for a store's bound.
    #[must_use]
    pub fn weight(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        (self.body.len() + headers + 256) as u64
    }

    /// Whether `request_headers` select this response (RFC 9111 section 4.1): every field
    /// named by its `Vary` has the same value, after combining field lines and trimming
    /// whitespace around commas; `Vary: *` matches nothing.
    #[must_use]
    pub fn matches_vary(&self, request_headers: &HeaderMap) -> bool {
        let Some(selection) = &self.selection else {
            return false;
        };
        selection
            .iter()
            .all(|(name, value)| normalized(request_headers, name).as_deref() == Some(value))
    }

    /// Whether `other` is the same variant (the same selecting header values), so that
    /// storing one replaces the other.
    #[must_use]
    pub fn same_variant(&self, other: &CacheEntry) -> bool {
        match (&self.selection, &other.selection) {
            (Some(a), Some(b)) => a.len() == b.len() && a.iter().all(|pair| b.contains(pair)),
            _ => false,
        }
    }

    /// The answer to `request` from this entry at `now` (RFC 9111 section 4): the stored
    /// status and fields with `Age` (section 5.1); `304` when the client's own conditional
    /// matches (RFC 9110 section 13.1); one byte range when asked (RFC 9110 section 14:
    /// `206`, or `416` for a range outside the representation); an empty body for `HEAD`.
    #[must_use]
    pub fn respond(&self, request: &request::Parts, now: SystemTime) -> http::Response<Bytes> {
        let mut headers = self.headers.clone();
        let age = self.age(now).as_secs().min(MAX_DELTA);
        headers.insert(AGE, HeaderValue::from(age));
        let mut status = self.status;
        let mut body = self.body.clone();
        if (status == StatusCode::OK || self.range.is_some())
            && not_modified(&request.headers, &self.headers)
        {
            headers.remove(CONTENT_LENGTH);
            headers.remove(CONTENT_RANGE);
            return response(StatusCode::NOT_MODIFIED, headers, Bytes::new());
        }
        let range = super::range::requested(&request.headers)
            .filter(|_| if_range_holds(&request.headers, &self.headers));
        match (self.range, range) {
            (Some(held), Some(asked)) => {
                if let Some((first, last, part)) = held.slice(asked, &self.body) {
                    body = part;
                    status = StatusCode::PARTIAL_CONTENT;
                    set_content_range(&mut headers, first, last, held.complete_length);
                }
            }
            (None, Some(asked)) if status == StatusCode::OK => {
                let whole = ContentRange::whole(self.body.len() as u64);
                match whole.slice(asked, &self.body) {
                    Some((first, last, part)) => {
                        body = part;
                        status = StatusCode::PARTIAL_CONTENT;
                        set_content_range(&mut headers, first, last, whole.complete_length);
                    }
                    None => {
                        status = StatusCode::RANGE_NOT_SATISFIABLE;
                        body = Bytes::new();
                        if let Ok(v) =
                            HeaderValue::from_str(&format!("bytes */{}", self.body.len()))
                        {
                            headers.insert(CONTENT_RANGE, v);
                        }
                    }
                }
            }
            _ => {}
        }
        // Usually the stored field already says it (a whole 200, one field line): then it is
        // kept as it is.
        let mut stored_length = headers.get_all(CONTENT_LENGTH).iter();
        let kept = stored_length
            .next()
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            == Some(body.len())
            && stored_length.next().is_none();
        if !kept {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        if request.method == Method::HEAD {
            body = Bytes::new();
        }
        response(status, headers, body)
    }
}

fn response(status: StatusCode, headers: HeaderMap, body: Bytes) -> http::Response<Bytes> {
    let mut out = http::Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

fn set_content_range(headers: &mut HeaderMap, first: u64, last: u64, complete: Option<u64>) {
    let complete = complete.map_or_else(|| "*".to_owned(), |n| n.to_string());
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{complete}")) {
        headers.insert(CONTENT_RANGE, v);
    }
}

/// The conditional request that validates `entry` for `request` (RFC 9111 section 4.3.1):
/// the client's request without its own conditionals (they are answered from the
/// validated response), with the stored entity tag and `Last-Modified`; for a stored full
/// response without `Range`, whose answer then serves any range.
fn revalidation(request: &request::Parts, entry: &CacheEntry) -> request::Parts {
    let mut parts = request.clone();
    for name in [
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_MATCH,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
    ] {
        parts.headers.remove(name);
    }
    if entry.range.is_none() {
        parts.headers.remove(RANGE);
    }
    if let Some(etag) = entry.headers.get(ETAG) {
        parts.headers.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = entry.headers.get(LAST_MODIFIED) {
        parts.headers.insert(IF_MODIFIED_SINCE, modified.clone());
    }
    parts
}

/// The request's `Cache-Control`, with `Pragma: no-cache` read as `no-cache` when there is
/// no `Cache-Control` (RFC 9111 section 5.4).
fn request_directives(headers: &HeaderMap) -> CacheControl {
    match joined(headers, CACHE_CONTROL.as_str()) {
        Some(value) => CacheControl::parse(&value),
        None => {
            let no_cache = headers
                .get_all(PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"));
            CacheControl {
                no_cache,
                ..CacheControl::default()
            }
        }
    }
}

/// All field lines of `name` joined with `,`; `None` when absent.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(","))
    }
}

/// A date field: `None` when absent, `Some(None)` when present but invalid or repeated.
fn single_date(headers: &HeaderMap, name: HeaderName) -> Option<Option<SystemTime>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(None);
    }
    Some(first.to_str().ok().and_then(parse_http_date))
}

/// Section 5.1: the first member of `Age` when it is a non-negative integer (clamped to
/// 2^31), else no age.
fn age_value(headers: &HeaderMap) -> Duration {
    let Some(first) = headers.get(AGE).and_then(|v| v.to_str().ok()) else {
        return Duration::ZERO;
    };
    let first = first.split(',').next().unwrap_or("").trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Duration::ZERO;
    }
    Duration::from_secs(first.parse::<u64>().unwrap_or(MAX_DELTA).min(MAX_DELTA))
}

fn content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let mut values = headers.get_all(CONTENT_RANGE).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    ContentRange::parse(first.to_str().ok()?)
}

/// The selecting header values of a response's `Vary`; `None` for `Vary: *`.
fn selection(request: &HeaderMap, response: &HeaderMap) -> Option<Vec<(HeaderName, String)>> {
    let mut out: Vec<(HeaderName, String)> = Vec::new();
    for name in response
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if name == "*" {
            return None;
        }
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value = normalized(request, &name).unwrap_or_default();
        out.push((name, value));
    }
    Some(out)
}

/// A request field's lines joined, with whitespace around commas removed (an absent field
/// is the empty string, so absent only matches absent).
fn normalized(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let lines: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if lines.is_empty() {
        return Some(String::new());
    }
    let text = String::from_utf8_lossy(&lines.join(&b","[..])).into_owned();
    Some(text.split(',').map(str::trim).collect::<Vec<_>>().join(","))
}

fn opaque(tag: &HeaderValue) -> &[u8] {
    let bytes = tag.as_bytes();
    bytes.strip_prefix(b"W/").unwrap_or(bytes)
}

fn strong_equal(a: &HeaderValue, b: &HeaderValue) -> bool {
    !a.as_bytes().starts_with(b"W/") && !b.as_bytes().starts_with(b"W/") && a == b
}

fn weak_equal(a: &HeaderValue, b: &HeaderValue) -> bool {
    opaque(a) == opaque(b)
}

/// Whether the client's conditional `GET` is answered `304` by a stored response with
/// `stored` fields (RFC 9110 sections 13.1.2 and 13.1.3, weak comparison;
/// `If-Modified-Since` only without `If-None-Match`).
fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    if request.contains_key(IF_NONE_MATCH) {
        let Some(etag) = stored.get(ETAG) else {
            return false;
        };
        return request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|t| t == "*" || HeaderValue::from_str(t).is_ok_and(|t| weak_equal(&t, etag)));
    }
    // The stored date is parsed only when the client sent one to compare it with.
    let Some(Some(since)) = single_date(request, IF_MODIFIED_SINCE) else {
        return false;
    };
    single_date(stored, LAST_MODIFIED).is_some_and(|modified| modified.is_some_and(|m| m <= since))
}

/// RFC 9110 section 13.1.5: a range is served only when `If-Range` is absent or names the
/// stored strong entity tag or exact `Last-Modified` date.
fn if_range_holds(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let Some(condition) = request.get(IF_RANGE) else {
        return true;
    };
    if condition.as_bytes().starts_with(b"\"") {
        return stored.get(ETAG).is_some_and(|e| strong_equal(e, condition));
    }
    let Some(date) = condition.to_str().ok().and_then(parse_http_date) else {
        return false;
    };
    single_date(stored, LAST_MODIFIED) == Some(Some(date))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::format_http_date;
    use http::{Request, Response};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn get(headers: &[(&str, &str)]) -> request::Parts {
        let mut b = Request::get("http://a.example/x");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = Response::builder().status(status);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn store(
        policy: &CachePolicy,
        req: &request::Parts,
        status: u16,
        headers: &[(&str, &str)],
    ) -> Result<Arc<CacheEntry>, NotStorable> {
        policy
            .entry(
                req,
                &head(status, headers),
                Bytes::from_static(b"0123456789"),
                at(0),
                at(0),
            )
            .map(Arc::new)
    }

    #[test]
    fn storability() {
        let p = CachePolicy::default();
        let r = get(&[]);
        assert!(store(&p, &r, 200, &[("cache-control", "max-age=10")]).is_ok());
        assert!(store(&p, &r, 599, &[("cache-control", "max-age=10")]).is_ok());
        assert_eq!(
            store(&p, &r, 200, &[("cache-control", "max-age=10, No-Store")]).err(),
            Some(NotStorable::NoStore)
        );
        assert_eq!(
            store(&p, &r, 200, &[("cache-control", "private, max-age=10")]).err(),
            Some(NotStorable::Private)
        );
        assert_eq!(
            store(
                &p,
                &r,
                599,
                &[("cache-control", "no-store, must-understand, max-age=9")]
            )
            .err(),
            Some(NotStorable::Status)
        );
        assert!(
            store(
                &p,
                &r,
                200,
                &[("cache-control", "no-store, must-understand, max-age=9")]
            )
            .is_ok()
        );
        assert_eq!(store(&p, &r, 200, &[]).err(), Some(NotStorable::Useless));
        let auth = get(&[("authorization", "Basic x")]);
        assert_eq!(
            store(&p, &auth, 200, &[("cache-control", "max-age=10")]).err(),
            Some(NotStorable::Authorization)
        );
        assert!(store(&p, &auth, 200, &[("cache-control", "max-age=10, public")]).is_ok());
        let no_cookies = CachePolicy::new(CacheOptions::default().store_set_cookie(false));
        assert_eq!(
            store(
                &no_cookies,
                &r,
                200,
                &[("cache-control", "max-age=1"), ("set-cookie", "a=b")]
            )
            .err(),
            Some(NotStorable::SetCookie)
        );
        // CDN-Cache-Control wins when well-formed, is ignored when not.
        assert!(
            store(
                &p,
                &r,
                200,
                &[
                    ("cdn-cache-control", "max-age=60"),
                    ("cache-control", "no-store")
                ]
            )
            .is_ok()
        );
        assert!(
            store(
                &p,
                &r,
                200,
                &[
                    ("cdn-cache-control", "max-age=60, &&"),
                    ("cache-control", "no-store")
                ]
            )
            .is_err()
        );
    }

    #[test]
    fn freshness_and_age() {
        let p = CachePolicy::default();
        let r = get(&[]);
        let date = format_http_date(at(0));
        let e = store(
            &p,
            &r,
            200,
            &[
                ("cache-control", "max-age=3600"),
                ("age", "7200, 0"),
                ("date", &date),
            ],
        )
        .unwrap();
        assert!(!e.is_fresh(at(0)), "the first Age member counts");
        let e = store(
            &p,
            &r,
            200,
            &[("cache-control", "max-age=3600"), ("age", "abc")],
        )
        .unwrap();
        assert!(e.is_fresh(at(10)));
        let e = store(
            &p,
            &r,
            200,
            &[
                ("cache-control", "max-age=3600"),
                ("age", "99999999999999999999"),
            ],
        )
        .unwrap();
        assert_eq!(e.age(at(0)), Duration::from_secs(MAX_DELTA));
        let expires = format_http_date(at(100));
        let e = store(&p, &r, 200, &[("expires", &expires), ("date", &date)]).unwrap();
        assert_eq!(e.lifetime(), Duration::from_secs(100));
        let e = store(
            &p,
            &r,
            200,
            &[
                ("expires", "Thu, 18  Aug  2050 02:01:18 GMT"),
                ("date", &date),
            ],
        )
        .unwrap();
        assert_eq!(
            e.lifetime(),
            Duration::ZERO,
            "an invalid Expires is in the past"
        );
        let modified = format_http_date(at(0) - Duration::from_secs(10_000));
        let e = store(
            &p,
            &r,
            200,
            &[("last-modified", &modified), ("date", &date)],
        )
        .unwrap();
        assert_eq!(e.lifetime(), Duration::from_secs(1000), "10% heuristic");
        let e = store(
            &p,
            &r,
            200,
            &[("cache-control", "max-age=10, s-maxage=100")],
        )
        .unwrap();
        assert_eq!(e.lifetime(), Duration::from_secs(100));
    }

    #[test]
    fn lookup_vary_and_request_directives() {
        let p = CachePolicy::default();
        let r = get(&[("accept-language", "en, fr")]);
        let e = store(
            &p,
            &r,
            200,
            &[
                ("cache-control", "max-age=100"),
                ("vary", "Accept-Language"),
                ("etag", "\"v1\""),
            ],
        )
        .unwrap();
        let variants = [e];
        assert!(matches!(
            p.lookup(&get(&[("accept-language", "en,fr")]), &variants, at(1)),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            p.lookup(&get(&[("accept-language", "de")]), &variants, at(1)),
            Lookup::Miss
        ));
        let Lookup::Stale { revalidation, .. } = p.lookup(
            &get(&[("accept-language", "en, fr"), ("cache-control", "no-cache")]),
            &variants,
            at(1),
        ) else {
            panic!()
        };
        assert_eq!(revalidation.headers["if-none-match"], "\"v1\"");
        assert_eq!(revalidation.headers["accept-language"], "en, fr");
        let old = get(&[
            ("accept-language", "en, fr"),
            ("cache-control", "max-stale=50"),
        ]);
        assert!(matches!(
            p.lookup(&old, &variants, at(120)),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            p.lookup(&old, &variants, at(200)),
            Lookup::Stale { .. }
        ));
        let star = store(
            &p,
            &r,
            200,
            &[("cache-control", "max-age=100"), ("vary", "*")],
        )
        .unwrap();
        assert!(matches!(p.lookup(&r, &[star], at(1)), Lookup::Miss));
    }

    #[test]
    fn stale_rules_and_freshen() {
        let p = CachePolicy::default();
        let r = get(&[]);
        let e = store(
            &p,
            &r,
            200,
            &[
                (
                    "cache-control",
                    "max-age=1, stale-while-revalidate=10, stale-if-error=100",
                ),
                ("etag", "\"a\""),
                ("x", "1"),
            ],
        )
        .unwrap();
        assert!(p.may_serve_stale(&r, &e, StaleUse::WhileRevalidate, at(5)));
        assert!(!p.may_serve_stale(&r, &e, StaleUse::WhileRevalidate, at(20)));
        assert!(p.may_serve_stale(&r, &e, StaleUse::Error, at(20)));
        assert!(p.may_serve_stale(&r, &e, StaleUse::Disconnected, at(500)));
        let strict = store(
            &p,
            &r,
            200,
            &[("cache-control", "max-age=1, must-revalidate")],
        )
        .unwrap();
        assert!(!p.may_serve_stale(&r, &strict, StaleUse::Disconnected, at(5)));
        let mut update = HeaderMap::new();
        update.insert("x", HeaderValue::from_static("2"));
        update.insert("content-length", HeaderValue::from_static("0"));
        update.insert("content-encoding", HeaderValue::from_static("br"));
        update.insert("etag", HeaderValue::from_static("\"a\""));
        assert!(p.validates(&e, &update));
        let fresh = p.freshen(&r, &e, &update, at(50), at(50));
        assert!(fresh.is_fresh(at(50)));
        assert_eq!(fresh.headers()["x"], "2");
        assert!(!fresh.headers().contains_key("content-length"));
        assert!(!fresh.headers().contains_key("content-encoding"));
        assert_eq!(fresh.body(), e.body());
    }

    #[test]
    fn respond_ranges_conditionals_head() {
        let p = CachePolicy::default();
        let r = get(&[]);
        let e = store(
            &p,
            &r,
            200,
            &[("cache-control", "max-age=100"), ("etag", "\"a\"")],
        )
        .unwrap();
        let out = e.respond(&get(&[("range", "bytes=0-1")]), at(1));
        assert_eq!(
            (out.status(), out.body().as_ref()),
            (StatusCode::PARTIAL_CONTENT, &b"01"[..])
        );
        assert_eq!(out.headers()["content-range"], "bytes 0-1/10");
        assert_eq!(
            e.respond(&get(&[("range", "bytes=-1")]), at(1))
                .body()
                .as_ref(),
            b"9"
        );
        assert_eq!(
            e.respond(&get(&[("range", "bytes=3-")]), at(1))
                .body()
                .as_ref(),
            b"3456789"
        );
        let out = e.respond(&get(&[("range", "bytes=20-")]), at(1));
        assert_eq!(out.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(out.headers()["content-range"], "bytes */10");
        let out = e.respond(
            &get(&[("range", "bytes=0-1"), ("if-range", "\"b\"")]),
            at(1),
        );
        assert_eq!(out.status(), StatusCode::OK);
        let out = e.respond(&get(&[("if-none-match", "W/\"a\"")]), at(1));
        assert_eq!(out.status(), StatusCode::NOT_MODIFIED);
        let mut head_request = get(&[]);
        head_request.method = Method::HEAD;
        let out = e.respond(&head_request, at(1));
        assert!(out.body().is_empty());
        assert_eq!(out.headers()["content-length"], "10");
        // A stored 206 serves ranges inside it, and nothing else.
        let ranged = get(&[("range", "bytes=-5")]);
        let part = Arc::new(
            p.entry(
                &ranged,
                &head(
                    206,
                    &[
                        ("cache-control", "max-age=100"),
                        ("content-range", "bytes 5-9/10"),
                    ],
                ),
                Bytes::from_static(b"56789"),
                at(0),
                at(0),
            )
            .unwrap(),
        );
        let variants = [part];
        let Lookup::Fresh(hit) = p.lookup(&get(&[("range", "bytes=6-8")]), &variants, at(1)) else {
            panic!()
        };
        assert_eq!(
            hit.respond(&get(&[("range", "bytes=6-8")]), at(1))
                .body()
                .as_ref(),
            b"678"
        );
        assert!(matches!(p.lookup(&r, &variants, at(1)), Lookup::Miss));
    }
}
