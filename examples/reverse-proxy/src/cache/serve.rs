//! Answering a request through the cache (RFC 9111, shared-cache mode): hits, coalesced
//! misses, revalidation, `stale-while-revalidate` and `stale-if-error` (RFC 5861), storing,
//! and invalidation after unsafe methods. The store and the freshness rules are in the parent
//! module; misses and revalidations go upstream through [`forward`].

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{HOST, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt as _;
use http_cache_semantics::{AfterResponse, BeforeRequest};
use hyper::body::Body as _;

use super::{Cache, Stored};
use crate::cache;
use crate::forward::{RequestContext, forward};
use crate::{ProxyBody, full, plain};

fn cache_key(uri: &http::Uri, host: Option<&HeaderValue>) -> String {
    let host = host
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    format!(
        "{host}{}",
        uri.path_and_query().map_or("/", |pq| pq.as_str())
    )
}

/// RFC 9111 section 4.4: a successful unsafe request invalidates the target URI and the
/// same-origin `Location` and `Content-Location` URIs.
pub(crate) fn invalidate(
    cache: &Cache,
    uri: &http::Uri,
    host: Option<&HeaderValue>,
    response: &HeaderMap,
) {
    cache.remove(&cache_key(uri, host));
    let own_host = host
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
        let Some(target) = response.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(target) = target.parse::<http::Uri>() else {
            continue;
        };
        let same_origin = target
            .authority()
            .is_none_or(|a| a.as_str().eq_ignore_ascii_case(&own_host));
        if same_origin {
            let path = target.path_and_query().map_or("/", |pq| pq.as_str());
            cache.remove(&format!("{own_host}{path}"));
        }
    }
}

enum Lookup {
    Fresh(Arc<Stored>, http::response::Parts),
    Stale(Arc<Stored>, http::request::Parts),
    Miss,
}

fn lookup(cache: &Cache, key: &str, parts: &http::request::Parts, now: SystemTime) -> Lookup {
    let Some(variants) = cache.get(key) else {
        return Lookup::Miss;
    };
    for stored in variants.iter() {
        match stored.policy.before_request(parts, now) {
            BeforeRequest::Fresh(response) => return Lookup::Fresh(stored.clone(), response),
            BeforeRequest::Stale {
                request,
                matches: true,
            } => return Lookup::Stale(stored.clone(), request),
            BeforeRequest::Stale { .. } => {}
        }
    }
    Lookup::Miss
}

fn serve_stored(
    request: &http::request::Parts,
    stored: &Stored,
    mut head: http::response::Parts,
    state: &'static str,
) -> Response<ProxyBody> {
    cache::strip_notes(&mut head.headers);
    cache::restore_origin_freshness(&stored.headers, &mut head.headers);
    // A cache passes the origin's Date on (RFC 9110 section 6.6.1) and no longer adds the
    // obsolete heuristic Warning (RFC 9111 section 5.5).
    for name in [http::header::DATE, http::header::WARNING] {
        head.headers.remove(&name);
        for v in stored.headers.get_all(&name) {
            head.headers.append(name.clone(), v.clone());
        }
    }
    head.headers
        .insert("x-cache", HeaderValue::from_static(state));
    if cache::not_modified(&request.headers, &head.headers) && head.status == StatusCode::OK {
        head.status = StatusCode::NOT_MODIFIED;
        head.headers.remove(http::header::CONTENT_LENGTH);
        return Response::from_parts(head, full(Bytes::new()));
    }
    let body = if request.method == Method::HEAD {
        Bytes::new()
    } else {
        stored.body.clone()
    };
    head.headers.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(stored.body.len()),
    );
    Response::from_parts(head, full(body))
}

fn serve_stale(
    parts: &http::request::Parts,
    stored: &Stored,
    now: SystemTime,
) -> Response<ProxyBody> {
    let mut head = Response::new(()).into_parts().0;
    head.status = stored.status;
    head.headers = stored.headers.clone();
    head.headers.insert(
        http::header::AGE,
        HeaderValue::from(stored.policy.age(now).as_secs()),
    );
    serve_stored(parts, stored, head, "STALE")
}

/// Answers a GET or HEAD from the cache when it can, else from upstream (one request per
/// key at a time), storing what may be stored.
pub(crate) async fn cached(
    ctx: RequestContext<'_>,
    cache: &Cache,
    parts: http::request::Parts,
    body: ProxyBody,
) -> Response<ProxyBody> {
    let key = cache_key(&parts.uri, parts.headers.get(HOST));
    let now = SystemTime::now();
    match lookup(cache, &key, &parts, now) {
        Lookup::Fresh(stored, head) => return serve_stored(&parts, &stored, head, "HIT"),
        // RFC 5861 section 3: within the stale-while-revalidate window, answer from the cache
        // and revalidate in the background (one revalidation per key at a time).
        Lookup::Stale(stored, _)
            if stored.stale_while_revalidate.is_some_and(|window| {
                now.duration_since(stored.fresh_until).unwrap_or_default() <= window
            }) =>
        {
            let (state, pool, parts2, key2) = (
                ctx.state.clone(),
                ctx.pool.clone(),
                parts.clone(),
                key.clone(),
            );
            let (peer, client_ip) = (ctx.peer, ctx.client_ip);
            tokio::spawn(async move {
                let Some(cache) = state.cache.as_ref() else {
                    return;
                };
                let ctx = RequestContext {
                    state: &state,
                    pool: &pool,
                    peer,
                    client_ip,
                };
                let lock = cache.fetch_lock(&key2);
                if let Ok(guard) = lock.clone().try_lock_owned() {
                    let _ = cached_locked(ctx, cache, &key2, parts2, None).await;
                    drop(guard);
                }
                cache.release(&key2, lock);
            });
            return serve_stale(&parts, &stored, now);
        }
        _ => {}
    }
    // A URL that just answered with something unstorable is not coalesced: its requests
    // would otherwise reach the origin one after another.
    if cache.is_pass(&key, Instant::now()) {
        return cached_locked(ctx, cache, &key, parts, Some(body)).await;
    }
    // Coalesce: one request per key goes to the origin, the others wait and read the
    // cache after it.
    let lock = cache.fetch_lock(&key);
    let guard = lock.clone().lock_owned().await;
    if cache.is_pass(&key, Instant::now()) {
        // The request ahead found the answer unstorable: stop waiting in line.
        drop(guard);
        cache.release(&key, lock);
        return cached_locked(ctx, cache, &key, parts, Some(body)).await;
    }
    let response = cached_locked(ctx, cache, &key, parts, Some(body)).await;
    drop(guard);
    cache.release(&key, lock);
    response
}

/// [`cached`] once the request holds `key`'s fetch lock (or needs none): a hit, a
/// revalidation of a stale entry, or a miss forwarded and stored.
async fn cached_locked(
    ctx: RequestContext<'_>,
    cache: &Cache,
    key: &str,
    parts: http::request::Parts,
    body: Option<ProxyBody>,
) -> Response<ProxyBody> {
    let now = SystemTime::now();
    match lookup(cache, key, &parts, now) {
        Lookup::Fresh(stored, head) => serve_stored(&parts, &stored, head, "HIT"),
        Lookup::Stale(stored, mut revalidation) => {
            revalidation.version = parts.version;
            revalidation.uri = parts.uri.clone();
            let response = forward(ctx, revalidation.clone(), None, None).await;
            let status = response.status();
            if status.is_server_error() {
                let staleness = now.duration_since(stored.fresh_until).unwrap_or_default();
                if stored
                    .stale_if_error
                    .is_some_and(|limit| staleness <= limit)
                {
                    return serve_stale(&parts, &stored, now);
                }
            }
            if status == StatusCode::NOT_MODIFIED {
                let (head, _) = response.into_parts();
                let mut check = Response::from_parts(head, ());
                // The policy sees clamped delta-seconds (RFC 9111 section 1.2.2).
                *check.headers_mut() = cache::policy_view(check.headers());
                return match stored.policy.after_response(&parts, &check, now) {
                    AfterResponse::NotModified(policy, mut new_head) => {
                        new_head.status = stored.status;
                        let mut headers = new_head.headers.clone();
                        // The origin's Date: the 304's, else the stored one (the policy
                        // writes the cache's clock in another format).
                        match check
                            .headers()
                            .get(http::header::DATE)
                            .or_else(|| stored.headers.get(http::header::DATE))
                        {
                            Some(date) => {
                                headers.insert(http::header::DATE, date.clone());
                            }
                            None => {
                                headers.remove(http::header::DATE);
                            }
                        }
                        // The 304's cookie is for this requester only; the stored copy
                        // never keeps one (Cache::insert removes it too).
                        headers.remove(SET_COOKIE);
                        cache::note_vary(&parts.headers, &mut headers);
                        let fresh_until = cache::fresh_until(&policy, now);
                        let refreshed = Stored {
                            stale_if_error: cache::stale_if_error(&headers),
                            stale_while_revalidate: cache::stale_while_revalidate(&headers),
                            policy,
                            status: stored.status,
                            headers,
                            body: stored.body.clone(),
                            fresh_until,
                        };
                        let out = serve_stored(&parts, &refreshed, new_head, "REVALIDATED");
                        cache.insert(key, refreshed);
                        out
                    }
                    AfterResponse::Modified(_, head) => {
                        Response::from_parts(head, full(Bytes::new()))
                    }
                };
            }
            store(cache, key, &parts, response, now).await
        }
        Lookup::Miss => {
            let response = forward(ctx, parts.clone(), body, None).await;
            store(cache, key, &parts, response, now).await
        }
    }
}

async fn store(
    cache: &Cache,
    key: &str,
    parts: &http::request::Parts,
    response: Response<ProxyBody>,
    now: SystemTime,
) -> Response<ProxyBody> {
    // RFC 9213: `CDN-Cache-Control` replaces `Cache-Control` and `Expires` for this cache;
    // the policy sees that view (with delta-seconds clamped), the client still gets the
    // origin's headers. A response with `Set-Cookie` is not storable.
    let assessment = cache::assess(parts, response.status(), response.headers(), now);
    let small = response
        .body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= cache.max_object);
    if parts.method != Method::GET {
        return response;
    }
    if !assessment.storable || !small {
        cache.mark_pass(key, Instant::now());
        return response;
    }
    let (mut head, body) = response.into_parts();
    let Ok(collected) = body.collect().await else {
        return plain(StatusCode::BAD_GATEWAY, "upstream body failed", false);
    };
    let bytes = collected.to_bytes();
    let mut headers = head.headers.clone();
    cache::note_vary(&parts.headers, &mut headers);
    cache.insert(
        key,
        Stored {
            stale_if_error: assessment.stale_if_error,
            stale_while_revalidate: assessment.stale_while_revalidate,
            policy: assessment.policy,
            status: head.status,
            headers,
            body: bytes.clone(),
            fresh_until: assessment.fresh_until,
        },
    );
    head.headers
        .insert("x-cache", HeaderValue::from_static("MISS"));
    Response::from_parts(head, full(bytes))
}
