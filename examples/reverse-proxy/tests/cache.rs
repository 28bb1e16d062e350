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
use common::{client, get, serve_http1, start_proxy};
use http_body_util::{BodyExt as _, Full};

async fn counting_origin() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let addr = serve_http1(move |req, _| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let method = req.method().clone();
            let cc = if req.uri().path().starts_with("/swr") {
                "max-age=2, stale-while-revalidate=30"
            } else {
                "max-age=60"
            };
            let _ = req.into_body().collect().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut resp =
                hyper::Response::new(Full::new(Bytes::from(format!("{method} version {n}"))));
            resp.headers_mut()
                .insert("cache-control", cc.parse().unwrap());
            resp
        }
    })
    .await;
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
    // Stale for sure: the origin's `Date` has whole seconds, so its apparent age (RFC 9111
    // section 4.2.3) is up to a second more than the time since it was received.
    tokio::time::sleep(Duration::from_millis(3100)).await;
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

/// An origin whose bodies have no length (chunked), counting requests, and answering
/// `Range` with a `206` for `/part`.
async fn streaming_origin() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let addr = serve_http1(move |req, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        let (status, range, chunks): (u16, Option<&str>, Vec<&str>) = if req.uri().path() == "/part"
        {
            (206, Some("bytes 4-9/10"), vec!["456", "789"])
        } else {
            (200, None, vec!["0123", "456789"])
        };
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(c))));
        let body =
            http_body_util::StreamBody::new(futures_util::stream::iter(frames.collect::<Vec<_>>()));
        let mut resp = hyper::Response::new(body);
        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        resp.headers_mut()
            .insert("cache-control", "max-age=60".parse().unwrap());
        if let Some(range) = range {
            resp.headers_mut()
                .insert("content-range", range.parse().unwrap());
        }
        std::future::ready(resp)
    })
    .await;
    (addr, hits)
}

async fn get_range(url: &str, range: &str) -> (u16, hyper::HeaderMap, String) {
    let req = hyper::Request::get(url)
        .header("range", range)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_length_bodies_are_stored_and_ranges_served_from_the_store() {
    let (origin, hits) = streaming_origin().await;
    let proxy = start_proxy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[cache]\nmax_bytes = 1048576\n[[pools]]\nname = \"app\"\nupstreams = [{{ address = \"{origin}\" }}]\n[[routes]]\npool = \"app\"\ncache = true\n"
    ));
    let url = format!("http://{}/whole", proxy.addr);
    let (status, _, body) = get(&client(), &url).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "0123456789"));
    let (_, headers, body) = get(&client(), &url).await.unwrap();
    assert_eq!(
        (headers["x-cache"].to_str().unwrap(), body.as_str()),
        ("HIT", "0123456789"),
        "a chunked body was stored"
    );
    // Ranges from the stored full response (RFC 9110 section 14).
    let (status, headers, body) = get_range(&url, "bytes=2-4").await;
    assert_eq!((status, body.as_str()), (206, "234"));
    assert_eq!(headers["content-range"], "bytes 2-4/10");
    let (status, _, body) = get_range(&url, "bytes=-3").await;
    assert_eq!((status, body.as_str()), (206, "789"));
    let (status, headers, _) = get_range(&url, "bytes=50-").await;
    assert_eq!(status, 416);
    assert_eq!(headers["content-range"], "bytes */10");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // A stored 206 answers ranges inside it and nothing else.
    let part = format!("http://{}/part", proxy.addr);
    let (status, _, body) = get_range(&part, "bytes=-6").await;
    assert_eq!((status, body.as_str()), (206, "456789"));
    let (status, headers, body) = get_range(&part, "bytes=5-7").await;
    assert_eq!((status, body.as_str()), (206, "567"));
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}
