//! broker-bridge: moves messages between brokers by the routes of a TOML file, with
//! broker-core's `Bridge`: each message is acknowledged upstream only after the downstream
//! broker confirmed it, so a bridge killed mid-stream loses nothing (the messages it held
//! come again, with the same id, for an inbox downstream to absorb).
//!
//! Run with: `cargo run -p broker-bridge -- --config examples/broker-bridge/bridge.toml`
//!
//! Try (with the brokers of `bridge.toml` running):
//!
//! ```text
//! mosquitto_pub -V mqttv5 -t plant/sensors/kitchen/temp -q 1 -m 21.5 \
//!   -D publish user-property bk-id 0190f0c4-8c1e-7c7e-9a51-8e2b4c1d2e3f   # to NATS room-kitchen
//! nats stream view Q_plant_room-kitchen
//! ```
//!
//! The first stdout line is `bridging N route(s): ...`. On Ctrl-C or SIGTERM the bridges
//! drain: they stop fetching, publish and settle what they hold, print
//! `drained: forwarded=... failed=... retried=... errors=...` and exit (after
//! `[bridge] shutdown_grace_ms` at most, default 10 s, else with status 1). A bad
//! configuration exits with 2.

mod config;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use broker_core::{AnyBroker, Bridge, BridgeStats, redact_url};
use futures_util::future::join_all;
use tokio::sync::watch;

use config::Config;

fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(start())
}

fn start() -> Result<(), serve::Error> {
    let config = serve::config_from_args("broker-bridge", Config::parse)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    Ok(runtime.block_on(run(config))?)
}

async fn run(config: Config) -> Result<(), String> {
    // Installed before the announce line, so a SIGTERM right after it drains.
    let signal = serve::shutdown_signal();
    // One connection per (URL, prefix), shared by the routes that name it.
    let mut endpoints: Vec<(String, String)> = Vec::new();
    for route in &config.routes {
        for end in [route.source_endpoint(), route.target_endpoint()] {
            if !endpoints.contains(&end) {
                endpoints.push(end);
            }
        }
    }
    let mut brokers = Vec::with_capacity(endpoints.len());
    for (url, prefix) in &endpoints {
        brokers.push(
            AnyBroker::connect(url, prefix)
                .await
                .map_err(|error| format!("{}: {error}", redact_url(url)))?,
        );
    }
    let broker = |end: (String, String)| {
        endpoints
            .iter()
            .position(|e| *e == end)
            .and_then(|i| brokers.get(i))
            .ok_or_else(|| "internal: a route's broker is not connected".to_owned())
    };
    let mut bridges = Vec::with_capacity(config.routes.len());
    let mut names = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        let (source, destination) = (
            broker(route.source_endpoint())?,
            broker(route.target_endpoint())?,
        );
        names.push(format!(
            "{} {} -> {} {}",
            redact_url(&route.from),
            route.queue,
            redact_url(&route.to),
            route.target_name()
        ));
        bridges.push(
            Bridge::new(source, destination)
                .route(route.to_route())
                .consumer(&config.bridge.consumer)
                .batch(route.batch.unwrap_or(64))
                .lanes(route.lanes.unwrap_or(1)),
        );
    }
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "bridging {} route(s): {}",
            bridges.len(),
            names.join("; ")
        );
        let _ = stdout.flush();
    }

    let (stop, stopped) = watch::channel(false);
    let grace = Duration::from_millis(config.bridge.shutdown_grace_ms);
    tokio::spawn(async move {
        let name = signal.await;
        tracing::info!(signal = name, "draining: no more fetches");
        stop.send_replace(true);
        tokio::time::sleep(grace).await;
        eprintln!("error: the drain took longer than {grace:?}");
        std::process::exit(1);
    });
    let outcomes = join_all(bridges.iter().map(|bridge| {
        let mut stopped = stopped.clone();
        bridge.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
    }))
    .await;
    let mut total = BridgeStats::default();
    let mut first_error = None;
    for (outcome, name) in outcomes.into_iter().zip(&names) {
        match outcome {
            Ok(stats) => {
                total.forwarded += stats.forwarded;
                total.failed += stats.failed;
                total.retried += stats.retried;
                total.errors += stats.errors;
            }
            Err(e) => {
                first_error.get_or_insert(format!("route {name}: {e}"));
            }
        }
    }
    println!(
        "drained: forwarded={} failed={} retried={} errors={}",
        total.forwarded, total.failed, total.retried, total.errors
    );
    first_error.map_or(Ok(()), Err)
}
