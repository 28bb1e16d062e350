//! The client side: an RFC 6265bis cookie store (section 5, "User Agent Requirements").
//!
//! ```
//! use cookie_jar::{CookieStore, RequestContext};
//! use time::OffsetDateTime;
//! use url::Url;
//!
//! let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
//! let mut store = CookieStore::new();
//! let url = Url::parse("https://shop.example.com/cart/add").unwrap();
//! let ctx = RequestContext::same_site();
//! store.store(&url, ["sid=1; Path=/; Secure; HttpOnly", "tmp=2; Domain=example.com; Path=/"], &ctx, now);
//!
//! let next = Url::parse("https://www.example.com/").unwrap();
//! let header = store.cookie_header(&next, &ctx, now).unwrap();
//! assert_eq!(header, "tmp=2"); // `sid` is host-only for shop.example.com
//! ```
//!
//! The store is a map from a cookie's domain field to the cookies with that domain, so
//! building a `Cookie` header visits only the buckets of the request host and its parent
//! domains (a handful of hash lookups) instead of every stored cookie.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};

use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::{Host, Url};

use crate::cookie_date::parse_cookie_date;
use crate::error::Result;

/// Which specification the store follows where they differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// RFC 6265 (2011): nameless cookies are dropped, `SameSite` is ignored, a secure cookie
    /// may be set from an insecure origin.
    Rfc6265,
    /// RFC 6265bis (draft 20): nameless cookies (`Set-Cookie: foo`) are kept with an empty
    /// name, `SameSite` with Lax as default, prefixes, 400-day cap, 4096/1024 byte limits,
    /// secure cookies only from secure origins, no overwriting them from insecure ones.
    #[default]
    Rfc6265bis,
}

/// How many cookies the store keeps before evicting (RFC 6265bis section 6.1 asks for at
/// least 50 per domain and 3000 in all; these are the defaults and the floors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Cookies sharing one domain field.
    pub per_domain: usize,
    /// Cookies in the whole store.
    pub total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_domain: 50,
            total: 3000,
        }
    }
}

/// The context of a request, for `SameSite` and `HttpOnly` decisions (RFC 6265bis 5.2, 5.8.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    method: Method,
    same_site: bool,
    top_level_navigation: bool,
    http_api: bool,
    /// The top-level site (`scheme://registrable-domain`) for `Partitioned` cookies; `None`
    /// means the request's own site (a top-level request).
    top_level_site: Option<Box<str>>,
}

impl Default for RequestContext {
    fn default() -> Self {
        Self::same_site()
    }
}

impl RequestContext {
    /// A same-site top-level `GET` over HTTP (what a crawler or API client usually does).
    #[must_use]
    pub fn same_site() -> Self {
        Self {
            method: Method::GET,
            same_site: true,
            top_level_navigation: true,
            http_api: true,
            top_level_site: None,
        }
    }

    /// A cross-site subresource `GET` (an image or fetch from another site's page).
    #[must_use]
    pub fn cross_site() -> Self {
        Self {
            same_site: false,
            top_level_navigation: false,
            ..Self::same_site()
        }
    }

    /// Sets the request method.
    #[must_use]
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Marks the request as a top-level navigation (or not).
    #[must_use]
    pub fn top_level_navigation(mut self, yes: bool) -> Self {
        self.top_level_navigation = yes;
        self
    }

    /// Marks access as coming from a non-HTTP API (like `document.cookie`): `HttpOnly`
    /// cookies are hidden and may not be set.
    #[must_use]
    pub fn non_http(mut self) -> Self {
        self.http_api = false;
        self
    }

    /// Sets the site of the top-level page the request is made from (its scheme and
    /// registrable domain, e.g. `https://example.com` for `https://www.example.com/page`):
    /// the partition of `Partitioned` cookies (CHIPS). Without it, the request is taken as
    /// top-level and its own site is the partition.
    #[must_use]
    pub fn top_level_site(mut self, top_level_url: &Url) -> Self {
        self.top_level_site = Some(site_of(top_level_url).into_boxed_str());
        self
    }

    /// The partition key of a request for `url` in this context.
    fn partition_for(&self, url: &Url) -> String {
        match &self.top_level_site {
            Some(site) => site.to_string(),
            None => site_of(url),
        }
    }

    fn safe_method(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        )
    }
}

/// The `SameSite` enforcement stored with a cookie (RFC 6265bis section 5.7 step 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SameSitePolicy {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None`.
    None,
    /// No (or an unknown) `SameSite` attribute: enforced as Lax.
    Default,
}

/// One cookie in a [`CookieStore`] (the fields of RFC 6265bis section 5.7).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredCookie {
    name: String,
    value: String,
    domain: String,
    path: String,
    /// Unix seconds; `None` for a session cookie.
    expiry: Option<i64>,
    creation: i64,
    #[serde(default)]
    seq: u64,
    #[serde(with = "atomic_i64")]
    last_access: AtomicI64,
    host_only: bool,
    secure: bool,
    http_only: bool,
    same_site: SameSitePolicy,
    /// The top-level site of a `Partitioned` cookie (CHIPS): it is sent only to requests
    /// made under that site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partition_key: Option<String>,
}

mod atomic_i64 {
    use std::sync::atomic::{AtomicI64, Ordering};

    pub(super) fn serialize<S: serde::Serializer>(v: &AtomicI64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(v.load(Ordering::Relaxed))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<AtomicI64, D::Error> {
        <i64 as serde::Deserialize>::deserialize(d).map(AtomicI64::new)
    }
}

impl Clone for StoredCookie {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            value: self.value.clone(),
            domain: self.domain.clone(),
            path: self.path.clone(),
            expiry: self.expiry,
            creation: self.creation,
            seq: self.seq,
            last_access: AtomicI64::new(self.last_access.load(AtomicOrdering::Relaxed)),
            host_only: self.host_only,
            secure: self.secure,
            http_only: self.http_only,
            same_site: self.same_site,
            partition_key: self.partition_key.clone(),
        }
    }
}

impl StoredCookie {
    /// The name (empty for a nameless 6265bis cookie).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The value.
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }
    /// The domain field (the request host for host-only cookies).
    #[must_use]
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The path field.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The expiry, or `None` for a session cookie.
    #[must_use]
    pub fn expires(&self) -> Option<OffsetDateTime> {
        self.expiry
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
    }
    /// Whether only the exact host (not subdomains) receives it.
    #[must_use]
    pub fn host_only(&self) -> bool {
        self.host_only
    }
    /// Whether it is sent only over secure connections.
    #[must_use]
    pub fn secure(&self) -> bool {
        self.secure
    }
    /// Whether it is hidden from non-HTTP APIs.
    #[must_use]
    pub fn http_only(&self) -> bool {
        self.http_only
    }
    /// The top-level site a `Partitioned` cookie (CHIPS) belongs to, or `None` for an
    /// unpartitioned cookie.
    #[must_use]
    pub fn partition_key(&self) -> Option<&str> {
        self.partition_key.as_deref()
    }
    /// Its `SameSite` enforcement.
    #[must_use]
    pub fn same_site(&self) -> SameSitePolicy {
        self.same_site
    }

    fn expired(&self, now: i64) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }

    fn access(&self) -> i64 {
        self.last_access.load(AtomicOrdering::Relaxed)
    }
}

/// A browser-like cookie store following RFC 6265bis (or RFC 6265, see [`Mode`]).
///
/// It performs no IO and reads no clock: every call takes `now`. Bounded: at most
/// [`Limits::total`] cookies, each at most 4096 bytes of name and value, so memory stays
/// bounded whatever servers send.
#[derive(Clone, Debug, Default)]
pub struct CookieStore {
    mode: Mode,
    limits: Limits,
    buckets: HashMap<Box<str>, Vec<StoredCookie>>,
    total: usize,
    seq: u64,
}

/// What a `Set-Cookie` line parses into (RFC 6265bis section 5.6).
#[derive(Debug, Default)]
struct Parsed {
    name: String,
    value: String,
    expires: Option<i64>,
    max_age: Option<i64>,
    domain: Option<String>,
    path: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSitePolicy>,
    partitioned: bool,
}

/// Earliest and latest representable expiry times, in unix seconds.
const EARLIEST: i64 = i64::MIN / 2;
const LATEST: i64 = i64::MAX / 2;
const MAX_AGE_CAP: i64 = 400 * 86_400;

#[derive(Serialize, Deserialize)]
struct Persisted {
    version: u32,
    mode: Mode,
    cookies: Vec<StoredCookie>,
}

impl CookieStore {
    /// An empty RFC 6265bis store with the default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store following `mode`.
    #[must_use]
    pub fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// Sets the limits; values below the RFC floors (50 per domain, 3000 in all) are raised.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Limits {
            per_domain: limits.per_domain.max(50),
            total: limits.total.max(3000),
        };
        self
    }

    /// The store's mode.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of stored cookies (expired ones included until evicted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the store is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// All stored cookies, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &StoredCookie> {
        self.buckets.values().flatten()
    }

    /// Removes every cookie.
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.total = 0;
    }

    /// Removes the cookies that have expired at `now`.
    pub fn remove_expired(&mut self, now: OffsetDateTime) {
        let now = now.unix_timestamp();
        let mut removed = 0;
        self.buckets.retain(|_, b| {
            let before = b.len();
            b.retain(|c| !c.expired(now));
            removed += before - b.len();
            !b.is_empty()
        });
        self.total -= removed;
    }

    /// Stores the `Set-Cookie` headers of a response to a request for `url`.
    /// Returns how many cookies were stored (accepted, including deletions).
    pub fn store_response(
        &mut self,
        url: &Url,
        headers: &HeaderMap,
        ctx: &RequestContext,
        now: OffsetDateTime,
    ) -> usize {
        self.store(
            url,
            headers
                .get_all(SET_COOKIE)
                .iter()
                .map(HeaderValue::as_bytes),
            ctx,
            now,
        )
    }

    /// Stores each `Set-Cookie` value (bytes or strings) received for `url`.
    /// Returns how many were accepted; the others were ignored as the RFC requires.
    pub fn store<I>(
        &mut self,
        url: &Url,
        set_cookies: I,
        ctx: &RequestContext,
        now: OffsetDateTime,
    ) -> usize
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut n = 0;
        for line in set_cookies {
            if self.store_one(url, line.as_ref(), ctx, now) {
                n += 1;
            }
        }
        n
    }

    /// RFC 6265bis section 5.7: the storage model. Returns whether the cookie was accepted.
    fn store_one(
        &mut self,
        url: &Url,
        line: &[u8],
        ctx: &RequestContext,
        now: OffsetDateTime,
    ) -> bool {
        let bis = self.mode == Mode::Rfc6265bis;
        let now_s = now.unix_timestamp();
        let Some(host) = url.host() else { return false };
        let host_str = url.host_str().unwrap_or_default();
        let is_ip = !matches!(host, Host::Domain(_));
        let Some(p) = parse_set_cookie(line, self.mode, now_s) else {
            return false;
        };
        let secure_origin = is_secure_origin(url);

        // Step 7: Max-Age wins over Expires.
        let expiry = p.max_age.or(p.expires);
        // Steps 8-10: the domain attribute, public suffixes, host-only.
        let mut domain_attr = p.domain.unwrap_or_default();
        if !domain_attr.is_empty() && !is_ip && is_public_suffix(&domain_attr) {
            if domain_attr == host_str {
                domain_attr.clear();
            } else {
                return false;
            }
        }
        let (domain, host_only) = if domain_attr.is_empty() {
            (host_str.to_owned(), true)
        } else {
            if !domain_match(host_str, &domain_attr, is_ip) {
                return false;
            }
            (domain_attr, false)
        };
        // Step 11: path.
        let path = p
            .path
            .unwrap_or_else(|| default_path(url.path()).to_owned());
        // Step 12: secure cookies only from secure origins (6265bis).
        if bis && p.secure && !secure_origin {
            return false;
        }
        // Steps 13-14: HttpOnly only from HTTP APIs.
        if p.http_only && !ctx.http_api {
            return false;
        }
        let same_site = if bis {
            p.same_site.unwrap_or(SameSitePolicy::Default)
        } else {
            SameSitePolicy::None
        };
        if bis {
            // Step 16: an insecure origin cannot shadow a secure cookie.
            if !p.secure && !secure_origin {
                let shadows = self.iter().any(|c| {
                    c.secure
                        && c.name == p.name
                        && (domain_match(&c.domain, &domain, false)
                            || domain_match(&domain, &c.domain, false))
                        && path_match(&c.path, &path)
                });
                if shadows {
                    return false;
                }
            }
            // Step 17: SameSite cookies are not set from cross-site subresource requests.
            if same_site != SameSitePolicy::None
                && !ctx.same_site
                && !(ctx.top_level_navigation && ctx.http_api)
            {
                return false;
            }
            // Step 18: SameSite=None requires Secure.
            if same_site == SameSitePolicy::None && !p.secure && p.same_site.is_some() {
                return false;
            }
            // Steps 19-20: prefixes (case-insensitive), and nameless cookies that mimic them.
            if starts_with_ci(&p.name, "__secure-") && !p.secure {
                return false;
            }
            if starts_with_ci(&p.name, "__host-") && !(p.secure && host_only && path == "/") {
                return false;
            }
            if p.name.is_empty()
                && (starts_with_ci(&p.value, "__secure-") || starts_with_ci(&p.value, "__host-"))
            {
                return false;
            }
            // CHIPS: a `Partitioned` cookie must be `Secure`.
            if p.partitioned && !p.secure {
                return false;
            }
        }
        // CHIPS: a partitioned cookie belongs to the top-level site it was set under. RFC
        // 6265 mode ignores the attribute, as a store of that time would.
        let partition_key = (bis && p.partitioned).then(|| ctx.partition_for(url));
        let mut cookie = StoredCookie {
            name: p.name,
            value: p.value,
            domain,
            path,
            expiry,
            creation: now_s,
            seq: self.seq,
            last_access: AtomicI64::new(now_s),
            host_only,
            secure: p.secure,
            http_only: p.http_only,
            same_site,
            partition_key,
        };
        self.seq += 1;
        // Step 22: replace the old cookie with the same name, domain, (host-only,) path.
        let bucket = self
            .buckets
            .entry(cookie.domain.clone().into_boxed_str())
            .or_default();
        if let Some(i) = bucket.iter().position(|c| {
            c.name == cookie.name
                && c.path == cookie.path
                && (!bis || c.host_only == cookie.host_only)
                && c.partition_key == cookie.partition_key
        }) {
            let Some(old) = bucket.get(i) else {
                return false;
            };
            if old.http_only && !ctx.http_api {
                return false;
            }
            cookie.creation = old.creation;
            cookie.seq = old.seq;
            bucket.remove(i);
            self.total -= 1;
        }
        if cookie.expired(now_s) {
            if bucket.is_empty() {
                self.buckets.remove(cookie.domain.as_str());
            }
            return true;
        }
        let key = cookie.domain.clone();
        bucket.push(cookie);
        self.total += 1;
        self.evict(&key, now_s);
        true
    }

    /// RFC 6265bis section 5.7.3: expired first, then insecure, then least recently used.
    fn evict(&mut self, domain: &str, now: i64) {
        if let Some(bucket) = self.buckets.get_mut(domain)
            && bucket.len() > self.limits.per_domain
        {
            let before = bucket.len();
            bucket.retain(|c| !c.expired(now));
            self.total -= before - bucket.len();
            while bucket.len() > self.limits.per_domain {
                let victim = bucket
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, c)| (c.secure, c.access(), c.creation, c.seq))
                    .map(|(i, _)| i);
                let Some(i) = victim else { break };
                bucket.remove(i);
                self.total -= 1;
            }
        }
        if self.total > self.limits.total {
            self.remove_expired(
                OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            );
        }
        while self.total > self.limits.total {
            // One pass to find the victim, one key clone to remove it.
            let victim = self
                .buckets
                .iter()
                .flat_map(|(k, b)| b.iter().enumerate().map(move |(i, c)| (k, i, c)))
                .min_by_key(|(_, _, c)| (c.secure, c.access(), c.creation, c.seq))
                .map(|(k, i, _)| (k.clone(), i));
            let Some((k, i)) = victim else { break };
            if let Some(b) = self.buckets.get_mut(&k) {
                b.remove(i);
                if b.is_empty() {
                    self.buckets.remove(&k);
                }
            }
            self.total -= 1;
        }
    }

    /// The `Cookie` header to send with a request for `url` (RFC 6265bis section 5.8.3),
    /// or `None` when no cookie applies. Updates the cookies' last-access time.
    #[must_use]
    pub fn cookie_header(
        &self,
        url: &Url,
        ctx: &RequestContext,
        now: OffsetDateTime,
    ) -> Option<HeaderValue> {
        let mut out = String::new();
        self.write_cookie_header(url, ctx, now, &mut out);
        if out.is_empty() {
            return None;
        }
        HeaderValue::from_maybe_shared(Bytes::from(out)).ok()
    }

    /// Like [`cookie_header`](Self::cookie_header), appending the header's text to `out`
    /// (nothing when no cookie applies); reuse `out` to avoid allocating per request.
    pub fn write_cookie_header(
        &self,
        url: &Url,
        ctx: &RequestContext,
        now: OffsetDateTime,
        out: &mut String,
    ) {
        let now_s = now.unix_timestamp();
        let Some(host) = url.host() else { return };
        let host_str = url.host_str().unwrap_or_default();
        let is_ip = !matches!(host, Host::Domain(_));
        let secure = is_secure_origin(url);
        let path = url.path();
        let bis = self.mode == Mode::Rfc6265bis;
        let mut picked: Vec<&StoredCookie> = Vec::new();
        // Computed at the first partitioned cookie only.
        let mut partition: Option<String> = None;
        let mut candidate = host_str;
        loop {
            if let Some(bucket) = self.buckets.get(candidate) {
                for c in bucket {
                    if (c.host_only && candidate.len() != host_str.len())
                        || c.expired(now_s)
                        || (c.secure && !secure)
                        || (c.http_only && !ctx.http_api)
                        || !path_match(path, &c.path)
                    {
                        continue;
                    }
                    if let Some(key) = &c.partition_key
                        && *key != *partition.get_or_insert_with(|| ctx.partition_for(url))
                    {
                        continue;
                    }
                    if bis && !ctx.same_site && c.same_site != SameSitePolicy::None {
                        let lax =
                            matches!(c.same_site, SameSitePolicy::Lax | SameSitePolicy::Default);
                        if !(lax && ctx.top_level_navigation && ctx.safe_method()) {
                            continue;
                        }
                    }
                    picked.push(c);
                }
            }
            if is_ip {
                break;
            }
            match candidate.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => candidate = parent,
                _ => break,
            }
        }
        // Section 5.8.3 step 2: longer paths first, then earlier creation.
        picked.sort_unstable_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then(a.creation.cmp(&b.creation))
                .then(a.seq.cmp(&b.seq))
        });
        for (i, c) in picked.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            if !c.name.is_empty() || !bis {
                out.push_str(&c.name);
                out.push('=');
            }
            out.push_str(&c.value);
            c.last_access.store(now_s, AtomicOrdering::Relaxed);
        }
    }

    /// Serializes the store as JSON; session cookies only when `include_session`, and never
    /// cookies expired at `now`.
    pub fn to_json(&self, include_session: bool, now: OffsetDateTime) -> Result<String> {
        let now = now.unix_timestamp();
        let cookies = self
            .iter()
            .filter(|c| !c.expired(now) && (include_session || c.expiry.is_some()))
            .cloned()
            .collect();
        Ok(serde_json::to_string(&Persisted {
            version: 1,
            mode: self.mode,
            cookies,
        })?)
    }

    /// Loads a store saved by [`to_json`](Self::to_json), dropping cookies expired at `now`
    /// or malformed (control characters, over 4096 bytes, empty domain, relative path) and
    /// applying the default limits.
    pub fn from_json(json: &str, now: OffsetDateTime) -> Result<Self> {
        let p: Persisted = serde_json::from_str(json)?;
        let mut store = Self::with_mode(p.mode);
        let now = now.unix_timestamp();
        for c in p.cookies {
            // Stored data is input too: skip what the parser would never have accepted, so
            // one bad entry cannot make every later `Cookie` header invalid.
            let bad = |t: &str| t.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f);
            if c.expired(now)
                || [&c.name, &c.value, &c.domain, &c.path]
                    .iter()
                    .any(|t| bad(t))
                || c.name.len() + c.value.len() > 4096
                || c.domain.is_empty()
                || !c.path.starts_with('/')
            {
                continue;
            }
            store.seq = store.seq.max(c.seq + 1);
            let key = c.domain.clone();
            store
                .buckets
                .entry(key.clone().into_boxed_str())
                .or_default()
                .push(c);
            store.total += 1;
            store.evict(&key, now);
        }
        Ok(store)
    }
}

/// RFC 6265bis section 5.6: parses one `Set-Cookie` value; `None` means "ignore it".
fn parse_set_cookie(line: &[u8], mode: Mode, now: i64) -> Option<Parsed> {
    let bis = mode == Mode::Rfc6265bis;
    // Step 1: control characters other than HTAB make the whole line invalid.
    if line
        .iter()
        .any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
    {
        return None;
    }
    let line = std::str::from_utf8(line).ok()?;
    let (pair, attrs) = match line.split_once(';') {
        Some((pair, rest)) => (pair, Some(rest)),
        None => (line, None),
    };
    let (name, value) = match pair.split_once('=') {
        Some((n, v)) => (trim(n), trim(v)),
        None if bis => ("", trim(pair)),
        None => return None,
    };
    if (name.is_empty() && !bis) || (name.is_empty() && value.is_empty()) {
        return None;
    }
    if name.len() + value.len() > 4096 {
        return None;
    }
    let mut p = Parsed {
        name: name.to_owned(),
        value: value.to_owned(),
        ..Parsed::default()
    };
    for av in attrs.into_iter().flat_map(|a| a.split(';')) {
        let (key, val) = match av.split_once('=') {
            Some((k, v)) => (trim(k), trim(v)),
            None => (trim(av), ""),
        };
        if bis && val.len() > 1024 {
            continue;
        }
        if key.eq_ignore_ascii_case("expires") {
            if let Some(t) = parse_cookie_date(val.as_bytes()) {
                let mut t = t.unix_timestamp();
                if bis {
                    t = t.min(now.saturating_add(MAX_AGE_CAP));
                }
                p.expires = Some(t);
            }
        } else if key.eq_ignore_ascii_case("max-age") {
            if let Some(t) = parse_max_age(val, now, bis) {
                p.max_age = Some(t);
            }
        } else if key.eq_ignore_ascii_case("domain") {
            if val.is_empty() {
                continue;
            }
            let d = val.strip_prefix('.').unwrap_or(val);
            p.domain = Some(canonical_domain(d)?);
        } else if key.eq_ignore_ascii_case("path") {
            p.path = val.starts_with('/').then(|| val.to_owned());
        } else if key.eq_ignore_ascii_case("secure") {
            p.secure = true;
        } else if key.eq_ignore_ascii_case("httponly") {
            p.http_only = true;
        } else if key.eq_ignore_ascii_case("partitioned") {
            p.partitioned = true;
        } else if key.eq_ignore_ascii_case("samesite") {
            p.same_site = Some(if val.eq_ignore_ascii_case("none") {
                SameSitePolicy::None
            } else if val.eq_ignore_ascii_case("strict") {
                SameSitePolicy::Strict
            } else if val.eq_ignore_ascii_case("lax") {
                SameSitePolicy::Lax
            } else {
                SameSitePolicy::Default
            });
        }
    }
    Some(p)
}

/// Section 5.6.2: `-`? DIGIT+; non-positive means "expire now"; capped at 400 days in 6265bis.
fn parse_max_age(val: &str, now: i64, bis: bool) -> Option<i64> {
    let digits = val.strip_prefix('-').unwrap_or(val);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if val.starts_with('-') || digits.bytes().all(|b| b == b'0') {
        return Some(EARLIEST);
    }
    // Saturate: a 30-digit Max-Age means "as late as possible".
    let delta: i64 = digits.parse().unwrap_or(LATEST);
    let delta = if bis { delta.min(MAX_AGE_CAP) } else { delta };
    Some(now.saturating_add(delta).min(LATEST))
}

/// Lower-cases a domain attribute, converting non-ASCII names to their IDNA form.
fn canonical_domain(d: &str) -> Option<String> {
    if d.is_ascii() {
        return Some(d.to_ascii_lowercase());
    }
    match Host::parse(d) {
        Ok(Host::Domain(s)) => Some(s),
        _ => None,
    }
}

/// ASCII case-insensitive prefix test (RFC 6265bis section 5.7 steps 19-20).
fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Whether `domain` is a public suffix such as `com` or `co.uk`. A suffix missing from the
/// list (`corp`, `internal`) counts as public too: the list's implicit `*` rule makes every
/// unlisted TLD a suffix, and browsers refuse `Domain=corp` the same way (issue 14, 13).
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes()).is_some_and(|s| s.as_bytes() == domain.as_bytes())
}

/// RFC 6265bis section 5.1.3.
fn domain_match(host: &str, domain: &str, host_is_ip: bool) -> bool {
    if host == domain {
        return true;
    }
    !host_is_ip
        && host.len() > domain.len()
        && host.ends_with(domain)
        && host.as_bytes().get(host.len() - domain.len() - 1) == Some(&b'.')
}

/// RFC 6265bis section 5.1.4: default-path of a request path.
fn default_path(path: &str) -> &str {
    if !path.starts_with('/') {
        return "/";
    }
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => path.get(..i).unwrap_or("/"),
    }
}

/// RFC 6265bis section 5.1.4: path-match of a request path against a cookie path.
fn path_match(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// The site of a URL for partitioning: its scheme and registrable domain
/// (`https://example.co.uk` for `https://a.b.example.co.uk/x`), or its host when it has none
/// (an IP address, `localhost`, a public suffix itself).
fn site_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let registrable = match url.host() {
        // An unlisted suffix takes the list's default rule (its last label), as browsers do.
        Some(Host::Domain(domain)) => {
            psl::domain(domain.as_bytes()).and_then(|d| std::str::from_utf8(d.as_bytes()).ok())
        }
        _ => None,
    };
    format!("{}://{}", url.scheme(), registrable.unwrap_or(host))
}

/// Secure schemes, and loopback hosts, which browsers treat as potentially trustworthy.
fn is_secure_origin(url: &Url) -> bool {
    if matches!(url.scheme(), "https" | "wss") {
        return true;
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_path_and_path_match() {
        assert_eq!(default_path("/a/b/c"), "/a/b");
        assert_eq!(default_path("/a"), "/");
        assert_eq!(default_path(""), "/");
        assert!(path_match("/a/b", "/a"));
        assert!(path_match("/a/", "/a/"));
        assert!(!path_match("/ab", "/a"));
    }

    #[test]
    fn sites_for_partitions() {
        let site = |u: &str| site_of(&Url::parse(u).unwrap());
        assert_eq!(site("https://a.b.example.co.uk/x"), "https://example.co.uk");
        assert_eq!(site("https://www.shop.example/"), "https://shop.example");
        assert_eq!(site("http://www.shop.example/"), "http://shop.example");
        assert_eq!(site("http://localhost:8080/"), "http://localhost");
        assert_eq!(site("https://127.0.0.1:8443/"), "https://127.0.0.1");
        assert_eq!(site("https://[::1]/"), "https://[::1]");
    }

    #[test]
    fn public_suffixes() {
        assert!(is_public_suffix("co.uk"));
        assert!(is_public_suffix("org"));
        assert!(!is_public_suffix("example.org"));
        // Unlisted TLDs fall under the implicit `*` rule.
        assert!(is_public_suffix("corp"));
        assert!(is_public_suffix("internal"));
        assert!(!is_public_suffix("evil.corp"));
    }
}
