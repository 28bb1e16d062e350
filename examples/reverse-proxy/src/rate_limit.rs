//! Per-route rate limits: a GCRA in memory, or (feature `redis`) shared through Redis.
//!
//! [`admit`] answers 429 with `Retry-After` and `RateLimit-*` when the route's budget for
//! the request's key is spent, and otherwise hands back the `RateLimit-*` headers to add to
//! the response. A Redis outage fails open, with a warning.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Response, StatusCode};
use proxy_core::{Gcra, MemoryLimiter, client_network};

use crate::config::{Config, LimitKey, RateLimitConfig, ms};
use crate::state::{Route, State};
use crate::{ProxyBody, plain};

/// Where a route's rate limit keeps its state.
pub(crate) enum Limiter {
    Memory(MemoryLimiter),
    #[cfg(feature = "redis")]
    Redis(proxy_core::RedisLimiter),
}

impl Limiter {
    /// The limiter of the route at `prefix`; connects to Redis for `store = "redis"`.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) async fn build(
        config: &Config,
        prefix: &str,
        rl: &RateLimitConfig,
    ) -> Result<Self, String> {
        let gcra = Gcra::new(rl.rate, ms(rl.period_ms), rl.burst.unwrap_or(rl.rate));
        Ok(match rl.store.as_str() {
            #[cfg(feature = "redis")]
            "redis" => {
                let url = config.server.redis_url.clone().unwrap_or_default();
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| format!("server.redis_url: {e}"))?;
                let connection = redis::aio::ConnectionManager::new(client)
                    .await
                    .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
                Self::Redis(proxy_core::RedisLimiter::new(
                    connection,
                    gcra,
                    format!("{}{prefix}:", config.server.redis_prefix),
                ))
            }
            _ => Self::Memory(MemoryLimiter::new(gcra)),
        })
    }
}

/// The `RateLimit-*` headers to add to an admitted request's response.
pub(crate) type LimitHeaders = Vec<(&'static str, String)>;

/// Checks `route`'s rate limit for a request with `headers` from `client_ip`: the headers to
/// add to the response, or the 429 to answer with.
pub(crate) async fn admit(
    state: &State,
    route: &Route,
    headers: &http::HeaderMap,
    client_ip: IpAddr,
) -> Result<LimitHeaders, Response<ProxyBody>> {
    let Some((limiter, key)) = &route.limiter else {
        return Ok(Vec::new());
    };
    let key = match key {
        // An IPv6 client holds a /64: one bucket for it, not 2^64.
        LimitKey::Client => client_network(client_ip).to_string(),
        LimitKey::Route => route.prefix.clone(),
        LimitKey::Header(name) => headers.get(name).map_or_else(String::new, |v| {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }),
    };
    let decision = match limiter {
        Limiter::Memory(l) => Some(l.check(&key, state.start.elapsed().as_nanos() as u64)),
        // Fail open: a Redis outage must not take the site down; it is logged.
        #[cfg(feature = "redis")]
        Limiter::Redis(l) => match l.check(&key).await {
            Ok(d) => Some(d),
            Err(error) => {
                tracing::warn!(%error, "rate limit store unavailable; allowing the request");
                None
            }
        },
    };
    let Some(decision) = decision else {
        return Ok(Vec::new());
    };
    let limit_headers = decision.headers();
    if decision.allowed {
        return Ok(limit_headers);
    }
    state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
    let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests", false);
    add_headers(&mut r, limit_headers);
    Err(r)
}

/// Adds the `RateLimit-*` headers to `response`.
pub(crate) fn add_headers(response: &mut Response<ProxyBody>, limit_headers: LimitHeaders) {
    for (name, value) in limit_headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
}

/// Drops the memory limiters' idle buckets.
pub(crate) fn sweep(state: &State) {
    let now = state.start.elapsed().as_nanos() as u64;
    for route in &state.routes {
        if let Some((Limiter::Memory(limiter), _)) = &route.limiter {
            limiter.sweep(now);
        }
    }
}
