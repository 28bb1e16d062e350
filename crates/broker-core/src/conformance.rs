//! The behavioral checks every backend must pass, on real time (each takes a few seconds
//! because real brokers redeliver on their own timers). Every check uses its own queue
//! named `conf-<check>-<uuid>`, so runs on a shared server do not collide.
//!
//! ```no_run
//! # async fn demo() -> Result<(), broker_core::conformance::Failure> {
//! let broker = broker_core::EmbeddedBroker::new();
//! let report = broker_core::conformance::run(&broker).await?;
//! println!("passed: {:?}, skipped: {:?}", report.passed, report.skipped);
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::{
    Broker, DEAD_LETTER_REASON, Delivery, Disposition, Envelope, Error, MessageId, ORDERING_KEY,
    QueueConfig, RetryPolicy, Settlement, Worker,
};

/// The ack wait the checks declare their queues with.
pub const ACK_WAIT: Duration = Duration::from_secs(1);
/// The first retry delay the checks declare (jitter 0, multiplier 2).
pub const BACKOFF: Duration = Duration::from_millis(300);
/// The delivery limit the checks declare.
pub const MAX_ATTEMPTS: u32 = 3;

/// A check that failed, and how.
#[derive(Debug, thiserror::Error)]
#[error("conformance check `{check}` failed: {detail}")]
pub struct Failure {
    /// The check's name.
    pub check: &'static str,
    /// What was expected and what happened.
    pub detail: String,
}

/// What ran.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks not run, with the capability the backend does not declare.
    pub skipped: Vec<(&'static str, &'static str)>,
}

/// The configuration each check declares its queue with.
#[must_use]
pub fn queue_config() -> QueueConfig {
    QueueConfig::default().ack_wait(ACK_WAIT).retry(
        RetryPolicy::new(MAX_ATTEMPTS, BACKOFF)
            .jitter(0.0)
            .max_delay(Duration::from_secs(5)),
    )
}

struct Check<'a, B> {
    name: &'static str,
    broker: &'a B,
    queue: String,
}

macro_rules! ensure {
    ($check:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Failure { check: $check.name, detail: format!($($fmt)+) });
        }
    };
}

impl<'a, B: Broker> Check<'a, B> {
    async fn new(broker: &'a B, name: &'static str) -> Result<Self, Failure> {
        Self::with_config(broker, name, &queue_config()).await
    }

    async fn with_config(
        broker: &'a B,
        name: &'static str,
        config: &QueueConfig,
    ) -> Result<Self, Failure> {
        let check = Self {
            name,
            broker,
            queue: unique_name(name),
        };
        check
            .broker
            .declare(&check.queue, config)
            .await
            .map_err(|e| check.fail(format!("declare: {e}")))?;
        Ok(check)
    }

    /// Another check on the same broker with its own queue (a second subscription).
    async fn sibling(&self, suffix: &'static str) -> Result<Check<'a, B>, Failure> {
        let other = Check {
            name: self.name,
            broker: self.broker,
            queue: format!("{}-{suffix}", self.queue),
        };
        other
            .broker
            .declare(&other.queue, &queue_config())
            .await
            .map_err(|e| other.fail(format!("declare: {e}")))?;
        Ok(other)
    }

    async fn pending(&self) -> Result<usize, Failure> {
        self.broker
            .pending(&self.queue)
            .await
            .map_err(|e| self.fail(format!("pending: {e}")))
    }

    fn fail(&self, detail: String) -> Failure {
        Failure {
            check: self.name,
            detail,
        }
    }

    async fn publish(&self, envelope: Envelope) -> Result<(), Failure> {
        self.broker
            .publish(&self.queue, envelope)
            .await
            .map_err(|e| self.fail(format!("publish: {e}")))
    }

    async fn publish_n(&self, n: usize) -> Result<Vec<MessageId>, Failure> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let envelope = Envelope::new(format!("message {i}"))
                .with_header("x-index", i.to_string())
                .map_err(|e| self.fail(e.to_string()))?;
            ids.push(envelope.id());
            self.publish(envelope).await?;
        }
        Ok(ids)
    }

    /// Fetches until `n` deliveries arrived or `within` passed.
    async fn fetch_n(
        &self,
        consumer: &str,
        n: usize,
        within: Duration,
    ) -> Result<Vec<Delivery>, Failure> {
        let end = Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let batch = self
                .broker
                .fetch(
                    &self.queue,
                    consumer,
                    n - out.len(),
                    left.min(Duration::from_millis(250)),
                )
                .await
                .map_err(|e| self.fail(format!("fetch: {e}")))?;
            out.extend(batch);
        }
        Ok(out)
    }

    async fn fetch_none(&self, consumer: &str, wait: Duration, why: &str) -> Result<(), Failure> {
        let got = self
            .broker
            .fetch(&self.queue, consumer, 10, wait)
            .await
            .map_err(|e| self.fail(format!("fetch: {e}")))?;
        ensure!(
            self,
            got.is_empty(),
            "{why}: expected no delivery, got {} (attempts {:?})",
            got.len(),
            got.iter().map(|d| d.envelope.attempt()).collect::<Vec<_>>()
        );
        Ok(())
    }

    async fn fetch_one(
        &self,
        consumer: &str,
        within: Duration,
        why: &str,
    ) -> Result<Delivery, Failure> {
        let mut got = self.fetch_n(consumer, 1, within).await?;
        let Some(delivery) = got.pop() else {
            return Err(self.fail(format!("{why}: nothing delivered within {within:?}")));
        };
        Ok(delivery)
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: Settlement,
    ) -> Result<Disposition, Failure> {
        self.broker
            .settle(delivery, settlement)
            .await
            .map_err(|e| self.fail(format!("settle: {e}")))
    }

    async fn ack_all(&self, deliveries: &[Delivery]) -> Result<(), Failure> {
        for d in deliveries {
            let disposition = self.settle(d, Settlement::Ack).await?;
            ensure!(
                self,
                disposition == Disposition::Removed,
                "ack gave {disposition:?}"
            );
        }
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<crate::DeadLetter>, Failure> {
        self.broker
            .dead_letters(&self.queue, 100)
            .await
            .map_err(|e| self.fail(format!("dead_letters: {e}")))
    }
}

const LONG: Duration = Duration::from_secs(10);

fn unique_name(name: &str) -> String {
    format!(
        "conf-{}-{}",
        name.replace('_', "-"),
        MessageId::new().as_uuid().simple()
    )
}

/// Runs every check the backend's [`Capabilities`](crate::Capabilities) allow; stops at
/// the first failure.
///
/// # Errors
/// The first [`Failure`].
pub async fn run<B: Broker>(broker: &B) -> Result<Report, Failure> {
    let caps = broker.capabilities();
    let mut report = Report::default();
    delivers_what_was_published(broker).await?;
    report.passed.push("delivers_what_was_published");
    ack_removes(broker).await?;
    report.passed.push("ack_removes");
    unsettled_is_redelivered(broker).await?;
    report.passed.push("unsettled_is_redelivered");
    if caps.delayed_retry {
        nack_redelivers_after_backoff(broker).await?;
        report.passed.push("nack_redelivers_after_backoff");
    } else {
        report
            .skipped
            .push(("nack_redelivers_after_backoff", "delayed_retry"));
    }
    if caps.dead_letters && caps.redrive {
        dead_letter_after_max_attempts_and_redrive(broker).await?;
        report
            .passed
            .push("dead_letter_after_max_attempts_and_redrive");
        reject_dead_letters_at_once(broker).await?;
        report.passed.push("reject_dead_letters_at_once");
    } else {
        report
            .skipped
            .push(("dead_letter_after_max_attempts_and_redrive", "dead_letters"));
        report
            .skipped
            .push(("reject_dead_letters_at_once", "dead_letters"));
    }
    if caps.fifo_per_queue {
        fifo_per_queue(broker).await?;
        report.passed.push("fifo_per_queue");
    } else {
        report.skipped.push(("fifo_per_queue", "fifo_per_queue"));
    }
    if caps.competing_consumers {
        competing_consumers_get_disjoint_messages(broker).await?;
        report
            .passed
            .push("competing_consumers_get_disjoint_messages");
    } else {
        report.skipped.push((
            "competing_consumers_get_disjoint_messages",
            "competing_consumers",
        ));
    }
    if caps.extend_deadline {
        in_progress_extends_the_deadline(broker).await?;
        report.passed.push("in_progress_extends_the_deadline");
    } else {
        report
            .skipped
            .push(("in_progress_extends_the_deadline", "extend_deadline"));
    }
    if caps.fan_out {
        fan_out_reaches_every_bound_queue(broker).await?;
        report.passed.push("fan_out_reaches_every_bound_queue");
    } else {
        report
            .skipped
            .push(("fan_out_reaches_every_bound_queue", "fan_out"));
    }
    if caps.request_reply {
        request_reply_with_timeout(broker).await?;
        report.passed.push("request_reply_with_timeout");
        concurrent_requests_get_their_own_replies(broker).await?;
        report
            .passed
            .push("concurrent_requests_get_their_own_replies");
    } else {
        report
            .skipped
            .push(("request_reply_with_timeout", "request_reply"));
        report
            .skipped
            .push(("concurrent_requests_get_their_own_replies", "request_reply"));
    }
    if caps.prefetch {
        prefetch_bounds_a_slow_consumer(broker).await?;
        report.passed.push("prefetch_bounds_a_slow_consumer");
    } else {
        report
            .skipped
            .push(("prefetch_bounds_a_slow_consumer", "prefetch"));
    }
    if caps.ordered_keys {
        ordered_keys_in_order_in_parallel(broker).await?;
        report.passed.push("ordered_keys_in_order_in_parallel");
    } else {
        ordering_key_refused_when_unsupported(broker).await?;
        report.passed.push("ordering_key_refused_when_unsupported");
        report
            .skipped
            .push(("ordered_keys_in_order_in_parallel", "ordered_keys"));
    }
    // Without `pending_count` the drain check still runs; only its counts of what is
    // pending are left out.
    drain_leaves_nothing_held(broker).await?;
    report.passed.push("drain_leaves_nothing_held");
    Ok(report)
}

async fn delivers_what_was_published<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "delivers_what_was_published").await?;
    let mut sent = Vec::new();
    for i in 0..5u8 {
        let mut envelope = Envelope::encode(&crate::Json, &serde_json::json!({ "n": i }))
            .map_err(|e| c.fail(e.to_string()))?;
        envelope
            .headers_mut()
            .insert("correlation-id", format!("corr-{i}"))
            .and_then(|h| {
                h.insert(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
            })
            .map_err(|e| c.fail(e.to_string()))?;
        sent.push(envelope.clone());
        c.publish(envelope).await?;
    }
    let got = c.fetch_n("c1", 5, LONG).await?;
    ensure!(c, got.len() == 5, "published 5, received {}", got.len());
    for d in &got {
        let Some(original) = sent.iter().find(|e| e.id() == d.envelope.id()) else {
            return Err(c.fail(format!("received unknown id {}", d.envelope.id())));
        };
        ensure!(
            c,
            *d.queue == *c.queue,
            "delivery names queue {:?}",
            d.queue
        );
        ensure!(
            c,
            d.envelope.attempt() == 1,
            "first delivery has attempt {}",
            d.envelope.attempt()
        );
        ensure!(
            c,
            d.envelope.payload() == original.payload(),
            "payload changed"
        );
        ensure!(
            c,
            d.envelope.headers() == original.headers(),
            "headers changed: sent {:?}, got {:?}",
            original.headers(),
            d.envelope.headers()
        );
        ensure!(
            c,
            d.envelope.published_at() == original.published_at()
                || d.envelope.published_at() >= original.published_at(),
            "publish time went backwards"
        );
        ensure!(
            c,
            d.envelope.delivered_at().is_some(),
            "delivered_at not set"
        );
    }
    c.ack_all(&got).await
}

async fn ack_removes<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "ack_removes").await?;
    c.publish_n(3).await?;
    let got = c.fetch_n("c1", 3, LONG).await?;
    ensure!(c, got.len() == 3, "published 3, received {}", got.len());
    c.ack_all(&got).await?;
    tokio::time::sleep(ACK_WAIT + Duration::from_millis(500)).await;
    c.fetch_none(
        "c2",
        Duration::from_millis(300),
        "after ack and the ack wait",
    )
    .await
}

async fn unsettled_is_redelivered<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "unsettled_is_redelivered").await?;
    let ids = c.publish_n(1).await?;
    let first = c.fetch_one("c1", LONG, "first delivery").await?;
    let taken = Instant::now();
    c.fetch_none("c2", Duration::from_millis(200), "before the ack wait")
        .await?;
    drop(first);
    let again = c
        .fetch_one("c2", LONG, "redelivery after the ack wait")
        .await?;
    let after = taken.elapsed();
    ensure!(
        c,
        ids.first() == Some(&again.envelope.id()),
        "redelivered another id"
    );
    ensure!(
        c,
        again.envelope.attempt() == 2,
        "redelivery has attempt {}",
        again.envelope.attempt()
    );
    ensure!(
        c,
        after + Duration::from_millis(50) >= ACK_WAIT,
        "redelivered after {after:?}, before the ack wait {ACK_WAIT:?}"
    );
    c.ack_all(&[again]).await
}

async fn nack_redelivers_after_backoff<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "nack_redelivers_after_backoff").await?;
    c.publish_n(1).await?;
    let first = c.fetch_one("c1", LONG, "first delivery").await?;
    let disposition = c.settle(&first, Settlement::nack()).await?;
    let nacked = Instant::now();
    ensure!(
        c,
        disposition == Disposition::Retry { delay: BACKOFF },
        "nack on delivery 1 gave {disposition:?}, expected a retry after {BACKOFF:?}"
    );
    c.fetch_none("c1", Duration::from_millis(100), "during the backoff")
        .await?;
    let again = c.fetch_one("c1", LONG, "after the backoff").await?;
    let waited = nacked.elapsed();
    ensure!(
        c,
        again.envelope.id() == first.envelope.id(),
        "another message came back"
    );
    ensure!(
        c,
        again.envelope.attempt() == 2,
        "retry has attempt {}",
        again.envelope.attempt()
    );
    ensure!(
        c,
        waited + Duration::from_millis(20) >= BACKOFF,
        "retried after {waited:?}, before the backoff {BACKOFF:?}"
    );
    // The second nack waits twice as long.
    let disposition = c.settle(&again, Settlement::nack()).await?;
    ensure!(
        c,
        disposition == Disposition::Retry { delay: BACKOFF * 2 },
        "nack on delivery 2 gave {disposition:?}"
    );
    let third = c.fetch_one("c1", LONG, "second retry").await?;
    c.ack_all(&[third]).await
}

async fn dead_letter_after_max_attempts_and_redrive<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "dead_letter_after_max_attempts_and_redrive").await?;
    let poison = Envelope::new("poison")
        .with_header("x-kind", "poison")
        .map_err(|e| c.fail(e.to_string()))?;
    let id = poison.id();
    c.publish(poison).await?;
    c.publish_n(1).await?;
    let mut healthy_acked = false;
    for attempt in 1..=MAX_ATTEMPTS {
        // Both messages the first time, then the poison one alone; never wait so long that
        // the held poison message passes its ack wait.
        let want = if healthy_acked { 1 } else { 2 };
        let got = c.fetch_n("c1", want, Duration::from_millis(600)).await?;
        let mut saw_poison = false;
        for d in &got {
            if d.envelope.id() != id {
                // Nothing is held up behind the poison message.
                c.ack_all(std::slice::from_ref(d)).await?;
                healthy_acked = true;
                continue;
            }
            saw_poison = true;
            ensure!(
                c,
                d.envelope.attempt() == attempt,
                "delivery {attempt} has attempt {}",
                d.envelope.attempt()
            );
            let disposition = c.settle(d, Settlement::nack_after(Duration::ZERO)).await?;
            if attempt < MAX_ATTEMPTS {
                ensure!(
                    c,
                    matches!(disposition, Disposition::Retry { .. }),
                    "nack {attempt} gave {disposition:?}"
                );
            } else {
                ensure!(
                    c,
                    matches!(disposition, Disposition::DeadLetter { .. }),
                    "last nack gave {disposition:?}"
                );
            }
        }
        ensure!(
            c,
            saw_poison,
            "delivery {attempt} of the poison message did not arrive"
        );
    }
    ensure!(
        c,
        healthy_acked,
        "the healthy message was not delivered beside the poison one"
    );
    c.fetch_none("c1", Duration::from_millis(300), "after dead-lettering")
        .await?;
    let dead = c.dead_letters().await?;
    ensure!(
        c,
        dead.len() == 1,
        "expected 1 dead letter, found {}",
        dead.len()
    );
    let Some(letter) = dead.first() else {
        return Err(c.fail("no dead letter".into()));
    };
    ensure!(c, letter.envelope.id() == id, "dead letter has another id");
    ensure!(
        c,
        letter.attempts == MAX_ATTEMPTS,
        "dead letter records {} attempts",
        letter.attempts
    );
    ensure!(
        c,
        letter.queue == c.queue,
        "dead letter names queue {:?}",
        letter.queue
    );
    ensure!(
        c,
        letter.envelope.headers().get(DEAD_LETTER_REASON) == Some(letter.reason.as_str())
            && !letter.reason.is_empty(),
        "reason header {:?} vs reason {:?}",
        letter.envelope.headers().get(DEAD_LETTER_REASON),
        letter.reason
    );
    ensure!(
        c,
        letter.envelope.headers().get("x-kind") == Some("poison"),
        "user header lost"
    );
    ensure!(
        c,
        letter.envelope.payload().as_ref() == b"poison",
        "payload lost"
    );

    let moved = c
        .broker
        .redrive(&c.queue, 10)
        .await
        .map_err(|e| c.fail(format!("redrive: {e}")))?;
    ensure!(c, moved == 1, "redrive moved {moved}");
    let dead = c.dead_letters().await?;
    ensure!(
        c,
        dead.is_empty(),
        "{} dead letters left after redrive",
        dead.len()
    );
    let back = c.fetch_one("c2", LONG, "redriven message").await?;
    ensure!(c, back.envelope.id() == id, "redrive delivered another id");
    ensure!(
        c,
        back.envelope.attempt() == 1,
        "redriven message has attempt {}",
        back.envelope.attempt()
    );
    ensure!(
        c,
        back.envelope.headers().get(DEAD_LETTER_REASON).is_none(),
        "redriven message keeps the dead-letter reason"
    );
    ensure!(
        c,
        back.envelope.headers().get("x-kind") == Some("poison"),
        "redrive lost a header"
    );
    c.ack_all(&[back]).await
}

async fn reject_dead_letters_at_once<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "reject_dead_letters_at_once").await?;
    c.publish_n(1).await?;
    let d = c.fetch_one("c1", LONG, "first delivery").await?;
    let disposition = c
        .settle(&d, Settlement::reject("cannot parse order 17"))
        .await?;
    ensure!(
        c,
        matches!(&disposition, Disposition::DeadLetter { reason } if reason.contains("cannot parse order 17")),
        "reject gave {disposition:?}"
    );
    let dead = c.dead_letters().await?;
    ensure!(
        c,
        dead.len() == 1
            && dead
                .iter()
                .all(|l| l.attempts == 1 && l.reason.contains("cannot parse order 17")),
        "dead letters after reject: {:?}",
        dead.iter()
            .map(|l| (&l.reason, l.attempts))
            .collect::<Vec<_>>()
    );
    c.fetch_none("c1", Duration::from_millis(300), "after reject")
        .await
}

async fn fifo_per_queue<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "fifo_per_queue").await?;
    let ids = c.publish_n(20).await?;
    let mut seen = Vec::new();
    while seen.len() < ids.len() {
        let batch = c.fetch_n("c1", 7.min(ids.len() - seen.len()), LONG).await?;
        ensure!(
            c,
            !batch.is_empty(),
            "stalled after {} messages",
            seen.len()
        );
        seen.extend(batch.iter().map(|d| d.envelope.id()));
        c.ack_all(&batch).await?;
    }
    ensure!(
        c,
        seen == ids,
        "delivery order differs from publication order"
    );
    Ok(())
}

async fn competing_consumers_get_disjoint_messages<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "competing_consumers_get_disjoint_messages").await?;
    let ids = c.publish_n(20).await?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let end = Instant::now() + LONG;
    while a.len() + b.len() < ids.len() && Instant::now() < end {
        a.extend(c.fetch_n("worker-a", 3, Duration::from_millis(300)).await?);
        b.extend(c.fetch_n("worker-b", 3, Duration::from_millis(300)).await?);
    }
    let ids_a: HashSet<MessageId> = a.iter().map(|d| d.envelope.id()).collect();
    let ids_b: HashSet<MessageId> = b.iter().map(|d| d.envelope.id()).collect();
    ensure!(
        c,
        ids_a.len() == a.len() && ids_b.len() == b.len(),
        "a consumer got a message twice"
    );
    ensure!(
        c,
        ids_a.is_disjoint(&ids_b),
        "both consumers got {:?}",
        ids_a.intersection(&ids_b).collect::<Vec<_>>()
    );
    ensure!(
        c,
        !ids_a.is_empty() && !ids_b.is_empty(),
        "one consumer got nothing ({} / {})",
        a.len(),
        b.len()
    );
    let all: HashSet<MessageId> = ids_a.union(&ids_b).copied().collect();
    ensure!(
        c,
        all == ids.iter().copied().collect(),
        "received {} of 20",
        all.len()
    );
    c.ack_all(&a).await?;
    c.ack_all(&b).await
}

async fn in_progress_extends_the_deadline<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "in_progress_extends_the_deadline").await?;
    c.publish_n(1).await?;
    let d = c.fetch_one("c1", LONG, "first delivery").await?;
    tokio::time::sleep(ACK_WAIT * 6 / 10).await;
    let disposition = c.settle(&d, Settlement::InProgress).await?;
    ensure!(
        c,
        disposition == Disposition::Extended,
        "in-progress gave {disposition:?}"
    );
    tokio::time::sleep(ACK_WAIT * 6 / 10).await;
    // 1.2 ack waits after the delivery, 0.6 after the extension: still held.
    c.fetch_none("c2", Duration::from_millis(100), "after the extension")
        .await?;
    c.ack_all(&[d]).await?;
    tokio::time::sleep(ACK_WAIT + Duration::from_millis(300)).await;
    c.fetch_none("c2", Duration::from_millis(200), "after ack")
        .await
}

fn ids_of(deliveries: &[Delivery]) -> HashSet<MessageId> {
    deliveries.iter().map(|d| d.envelope.id()).collect()
}

async fn fan_out_reaches_every_bound_queue<B: Broker>(broker: &B) -> Result<(), Failure> {
    let a = Check::new(broker, "fan_out_reaches_every_bound_queue").await?;
    let b = a.sibling("b").await?;
    let unbound = a.sibling("unbound").await?;
    let topic = unique_name("topic");
    for q in [&a, &b] {
        q.broker
            .bind(&topic, &q.queue)
            .await
            .map_err(|e| q.fail(format!("bind: {e}")))?;
    }
    // Binding twice is a no-op (no second copy).
    a.broker
        .bind(&topic, &a.queue)
        .await
        .map_err(|e| a.fail(format!("bind again: {e}")))?;
    let mut ids = HashSet::new();
    for i in 0..6 {
        let envelope = Envelope::new(format!("event {i}"))
            .with_header("x-index", i.to_string())
            .map_err(|e| a.fail(e.to_string()))?;
        ids.insert(envelope.id());
        a.broker
            .publish_topic(&topic, envelope)
            .await
            .map_err(|e| a.fail(format!("publish_topic: {e}")))?;
    }
    // Subscription b: one consumer gets every message, once, headers intact.
    let got_b = b.fetch_n("worker-3", 6, LONG).await?;
    ensure!(
        b,
        got_b.len() == 6 && ids_of(&got_b) == ids,
        "subscription b received {} of 6 (distinct {})",
        got_b.len(),
        ids_of(&got_b).len()
    );
    for d in &got_b {
        ensure!(
            b,
            d.envelope.attempt() == 1 && d.envelope.headers().get("x-index").is_some(),
            "copy has attempt {} and headers {:?}",
            d.envelope.attempt(),
            d.envelope.headers()
        );
    }
    // Subscription a: two competing consumers share its copies, each delivered once.
    let (mut one, mut two) = (Vec::new(), Vec::new());
    let end = Instant::now() + LONG;
    while one.len() + two.len() < 6 && Instant::now() < end {
        one.extend(a.fetch_n("worker-1", 2, Duration::from_millis(300)).await?);
        two.extend(a.fetch_n("worker-2", 2, Duration::from_millis(300)).await?);
    }
    let (ids_one, ids_two) = (ids_of(&one), ids_of(&two));
    ensure!(
        a,
        ids_one.len() == one.len() && ids_two.len() == two.len() && ids_one.is_disjoint(&ids_two),
        "competing consumers of one subscription got overlapping copies"
    );
    ensure!(
        a,
        ids_one.union(&ids_two).copied().collect::<HashSet<_>>() == ids,
        "subscription a received {} of 6",
        one.len() + two.len()
    );
    ensure!(
        a,
        !one.is_empty() && !two.is_empty(),
        "one competing consumer got nothing ({} / {})",
        one.len(),
        two.len()
    );
    a.ack_all(&one).await?;
    a.ack_all(&two).await?;
    b.ack_all(&got_b).await?;
    // No third copy anywhere, and nothing for a queue that is not bound.
    a.fetch_none("worker-1", Duration::from_millis(300), "after every copy")
        .await?;
    unbound
        .fetch_none("worker-4", Duration::from_millis(100), "unbound queue")
        .await
}

async fn request_reply_with_timeout<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "request_reply_with_timeout").await?;
    let request = Envelope::new("ping")
        .with_header("x-op", "echo")
        .map_err(|e| c.fail(e.to_string()))?;
    let request_id = request.id();
    let requester = c.broker.request(&c.queue, request, Duration::from_secs(5));
    let responder = async {
        let d = c.fetch_one("responder", LONG, "the request").await?;
        let headers = d.envelope.headers();
        ensure!(
            c,
            headers.reply_to().is_some() && headers.get("x-op") == Some("echo"),
            "request arrived with headers {headers:?}"
        );
        let correlation = headers.correlation_id().map(str::to_owned);
        ensure!(
            c,
            correlation.as_deref() == Some(request_id.to_string().as_str()),
            "correlation id {correlation:?}, expected the request id {request_id}"
        );
        let mut answer = b"pong:".to_vec();
        answer.extend_from_slice(d.envelope.payload());
        let response = Envelope::new(answer)
            .with_header("x-answer", "yes")
            .map_err(|e| c.fail(e.to_string()))?;
        c.broker
            .reply(&d, response)
            .await
            .map_err(|e| c.fail(format!("reply: {e}")))?;
        c.ack_all(&[d]).await?;
        Ok::<_, Failure>(correlation)
    };
    let (answer, correlation) = tokio::join!(requester, responder);
    let correlation = correlation?;
    let answer = answer.map_err(|e| c.fail(format!("request: {e}")))?;
    ensure!(
        c,
        answer.payload().as_ref() == b"pong:ping",
        "reply payload {:?}",
        answer.payload()
    );
    ensure!(
        c,
        answer.headers().correlation_id() == correlation.as_deref()
            && answer.headers().get("x-answer") == Some("yes"),
        "reply headers {:?}",
        answer.headers()
    );

    // Nobody answers: a typed timeout, after the timeout and not much later.
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let outcome = c
        .broker
        .request(&c.queue, Envelope::new("nobody answers"), timeout)
        .await;
    let took = started.elapsed();
    ensure!(
        c,
        matches!(outcome, Err(Error::Timeout(t)) if t == timeout),
        "unanswered request gave {outcome:?}"
    );
    ensure!(
        c,
        took + Duration::from_millis(20) >= timeout && took < timeout + Duration::from_secs(2),
        "unanswered request returned after {took:?} for a timeout of {timeout:?}"
    );
    // The unanswered request is an ordinary message; a message without reply-to cannot
    // be answered.
    c.publish(Envelope::new("no reply-to")).await?;
    let left = c.fetch_n("responder", 2, LONG).await?;
    ensure!(
        c,
        left.len() == 2,
        "expected 2 messages left, got {}",
        left.len()
    );
    for d in &left {
        if d.envelope.headers().reply_to().is_none() {
            let outcome = c.broker.reply(d, Envelope::new("lost")).await;
            ensure!(
                c,
                matches!(outcome, Err(Error::InvalidHeader { .. })),
                "reply without reply-to gave {outcome:?}"
            );
        }
    }
    c.ack_all(&left).await
}

/// Requests in flight at once in [`concurrent_requests_get_their_own_replies`].
const CONCURRENT_REQUESTS: usize = 200;

/// Polls every future to completion, concurrently on this task; their outputs in order.
async fn join_all<'f, T>(
    futures: Vec<std::pin::Pin<Box<dyn Future<Output = T> + Send + 'f>>>,
) -> Vec<T> {
    let mut pending: Vec<_> = futures.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(out.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *result = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

async fn concurrent_requests_get_their_own_replies<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "concurrent_requests_get_their_own_replies").await?;
    let queue = c.queue.as_str();
    let requests = (0..CONCURRENT_REQUESTS)
        .map(|i| {
            Box::pin(async move {
                let request = Envelope::new(format!("request-{i}"));
                broker.request(queue, request, LONG).await
            })
                as std::pin::Pin<Box<dyn Future<Output = crate::Result<Envelope>> + Send + '_>>
        })
        .collect();
    let requesters = join_all(requests);
    // Answers each batch in reverse order, so replies come back in another order than
    // the requests went out.
    let responder = async {
        let mut answered = 0;
        let end = Instant::now() + LONG;
        while answered < CONCURRENT_REQUESTS && Instant::now() < end {
            let batch = c
                .broker
                .fetch(&c.queue, "responder", 50, Duration::from_millis(200))
                .await
                .map_err(|e| c.fail(format!("fetch: {e}")))?;
            for d in batch.iter().rev() {
                let mut answer = b"reply-to-".to_vec();
                answer.extend_from_slice(d.envelope.payload());
                c.broker
                    .reply(d, Envelope::new(answer))
                    .await
                    .map_err(|e| c.fail(format!("reply: {e}")))?;
            }
            c.ack_all(&batch).await?;
            answered += batch.len();
        }
        Ok::<_, Failure>(answered)
    };
    let (answers, answered) = tokio::join!(requesters, responder);
    let answered = answered?;
    ensure!(
        c,
        answered == CONCURRENT_REQUESTS,
        "the responder saw {answered} of {CONCURRENT_REQUESTS} requests"
    );
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.map_err(|e| c.fail(format!("request {i}: {e}")))?;
        let expected = format!("reply-to-request-{i}");
        ensure!(
            c,
            answer.payload().as_ref() == expected.as_bytes(),
            "request {i} got {:?}, expected {expected:?}",
            answer.payload()
        );
    }

    // A reply that comes after its request timed out is dropped: it reaches neither the
    // late requester nor the next request.
    let timeout = Duration::from_millis(300);
    let outcome = c
        .broker
        .request(&c.queue, Envelope::new("too late"), timeout)
        .await;
    ensure!(
        c,
        matches!(outcome, Err(Error::Timeout(t)) if t == timeout),
        "unanswered request gave {outcome:?}"
    );
    let late = c
        .fetch_one("responder", LONG, "the timed-out request")
        .await?;
    c.broker
        .reply(&late, Envelope::new("late answer"))
        .await
        .map_err(|e| c.fail(format!("late reply: {e}")))?;
    c.ack_all(&[late]).await?;
    let requester = c.broker.request(&c.queue, Envelope::new("on time"), LONG);
    let responder = async {
        let d = c.fetch_one("responder", LONG, "the next request").await?;
        c.broker
            .reply(&d, Envelope::new("answer on time"))
            .await
            .map_err(|e| c.fail(format!("reply: {e}")))?;
        c.ack_all(&[d]).await
    };
    let (answer, responded) = tokio::join!(requester, responder);
    responded?;
    let answer = answer.map_err(|e| c.fail(format!("request after a late reply: {e}")))?;
    ensure!(
        c,
        answer.payload().as_ref() == b"answer on time",
        "the request after a late reply got {:?}",
        answer.payload()
    );
    Ok(())
}

async fn prefetch_bounds_a_slow_consumer<B: Broker>(broker: &B) -> Result<(), Failure> {
    // An ack wait long enough that no held delivery expires (and frees its slot) meanwhile.
    let config = queue_config().ack_wait(LONG).prefetch(2);
    let c = Check::with_config(broker, "prefetch_bounds_a_slow_consumer", &config).await?;
    c.publish_n(6).await?;
    // Asked for 10 over half a second, the slow consumer gets its prefetch and no more.
    let first = c.fetch_n("slow", 10, Duration::from_millis(500)).await?;
    ensure!(
        c,
        first.len() == 2,
        "a consumer with prefetch 2 received {}",
        first.len()
    );
    c.fetch_none(
        "slow",
        Duration::from_millis(200),
        "while holding its prefetch",
    )
    .await?;
    // The backlog stays in the broker for others.
    let other = c.fetch_n("fast", 2, LONG).await?;
    ensure!(
        c,
        other.len() == 2,
        "another consumer received {}",
        other.len()
    );
    c.ack_all(&other).await?;
    // Settling one makes room for exactly one.
    let Some((settled, held)) = first.split_first() else {
        return Err(c.fail("no first delivery".into()));
    };
    c.ack_all(std::slice::from_ref(settled)).await?;
    let next = c.fetch_n("slow", 10, Duration::from_millis(500)).await?;
    ensure!(
        c,
        next.len() == 1,
        "after one settlement the slow consumer received {}",
        next.len()
    );
    c.ack_all(held).await?;
    c.ack_all(&next).await?;
    let rest = c.fetch_n("fast", 1, LONG).await?;
    ensure!(c, rest.len() == 1, "the last message did not arrive");
    c.ack_all(&rest).await?;
    if c.broker.capabilities().pending_count {
        let pending = c.pending().await?;
        ensure!(c, pending == 0, "{pending} pending after acking all 6");
    }
    Ok(())
}

async fn drain_leaves_nothing_held<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "drain_leaves_nothing_held").await?;
    let ids: HashSet<MessageId> = c.publish_n(10).await?.into_iter().collect();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    let mut handled = Vec::new();
    let report = Worker::new(c.broker, &c.queue, "draining")
        .batch(3)
        .poll(Duration::from_millis(200))
        .run(
            |d| {
                handled.push(d.envelope.id());
                // Shutdown arrives in the middle of the second batch.
                if handled.len() == 4
                    && let Some(stop) = stop.take()
                {
                    let _ = stop.send(());
                }
                async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Settlement::Ack
                }
            },
            async {
                let _ = stopped.await;
            },
        )
        .await
        .map_err(|e| c.fail(format!("worker: {e}")))?;
    let done = handled.len();
    ensure!(
        c,
        report.processed == done && report.acked == done && (4..10).contains(&done),
        "worker report {report:?} after handling {done}"
    );
    // Everything fetched was finished and settled: the rest is pending, none of it held.
    let counts = c.broker.capabilities().pending_count;
    if counts {
        let pending = c.pending().await?;
        ensure!(
            c,
            pending == 10 - done,
            "{pending} pending after draining with {done} of 10 done"
        );
    }
    // Well within the ack wait, another consumer gets all the rest at once.
    let rest = c.fetch_n("next", 10 - done, ACK_WAIT / 2).await?;
    let handled: HashSet<MessageId> = handled.into_iter().collect();
    ensure!(
        c,
        rest.len() == 10 - done
            && ids_of(&rest).is_disjoint(&handled)
            && ids_of(&rest)
                .union(&handled)
                .copied()
                .collect::<HashSet<_>>()
                == ids,
        "after the drain another consumer got {} of the {} left",
        rest.len(),
        10 - done
    );
    c.ack_all(&rest).await?;
    if counts {
        let pending = c.pending().await?;
        ensure!(c, pending == 0, "{pending} pending after acking everything");
    }
    Ok(())
}

fn keyed(key: &str, step: usize) -> Result<Envelope, crate::Error> {
    Envelope::new(format!("{key}-{step}"))
        .with_header(ORDERING_KEY, key)?
        .with_header("x-step", step.to_string())
}

fn step_of(d: &Delivery) -> (Option<String>, Option<String>) {
    let h = d.envelope.headers();
    (
        h.get(ORDERING_KEY).map(str::to_owned),
        h.get("x-step").map(str::to_owned),
    )
}

async fn ordered_keys_in_order_in_parallel<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "ordered_keys_in_order_in_parallel").await?;
    for step in 0..3 {
        for key in ["k1", "k2"] {
            c.publish(keyed(key, step).map_err(|e| c.fail(e.to_string()))?)
                .await?;
        }
    }
    c.publish(Envelope::new("no key")).await?;
    // The head of each key and the unkeyed message go out together, nothing more.
    let first = c.fetch_n("w1", 10, Duration::from_millis(500)).await?;
    let mut heads: Vec<_> = first.iter().map(step_of).collect();
    heads.sort();
    ensure!(
        c,
        heads
            == [
                (None, None),
                (Some("k1".into()), Some("0".into())),
                (Some("k2".into()), Some("0".into())),
            ],
        "first deliveries {heads:?}"
    );
    c.fetch_none("w2", Duration::from_millis(100), "while each key is held")
        .await?;
    // k1's head fails: it comes back before k1's next message; k2 moves on.
    for d in &first {
        let settlement = if step_of(d).0.as_deref() == Some("k1") {
            Settlement::nack_after(Duration::ZERO)
        } else {
            Settlement::Ack
        };
        c.settle(d, settlement).await?;
    }
    let second = c.fetch_n("w2", 10, Duration::from_millis(500)).await?;
    let mut got: Vec<_> = second
        .iter()
        .map(|d| (step_of(d), d.envelope.attempt()))
        .collect();
    got.sort();
    ensure!(
        c,
        got == [
            ((Some("k1".into()), Some("0".into())), 2),
            ((Some("k2".into()), Some("1".into())), 1),
        ],
        "after a retry of k1 and an ack of k2: {got:?}"
    );
    c.ack_all(&second).await?;
    let mut order: Vec<(Option<String>, Option<String>)> = Vec::new();
    let end = Instant::now() + LONG;
    while order.len() < 3 && Instant::now() < end {
        let batch = c.fetch_n("w3", 10, Duration::from_millis(200)).await?;
        order.extend(batch.iter().map(step_of));
        c.ack_all(&batch).await?;
    }
    let steps = |key: &str| -> Vec<String> {
        order
            .iter()
            .filter(|(k, _)| k.as_deref() == Some(key))
            .filter_map(|(_, s)| s.clone())
            .collect()
    };
    ensure!(
        c,
        steps("k1") == ["1", "2"] && steps("k2") == ["2"] && order.len() == 3,
        "the rest came as {order:?}"
    );
    Ok(())
}

async fn ordering_key_refused_when_unsupported<B: Broker>(broker: &B) -> Result<(), Failure> {
    let c = Check::new(broker, "ordering_key_refused_when_unsupported").await?;
    let outcome = c
        .broker
        .publish(&c.queue, keyed("k1", 0).map_err(|e| c.fail(e.to_string()))?)
        .await;
    ensure!(
        c,
        matches!(
            outcome,
            Err(Error::Unsupported {
                capability: "ordered_keys",
                ..
            })
        ),
        "publishing with an ordering key on a backend without ordered_keys gave {outcome:?}"
    );
    c.fetch_none("c1", Duration::from_millis(100), "after a refused publish")
        .await
}
