#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The conformance suite against every backend: embedded always, Redis, NATS and RabbitMQ
//! when `REDIS_URL` / `NATS_URL` / `AMQP_URL` are set (they must be under `CI=true`).
#![cfg(feature = "conformance")]

use broker_core::conformance;

mod support;

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

/// RabbitMQ and MQTT have no per-key ordering here: they refuse an ordering key (checked
/// by the suite) and skip the ordering check. NATS and Redis run it.
#[cfg(any(feature = "amqp", feature = "mqtt"))]
const UNORDERED: [(&str, &str); 1] = [("ordered_keys_in_order_in_parallel", "ordered_keys")];

#[cfg(any(feature = "redis", feature = "nats"))]
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
    assert_eq!(report.passed.len(), 15, "{report:?}");
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
    let outcome = conformance::run(&broker).await;
    // Leave nothing behind on the shared server.
    support::delete_redis_keys(&url, &prefix).await;
    let report = outcome.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(
        report.passed.contains(&"ordered_keys_in_order_in_parallel"),
        "{report:?}"
    );
    assert_eq!(report.passed.len(), 15, "{report:?}");
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
    let outcome = conformance::run(&broker).await;
    broker.delete_streams().await.unwrap();
    let report = outcome.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(
        report.passed.contains(&"ordered_keys_in_order_in_parallel"),
        "{report:?}"
    );
    assert_eq!(report.passed.len(), 15, "{report:?}");
}

#[cfg(feature = "amqp")]
async fn amqp_suite(options: broker_core::AmqpOptions, kind: &str) {
    let Some(url) = service_url("AMQP_URL") else {
        return;
    };
    // Short enough for AMQP names (at most 32 bytes).
    let prefix = format!(
        "bk-{kind}-{}.",
        &broker_core::MessageId::new().as_uuid().simple().to_string()[..20]
    );
    let broker = broker_core::AmqpBroker::connect_with(&url, &prefix, options)
        .await
        .unwrap();
    let outcome = conformance::run(&broker).await;
    broker.delete_topology().await.unwrap();
    let report = outcome.unwrap();
    assert_eq!(report.skipped, UNORDERED, "{report:?}");
    assert_eq!(report.passed.len(), 15, "{report:?}");
    assert_eq!(broker.reconnects(), 0);
}

#[cfg(feature = "amqp")]
#[tokio::test]
async fn amqp_classic_queues_pass_the_suite() {
    amqp_suite(broker_core::AmqpOptions::default(), "c").await;
}

/// Quorum queues, and a fanout exchange per topic instead of the topic exchange. (A quorum
/// queue can deliver after `basic.cancel-ok`, which lapin drops: see the adapter's `Gaps`.)
#[cfg(feature = "amqp")]
#[tokio::test]
async fn amqp_quorum_queues_and_fanout_exchanges_pass_the_suite() {
    amqp_suite(
        broker_core::AmqpOptions::default().quorum().fanout_topics(),
        "q",
    )
    .await;
}

/// MQTT has no queue depth: `pending` is refused (`pending_count: false`), and the checks
/// leave out their pending counts for it (the drain and prefetch checks still run); per-key
/// ordering is refused as on the other network backends.
#[cfg(feature = "mqtt")]
#[tokio::test]
async fn mqtt_passes_the_suite() {
    let Some(url) = service_url("MQTT_URL") else {
        return;
    };
    let prefix = format!(
        "bk-conf-{}",
        &broker_core::MessageId::new().as_uuid().simple().to_string()[..20]
    );
    let options =
        broker_core::MqttOptions::default().session_expiry(std::time::Duration::from_secs(120));
    let broker = broker_core::MqttBroker::connect_with(&url, &prefix, options)
        .await
        .unwrap();
    let outcome = conformance::run(&broker).await;
    broker.delete_sessions().await.unwrap();
    let report = outcome.unwrap();
    assert_eq!(report.skipped, UNORDERED, "{report:?}");
    assert_eq!(report.passed.len(), 15, "{report:?}");
    assert_eq!(broker.reconnects(), 0);
}
