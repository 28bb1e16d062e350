#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The handler layers on the embedded broker's virtual clock: retries by error class,
//! metrics, per-message timeouts (tokio's paused clock), the inbox, trace propagation from
//! publisher to consumer, the tower adapter.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use broker_core::{
    Broker, Claim, Delivery, Disposition, EmbeddedBroker, Envelope, Handler, HandlerBuilder,
    HandlerError, HandlerResult, InboxLayer, Json, Layer, MemoryInbox, MessageId, Metrics,
    MetricsLayer, QueueConfig, RetryLayer, RetryPolicy, Settlement, TimeoutLayer, TraceContext,
    TraceLayer, TracedBroker, Worker, handler_fn,
};

fn config(max_attempts: u32) -> QueueConfig {
    QueueConfig::default()
        .ack_wait(Duration::from_secs(30))
        .retry(RetryPolicy::new(max_attempts, Duration::from_secs(10)).jitter(0.0))
}

/// A shutdown signal for [`Worker::serve`] that fires once nothing of `queue` is pending,
/// moving the virtual clock on (1 s at a time) while only delayed retries are left.
fn until_settled<'a>(broker: &'a EmbeddedBroker, queue: &'a str) -> impl Future<Output = ()> + 'a {
    let mut rounds = 0u32;
    poll_fn(move |_| {
        let s = broker.stats(queue).unwrap();
        if s.ready + s.delayed + s.in_flight == 0 {
            return Poll::Ready(());
        }
        rounds += 1;
        assert!(rounds < 100_000, "queue {queue} never settled: {s:?}");
        if s.ready == 0 && s.in_flight == 0 {
            broker.advance(Duration::from_secs(1)).unwrap();
        }
        Poll::Pending
    })
}

async fn serve<H: Handler>(broker: &EmbeddedBroker, queue: &str, handler: &H) {
    Worker::new(broker, queue, "worker-1")
        .serve(handler, until_settled(broker, queue))
        .await
        .unwrap();
}

fn payload(delivery: &Delivery) -> String {
    String::from_utf8(delivery.envelope.payload().to_vec()).unwrap()
}

/// Fails by payload: `terminal` always terminally, `always` always retryably, `flaky`
/// retryably on its first two calls; everything else succeeds. Counts calls per payload.
#[derive(Default)]
struct Scripted {
    calls: Mutex<HashMap<String, usize>>,
}

impl Scripted {
    fn calls(&self, what: &str) -> usize {
        self.calls.lock().unwrap().get(what).copied().unwrap_or(0)
    }
}

impl Handler for Scripted {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        let what = payload(delivery);
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(what.clone()).or_default();
            *n += 1;
            *n
        };
        match what.as_str() {
            "terminal" => Err(HandlerError::terminal("bad payload")),
            "always" => Err(HandlerError::retryable("database down")),
            "flaky" if n <= 2 => Err(HandlerError::retryable("connection reset")),
            "json" => {
                // A payload that does not decode: the crate's codec error is terminal.
                let _: u32 = delivery.envelope.decode(&Json)?;
                Ok(Settlement::Ack)
            }
            _ => Ok(Settlement::Ack),
        }
    }
}

async fn publish_all(broker: &impl Broker, queue: &str, payloads: &[&str]) {
    for p in payloads {
        broker
            .publish(queue, Envelope::new(p.to_string()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn retry_layer_dead_letters_terminal_errors_and_retries_retryable_ones_with_metrics() {
    let broker = EmbeddedBroker::deterministic(1);
    broker.declare("jobs", &config(3)).await.unwrap();
    publish_all(
        &broker,
        "jobs",
        &["ok", "terminal", "flaky", "always", "json"],
    )
    .await;

    let metrics = Arc::new(Metrics::new());
    let scripted = Scripted::default();
    let handler = HandlerBuilder::new()
        .layer(MetricsLayer::new(metrics.clone()))
        .layer(RetryLayer::new())
        .handler(&scripted);
    let start = broker.now();
    serve(&broker, "jobs", &handler).await;

    // The terminal ones once each; the flaky one until it worked; the broken one until
    // its last allowed delivery.
    assert_eq!(scripted.calls("ok"), 1);
    assert_eq!(scripted.calls("terminal"), 1);
    assert_eq!(scripted.calls("json"), 1);
    assert_eq!(scripted.calls("flaky"), 3);
    assert_eq!(scripted.calls("always"), 3);
    // The queue's backoff (10 s, then 20 s) on the virtual clock, not in-process waiting.
    assert!(broker.now() - start >= Duration::from_secs(30));

    let dead = broker.dead_letters("jobs", 10).await.unwrap();
    let mut reasons: Vec<(String, String, u32)> = dead
        .iter()
        .map(|d| {
            let p = String::from_utf8(d.envelope.payload().to_vec()).unwrap();
            (p, d.reason.clone(), d.attempts)
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0].0, "always");
    assert_eq!(reasons[0].1, "nacked on delivery 3 of at most 3");
    assert_eq!(reasons[0].2, 3);
    assert_eq!(reasons[1].0, "json");
    assert!(
        reasons[1].1.starts_with("rejected: codec"),
        "{}",
        reasons[1].1
    );
    assert_eq!((reasons[1].2, reasons[2].2), (1, 1));
    assert_eq!(reasons[2].0, "terminal");
    assert_eq!(reasons[2].1, "rejected: bad payload");

    let s = metrics.snapshot();
    // ok 1 + terminal 1 + json 1 + flaky 3 + always 3.
    assert_eq!(s.received, 9);
    assert_eq!(s.acked, 2);
    assert_eq!(s.nacked, 4);
    assert_eq!(s.dead_lettered, 3);
    assert_eq!(s.failed, 7);
    assert_eq!(s.duration_count, 9);
    assert!(s.duration_buckets.windows(2).all(|w| w[0] <= w[1]));
    assert!(*s.duration_buckets.last().unwrap() <= 9);
}

#[tokio::test(start_paused = true)]
async fn in_process_retries_happen_before_the_broker_sees_a_failure() {
    let broker = EmbeddedBroker::deterministic(2);
    broker.declare("jobs", &config(3)).await.unwrap();
    publish_all(&broker, "jobs", &["flaky", "always"]).await;
    let metrics = Arc::new(Metrics::new());
    let scripted = Scripted::default();
    let handler = HandlerBuilder::new()
        .layer(MetricsLayer::new(metrics.clone()))
        .layer(RetryLayer::new().in_process(2, Duration::from_millis(50)))
        .handler(&scripted);
    serve(&broker, "jobs", &handler).await;
    // flaky: three calls within its first delivery, acked.
    assert_eq!(scripted.calls("flaky"), 3);
    // always: three calls per delivery, three deliveries, then dead.
    assert_eq!(scripted.calls("always"), 9);
    let s = metrics.snapshot();
    assert_eq!(
        (s.received, s.acked, s.nacked, s.dead_lettered),
        (4, 1, 2, 1)
    );
}

/// Sleeps an hour on a message's first delivery (counting how often that sleep was
/// dropped before it finished), answers at once after.
#[derive(Default)]
struct Slow {
    started: AtomicUsize,
    cancelled: Arc<AtomicUsize>,
    finished_slow: AtomicUsize,
}

struct CountDrop(Arc<AtomicUsize>, bool);
impl Drop for CountDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Handler for Slow {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        if delivery.envelope.attempt() == 1 {
            self.started.fetch_add(1, Ordering::SeqCst);
            let mut guard = CountDrop(self.cancelled.clone(), false);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            guard.1 = true;
            self.finished_slow.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Settlement::Ack)
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_past_its_timeout_is_cancelled_and_the_message_retried_with_the_policy() {
    let broker = EmbeddedBroker::deterministic(3);
    broker.declare("slow", &config(3)).await.unwrap();
    publish_all(&broker, "slow", &["a", "b"]).await;
    let metrics = Arc::new(Metrics::new());
    let slow = Slow::default();
    let handler = HandlerBuilder::new()
        .layer(MetricsLayer::new(metrics.clone()))
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .handler(&slow);
    let tokio_start = tokio::time::Instant::now();
    let start = broker.now();
    serve(&broker, "slow", &handler).await;
    // Both first deliveries were cut off at 5 s (tokio's clock), their futures dropped.
    assert_eq!(slow.started.load(Ordering::SeqCst), 2);
    assert_eq!(slow.cancelled.load(Ordering::SeqCst), 2);
    assert_eq!(slow.finished_slow.load(Ordering::SeqCst), 0);
    assert_eq!(
        tokio::time::Instant::now() - tokio_start,
        Duration::from_secs(10)
    );
    // Nacked with the queue's backoff (10 s on the broker's clock), then acked.
    assert!(broker.now() - start >= Duration::from_secs(10));
    let s = metrics.snapshot();
    assert_eq!((s.received, s.acked, s.nacked, s.failed), (4, 2, 2, 2));
    assert!(broker.dead_letters("slow", 10).await.unwrap().is_empty());
}

/// Counts effects per message id; fails retryably on the first call for payload `fail-once`.
#[derive(Default)]
struct Effects {
    by_id: Mutex<HashMap<MessageId, usize>>,
    calls: AtomicUsize,
}

impl Handler for Effects {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if payload(delivery) == "fail-once" && delivery.envelope.attempt() == 1 {
            let _ = n;
            return Err(HandlerError::retryable("not yet"));
        }
        *self
            .by_id
            .lock()
            .unwrap()
            .entry(delivery.envelope.id())
            .or_default() += 1;
        Ok(Settlement::Ack)
    }
}

#[tokio::test]
async fn the_inbox_layer_acks_done_ids_without_running_the_handler() {
    let broker = EmbeddedBroker::deterministic(4);
    broker.declare("pay", &config(5)).await.unwrap();
    // The same message published three times (a publisher that retried).
    let twice = Envelope::new("charge 10").with_id(MessageId::new());
    for _ in 0..3 {
        broker.publish("pay", twice.clone()).await.unwrap();
    }
    // A failure releases the lease, so the retry runs the handler again.
    let fail_once = Envelope::new("fail-once");
    let fail_once_id = fail_once.id();
    broker.publish("pay", fail_once).await.unwrap();
    // Another consumer holds this one's lease: nacked until it lets go.
    let held = Envelope::new("held");
    let held_id = held.id();
    broker.publish("pay", held).await.unwrap();
    let inbox = Arc::new(MemoryInbox::new());
    let Claim::Acquired(token) =
        inbox.claim_at(held_id, Duration::from_secs(30), std::time::Instant::now())
    else {
        panic!("fresh id");
    };

    let metrics = Arc::new(Metrics::new());
    let inbox_layer = InboxLayer::new(inbox.clone()).busy_delay(Duration::from_secs(5));
    let effects = Effects::default();
    let handler = HandlerBuilder::new()
        .layer(MetricsLayer::new(metrics.clone()))
        .layer(inbox_layer.clone())
        .handler(&effects);
    // The other consumer finishes without an effect after 5 virtual seconds (when the
    // broker's clock passes the first busy nack).
    let releaser = {
        let inbox = inbox.clone();
        let broker = broker.clone();
        let start = broker.now();
        move || {
            if broker.now() - start >= Duration::from_secs(5) {
                inbox.release_lease(held_id, &token);
            }
        }
    };
    let shutdown = until_settled(&broker, "pay");
    let mut shutdown = Box::pin(shutdown);
    let watched = poll_fn(|cx| {
        let done = shutdown.as_mut().poll(cx);
        releaser();
        done
    });
    Worker::new(&broker, "pay", "worker-1")
        .serve(&handler, watched)
        .await
        .unwrap();

    let by_id = effects.by_id.lock().unwrap().clone();
    assert_eq!(by_id.get(&twice.id()), Some(&1));
    assert_eq!(by_id.get(&fail_once_id), Some(&1));
    assert_eq!(by_id.get(&held_id), Some(&1));
    assert_eq!(by_id.len(), 3);
    assert_eq!(inbox_layer.skipped(), 2);
    // twice x3 + fail-once x2 + held x2 (busy, then done).
    let s = metrics.snapshot();
    assert_eq!(s.received, 7);
    assert_eq!(s.acked, 5);
    assert_eq!(s.nacked, 2);
    // The handler ran for twice once, fail-once twice, held once.
    assert_eq!(effects.calls.load(Ordering::SeqCst), 4);
}

/// The queue, the current trace context in the handler, the incoming `traceparent`.
type Seen = (String, Option<TraceContext>, Option<String>);

/// Records the current trace context and the incoming headers; on queue `a` it publishes
/// onward to queue `b` through the traced broker.
struct Hop {
    broker: TracedBroker<EmbeddedBroker>,
    seen: Mutex<Vec<Seen>>,
}

impl Handler for Hop {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        let current = TraceContext::current();
        self.seen.lock().unwrap().push((
            delivery.queue.to_string(),
            current,
            delivery.envelope.headers().traceparent().map(str::to_owned),
        ));
        if &*delivery.queue == "a" {
            self.broker
                .publish("b", Envelope::new("next hop"))
                .await
                .map_err(HandlerError::from)?;
        }
        Ok(Settlement::Ack)
    }
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn traceparent_round_trips_from_publisher_through_consumer_to_the_next_hop() {
    let broker = EmbeddedBroker::deterministic(5);
    for q in ["a", "b"] {
        broker.declare(q, &config(3)).await.unwrap();
    }
    let traced = TracedBroker::new(broker.clone());
    // The publisher runs inside a trace (say, an HTTP request's).
    let root = TraceContext::parse(PARENT, Some("congo=t61rcWkgMzE")).unwrap();
    root.clone()
        .scope(traced.publish("a", Envelope::new("first hop")))
        .await
        .unwrap();
    // Outside any trace: a new one.
    traced
        .publish("a", Envelope::new("untraced"))
        .await
        .unwrap();
    // A broken header: handled all the same, in a new trace.
    broker
        .publish(
            "a",
            Envelope::new("broken")
                .with_header("traceparent", "00-xyz-01")
                .unwrap(),
        )
        .await
        .unwrap();

    let hop = Hop {
        broker: traced.clone(),
        seen: Mutex::new(Vec::new()),
    };
    let handler = HandlerBuilder::new()
        .layer(TraceLayer::new(broker.name()))
        .handler(&hop);
    serve(&broker, "a", &handler).await;
    serve(&broker, "b", &handler).await;

    let seen = hop.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    let (on_a, on_b): (Vec<_>, Vec<_>) = seen.into_iter().partition(|(q, _, _)| q == "a");

    // Hop 1: the message carries the publisher's trace, with a span id of the send.
    let (_, first_ctx, first_header) = &on_a[0];
    let first_header = TraceContext::parse(first_header.as_deref().unwrap(), None).unwrap();
    assert_eq!(first_header.trace_id(), root.trace_id());
    assert_ne!(first_header.span_id(), root.span_id());
    // The consumer continues it with a span of its own, and keeps the tracestate.
    let first_ctx = first_ctx.clone().unwrap();
    assert_eq!(first_ctx.trace_id(), root.trace_id());
    assert_ne!(first_ctx.span_id(), first_header.span_id());
    assert_eq!(first_ctx.tracestate(), Some("congo=t61rcWkgMzE"));
    // Hop 2: what the handler published continues the same trace again.
    let (_, second_ctx, second_header) = &on_b[0];
    let second_header = TraceContext::parse(second_header.as_deref().unwrap(), None).unwrap();
    assert_eq!(second_header.trace_id(), root.trace_id());
    assert_ne!(second_header.span_id(), first_ctx.span_id());
    let second_ctx = second_ctx.clone().unwrap();
    assert_eq!(second_ctx.trace_id(), root.trace_id());
    assert_eq!(second_ctx.tracestate(), Some("congo=t61rcWkgMzE"));

    // The untraced publish started a trace of its own, which the consumer continued.
    let (_, untraced_ctx, untraced_header) = &on_a[1];
    let untraced_header = TraceContext::parse(untraced_header.as_deref().unwrap(), None).unwrap();
    assert_ne!(untraced_header.trace_id(), root.trace_id());
    assert_eq!(
        untraced_ctx.clone().unwrap().trace_id(),
        untraced_header.trace_id()
    );
    // The broken header did not fail the message: a fresh trace, acked.
    let (_, broken_ctx, broken_header) = &on_a[2];
    assert_eq!(broken_header.as_deref(), Some("00-xyz-01"));
    let broken_ctx = broken_ctx.clone().unwrap();
    assert!(TraceContext::parse(&broken_ctx.traceparent(), None).is_ok());
    assert_ne!(broken_ctx.trace_id(), root.trace_id());
    assert!(broker.dead_letters("a", 10).await.unwrap().is_empty());
    // Every message of both hops was acked; outside a handler there is no current trace.
    assert_eq!(
        broker.pending("a").await.unwrap() + broker.pending("b").await.unwrap(),
        0
    );
    assert!(TraceContext::current().is_none());
}

/// A layer that logs when its handler is entered, to show the stacking order.
#[derive(Clone)]
struct Mark(&'static str, Arc<Mutex<Vec<&'static str>>>);
struct Marked<H>(H, &'static str, Arc<Mutex<Vec<&'static str>>>);
impl<H> Layer<H> for Mark {
    type Handler = Marked<H>;
    fn layer(&self, inner: H) -> Marked<H> {
        Marked(inner, self.0, self.1.clone())
    }
}
impl<H: Handler> Handler for Marked<H> {
    async fn handle(&self, delivery: &Delivery) -> HandlerResult {
        self.2.lock().unwrap().push(self.1);
        self.0.handle(delivery).await
    }
    fn settled(&self, delivery: &Delivery, disposition: &Disposition) {
        self.2.lock().unwrap().push(match disposition {
            Disposition::Removed => "removed",
            _ => "other",
        });
        self.0.settled(delivery, disposition);
    }
}

#[tokio::test]
async fn the_first_layer_added_is_the_outermost() {
    let broker = EmbeddedBroker::deterministic(6);
    broker.declare("q", &config(1)).await.unwrap();
    publish_all(&broker, "q", &["x"]).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler = HandlerBuilder::new()
        .layer(Mark("outer", log.clone()))
        .layer(Mark("inner", log.clone()))
        .handler(handler_fn(|_: &Delivery| async { Ok(Settlement::Ack) }));
    serve(&broker, "q", &handler).await;
    assert_eq!(
        *log.lock().unwrap(),
        ["outer", "inner", "removed", "removed"]
    );
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn a_tower_service_is_a_handler_and_keeps_its_error_classes() {
    use broker_core::ServiceHandler;
    let broker = EmbeddedBroker::deterministic(7);
    broker.declare("t", &config(2)).await.unwrap();
    publish_all(&broker, "t", &["ok", "poison", "io"]).await;
    let service = tower::service_fn(|envelope: Envelope| async move {
        match envelope.payload().as_ref() {
            b"poison" => Err(Box::new(HandlerError::terminal("poison"))
                as Box<dyn std::error::Error + Send + Sync>),
            b"io" => Err(Box::new(std::io::Error::other("disk")) as _),
            _ => Ok(Settlement::Ack),
        }
    });
    let metrics = Arc::new(Metrics::new());
    let handler = HandlerBuilder::new()
        .layer(MetricsLayer::new(metrics.clone()))
        .handler(ServiceHandler::new(service));
    serve(&broker, "t", &handler).await;
    let dead = broker.dead_letters("t", 10).await.unwrap();
    let mut reasons: Vec<String> = dead.iter().map(|d| d.reason.clone()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["nacked on delivery 2 of at most 2", "rejected: poison"]
    );
    let s = metrics.snapshot();
    assert_eq!(
        (s.received, s.acked, s.nacked, s.dead_lettered),
        (4, 1, 1, 2)
    );
}

#[test]
fn middleware_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Metrics>();
    check::<TraceContext>();
    check::<HandlerError>();
    check::<InboxLayer<MemoryInbox>>();
    check::<TracedBroker<EmbeddedBroker>>();
    check::<broker_core::Faults>();
}
