#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The conformance suite against every backend: embedded always, Redis and NATS when
//! `REDIS_URL` / `NATS_URL` are set (they must be under `CI=true`).
#![cfg(feature = "conformance")]

use broker_core::conformance;

fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} must be set under CI=true"
            );
            println!("skipped: {var} is not set");
            None
        }
    }
}

/// Redis Streams and NATS JetStream have no per-key ordering here: they refuse an ordering
/// key (checked by the suite) and skip the ordering check.
#[cfg(any(feature = "redis", feature = "nats"))]
const UNORDERED: [(&str, &str); 1] = [("ordered_keys_in_order_in_parallel", "ordered_keys")];

fn unique_prefix(backend: &str) -> String {
    format!(
        "bktest-{backend}-{}-{}",
        std::process::id(),
        broker_core::MessageId::new().as_uuid().simple()
    )
}

#[tokio::test]
async fn embedded_passes_the_suite() {
    let broker = broker_core::EmbeddedBroker::new();
    let report = conformance::run(&broker).await.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(report.passed.len(), 14, "{report:?}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_passes_the_suite() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    let prefix = format!("{}:", unique_prefix("redis"));
    let broker = broker_core::RedisBroker::connect(&url, &prefix)
        .await
        .unwrap();
    let report = conformance::run(&broker).await.unwrap();
    assert_eq!(report.skipped, UNORDERED, "{report:?}");
    assert_eq!(report.passed.len(), 14, "{report:?}");
    // Leave nothing behind on the shared server.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_passes_the_suite() {
    let Some(url) = service_url("NATS_URL") else {
        return;
    };
    let prefix = format!("{}_", unique_prefix("nats"));
    let broker = broker_core::NatsBroker::connect(&url, &prefix)
        .await
        .unwrap();
    let report = conformance::run(&broker).await.unwrap();
    assert_eq!(report.skipped, UNORDERED, "{report:?}");
    assert_eq!(report.passed.len(), 14, "{report:?}");
    broker.delete_streams().await.unwrap();
}
