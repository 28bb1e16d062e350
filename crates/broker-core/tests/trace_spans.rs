#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The `tracing` spans of `TraceLayer` and `TracedBroker` (feature `tracing`), caught by a
//! small subscriber of the test's own: the messaging attributes, and the W3C ids that tie
//! the consumer's `process` span to the publisher's `send` span.

#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::{
    Broker, Delivery, EmbeddedBroker, Envelope, Handler, HandlerBuilder, HandlerError,
    HandlerResult, QueueConfig, Settlement, TraceLayer, TracedBroker, Worker,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

type Fields = HashMap<String, String>;

#[derive(Default)]
struct Capture {
    spans: Mutex<Vec<(&'static str, Fields)>>,
}

struct Collect<'a>(&'a mut Fields);
impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Capture>);

impl Subscriber for Shared {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = Fields::new();
        attrs.record(&mut Collect(&mut fields));
        let mut spans = self.0.spans.lock().unwrap();
        spans.push((attrs.metadata().name(), fields));
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        let mut spans = self.0.spans.lock().unwrap();
        let index = usize::try_from(id.into_u64() - 1).unwrap();
        values.record(&mut Collect(&mut spans[index].1));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// On queue `in` publishes onward to `out`; `fail` is a terminal error.
struct Forward(TracedBroker<EmbeddedBroker>);
impl Handler for Forward {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        if delivery.envelope.payload().as_ref() == b"fail" {
            return Err(HandlerError::terminal("no"));
        }
        if &*delivery.queue == "in" {
            self.0
                .publish("out", Envelope::new("forwarded"))
                .await
                .map_err(HandlerError::from)?;
        }
        Ok(Settlement::Ack)
    }
}

#[test]
fn spans_carry_messaging_attributes_and_link_send_to_process_by_w3c_ids() {
    let capture = Shared::default();
    let dispatch = tracing::Dispatch::new(capture.clone());
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker = EmbeddedBroker::deterministic(9);
        let config = QueueConfig::default().ack_wait(Duration::from_secs(30));
        broker.declare("in", &config).await.unwrap();
        broker.declare("out", &config).await.unwrap();
        let traced = TracedBroker::new(broker.clone());
        traced
            .publish(
                "in",
                Envelope::new("hello")
                    .with_header("correlation-id", "order-7")
                    .unwrap(),
            )
            .await
            .unwrap();
        traced.publish("in", Envelope::new("fail")).await.unwrap();
        broker
            .publish(
                "in",
                Envelope::new("x")
                    .with_header("traceparent", "bogus")
                    .unwrap(),
            )
            .await
            .unwrap();
        let handler = HandlerBuilder::new()
            .layer(TraceLayer::new(broker.name()))
            .handler(Forward(traced.clone()));
        for queue in ["in", "out"] {
            // Stop once the queue is empty (the virtual clock never needs to move here).
            let settled = std::future::poll_fn(|_| {
                let s = broker.stats(queue).unwrap();
                if s.ready + s.delayed + s.in_flight == 0 {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            });
            Worker::new(&broker, queue, "w")
                .serve(&handler, settled)
                .await
                .unwrap();
        }
    });

    let spans = capture.0.spans.lock().unwrap().clone();
    let named = |name: &str| -> Vec<Fields> {
        spans
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, f)| f.clone())
            .collect()
    };
    let sends = named("send");
    let processes = named("process");
    // Two publishes by the test, two forwarded by the handler (from `hello` and `x`).
    assert_eq!(sends.len(), 4, "{sends:?}");
    assert_eq!(processes.len(), 5, "{processes:?}");

    let hello_send = &sends[0];
    assert_eq!(hello_send["otel.kind"], "producer");
    assert_eq!(hello_send["messaging.operation.type"], "send");
    assert_eq!(hello_send["messaging.destination.name"], "in");
    let hello = processes
        .iter()
        .find(|p| {
            p.get("messaging.message.conversation_id")
                .map(String::as_str)
                == Some("order-7")
        })
        .unwrap();
    assert_eq!(hello["otel.name"], "process in");
    assert_eq!(hello["otel.kind"], "consumer");
    assert_eq!(hello["messaging.system"], "embedded");
    assert_eq!(hello["messaging.operation.type"], "process");
    assert_eq!(hello["messaging.destination.name"], "in");
    assert_eq!(
        hello["messaging.message.id"],
        hello_send["messaging.message.id"]
    );
    assert_eq!(hello["messaging.message.body.size"], "5");
    assert_eq!(hello["messaging.message.delivery_attempt"], "1");
    assert_eq!(hello["trace.parent"], "continued");
    assert_eq!(hello["outcome"], "ack");
    // The consumer's span continues the publisher's trace, as its child.
    assert_eq!(hello["trace_id"], hello_send["trace_id"]);
    assert_eq!(hello["parent_id"], hello_send["span_id"]);
    assert_ne!(hello["span_id"], hello_send["span_id"]);
    // The forward sent from inside the handler is a child of the process span.
    let forward_send = sends
        .iter()
        .find(|s| s["messaging.destination.name"] == "out" && s["trace_id"] == hello["trace_id"])
        .unwrap();
    assert_ne!(forward_send["span_id"], hello["span_id"]);
    assert_eq!(forward_send["parent_id"], hello["span_id"]);
    // The test's own publishes had no trace around them: new traces, no parent.
    assert!(hello_send.get("parent_id").is_none());
    let forwarded = processes
        .iter()
        .find(|p| p["messaging.destination.name"] == "out" && p["trace_id"] == hello["trace_id"])
        .unwrap();
    assert_eq!(forwarded["trace_id"], hello["trace_id"]);
    assert_eq!(forwarded["parent_id"], forward_send["span_id"]);

    let failed = processes
        .iter()
        .find(|p| p.get("error.type").is_some())
        .unwrap();
    assert_eq!(failed["outcome"], "error");
    assert_eq!(failed["error.type"], "terminal");
    let bogus = processes
        .iter()
        .find(|p| p["trace.parent"] == "invalid")
        .unwrap();
    assert!(bogus.get("parent_id").is_none());
    // Its forward continues the new trace.
    assert!(sends.iter().any(|s| s["messaging.destination.name"] == "out" && s["trace_id"] == bogus["trace_id"]));
    assert_eq!(bogus["outcome"], "ack");
    assert_eq!(bogus["trace_id"].len(), 32);
}
