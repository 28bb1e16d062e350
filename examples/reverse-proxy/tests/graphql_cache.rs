#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! examples/graphql behind the proxy's cache: a GET query whose `@cacheControl` policy is
//! `max-age=300, public` is answered from the cache the second time; a query the policy
//! says `no-store` goes to the origin every time.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{client, get, serve_http1, start_proxy};

/// The GraphQL example served in this process, counting the requests it gets.
async fn graphql_origin() -> (SocketAddr, Arc<AtomicU64>) {
    let app = Arc::new(graphql::App::new(graphql::Settings::default()).unwrap());
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    let addr = serve_http1(move |req, peer| {
        counter.fetch_add(1, Ordering::SeqCst);
        serve::App::handle(Arc::clone(&app), peer, req.map(serve::boxed))
    })
    .await;
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cacheable_graphql_gets_are_served_from_the_cache() {
    let (origin, hits) = graphql_origin().await;
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false

[cache]
max_bytes = 1048576

[[pools]]
name = "graphql"
upstreams = [{{ address = "{origin}" }}]

[[routes]]
pool = "graphql"
cache = true
"#
    ));
    // `{ authors { name } }`: Query.authors and Author are both maxAge 300.
    let url = format!(
        "http://{}/graphql?query=%7Bauthors%7Bname%7D%7D",
        proxy.addr
    );
    let (status, headers, first) = get(&client(), &url).await.unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(headers["cache-control"], "max-age=300, public");
    assert!(first.contains("Ursula K. Le Guin"), "{first}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let (_, headers, second) = get(&client(), &url).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second GET never reached the origin"
    );

    // `{ authorBatches }` has no hint: no-store, so every GET reaches the origin.
    let url = format!("http://{}/graphql?query=%7BauthorBatches%7D", proxy.addr);
    for expected in [2, 3] {
        let (status, headers, body) = get(&client(), &url).await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(hits.load(Ordering::SeqCst), expected);
    }
}
