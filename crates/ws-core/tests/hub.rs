#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The hub driven with a fake clock: no sleeps.

use std::time::{Duration, Instant};

use ws_core::{CloseCode, Hub, HubConfig, Message, Outgoing, SlowConsumer};

fn drain(hub: &mut Hub, id: ws_core::ClientId) -> Vec<Outgoing> {
    std::iter::from_fn(|| hub.poll_transmit(id)).collect()
}

#[test]
fn presence_join_leave_and_members() {
    let t0 = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let ada = hub.connect("ada", t0).unwrap();
    let bob = hub.connect("bob", t0).unwrap();
    hub.join(ada, "lobby", t0).unwrap();
    hub.join(bob, "lobby", t0).unwrap();
    let names: Vec<String> = hub
        .members("lobby")
        .iter()
        .map(|(_, n)| n.to_string())
        .collect();
    assert_eq!(names, ["ada", "bob"]);
    let got = drain(&mut hub, ada);
    assert_eq!(got.len(), 2, "ada sees her own join and bob's");
    match &got[1] {
        Outgoing::Presence(p) => assert!(p.joined && &*p.name == "bob"),
        other => panic!("expected presence, got {other:?}"),
    }
    drain(&mut hub, bob);
    hub.disconnect(bob, t0);
    match drain(&mut hub, ada).as_slice() {
        [Outgoing::Presence(p)] => assert!(!p.joined && &*p.name == "bob"),
        other => panic!("expected bob's leave, got {other:?}"),
    }
    assert_eq!(hub.members("lobby").len(), 1);
}

#[test]
fn broadcast_reaches_only_room_members_and_direct_messages_one() {
    let t0 = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let a = hub.connect("a", t0).unwrap();
    let b = hub.connect("b", t0).unwrap();
    let c = hub.connect("c", t0).unwrap();
    hub.join(a, "r", t0).unwrap();
    hub.join(b, "r", t0).unwrap();
    hub.join(c, "other", t0).unwrap();
    for id in [a, b, c] {
        drain(&mut hub, id);
    }
    assert_eq!(hub.broadcast(a, "r", Message::text("hi"), t0).unwrap(), 2);
    assert_eq!(drain(&mut hub, b).len(), 1);
    assert!(drain(&mut hub, c).is_empty());
    hub.send_to(a, c, Message::text("psst"), t0).unwrap();
    match drain(&mut hub, c).as_slice() {
        [
            Outgoing::Message {
                room: None,
                from,
                message,
            },
        ] => {
            assert_eq!(*from, a);
            assert_eq!(message, &Message::text("psst"));
        }
        other => panic!("{other:?}"),
    }
}

fn slow_hub(policy: SlowConsumer) -> (Hub, ws_core::ClientId, ws_core::ClientId, Instant) {
    let t0 = Instant::now();
    let mut hub = Hub::new(HubConfig {
        queue_messages: 3,
        slow_consumer: policy,
        ..HubConfig::default()
    });
    let fast = hub.connect("fast", t0).unwrap();
    let slow = hub.connect("slow", t0).unwrap();
    hub.join(slow, "r", t0).unwrap();
    hub.join(fast, "r", t0).unwrap();
    drain(&mut hub, slow);
    drain(&mut hub, fast);
    for i in 0..5 {
        hub.broadcast(fast, "r", Message::text(format!("{i}")), t0)
            .unwrap();
        drain(&mut hub, fast);
    }
    (hub, fast, slow, t0)
}

fn texts(items: &[Outgoing]) -> Vec<String> {
    items
        .iter()
        .filter_map(|o| match o {
            Outgoing::Message { message, .. } => Some(message.to_text().unwrap().to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn slow_consumer_drop_oldest_keeps_the_newest() {
    let (mut hub, _, slow, _) = slow_hub(SlowConsumer::DropOldest);
    assert_eq!(hub.dropped(slow), 2);
    assert_eq!(texts(&drain(&mut hub, slow)), ["2", "3", "4"]);
}

#[test]
fn slow_consumer_drop_newest_keeps_the_oldest() {
    let (mut hub, _, slow, _) = slow_hub(SlowConsumer::DropNewest);
    assert_eq!(hub.dropped(slow), 2);
    assert_eq!(texts(&drain(&mut hub, slow)), ["0", "1", "2"]);
}

#[test]
fn slow_consumer_disconnect_queues_close_1013_and_bounds_memory() {
    let (mut hub, _, slow, _) = slow_hub(SlowConsumer::Disconnect(CloseCode::Again));
    assert_eq!(hub.queued_bytes(slow), 0);
    assert_eq!(
        drain(&mut hub, slow),
        [Outgoing::Close(CloseCode::Again, "slow consumer")]
    );
}

#[test]
fn heartbeat_pings_then_closes_without_pong() {
    let t0 = Instant::now();
    let config = HubConfig {
        ping_interval: Duration::from_secs(30),
        pong_timeout: Duration::from_secs(10),
        ..HubConfig::default()
    };
    let mut hub = Hub::new(config);
    let alive = hub.connect("alive", t0).unwrap();
    let dead = hub.connect("dead", t0).unwrap();
    assert_eq!(hub.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    let t1 = t0 + Duration::from_secs(30);
    hub.handle_timeout(t1);
    assert_eq!(drain(&mut hub, alive), [Outgoing::Ping]);
    assert_eq!(drain(&mut hub, dead), [Outgoing::Ping]);
    assert_eq!(hub.poll_timeout(), Some(t1 + Duration::from_secs(10)));
    hub.handle_activity(alive, t1 + Duration::from_secs(1));
    hub.handle_timeout(t1 + Duration::from_secs(10));
    assert!(drain(&mut hub, alive).is_empty());
    assert_eq!(
        drain(&mut hub, dead),
        [Outgoing::Close(CloseCode::Away, "heartbeat timeout")]
    );
}

#[test]
fn shutdown_drains_then_closes_1001_and_refuses_new_clients() {
    let t0 = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let a = hub.connect("a", t0).unwrap();
    hub.join(a, "r", t0).unwrap();
    hub.broadcast(a, "r", Message::text("last"), t0).unwrap();
    hub.shutdown(t0);
    assert!(hub.connect("late", t0).is_err());
    let got = drain(&mut hub, a);
    assert_eq!(texts(&got), ["last"], "queued messages drain first");
    assert_eq!(
        got.last(),
        Some(&Outgoing::Close(CloseCode::Away, "server shutting down"))
    );
    hub.handle_timeout(t0 + HubConfig::default().shutdown_grace);
    assert!(hub.is_empty());
}

#[test]
fn ready_list_names_each_woken_client_once() {
    let t0 = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let a = hub.connect("a", t0).unwrap();
    hub.join(a, "r", t0).unwrap();
    hub.broadcast(a, "r", Message::text("1"), t0).unwrap();
    assert_eq!(hub.poll_ready(), Some(a));
    assert_eq!(hub.poll_ready(), None);
}

#[test]
fn remote_publications_are_delivered_not_republished() {
    let t0 = Instant::now();
    let mut one = Hub::new(HubConfig::default());
    let mut two = Hub::new(HubConfig::default());
    one.enable_publishing(true);
    two.enable_publishing(true);
    let a = one.connect("a", t0).unwrap();
    let b = two.connect("b", t0).unwrap();
    one.join(a, "r", t0).unwrap();
    two.join(b, "r", t0).unwrap();
    drain(&mut two, b);
    one.broadcast(a, "r", Message::text("across"), t0).unwrap();
    let publication = one.poll_publish().unwrap();
    assert_eq!(
        two.deliver_remote(&publication.room, publication.message),
        1
    );
    assert_eq!(texts(&drain(&mut two, b)), ["across"]);
    assert!(two.poll_publish().is_none());
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Hub>();
    check::<ws_core::Connection>();
    check::<ws_core::HandshakeConfig>();
    check::<ws_core::Accepted>();
    check::<ws_core::Error>();
    check::<ws_core::DeflateParams>();
    check::<Outgoing>();
}

/// Issue 14 finding 15: one connection could join rooms without end (each a member set in
/// the hub). The cap refuses the join past the limit; leaving frees a place, and joining a
/// room the client is already in is not counted twice.
#[test]
fn rooms_per_client_are_capped() {
    let now = Instant::now();
    let mut hub = Hub::new(HubConfig {
        max_rooms_per_client: 3,
        ..HubConfig::default()
    });
    let ada = hub.connect("ada", now).unwrap();
    for room in ["a", "b", "c"] {
        hub.join(ada, room, now).unwrap();
    }
    hub.join(ada, "c", now).unwrap();
    assert!(matches!(
        hub.join(ada, "d", now),
        Err(ws_core::Error::TooManyRooms { limit: 3 })
    ));
    assert_eq!(hub.member_count("d"), 0);
    assert_eq!(hub.rooms_of(ada), 3);
    hub.leave(ada, "a", now).unwrap();
    hub.join(ada, "d", now).unwrap();
    assert_eq!(hub.member_count("d"), 1);
    // 10 000 attempted joins leave at most three rooms behind.
    for n in 0..10_000 {
        let _ = hub.join(ada, &format!("room-{n}"), now);
    }
    assert_eq!(hub.rooms_of(ada), 3);
}

#[test]
fn membership_changes_are_numbered_and_remote_presence_reaches_the_room() {
    let t0 = Instant::now();
    let mut hub = Hub::new(HubConfig::default());
    let ada = hub.connect("ada", t0).unwrap();
    hub.join(ada, "lobby", t0).unwrap();
    // Counted always, recorded only when enabled.
    assert_eq!(hub.membership_version(), 1);
    assert_eq!(hub.poll_membership_change(), None);
    hub.enable_membership_changes(true);
    let bob = hub.connect("bob", t0).unwrap();
    hub.join(bob, "lobby", t0).unwrap();
    hub.join(bob, "lobby", t0).unwrap(); // already in: no change
    hub.disconnect(ada, t0);
    let changes: Vec<_> = std::iter::from_fn(|| hub.poll_membership_change())
        .map(|change| {
            (
                change.version,
                change.presence.name.to_string(),
                change.presence.joined,
            )
        })
        .collect();
    assert_eq!(
        changes,
        [(2, "bob".to_owned(), true), (3, "ada".to_owned(), false)]
    );
    assert_eq!(hub.membership_version(), 3);
    let _ = drain(&mut hub, bob);
    let remote = ws_core::RemotePresence {
        room: "lobby".into(),
        name: "cy".into(),
        joined: true,
    };
    assert_eq!(hub.deliver_remote_presence(remote.clone()), 1);
    assert_eq!(
        drain(&mut hub, bob),
        [Outgoing::RemotePresence(std::sync::Arc::new(
            remote.clone()
        ))]
    );
    // A room nobody here is in gets nothing.
    let elsewhere = ws_core::RemotePresence {
        room: "quiet".into(),
        ..remote
    };
    assert_eq!(hub.deliver_remote_presence(elsewhere), 0);
}
