//! The proxy's state, wired from a [`Config`]: pools with their balancers, health, outlier
//! and breaker state, routes with their rate limiters, the cache, compression and metrics.
//!
//! Built once by [`State::build`], shared by every connection and worker thread behind an
//! `Arc`, and read by the request path ([`crate::routing`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy_core::{
    CircuitBreaker, HashKey, HeadLimits, HealthCheckConfig, OutlierConfig, OutlierDetector, Pool,
    RetryBudget, RetryPolicy, SplitMix64, TrustedProxies, UpstreamId,
};

use crate::cache::Cache;
use crate::config::{self, Config, ms};
use crate::metrics::Metrics;
use crate::rate_limit::Limiter;
use crate::upstream::Upstreams;

/// One pool of upstreams and everything kept per pool.
pub(crate) struct PoolState {
    pub(crate) name: String,
    pub(crate) pool: Mutex<Pool>,
    pub(crate) hash_key: Option<HashKey>,
    pub(crate) sticky_cookie: Option<String>,
    pub(crate) outlier: Option<Mutex<OutlierDetector<UpstreamId>>>,
    pub(crate) breakers: Option<Mutex<HashMap<UpstreamId, CircuitBreaker>>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) budget: Mutex<RetryBudget>,
    pub(crate) request_timeout: Duration,
    /// An upgraded connection with no byte moving for this long is closed (`None`: never).
    pub(crate) tunnel_idle_timeout: Option<Duration>,
    /// Idle upstream connections, per worker thread, so a request and its upstream
    /// connection stay on one thread.
    pub(crate) upstreams: Arc<Upstreams>,
    pub(crate) health: Option<HealthCheckConfig>,
}

/// A route: requests whose path starts with `prefix` (and whose host is `host`, if set).
pub(crate) struct Route {
    pub(crate) prefix: String,
    pub(crate) host: Option<String>,
    pub(crate) pool: Arc<PoolState>,
    pub(crate) limiter: Option<(Limiter, config::LimitKey)>,
    pub(crate) cache: bool,
}

/// Everything one configured proxy holds.
pub(crate) struct State {
    pub(crate) routes: Vec<Route>,
    pub(crate) pools: Vec<Arc<PoolState>>,
    pub(crate) trusted: TrustedProxies,
    pub(crate) pseudonym: String,
    /// The forwarding headers to write.
    pub(crate) forward_headers: proxy_core::ForwardHeaders,
    pub(crate) metrics: Metrics,
    pub(crate) metrics_path: String,
    pub(crate) admin_path: Option<String>,
    pub(crate) limits: HeadLimits,
    /// `server.head_timeout_ms`: how long an HTTP/1 connection may wait for a request.
    pub(crate) head_timeout: Duration,
    pub(crate) reject_path: Arc<str>,
    pub(crate) start: Instant,
    pub(crate) access_log: bool,
    pub(crate) rng: Mutex<SplitMix64>,
    pub(crate) cache: Option<Cache>,
    pub(crate) compression_min: Option<u64>,
}

thread_local! {
    /// The index of the worker thread (each runs a current-thread runtime).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The index of the current worker thread (0 outside the standalone server's workers).
pub(crate) fn worker() -> usize {
    WORKER.with(std::cell::Cell::get)
}

/// Marks the current thread as worker `index`.
pub(crate) fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

impl State {
    /// Wires the configuration; `workers` is the number of worker threads that will serve
    /// it (one idle-connection list per pool and worker).
    pub(crate) async fn build(config: &Config, workers: usize) -> Result<Self, String> {
        let now = Instant::now();
        let mut pools = Vec::new();
        let mut by_name = HashMap::new();
        for pc in &config.pools {
            let state = Arc::new(pool_state(pc, workers, now)?);
            by_name.insert(pc.name.clone(), state.clone());
            pools.push(state);
        }
        let mut routes = Vec::new();
        for rc in &config.routes {
            let pool = by_name
                .get(&rc.pool)
                .cloned()
                .ok_or_else(|| format!("unknown pool {:?}", rc.pool))?;
            let limiter = match &rc.rate_limit {
                Some(rl) => Some((
                    Limiter::build(config, &rc.prefix, rl).await?,
                    config::parse_limit_key(&rl.key)?,
                )),
                None => None,
            };
            routes.push(Route {
                prefix: rc.prefix.clone(),
                host: rc.host.clone(),
                pool,
                limiter,
                cache: rc.cache,
            });
        }
        let trusted = config.server.trusted()?;
        let secret = SplitMix64::new(
            u64::from(std::process::id()) ^ now.elapsed().as_nanos() as u64 ^ 0xa5a5,
        )
        .next_u64()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        Ok(Self {
            routes,
            pools,
            trusted,
            pseudonym: config.server.pseudonym.clone(),
            forward_headers: config.server.forward_headers()?,
            metrics: Metrics::default(),
            metrics_path: config.server.metrics_path.clone(),
            admin_path: config.server.admin_path.clone(),
            limits: HeadLimits {
                max_head_bytes: config.server.max_head_bytes,
                max_headers: config.server.max_headers,
            },
            head_timeout: Duration::from_millis(config.server.head_timeout_ms.max(2)),
            reject_path: Arc::from(format!("/__proxy/rejected/{secret:016x}")),
            start: now,
            access_log: config.server.access_log,
            rng: Mutex::new(SplitMix64::new(secret)),
            cache: config
                .cache
                .as_ref()
                .map(|c| Cache::new(c.max_bytes, c.max_object_bytes, c.store_set_cookie)),
            compression_min: config.compression.as_ref().map(|c| c.min_length),
        })
    }
}

fn pool_state(pc: &config::PoolConfig, workers: usize, now: Instant) -> Result<PoolState, String> {
    let algorithm = config::parse_algorithm(&pc.algorithm)?;
    let mut pool = Pool::new(algorithm)
        .with_sticky(pc.sticky_cookie.is_some())
        .with_panic_threshold(pc.panic_threshold)
        .with_seed(now.elapsed().as_nanos() as u64 ^ 0x9e37);
    let mut outlier = pc.outlier.as_ref().map(|o| {
        OutlierDetector::new(OutlierConfig {
            consecutive_errors: o.consecutive_errors,
            consecutive_5xx: o.consecutive_5xx,
            base_ejection: ms(o.base_ejection_ms),
            max_ejection: ms(o.base_ejection_ms).saturating_mul(30),
            max_ejected_share: o.max_ejected_share,
        })
    });
    let mut breakers = HashMap::new();
    for u in &pc.upstreams {
        let id = pool.add(u.address.clone(), u.weight);
        if let Some(o) = outlier.as_mut() {
            o.add(id);
        }
        if let Some(b) = &pc.breaker {
            breakers.insert(id, CircuitBreaker::new(b.failures, ms(b.open_ms), 1));
        }
    }
    let upstreams = Arc::new(Upstreams::new(
        workers,
        ms(pc.connect_timeout_ms),
        ms(pc.idle_timeout_ms),
        pc.protocol,
        &pc.http2,
        pc.tls
            .as_ref()
            .map(|tls| {
                crate::tls::UpstreamTls::new(
                    &pc.name,
                    tls,
                    pc.protocol == config::UpstreamProtocol::H2,
                )
            })
            .transpose()?,
    ));
    Ok(PoolState {
        name: pc.name.clone(),
        pool: Mutex::new(pool),
        hash_key: pc
            .hash_key
            .as_deref()
            .map(config::parse_hash_key)
            .transpose()?,
        sticky_cookie: pc.sticky_cookie.clone(),
        outlier: outlier.map(Mutex::new),
        breakers: pc.breaker.as_ref().map(|_| Mutex::new(breakers)),
        retry: RetryPolicy {
            max_retries: pc.max_retries,
            retry_statuses: pc.retry_statuses.clone(),
            retry_timeouts: pc.retry_timeouts,
            ..RetryPolicy::default()
        },
        budget: Mutex::new(RetryBudget::new(0.2, 10.0)),
        request_timeout: ms(pc.request_timeout_ms),
        tunnel_idle_timeout: (pc.tunnel_idle_timeout_ms > 0).then(|| ms(pc.tunnel_idle_timeout_ms)),
        upstreams,
        health: pc.health.as_ref().map(|h| HealthCheckConfig {
            path: h.path.clone(),
            interval: ms(h.interval_ms),
            timeout: ms(h.timeout_ms),
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
        }),
    })
}
