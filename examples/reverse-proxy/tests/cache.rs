#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The cache: coalescing of concurrent misses, freshness, invalidation by unsafe methods.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{client, get, start_proxy};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn counting_origin() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        let method = req.method().clone();
                        let cc = if req.uri().path().starts_with("/swr") {
                            "max-age=1, stale-while-revalidate=30"
                        } else {
                            "max-age=60"
                        };
                        let _ = req.into_body().collect().await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(format!(
                            "{method} version {n}"
                        ))));
                        resp.headers_mut()
                            .insert("cache-control", cc.parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_are_coalesced_and_unsafe_methods_invalidate() {
    let (origin, hits) = counting_origin().await;
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false

[cache]
max_bytes = 1048576

[[pools]]
name = "app"
upstreams = [{{ address = "{origin}" }}]

[[routes]]
pool = "app"
cache = true
"#
    ));
    let url = format!("http://{}/item", proxy.addr);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let url = url.clone();
        tasks.push(tokio::spawn(
            async move { get(&client(), &url).await.unwrap() },
        ));
    }
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        assert_eq!((status, body.as_str()), (200, "GET version 1"));
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "ten concurrent misses, one origin fetch"
    );
    // Fresh: served from the cache.
    let (_, headers, body) = get(&client(), &url).await.unwrap();
    assert_eq!(body, "GET version 1");
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // A POST to the URL invalidates it (RFC 9111 section 4.4).
    let post = hyper::Request::post(&url)
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    let resp = client().request(post).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (_, _, body) = get(&client(), &url).await.unwrap();
    assert_eq!(body, "GET version 3");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_behind() {
    let (origin, hits) = counting_origin().await;
    let proxy = start_proxy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[cache]\nmax_bytes = 1048576\n[[pools]]\nname = \"app\"\nupstreams = [{{ address = \"{origin}\" }}]\n[[routes]]\npool = \"app\"\ncache = true\n"
    ));
    let url = format!("http://{}/swr", proxy.addr);
    let (_, _, body) = get(&client(), &url).await.unwrap();
    assert_eq!(body, "GET version 1");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let started = std::time::Instant::now();
    let (_, headers, body) = get(&client(), &url).await.unwrap();
    assert_eq!(body, "GET version 1", "stale content within the window");
    assert_eq!(headers["x-cache"], "STALE");
    // STALE (not REVALIDATED or MISS): answered from the cache, not after the origin.
    let _ = started;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "one background revalidation"
    );
    let (_, headers, body) = get(&client(), &url).await.unwrap();
    assert_eq!(body, "GET version 2");
    assert_eq!(headers["x-cache"], "HIT");
}
