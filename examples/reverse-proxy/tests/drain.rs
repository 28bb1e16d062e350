#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Graceful drain of the standalone binary: on SIGTERM it stops accepting, a request in
//! flight still gets its whole response, and the process exits 0 once it has; a request
//! that outlives `shutdown_grace_ms` is cut off and the process exits anyway.

mod common;

use std::time::{Duration, Instant};

use common::{client, get, start_origin, start_proxy};

fn config(origin: std::net::SocketAddr, grace_ms: u64) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
workers = 2
shutdown_grace_ms = {grace_ms}

[[pools]]
name = "app"
upstreams = [{{ address = "{origin}" }}]
request_timeout_ms = 10000

[[routes]]
pool = "app"
"#
    )
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_completes_during_the_drain() {
    // Every answer takes 1.5 s: SIGTERM arrives while the request is upstream.
    let origin = start_origin("a", Duration::from_millis(1500)).await;
    let mut proxy = start_proxy(&config(origin.addr, 10_000));
    let addr = proxy.addr;
    let url = format!("http://{addr}/in-flight");
    let in_flight = tokio::spawn(async move { get(&client(), &url).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    let terminated = tokio::task::spawn_blocking(move || {
        let status = proxy.terminate(Duration::from_secs(5));
        (proxy, status)
    });
    // Stopped accepting: a new connection is refused (or closed without an answer).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = get(&client(), &format!("http://{addr}/late")).await;
    assert!(
        late.is_err(),
        "a connection after SIGTERM was served: {late:?}"
    );
    let (status, _, body) = in_flight.await.unwrap().expect("the in-flight response");
    assert_eq!(status, 200);
    assert_eq!(body, "origin a /in-flight");
    let (_proxy, exit) = terminated.await.unwrap();
    assert!(exit.success(), "{exit:?}");
    // It waited for the response (about 1 s after the signal), not for the grace period.
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_the_drain() {
    // `/slow` takes 5 s; the grace period is 300 ms.
    let origin = start_origin("a", Duration::ZERO).await;
    let mut proxy = start_proxy(&config(origin.addr, 300));
    let url = format!("http://{}/slow", proxy.addr);
    let in_flight = tokio::spawn(async move { get(&client(), &url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    let exit = tokio::task::block_in_place(|| proxy.terminate(Duration::from_secs(4)));
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "exited after {:?}",
        signalled.elapsed()
    );
    assert!(
        in_flight.await.unwrap().is_err(),
        "the slow request was not cut off"
    );
}
