#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Two hubs sharing a room through the real Redis at `REDIS_URL`.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use ws_core::{
    Hub, HubConfig, Message, Outgoing, PresenceUpdate, PresenceView, Publication, RedisPresence,
    RedisScaleOut, RemoteMember, RemotePresence, ScaleOut,
};

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

#[tokio::test]
async fn presence_is_shared_and_a_silent_server_drops_out() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDIS_URL must be set under CI=true"
        );
        println!("skipped: REDIS_URL is not set");
        return;
    };
    let prefix = format!("ws-core-presence-test-{}:", std::process::id());
    let ttl = Duration::from_millis(800);
    let a = RedisPresence::connect(&url, &prefix, ttl).await.unwrap();
    let b = RedisPresence::connect(&url, &prefix, ttl).await.unwrap();
    assert_ne!(a.node(), b.node());

    let now = Instant::now();
    let mut hub_a = Hub::new(HubConfig::default());
    let alice = hub_a.connect("alice", now).unwrap();
    hub_a.join(alice, "lobby", now).unwrap();
    hub_a.join(alice, "a room with spaces", now).unwrap();
    let mut hub_b = Hub::new(HubConfig::default());
    let bob = hub_b.connect("bob", now).unwrap();
    hub_b.join(bob, "lobby", now).unwrap();

    a.heartbeat(hub_a.membership_version(), &hub_a.memberships())
        .await
        .unwrap();
    b.heartbeat(hub_b.membership_version(), &hub_b.memberships())
        .await
        .unwrap();
    let seen_by_b = b.others().await.unwrap();
    assert_eq!(
        seen_by_b,
        [
            RemoteMember {
                node: a.node(),
                client: alice.get(),
                room: "a room with spaces".into(),
                name: "alice".into(),
            },
            RemoteMember {
                node: a.node(),
                client: alice.get(),
                room: "lobby".into(),
                name: "alice".into(),
            },
        ]
    );
    let seen_by_a = a.others().await.unwrap();
    assert_eq!(seen_by_a.len(), 1, "{seen_by_a:?}");
    assert_eq!(&*seen_by_a[0].name, "bob");

    // A heartbeat replaces the snapshot: alice left one room.
    hub_a.leave(alice, "a room with spaces", now).unwrap();
    a.heartbeat(hub_a.membership_version(), &hub_a.memberships())
        .await
        .unwrap();
    let rooms: Vec<_> = b
        .others()
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.room)
        .collect();
    assert_eq!(rooms, [std::sync::Arc::from("lobby")]);

    // A stops its heartbeats (as a killed server does): after the time to live, B lists
    // nobody, and A's node is forgotten.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    b.heartbeat(hub_b.membership_version(), &hub_b.memberships())
        .await
        .unwrap();
    let left = b.others().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    // B is still listed for A's successor, and a graceful stop removes it at once.
    let c = RedisPresence::connect(&url, &prefix, ttl).await.unwrap();
    assert_eq!(c.others().await.unwrap().len(), 1);
    b.remove().await.unwrap();
    let left = c.others().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn relay_delivers_the_other_nodes_publications() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        println!("skipped: REDIS_URL is not set");
        return;
    };
    let prefix = format!("ws-core-relay-test-{}:", std::process::id());
    let sender = RedisScaleOut::connect(&url, &prefix).await.unwrap();
    let receiver = RedisScaleOut::connect(&url, &prefix).await.unwrap();
    let (delivered, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    let relay = receiver.clone();
    let task = tokio::spawn(async move {
        relay
            .relay(
                Duration::from_millis(100),
                move |publication| {
                    let _ = delivered.send(publication);
                },
                |error| panic!("the relay was interrupted: {error}"),
            )
            .await;
    });
    // The subscription may still be starting: publish until one arrives.
    let publication = Publication {
        room: "bookAdded".into(),
        message: Message::text("{\"title\":\"Dune\"}"),
    };
    let mut got = None;
    for _ in 0..50 {
        sender.publish(&publication).await.unwrap();
        if let Ok(Some(arrived)) =
            tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await
        {
            got = Some(arrived);
            break;
        }
    }
    assert_eq!(got, Some(publication.clone()));
    // Its own publications are not delivered back.
    receiver.publish(&publication).await.unwrap();
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), inbox.recv()).await {}
    receiver.publish(&publication).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), inbox.recv())
            .await
            .is_err()
    );
    task.abort();
}

/// Waits (bounded) for the next live update relayed to `inbox`.
async fn next_update(
    inbox: &mut tokio::sync::mpsc::UnboundedReceiver<PresenceUpdate>,
) -> PresenceUpdate {
    tokio::time::timeout(Duration::from_secs(5), inbox.recv())
        .await
        .expect("no live presence update within 5 s")
        .expect("the relay stopped")
}

#[tokio::test]
async fn joins_and_leaves_cross_live_and_a_stopped_or_silent_server_leaves_once() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDIS_URL must be set under CI=true"
        );
        println!("skipped: REDIS_URL is not set");
        return;
    };
    let prefix = format!("ws-core-live-presence-test-{}:", std::process::id());
    let ttl = Duration::from_millis(900);
    let a = RedisPresence::connect(&url, &prefix, ttl).await.unwrap();
    let b = RedisPresence::connect(&url, &prefix, ttl).await.unwrap();
    let (sent, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    let relay = b.clone();
    let task = tokio::spawn(async move {
        relay
            .relay(
                Duration::from_millis(100),
                move |update| {
                    let _ = sent.send(update);
                },
                |error| panic!("the relay was interrupted: {error}"),
            )
            .await;
    });
    let mut view = PresenceView::new(b.node());
    let now = Instant::now();
    let mut hub_a = Hub::new(HubConfig::default());
    hub_a.enable_membership_changes(true);
    let ada = hub_a.connect("ada", now).unwrap();
    // The subscription may still be starting: join and leave until a change arrives.
    let mut first = None;
    for _ in 0..50 {
        hub_a.join(ada, "lobby", now).unwrap();
        while let Some(change) = hub_a.poll_membership_change() {
            a.announce(&change).await.unwrap();
        }
        if let Ok(Some(update)) =
            tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await
        {
            first = Some(update);
            break;
        }
        hub_a.leave(ada, "lobby", now).unwrap();
        while let Some(change) = hub_a.poll_membership_change() {
            a.announce(&change).await.unwrap();
        }
    }
    let first = first.expect("no change of A crossed to B");
    let PresenceUpdate::Changed(change) = &first else {
        panic!("{first:?}");
    };
    assert_eq!(change.node, a.node());
    assert_eq!((&*change.room, &*change.name), ("lobby", "ada"));
    view.handle_update(first);
    // Catch up with whatever else crossed, then ada is in: announced once.
    while let Ok(Some(update)) =
        tokio::time::timeout(Duration::from_millis(200), inbox.recv()).await
    {
        view.handle_update(update);
    }
    let announced: Vec<RemotePresence> = std::iter::from_fn(|| view.poll_event()).collect();
    assert_eq!(
        announced.last(),
        Some(&RemotePresence {
            room: "lobby".into(),
            name: "ada".into(),
            joined: true
        })
    );
    assert_eq!(view.members("lobby"), [std::sync::Arc::from("ada")]);
    // A sweep agrees with the live changes: nothing to announce.
    a.heartbeat(hub_a.membership_version(), &hub_a.memberships())
        .await
        .unwrap();
    view.handle_snapshots(b.snapshots().await.unwrap());
    assert_eq!(view.poll_event(), None);

    // A second member joins live; then A stops gracefully: both leave at once, once.
    let bob = hub_a.connect("bob", now).unwrap();
    hub_a.join(bob, "lobby", now).unwrap();
    let change = hub_a.poll_membership_change().unwrap();
    a.announce(&change).await.unwrap();
    view.handle_update(next_update(&mut inbox).await);
    assert_eq!(view.poll_event().map(|event| event.joined), Some(true));
    a.remove().await.unwrap();
    let gone = next_update(&mut inbox).await;
    assert_eq!(gone, PresenceUpdate::Gone { node: a.node() });
    view.handle_update(gone);
    let mut left: Vec<_> = std::iter::from_fn(|| view.poll_event())
        .map(|event| (event.name.to_string(), event.joined))
        .collect();
    left.sort();
    assert_eq!(left, [("ada".to_owned(), false), ("bob".to_owned(), false)]);
    assert!(b.snapshots().await.unwrap().is_empty());

    // A third server writes one heartbeat and falls silent (SIGKILL): once its snapshot
    // has expired, a sweep announces its member as left.
    let c = RedisPresence::connect(&url, &prefix, ttl).await.unwrap();
    let mut hub_c = Hub::new(HubConfig::default());
    let cy = hub_c.connect("cy", now).unwrap();
    hub_c.join(cy, "lobby", now).unwrap();
    c.heartbeat(hub_c.membership_version(), &hub_c.memberships())
        .await
        .unwrap();
    view.handle_snapshots(b.snapshots().await.unwrap());
    assert_eq!(view.poll_event().map(|event| event.joined), Some(true));
    let silent = Instant::now();
    loop {
        view.handle_snapshots(b.snapshots().await.unwrap());
        if let Some(event) = view.poll_event() {
            assert_eq!((&*event.name, event.joined), ("cy", false));
            break;
        }
        assert!(
            silent.elapsed() < ttl * 5,
            "cy still listed {:?} after her server fell silent",
            silent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(view.poll_event(), None);
    task.abort();
}
