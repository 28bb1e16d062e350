#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Two hubs sharing a room through the real Redis at `REDIS_URL`.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use ws_core::{Hub, HubConfig, Message, Outgoing, RedisScaleOut, ScaleOut};

#[tokio::test]
async fn a_client_of_hub_a_reaches_a_client_of_hub_b() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDIS_URL must be set under CI=true"
        );
        println!("skipped: REDIS_URL is not set");
        return;
    };
    let prefix = format!("ws-core-test-{}:", std::process::id());
    let bus_a = RedisScaleOut::connect(&url, &prefix).await.unwrap();
    let bus_b = RedisScaleOut::connect(&url, &prefix).await.unwrap();
    let mut inbox_a = bus_a.subscribe().await.unwrap();
    let mut inbox_b = bus_b.subscribe().await.unwrap();

    let now = Instant::now();
    let mut hub_a = Hub::new(HubConfig::default());
    let mut hub_b = Hub::new(HubConfig::default());
    hub_a.enable_publishing(true);
    hub_b.enable_publishing(true);
    let alice = hub_a.connect("alice", now).unwrap();
    let bob = hub_b.connect("bob", now).unwrap();
    hub_a.join(alice, "lobby", now).unwrap();
    hub_b.join(bob, "lobby", now).unwrap();
    while hub_b.poll_transmit(bob).is_some() {}

    hub_a
        .broadcast(alice, "lobby", Message::text("hello from A"), now)
        .unwrap();
    let publication = hub_a.poll_publish().unwrap();
    bus_a.publish(&publication).await.unwrap();

    let remote = tokio::time::timeout(Duration::from_secs(5), inbox_b.next())
        .await
        .expect("hub B hears hub A within 5 s")
        .unwrap();
    assert_eq!(&*remote.room, "lobby");
    assert_eq!(hub_b.deliver_remote(&remote.room, remote.message), 1);
    match hub_b.poll_transmit(bob) {
        Some(Outgoing::Message { message, .. }) => {
            assert_eq!(message, Message::text("hello from A"));
        }
        other => panic!("bob got {other:?}"),
    }
    // A hub does not hear its own publications back.
    let own = tokio::time::timeout(Duration::from_millis(300), inbox_a.next()).await;
    assert!(own.is_err(), "hub A skipped its own message");
}
