//! The listening socket and its accept loop: bind from the environment, announce, serve
//! each connection (HTTP/1.1 with upgrades, or HTTP/2), drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{App, Error};

/// How long connections in flight may take to finish after a shutdown signal, unless
/// [`Server::with_grace`] says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// A bound listening socket, ready to serve an [`App`].
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local: SocketAddr,
    grace: Duration,
}

impl Server {
    /// Binds the address the environment asks for: `BIND` (default `127.0.0.1`) and `PORT`
    /// (default `default_port`; `0` picks a free port).
    pub async fn bind(default_port: u16) -> Result<Self, Error> {
        Self::bind_addr(address_from_env(default_port)?).await
    }

    /// Binds `addr`.
    pub async fn bind_addr(addr: SocketAddr) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            if error.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "cannot listen on {addr}: address already in use; \
                     set PORT to a free port (PORT=0 picks one)"
                )
            } else {
                format!("cannot listen on {addr}: {error}")
            }
        })?;
        let local = listener
            .local_addr()
            .map_err(|error| format!("cannot read the bound address: {error}"))?;
        Ok(Self {
            listener,
            local,
            grace: DEFAULT_GRACE,
        })
    }

    /// Sets how long connections in flight may take to finish after the shutdown signal.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The bound address (with the port the system picked for `PORT=0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address to write into links, issuers and origins: the bound one, except that a
    /// wildcard bind (`0.0.0.0`, `::`) is named by its loopback address.
    pub fn public_addr(&self) -> SocketAddr {
        match self.local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.local.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), self.local.port())
            }
            _ => self.local,
        }
    }

    /// Serves `app` until Ctrl-C or SIGTERM, then drains (see [`Server::serve_until`]).
    pub async fn serve<A: App + ?Sized>(self, app: Arc<A>) -> Result<(), Error> {
        let signal = shutdown_signal();
        self.serve_until(app, async {
            let name = signal.await;
            tracing::info!(signal = name, "shutting down: no new connections");
        })
        .await
    }

    /// Writes `listening on http://ADDR` as the first line on stdout, serves `app` until
    /// `shutdown` resolves, then stops accepting, calls [`App::shutdown`] and waits up to the
    /// grace period for requests in flight to finish and for [`App::is_drained`].
    ///
    /// Accept errors (out of file descriptors, say) are logged and retried after a pause
    /// that doubles up to a second, so that they do not spin a core.
    pub async fn serve_until<A, F>(self, app: Arc<A>, shutdown: F) -> Result<(), Error>
    where
        A: App + ?Sized,
        F: Future<Output = ()>,
    {
        let Self {
            listener,
            local,
            grace,
        } = self;
        announce(local);
        tracing::info!(%local, "listening");

        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        let mut backoff = AcceptBackoff::default();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    let pause = backoff.failed();
                    tracing::warn!(%error, ?pause, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
            backoff.succeeded();
            let _ = stream.set_nodelay(true);
            let app = Arc::clone(&app);
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(logged(app, peer, request).await) }
            });
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
        drop(listener);
        // Upgraded connections are no longer hyper's: the app closes them.
        app.shutdown();
        let app_drained = async {
            while !app.is_drained() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let deadline = Instant::now() + grace;
        tokio::select! {
            ((), ()) = async { tokio::join!(graceful.shutdown(), app_drained) } => {
                tracing::info!("all connections closed");
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                tracing::warn!(?grace, "connections still open after the grace period");
            }
        }
        Ok(())
    }
}

/// Answers one request and logs it: health checks (`/healthz`, which load balancers poll
/// every few seconds) at debug level, refusals a user or an operator would want to see
/// (401, 403, 413, 429, 431) as warnings, everything else at info; the latency in human units.
async fn logged<A: App + ?Sized>(
    app: Arc<A>,
    peer: SocketAddr,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<crate::Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = app.handle(peer, request.map(crate::boxed)).await;
    let status = response.status();
    let took = crate::logging::Took(started.elapsed());
    match crate::logging::level_for(&path, status) {
        crate::logging::Level::Debug => {
            tracing::debug!(%method, path, status = status.as_u16(), %took, "request");
        }
        crate::logging::Level::Info => {
            tracing::info!(%method, path, status = status.as_u16(), %took, "request");
        }
        crate::logging::Level::Refusal(why) => {
            tracing::warn!(%method, path, status = status.as_u16(), client = %peer.ip(), %took, "refused: {why}");
        }
    }
    response
}

/// The address from `BIND` and `PORT`.
fn address_from_env(default_port: u16) -> Result<SocketAddr, Error> {
    let ip = match std::env::var("BIND") {
        Ok(bind) => bind.parse::<IpAddr>().map_err(|_| {
            Error::usage(format!(
                "BIND={bind:?} is not an IP address (try 127.0.0.1)"
            ))
        })?,
        Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = match std::env::var("PORT") {
        Ok(port) => port.parse::<u16>().map_err(|_| {
            Error::usage(format!("PORT={port:?} is not a port number (0 to 65535)"))
        })?,
        Err(_) => default_port,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Writes the bound address as the first stdout line (the contract scripts rely on).
fn announce(local: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the server: the address is in the logs too.
    let _ = writeln!(stdout, "listening on http://{local}");
    let _ = stdout.flush();
}

/// Resolves with the signal's name on Ctrl-C or, on Unix, SIGTERM. The SIGTERM handler is
/// installed when this is called, not when the future is first polled, so that a signal
/// sent right after the announce line is not fatal: call it before announcing.
pub fn shutdown_signal() -> impl Future<Output = &'static str> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match terminate {
                Some(mut stream) => {
                    stream.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => "SIGINT",
            () = terminate => "SIGTERM",
        }
    }
}

/// Runs `tick` every `period` (the first time at once) on a task of its own, e.g. a sweep
/// of expired sessions.
pub fn every<F>(period: Duration, mut tick: F) -> JoinHandle<()>
where
    F: FnMut() + Send + 'static,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        loop {
            interval.tick().await;
            tick();
        }
    })
}

/// Runs CPU-heavy `work` (argon2 password hashing, for one) on tokio's blocking pool, off
/// the async workers; a panic in it comes back as `Err` with its message.
pub async fn blocking<T, F>(work: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| error.to_string())
}

/// The pause after consecutive accept errors: 5 ms, doubling up to 1 s, back to the start
/// after a successful accept. An error such as EMFILE repeats at once until a descriptor is
/// freed; retrying without a pause would spin a core and starve the connections that could
/// free one. [`Server`] uses it; so does a binary with an accept loop of its own
/// (examples/reverse-proxy, one loop per worker thread).
#[derive(Debug)]
pub struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// The pause after one more failed accept.
    pub fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        pause
    }

    /// An accept succeeded: the next failure pauses briefly again.
    pub fn succeeded(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_up_to_a_second_and_resets_after_success() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.failed()).collect();
        assert_eq!(pauses[0], Duration::from_millis(5));
        assert_eq!(pauses[1], Duration::from_millis(10));
        assert!(pauses.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(pauses[9], Duration::from_secs(1));
        assert_eq!(backoff.failed(), Duration::from_secs(1));
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(5));
    }
}
