//! NATS JetStream backend (feature `nats`).
//!
//! Per queue, under the broker's name prefix: a work-queue stream `Q_<prefix><queue>` on
//! subject `bkq.<prefix><queue>` with one durable pull consumer `bk` (explicit acks, the
//! queue's ack wait), and a stream `D_<prefix><queue>` on `bkd.<prefix><queue>` for dead
//! letters. Publishing waits for the stream's acknowledgement and sets `Nats-Msg-Id` to the
//! message id, so a retried publish within the stream's duplicate window is stored once.
//! A nack is `-NAK` with the backoff as its delay; JetStream counts deliveries, and a
//! message over its limit is copied to the dead-letter stream and terminated (`+TERM`).
//!
//! On the wire a message to a queue carries its user headers as NATS headers and its id
//! once, as `Nats-Msg-Id`; its attempt and publication time travel in each delivery's
//! metadata (the delivery count and the time the stream stored it, in the `$JS.ACK` reply
//! subject), not as headers. A message from another client may carry `bk-id`,
//! `bk-attempt` and `bk-published-at` instead (they win); one with neither `bk-id` nor a
//! UUID as `Nats-Msg-Id` gets an id made of the time the stream stored it and its place
//! in the stream (the same at every delivery). Replies, dead letters and topic messages
//! carry all three `bk-` headers.
//!
//! A server killed uncleanly can bring back messages it had already removed when they were
//! acked, below the consumer's ack floor, where they are never delivered; `declare` and
//! `pending` purge them.
//!
//! Per-key ordering ([`ORDERING_KEY`](crate::ORDERING_KEY)): a message with a key goes to a
//! second work-queue stream `K_<prefix><queue>`, on subject `bkk.<prefix><queue>.<p>` where
//! `p` is the key's partition, CRC-32 (IEEE) of the key's UTF-8 bytes modulo the queue's
//! partition count ([`NatsBroker::key_partitions`], 16 by default, fixed by the first
//! declaration and kept in the stream's description). Each partition has a durable pull
//! consumer `p<p>` with `max_ack_pending` 1: the server hands out the next message of a
//! partition only after the one before is acked or terminated, to whichever process asks,
//! and a nacked or expired one is redelivered before the later ones. Keys that share a
//! partition wait for each other (head-of-line blocking, as with Kafka's partitions).
//! Messages without a key take the path above, unchanged; the partitions are polled only
//! while the keyed stream holds messages (checked at most once a second per queue).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;

use crate::broker::DeliveryToken;
use crate::held::Held;
use crate::ordering::{
    KEYED_CHECK, KeyedWatch, MAX_KEY_PARTITIONS, check_key_partitions, key_partition, ordering_key,
    refuse_ordering_key,
};
use crate::request_reply::{ReplyRoute, ReplyWaiters, prepare_reply, prepare_request};
use crate::retry::JitterSource;
use crate::settlement::{decide, decide_expired};
use crate::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, Envelope, Error, QueueConfig, Result,
    Settlement, check_queue_name,
};

const CONSUMER: &str = "bk";
/// How long past a fetch's wait its batch is read before giving up on it: a pull request
/// lost with a restarted server is never answered.
const BATCH_GRACE: Duration = Duration::from_secs(5);
/// The longest an acknowledgement waits for the connection (it is queued while the client
/// reconnects).
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How the keyed stream's description records its partition count.
const PARTITIONS_DESCRIPTION: &str = "broker-core key partitions: ";
/// The longest pause between two polls of the partitions while a fetch waits.
const KEYED_POLL_MAX: Duration = Duration::from_millis(200);
/// How long a partition's pull request waits when the partition has nothing to give.
/// A `no_wait` request without an expiry is never answered while the partition's one
/// message is out (the server keeps it waiting, and would hand the next message to it
/// after we stopped listening), so each request carries this expiry and is answered with
/// a message or, once it passed, a `408` status.
const PARTITION_EXPIRES: Duration = Duration::from_millis(5);

#[derive(Debug)]
struct Queue {
    config: QueueConfig,
    subject: String,
    dead_stream: String,
    dead_subject: String,
    consumer: consumer::PullConsumer,
    keyed: Keyed,
}

/// A queue's messages with an ordering key: a stream with one consumer per partition.
#[derive(Debug)]
struct Keyed {
    stream: String,
    /// `bkk.<prefix><queue>`; partition `p` is `<subject>.<p>`.
    subject: String,
    partitions: u32,
    /// Whether fetches poll the partitions (the keyed stream holds messages).
    watch: KeyedWatch,
    /// Rounds so far, to alternate which kind (keyed or not) is asked first.
    turn: AtomicUsize,
    /// The next partition to ask, going round.
    cursor: AtomicUsize,
}

impl Queue {
    /// The subject `envelope` is published on: its key's partition, or the queue's.
    fn subject_for(&self, envelope: &Envelope) -> String {
        match ordering_key(envelope) {
            None => self.subject.clone(),
            Some(key) => {
                self.keyed.watch.published();
                let partition = key_partition(key, self.keyed.partitions);
                format!("{}.{partition}", self.keyed.subject)
            }
        }
    }
}

/// A [`Broker`] on NATS JetStream.
pub struct NatsBroker {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    /// Topic streams this process created or checked.
    topics: Mutex<HashSet<String>>,
    jitter: Mutex<JitterSource>,
    held: Held,
    /// The shared reply subscription to `<prefix>.*`, made by the first request: a
    /// subscription per request costs a `SUB` and an `UNSUB` each. A task routes each reply
    /// by its subject's last token. async-nats subscribes again after a reconnect; should
    /// the subscription end anyway, the next request makes a new one.
    replies: ReplyRoute<String, async_nats::Message>,
    /// Partitions of the keyed stream of a queue declared from now on.
    key_partitions: u32,
}

/// The requests waiting for replies on one reply subscription, by the last token of
/// their reply subject.
type Waiters = ReplyWaiters<String, async_nats::Message>;

/// Hands each reply on `subscriber` to the request waiting for it, until `stop` is dropped
/// or the subscription ends.
async fn route_replies(
    mut subscriber: async_nats::Subscriber,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    waiters: Arc<Waiters>,
) {
    loop {
        let next = std::future::poll_fn(|cx| {
            if Pin::new(&mut stop).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            subscriber.poll_next_unpin(cx)
        })
        .await;
        let Some(message) = next else { break };
        if let Some(token) = message.subject.as_str().rsplit('.').next() {
            let token = token.to_owned();
            waiters.deliver(token.as_str(), message);
        }
    }
    // Their reply subject is gone: they fail now rather than at their timeout, and so
    // does a request that took this subscription's prefix just before and registers
    // after (the end and the wake-up are one step under the waiters' lock).
    waiters.close();
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("prefix", &self.prefix)
            .field("replies", &self.replies.waiters())
            .finish_non_exhaustive()
    }
}

/// `get_or_create_stream`, tried once more after a short pause when the server could not
/// make the stream's store (`STREAM_CREATE`, 10049). nats-server 2.9 removes an account's
/// stream directory when its last stream is deleted; a stream created at that moment
/// fails with "could not create storage directory", and the next try finds the directory
/// made again.
async fn create_stream(js: &jetstream::Context, config: stream::Config) -> Result<stream::Stream> {
    match js.get_or_create_stream(config.clone()).await {
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::CreateStreamErrorKind::JetStream(ref j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_CREATE
            ) =>
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            js.get_or_create_stream(config).await.map_err(backend)
        }
        other => other.map_err(backend),
    }
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "nats",
        detail: e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Which of the envelope's reserved values a published message carries as headers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// To a queue's stream, read back only through its consumers: the id travels once, as
    /// `Nats-Msg-Id` (the stream's duplicate key), and the attempt (0) and publication time
    /// not at all, since each delivery's metadata (its `$JS.ACK` reply subject) carries the
    /// delivery count and the time the stream stored the message. Fewer header bytes for
    /// the server to parse, store and send per message.
    Queue,
    /// `bk-id`, `bk-attempt` and `bk-published-at` (replies, dead letters, redriven
    /// messages), and with `dedup` the id again as `Nats-Msg-Id`.
    Full { dedup: bool },
}

/// The message's duplicate key, set by [`Wire::Queue`] and [`Wire::Full`] with `dedup`.
const MSG_ID: &str = "Nats-Msg-Id";

fn to_headers(envelope: &Envelope, wire: Wire) -> HeaderMap {
    let mut headers = HeaderMap::new();
    match wire {
        Wire::Queue => {
            for (name, value) in envelope.headers().iter() {
                headers.insert(name, value);
            }
            headers.insert(MSG_ID, envelope.id().to_string());
        }
        Wire::Full { dedup } => {
            for (name, value) in envelope.wire_pairs() {
                headers.insert(name, value.as_ref());
            }
            if dedup {
                headers.insert(MSG_ID, envelope.id().to_string());
            }
        }
    }
    headers
}

/// What a consumed message's delivery metadata says in place of missing reserved headers.
struct Delivered {
    /// When the stream stored the message.
    stored_at: SystemTime,
    /// The stream and its sequence of the message, for an id when it carries none.
    stream: u32,
    sequence: u64,
}

/// The id of a message that carries neither `bk-id` nor a UUID as `Nats-Msg-Id` (another
/// client's): a UUIDv7 of the time the stream stored it, whose other bits are the stream
/// sequence and a hash of the stream's name, so every delivery of it has the same id.
fn stored_id(delivered: &Delivered) -> crate::MessageId {
    let millis = crate::envelope::unix_millis(delivered.stored_at);
    let mut bits = [0u8; 10];
    let (seq, stream) = bits.split_at_mut(8);
    seq.copy_from_slice(&delivered.sequence.to_be_bytes());
    stream.copy_from_slice(&delivered.stream.to_be_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits)
        .into_uuid()
        .into()
}

/// Rebuilds an envelope from NATS headers, leaving out the server's own `Nats-*` ones.
///
/// A missing `bk-id` is taken from `Nats-Msg-Id` when that is a UUID; with `delivered`
/// (a message from a consumer), a missing `bk-attempt` is 0 (the delivery count is added
/// by the caller), a missing `bk-published-at` the time the stream stored the message,
/// and a message without any id gets one from its place in the stream.
fn from_headers(
    headers: Option<&HeaderMap>,
    payload: bytes::Bytes,
    delivered: Option<&Delivered>,
) -> Result<Envelope> {
    let empty = HeaderMap::new();
    let headers = headers.unwrap_or(&empty);
    let mut fallback = crate::envelope::Reserved::default();
    if headers.get(crate::envelope::H_ID).is_none() {
        fallback.id = headers
            .get(MSG_ID)
            .and_then(|v| v.as_str().parse::<crate::MessageId>().ok())
            .or_else(|| delivered.map(stored_id));
    }
    if let Some(delivered) = delivered {
        fallback.attempt = Some(0);
        fallback.published_at = Some(delivered.stored_at);
    }
    let pairs = headers.iter().filter_map(|(name, values)| {
        let name: &str = name.as_ref();
        if name.len() >= 5
            && name
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("nats-"))
        {
            return None;
        }
        values.first().map(|v| (name, v.as_str()))
    });
    Envelope::from_pairs_or(pairs, payload, fallback)
}

/// Removes the messages at and below the consumer's ack floor `floor` (all acked).
async fn purge_acked(stream: &stream::Stream, floor: u64) -> Result<()> {
    if floor > 0 {
        stream
            .purge()
            .sequence(floor.saturating_add(1))
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// One pull request for up to `max` messages: answered at once with what is ready
/// (`wait` `None`), or held by the server until `max` came or `wait` ran out.
async fn pull(
    consumer: &consumer::PullConsumer,
    max: usize,
    wait: Option<Duration>,
) -> Result<Vec<jetstream::Message>> {
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default() + BATCH_GRACE;
    let request = async {
        match wait {
            None => consumer.fetch().max_messages(max).messages().await,
            Some(wait) => {
                consumer
                    .batch()
                    .max_messages(max)
                    .expires(wait)
                    .messages()
                    .await
            }
        }
    };
    let mut batch = tokio::time::timeout_at(deadline, request)
        .await
        .map_err(|_| Error::Timeout(wait.unwrap_or_default() + BATCH_GRACE))?
        .map_err(backend)?;
    let mut out = Vec::new();
    // The no-wait fetch has no timeout of its own: a request the server never answers
    // (lost in a restart) ends the batch at the deadline, with what came.
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, batch.next()).await {
        out.push(message.map_err(backend)?);
    }
    Ok(out)
}

/// Up to `max` messages of the queue's own consumer, waiting up to `wait` for the first.
/// A waiting pull for `max` is held by the server until `max` came or the wait ran out,
/// so a lone message would wait the whole `wait`: take what is ready without waiting, and
/// only when nothing is, wait for the first message alone.
async fn pull_unkeyed(
    consumer: &consumer::PullConsumer,
    max: usize,
    wait: Duration,
) -> Result<Vec<jetstream::Message>> {
    Ok(if wait < Duration::from_millis(10) {
        pull(consumer, max, None).await?
    } else if max == 1 {
        pull(consumer, 1, Some(wait)).await?
    } else {
        let ready = pull(consumer, max, None).await?;
        if ready.is_empty() {
            pull(consumer, 1, Some(wait)).await?
        } else {
            ready
        }
    })
}

impl NatsBroker {
    /// The partitions a queue spreads its keyed messages over unless
    /// [`key_partitions`](Self::key_partitions) says otherwise.
    pub const DEFAULT_KEY_PARTITIONS: u32 = 16;

    /// Connects to `url` (`nats://host:port`); stream names start with `prefix`, which
    /// may use `A-Z a-z 0-9 - _` (give each application, or each test, its own).
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`] for a bad prefix, [`Error::Backend`] when the server
    /// cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        if !prefix.is_empty() {
            check_queue_name(prefix)?;
        }
        let client = async_nats::connect(url).await.map_err(backend)?;
        let js = jetstream::new(client.clone());
        Ok(Self {
            client,
            js,
            prefix: prefix.to_owned(),
            queues: Mutex::new(HashMap::new()),
            topics: Mutex::new(HashSet::new()),
            jitter: Mutex::new(JitterSource::from_entropy()),
            held: Held::default(),
            replies: ReplyRoute::default(),
            key_partitions: Self::DEFAULT_KEY_PARTITIONS,
        })
    }

    /// How many partitions a queue declared from now on spreads its keyed messages over
    /// (1 to 256; [`Self::DEFAULT_KEY_PARTITIONS`] by default). Messages whose keys share a
    /// partition are handed out one at a time, so this bounds how many keys make progress
    /// at once; each partition is a durable consumer on the server. The first declaration
    /// of a queue fixes its count (every process must place a key alike): a queue that
    /// exists keeps the count it has.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside 1 to 256.
    pub fn key_partitions(mut self, partitions: u32) -> Result<Self> {
        self.key_partitions = check_key_partitions(partitions)?;
        Ok(self)
    }

    /// The prefix of the shared reply subscription and its waiters, subscribed on first
    /// use and again after it ended.
    async fn reply_inbox(&self) -> Result<(Arc<str>, Arc<Waiters>)> {
        self.replies
            .get_or_make(|waiters, stopped| async move {
                let prefix: Arc<str> = self.client.new_inbox().into();
                let subscriber = self
                    .client
                    .subscribe(format!("{prefix}.*"))
                    .await
                    .map_err(backend)?;
                tokio::spawn(route_replies(subscriber, stopped, waiters));
                Ok(prefix)
            })
            .await
    }

    /// Requests waiting for a reply now (each entry goes when its request returns or is
    /// dropped).
    #[cfg(test)]
    fn waiting_requests(&self) -> usize {
        self.replies.waiters().map_or(0, |waiters| waiters.len())
    }

    fn queue(&self, queue: &str) -> Result<Arc<Queue>> {
        lock(&self.queues)
            .get(queue)
            .map(Arc::clone)
            .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))
    }

    async fn ack(&self, reply: &str, body: bytes::Bytes) -> Result<()> {
        self.send_ack(reply, body).await?;
        self.flush().await
    }

    /// Queues an acknowledgement on the connection (written with the next flush).
    async fn send_ack(&self, reply: &str, body: bytes::Bytes) -> Result<()> {
        let send = self.client.publish(reply.to_owned(), body);
        tokio::time::timeout(ACK_TIMEOUT, send)
            .await
            .map_err(|_| Error::Timeout(ACK_TIMEOUT))?
            .map_err(backend)
    }

    /// Waits until what was queued on the connection is written.
    async fn flush(&self) -> Result<()> {
        tokio::time::timeout(ACK_TIMEOUT, self.client.flush())
            .await
            .map_err(|_| Error::Timeout(ACK_TIMEOUT))?
            .map_err(backend)
    }

    /// Settles one delivery; a plain acknowledgement is queued on the connection, not
    /// flushed (the caller flushes).
    async fn settle_unflushed(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<Disposition> {
        let DeliveryToken::Nats { reply, consumer } = &delivery.token else {
            return Err(Error::StaleDelivery);
        };
        let q = self.queue(&delivery.queue)?;
        let unit = lock(&self.jitter).next_unit();
        let attempt = delivery.envelope.attempt();
        let disposition = decide(settlement, attempt, q.config.get_retry(), unit);
        match &disposition {
            Disposition::Removed => {
                self.send_ack(reply, bytes::Bytes::from_static(b"+ACK"))
                    .await?;
            }
            Disposition::Extended => {
                self.send_ack(reply, bytes::Bytes::from_static(b"+WPI"))
                    .await?;
            }
            Disposition::Retry { delay } => {
                let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
                self.send_ack(reply, format!("-NAK {{\"delay\": {nanos}}}").into())
                    .await?;
            }
            Disposition::DeadLetter { reason } => {
                let letter = DeadLetter::new(
                    &delivery.queue,
                    delivery.envelope.clone(),
                    reason.clone(),
                    attempt,
                    SystemTime::now(),
                );
                self.dead_letter(&q, &delivery.queue, reply, letter).await?;
            }
        }
        if q.config.get_prefetch().is_some() {
            if disposition == Disposition::Extended {
                let ack_wait = q.config.get_ack_wait();
                self.held.hold(&delivery.queue, consumer, reply, ack_wait);
            } else {
                self.held.release(&delivery.queue, consumer, reply);
            }
        }
        Ok(disposition)
    }

    async fn dead_letter(
        &self,
        q: &Queue,
        queue: &str,
        reply: &str,
        letter: DeadLetter,
    ) -> Result<()> {
        self.js
            .publish_with_headers(
                q.dead_subject.clone(),
                to_headers(&letter.envelope, Wire::Full { dedup: false }),
                letter.envelope.payload().clone(),
            )
            .await
            .map_err(backend)?
            .await
            .map_err(backend)?;
        let _ = queue;
        self.ack(reply, bytes::Bytes::from_static(b"+TERM")).await
    }

    /// Turns pulled messages into deliveries; one past its delivery limit, or unreadable,
    /// goes to the dead letters instead.
    async fn deliveries(
        &self,
        q: &Queue,
        queue: &str,
        consumer: &str,
        messages: Vec<jetstream::Message>,
    ) -> Result<Vec<Delivery>> {
        let prefetch = q.config.get_prefetch();
        let mut out = Vec::new();
        for message in messages {
            let Some(reply) = message.reply.as_ref().map(ToString::to_string) else {
                continue;
            };
            let info = message.info().map_err(backend)?;
            let delivered = u32::try_from(info.delivered).unwrap_or(u32::MAX);
            let metadata = Delivered {
                stored_at: SystemTime::from(info.published),
                stream: crc32fast::hash(info.stream.as_bytes()),
                sequence: info.stream_sequence,
            };
            let envelope = from_headers(
                message.headers.as_ref(),
                message.payload.clone(),
                Some(&metadata),
            );
            let mut envelope = match envelope {
                Ok(e) => e,
                Err(e) => {
                    let stub = Envelope::new(message.payload.clone());
                    let letter = DeadLetter::new(
                        queue,
                        stub,
                        format!("unreadable headers: {e}"),
                        delivered,
                        SystemTime::now(),
                    );
                    self.dead_letter(q, queue, &reply, letter).await?;
                    continue;
                }
            };
            let previous = envelope
                .attempt()
                .saturating_add(delivered.saturating_sub(1));
            if delivered > 1
                && let Disposition::DeadLetter { reason } =
                    decide_expired(previous, q.config.get_retry())
            {
                envelope.set_attempt(previous);
                let letter = DeadLetter::new(queue, envelope, reason, previous, SystemTime::now());
                self.dead_letter(q, queue, &reply, letter).await?;
                continue;
            }
            envelope.set_attempt(previous.saturating_add(1));
            envelope.set_delivered_at(Some(SystemTime::now()));
            if prefetch.is_some() {
                self.held
                    .hold(queue, consumer, &reply, q.config.get_ack_wait());
            }
            out.push(Delivery {
                queue: queue.into(),
                envelope,
                token: DeliveryToken::Nats {
                    reply,
                    consumer: consumer.to_owned(),
                },
            });
        }
        Ok(out)
    }

    /// Creates the queue's keyed stream and its partition consumers (or checks they
    /// exist), purging what an unclean server stop brought back below a partition's ack
    /// floor.
    async fn declare_keyed(&self, name: &str, config: &QueueConfig) -> Result<Keyed> {
        let stream_name = format!("K_{name}");
        let subject = format!("bkk.{name}");
        let stream = create_stream(
            &self.js,
            stream::Config {
                name: stream_name.clone(),
                subjects: vec![format!("{subject}.*")],
                retention: stream::RetentionPolicy::WorkQueue,
                description: Some(format!("{PARTITIONS_DESCRIPTION}{}", self.key_partitions)),
                ..Default::default()
            },
        )
        .await?;
        // Every process must place a key in the same partition: the count the stream was
        // made with wins.
        let partitions = stream
            .cached_info()
            .config
            .description
            .as_deref()
            .and_then(|d| d.strip_prefix(PARTITIONS_DESCRIPTION))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=MAX_KEY_PARTITIONS).contains(n))
            .unwrap_or(self.key_partitions);
        for partition in 0..partitions {
            let durable = format!("p{partition}");
            let filter = format!("{subject}.{partition}");
            let consumer: consumer::PullConsumer = stream
                .get_or_create_consumer(
                    &durable,
                    consumer::pull::Config {
                        durable_name: Some(durable.clone()),
                        filter_subject: filter.clone(),
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait: config.get_ack_wait(),
                        max_deliver: -1,
                        // The partition's order: one message out at a time, across every
                        // process, and a redelivery before anything newer.
                        max_ack_pending: 1,
                        ..Default::default()
                    },
                )
                .await
                .map_err(backend)?;
            let floor = consumer.cached_info().ack_floor.stream_sequence;
            if floor > 0 {
                stream
                    .purge()
                    .filter(filter)
                    .sequence(floor.saturating_add(1))
                    .await
                    .map_err(backend)?;
            }
        }
        Ok(Keyed {
            stream: stream_name,
            subject,
            partitions,
            watch: KeyedWatch::new(),
            turn: AtomicUsize::new(0),
            cursor: AtomicUsize::new(0),
        })
    }

    /// Whether the partitions need polling: the keyed stream held messages when last
    /// checked (at most [`KEYED_CHECK`] ago), or this handle published a keyed one since.
    async fn keyed_waiting(&self, q: &Queue) -> Result<bool> {
        q.keyed
            .watch
            .waiting(|| async {
                let stream = self.js.get_stream(&q.keyed.stream).await.map_err(backend)?;
                Ok::<bool, Error>(stream.cached_info().state.messages > 0)
            })
            .await
    }

    /// Up to `max` messages from the queue's own consumer and its partitions, polling
    /// them until `deadline` while none is ready (the unkeyed ones are waited for on the
    /// server between sweeps of the partitions).
    async fn pull_keyed(
        &self,
        q: &Queue,
        max: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<jetstream::Message>> {
        let partitions = usize::try_from(q.keyed.partitions).unwrap_or(1).max(1);
        let mut pause = Duration::from_millis(10);
        let mut swept = 0;
        loop {
            let turn = q.keyed.turn.fetch_add(1, Ordering::Relaxed);
            // Every other round asks the partitions first, so neither kind starves.
            let unkeyed_first = turn.is_multiple_of(2);
            let mut messages = Vec::new();
            if unkeyed_first {
                messages = pull(&q.consumer, max, None).await?;
            }
            if messages.len() < max {
                let (more, asked) = self.pull_partitions(&q.keyed, max - messages.len()).await?;
                messages.extend(more);
                swept += asked;
            }
            if !unkeyed_first && messages.len() < max {
                messages.extend(pull(&q.consumer, max - messages.len(), None).await?);
            }
            let now = tokio::time::Instant::now();
            if !messages.is_empty() || now >= deadline {
                return Ok(messages);
            }
            if swept < partitions {
                // Some partitions were not asked yet (a small `max`): ask them first.
                continue;
            }
            swept = 0;
            let slice = deadline.saturating_duration_since(now).min(pause);
            if slice >= Duration::from_millis(10) {
                let unkeyed = pull(&q.consumer, 1, Some(slice)).await?;
                if !unkeyed.is_empty() {
                    return Ok(unkeyed);
                }
            } else {
                tokio::time::sleep(slice).await;
            }
            pause = pause.saturating_mul(2).min(KEYED_POLL_MAX);
        }
    }

    /// Asks `budget` partitions (at most all of them) for a message each, going round
    /// the partitions from one call to the next; returns what came and how many were
    /// asked. The requests go out together on one reply subscription, and every one is
    /// answered (a message, or a status once [`PARTITION_EXPIRES`] passed) before the
    /// subscription ends, so no message can go to a request nobody reads.
    async fn pull_partitions(
        &self,
        keyed: &Keyed,
        budget: usize,
    ) -> Result<(Vec<jetstream::Message>, usize)> {
        let partitions = usize::try_from(keyed.partitions).unwrap_or(1).max(1);
        let ask = budget.min(partitions);
        let first = keyed.cursor.fetch_add(ask, Ordering::Relaxed);
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(backend)?;
        let request = bytes::Bytes::from(format!(
            r#"{{"batch":1,"no_wait":true,"expires":{}}}"#,
            PARTITION_EXPIRES.as_nanos()
        ));
        let mut waiting = HashSet::with_capacity(ask);
        for i in 0..ask {
            let partition = first.wrapping_add(i) % partitions;
            self.client
                .publish_with_reply(
                    format!("$JS.API.CONSUMER.MSG.NEXT.{}.p{partition}", keyed.stream),
                    format!("{inbox}.{partition}"),
                    request.clone(),
                )
                .await
                .map_err(backend)?;
            waiting.insert(partition.to_string());
        }
        self.flush().await?;
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + BATCH_GRACE;
        while !waiting.is_empty() {
            // A request a restarting server never answers ends the round with what came.
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await else {
                break;
            };
            let Some(partition) = message.subject.as_str().rsplit('.').next() else {
                continue;
            };
            if !waiting.remove(partition) {
                continue;
            }
            let is_message = message
                .status
                .is_none_or(|status| status == async_nats::StatusCode::OK)
                && message.reply.is_some();
            if is_message {
                out.push(jetstream::Message {
                    message,
                    context: self.js.clone(),
                });
            }
        }
        Ok((out, ask))
    }

    /// Deletes the streams of every queue this broker declared (their messages and dead
    /// letters with them); for tests and teardown.
    ///
    /// # Errors
    /// [`Error::Backend`] when the server refuses.
    pub async fn delete_streams(&self) -> Result<()> {
        let names: Vec<String> = lock(&self.queues).keys().cloned().collect();
        for queue in names {
            let name = format!("{}{queue}", self.prefix);
            for stream in [
                format!("Q_{name}"),
                format!("D_{name}"),
                format!("K_{name}"),
            ] {
                self.js.delete_stream(&stream).await.map_err(backend)?;
            }
            lock(&self.queues).remove(&queue);
        }
        let topics: Vec<String> = lock(&self.topics).drain().collect();
        for topic in topics {
            let stream = format!("T_{}{topic}", self.prefix);
            self.js.delete_stream(&stream).await.map_err(backend)?;
        }
        Ok(())
    }

    /// Creates the topic's stream (`T_<prefix><topic>` on `bkt.<prefix><topic>`, kept a
    /// day: the queues bound to it source from it) unless this process did already.
    async fn topic_stream(&self, topic: &str) -> Result<(String, String)> {
        check_queue_name(topic)?;
        let name = format!("T_{}{topic}", self.prefix);
        let subject = format!("bkt.{}{topic}", self.prefix);
        if !lock(&self.topics).contains(topic) {
            create_stream(
                &self.js,
                stream::Config {
                    name: name.clone(),
                    subjects: vec![subject.clone()],
                    max_age: Duration::from_secs(24 * 3600),
                    ..Default::default()
                },
            )
            .await?;
            lock(&self.topics).insert(topic.to_owned());
        }
        Ok((name, subject))
    }

    /// Lists the dead-letter stream: `(sequence, letter)` pairs, oldest first.
    async fn list_dead(&self, queue: &str, max: usize) -> Result<Vec<(u64, DeadLetter)>> {
        let q = self.queue(queue)?;
        let mut stream = self.js.get_stream(&q.dead_stream).await.map_err(backend)?;
        let state = &stream.info().await.map_err(backend)?.state;
        let (count, first, last) = (state.messages, state.first_sequence, state.last_sequence);
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        let mut seq = first;
        while seq <= last && out.len() < max {
            if let Ok(message) = stream.get_raw_message(seq).await {
                let envelope = from_headers(Some(&message.headers), message.payload, None)?;
                let dead_at = SystemTime::from(message.time);
                out.push((seq, DeadLetter::from_stored(queue, envelope, dead_at)));
            }
            seq += 1;
        }
        Ok(out)
    }
}

impl Broker for NatsBroker {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        check_queue_name(queue)?;
        config.validate()?;
        let name = format!("{}{queue}", self.prefix);
        let subject = format!("bkq.{name}");
        let dead_stream = format!("D_{name}");
        let dead_subject = format!("bkd.{name}");
        let stream = create_stream(
            &self.js,
            stream::Config {
                name: format!("Q_{name}"),
                subjects: vec![subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            },
        )
        .await?;
        create_stream(
            &self.js,
            stream::Config {
                name: dead_stream.clone(),
                subjects: vec![dead_subject.clone()],
                ..Default::default()
            },
        )
        .await?;
        let mut consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: config.get_ack_wait(),
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(backend)?;
        // After an unclean server stop (SIGKILL, power loss) a work-queue stream can hold
        // again messages it had removed when they were acked, below the consumer's ack
        // floor, where they are never delivered: remove them.
        let floor = consumer
            .info()
            .await
            .map_err(backend)?
            .ack_floor
            .stream_sequence;
        purge_acked(&stream, floor).await?;
        let keyed = self.declare_keyed(&name, config).await?;
        lock(&self.queues).insert(
            queue.to_owned(),
            Arc::new(Queue {
                config: config.clone(),
                subject,
                dead_stream,
                dead_subject,
                consumer,
                keyed,
            }),
        );
        Ok(())
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        let q = self.queue(queue)?;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        self.js
            .publish_with_headers(
                q.subject_for(&envelope),
                to_headers(&envelope, Wire::Queue),
                envelope.payload().clone(),
            )
            .await
            .map_err(backend)?
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Sends every message, then waits for the stream's acknowledgements together (they
    /// pipeline on the connection instead of one round trip each).
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Result<()> {
        let q = self.queue(queue)?;
        let mut pending = Vec::with_capacity(envelopes.len());
        for mut envelope in envelopes {
            envelope.set_attempt(0);
            pending.push(
                self.js
                    .publish_with_headers(
                        q.subject_for(&envelope),
                        to_headers(&envelope, Wire::Queue),
                        envelope.payload().clone(),
                    )
                    .await
                    .map_err(backend)?,
            );
        }
        for ack in pending {
            ack.await.map_err(backend)?;
        }
        Ok(())
    }

    async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let q = self.queue(queue)?;
        let prefetch = q.config.get_prefetch();
        let max = match prefetch {
            Some(limit) => {
                let start = tokio::time::Instant::now();
                let end = start.checked_add(wait).unwrap_or(start);
                max.min(self.held.room(queue, consumer, limit, end).await)
            }
            None => max,
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(wait).unwrap_or(start);
        let messages = loop {
            if self.keyed_waiting(&q).await? {
                break self.pull_keyed(&q, max, deadline).await?;
            }
            // A long wait is cut into slices, so that keyed messages another process
            // publishes meanwhile are noticed.
            let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
            let slice = rest.min(KEYED_CHECK);
            let messages = pull_unkeyed(&q.consumer, max, slice).await?;
            if !messages.is_empty() || slice == rest {
                break messages;
            }
        };
        self.deliveries(&q, queue, consumer, messages).await
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        let disposition = self.settle_unflushed(delivery, &settlement).await?;
        self.flush().await?;
        Ok(disposition)
    }

    /// Sends the settlements one after the other and flushes the connection once.
    async fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> Vec<Result<Disposition>> {
        let mut out = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            out.push(self.settle_unflushed(delivery, &settlement).await);
        }
        if let Err(e) = self.flush().await {
            // Settlements not known to be on the wire are reported as failed.
            for result in &mut out {
                if result.is_ok() {
                    *result = Err(Error::Backend {
                        backend: "nats",
                        detail: e.to_string(),
                    });
                }
            }
        }
        out
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        Ok(self
            .list_dead(queue, max)
            .await?
            .into_iter()
            .map(|(_, letter)| letter)
            .collect())
    }

    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        let q = self.queue(queue)?;
        let stream = self.js.get_stream(&q.dead_stream).await.map_err(backend)?;
        let mut moved = 0;
        for (seq, letter) in self.list_dead(queue, max).await? {
            let envelope = letter.into_redriven();
            // No Nats-Msg-Id: the original id is still in the duplicate window.
            self.js
                .publish_with_headers(
                    q.subject_for(&envelope),
                    to_headers(&envelope, Wire::Full { dedup: false }),
                    envelope.payload().clone(),
                )
                .await
                .map_err(backend)?
                .await
                .map_err(backend)?;
            stream.delete_message(seq).await.map_err(backend)?;
            moved += 1;
        }
        Ok(moved)
    }

    async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        self.queue(queue)?;
        let (topic_stream, _) = self.topic_stream(topic).await?;
        let mut source_stream = self.js.get_stream(&topic_stream).await.map_err(backend)?;
        let next = source_stream
            .info()
            .await
            .map_err(backend)?
            .state
            .last_sequence
            .saturating_add(1);
        let name = format!("Q_{}{queue}", self.prefix);
        let mut stream = self.js.get_stream(&name).await.map_err(backend)?;
        let mut config = stream.info().await.map_err(backend)?.config.clone();
        let sources = config.sources.get_or_insert_with(Vec::new);
        if sources.iter().any(|s| s.name == topic_stream) {
            return Ok(());
        }
        // Only what is published from now on, like a subscription.
        sources.push(stream::Source {
            name: topic_stream,
            start_sequence: Some(next),
            ..Default::default()
        });
        self.js.update_stream(config).await.map_err(backend)?;
        Ok(())
    }

    async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        let (_, subject) = self.topic_stream(topic).await?;
        refuse_ordering_key("nats", &envelope)?;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        self.js
            .publish_with_headers(
                subject,
                to_headers(&envelope, Wire::Full { dedup: true }),
                envelope.payload().clone(),
            )
            .await
            .map_err(backend)?
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn request(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Envelope> {
        // Should the subscription end before the waiter registers, the request fails at
        // once (the waiters are closed) instead of waiting for its timeout.
        let (prefix, waiters) = self.reply_inbox().await?;
        // A fresh unique token per request (as unguessable as a fresh inbox).
        let inbox = self.client.new_inbox();
        let token = inbox
            .rsplit('.')
            .next()
            .unwrap_or(inbox.as_str())
            .to_owned();
        let subject = format!("{prefix}.{token}");
        let waiter = waiters.register(token);
        let envelope = prepare_request(envelope, &subject)?;
        self.publish(queue, envelope).await?;
        let message = waiter.wait(timeout).await?;
        from_headers(message.headers.as_ref(), message.payload, None)
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        let (subject, mut response) = prepare_reply(request, response)?;
        if subject.is_empty()
            || subject
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b == b'*' || b == b'>')
        {
            return Err(Error::InvalidHeader {
                name: "reply-to".into(),
                reason: "not a NATS subject to publish to",
            });
        }
        response.set_published_at(SystemTime::now());
        self.client
            .publish_with_headers(
                subject,
                to_headers(&response, Wire::Full { dedup: false }),
                response.payload().clone(),
            )
            .await
            .map_err(backend)?;
        // Bounded: while the client reconnects, a flush waits for the connection.
        self.flush().await
    }

    async fn pending(&self, queue: &str) -> Result<usize> {
        let q = self.queue(queue)?;
        let name = format!("Q_{}{queue}", self.prefix);
        let mut stream = self.js.get_stream(&name).await.map_err(backend)?;
        // A work-queue stream drops a message once it is acked or terminated.
        let state = stream.info().await.map_err(backend)?.state.clone();
        let mut messages = state.messages;
        if messages > 0 {
            // Unless an unclean server stop brought acked ones back below the ack floor.
            let mut consumer = q.consumer.clone();
            let floor = consumer
                .info()
                .await
                .map_err(backend)?
                .ack_floor
                .stream_sequence;
            if state.first_sequence <= floor {
                purge_acked(&stream, floor).await?;
                messages = stream.info().await.map_err(backend)?.state.messages;
            }
        }
        let keyed = self.js.get_stream(&q.keyed.stream).await.map_err(backend)?;
        messages = messages.saturating_add(keyed.cached_info().state.messages);
        Ok(usize::try_from(messages).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The machine's server, or a skip (a failure under `CI=true`).
    async fn broker(test: &str) -> Option<NatsBroker> {
        let Ok(url) = std::env::var("NATS_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "NATS_URL must be set under CI=true"
            );
            println!("skipped: NATS_URL is not set");
            return None;
        };
        let prefix = format!("{test}_{}_", std::process::id());
        let broker = NatsBroker::connect(&url, &prefix).await.unwrap();
        broker.declare("rr", &QueueConfig::default()).await.unwrap();
        Some(broker)
    }

    fn delivered(sequence: u64) -> Delivered {
        Delivered {
            stored_at: SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_960_000_123_456),
            stream: crc32fast::hash(b"Q_jobs"),
            sequence,
        }
    }

    #[test]
    fn a_queue_message_carries_its_id_once_and_gets_attempt_and_time_from_the_delivery() {
        let sent = Envelope::new("x").with_header("x-peer", "rust").unwrap();
        let headers = to_headers(&sent, Wire::Queue);
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.contains(&"x-peer") && names.contains(&MSG_ID),
            "{names:?}"
        );
        let id = sent.id().to_string();
        assert_eq!(headers.get(MSG_ID).map(|v| v.as_str()), Some(id.as_str()));

        let got = from_headers(Some(&headers), "x".into(), Some(&delivered(7))).unwrap();
        assert_eq!(got.id(), sent.id());
        assert_eq!(got.attempt(), 0);
        assert_eq!(
            got.published_at(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_960_000_123)
        );
        assert_eq!(got.headers(), sent.headers());

        // Not from a consumer (a reply, a dead letter): the bk- headers are required.
        assert!(from_headers(Some(&headers), "x".into(), None).is_err());
    }

    #[test]
    fn bk_headers_of_another_client_win_over_the_delivery_metadata() {
        let sent = Envelope::new("x");
        let headers = to_headers(&sent, Wire::Full { dedup: false });
        let got = from_headers(Some(&headers), "x".into(), Some(&delivered(7))).unwrap();
        assert_eq!(got.id(), sent.id());
        assert_eq!(got.published_at(), sent.published_at());
        assert_eq!(
            from_headers(Some(&headers), "x".into(), None).unwrap(),
            sent
        );
    }

    #[test]
    fn a_message_without_an_id_gets_one_from_its_place_in_the_stream() {
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID, "order-42");
        headers.insert("x-peer", "go");
        let first = from_headers(Some(&headers), "x".into(), Some(&delivered(7))).unwrap();
        let again = from_headers(None, "x".into(), Some(&delivered(7))).unwrap();
        let next = from_headers(None, "x".into(), Some(&delivered(8))).unwrap();
        assert_eq!(first.id(), again.id(), "the same at every delivery");
        assert_ne!(first.id(), next.id());
        assert_eq!(first.id().as_uuid().get_version_num(), 7);
        assert_eq!(first.headers().get("x-peer"), Some("go"));
        assert_eq!(first.attempt(), 0);
        assert!(from_headers(None, "x".into(), None).is_err());
    }

    #[test]
    fn a_key_partition_is_crc32_of_the_key_modulo_the_count() {
        // zlib.crc32(b"k1") == 0x960E_A0A9 (Python's zlib computes the same CRC-32), so
        // publishers in other languages can place a key.
        assert_eq!(crc32fast::hash(b"k1"), 0x960E_A0A9);
        assert_eq!(key_partition("k1", 16), 9);
        assert_eq!(key_partition("k2", 16), 3);
        assert_eq!(key_partition("anything", 1), 0);
    }

    #[tokio::test]
    async fn the_first_declaration_fixes_the_partition_count() {
        let Some(first) = broker("partitions").await else {
            return;
        };
        assert!(matches!(
            NatsBroker::connect(&std::env::var("NATS_URL").unwrap(), "x")
                .await
                .unwrap()
                .key_partitions(0),
            Err(Error::InvalidConfig(_))
        ));
        let first = first.key_partitions(4).unwrap();
        first
            .declare("keyed", &QueueConfig::default())
            .await
            .unwrap();
        assert_eq!(first.queue("keyed").unwrap().keyed.partitions, 4);
        let prefix = format!("partitions_{}_", std::process::id());
        let second = NatsBroker::connect(&std::env::var("NATS_URL").unwrap(), &prefix)
            .await
            .unwrap()
            .key_partitions(32)
            .unwrap();
        second
            .declare("keyed", &QueueConfig::default())
            .await
            .unwrap();
        assert_eq!(second.queue("keyed").unwrap().keyed.partitions, 4);
        first.delete_streams().await.unwrap();
    }

    #[tokio::test]
    async fn a_request_that_times_out_or_is_dropped_leaves_no_waiter() {
        let Some(broker) = broker("rr_waiters").await else {
            return;
        };
        let timeout = Duration::from_millis(200);
        let outcome = broker.request("rr", Envelope::new("a"), timeout).await;
        assert!(
            matches!(outcome, Err(Error::Timeout(t)) if t == timeout),
            "{outcome:?}"
        );
        assert_eq!(broker.waiting_requests(), 0);

        // Dropped while waiting (a caller's own select or timeout).
        let dropped = tokio::time::timeout(
            Duration::from_millis(100),
            broker.request("rr", Envelope::new("b"), Duration::from_secs(30)),
        )
        .await;
        assert!(dropped.is_err());
        assert_eq!(broker.waiting_requests(), 0);

        // The late replies to both are dropped; the next request gets its own.
        let old = broker
            .fetch("rr", "responder", 10, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(old.len(), 2);
        for d in &old {
            broker.reply(d, Envelope::new("late")).await.unwrap();
            broker.settle(d, Settlement::Ack).await.unwrap();
        }
        let requester = broker.request("rr", Envelope::new("c"), Duration::from_secs(5));
        let responder = async {
            let d = broker
                .fetch("rr", "responder", 1, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(d.len(), 1);
            broker.reply(&d[0], Envelope::new("on time")).await.unwrap();
            broker.settle(&d[0], Settlement::Ack).await.unwrap();
        };
        let (answer, ()) = tokio::join!(requester, responder);
        assert_eq!(answer.unwrap().payload().as_ref(), b"on time");
        assert_eq!(broker.waiting_requests(), 0);
        broker.delete_streams().await.unwrap();
    }

    #[tokio::test]
    async fn requests_share_one_reply_subscription_made_again_when_it_ended() {
        let Some(broker) = broker("rr_shared").await else {
            return;
        };
        let broker = &broker;
        let ask = |text: &'static str| async move {
            let requester = broker.request("rr", Envelope::new(text), Duration::from_secs(5));
            let responder = async {
                let d = broker
                    .fetch("rr", "responder", 1, Duration::from_secs(5))
                    .await
                    .unwrap();
                let request = d[0].envelope.clone();
                broker
                    .reply(&d[0], Envelope::new(request.payload().clone()))
                    .await
                    .unwrap();
                broker.settle(&d[0], Settlement::Ack).await.unwrap();
                request.headers().reply_to().unwrap().to_owned()
            };
            let (answer, reply_to) = tokio::join!(requester, responder);
            assert_eq!(answer.unwrap().payload().as_ref(), text.as_bytes());
            reply_to
        };
        let first = ask("one").await;
        let second = ask("two").await;
        let prefix = |s: &str| s.rsplit_once('.').unwrap().0.to_owned();
        assert_ne!(first, second, "each request has its own reply subject");
        assert_eq!(prefix(&first), prefix(&second), "under one subscription");

        // The subscription ends (the routing task stops): the next request subscribes anew.
        // A request that took its prefix just before the end and registers after it
        // fails at once instead of waiting for its timeout.
        let (_, old_waiters) = broker.reply_inbox().await.unwrap();
        broker.replies.drop_route();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let late = old_waiters.register("late".to_owned());
        let started = tokio::time::Instant::now();
        let outcome = late.wait(Duration::from_secs(30)).await;
        assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let third = ask("three").await;
        assert_ne!(prefix(&third), prefix(&first));
        broker.delete_streams().await.unwrap();
    }
}
