#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! A bad configuration is refused with a message naming the field; the shipped example
//! configuration is valid; rate limits answer 429 with Retry-After and RateLimit headers.

mod common;

use std::process::Command;

fn refuse(config: &str, needle: &str) {
    // One file per call: tests run in parallel threads of this process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "rp-bad-{}-{}.toml",
        std::process::id(),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reverse-proxy"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2), "{config}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr:?}");
}

#[test]
fn bad_configs_are_refused_clearly() {
    let head = "[server]\nlisten = \"127.0.0.1:0\"\n";
    refuse("[server]\nlisten = \"nope\"\n", "listen");
    refuse(
        &format!(
            "{head}forwarding_headers = [\"x-real-ip\"]\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"127.0.0.1:1\" }}]\n[[routes]]\npool = \"a\"\n"
        ),
        "server.forwarding_headers: invalid configuration: unknown forwarding header \"x-real-ip\"",
    );
    refuse(
        &format!("{head}[[pools]]\nname = \"a\"\nupstreams = []\n[[routes]]\npool = \"a\"\n"),
        "no upstreams",
    );
    refuse(
        &format!(
            "{head}[[pools]]\nname = \"a\"\nalgorithm = \"fastest\"\nupstreams = [{{ address = \"127.0.0.1:1\" }}]\n[[routes]]\npool = \"a\"\n"
        ),
        "unknown algorithm \"fastest\"",
    );
    refuse(
        &format!(
            "{head}[[pools]]\nname = \"a\"\nalgorithm = \"maglev\"\nupstreams = [{{ address = \"127.0.0.1:1\" }}]\n[[routes]]\npool = \"a\"\n"
        ),
        "needs hash_key",
    );
    refuse(
        &format!(
            "{head}[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"127.0.0.1:1\" }}]\n[[routes]]\npool = \"b\"\n"
        ),
        "unknown pool \"b\"",
    );
    refuse(
        &format!(
            "{head}[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"no port\" }}]\n[[routes]]\npool = \"a\"\n"
        ),
        "not HOST:PORT",
    );
    refuse(
        &format!("{head}trusted_proxies = [\"10.0.0.0/99\"]\n"),
        "trusted_proxies",
    );
    refuse(&format!("{head}typo = 1\n"), "typo");
    refuse(
        &format!(
            "{head}[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"127.0.0.1:1\" }}]\n[[routes]]\npool = \"a\"\ncache = true\n"
        ),
        "no [cache] section",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_reverse-proxy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

#[test]
fn shipped_config_starts() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml")).unwrap();
    let proxy = common::start_proxy(&text.replace("127.0.0.1:8080", "127.0.0.1:0"));
    assert_eq!(proxy.addr.ip().to_string(), "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_headers() {
    let origin = common::start_origin("o", std::time::Duration::ZERO).await;
    let proxy = common::start_proxy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"{}\" }}]\n[[routes]]\npool = \"a\"\nrate_limit = {{ rate = 1, period_ms = 60000, burst = 2, key = \"client\" }}\n",
        origin.addr
    ));
    let client = common::client();
    let url = format!("http://{}/", proxy.addr);
    let (s1, h1, _) = common::get(&client, &url).await.unwrap();
    let (s2, h2, _) = common::get(&client, &url).await.unwrap();
    let (s3, h3, _) = common::get(&client, &url).await.unwrap();
    assert_eq!((s1, s2, s3), (200, 200, 429));
    assert_eq!(
        (
            h1["ratelimit-remaining"].to_str().unwrap(),
            h2["ratelimit-remaining"].to_str().unwrap()
        ),
        ("1", "0")
    );
    assert_eq!(h3["ratelimit-limit"], "2");
    let retry: u64 = h3["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (55..=60).contains(&retry),
        "one request per minute: {retry}"
    );
    let (_, _, metrics) = common::get(&client, &format!("http://{}/__proxy/metrics", proxy.addr))
        .await
        .unwrap();
    assert!(metrics.contains("proxy_rate_limited_total 1"), "{metrics}");
    assert!(
        metrics.contains("proxy_requests_total{class=\"2xx\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("proxy_upstream_healthy{pool=\"a\""),
        "{metrics}"
    );
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rate_limit_is_shared_by_two_proxies() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDIS_URL must be set under CI=true"
        );
        println!("skipped: REDIS_URL is not set");
        return;
    };
    let origin = common::start_origin("o", std::time::Duration::ZERO).await;
    // A prefix unique to this run, so reruns start with a full budget.
    let prefix = format!(
        "/run{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\nredis_url = \"{url}\"\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"{}\" }}]\n[[routes]]\nprefix = \"{prefix}\"\npool = \"a\"\nrate_limit = {{ rate = 1, period_ms = 60000, burst = 3, key = \"route\", store = \"redis\" }}\n",
        origin.addr
    );
    let one = common::start_proxy(&config);
    let two = common::start_proxy(&config);
    let client = common::client();
    let mut statuses = Vec::new();
    for proxy in [&one, &two, &one, &two] {
        let (status, _, _) = common::get(&client, &format!("http://{}{prefix}/x", proxy.addr))
            .await
            .unwrap();
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "one budget of 3 across both proxies"
    );
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_prefix_separates_the_budgets_of_two_deployments() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDIS_URL must be set under CI=true"
        );
        println!("skipped: REDIS_URL is not set");
        return;
    };
    let origin = common::start_origin("o", std::time::Duration::ZERO).await;
    // One route, the same in both deployments and in every run; only the key prefix
    // (unique to this run) differs.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let config = |redis_prefix: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\nredis_url = \"{url}\"\nredis_prefix = \"{redis_prefix}\"\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"{}\" }}]\n[[routes]]\nprefix = \"/limited\"\npool = \"a\"\nrate_limit = {{ rate = 1, period_ms = 60000, burst = 2, key = \"route\", store = \"redis\" }}\n",
            origin.addr
        )
    };
    let one = common::start_proxy(&config(&format!("test-rl:{run}:one:")));
    let one_again = common::start_proxy(&config(&format!("test-rl:{run}:one:")));
    let two = common::start_proxy(&config(&format!("test-rl:{run}:two:")));
    let client = common::client();
    let mut statuses = Vec::new();
    for proxy in [&one, &one_again, &one, &two, &two, &two] {
        let (status, _, _) = common::get(&client, &format!("http://{}/limited/x", proxy.addr))
            .await
            .unwrap();
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [200, 200, 429, 200, 200, 429],
        "one budget of 2 per prefix, shared by the proxies that name it"
    );
}
