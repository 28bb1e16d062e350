#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Subscriptions: a source stream per root field, one response per event (spec 6.2.3).

use futures_util::StreamExt;
use graphql_core::{
    Context, EventStream, FieldError, FieldResult, Request, Schema, SubscriptionSource,
};
use serde_json::{Value, json};

fn schema() -> Schema {
    Schema::build(
        "type Query { a: Int }
         type Subscription { ticks(count: Int!): Tick! messages: String }
         type Tick { n: Int! square: Int! }",
    )
    .resolver(
        "Tick",
        "square",
        graphql_core::Resolver::sync(|_, parent, _| {
            let n = parent["n"].as_i64().unwrap();
            Ok(json!(n * n))
        }),
    )
    .subscription(
        "ticks",
        SubscriptionSource::new(|_, args| {
            let count = args.get("count").and_then(Value::as_i64).unwrap_or(0);
            let events: Vec<FieldResult> = (1..=count)
                .map(|n| {
                    if n == 3 {
                        Err(FieldError::new("tick 3 lost"))
                    } else {
                        Ok(json!({"n": n}))
                    }
                })
                .collect();
            Box::pin(futures_util::stream::iter(events)) as EventStream
        }),
    )
    .finish()
    .unwrap()
}

#[tokio::test]
async fn each_event_runs_the_selection_set() {
    let stream = schema().subscribe(
        Request::new("subscription($c: Int!) { t: ticks(count: $c) { n square } }")
            .variables(json!({"c": 4}).as_object().unwrap().clone()),
        Context::default(),
    );
    let responses: Vec<Value> = stream.map(|r| r.to_value()).collect().await;
    assert_eq!(responses.len(), 4);
    assert_eq!(responses[0], json!({"data": {"t": {"n": 1, "square": 1}}}));
    assert_eq!(responses[1], json!({"data": {"t": {"n": 2, "square": 4}}}));
    assert_eq!(responses[2]["errors"][0]["message"], "tick 3 lost");
    assert_eq!(responses[3], json!({"data": {"t": {"n": 4, "square": 16}}}));
}

#[tokio::test]
async fn request_errors_are_a_single_response() {
    let one = |query: &str| {
        let query = query.to_owned();
        async move {
            let all: Vec<Value> = schema()
                .subscribe(Request::new(query), Context::default())
                .map(|r| r.to_value())
                .collect()
                .await;
            assert_eq!(all.len(), 1);
            all.into_iter().next().unwrap()
        }
    };
    let r = one("subscription { ticks(count: 1) { n } messages }").await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("must select only one top level field"),
        "{r}"
    );
    let r = one("{ a }").await;
    assert_eq!(
        r["errors"][0]["message"],
        "subscribe runs subscriptions; this is a query operation."
    );
    let r = one("subscription { messages }").await;
    assert_eq!(
        r["errors"][0]["message"],
        "No subscription source is registered for field \"messages\"."
    );
}

#[test]
fn sources_must_name_subscription_fields() {
    let err = Schema::build("type Query { a: Int } type Subscription { s: Int }")
        .subscription(
            "nope",
            SubscriptionSource::new(|_, _| Box::pin(futures_util::stream::empty())),
        )
        .finish()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"nope\", which is not a field of the subscription root type"),
        "{err}"
    );
}

#[test]
fn response_streams_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = schema().subscribe(
        Request::new("subscription { ticks(count: 1) { n } }"),
        Context::default(),
    );
    assert_send(&s);
}
