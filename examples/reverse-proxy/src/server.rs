//! The standalone server's connections: [`Proxy`] serves a TCP stream its host accepted
//! (TLS handshake if configured, then HTTP/1 with every request head checked on the raw bytes
//! by [`CheckedIo`] before hyper parses it). It binds no socket: `main.rs` owns the
//! listeners, one `SO_REUSEPORT` socket per worker thread.
//!
//! Graceful drain: [`Proxy::shutdown`] tells every connection to finish the request in
//! flight and close (HTTP/1 keep-alive ends), [`Proxy::stopped`] ends the host's accept
//! loops, and [`Proxy::drained`] waits, up to a deadline, for the connections to close.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::header::UPGRADE;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::checked_io::{CheckedIo, Rejection};
use crate::forward::Scheme;
use crate::routing::route_request;
use crate::state::{self, State};
use crate::{ProxyBody, ServerConfig, background, plain, tls};

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The standalone proxy: the pools, routes, cache, compression, rate limits and metrics of a
/// [`ServerConfig`], and its TLS acceptor. Cheap to clone (the state is shared).
///
/// Its host binds the listeners (`server.listen`, one per worker thread), runs one
/// current-thread runtime per worker, calls [`Proxy::enter_worker`] on each worker thread,
/// [`Proxy::spawn_background`] once, and spawns [`Proxy::serve`] for every accepted stream.
#[derive(Clone)]
pub struct Proxy {
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    drain: Arc<Drain>,
}

/// What a shutdown needs across worker threads: whether it began, and how many
/// connections are still open.
#[derive(Debug)]
struct Drain {
    stopping: tokio::sync::watch::Sender<bool>,
    open: AtomicUsize,
}

/// Counts one open connection for as long as it lives.
struct Open(Arc<Drain>);

impl Open {
    fn new(drain: &Arc<Drain>) -> Self {
        drain.open.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(drain))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("routes", &self.state.routes.len())
            .field("pools", &self.state.pools.len())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Builds the proxy for [`ServerConfig::workers`] worker threads, with TLS if
    /// `[server.tls]` is set.
    ///
    /// # Errors
    ///
    /// A message when TLS or Redis (for a `store = "redis"` rate limit) cannot be set up.
    pub async fn new(config: &ServerConfig) -> Result<Self, String> {
        let state = Arc::new(State::build(&config.0, config.workers()).await?);
        let tls = config
            .0
            .server
            .tls
            .as_ref()
            .map(tls::acceptor)
            .transpose()?;
        let drain = Arc::new(Drain {
            stopping: tokio::sync::watch::Sender::new(false),
            open: AtomicUsize::new(0),
        });
        Ok(Self { state, tls, drain })
    }

    /// Begins the graceful drain: every connection finishes its request in flight and
    /// closes, and [`Proxy::stopped`] resolves for every accept loop.
    pub fn shutdown(&self) {
        self.drain.stopping.send_replace(true);
    }

    /// Resolves once [`Proxy::shutdown`] was called: an accept loop selects on it and stops
    /// accepting.
    pub async fn stopped(&self) {
        let mut stopping = self.drain.stopping.subscribe();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// Waits until no connection is open, or until `grace` has passed; whether all closed.
    /// Upgraded connections (WebSocket tunnels) are no longer counted: they end with the
    /// process.
    pub async fn drained(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        while self.drain.open.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// `https` with TLS, else `http`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Starts the active health checks, the reaping of idle upstream connections and the
    /// rate limiters' sweeper on the current Tokio runtime; call it once.
    pub fn spawn_background(&self) {
        background::spawn(&self.state);
    }

    /// Marks the current thread as worker `index` (`0..workers`): requests served on it use
    /// that worker's idle upstream connections, so a connection, its requests and their
    /// upstream connections stay on one thread. A thread that never calls it is worker 0.
    pub fn enter_worker(&self, index: usize) {
        state::set_worker(index);
    }

    /// Serves one accepted connection from `peer` until it ends: the TLS handshake (within
    /// 10 s) if configured, then HTTP/1 requests, upgrades included. Spawn it per connection
    /// on the worker's runtime.
    pub fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send + 'static + use<> {
        let _ = stream.set_nodelay(true);
        let (state, tls) = (self.state.clone(), self.tls.clone());
        let open = Open::new(&self.drain);
        let stopping = self.drain.stopping.subscribe();
        async move {
            let _open = open;
            match tls {
                None => serve_connection(state, stream, peer, "http", stopping).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            serve_connection(state, tls, peer, "https", stopping).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        }
    }
}

/// HTTP/1 on `stream`, read through the raw-byte checks, until it closes; once `stopping`
/// turns true, the request in flight finishes and the connection closes.
async fn serve_connection<S>(
    state: Arc<State>,
    stream: S,
    peer: SocketAddr,
    scheme: &'static str,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let rejection = Arc::new(Rejection::default());
    let io = CheckedIo::new(
        stream,
        state.limits,
        rejection.clone(),
        state.reject_path.clone(),
    );
    let service = service_fn(move |mut request: Request<Incoming>| {
        let state = state.clone();
        let rejection = rejection.clone();
        request.extensions_mut().insert(Scheme(scheme));
        let request = request.map(crate::request_body);
        async move { Ok::<_, Infallible>(handle(&state, peer, &rejection, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopping.wait_for(|stopping| *stopping) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Answers one request of a connection: the 400 for a head [`CheckedIo`] refused (it
/// arrives as a request for the secret reject path), else [`route_request`]; then the
/// metrics and the access log.
async fn handle(
    state: &Arc<State>,
    peer: SocketAddr,
    rejection: &Rejection,
    mut request: Request<ProxyBody>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client_upgrade = request
        .headers()
        .contains_key(UPGRADE)
        .then(|| hyper::upgrade::on(&mut request));
    let (status, response) = if path == *state.reject_path {
        match rejection.take() {
            Some(error) => {
                state.metrics.rejected_heads.fetch_add(1, Ordering::Relaxed);
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
        let r = route_request(state, peer, request, client_upgrade).await;
        (r.status(), r)
    };
    state.metrics.record(status.as_u16(), started.elapsed());
    if state.access_log {
        tracing::info!(target: "access", %peer, %method, %path, status = status.as_u16(), took = ?started.elapsed());
    }
    response
}
