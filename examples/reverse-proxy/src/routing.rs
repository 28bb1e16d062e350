//! One parsed request, from its head to the response: the parsed-head checks, the proxy's own
//! paths ([`crate::admin`]), the route (longest prefix, a host match first), its rate limit,
//! then the cache or [`forward`], and compression.
//!
//! Both ways of serving the proxy end here: a connection of the standalone server
//! ([`crate::Proxy`]) and a mounted [`crate::App`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::header::HOST;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use proxy_core::{check_parsed_request, client_address};

use crate::forward::{RequestContext, forward, is_grpc_call};
use crate::request_timer::RequestTimer;
use crate::state::{Route, State};
use crate::tunnel::ClientUpgrade;
use crate::{ProxyBody, admin, cache, compress, plain, rate_limit};

/// Which path parsed a request: what is left to check of its head, and how its response
/// is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// hyper's HTTP/1 server or a mounted [`crate::App`]: [`check_parsed_request`] is run
    /// here.
    Hyper,
    /// The HTTP/2 path, which has run [`check_parsed_request`] itself (it counts a refusal
    /// against its connection).
    Http2,
    /// The lean HTTP/1.1 path (`crate::h1_server`), whose checks on the bytes the head was
    /// parsed from include every one of [`check_parsed_request`]'s. It writes response heads
    /// itself, so it takes an upstream's fields as raw lines (`crate::h1_client::RawFields`).
    Lean,
}

/// Answers one request from `peer`, who reached the proxy over `scheme` (`http` or
/// `https`); `client_upgrade` is the connection's upgrade, for a request with `Upgrade`;
/// `timer` is the connection's request timer, when it has one ([`crate::request_timer`]).
pub(crate) async fn route_request(
    state: &Arc<State>,
    peer: SocketAddr,
    scheme: &'static str,
    request: Request<ProxyBody>,
    client_upgrade: Option<ClientUpgrade>,
    timer: Option<&RequestTimer>,
    caller: Caller,
) -> Response<ProxyBody> {
    let (parts, body) = request.into_parts();
    if caller == Caller::Hyper
        && let Err(error) = check_parsed_request(&parts)
    {
        state.metrics.rejected_heads.fetch_add(1, Ordering::Relaxed);
        return plain(error.status(), &format!("bad request: {error}"), true);
    }
    if let Some(response) = admin::own_path(state, peer, &parts) {
        return response;
    }
    let grpc = is_grpc_call(&parts);
    let Some(route) = select_route(state, &parts) else {
        if grpc {
            return crate::grpc::answer(proxy_core::GrpcCode::Unimplemented, "no route");
        }
        return plain(StatusCode::NOT_FOUND, "no route", false);
    };
    let ctx = RequestContext {
        state,
        pool: &route.pool,
        peer,
        scheme,
        client_ip: client_address(peer.ip(), &parts.headers, &state.trusted),
        timer,
        // The upstream's fields may skip the `HeaderMap` only when nothing here reads or
        // replaces them: not for the cache, compression or the limiter's `RateLimit-*`
        // fields (appended fields, such as a sticky cookie, are written as well).
        raw_fields: caller == Caller::Lean
            && state.compression_min.is_none()
            && route.limiter.is_none()
            && !(route.cache && state.cache.is_some()),
    };
    // Boxed when there is a limit to check, so that a route without one does not carry the
    // limiter's future in its own (see the boxes below).
    let admitted = match route.limiter {
        None => Ok(Vec::new()),
        Some(_) => {
            Box::pin(rate_limit::admit(
                state,
                route,
                &parts.headers,
                ctx.client_ip,
            ))
            .await
        }
    };
    let limit_headers = match admitted {
        Ok(headers) => headers,
        // A gRPC client maps an HTTP 429 to UNAVAILABLE, which it may retry at once: the
        // limit is RESOURCE_EXHAUSTED, with the same `Retry-After` and `RateLimit-*`.
        Err(too_many) if grpc => {
            let mut answer =
                crate::grpc::answer(proxy_core::GrpcCode::ResourceExhausted, "rate limited");
            answer.headers_mut().extend(
                too_many
                    .headers()
                    .iter()
                    .filter(|(name, _)| {
                        *name != http::header::CONTENT_TYPE && *name != http::header::CONTENT_LENGTH
                    })
                    .map(|(name, value)| (name.clone(), value.clone())),
            );
            return answer;
        }
        Err(too_many) => return too_many,
    };
    // gRPC messages are framed and compressed by gRPC itself (`grpc-encoding`).
    let request_headers = state
        .compression_min
        .filter(|_| !grpc)
        .map(|_| (parts.headers.clone(), parts.method == Method::HEAD));
    // The upstream's answer: through the cache on a caching route (GET and HEAD answered
    // from it, other methods invalidating it on success), else forwarded. A fresh cache hit
    // is answered without building any future of the upstream path. The cache's futures
    // are boxed: they are KiBs (revalidation, coalescing), and held inline they would be
    // copied with the future around them for every request. Forwarding's is held inline:
    // with the release profile's whole-program optimization, its box (2.4 KiB, past the
    // allocator's small sizes) cost more than the copies (callgrind: 23,360 -> 22,838
    // instructions per proxied request; a cache hit's count did not move). They are
    // awaited here rather than in a function of their own, whose future would be built and
    // copied for every request too.
    let mut response = match &ctx.state.cache {
        Some(cache)
            if route.cache && (parts.method == Method::GET || parts.method == Method::HEAD) =>
        {
            match cache::fresh(cache, &parts) {
                Ok(hit) => hit,
                Err(key) => Box::pin(cache::cached(ctx, cache, key, parts, body)).await,
            }
        }
        Some(cache) if route.cache => {
            let request = parts.clone();
            let response = Box::pin(forward(ctx, parts, Some(body), client_upgrade)).await;
            cache::invalidate(cache, &request, response.status(), response.headers());
            response
        }
        _ => forward(ctx, parts, Some(body), client_upgrade).await,
    };
    if let (Some(min), Some((headers, head))) = (state.compression_min, request_headers) {
        response = compress::compress(&headers, head, response, min);
    }
    rate_limit::add_headers(&mut response, limit_headers);
    response
}

/// The route for the request: the longest matching prefix, routes with a matching host
/// before those without one.
fn select_route<'a>(state: &'a State, parts: &Parts) -> Option<&'a Route> {
    // Compared without allocating, and `Host` looked up only for a route that names one:
    // this runs for every request.
    let mut host = None;
    let path = parts.uri.path();
    state
        .routes
        .iter()
        .filter(|r| path.starts_with(&r.prefix))
        .filter(|r| {
            r.host.as_ref().is_none_or(|h| {
                host.get_or_insert_with(|| {
                    parts
                        .headers
                        .get(HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(|h| h.split(':').next().unwrap_or(h))
                })
                .is_some_and(|host| host.eq_ignore_ascii_case(h))
            })
        })
        .max_by_key(|r| (r.host.is_some(), r.prefix.len()))
}
