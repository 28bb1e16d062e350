#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Fault tests: an origin killed under load, a slow origin, all origins down.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{client, get, start_origin, start_proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_killed_under_load_fails_no_get() {
    let a = start_origin("a", Duration::from_millis(2)).await;
    let b = start_origin("b", Duration::from_millis(2)).await;
    let c = start_origin("c", Duration::from_millis(2)).await;
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false

[[pools]]
name = "app"
algorithm = "round-robin"
upstreams = [{{ address = "{}" }}, {{ address = "{}" }}, {{ address = "{}" }}]
max_retries = 2
[pools.health]
path = "/healthz"
interval_ms = 200
timeout_ms = 200
unhealthy_threshold = 1
[pools.outlier]
consecutive_errors = 1
base_ejection_ms = 5000

[[routes]]
pool = "app"
"#,
        a.addr, b.addr, c.addr
    ));
    let url = format!("http://{}/work", proxy.addr);
    let ok = Arc::new(AtomicU64::new(0));
    let from_b_before = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (url, ok, failures, killed, from_b_before) = (
            url.clone(),
            ok.clone(),
            failures.clone(),
            killed.clone(),
            from_b_before.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = client();
            while Instant::now() < deadline {
                match get(&client, &url).await {
                    Ok((200, _, body)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if body.starts_with("origin b") && !killed.load(Ordering::Relaxed) {
                            from_b_before.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok((status, _, body)) => {
                        failures.lock().unwrap().push(format!("{status} {body}"))
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.kill();
    killed.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap();
    let ok = ok.load(Ordering::Relaxed);
    println!("GETs ok: {ok}, failed: {}", failures.len());
    assert!(
        from_b_before.load(Ordering::Relaxed) > 0,
        "b served before it was killed"
    );
    assert!(ok > 200, "only {ok} requests completed");
    assert!(
        failures.is_empty(),
        "failed GETs: {:?}",
        &failures[..failures.len().min(10)]
    );
    drop((a, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_origin_gives_504_within_timeout() {
    let slow = start_origin("slow", Duration::ZERO).await;
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[pools]]
name = "app"
upstreams = [{{ address = "{}" }}]
request_timeout_ms = 500

[[routes]]
pool = "app"
"#,
        slow.addr
    ));
    let client = client();
    let started = Instant::now();
    let (status, _, _) = get(&client, &format!("http://{}/slow", proxy.addr))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status, 504);
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(2000),
        "{elapsed:?}"
    );
    // A fast path on the same origin still works.
    let (status, _, body) = get(&client, &format!("http://{}/fast", proxy.addr))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "origin slow /fast"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_origins_down_answers_at_once() {
    // Two ports that were bound and released: connections are refused.
    let dead: Vec<_> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[pools]]
name = "app"
upstreams = [{{ address = "{}" }}, {{ address = "{}" }}]
[pools.outlier]
consecutive_errors = 1
max_ejected_share = 1.0

[[routes]]
pool = "app"
"#,
        dead[0], dead[1]
    ));
    let client = client();
    for round in 0..3 {
        let started = Instant::now();
        let (status, _, _) = get(&client, &format!("http://{}/", proxy.addr))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert!(status == 502 || status == 503, "round {round}: {status}");
        assert!(
            elapsed < Duration::from_millis(1000),
            "round {round}: {elapsed:?}"
        );
        if round > 0 {
            assert_eq!(status, 503, "once ejected, no upstream is available");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_added_and_drained_under_load_lose_nothing() {
    let a = start_origin("a", Duration::from_millis(2)).await;
    let b = start_origin("b", Duration::from_millis(2)).await;
    let c = start_origin("c", Duration::from_millis(2)).await;
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
admin_path = "/__proxy/admin"

[[pools]]
name = "app"
algorithm = "least-connections"
upstreams = [{{ address = "{}" }}, {{ address = "{}" }}]

[[routes]]
pool = "app"
"#,
        a.addr, b.addr
    ));
    let url = format!("http://{}/work", proxy.addr);
    let admin = format!("http://{}/__proxy/admin/pools/app", proxy.addr);
    let log = Arc::new(std::sync::Mutex::new(Vec::<(Instant, String)>::new()));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_millis(2000);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, log, failures) = (url.clone(), log.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let client = client();
            while Instant::now() < deadline {
                match get(&client, &url).await {
                    Ok((200, _, body)) => log.lock().unwrap().push((Instant::now(), body)),
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let client = client();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let add = hyper::Request::post(format!("{admin}/upstreams?address={}", c.addr))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(client.request(add).await.unwrap().status(), 201);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drain = hyper::Request::delete(format!("{admin}/upstreams?address={}", a.addr))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(client.request(drain).await.unwrap().status(), 202);
    let drained_at = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let (_, _, members) = get(&client, &admin).await.unwrap();
    assert!(
        !members.contains(&a.addr.to_string()),
        "a left the pool: {members}"
    );
    let log = log.lock().unwrap();
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(
        log.iter().any(|(_, body)| body.starts_with("origin c")),
        "c took traffic after being added"
    );
    let late_a = log
        .iter()
        .filter(|(at, body)| {
            body.starts_with("origin a") && *at > drained_at + Duration::from_millis(100)
        })
        .count();
    assert_eq!(late_a, 0, "a took new requests after it was drained");
    println!("{} GETs, 0 failed", log.len());
}
