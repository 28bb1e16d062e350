//! Forwarding one request to a member of its route's pool, with retries.
//!
//! [`forward`] runs in steps: rewrite the client's head for the upstream ([`Outbound::new`]:
//! hop-by-hop headers out, `Forwarded`/`X-Forwarded-*`/`Via` in, the body read whole when a
//! retry may need it again), then per attempt pick a member ([`pick`]), send, record the
//! outcome in the pool's balancer, outlier detector and breaker ([`record`]), and either retry
//! on another member within the retry budget or answer ([`respond`]: the upstream's
//! response, or a WebSocket tunnel after a `101`). A gRPC call goes to an HTTP/2 pool only,
//! with `te: trailers`, its `grpc-timeout` as its deadline and its failures answered as gRPC
//! statuses ([`crate::grpc`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONNECTION, HOST, SET_COOKIE, UPGRADE};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use proxy_core::{
    Failure, ForwardContext, GrpcCode, Outcome, Pick, PickContext, SmugglingError, UpstreamId,
    apply_forwarding, canonicalize_content_length, cookie_value, encode_grpc_timeout, grpc_timeout,
    is_grpc, is_replayable, remove_hop_by_hop,
};

use crate::request_timer::{self, RequestTimer, TimedOut};
use crate::state::{PoolState, State};
use crate::tunnel::ClientUpgrade;
use crate::upstream::{PooledBody, SendBody, SendError};
use crate::{ProxyBody, grpc, plain};

/// Bodies of replayable requests up to this size are buffered so they can be retried.
const MAX_BUFFERED_BODY: u64 = 1024 * 1024;

/// What one request is forwarded with: the proxy, the route's pool, the connection's peer,
/// the scheme the client used (`http` or `https`, for the forwarding headers) and the
/// client's address (the peer, or what a trusted proxy says it forwarded for).
#[derive(Clone, Copy)]
pub(crate) struct RequestContext<'a> {
    pub(crate) state: &'a Arc<State>,
    pub(crate) pool: &'a Arc<PoolState>,
    pub(crate) peer: SocketAddr,
    pub(crate) scheme: &'static str,
    pub(crate) client_ip: IpAddr,
    /// The client connection's request timer (HTTP/1), for the pool's request timeout.
    pub(crate) timer: Option<&'a RequestTimer>,
    /// The response may carry the upstream's fields as raw lines rather than in its
    /// `HeaderMap` (see [`crate::routing::Caller::Lean`]).
    pub(crate) raw_fields: bool,
}

/// Whether the request is a gRPC call: `application/grpc*` from an HTTP/2 client.
pub(crate) fn is_grpc_call(parts: &Parts) -> bool {
    parts.version == http::Version::HTTP_2 && is_grpc(&parts.headers)
}

/// Forwards the request (`parts`, `body`) to a member of `ctx.pool` and answers with the
/// upstream's response, or with 502/503/504 when no member answered (a gRPC status for a
/// gRPC call). `client_upgrade` is the client connection's upgrade, for a request with
/// `Upgrade`.
pub(crate) async fn forward(
    ctx: RequestContext<'_>,
    parts: Parts,
    body: Option<ProxyBody>,
    client_upgrade: Option<ClientUpgrade>,
) -> Response<ProxyBody> {
    let h2 = ctx.pool.upstreams.is_h2();
    let (mut outbound, chunked) = match Outbound::new(ctx, parts, client_upgrade.is_some()) {
        Ok(outbound) => outbound,
        Err(error) => return plain(error.status(), &format!("bad request: {error}"), true),
    };
    // Read here rather than in `Outbound::new`, which is then not an `async fn`: most
    // requests have no body, and its future (1 KiB: the head and every decision held
    // across the read) was built and copied for each of them.
    if let Some(body) = body.filter(|b| !b.is_end_stream()) {
        // HTTP/2 frames its bodies itself: no `Transfer-Encoding` towards it.
        let buffer = outbound.replayable && !outbound.upgrade;
        match read_body(body, buffer, chunked && !h2, &mut outbound.headers).await {
            Ok(body) => outbound.body = body,
            Err(response) => return response,
        }
    }
    if outbound.upgrade && h2 {
        return plain(
            StatusCode::NOT_IMPLEMENTED,
            "upgrades need a pool with protocol = \"http1\"",
            true,
        );
    }
    if !outbound.grpc {
        return attempts(&ctx, &mut outbound, None, client_upgrade).await;
    }
    if !h2 {
        return grpc::answer(
            GrpcCode::Unimplemented,
            &format!(
                "pool {:?} speaks HTTP/1.1; gRPC needs protocol = \"h2c\"",
                ctx.pool.name
            ),
        );
    }
    let deadline = outbound.grpc_timeout.map(|t| Instant::now() + t);
    let response = attempts(&ctx, &mut outbound, deadline, client_upgrade).await;
    grpc::pass(response, deadline)
}

/// Sends the request to members until one answers or no retry is left; the response head
/// must come within the pool's request timeout and by the call's `deadline`, if any.
///
/// `ctx` and `outbound` are borrowed from `forward`'s future: taken by value, an `async fn`
/// keeps its arguments twice in its suspended state (as captured and as moved into its
/// body), which made this future 700 bytes larger, copied with it once per request.
async fn attempts(
    ctx: &RequestContext<'_>,
    outbound: &mut Outbound,
    deadline: Option<Instant>,
    client_upgrade: Option<ClientUpgrade>,
) -> Response<ProxyBody> {
    let pool = ctx.pool;
    let h2 = pool.upstreams.is_h2();
    // The clock is read as few times as the decisions need (each read is a vDSO call, and
    // this runs for every request).
    let mut now = Instant::now();
    if let Ok(mut budget) = pool.budget.lock() {
        budget.deposit(now);
    }
    let mut tried: Vec<UpstreamId> = Vec::new();
    let mut last_failure: Option<Failure> = None;
    let mut attempt = 0u32;
    loop {
        // A retry after the call's deadline would be cut at once: answer it here.
        if deadline.is_some_and(|d| d <= now) {
            return grpc::answer(GrpcCode::DeadlineExceeded, "deadline exceeded at the proxy");
        }
        let pick = match pick(pool, outbound, &tried, now) {
            Choice::Member(pick) => pick,
            Choice::NoneLeft => return unavailable(last_failure),
            Choice::LockPoisoned => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "pool lock poisoned",
                    false,
                );
            }
        };
        // The request is needed again only if this attempt may be retried.
        let may_retry = outbound.replayable
            && attempt < pool.retry.max_retries
            && matches!(outbound.body, OutBody::Buffered(_));
        let Some(mut upstream_request) = outbound.request(&pick.address, h2) else {
            if let Ok(mut p) = pool.pool.lock() {
                p.finish(pick.id, None, now);
            }
            return plain(StatusCode::BAD_REQUEST, "bad request target", false);
        };
        // Read again for a gRPC deadline, so that what the upstream gets of it counts the
        // time spent here; otherwise the attempt's start is close enough (the time to the
        // answer feeds the balancer's latency estimate).
        let sent = if deadline.is_some() {
            Instant::now()
        } else {
            now
        };
        // The upstream gets what is left of the call's time, not the client's whole timeout.
        if let Some(deadline) = deadline {
            upstream_request.headers_mut().insert(
                "grpc-timeout",
                encode_grpc_timeout(deadline.saturating_duration_since(sent)),
            );
        }
        let pool_deadline = sent + pool.request_timeout;
        // The client's deadline, when it comes first: a timeout then says nothing about the
        // member's health.
        let client_deadline = deadline.filter(|d| *d < pool_deadline);
        let result = {
            let send = std::pin::pin!(pool.upstreams.send(
                pick.id,
                &pick.address,
                &mut upstream_request,
                may_retry,
                ctx.raw_fields
            ));
            request_timer::within(
                ctx.timer,
                client_deadline.unwrap_or(pool_deadline).into(),
                send,
            )
            .await
        };
        let done = Instant::now();
        let rtt = done.saturating_duration_since(sent);
        let failure = match &result {
            Ok(Ok(r)) if pool.retry.retry_statuses.contains(&r.status().as_u16()) => {
                Some(Failure::Status(r.status().as_u16()))
            }
            Ok(Ok(_)) => None,
            Ok(Err(SendError::Connect)) => Some(Failure::Connect),
            Ok(Err(SendError::Request)) => Some(Failure::Reset),
            Err(_) => Some(Failure::Timeout),
        };
        let blame = !(client_deadline.is_some() && result.is_err());
        record(*ctx, &pick, &result, rtt, done, blame);
        let retry = failure.is_some_and(|f| {
            matches!(outbound.body, OutBody::Buffered(_))
                && pool
                    .retry
                    .should_retry_replayable(outbound.replayable, f, attempt)
                && pool.budget.lock().is_ok_and(|mut b| b.withdraw(done))
        });
        if retry {
            // Kept by `send`, as the attempt `may_retry`.
            outbound.headers = std::mem::take(upstream_request.headers_mut());
            ctx.state.metrics.retries.fetch_add(1, Ordering::Relaxed);
            tried.push(pick.id);
            last_failure = failure;
            attempt += 1;
            let jitter = ctx.state.rng.lock().map_or(0.5, |mut r| r.unit());
            tokio::time::sleep(pool.retry.backoff(attempt, jitter)).await;
            now = Instant::now();
            continue;
        }
        return respond(pool, &pick, result, outbound.upgrade, client_upgrade);
    }
}

/// What an attempt's send returned: the upstream's response, a send error, or a timeout.
type SendResult = Result<Result<Response<PooledBody>, SendError>, TimedOut>;

/// The request body as sent upstream.
enum OutBody {
    /// Read whole (empty, or replayable and small enough): every attempt sends a copy.
    Buffered(Bytes),
    /// Streamed to the first attempt only.
    Stream(Option<ProxyBody>),
}

/// The request as it goes upstream, and what the client's head decided about it.
struct Outbound {
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    body: OutBody,
    /// The client's request may be sent more than once (idempotent or `Idempotency-Key`).
    replayable: bool,
    /// The client asked for an upgrade (`Connection: upgrade` with `Upgrade`).
    upgrade: bool,
    /// A gRPC call ([`is_grpc_call`]).
    grpc: bool,
    /// Its `grpc-timeout`.
    grpc_timeout: Option<Duration>,
    /// The client sent `te: trailers`, kept towards an HTTP/2 member (RFC 9113 section
    /// 8.2.2).
    te_trailers: bool,
    hash_key: Option<Vec<u8>>,
    sticky: Option<String>,
}

impl Outbound {
    /// Rewrites the client's head for the upstream, with an empty body for the caller to
    /// replace ([`read_body`]); also whether the client's body is chunked. The error when
    /// the head is unusable (a 400).
    fn new(
        ctx: RequestContext<'_>,
        mut parts: Parts,
        client_upgrade: bool,
    ) -> Result<(Self, bool), SmugglingError> {
        let upgrade = client_upgrade
            && parts
                .headers
                .get_all(CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        // Decisions on the client's own headers, taken before they are rewritten in place for
        // the upstream (rewriting in place spares a copy of the header map per request).
        let replayable = is_replayable(&parts.method, &parts.headers);
        let grpc = is_grpc_call(&parts);
        let grpc_timeout = grpc.then(|| grpc_timeout(&parts.headers)).flatten();
        let te_trailers = parts
            .headers
            .get_all(http::header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
        let hash_key = ctx
            .pool
            .hash_key
            .as_ref()
            .and_then(|k| k.extract(&parts.headers, ctx.client_ip));
        let sticky = ctx
            .pool
            .sticky_cookie
            .as_deref()
            .and_then(|c| cookie_value(&parts.headers, c))
            .map(str::to_owned);
        let (headers, chunked) = upstream_headers(ctx, &mut parts, upgrade)?;
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let outbound = Self {
            method: parts.method,
            path_and_query,
            headers,
            body: OutBody::Buffered(Bytes::new()),
            replayable,
            upgrade,
            grpc,
            grpc_timeout,
            te_trailers,
            hash_key,
            sticky,
        };
        Ok((outbound, chunked))
    }

    /// The request for one attempt to the member at `address`, with the headers (an attempt
    /// to be retried gets them back from `Upstreams::send`, which copies them only for
    /// hyper's client); `None` when a CONNECT target is not an authority. `te: trailers` is
    /// kept towards an `h2` member.
    fn request(&mut self, address: &str, h2: bool) -> Option<Request<SendBody>> {
        let body = match &mut self.body {
            OutBody::Buffered(bytes) => SendBody::Bytes(bytes.clone()),
            OutBody::Stream(stream) => stream
                .take()
                .map_or(SendBody::Bytes(Bytes::new()), SendBody::Stream),
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.headers_mut() = std::mem::take(&mut self.headers);
        if h2 && self.te_trailers {
            request
                .headers_mut()
                .insert(http::header::TE, HeaderValue::from_static("trailers"));
        }
        // Origin-form, or for CONNECT the upstream's authority (RFC 9112 section 3.2).
        let target = if self.method == Method::CONNECT {
            address.parse().ok()?
        } else {
            http::Uri::from(self.path_and_query.clone())
        };
        *request.uri_mut() = target;
        Some(request)
    }
}

/// The client's headers rewritten in place for the upstream: `Content-Length` canonical,
/// hop-by-hop headers removed (the upgrade's kept when it is one), forwarding headers
/// written. Also whether the body is chunked.
fn upstream_headers(
    ctx: RequestContext<'_>,
    parts: &mut Parts,
    upgrade: bool,
) -> Result<(HeaderMap, bool), SmugglingError> {
    // Looked up only when used: each lookup hashes the name, and this runs per request.
    let write = ctx.state.forward_headers;
    let host = (write.forwarded || write.x_forwarded_host)
        .then(|| parts.headers.get(HOST).cloned())
        .flatten();
    let upgrade_value = upgrade
        .then(|| parts.headers.get(UPGRADE).cloned())
        .flatten();
    let mut headers = std::mem::take(&mut parts.headers);
    // The body length as we read it, in one canonical form (`0003` reaches the origin as `3`).
    canonicalize_content_length(&mut headers)?;
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|te| te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"));
    remove_hop_by_hop(&mut headers);
    if let Some(value) = upgrade_value {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, value);
    }
    apply_forwarding(
        &mut headers,
        &ForwardContext {
            peer: ctx.peer.ip(),
            proto: ctx.scheme,
            host: host.as_ref().and_then(|h| h.to_str().ok()),
            trusted: &ctx.state.trusted,
            pseudonym: &ctx.state.pseudonym,
            write,
            version: parts.version,
        },
    );
    Ok((headers, chunked))
}

/// The body to send, for a request that has one (an empty body stays `Outbound`'s empty
/// buffer): buffered when the request is `replayable` and the body is known to fit
/// [`MAX_BUFFERED_BODY`]; streamed otherwise.
async fn read_body(
    body: ProxyBody,
    replayable: bool,
    chunked: bool,
    headers: &mut HeaderMap,
) -> Result<OutBody, Response<ProxyBody>> {
    let fits = body
        .size_hint()
        .upper()
        .is_some_and(|n| n <= MAX_BUFFERED_BODY);
    if !(replayable && fits) {
        // One rule for every method: a chunked body is forwarded chunked. Without this
        // header hyper's client would send a GET or HEAD with no body at all.
        if chunked {
            headers.insert(
                http::header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        return Ok(OutBody::Stream(Some(body)));
    }
    // The size hint's upper bound is the request's `Content-Length`, which hyper holds the
    // body to; the length is checked again all the same.
    match body.collect().await.map(|collected| collected.to_bytes()) {
        Ok(bytes) if bytes.len() as u64 <= MAX_BUFFERED_BODY => Ok(OutBody::Buffered(bytes)),
        _ => Err(plain(
            StatusCode::BAD_REQUEST,
            "could not read the request body",
            true,
        )),
    }
}

/// What [`pick`] found.
enum Choice {
    Member(Pick),
    /// Every member was tried, is down, or has its breaker open.
    NoneLeft,
    LockPoisoned,
}

/// Picks a member not yet `tried` whose circuit breaker lets a request through.
fn pick(pool: &PoolState, outbound: &Outbound, tried: &[UpstreamId], now: Instant) -> Choice {
    let Ok(mut p) = pool.pool.lock() else {
        return Choice::LockPoisoned;
    };
    let mut exclude = tried.to_vec();
    loop {
        let ctx = PickContext {
            hash_key: outbound.hash_key.as_deref(),
            sticky: outbound.sticky.as_deref(),
            exclude: &exclude,
        };
        let Some(pick) = p.pick(&ctx, now) else {
            return Choice::NoneLeft;
        };
        let allowed = pool
            .breakers
            .as_ref()
            .and_then(|b| b.lock().ok())
            .is_none_or(|mut b| b.get_mut(&pick.id).is_none_or(|br| br.allow(now)));
        if allowed {
            return Choice::Member(pick);
        }
        p.finish(pick.id, None, now);
        exclude.push(pick.id);
    }
}

/// Marks a response the proxy wrote because no upstream answered (502, 503, 504), so the
/// cache can tell "disconnected" (RFC 9111 section 4.2.4) from an origin's own 5xx.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamUnreachable;

/// A 502/503/504 the proxy writes itself, marked [`UpstreamUnreachable`].
fn no_answer(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let mut response = plain(status, message, false);
    response.extensions_mut().insert(UpstreamUnreachable);
    response
}

/// The answer when no member is left to try, after `last_failure` (if any attempt failed).
fn unavailable(last_failure: Option<Failure>) -> Response<ProxyBody> {
    match last_failure {
        None => no_answer(StatusCode::SERVICE_UNAVAILABLE, "no upstream available"),
        Some(Failure::Timeout) => no_answer(StatusCode::GATEWAY_TIMEOUT, "upstream timed out"),
        Some(_) => no_answer(StatusCode::BAD_GATEWAY, "upstream unreachable"),
    }
}

/// Records an attempt's outcome: the balancer's in-flight count and latency, outlier
/// ejection, the member's circuit breaker and the error counter.
/// A failure is held against the member only when `blame` (not when the client's own
/// deadline ran out first).
fn record(
    ctx: RequestContext<'_>,
    pick: &Pick,
    result: &SendResult,
    rtt: Duration,
    done: Instant,
    blame: bool,
) {
    let pool = ctx.pool;
    let outcome = match result {
        Ok(Ok(r)) => Outcome::Status(r.status().as_u16()),
        _ => Outcome::Error,
    };
    if let Ok(mut p) = pool.pool.lock() {
        p.finish(
            pick.id,
            result.as_ref().is_ok_and(|r| r.is_ok()).then_some(rtt),
            done,
        );
        if let Some(until) = blame
            .then_some(pool.outlier.as_ref())
            .flatten()
            .and_then(|o| o.lock().ok())
            .and_then(|mut o| o.record(&pick.id, outcome, done))
        {
            tracing::warn!(pool = %pool.name, upstream = %pick.address, "ejected by outlier detection");
            p.eject(pick.id, until);
        }
    }
    if blame
        && let Some(mut breakers) = pool.breakers.as_ref().and_then(|b| b.lock().ok())
        && let Some(b) = breakers.get_mut(&pick.id)
    {
        match outcome {
            Outcome::Error | Outcome::Status(500..=599) => b.record_failure(done),
            Outcome::Status(_) => b.record_success(),
        }
    }
    if matches!(outcome, Outcome::Error) {
        ctx.state
            .metrics
            .upstream_errors
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// The client's answer from the last attempt: the upstream's response with hop-by-hop headers
/// removed and the sticky cookie set, a tunnel between the two connections after a `101`, or
/// 502/504.
fn respond(
    pool: &PoolState,
    pick: &Pick,
    result: SendResult,
    upgrade: bool,
    client_upgrade: Option<ClientUpgrade>,
) -> Response<ProxyBody> {
    let mut response = match result {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => return no_answer(StatusCode::BAD_GATEWAY, "upstream unreachable"),
        Err(_) => return no_answer(StatusCode::GATEWAY_TIMEOUT, "upstream timed out"),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            crate::tunnel::spawn(client_upgrade, upstream_upgrade, pool.tunnel_idle_timeout);
        }
    } else {
        if !response.body().head_is_end_to_end() {
            remove_hop_by_hop(response.headers_mut());
        }
        if upgrade {
            // The upgrade was refused: the bytes that follow on this connection were not
            // checked as HTTP/1, so end it.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
    if let (Some(cookie), Some(token)) = (&pool.sticky_cookie, &pick.set_sticky)
        && let Ok(v) =
            HeaderValue::from_str(&format!("{cookie}={token}; Path=/; HttpOnly; SameSite=Lax"))
    {
        response.headers_mut().append(SET_COOKIE, v);
    }
    response.map(http_body_util::BodyExt::boxed)
}
