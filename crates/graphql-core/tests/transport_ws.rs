#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! graphql-transport-ws as a state machine, driven with a fake clock: the message flow and
//! every close code (4400, 4401, 4403, 4406, 4408, 4409, 4429).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use graphql_core::{
    Context, EventStream, Request, Schema, SubscriptionSource, WsAction, WsSession, close_code,
};
use serde_json::{Value, json};

const INIT: &str = r#"{"type":"connection_init"}"#;

fn session() -> (WsSession, Instant) {
    let t = Instant::now();
    (WsSession::new(t, Duration::from_secs(3)), t)
}

fn closed_with(actions: &[WsAction]) -> u16 {
    match actions.last() {
        Some(WsAction::Close(code, _)) => *code,
        other => panic!("expected a close, got {other:?}"),
    }
}

fn sub(id: &str) -> String {
    json!({"id": id, "type": "subscribe", "payload": {"query": "subscription { ticks { n } }"}})
        .to_string()
}

#[test]
fn init_ack_ping_pong_subscribe_complete() {
    let (mut s, t) = session();
    assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(3)));
    assert_eq!(
        s.handle_text(INIT, t),
        [WsAction::Send(r#"{"type":"connection_ack"}"#.into())]
    );
    assert_eq!(s.poll_timeout(), None);
    let pong = s.handle_text(r#"{"type":"ping","payload":{"x":1}}"#, t);
    let [WsAction::Send(text)] = &pong[..] else {
        panic!("{pong:?}")
    };
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"type": "pong", "payload": {"x": 1}})
    );
    assert!(s.handle_text(r#"{"type":"pong"}"#, t).is_empty());
    let actions = s.handle_text(&sub("a"), t);
    let [WsAction::Subscribe { id, request }] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(id, "a");
    assert_eq!(request.query, "subscription { ticks { n } }");
    // The client stops it.
    assert_eq!(
        s.handle_text(r#"{"id":"a","type":"complete"}"#, t),
        [WsAction::Cancel { id: "a".into() }]
    );
    // The id can be used again once completed.
    assert!(matches!(
        &s.handle_text(&sub("a"), t)[..],
        [WsAction::Subscribe { .. }]
    ));
    assert!(!s.is_closed());
}

#[test]
fn close_4400_invalid_messages() {
    for bad in [
        "not json",
        "[]",
        r#"{"type":"nope"}"#,
        r#"{"type":"subscribe","id":"1","payload":{}}"#,
        r#"{"type":"complete"}"#,
    ] {
        let (mut s, t) = session();
        s.handle_text(INIT, t);
        assert_eq!(
            closed_with(&s.handle_text(bad, t)),
            close_code::INVALID_MESSAGE,
            "{bad}"
        );
        assert!(s.is_closed());
        assert!(
            s.handle_text(INIT, t).is_empty(),
            "a closed session ignores input"
        );
    }
}

#[test]
fn close_4401_subscribe_before_ack() {
    let (mut s, t) = session();
    assert_eq!(
        closed_with(&s.handle_text(&sub("1"), t)),
        close_code::UNAUTHORIZED
    );
}

#[test]
fn close_4403_refused_init_payload() {
    let t = Instant::now();
    let mut s = WsSession::new(t, Duration::from_secs(3))
        .authorize(|p| p.get("token") == Some(&json!("secret")));
    assert_eq!(
        closed_with(&s.handle_text(r#"{"type":"connection_init","payload":{"token":"x"}}"#, t)),
        close_code::FORBIDDEN
    );
    let mut s = WsSession::new(t, Duration::from_secs(3))
        .authorize(|p| p.get("token") == Some(&json!("secret")));
    assert!(matches!(
        &s.handle_text(
            r#"{"type":"connection_init","payload":{"token":"secret"}}"#,
            t
        )[..],
        [WsAction::Send(_)]
    ));
}

#[test]
fn authorize_takes_a_closure_that_captures_state() {
    // A key set held by the server, as a JWT check would hold its KeySet.
    let accepted: std::sync::Arc<Vec<String>> = std::sync::Arc::new(vec!["k1".into(), "k2".into()]);
    let t = Instant::now();
    let open = |token: &str| {
        let keys = accepted.clone();
        let mut s = WsSession::new(t, Duration::from_secs(3)).authorize(move |p| {
            p.get("token")
                .and_then(|v| v.as_str())
                .is_some_and(|v| keys.iter().any(|k| k == v))
        });
        let init = json!({"type": "connection_init", "payload": {"token": token}}).to_string();
        s.handle_text(&init, t)
    };
    assert!(matches!(&open("k2")[..], [WsAction::Send(_)]));
    assert_eq!(closed_with(&open("k3")), close_code::FORBIDDEN);
}

#[test]
fn close_4406_wrong_subprotocol() {
    assert_eq!(
        closed_with(&[WsSession::subprotocol_rejected()]),
        close_code::SUBPROTOCOL_NOT_ACCEPTABLE
    );
}

#[test]
fn close_4408_init_timeout() {
    let (mut s, t) = session();
    assert!(s.handle_timeout(t + Duration::from_secs(2)).is_empty());
    assert_eq!(
        closed_with(&s.handle_timeout(t + Duration::from_secs(3))),
        close_code::CONNECTION_INITIALISATION_TIMEOUT
    );
    // A late init is also refused.
    let (mut s, t) = session();
    assert_eq!(
        closed_with(&s.handle_text(INIT, t + Duration::from_secs(4))),
        close_code::CONNECTION_INITIALISATION_TIMEOUT
    );
}

#[test]
fn close_4409_duplicate_subscriber() {
    let (mut s, t) = session();
    s.handle_text(INIT, t);
    s.handle_text(&sub("1"), t);
    let actions = s.handle_text(&sub("1"), t);
    assert_eq!(closed_with(&actions), close_code::SUBSCRIBER_ALREADY_EXISTS);
    // Running operations are cancelled on close.
    assert!(actions.contains(&WsAction::Cancel { id: "1".into() }));
}

#[test]
fn close_4429_second_init() {
    let (mut s, t) = session();
    s.handle_text(INIT, t);
    assert_eq!(
        closed_with(&s.handle_text(INIT, t)),
        close_code::TOO_MANY_INITIALISATION_REQUESTS
    );
}

#[tokio::test]
async fn responses_of_a_subscription_become_next_then_complete() {
    let schema = Schema::build(
        "type Query { a: Int } type Subscription { ticks: Tick! } type Tick { n: Int! }",
    )
    .subscription(
        "ticks",
        SubscriptionSource::new(|_, _| {
            Box::pin(futures_util::stream::iter([
                Ok(json!({"n": 1})),
                Ok(json!({"n": 2})),
            ])) as EventStream
        }),
    )
    .finish()
    .unwrap();
    let (mut s, t) = session();
    s.handle_text(INIT, t);
    let actions = s.handle_text(&sub("7"), t);
    let [WsAction::Subscribe { id, request }] = &actions[..] else {
        panic!()
    };
    let mut sent = Vec::new();
    let mut stream = schema.subscribe((**request).clone(), Context::default());
    while let Some(response) = stream.next().await {
        sent.extend(s.next(id, &response));
    }
    sent.extend(s.complete(id));
    let texts: Vec<Value> = sent
        .iter()
        .map(|a| match a {
            WsAction::Send(t) => serde_json::from_str(t).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        texts,
        [
            json!({"id": "7", "type": "next", "payload": {"data": {"ticks": {"n": 1}}}}),
            json!({"id": "7", "type": "next", "payload": {"data": {"ticks": {"n": 2}}}}),
            json!({"id": "7", "type": "complete"}),
        ]
    );
    // A request error is an `error` message and ends the operation.
    let actions = s.handle_text(
        &json!({"id": "8", "type": "subscribe", "payload": {"query": "subscription { nope }"}})
            .to_string(),
        t,
    );
    let [WsAction::Subscribe { id, request }] = &actions[..] else {
        panic!()
    };
    let response = schema
        .subscribe((**request).clone(), Context::default())
        .next()
        .await
        .unwrap();
    let out = s.next(id, &response);
    let [WsAction::Send(text)] = &out[..] else {
        panic!()
    };
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["type"], "error");
    assert!(
        v["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
    assert!(s.complete(id).is_empty(), "already ended");
    let _ = Request::new("");
}

/// Issue 14, finding 7: a client sending `subscribe` after `subscribe` made the server run
/// (and buffer) every operation; past the cap each gets an `error` message instead.
#[test]
fn operations_per_connection_are_capped() {
    let (mut s, t) = session();
    s.handle_text(INIT, t);
    for n in 0..100 {
        let actions = s.handle_text(&sub(&n.to_string()), t);
        assert!(
            matches!(&actions[..], [WsAction::Subscribe { .. }]),
            "{n}: {actions:?}"
        );
    }
    let actions = s.handle_text(&sub("extra"), t);
    let [WsAction::Send(text)] = &actions[..] else {
        panic!("{actions:?}")
    };
    let msg: Value = serde_json::from_str(text).unwrap();
    assert_eq!(msg["type"], "error");
    assert_eq!(msg["id"], "extra");
    assert_eq!(msg["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    assert!(!s.is_closed());
    // Its id was not taken: `complete` for it does nothing; one finished makes room.
    assert!(
        s.handle_text(r#"{"id":"extra","type":"complete"}"#, t)
            .is_empty()
    );
    assert_eq!(s.complete("7").len(), 1);
    let actions = s.handle_text(&sub("extra"), t);
    assert!(
        matches!(&actions[..], [WsAction::Subscribe { .. }]),
        "{actions:?}"
    );
    // A running id reused is still 4409, also at the cap.
    assert_eq!(
        closed_with(&s.handle_text(&sub("extra"), t)),
        close_code::SUBSCRIBER_ALREADY_EXISTS
    );
}

#[test]
fn the_operation_cap_is_configurable() {
    let t = Instant::now();
    let mut s = WsSession::new(t, Duration::from_secs(3)).max_operations(1);
    s.handle_text(INIT, t);
    assert!(matches!(
        &s.handle_text(&sub("a"), t)[..],
        [WsAction::Subscribe { .. }]
    ));
    assert!(
        matches!(&s.handle_text(&sub("b"), t)[..], [WsAction::Send(text)] if text.contains("\"error\""))
    );
}
