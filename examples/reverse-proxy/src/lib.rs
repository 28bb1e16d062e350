//! reverse-proxy: a load-balancing reverse proxy built on proxy-core, as a library.
//!
//! The binary (`src/main.rs`, run with
//! `cargo run -p reverse-proxy -- --config examples/reverse-proxy/proxy.toml`) parses a
//! [`ServerConfig`] and calls [`run`]: one `SO_REUSEPORT` listener per worker thread, TLS if
//! configured, and every request head checked on the raw bytes (`checked_io`) before hyper
//! parses it.
//!
//! The showcase mounts the same proxy under a path prefix with [`App`]: [`App::new`] builds
//! the pools, routes, cache, compression, rate limits and metrics from the same TOML (the
//! `[server] listen`, `tls` and `workers` fields are then unused, since the host server owns
//! the socket), [`Settings::base_path`] is stripped from the path before routing, so a
//! route `prefix = "/api/"` mounted at `/proxy` answers `/proxy/api/...` and forwards
//! `/api/...` upstream, and [`App::handle`] answers one request. A mounted proxy sees
//! requests the host server already parsed, so the raw-byte smuggling checks do not apply
//! there; the checks on the parsed head ([`proxy_core::check_parsed_request`]) still do.
//!
//! ```text
//! curl -si http://127.0.0.1:8080/                  # proxied to a pool member
//! curl -s http://127.0.0.1:8080/__proxy/metrics    # Prometheus metrics
//! printf 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n' \
//!   | nc 127.0.0.1 8080                             # 400: CL and TE together
//! ```
//!
//! Upstreams are picked by the pool's algorithm, health-checked actively and passively, and
//! retried only when safe. A bad config file is refused with a message naming the field.

mod cache;
mod checked_io;
mod compress;
mod config;
mod metrics;
mod upstream;

pub use cache::{CacheFreshness, cache_freshness};

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use checked_io::{CheckedIo, Rejection};
use config::{Config, LimitKey, ms};
use http::header::{CONNECTION, CONTENT_TYPE, HOST, SET_COOKIE, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use http_cache_semantics::{AfterResponse, BeforeRequest};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics::Metrics;
use proxy_core::{
    CircuitBreaker, Failure, ForwardContext, Gcra, HashKey, HeadLimits, HealthCheckConfig,
    HealthChecker, MemoryLimiter, Outcome, OutlierConfig, OutlierDetector, PickContext, Pool,
    RetryBudget, RetryPolicy, SplitMix64, TrustedProxies, UpstreamId, apply_forwarding,
    canonicalize_content_length, check_parsed_request, client_address, client_network,
    cookie_value, is_replayable, remove_hop_by_hop,
};
use tokio::net::TcpListener;

/// The error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response the proxy sends.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Bodies of replayable requests up to this size are buffered so they can be retried.
const MAX_BUFFERED_BODY: u64 = 1024 * 1024;

struct PoolState {
    name: String,
    pool: Mutex<Pool>,
    hash_key: Option<HashKey>,
    sticky_cookie: Option<String>,
    outlier: Option<Mutex<OutlierDetector<UpstreamId>>>,
    breakers: Option<Mutex<HashMap<UpstreamId, CircuitBreaker>>>,
    retry: RetryPolicy,
    budget: Mutex<RetryBudget>,
    request_timeout: Duration,
    /// Idle upstream connections, per worker thread, so a request and its upstream
    /// connection stay on one thread.
    upstreams: Arc<upstream::Upstreams>,
    health: Option<HealthCheckConfig>,
}

/// The index of the current worker thread (0 outside the standalone server's workers).
fn worker() -> usize {
    WORKER.with(std::cell::Cell::get)
}

thread_local! {
    /// The index of the worker thread (each runs a current-thread runtime).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

enum Limiter {
    Memory(MemoryLimiter),
    #[cfg(feature = "redis")]
    Redis(proxy_core::RedisLimiter),
}

struct Route {
    prefix: String,
    host: Option<String>,
    pool: Arc<PoolState>,
    limiter: Option<(Limiter, LimitKey)>,
    cache: bool,
}

struct Inner {
    routes: Vec<Route>,
    pools: Vec<Arc<PoolState>>,
    trusted: TrustedProxies,
    pseudonym: String,
    /// The forwarding headers to write.
    forward_headers: proxy_core::ForwardHeaders,
    metrics: Metrics,
    metrics_path: String,
    admin_path: Option<String>,
    limits: HeadLimits,
    reject_path: Arc<str>,
    start: Instant,
    access_log: bool,
    rng: Mutex<SplitMix64>,
    cache: Option<cache::Cache>,
    compression_min: Option<u64>,
}

async fn build_app(config: &Config, workers: usize) -> Result<Inner, String> {
    let now = Instant::now();
    let mut pools = Vec::new();
    let mut by_name = HashMap::new();
    for pc in &config.pools {
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
        let upstreams = Arc::new(upstream::Upstreams::new(
            workers,
            ms(pc.connect_timeout_ms),
            ms(pc.idle_timeout_ms),
        ));
        let state = Arc::new(PoolState {
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
            upstreams,
            health: pc.health.as_ref().map(|h| HealthCheckConfig {
                path: h.path.clone(),
                interval: ms(h.interval_ms),
                timeout: ms(h.timeout_ms),
                healthy_threshold: h.healthy_threshold,
                unhealthy_threshold: h.unhealthy_threshold,
            }),
        });
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
            Some(rl) => {
                let gcra = Gcra::new(rl.rate, ms(rl.period_ms), rl.burst.unwrap_or(rl.rate));
                let limiter = match rl.store.as_str() {
                    #[cfg(feature = "redis")]
                    "redis" => {
                        let url = config.server.redis_url.clone().unwrap_or_default();
                        let client = redis::Client::open(url.as_str())
                            .map_err(|e| format!("server.redis_url: {e}"))?;
                        let connection = redis::aio::ConnectionManager::new(client)
                            .await
                            .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
                        Limiter::Redis(proxy_core::RedisLimiter::new(
                            connection,
                            gcra,
                            format!("reverse-proxy:rl:{}:", rc.prefix),
                        ))
                    }
                    _ => Limiter::Memory(MemoryLimiter::new(gcra)),
                };
                Some((limiter, config::parse_limit_key(&rl.key)?))
            }
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
    let secret =
        SplitMix64::new(u64::from(std::process::id()) ^ now.elapsed().as_nanos() as u64 ^ 0xa5a5)
            .next_u64()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
    Ok(Inner {
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
        reject_path: Arc::from(format!("/__proxy/rejected/{secret:016x}")),
        start: now,
        access_log: config.server.access_log,
        rng: Mutex::new(SplitMix64::new(secret)),
        cache: config
            .cache
            .as_ref()
            .map(|c| cache::Cache::new(c.max_bytes, c.max_object_bytes)),
        compression_min: config.compression.as_ref().map(|c| c.min_length),
    })
}

/// How a mounted proxy is built.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The path prefix the proxy is mounted at (`/proxy`), or empty for `/`. It is stripped
    /// before routing: route prefixes, the metrics path and the admin path are relative to
    /// it, and upstreams see the path without it.
    pub base_path: String,
    /// The configuration, in the TOML of the standalone server (`proxy.toml`).
    pub config: String,
}

/// A reverse proxy to mount in another server: the pools, routes, cache, compression, rate
/// limits and metrics of one configuration, without a listener of its own.
pub struct App {
    inner: Arc<Inner>,
    base_path: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base_path", &self.base_path)
            .field("routes", &self.inner.routes.len())
            .field("pools", &self.inner.pools.len())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the proxy from `settings.config`, and starts its health checks and rate
    /// limiter sweeps on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// A message naming the field when the configuration is invalid, or when Redis (for a
    /// `store = "redis"` rate limit) cannot be reached.
    pub async fn new(settings: &Settings) -> Result<Self, String> {
        let config = Config::parse(&settings.config)?;
        let inner = Arc::new(build_app(&config, 1).await?);
        spawn_background(&inner);
        Ok(Self {
            inner,
            base_path: settings.base_path.trim_end_matches('/').to_owned(),
        })
    }

    /// Answers one request whose path is under the base path, from `peer`: checks the
    /// parsed head, serves the metrics and admin paths, applies the route's rate limit,
    /// cache and compression, and forwards to a pool member with `Forwarded` and `Via`.
    pub async fn handle(
        &self,
        peer: SocketAddr,
        mut request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let client_upgrade = request
            .headers()
            .contains_key(UPGRADE)
            .then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let Some(rest) = parts.uri.path().strip_prefix(self.base_path.as_str()) else {
            return plain(StatusCode::NOT_FOUND, "not found", false);
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return plain(StatusCode::NOT_FOUND, "not found", false);
        }
        let mut target = if rest.is_empty() {
            "/".to_owned()
        } else {
            rest.to_owned()
        };
        if let Some(query) = parts.uri.query() {
            target.push('?');
            target.push_str(query);
        }
        match target.parse::<http::Uri>() {
            Ok(uri) => parts.uri = uri,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request target", false),
        }
        let response = route_request(
            &self.inner,
            peer,
            Request::from_parts(parts, body),
            client_upgrade,
        )
        .await;
        self.inner
            .metrics
            .record(response.status().as_u16(), started.elapsed());
        response
    }
}

/// A parsed configuration file for the standalone server.
#[derive(Debug)]
pub struct ServerConfig(Config);

impl ServerConfig {
    /// Parses the TOML configuration; the error names the field at fault.
    ///
    /// # Errors
    ///
    /// A message when the text is not valid TOML or a field is missing or out of range.
    pub fn parse(text: &str) -> Result<Self, String> {
        Config::parse(text).map(Self)
    }

    /// The number of worker threads: `server.workers`, else one per CPU (1 to 256).
    #[must_use]
    pub fn workers(&self) -> usize {
        self.0
            .server
            .workers
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            })
            .clamp(1, 256)
    }
}

/// Runs the standalone proxy until Ctrl-C or SIGTERM: listens on `server.listen` (one socket
/// per worker thread), prints `listening on http://ADDR` first on stdout, and serves.
/// Call it on a current-thread runtime; it starts the other workers' threads itself.
///
/// # Errors
///
/// A message when the listener, TLS, Redis or a worker thread cannot be set up.
pub async fn run(config: ServerConfig) -> Result<(), String> {
    let workers = config.workers();
    let config = config.0;
    let app = Arc::new(build_app(&config, workers).await?);
    let acceptor = config.server.tls.as_ref().map(tls_acceptor).transpose()?;
    // One SO_REUSEPORT socket per worker thread, each a current-thread runtime: the kernel
    // spreads connections evenly, and a connection, its requests and their upstream
    // connections stay on one thread.
    let listener = reuseport_listener(config.server.listen)
        .map_err(|error| format!("cannot listen on {}: {error}", config.server.listen))?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;
    for worker in 1..workers {
        let (app, acceptor) = (app.clone(), acceptor.clone());
        std::thread::Builder::new()
            .name(format!("proxy-worker-{worker}"))
            .spawn(move || {
                WORKER.with(|w| w.set(worker));
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    match reuseport_listener(local) {
                        Ok(listener) => accept_loop(app, listener, acceptor).await,
                        Err(error) => tracing::error!(worker, %error, "worker cannot listen"),
                    }
                });
            })
            .map_err(|e| format!("cannot start worker {worker}: {e}"))?;
    }
    {
        let mut stdout = std::io::stdout().lock();
        let scheme = if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let _ = writeln!(stdout, "listening on {scheme}://{local}");
        let _ = stdout.flush();
    }
    spawn_background(&app);
    tokio::select! {
        () = accept_loop(app, listener, acceptor) => Ok(()),
        () = shutdown_signal() => Ok(()),
    }
}

/// Starts the active health checks of every pool that has them and the rate limiters'
/// sweeper, on the current runtime.
fn spawn_background(app: &Arc<Inner>) {
    for pool in &app.pools {
        if pool.health.is_some() {
            tokio::spawn(health_loop(pool.clone()));
        }
        let upstreams = pool.upstreams.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                upstreams.reap();
            }
        });
    }
    let sweeper = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let now = sweeper.start.elapsed().as_nanos() as u64;
            for route in &sweeper.routes {
                if let Some((Limiter::Memory(limiter), _)) = &route.limiter {
                    limiter.sweep(now);
                }
            }
        }
    });
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(
    app: Arc<Inner>,
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        match acceptor.clone() {
            None => {
                tokio::spawn(serve_connection(app, stream, peer, "http"));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => serve_connection(app, tls, peer, "https").await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// The scheme the client used, for forwarding headers.
#[derive(Debug, Clone, Copy)]
struct Scheme(&'static str);

async fn serve_connection<S>(app: Arc<Inner>, stream: S, peer: SocketAddr, scheme: &'static str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let rejection = Arc::new(Rejection::default());
    let io = CheckedIo::new(
        stream,
        app.limits,
        rejection.clone(),
        app.reject_path.clone(),
    );
    let service = service_fn(move |mut request: Request<Incoming>| {
        let app = app.clone();
        let rejection = rejection.clone();
        request.extensions_mut().insert(Scheme(scheme));
        async move { Ok::<_, Infallible>(handle(&app, peer, &rejection, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

fn tls_acceptor(tls: &config::TlsConfig) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let (certs, key) = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("server.tls.cert {cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("server.tls.key {key}: {e}"))?;
            (certs, key)
        }
        (None, None) => {
            let made = rcgen::generate_simple_self_signed(tls.dev_names.clone())
                .map_err(|e| format!("cannot make a development certificate: {e}"))?;
            tracing::warn!(names = ?tls.dev_names, "TLS with a development certificate made at start; configure cert and key for production");
            if let Some(out) = &tls.dev_cert_out {
                std::fs::write(out, made.cert.pem())
                    .map_err(|e| format!("server.tls.dev_cert_out {out}: {e}"))?;
            }
            let key =
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
            (vec![made.cert.der().clone()], key)
        }
        _ => {
            return Err(
                "server.tls: set both cert and key, or neither for a development certificate"
                    .to_owned(),
            );
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("server.tls: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("server.tls: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

fn plain(status: StatusCode, message: &str, close: bool) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn handle(
    app: &Arc<Inner>,
    peer: SocketAddr,
    rejection: &Rejection,
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client_upgrade = request
        .headers()
        .contains_key(UPGRADE)
        .then(|| hyper::upgrade::on(&mut request));
    let (status, response) = if path == *app.reject_path {
        match rejection.take() {
            Some(error) => {
                app.metrics
                    .rejected_heads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(%peer, %error, "refused request head");
                let r = plain(error.status(), &format!("bad request: {error}"), true);
                (r.status(), r)
            }
            None => {
                let r = plain(StatusCode::NOT_FOUND, "not found", false);
                (r.status(), r)
            }
        }
    } else {
        let r = route_request(app, peer, request, client_upgrade).await;
        (r.status(), r)
    };
    app.metrics.record(status.as_u16(), started.elapsed());
    if app.access_log {
        tracing::info!(target: "access", %peer, %method, %path, status = status.as_u16(), micros = started.elapsed().as_micros() as u64);
    }
    response
}

async fn route_request(
    app: &Arc<Inner>,
    peer: SocketAddr,
    request: Request<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ProxyBody> {
    let (parts, body) = request.into_parts();
    if let Err(error) = check_parsed_request(&parts) {
        app.metrics
            .rejected_heads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return plain(error.status(), &format!("bad request: {error}"), true);
    }
    if let Some(admin) = app.admin_path.as_deref()
        && let Some(rest) = parts.uri.path().strip_prefix(admin)
    {
        if !peer.ip().is_loopback() {
            return plain(
                StatusCode::FORBIDDEN,
                "the admin API answers loopback clients only",
                false,
            );
        }
        return admin_request(app, &parts.method, rest, parts.uri.query().unwrap_or(""));
    }
    if parts.uri.path() == app.metrics_path {
        let now = Instant::now();
        let mut upstreams = Vec::new();
        for pool in &app.pools {
            if let Ok(p) = pool.pool.lock() {
                for m in p.members(now) {
                    upstreams.push((
                        pool.name.clone(),
                        m.address,
                        m.healthy && !m.ejected,
                        m.in_flight,
                    ));
                }
            }
        }
        let mut text = app.metrics.render(&upstreams);
        if let Some(cache) = &app.cache {
            text.push_str(&format!(
                "# HELP proxy_cache_bytes Bytes held by the response cache.\n# TYPE proxy_cache_bytes gauge\nproxy_cache_bytes {}\n",
                cache.weight()
            ));
        }
        let mut r = Response::new(full(text));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return r;
    }
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
    let Some(route) = app
        .routes
        .iter()
        .filter(|r| parts.uri.path().starts_with(&r.prefix))
        .filter(|r| {
            r.host
                .as_ref()
                .is_none_or(|h| host.as_deref() == Some(h.as_str()))
        })
        .max_by_key(|r| (r.host.is_some(), r.prefix.len()))
    else {
        return plain(StatusCode::NOT_FOUND, "no route", false);
    };
    let client_ip = client_address(peer.ip(), &parts.headers, &app.trusted);
    let mut limit_headers = Vec::new();
    if let Some((limiter, key)) = &route.limiter {
        let key = match key {
            // An IPv6 client holds a /64: one bucket for it, not 2^64.
            LimitKey::Client => client_network(client_ip).to_string(),
            LimitKey::Route => route.prefix.clone(),
            LimitKey::Header(name) => parts.headers.get(name).map_or_else(String::new, |v| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            }),
        };
        let decision = match limiter {
            Limiter::Memory(l) => Some(l.check(&key, app.start.elapsed().as_nanos() as u64)),
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
        if let Some(decision) = decision {
            limit_headers = decision.headers();
            if !decision.allowed {
                app.metrics
                    .rate_limited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests", false);
                for (name, value) in limit_headers {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        r.headers_mut().insert(name, v);
                    }
                }
                return r;
            }
        }
    }
    let request_headers = app
        .compression_min
        .map(|_| (parts.headers.clone(), parts.method == Method::HEAD));
    let mut response = match &app.cache {
        Some(cache)
            if route.cache && (parts.method == Method::GET || parts.method == Method::HEAD) =>
        {
            cached(app, cache, &route.pool, peer, client_ip, parts, body).await
        }
        Some(cache) if route.cache => {
            let unsafe_method = !matches!(parts.method, Method::OPTIONS | Method::TRACE);
            let (uri, host) = (parts.uri.clone(), parts.headers.get(HOST).cloned());
            let response = forward(
                app,
                &route.pool,
                peer,
                client_ip,
                parts,
                Some(body),
                client_upgrade,
            )
            .await;
            if unsafe_method
                && (response.status().is_success() || response.status().is_redirection())
            {
                invalidate(cache, &uri, host.as_ref(), response.headers());
            }
            response
        }
        _ => {
            forward(
                app,
                &route.pool,
                peer,
                client_ip,
                parts,
                Some(body),
                client_upgrade,
            )
            .await
        }
    };
    if let (Some(min), Some((headers, head))) = (app.compression_min, request_headers) {
        response = compress::compress(&headers, head, response, min);
    }
    for (name, value) in limit_headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

enum OutBody {
    Buffered(Bytes),
    Stream(Option<Incoming>),
}

async fn forward(
    app: &Inner,
    pool: &PoolState,
    peer: SocketAddr,
    client_ip: std::net::IpAddr,
    mut parts: http::request::Parts,
    body: Option<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ProxyBody> {
    let upgrade = client_upgrade.is_some()
        && parts
            .headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    // Decisions on the client's own headers, taken before they are rewritten in place for
    // the upstream (rewriting in place spares a copy of the header map per request).
    let replayable_request = is_replayable(&parts.method, &parts.headers);
    let replayable = replayable_request && !upgrade;
    let hash_key = pool
        .hash_key
        .as_ref()
        .and_then(|k| k.extract(&parts.headers, client_ip));
    let sticky = pool
        .sticky_cookie
        .as_deref()
        .and_then(|c| cookie_value(&parts.headers, c))
        .map(str::to_owned);
    let host = parts.headers.get(HOST).cloned();
    let upgrade_value = parts.headers.get(UPGRADE).cloned();
    let mut headers = std::mem::take(&mut parts.headers);
    // The body length as we read it, in one canonical form (`0003` reaches the origin as `3`).
    if let Err(error) = canonicalize_content_length(&mut headers) {
        return plain(error.status(), &format!("bad request: {error}"), true);
    }
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|te| te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"));
    remove_hop_by_hop(&mut headers);
    if let (true, Some(value)) = (upgrade, upgrade_value) {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, value);
    }
    apply_forwarding(
        &mut headers,
        &ForwardContext {
            peer: peer.ip(),
            proto: parts.extensions.get::<Scheme>().map_or("http", |s| s.0),
            host: host.as_ref().and_then(|h| h.to_str().ok()),
            trusted: &app.trusted,
            pseudonym: &app.pseudonym,
            write: app.forward_headers,
            version: parts.version,
        },
    );
    let mut out_body = match body.filter(|b| !b.is_end_stream()) {
        None => OutBody::Buffered(Bytes::new()),
        Some(body)
            if replayable
                && body
                    .size_hint()
                    .upper()
                    .is_some_and(|n| n <= MAX_BUFFERED_BODY) =>
        {
            match Limited::new(body, MAX_BUFFERED_BODY as usize)
                .collect()
                .await
            {
                Ok(collected) => OutBody::Buffered(collected.to_bytes()),
                Err(_) => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "could not read the request body",
                        true,
                    );
                }
            }
        }
        Some(body) => {
            // One rule for every method: a chunked body is forwarded chunked. Without this
            // header hyper's client would send a GET or HEAD with no body at all.
            if chunked {
                headers.insert(
                    http::header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            }
            OutBody::Stream(Some(body))
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    if let Ok(mut budget) = pool.budget.lock() {
        budget.deposit(Instant::now());
    }
    let mut tried: Vec<UpstreamId> = Vec::new();
    let mut last_failure: Option<Failure> = None;
    let mut attempt = 0u32;
    loop {
        let now = Instant::now();
        let pick = {
            let Ok(mut p) = pool.pool.lock() else {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "pool lock poisoned",
                    false,
                );
            };
            let mut exclude = tried.clone();
            loop {
                let ctx = PickContext {
                    hash_key: hash_key.as_deref(),
                    sticky: sticky.as_deref(),
                    exclude: &exclude,
                };
                let Some(pick) = p.pick(&ctx, now) else {
                    break None;
                };
                let allowed = pool
                    .breakers
                    .as_ref()
                    .and_then(|b| b.lock().ok())
                    .is_none_or(|mut b| b.get_mut(&pick.id).is_none_or(|br| br.allow(now)));
                if allowed {
                    break Some(pick);
                }
                p.finish(pick.id, None, now);
                exclude.push(pick.id);
            }
        };
        let Some(pick) = pick else {
            return match last_failure {
                None => plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no upstream available",
                    false,
                ),
                Some(Failure::Timeout) => {
                    plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out", false)
                }
                Some(_) => plain(StatusCode::BAD_GATEWAY, "upstream unreachable", false),
            };
        };
        let body = match &mut out_body {
            OutBody::Buffered(bytes) => full(bytes.clone()),
            OutBody::Stream(stream) => match stream.take() {
                Some(s) => s.map_err(BoxError::from).boxed(),
                None => full(Bytes::new()),
            },
        };
        let mut upstream_request = Request::new(body);
        *upstream_request.method_mut() = parts.method.clone();
        // The headers are needed again only if this attempt may be retried.
        let may_retry = replayable_request
            && attempt < pool.retry.max_retries
            && matches!(out_body, OutBody::Buffered(_));
        *upstream_request.headers_mut() = if may_retry {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };
        // Origin-form, or for CONNECT the upstream's authority (RFC 9112 section 3.2).
        let target = if parts.method == Method::CONNECT {
            pick.address.parse()
        } else {
            Ok(http::Uri::from(path_and_query.clone()))
        };
        match target {
            Ok(uri) => *upstream_request.uri_mut() = uri,
            Err(_) => {
                if let Ok(mut p) = pool.pool.lock() {
                    p.finish(pick.id, None, now);
                }
                return plain(StatusCode::BAD_REQUEST, "bad request target", false);
            }
        }
        let sent = Instant::now();
        let result = tokio::time::timeout(
            pool.request_timeout,
            pool.upstreams
                .send(pick.id, &pick.address, upstream_request),
        )
        .await;
        let rtt = sent.elapsed();
        let failure = match &result {
            Ok(Ok(r)) if pool.retry.retry_statuses.contains(&r.status().as_u16()) => {
                Some(Failure::Status(r.status().as_u16()))
            }
            Ok(Ok(_)) => None,
            Ok(Err(upstream::SendError::Connect)) => Some(Failure::Connect),
            Ok(Err(upstream::SendError::Request)) => Some(Failure::Reset),
            Err(_) => Some(Failure::Timeout),
        };
        let done = Instant::now();
        let outcome = match &result {
            Ok(Ok(r)) => Outcome::Status(r.status().as_u16()),
            _ => Outcome::Error,
        };
        if let Ok(mut p) = pool.pool.lock() {
            p.finish(
                pick.id,
                result.as_ref().is_ok_and(|r| r.is_ok()).then_some(rtt),
                done,
            );
            if let Some(until) = pool
                .outlier
                .as_ref()
                .and_then(|o| o.lock().ok())
                .and_then(|mut o| o.record(&pick.id, outcome, done))
            {
                tracing::warn!(pool = %pool.name, upstream = %pick.address, "ejected by outlier detection");
                p.eject(pick.id, until);
            }
        }
        if let Some(mut breakers) = pool.breakers.as_ref().and_then(|b| b.lock().ok())
            && let Some(b) = breakers.get_mut(&pick.id)
        {
            match outcome {
                Outcome::Error | Outcome::Status(500..=599) => b.record_failure(done),
                Outcome::Status(_) => b.record_success(),
            }
        }
        if matches!(outcome, Outcome::Error) {
            app.metrics
                .upstream_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let retry = match failure {
            Some(f) => {
                let body_ok = matches!(out_body, OutBody::Buffered(_));
                body_ok
                    && pool
                        .retry
                        .should_retry_replayable(replayable_request, f, attempt)
                    && pool.budget.lock().is_ok_and(|mut b| b.withdraw(done))
            }
            None => false,
        };
        if retry {
            app.metrics
                .retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tried.push(pick.id);
            last_failure = failure;
            attempt += 1;
            let jitter = app.rng.lock().map_or(0.5, |mut r| r.unit());
            tokio::time::sleep(pool.retry.backoff(attempt, jitter)).await;
            continue;
        }
        return match result {
            Ok(Ok(mut response)) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client_upgrade) = client_upgrade {
                        let upstream_upgrade = hyper::upgrade::on(&mut response);
                        tokio::spawn(async move {
                            if let (Ok(client), Ok(upstream)) =
                                (client_upgrade.await, upstream_upgrade.await)
                            {
                                let mut client = TokioIo::new(client);
                                let mut upstream = TokioIo::new(upstream);
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        });
                    }
                } else {
                    clean_response_headers(response.headers_mut());
                    if upgrade {
                        // The upgrade was refused: the bytes that follow on this connection
                        // were not checked as HTTP/1, so end it.
                        response
                            .headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                }
                if let (Some(cookie), Some(token)) = (&pool.sticky_cookie, &pick.set_sticky)
                    && let Ok(v) = HeaderValue::from_str(&format!(
                        "{cookie}={token}; Path=/; HttpOnly; SameSite=Lax"
                    ))
                {
                    response.headers_mut().append(SET_COOKIE, v);
                }
                response.map(http_body_util::BodyExt::boxed)
            }
            Ok(Err(_)) => plain(StatusCode::BAD_GATEWAY, "upstream unreachable", false),
            Err(_) => plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out", false),
        };
    }
}

fn clean_response_headers(headers: &mut HeaderMap) {
    remove_hop_by_hop(headers);
}

async fn health_loop(pool: Arc<PoolState>) {
    let Some(config) = pool.health.clone() else {
        return;
    };
    let mut checker = HealthChecker::new(config);
    let mut addresses = HashMap::new();
    let start = Instant::now();
    if let Ok(p) = pool.pool.lock() {
        for m in p.members(start) {
            checker.add(m.id, start);
            addresses.insert(m.id, m.address);
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(UpstreamId, bool)>();
    loop {
        let now = Instant::now();
        // Follow membership changes made through the admin API.
        if let Ok(p) = pool.pool.lock() {
            let members = p.members(now);
            for m in &members {
                if let std::collections::hash_map::Entry::Vacant(slot) = addresses.entry(m.id) {
                    checker.add(m.id, now);
                    slot.insert(m.address.clone());
                }
            }
            addresses.retain(|id, _| {
                let keep = members.iter().any(|m| m.id == *id);
                if !keep {
                    checker.remove(id);
                }
                keep
            });
        }
        while let Some(probe) = checker.poll_check(now) {
            let Some(address) = addresses.get(&probe.target).cloned() else {
                continue;
            };
            let upstreams = pool.upstreams.clone();
            let tx = tx.clone();
            let wait = probe.deadline.saturating_duration_since(now);
            tokio::spawn(async move {
                // An origin-form target only: a path without its leading `/` fails the
                // probe, as it did when it was appended to `http://ADDRESS`.
                let target = if probe.path.starts_with('/') {
                    probe.path.parse::<http::Uri>().ok()
                } else {
                    None
                };
                let ok = match target {
                    Some(uri) => {
                        let mut req = Request::new(full(Bytes::new()));
                        *req.uri_mut() = uri;
                        matches!(
                            tokio::time::timeout(wait, upstreams.send(probe.target, &address, req)).await,
                            Ok(Ok(r)) if r.status().is_success() || r.status().is_redirection()
                        )
                    }
                    None => false,
                };
                let _ = tx.send((probe.target, ok));
            });
        }
        for (id, healthy) in checker.handle_timeouts(now) {
            set_health(&pool, id, healthy, &addresses);
        }
        let wake = checker
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(1));
        tokio::select! {
            Some((id, ok)) = rx.recv() => {
                if let Some(healthy) = checker.handle_result(id, ok, Instant::now()) {
                    set_health(&pool, id, healthy, &addresses);
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

fn set_health(
    pool: &PoolState,
    id: UpstreamId,
    healthy: bool,
    addresses: &HashMap<UpstreamId, String>,
) {
    tracing::warn!(pool = %pool.name, upstream = ?addresses.get(&id), healthy, "health changed");
    if let Ok(mut p) = pool.pool.lock() {
        p.set_healthy(id, healthy);
    }
}

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
fn invalidate(
    cache: &cache::Cache,
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
    Fresh(Arc<cache::Stored>, http::response::Parts),
    Stale(Arc<cache::Stored>, http::request::Parts),
    Miss,
}

fn lookup(
    cache: &cache::Cache,
    key: &str,
    parts: &http::request::Parts,
    now: SystemTime,
) -> Lookup {
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
    stored: &cache::Stored,
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
    stored: &cache::Stored,
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

#[allow(clippy::too_many_arguments)]
async fn cached(
    app: &Arc<Inner>,
    cache: &cache::Cache,
    pool: &Arc<PoolState>,
    peer: SocketAddr,
    client_ip: std::net::IpAddr,
    parts: http::request::Parts,
    body: Incoming,
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
            let (app2, pool2, parts2, key2) =
                (app.clone(), pool.clone(), parts.clone(), key.clone());
            tokio::spawn(async move {
                let Some(cache) = app2.cache.as_ref() else {
                    return;
                };
                let lock = cache.fetch_lock(&key2);
                if let Ok(guard) = lock.clone().try_lock_owned() {
                    let _ =
                        cached_locked(&app2, cache, &pool2, peer, client_ip, &key2, parts2, None)
                            .await;
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
        return cached_locked(app, cache, pool, peer, client_ip, &key, parts, Some(body)).await;
    }
    // Coalesce: one request per key goes to the origin, the others wait and read the
    // cache after it.
    let lock = cache.fetch_lock(&key);
    let guard = lock.clone().lock_owned().await;
    if cache.is_pass(&key, Instant::now()) {
        // The request ahead found the answer unstorable: stop waiting in line.
        drop(guard);
        cache.release(&key, lock);
        return cached_locked(app, cache, pool, peer, client_ip, &key, parts, Some(body)).await;
    }
    let response = cached_locked(app, cache, pool, peer, client_ip, &key, parts, Some(body)).await;
    drop(guard);
    cache.release(&key, lock);
    response
}

#[allow(clippy::too_many_arguments)]
async fn cached_locked(
    app: &Inner,
    cache: &cache::Cache,
    pool: &PoolState,
    peer: SocketAddr,
    client_ip: std::net::IpAddr,
    key: &str,
    parts: http::request::Parts,
    body: Option<Incoming>,
) -> Response<ProxyBody> {
    let now = SystemTime::now();
    match lookup(cache, key, &parts, now) {
        Lookup::Fresh(stored, head) => serve_stored(&parts, &stored, head, "HIT"),
        Lookup::Stale(stored, mut revalidation) => {
            revalidation.version = parts.version;
            revalidation.uri = parts.uri.clone();
            let response =
                forward(app, pool, peer, client_ip, revalidation.clone(), None, None).await;
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
                        let refreshed = cache::Stored {
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
            let response = forward(app, pool, peer, client_ip, parts.clone(), body, None).await;
            store(cache, key, &parts, response, now).await
        }
    }
}

async fn store(
    cache: &cache::Cache,
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
        cache::Stored {
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

/// `POST {admin}/pools/NAME/upstreams?address=HOST:PORT[&weight=N]` adds a member;
/// `DELETE` with `address` drains it (no new requests; it leaves when its in-flight ones
/// end); `GET {admin}/pools/NAME` lists members.
fn admin_request(app: &Inner, method: &Method, rest: &str, query: &str) -> Response<ProxyBody> {
    let mut segments = rest.trim_matches('/').split('/');
    let (Some("pools"), Some(name)) = (segments.next(), segments.next()) else {
        return plain(StatusCode::NOT_FOUND, "use /pools/NAME[/upstreams]", false);
    };
    let Some(pool) = app.pools.iter().find(|p| p.name == name) else {
        return plain(StatusCode::NOT_FOUND, "unknown pool", false);
    };
    let upstreams = segments.next() == Some("upstreams");
    let params: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let now = Instant::now();
    let Ok(mut p) = pool.pool.lock() else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "pool lock poisoned",
            false,
        );
    };
    match (method, upstreams, params.get("address")) {
        (&Method::GET, false, _) => {
            let text: String = p
                .members(now)
                .iter()
                .map(|m| {
                    format!(
                        "{} weight={} state={:?} in_flight={} healthy={} ejected={}\n",
                        m.address, m.weight, m.state, m.in_flight, m.healthy, m.ejected
                    )
                })
                .collect();
            Response::new(full(text))
        }
        (&Method::POST, true, Some(address)) => {
            if address.parse::<http::uri::Authority>().is_err() || !address.contains(':') {
                return plain(StatusCode::BAD_REQUEST, "address must be HOST:PORT", false);
            }
            let weight = params
                .get("weight")
                .and_then(|w| w.parse().ok())
                .unwrap_or(1);
            let id = p.add(*address, weight);
            if let Some(mut o) = pool.outlier.as_ref().and_then(|o| o.lock().ok()) {
                o.add(id);
            }
            tracing::info!(pool = %pool.name, upstream = %address, "member added");
            plain(StatusCode::CREATED, "added", false)
        }
        (&Method::DELETE, true, Some(address)) => {
            let ids: Vec<UpstreamId> = p
                .members(now)
                .iter()
                .filter(|m| m.address == *address && m.state == proxy_core::MemberState::Active)
                .map(|m| m.id)
                .collect();
            if ids.is_empty() {
                return plain(StatusCode::NOT_FOUND, "no such active member", false);
            }
            for id in ids {
                p.remove(id);
            }
            tracing::info!(pool = %pool.name, upstream = %address, "member draining");
            plain(StatusCode::ACCEPTED, "draining", false)
        }
        _ => plain(
            StatusCode::BAD_REQUEST,
            "use GET /pools/NAME, POST or DELETE /pools/NAME/upstreams?address=HOST:PORT",
            false,
        ),
    }
}
