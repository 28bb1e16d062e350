//! Bridges: [`Bridge`] moves messages from queues of one [`Broker`] to another broker by
//! configured [`Route`]s, and acknowledges each message upstream only after the
//! downstream broker confirmed it. A bridge killed mid-stream therefore loses nothing: what
//! it held unacknowledged is delivered to it again and forwarded again, with the same
//! message id, so an [`Inbox`](crate::Inbox) (or the destination's own dedup, NATS
//! `Nats-Msg-Id`) downstream absorbs the duplicate.
//!
//! Headers travel as they are (W3C `traceparent`/`tracestate` included: the bridge is not a
//! hop of its own in the trace), and so do the id and the payload. What the destination
//! cannot carry is mapped to a header or stated in the crate README's table ("Bridges").
//!
//! ```
//! use std::time::Duration;
//! use broker_core::{Bridge, Broker, EmbeddedBroker, Envelope, QueueConfig, Route};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let (upstream, downstream) = (EmbeddedBroker::new(), EmbeddedBroker::new());
//! let route = Route::to_queue("orders", "orders-copy");
//! upstream.declare("orders", route.get_source_config()).await?;
//! let sent = Envelope::new("order 1").with_header("traceparent",
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
//! upstream.publish("orders", sent.clone()).await?;
//!
//! let bridge = Bridge::new(&upstream, &downstream).route(route);
//! // Stop once the message is across (a real program passes its shutdown signal).
//! let stop = async {
//!     while bridge.stats().forwarded < 1 {
//!         tokio::time::sleep(Duration::from_millis(5)).await;
//!     }
//! };
//! let stats = bridge.run(stop).await?;
//! assert_eq!((stats.forwarded, stats.in_flight), (1, 0));
//! assert_eq!(upstream.pending("orders").await?, 0); // acknowledged upstream
//! let got = downstream.fetch("orders-copy", "reader", 8, Duration::ZERO).await?;
//! assert_eq!(got[0].envelope.id(), sent.id());
//! assert_eq!(got[0].envelope.headers().traceparent(), sent.headers().traceparent());
//! # Ok::<(), broker_core::Error>(())
//! # }).unwrap();
//! ```

use std::collections::HashSet;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;

use crate::{
    Broker, Delivery, Envelope, Error, MessageId, QueueConfig, Result, RetryPolicy, Settlement,
};

/// The header a forwarded message carries when the bridge received it on a redelivery
/// (attempt 2 or later) upstream: that attempt number. The destination counts its own
/// deliveries from 1 again, so without it the upstream count would be lost.
pub const SOURCE_ATTEMPT: &str = "bridge-source-attempt";

/// The header that names the subject a message arrived on (set by the MQTT adapter, see
/// `SUBJECT_HEADER`), read to fill a destination template.
const SUBJECT: &str = "subject";

/// The most destination queue names remembered as declared; past it the memory starts
/// again (a declare is idempotent), so names made from subjects cannot grow it forever.
const MAX_DECLARED: usize = 10_000;

/// Where a route publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A queue of the destination broker ([`Broker::publish_batch`]), declared by the
    /// bridge with the route's target configuration.
    Queue(String),
    /// A topic of the destination broker ([`Broker::publish_topic`]): every queue bound to
    /// it gets a copy; with none bound the message goes nowhere (on MQTT: a subject).
    Topic(String),
}

impl Target {
    fn template(&self) -> &str {
        match self {
            Self::Queue(name) | Self::Topic(name) => name,
        }
    }
}

/// One route: a source queue (optionally bound to subject patterns) and a destination
/// queue or topic, whose name may be a template filled from the subject the message
/// arrived on.
///
/// A template has placeholders in braces: `{subject}` is the whole subject, `{1}` to
/// `{9}` the parts the route's subject pattern matched with `*` (one token each) or `>`
/// (the rest, joined with `.`), in order. `sensors.*.temp` and the template
/// `temperature-{1}` send `sensors.kitchen.temp` to `temperature-kitchen`. A message whose
/// subject does not fill the template, or fills it with a name the destination refuses,
/// is dead-lettered upstream with the reason.
#[derive(Clone, Debug)]
pub struct Route {
    from: String,
    subjects: Vec<String>,
    to: Target,
    source_config: QueueConfig,
    target_config: QueueConfig,
    id_header: Option<String>,
}

impl Route {
    /// From the source queue `from` to the destination queue `to` (a name or a template).
    #[must_use]
    pub fn to_queue(from: &str, to: &str) -> Self {
        Self::new(from, Target::Queue(to.to_owned()))
    }

    /// From the source queue `from` to the destination topic `to` (a name or a template).
    #[must_use]
    pub fn to_topic(from: &str, to: &str) -> Self {
        Self::new(from, Target::Topic(to.to_owned()))
    }

    fn new(from: &str, to: Target) -> Self {
        Self {
            from: from.to_owned(),
            subjects: Vec::new(),
            to,
            // Retries upstream happen only while the destination fails: allow a long
            // outage (the delay is the bridge's backoff, at most a minute) before a message
            // goes to the source's dead letters.
            source_config: QueueConfig::default().retry(
                RetryPolicy::new(1000, Duration::from_secs(1)).max_delay(Duration::from_secs(60)),
            ),
            target_config: QueueConfig::default(),
            id_header: None,
        }
    }

    /// Binds the source queue to a subject pattern ([`Broker::bind`]; `a.*.c` and `a.>` on
    /// MQTT, plain topic names on the other backends). May be given several times.
    #[must_use]
    pub fn subject(mut self, pattern: &str) -> Self {
        self.subjects.push(pattern.to_owned());
        self
    }

    /// How the bridge declares the source queue (default: ack wait 30 s, up to 1000
    /// deliveries, so a long destination outage does not dead-letter messages). On the
    /// embedded broker it must equal the configuration the queue was declared with.
    #[must_use]
    pub fn source_config(mut self, config: QueueConfig) -> Self {
        self.source_config = config;
        self
    }

    /// How the bridge declares destination queues (default [`QueueConfig::default`]).
    #[must_use]
    pub fn target_config(mut self, config: QueueConfig) -> Self {
        self.target_config = config;
        self
    }

    /// Takes the forwarded message's id from this header when it holds a UUID. For
    /// publishers that cannot set `bk-id` (an MQTT device): the MQTT adapter gives their
    /// messages a fresh id per delivery, so without a stable id of their own a duplicate
    /// after a crash cannot be recognised downstream.
    #[must_use]
    pub fn id_header(mut self, name: &str) -> Self {
        self.id_header = Some(name.to_ascii_lowercase());
        self
    }

    /// The source queue.
    #[must_use]
    pub fn from(&self) -> &str {
        &self.from
    }
    /// The destination.
    #[must_use]
    pub fn target(&self) -> &Target {
        &self.to
    }
    /// The subject patterns bound to the source queue.
    #[must_use]
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }
    /// The configuration the source queue is declared with.
    #[must_use]
    pub fn get_source_config(&self) -> &QueueConfig {
        &self.source_config
    }

    /// Checks the template's placeholders.
    fn validate(&self) -> Result<()> {
        let template = self.to.template();
        let err = |reason| Error::InvalidSubject {
            subject: template.chars().take(200).collect(),
            reason,
        };
        if template.is_empty() {
            return Err(err("empty destination"));
        }
        let mut rest = template;
        while let Some((before, after)) = rest.split_once('{') {
            if before.contains('}') {
                return Err(err("`}` without `{` in the destination template"));
            }
            let (key, after) = after
                .split_once('}')
                .ok_or(err("`{` without `}` in the destination template"))?;
            if key != "subject" && placeholder_index(key).is_none() {
                return Err(err("placeholders are {subject} and {1} to {9}"));
            }
            rest = after;
        }
        if rest.contains('}') {
            return Err(err("`}` without `{` in the destination template"));
        }
        Ok(())
    }

    /// The destination name for a message that arrived on `subject`.
    fn destination(&self, subject: Option<&str>) -> Result<String> {
        let template = self.to.template();
        if !template.contains('{') {
            return Ok(template.to_owned());
        }
        let err = |reason| Error::InvalidSubject {
            subject: subject.unwrap_or_default().chars().take(200).collect(),
            reason,
        };
        let subject = subject.ok_or(err(
            "the message has no subject to fill the destination template",
        ))?;
        let captures = self.subjects.iter().find_map(|p| capture(p, subject));
        let mut out = String::with_capacity(template.len() + subject.len());
        let mut rest = template;
        while let Some((before, after)) = rest.split_once('{') {
            out.push_str(before);
            let (key, after) = after.split_once('}').ok_or(err("bad template"))?;
            if key == "subject" {
                out.push_str(subject);
            } else {
                let part = placeholder_index(key)
                    .and_then(|i| captures.as_ref().and_then(|c| c.get(i)))
                    .ok_or(err("the subject does not match the route's pattern"))?;
                out.push_str(part);
            }
            rest = after;
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `1`..`9` as a 0-based index.
fn placeholder_index(key: &str) -> Option<usize> {
    match key.as_bytes() {
        [d @ b'1'..=b'9'] => Some(usize::from(d - b'1')),
        _ => None,
    }
}

/// The tokens `pattern` (`a.*.c`, `a.>`) matched in `subject` with its wildcards, or
/// `None` when it does not match.
fn capture(pattern: &str, subject: &str) -> Option<Vec<String>> {
    let mut tokens = subject.split('.');
    let mut captures = Vec::new();
    for part in pattern.split('.') {
        match part {
            ">" => {
                let rest: Vec<&str> = tokens.collect();
                if rest.is_empty() {
                    return None;
                }
                captures.push(rest.join("."));
                return Some(captures);
            }
            "*" => captures.push(tokens.next()?.to_owned()),
            literal => {
                if tokens.next()? != literal {
                    return None;
                }
            }
        }
    }
    tokens.next().is_none().then_some(captures)
}

/// Errors that the same call would meet again: bad names, headers, configuration, or a
/// capability the backend lacks. Everything else (connection, timeout, full queue) is
/// worth retrying.
fn is_permanent(error: &Error) -> bool {
    matches!(
        error,
        Error::WireHeader { .. }
            | Error::InvalidHeader { .. }
            | Error::InvalidSubject { .. }
            | Error::InvalidQueueName(_)
            | Error::Unsupported { .. }
            | Error::Codec { .. }
            | Error::InvalidConfig(_)
    )
}

/// The bridge's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Messages the destination confirmed (a message forwarded again after a crash or a
    /// lost acknowledgement counts again).
    pub forwarded: u64,
    /// Messages the destination can never take (a bad name or header, a template the
    /// subject does not fill): rejected to the source's dead letters with the reason.
    pub failed: u64,
    /// Messages handed back to the source for a later delivery after the destination kept
    /// failing (counted per message, each time).
    pub retried: u64,
    /// Broker calls that failed (fetch, declare, publish, settle), each retried after a
    /// backoff; an acknowledgement that failed means the message comes again.
    pub errors: u64,
    /// Messages fetched from the source and not yet settled there.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Exponential backoff between failed attempts: `initial` doubling up to `max`.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }
    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = now.saturating_mul(2).min(self.max);
        now
    }
    fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Sleeps `delay`, or less when the stop signal comes.
async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) {
    if *stop.borrow() {
        return;
    }
    let mut sleep = pin!(tokio::time::sleep(delay));
    let mut changed = pin!(stop.changed());
    poll_fn(|cx| {
        if sleep.as_mut().poll(cx).is_ready() || changed.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Lane<'b> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'b>>;

/// Moves messages from queues of `source` to `destination` by its [`Route`]s.
///
/// Each route runs `lanes` loops (1 by default, which keeps the source's order); a loop
/// fetches up to `batch` messages, publishes them to the destination (one
/// [`Broker::publish_batch`] per run of messages to the same queue), waits for the
/// confirmation, and only then acknowledges them upstream with one
/// [`Broker::settle_batch`]. At most `lanes × batch` messages per route are in flight.
///
/// Errors: a message the destination can never take (see [`BridgeStats::failed`]) is
/// rejected to the source's dead letters with the reason, and the rest of its batch goes
/// on; any other failed publish is tried again `retries` times with a doubling pause, then
/// the batch is handed back to the source with a delay ([`Settlement::nack_after`]) and the
/// loop pauses (the backoff doubles up to its maximum while failures continue). Failed
/// fetches pause the same way; adapters reconnect on their next call.
///
/// [`run`](Self::run) drains on shutdown: no more fetches, the batches in hand are
/// published and settled, then it returns.
pub struct Bridge<'a, S, D> {
    source: &'a S,
    destination: &'a D,
    routes: Vec<Route>,
    consumer: String,
    batch: usize,
    lanes: usize,
    poll: Duration,
    retries: u32,
    backoff: (Duration, Duration),
    counters: Counters,
    declared: Mutex<HashSet<String>>,
}

impl<S: Broker, D: Broker> std::fmt::Debug for Bridge<'_, S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("source", &self.source.name())
            .field("destination", &self.destination.name())
            .field("routes", &self.routes)
            .field("consumer", &self.consumer)
            .field("batch", &self.batch)
            .field("lanes", &self.lanes)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<'a, S: Broker, D: Broker> Bridge<'a, S, D> {
    /// A bridge from `source` to `destination` without routes; consumer name `bridge`,
    /// batches of 64, one lane per route, fetches waiting up to 100 ms, 3 publish retries,
    /// backoff from 100 ms doubling to 5 s.
    pub fn new(source: &'a S, destination: &'a D) -> Self {
        Self {
            source,
            destination,
            routes: Vec::new(),
            consumer: "bridge".to_owned(),
            batch: 64,
            lanes: 1,
            poll: Duration::from_millis(100),
            retries: 3,
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            counters: Counters::default(),
            declared: Mutex::new(HashSet::new()),
        }
    }

    /// Adds a route.
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// The consumer name at the source (lane `i` fetches as `<name>-<i>`). Keep it across
    /// restarts, so a restarted bridge resumes the same consumer (MQTT session, Redis
    /// consumer) and gets back what the old one held.
    #[must_use]
    pub fn consumer(mut self, name: &str) -> Self {
        name.clone_into(&mut self.consumer);
        self
    }

    /// The most messages fetched, published and settled together (at least 1).
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Concurrent loops per route (at least 1). More than one raises throughput and gives
    /// up the source's order.
    #[must_use]
    pub fn lanes(mut self, lanes: usize) -> Self {
        self.lanes = lanes.max(1);
        self
    }

    /// How long one fetch waits for messages; it bounds how long a drain takes to start.
    #[must_use]
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Publish attempts after the first before a batch is handed back to the source.
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The pause after a failure: `initial`, doubling while failures go on, at most `max`.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max.max(initial));
        self
    }

    /// The routes.
    #[must_use]
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The counters now (each read on its own).
    #[must_use]
    pub fn stats(&self) -> BridgeStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        BridgeStats {
            forwarded: load(&c.forwarded),
            failed: load(&c.failed),
            retried: load(&c.retried),
            errors: load(&c.errors),
            in_flight: load(&c.in_flight),
        }
    }

    /// Declares the source queues (and binds their subjects) and the destination queues
    /// with fixed names, then forwards until `shutdown` completes, then drains: nothing
    /// more is fetched, what is in hand is published and settled. Failures of the brokers
    /// are retried with backoff (setup included) and never end the run.
    ///
    /// # Errors
    /// A route that can never work: an invalid template or queue name, a subject pattern
    /// the source cannot bind ([`Error::Unsupported`], [`Error::InvalidSubject`]).
    pub async fn run<F: Future<Output = ()>>(&self, shutdown: F) -> Result<BridgeStats> {
        let (stop, stopped) = watch::channel(false);
        let mut shutdown = pin!(shutdown);
        let mut fired = false;
        let mut setup = pin!(self.setup(stopped.clone()));
        let ready = poll_fn(|cx| {
            if !fired && shutdown.as_mut().poll(cx).is_ready() {
                fired = true;
                stop.send_replace(true);
            }
            setup.as_mut().poll(cx)
        })
        .await?;
        if !ready {
            return Ok(self.stats());
        }
        let mut lanes: Vec<Option<Lane<'_>>> = Vec::new();
        for route in &self.routes {
            for lane in 0..self.lanes {
                let future: Lane<'_> = Box::pin(self.lane(route, lane, stopped.clone()));
                lanes.push(Some(future));
            }
        }
        let mut first_error = None;
        poll_fn(|cx| {
            if !fired && shutdown.as_mut().poll(cx).is_ready() {
                fired = true;
                stop.send_replace(true);
            }
            let mut running = false;
            for slot in &mut lanes {
                let Some(lane) = slot else { continue };
                match lane.as_mut().poll(cx) {
                    Poll::Pending => running = true,
                    Poll::Ready(outcome) => {
                        *slot = None;
                        if let Err(e) = outcome {
                            // One route cannot work: stop the others too.
                            first_error.get_or_insert(e);
                            stop.send_replace(true);
                        }
                    }
                }
            }
            if running {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(self.stats()),
        }
    }

    /// Declares and binds every route, retrying what may pass; `false` when stopped first.
    async fn setup(&self, mut stop: watch::Receiver<bool>) -> Result<bool> {
        for route in &self.routes {
            route.validate()?;
            let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
            loop {
                if *stop.borrow() {
                    return Ok(false);
                }
                match self.setup_route(route).await {
                    Ok(()) => break,
                    Err(e) if is_permanent(&e) => return Err(e),
                    Err(_) => {
                        self.counters.errors.fetch_add(1, Ordering::Relaxed);
                        pause(backoff.next(), &mut stop).await;
                    }
                }
            }
        }
        Ok(true)
    }

    async fn setup_route(&self, route: &Route) -> Result<()> {
        self.source
            .declare(&route.from, &route.source_config)
            .await?;
        for subject in &route.subjects {
            self.source.bind(subject, &route.from).await?;
        }
        if let Target::Queue(name) = &route.to
            && !name.contains('{')
        {
            self.declare_target(name, &route.target_config).await?;
        }
        Ok(())
    }

    async fn declare_target(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        if lock(&self.declared).contains(queue) {
            return Ok(());
        }
        self.destination.declare(queue, config).await?;
        let mut declared = lock(&self.declared);
        if declared.len() >= MAX_DECLARED {
            declared.clear();
        }
        declared.insert(queue.to_owned());
        Ok(())
    }

    /// One loop of a route: fetch, forward, settle, until stopped.
    async fn lane(
        &self,
        route: &Route,
        lane: usize,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let consumer = format!("{}-{lane}", self.consumer);
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let batch = match self
                .source
                .fetch(&route.from, &consumer, self.batch, self.poll)
                .await
            {
                Ok(batch) => batch,
                Err(e) if is_permanent(&e) => return Err(e),
                Err(_) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    pause(backoff.next(), &mut stop).await;
                    continue;
                }
            };
            if batch.is_empty() {
                continue;
            }
            add(&self.counters.in_flight, batch.len());
            let outcome = self.forward(route, &batch, &mut backoff).await;
            self.counters
                .in_flight
                .fetch_sub(u64::try_from(batch.len()).unwrap_or(0), Ordering::Relaxed);
            match outcome {
                Some(delay) => pause(delay, &mut stop).await,
                None => {
                    backoff.reset();
                    // Brokers that answer at once (the embedded one) would otherwise keep
                    // this task running until the source is empty, and the shutdown signal
                    // and other tasks would wait.
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    /// Publishes a fetched batch and settles every delivery of it; `Some(pause)` when the
    /// destination kept failing and the rest was handed back to the source.
    async fn forward(
        &self,
        route: &Route,
        batch: &[Delivery],
        backoff: &mut Backoff,
    ) -> Option<Duration> {
        // Runs of consecutive deliveries bound for the same destination, in order.
        let mut runs: Vec<(usize, String, Vec<Envelope>)> = Vec::new();
        for (index, delivery) in batch.iter().enumerate() {
            match self.prepare(route, delivery) {
                Ok((name, envelope)) => match runs.last_mut() {
                    Some((start, last, envelopes))
                        if *last == name && *start + envelopes.len() == index =>
                    {
                        envelopes.push(envelope);
                    }
                    _ => runs.push((index, name, vec![envelope])),
                },
                Err(e) => self.reject(delivery, &e).await,
            }
        }
        let mut runs = runs.into_iter();
        while let Some((start, name, envelopes)) = runs.next() {
            let deliveries = batch
                .get(start..start + envelopes.len())
                .unwrap_or_default();
            match self.publish(route, &name, &envelopes).await {
                Ok(()) => self.ack(deliveries).await,
                Err(e) if is_permanent(&e) && deliveries.len() > 1 => {
                    // Find the message that cannot go: one at a time.
                    for (delivery, envelope) in deliveries.iter().zip(envelopes) {
                        match self
                            .publish(route, &name, std::slice::from_ref(&envelope))
                            .await
                        {
                            Ok(()) => self.ack(std::slice::from_ref(delivery)).await,
                            Err(e) if is_permanent(&e) => self.reject(delivery, &e).await,
                            Err(_) => {
                                let delay = backoff.next();
                                let held = std::iter::once(delivery);
                                let later = runs.flat_map(|(s, _, e)| {
                                    batch.get(s..s + e.len()).unwrap_or_default()
                                });
                                self.hand_back(held.chain(later), delay).await;
                                return Some(delay);
                            }
                        }
                    }
                }
                Err(e) if is_permanent(&e) => {
                    for delivery in deliveries {
                        self.reject(delivery, &e).await;
                    }
                }
                Err(_) => {
                    let delay = backoff.next();
                    let later =
                        runs.flat_map(|(s, _, e)| batch.get(s..s + e.len()).unwrap_or_default());
                    self.hand_back(deliveries.iter().chain(later), delay).await;
                    return Some(delay);
                }
            }
        }
        None
    }

    /// The destination name and the envelope to publish for one delivery.
    fn prepare(&self, route: &Route, delivery: &Delivery) -> Result<(String, Envelope)> {
        let mut envelope = delivery.envelope.clone();
        if let Some(name) = &route.id_header
            && let Some(id) = envelope
                .headers()
                .get(name)
                .and_then(|v| v.parse::<MessageId>().ok())
        {
            envelope = envelope.with_id(id);
        }
        let attempt = envelope.attempt();
        if attempt > 1 {
            // Informational: a message that already has 64 headers goes without it.
            let _ = envelope
                .headers_mut()
                .insert(SOURCE_ATTEMPT, attempt.to_string());
        }
        let name = route.destination(envelope.headers().get(SUBJECT))?;
        Ok((name, envelope))
    }

    /// Publishes to the destination, retrying what may pass with a doubling pause.
    async fn publish(&self, route: &Route, name: &str, envelopes: &[Envelope]) -> Result<()> {
        let mut pause = self.backoff.0;
        let mut attempt = 0;
        loop {
            let outcome = match &route.to {
                Target::Queue(_) => match self.declare_target(name, &route.target_config).await {
                    Ok(()) => {
                        self.destination
                            .publish_batch(name, envelopes.to_vec())
                            .await
                    }
                    Err(e) => Err(e),
                },
                Target::Topic(_) => {
                    let mut outcome = Ok(());
                    for envelope in envelopes {
                        outcome = self.destination.publish_topic(name, envelope.clone()).await;
                        if outcome.is_err() {
                            break;
                        }
                    }
                    outcome
                }
            };
            match outcome {
                Ok(()) => {
                    add(&self.counters.forwarded, envelopes.len());
                    return Ok(());
                }
                Err(e) if is_permanent(&e) => return Err(e),
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    if matches!(e, Error::UnknownQueue(_)) {
                        // The destination forgot it (a restarted embedded broker): declare
                        // again.
                        lock(&self.declared).remove(name);
                    }
                    if attempt >= self.retries {
                        return Err(e);
                    }
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2).min(self.backoff.1);
                }
            }
        }
    }

    async fn ack(&self, deliveries: &[Delivery]) {
        for outcome in self.source.settle_batch(deliveries, Settlement::Ack).await {
            if outcome.is_err() {
                // Not acknowledged: it comes again and is forwarded again, with its id.
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn reject(&self, delivery: &Delivery, error: &Error) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        let reason = format!("bridge to {}: {error}", self.destination.name());
        if self
            .source
            .settle(delivery, Settlement::reject(reason))
            .await
            .is_err()
        {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn hand_back<'d>(&self, deliveries: impl Iterator<Item = &'d Delivery>, delay: Duration) {
        let deliveries: Vec<&Delivery> = deliveries.collect();
        add(&self.counters.retried, deliveries.len());
        for delivery in deliveries {
            if self
                .source
                .settle(delivery, Settlement::nack_after(delay))
                .await
                .is_err()
            {
                // It passes its ack deadline instead and comes again.
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn templates_fill_from_the_matched_subject() {
        let route = Route::to_queue("in", "t-{1}-{2}")
            .subject("sensors.*.>")
            .subject("other.*");
        route.validate().unwrap();
        assert_eq!(
            route.destination(Some("sensors.kitchen.temp.c")).unwrap(),
            "t-kitchen-temp.c"
        );
        assert!(route.destination(Some("other.x")).is_err()); // no {2}
        assert!(route.destination(Some("sensors.kitchen")).is_err()); // `>` needs a token
        assert!(route.destination(None).is_err());
        let whole = Route::to_topic("in", "copy.{subject}");
        assert_eq!(whole.destination(Some("a.b")).unwrap(), "copy.a.b");
        assert_eq!(
            Route::to_queue("in", "plain").destination(None).unwrap(),
            "plain"
        );
        for bad in ["", "x-{0}", "x-{", "x-}", "x-{name}", "{1}}"] {
            assert!(Route::to_queue("in", bad).validate().is_err(), "{bad}");
        }
        assert_eq!(capture("a.*.c", "a.b.c"), Some(vec!["b".to_owned()]));
        assert_eq!(capture("a.*.c", "a.b.c.d"), None);
        assert_eq!(capture("a.*.c", "a.b"), None);
        assert_eq!(capture("a.>", "a.b.c"), Some(vec!["b.c".to_owned()]));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let seen: Vec<u128> = (0..4).map(|_| b.next().as_millis()).collect();
        assert_eq!(seen, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }
}
