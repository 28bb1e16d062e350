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
//! (`src/lib.rs`); this file reads the configuration and starts it.

use std::process::ExitCode;

use reverse_proxy::ServerConfig;

/// Every proxied request allocates (header maps, URIs, hyper's channels); under glibc's
/// malloc those allocations cost about 13% of the proxy's CPU, mimalloc's per-thread heaps
/// make them cheaper. Set in the binary only: the library leaves the choice to its host.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let path = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(path)) => path,
        _ => {
            eprintln!("usage: reverse-proxy --config FILE");
            return ExitCode::from(2);
        }
    };
    let config = match std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path}: {e}"))
        .and_then(|text| ServerConfig::parse(&text).map_err(|e| format!("{path}: {e}")))
    {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(reverse_proxy::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
