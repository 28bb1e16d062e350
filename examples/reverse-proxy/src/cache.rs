//! The response cache's IO: proxy-core decides everything RFC 9111 asks (storable? fresh?
//! how to validate? what a `304` changes? which range?), this module moves the bytes: it
//! looks requests up in the [`MemoryStore`], forwards misses and revalidations through
//! [`forward`], collects bodies to store (up to `max_object_bytes`, streaming the rest
//! through unstored), serves `stale-while-revalidate` answers while a background task
//! revalidates, and lets one request per URL go to the origin at a time ([`Coalescer`]).
//!
//! `[cache] store_set_cookie` (off by default, as in nginx and Varnish): a response with
//! `Set-Cookie` is then passed through unstored, since a cookie minted for one user would
//! otherwise be replayed to others; a `304`'s own `Set-Cookie` always goes to the user whose
//! request caused it and never into the stored headers.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::SET_COOKIE;
use http::{HeaderValue, Method, Response, StatusCode, request};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use proxy_core::{
    CacheControl, CacheEntry, CacheOptions, CachePolicy, CacheStore as _, Coalescer, Joined,
    Lookup, MemoryStore, NotStorable, StaleUse, cache_key, invalidated_keys,
};

use crate::forward::{RequestContext, UpstreamUnreachable, forward};
use crate::{BoxError, ProxyBody, full, plain};

/// How the cache answered (`HIT`, `MISS`, `STALE`, `REVALIDATED`); a constant, since a
/// `&str` name is parsed again on every insert.
const X_CACHE: http::HeaderName = http::HeaderName::from_static("x-cache");

/// The cache of one proxy: the policy, the store, who is fetching what.
pub(crate) struct Cache {
    policy: CachePolicy,
    store: MemoryStore,
    coalescer: Coalescer,
    max_object: u64,
}

impl Cache {
    pub(crate) fn new(max_bytes: u64, max_object: u64, store_set_cookie: bool) -> Self {
        Self {
            policy: CachePolicy::new(CacheOptions::default().store_set_cookie(store_set_cookie)),
            store: MemoryStore::new(max_bytes.max(1)),
            coalescer: Coalescer::default(),
            max_object,
        }
    }

    /// Bytes held, for the metrics page.
    pub(crate) fn weight(&self) -> u64 {
        self.store.weight()
    }

    fn lookup(&self, key: &str, parts: &request::Parts, now: SystemTime) -> Lookup {
        self.policy.lookup(parts, &self.store.get(key), now)
    }
}

/// RFC 9111 section 4.4: after a successful unsafe request, forget the target URI and the
/// same-origin `Location` and `Content-Location` URIs.
pub(crate) fn invalidate(
    cache: &Cache,
    request: &request::Parts,
    status: StatusCode,
    response: &http::HeaderMap,
) {
    for key in invalidated_keys(request, status, response) {
        cache.store.remove(&key);
    }
}

/// A stored response's answer to `parts`, marked with how it was found.
fn serve(
    parts: &request::Parts,
    entry: &CacheEntry,
    now: SystemTime,
    state: &'static str,
) -> Response<ProxyBody> {
    let (mut head, body) = entry.respond(parts, now).into_parts();
    head.headers
        .insert(X_CACHE, HeaderValue::from_static(state));
    Response::from_parts(head, full(body))
}

/// The answer to a GET or HEAD from a fresh stored response, or (`Err`) the request's cache
/// key for [`cached`]. Synchronous, so that a hit builds none of the upstream path's futures.
pub(crate) fn fresh(cache: &Cache, parts: &request::Parts) -> Result<Response<ProxyBody>, String> {
    let key = cache_key(parts);
    let now = SystemTime::now();
    match cache.lookup(&key, parts, now) {
        Lookup::Fresh(entry) => Ok(serve(parts, &entry, now, "HIT")),
        _ => Err(key),
    }
}

/// Answers a GET or HEAD (under its cache `key`) from the cache when it can, else from
/// upstream (one request per key at a time), storing what may be stored.
pub(crate) async fn cached(
    ctx: RequestContext<'_>,
    cache: &Cache,
    key: String,
    parts: request::Parts,
    body: ProxyBody,
) -> Response<ProxyBody> {
    let now = SystemTime::now();
    match cache.lookup(&key, &parts, now) {
        Lookup::Fresh(entry) => return serve(&parts, &entry, now, "HIT"),
        // RFC 5861 section 3: within the window, answer from the cache and revalidate in the
        // background (one revalidation per key at a time).
        Lookup::Stale {
            entry,
            revalidation,
        } if cache
            .policy
            .may_serve_stale(&parts, &entry, StaleUse::WhileRevalidate, now) =>
        {
            if let Some(lead) = cache.coalescer.try_lead(&key) {
                let (state, pool) = (ctx.state.clone(), ctx.pool.clone());
                let (peer, scheme, client_ip) = (ctx.peer, ctx.scheme, ctx.client_ip);
                let (parts, entry, key) = (parts.clone(), entry.clone(), key.clone());
                tokio::spawn(async move {
                    let Some(cache) = state.cache.as_ref() else {
                        return;
                    };
                    let ctx = RequestContext {
                        state: &state,
                        pool: &pool,
                        peer,
                        scheme,
                        client_ip,
                        timer: None,
                        // The cache reads the fields.
                        raw_fields: false,
                    };
                    let _ = revalidate(ctx, cache, &key, &parts, &entry, *revalidation).await;
                    drop(lead);
                });
            }
            return serve(&parts, &entry, now, "STALE");
        }
        _ => {}
    }
    // RFC 9111 section 5.2.1.7.
    if request_directives(&parts).only_if_cached {
        return plain(StatusCode::GATEWAY_TIMEOUT, "not in cache", false);
    }
    let mut body = Some(body);
    loop {
        match cache.coalescer.join(&key, Instant::now()) {
            Joined::Wait(wait) => {
                wait.await;
                let now = SystemTime::now();
                if let Lookup::Fresh(entry) = cache.lookup(&key, &parts, now) {
                    return serve(&parts, &entry, now, "HIT");
                }
            }
            Joined::Lead(lead) => {
                let response = fetch(ctx, cache, &key, parts, body.take()).await;
                drop(lead);
                return response;
            }
            _ => return fetch(ctx, cache, &key, parts, body.take()).await,
        }
    }
}

fn request_directives(parts: &request::Parts) -> CacheControl {
    let joined: Vec<&str> = parts
        .headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    CacheControl::parse(&joined.join(","))
}

/// A hit, a revalidation of a stale entry, or a miss forwarded and stored.
async fn fetch(
    ctx: RequestContext<'_>,
    cache: &Cache,
    key: &str,
    parts: request::Parts,
    body: Option<ProxyBody>,
) -> Response<ProxyBody> {
    let now = SystemTime::now();
    match cache.lookup(key, &parts, now) {
        Lookup::Fresh(entry) => serve(&parts, &entry, now, "HIT"),
        Lookup::Stale {
            entry,
            revalidation,
        } => revalidate(ctx, cache, key, &parts, &entry, *revalidation).await,
        _ => {
            let request_time = SystemTime::now();
            let response = forward(ctx, parts.clone(), body, None).await;
            store(cache, key, &parts, response, request_time).await
        }
    }
}

/// Sends the conditional request `revalidation` for the stale `entry` and answers `parts`:
/// from the refreshed entry on a `304`, stale when the origin failed and that is allowed
/// (RFC 5861 `stale-if-error`, RFC 9111 section 4.2.4 when unreachable), else with the new
/// response (stored when it may be).
async fn revalidate(
    ctx: RequestContext<'_>,
    cache: &Cache,
    key: &str,
    parts: &request::Parts,
    entry: &CacheEntry,
    revalidation: request::Parts,
) -> Response<ProxyBody> {
    let request_time = SystemTime::now();
    let response = forward(ctx, revalidation, None, None).await;
    let now = SystemTime::now();
    let status = response.status();
    let unreachable = response.extensions().get::<UpstreamUnreachable>().is_some();
    if unreachable
        && cache
            .policy
            .may_serve_stale(parts, entry, StaleUse::Disconnected, now)
    {
        return serve(parts, entry, now, "STALE");
    }
    if status.is_server_error()
        && cache
            .policy
            .may_serve_stale(parts, entry, StaleUse::Error, now)
    {
        return serve(parts, entry, now, "STALE");
    }
    if status == StatusCode::NOT_MODIFIED {
        if !cache.policy.validates(entry, response.headers()) {
            // Not the stored response's validator: ask again without conditions.
            let request_time = SystemTime::now();
            let response = forward(ctx, parts.clone(), None, None).await;
            return store(cache, key, parts, response, request_time).await;
        }
        let refreshed = cache
            .policy
            .freshen(parts, entry, response.headers(), request_time, now);
        let mut out = serve(parts, &refreshed, now, "REVALIDATED");
        if !cache.policy.options().store_set_cookie {
            // The 304's cookie is for this requester only.
            for cookie in response.headers().get_all(SET_COOKIE) {
                out.headers_mut().append(SET_COOKIE, cookie.clone());
            }
        }
        cache.store.put(key, refreshed);
        cache.coalescer.end_pass(key);
        return out;
    }
    store(cache, key, parts, response, request_time).await
}

/// Stores `response` to `parts` when the policy allows and its body fits, and answers with
/// it. A body of unknown length is read up to `max_object_bytes`; past that the rest streams
/// to the client unstored.
async fn store(
    cache: &Cache,
    key: &str,
    parts: &request::Parts,
    response: Response<ProxyBody>,
    request_time: SystemTime,
) -> Response<ProxyBody> {
    let response_time = SystemTime::now();
    if parts.method != Method::GET {
        return response;
    }
    if let Err(reason) = cache
        .policy
        .storable(parts, response.status(), response.headers())
    {
        if !matches!(reason, NotStorable::Method | NotStorable::Status) {
            cache.coalescer.mark_pass(key, Instant::now());
        }
        return response;
    }
    if response.body().size_hint().lower() > cache.max_object {
        cache.coalescer.mark_pass(key, Instant::now());
        return response;
    }
    let (mut head, body) = response.into_parts();
    let bytes = match collect_up_to(body, cache.max_object).await {
        Ok(Collected::Whole(bytes)) => bytes,
        Ok(Collected::TooLarge(rest)) => {
            cache.coalescer.mark_pass(key, Instant::now());
            return Response::from_parts(head, rest);
        }
        Err(_) => return plain(StatusCode::BAD_GATEWAY, "upstream body failed", false),
    };
    match cache
        .policy
        .entry(parts, &head, bytes.clone(), request_time, response_time)
    {
        Ok(entry) => {
            cache.store.put(key, entry);
            cache.coalescer.end_pass(key);
        }
        Err(_) => cache.coalescer.mark_pass(key, Instant::now()),
    }
    head.headers
        .insert(X_CACHE, HeaderValue::from_static("MISS"));
    Response::from_parts(head, full(bytes))
}

enum Collected {
    Whole(Bytes),
    /// Over the limit: what was read, then the rest of the body.
    TooLarge(ProxyBody),
}

async fn collect_up_to(mut body: ProxyBody, limit: u64) -> Result<Collected, BoxError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        if buf.len() as u64 > limit {
            return Ok(Collected::TooLarge(
                Prefixed {
                    prefix: Some(buf.freeze()),
                    rest: body,
                }
                .boxed(),
            ));
        }
    }
    Ok(Collected::Whole(buf.freeze()))
}

/// A body that yields `prefix` first, then `rest`.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: ProxyBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let len = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(len));
        }
        hint.set_lower(rest.lower().saturating_add(len));
        hint
    }
}
