#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `RedisLimiter` against a real Redis (REDIS_URL).
#![cfg(feature = "redis")]

use std::time::Duration;

use proxy_core::{Gcra, RedisLimiter};

async fn limiter(gcra: Gcra) -> Option<RedisLimiter> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDIS_URL must be set under CI=true"
        );
        println!("skipped: REDIS_URL is not set");
        return None;
    };
    let client = redis::Client::open(url).unwrap();
    let connection = redis::aio::ConnectionManager::new(client).await.unwrap();
    let prefix = format!(
        "proxy-core-test:{}:{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    Some(RedisLimiter::new(connection, gcra, prefix))
}

#[tokio::test]
async fn burst_then_refusal_then_recovery() {
    let Some(limiter) = limiter(Gcra::new(10, Duration::from_secs(1), 3)).await else {
        return;
    };
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let d = limiter.check("client-a").await.unwrap();
        assert!(d.allowed);
        remaining.push(d.remaining);
    }
    assert_eq!(remaining.last(), Some(&0));
    assert!(remaining[0] >= 1, "{remaining:?}");
    let refused = limiter.check("client-a").await.unwrap();
    assert!(!refused.allowed);
    assert!(
        refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(100),
        "{refused:?}"
    );
    assert!(refused.headers().iter().any(|(n, _)| *n == "retry-after"));
    // Another key has its own budget; two limiters on one prefix share one.
    assert!(limiter.check("client-b").await.unwrap().allowed);
    let twin = limiter.clone();
    assert!(!twin.check("client-a").await.unwrap().allowed);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(limiter.check("client-a").await.unwrap().allowed);
}
