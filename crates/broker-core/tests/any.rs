#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `AnyBroker` against the machine's servers: each scheme reaches its backend (the variant,
//! the name, the capabilities), the namespace gets the backend's own separator, and a batch
//! goes through the delegated `publish_batch`, `fetch` and `settle_batch`; on the embedded
//! broker the whole conformance suite runs through it.
//!
//! Needs `REDIS_URL`, `NATS_URL`, `AMQP_URL` and `MQTT_URL` for the backends compiled in;
//! each test skips with a message when its variable is unset and fails when `CI=true`.

use std::collections::HashSet;
use std::time::Duration;

use broker_core::{AnyBroker, Broker, Envelope, MessageId, QueueConfig, Settlement};
use tokio::time::Instant;

mod support;

/// A namespace of this run's own: `bkt-any-<16 hex>`.
fn namespace() -> String {
    format!(
        "bkt-any-{}",
        &MessageId::new().as_uuid().simple().to_string()[..16]
    )
}

const QUEUE: &str = "any-jobs";

/// Publishes three messages in one batch, fetches them and acks them in one batch.
async fn round_trip(broker: &AnyBroker) {
    broker
        .declare(
            QUEUE,
            &QueueConfig::default().ack_wait(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let sent: Vec<Envelope> = (0..3).map(|n| Envelope::new(format!("m{n}"))).collect();
    let ids: HashSet<MessageId> = sent.iter().map(Envelope::id).collect();
    broker.publish_batch(QUEUE, sent).await.unwrap();
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < 3 && Instant::now() < end {
        got.extend(
            broker
                .fetch(
                    QUEUE,
                    "any-consumer",
                    3 - got.len(),
                    Duration::from_millis(300),
                )
                .await
                .unwrap(),
        );
    }
    let got_ids: HashSet<MessageId> = got.iter().map(|d| d.envelope.id()).collect();
    assert_eq!(got_ids, ids, "{} delivered something else", broker.name());
    for result in broker.settle_batch(&got, Settlement::Ack).await {
        result.unwrap();
    }
}

#[tokio::test]
async fn embedded_is_the_url_embedded() {
    let broker = AnyBroker::connect_namespaced("embedded", &namespace())
        .await
        .unwrap();
    let AnyBroker::Embedded(inner) = &broker else {
        panic!("embedded gave {broker:?}");
    };
    assert_eq!(broker.name(), "embedded");
    assert_eq!(broker.capabilities(), inner.capabilities());
    round_trip(&broker).await;
    assert_eq!(broker.pending(QUEUE).await.unwrap(), 0);
}

/// Request/reply is a defaulted trait method: the embedded broker's own must be reached.
#[tokio::test]
async fn request_and_reply_reach_the_backend() {
    let broker = std::sync::Arc::new(AnyBroker::connect("embedded", "").await.unwrap());
    broker
        .declare("any-rpc", &QueueConfig::default())
        .await
        .unwrap();
    let server = std::sync::Arc::clone(&broker);
    let answer = tokio::spawn(async move {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let got = server
                .fetch("any-rpc", "server", 1, Duration::from_millis(200))
                .await
                .unwrap();
            if let Some(request) = got.first() {
                server.reply(request, Envelope::new("pong")).await.unwrap();
                server.settle(request, Settlement::Ack).await.unwrap();
                return;
            }
        }
        panic!("no request came");
    });
    let response = broker
        .request("any-rpc", Envelope::new("ping"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(response.payload().as_ref(), b"pong");
    answer.await.unwrap();
}

#[cfg(feature = "conformance")]
#[tokio::test]
async fn embedded_through_any_broker_passes_the_suite() {
    let broker = AnyBroker::connect("embedded", "").await.unwrap();
    let report = broker_core::conformance::run(&broker).await.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(report.passed.len(), 15, "{report:?}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_urls_reach_redis_streams() {
    let Some(url) = support::env("REDIS_URL") else {
        return;
    };
    let ns = namespace();
    let broker = AnyBroker::connect_namespaced(&url, &ns).await.unwrap();
    let AnyBroker::Redis(inner) = &broker else {
        panic!("{url} gave {broker:?}");
    };
    assert_eq!(broker.name(), "redis");
    assert_eq!(broker.capabilities(), inner.capabilities());
    round_trip(&broker).await;
    assert_eq!(broker.pending(QUEUE).await.unwrap(), 0);
    // The keys are `<namespace>:<queue>:…`; remove them from the shared server.
    let keys = support::delete_redis_keys(&url, &ns).await;
    assert!(
        keys.contains(&format!("{ns}:{QUEUE}:s")),
        "no stream {ns}:{QUEUE}:s among {keys:?}"
    );
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_urls_reach_jetstream() {
    let Some(url) = support::env("NATS_URL") else {
        return;
    };
    let ns = namespace();
    let broker = AnyBroker::connect_namespaced(&url, &ns).await.unwrap();
    let AnyBroker::Nats(inner) = &broker else {
        panic!("{url} gave {broker:?}");
    };
    assert_eq!(broker.name(), "nats");
    assert_eq!(broker.capabilities(), inner.capabilities());
    round_trip(&broker).await;
    // The streams are `Q_<namespace>_<queue>`.
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_stream(format!("Q_{ns}_{QUEUE}")).await.unwrap();
    inner.delete_streams().await.unwrap();
}

#[cfg(feature = "amqp")]
#[tokio::test]
async fn amqp_urls_reach_rabbitmq() {
    let Some(url) = support::env("AMQP_URL") else {
        return;
    };
    let ns = namespace();
    let broker = AnyBroker::connect_namespaced(&url, &ns).await.unwrap();
    let AnyBroker::Amqp(inner) = &broker else {
        panic!("{} gave {broker:?}", broker_core::redact_url(&url));
    };
    assert_eq!(broker.name(), "amqp");
    assert_eq!(broker.capabilities(), inner.capabilities());
    assert_eq!(inner.queue_name(QUEUE), format!("{ns}.{QUEUE}"));
    round_trip(&broker).await;
    inner.delete_topology().await.unwrap();
}

#[cfg(feature = "mqtt")]
#[tokio::test]
async fn mqtt_urls_reach_mosquitto() {
    let Some(url) = support::env("MQTT_URL") else {
        return;
    };
    let ns = namespace();
    let broker = AnyBroker::connect_namespaced(&url, &ns).await.unwrap();
    let AnyBroker::Mqtt(inner) = &broker else {
        panic!("{url} gave {broker:?}");
    };
    assert_eq!(broker.name(), "mqtt");
    assert_eq!(broker.capabilities(), inner.capabilities());
    round_trip(&broker).await;
    inner.delete_sessions().await.unwrap();
}

/// A server that is not there is the backend's own error.
#[cfg(feature = "nats")]
#[tokio::test]
async fn an_unreachable_server_is_the_backends_error() {
    let error = AnyBroker::connect("nats://127.0.0.1:1", "p")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            broker_core::Error::Backend {
                backend: "nats",
                ..
            }
        ),
        "{error:?}"
    );
}
