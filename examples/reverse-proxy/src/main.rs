//! reverse-proxy: a load-balancing reverse proxy built on proxy-core.
//!
//! Run with: `cargo run -p reverse-proxy -- --config examples/reverse-proxy/proxy.toml`
//!
//! Try:
//!
//! ```text
//! curl -si http://127.0.0.1:8080/                  # proxied to a pool member
//! curl -s http://127.0.0.1:8080/__proxy/metrics    # Prometheus metrics
//! printf 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n' \
//!   | nc 127.0.0.1 8080                             # 400: CL and TE together
//! ```
//!
//! The first stdout line is `listening on http://ADDR`. The proxy itself is the library
//! (`src/lib.rs`); this file reads the configuration, binds the listeners and runs the
//! worker threads until Ctrl-C or SIGTERM, then drains: no new connections, requests in
//! flight finish, for `[server] shutdown_grace_ms` at most (default 10 s).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use reverse_proxy::{Proxy, ServerConfig};
use tokio::net::TcpListener;

/// Every proxied request allocates (header maps, URIs, hyper's channels); under glibc's
/// malloc those allocations cost about 13% of the proxy's CPU, mimalloc's per-thread heaps
/// make them cheaper. Set in the binary only: the library leaves the choice to its host.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(start())
}

fn start() -> Result<(), serve::Error> {
    let config = serve::config_from_args("reverse-proxy", ServerConfig::parse)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    Ok(runtime.block_on(run(config))?)
}

/// Serves until Ctrl-C or SIGTERM. One `SO_REUSEPORT` socket per worker thread, each a
/// current-thread runtime: the kernel spreads connections evenly, and a connection, its
/// requests and their upstream connections stay on one thread. This thread is worker 0.
async fn run(config: ServerConfig) -> Result<(), String> {
    let proxy = Proxy::new(&config).await?;
    let listen = config.listen();
    let listener = reuseport_listener(listen)
        .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
    // With port 0 the first socket picks the port; the other workers bind the same one.
    let local = listener.local_addr().map_err(|error| error.to_string())?;
    let grace = config.shutdown_grace();
    for worker in 1..config.workers() {
        let proxy = proxy.clone();
        std::thread::Builder::new()
            .name(format!("proxy-worker-{worker}"))
            .spawn(move || {
                proxy.enter_worker(worker);
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    match reuseport_listener(local) {
                        Ok(listener) => accept_loop(&proxy, listener).await,
                        Err(error) => tracing::error!(worker, %error, "worker cannot listen"),
                    }
                    // This runtime's connections finish before it is dropped.
                    proxy.drained(grace).await;
                });
            })
            .map_err(|e| format!("cannot start worker {worker}: {e}"))?;
    }
    let signal = serve::shutdown_signal();
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {}://{local}", proxy.scheme());
        let _ = stdout.flush();
    }
    proxy.spawn_background();
    let accepting = tokio::spawn({
        let proxy = proxy.clone();
        async move { accept_loop(&proxy, listener).await }
    });
    let signal = signal.await;
    tracing::info!(signal, "shutting down: no new connections");
    proxy.shutdown();
    let _ = accepting.await;
    if proxy.drained(grace).await {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!(?grace, "connections still open after the grace period");
    }
    Ok(())
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

/// Accepts until [`Proxy::shutdown`], then closes the listener; after an error (EMFILE,
/// say) it pauses with [`serve::AcceptBackoff`] instead of spinning a core.
async fn accept_loop(proxy: &Proxy, listener: TcpListener) {
    let mut backoff = serve::AcceptBackoff::default();
    let mut stopped = std::pin::pin!(proxy.stopped());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopped => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                tokio::spawn(proxy.serve(stream, peer));
            }
            Err(error) => {
                let pause = backoff.failed();
                tracing::warn!(%error, ?pause, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut stopped => return,
                }
            }
        }
    }
}
