//! RabbitMQ backend over AMQP 0-9-1 (feature `amqp`, on `lapin` with tokio and no TLS).
//!
//! Per queue, under the broker's name prefix: a durable queue `<prefix><queue>` (classic,
//! or quorum with [`AmqpOptions::quorum`]) bound to the direct exchange
//! `<prefix>bk.direct` by its own name, and a durable queue `<prefix><queue>.dead` for
//! dead letters. Topics are routing keys of the topic exchange `<prefix>bk.topics` (or, with
//! [`AmqpOptions::fanout_topics`], one fanout exchange `<prefix>bk.fanout.<topic>` each).
//!
//! Every publish waits for the publisher confirm; a publish to a queue is `mandatory`, so
//! one the server cannot route (the queue was deleted) fails with [`Error::UnknownQueue`]
//! instead of vanishing. This broker publishes to a queue through the default exchange (the
//! same route as the direct exchange's binding, without a binding lookup per message). The envelope travels in the AMQP `headers` table (`bk-id`,
//! `bk-attempt`, `bk-published-at` and the user headers), with `message-id`,
//! `content-type`, `correlation-id` and `timestamp` properties set as well for other
//! clients.
//!
//! Each queue fetched from has one consumer that stays subscribed between fetches, with a
//! prefetch of twice the fetch size (`basic.qos` per consumer): the server sends the next
//! batch while the last one is handled, and a fetch takes what has arrived (without a
//! wait and with nothing arrived, a `basic.get` says whether anything is ready). A new
//! consumer replaces it when a fetch wants more than its prefetch or every place in its
//! window is held by deliveries handed out and not settled, and when the server cancelled
//! it. Messages received and not handed out yet are this process's to count: `pending`
//! cancels the consumer (what was sent before the cancel-ok arrives first) and adds them to
//! the server's count. A subscription no fetch used for the queue's ack wait, and every
//! subscription on [`AmqpBroker::close`], is cancelled and what it received is published to
//! the queue again as it was and the original acknowledged, so no attempt is counted for
//! it (those messages go to the back of the queue). When the server takes them back itself
//! (a lost connection or channel), their ids are remembered, and their next delivery to
//! this broker does not count the redelivered flag (classic queues) or the
//! `x-delivery-count` (quorum queues) as an attempt; another process that gets them
//! counts one.
//! Settlements issued together (a batch's acks) leave as one `basic.ack` with `multiple`
//! for the unbroken run of delivery tags they complete, and single frames for the rest.
//! A delivery lapin drops (one a quorum queue sends after `basic.cancel-ok`, to a consumer
//! lapin has forgotten) leaves a gap in the channel's delivery tags: it is requeued with a
//! `basic.nack` of its own instead of staying unacknowledged until the channel closes.
//! RabbitMQ holds an unacknowledged delivery as long as the channel lives, so this process
//! keeps each delivery's ack deadline: past it, the message is republished with its
//! attempt count and the original acknowledged (or dead-lettered after the last allowed
//! delivery). A nack with a delay republishes to `<prefix><queue>.delay.<ms>`, a queue with
//! that message TTL whose dead-letter route leads back to the work queue (no delayed-message
//! plugin needed); the queue deletes itself a minute after its last use.
//!
//! A lost connection is re-opened on the next call, and the queues, exchanges and bindings
//! this broker declared are declared again; deliveries held on the old connection were
//! returned to their queues by the server and settle as [`Error::StaleDelivery`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::broker::DeliveryToken;
use crate::envelope::unix_millis;
use crate::held::Held;
use crate::ordering::refuse_ordering_key;
use crate::request_reply::{ReplyWaiters, prepare_reply, prepare_request};
use crate::retry::JitterSource;
use crate::settlement::{decide, decide_expired};
use crate::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, Envelope, Error, MessageId,
    QueueConfig, Result, Settlement, check_queue_name,
};

/// The longest name prefix: queue names (`<prefix><queue>.delay.<ms>`) must stay within
/// AMQP's 255-byte short strings.
const MAX_PREFIX: usize = 32;
/// The header that records when a dead letter was made (Unix milliseconds).
const DEAD_AT: &str = "bk-dead-at";
/// A delay queue deletes itself this long after its last use (`x-expires`, on top of its TTL).
const DELAY_QUEUE_IDLE: Duration = Duration::from_secs(60);
/// How often the ack-deadline reaper looks at least.
const REAPER_IDLE: Duration = Duration::from_secs(1);
/// How long a fetch without a wait gives the messages a `basic.get` reported ready to arrive
/// through the queue's consumer (they only fail to when another consumer took them).
const STRAGGLER_WAIT: Duration = Duration::from_millis(50);
/// At most this many messages taken back by the server before they were handed out are
/// remembered, each for at most `UNSEEN_KEPT`.
const UNSEEN_LIMIT: usize = 65_536;
const UNSEEN_KEPT: Duration = Duration::from_secs(600);
/// How many tags settled above a consume channel's lowest unsettled one are remembered for
/// `multiple` acks.
const SETTLED_AHEAD: usize = 4096;
/// Reply queues are server-named; a `reply-to` must name one of them.
const REPLY_PREFIX: &str = "amq.gen-";
/// Headers the server adds when it dead-letters or redelivers; not part of the envelope.
const SERVER_HEADERS: [&str; 2] = ["x-death", "x-delivery-count"];

/// The kind of RabbitMQ queue [`AmqpBroker`] declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AmqpQueueType {
    /// A durable classic queue.
    #[default]
    Classic,
    /// A quorum queue (replicated with Raft; always durable).
    Quorum,
}

/// Options of an [`AmqpBroker`] beyond its URL and prefix.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct AmqpOptions {
    queue_type: AmqpQueueType,
    fanout_topics: bool,
}

impl AmqpOptions {
    /// Declares quorum queues (work queues and dead letters) instead of classic ones.
    #[must_use]
    pub fn quorum(mut self) -> Self {
        self.queue_type = AmqpQueueType::Quorum;
        self
    }

    /// Routes each topic through a fanout exchange of its own instead of the shared
    /// topic exchange.
    #[must_use]
    pub fn fanout_topics(mut self) -> Self {
        self.fanout_topics = true;
        self
    }
}

/// A delivery this process holds: the server keeps it unacknowledged until it is settled
/// here or its deadline passes.
struct InFlight {
    queue: Arc<str>,
    consumer: Arc<str>,
    acker: Acker,
    /// The consume channel it came on and its delivery tag there: settlements go through
    /// the channel's [`Settler`].
    channel: Arc<ConsumeChannel>,
    tag: u64,
    envelope: Envelope,
    deadline: Instant,
    /// Its place in the consumer's prefetch window, until it is settled.
    _slot: Slot,
}

/// One connection and the channels on it.
struct Session {
    connection: Connection,
    /// Confirm mode; publishes of every kind.
    publish: Mutex<Channel>,
    /// Per queue: the channel fetches consume on, and a lock so `basic.qos` and
    /// `basic.consume` of one fetch are not interleaved with another's.
    consume: Mutex<HashMap<String, Arc<ConsumeChannel>>>,
    /// The reply queue of this connection's requests, made by the first request.
    replies: tokio::sync::OnceCell<ReplyQueue>,
}

/// One server-named, exclusive reply queue carries the replies to every request on a
/// connection (a queue per request costs a channel, a `queue.declare`, a `basic.consume`
/// and a `channel.close` each); a task routes each reply by its `correlation-id`. It goes
/// with its connection: a new connection gets a new one.
struct ReplyQueue {
    name: String,
    waiters: Arc<ReplyWaiters<String, Envelope>>,
    /// Dropped with the session: the routing task closes the channel and stops.
    _stop: oneshot::Sender<()>,
}

impl ReplyQueue {
    async fn open(connection: &Connection) -> Result<Self> {
        let channel = connection.create_channel().await.map_err(backend)?;
        let (name, consumer) = consume_replies(&channel).await?;
        let waiters = Arc::new(ReplyWaiters::default());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(route_replies(
            channel,
            consumer,
            stopped,
            Arc::clone(&waiters),
        ));
        Ok(Self {
            name: name.as_str().to_owned(),
            waiters,
            _stop: stop,
        })
    }
}

/// A server-named, exclusive queue on `channel` that goes away with its consumer, and a
/// consumer of it that takes replies without acks.
async fn consume_replies(channel: &Channel) -> Result<(ShortString, lapin::Consumer)> {
    let queue = channel
        .queue_declare(
            ShortString::default(),
            QueueDeclareOptions::exclusive().auto_delete(),
            FieldTable::default(),
        )
        .await
        .map_err(backend)?;
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            ShortString::default(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(backend)?;
    Ok((queue.name().clone(), consumer))
}

/// Hands each reply on the reply queue to the request waiting with its `correlation-id`,
/// until `stop` is dropped or the consumer ends (the connection was lost).
async fn route_replies(
    channel: Channel,
    mut consumer: lapin::Consumer,
    mut stop: oneshot::Receiver<()>,
    waiters: Arc<ReplyWaiters<String, Envelope>>,
) {
    loop {
        let next = std::future::poll_fn(|cx| {
            if std::pin::Pin::new(&mut stop).poll(cx).is_ready() {
                return std::task::Poll::Ready(None);
            }
            consumer.poll_next_unpin(cx)
        })
        .await;
        let Some(Ok(delivery)) = next else { break };
        if let Ok((envelope, _)) = from_properties(&delivery.properties, Bytes::from(delivery.data))
            && let Some(correlation) = envelope.headers().correlation_id().map(str::to_owned)
        {
            waiters.deliver(correlation.as_str(), envelope);
        }
    }
    // Their reply queue is gone: they fail now rather than at their timeout.
    waiters.abandon_all();
    let _ = channel.close(200, "replies done".into()).await;
}

struct ConsumeChannel {
    channel: Channel,
    /// The queue's consumer and what it received; one fetch at a time uses it.
    subscription: tokio::sync::Mutex<Subscription>,
    settler: Mutex<Settler>,
    /// When a fetch last used the subscription: an idle one is handed back.
    used: Mutex<Instant>,
}

/// The consumer that stays subscribed to a queue between fetches, and the deliveries it
/// received that no fetch has handed out yet.
#[derive(Default)]
struct Subscription {
    current: Option<Subscribed>,
    /// The per-consumer prefetch last set with `basic.qos` on the channel (0: none yet).
    qos: u16,
    /// In the queue's order; the server holds each unacknowledged.
    buffer: VecDeque<Buffered>,
    /// How many more the server said were ready (the last `basic.get`), less those
    /// received since: while some are owed and the window has room, a fetch without a wait
    /// that finds the buffer empty waits for them instead of asking again.
    owed: usize,
    /// Deliveries of this channel lapin dropped: see [`Gaps`].
    gaps: Gaps,
    /// The channel's probe queue (quorum queues), once declared: see
    /// [`Inner::unsubscribe`].
    probe: Option<ShortString>,
}

/// The delivery tags of a channel the client never saw.
///
/// RabbitMQ numbers the deliveries of a channel 1, 2, 3, ... (`basic.deliver` and
/// `basic.get-ok` alike, AMQP 0-9-1 section 1.8.3.13). A quorum queue can still send a
/// consumer a delivery after its `basic.cancel-ok` (one that was on its way inside the
/// server when the cancel was handled; also around a consumer replaced by another), and
/// lapin drops a delivery whose consumer tag it no longer knows (`Consumers::start_delivery`
/// finds no consumer and discards the frames) without telling anyone. The server counts
/// that message as delivered and unacknowledged: it is neither processed nor pending nor
/// given to another consumer until the channel closes.
///
/// Each delivery this channel's subscription receives is checked against the next tag
/// expected (one comparison per message). Tags skipped over are suspects until the
/// subscription next stops taking in deliveries (a delivery from `basic.get` can be taken
/// in before consumer deliveries with lower tags that reached the client first); suspects
/// still unseen then were dropped and are requeued one by one with `basic.nack`
/// (`requeue`, never `multiple`, which would also requeue deliveries handed out and not
/// settled yet). The server then counts one more delivery of such a message
/// (`x-delivery-count` on quorum queues, the redelivered flag on classic ones).
#[derive(Default)]
struct Gaps {
    /// The highest delivery tag seen on the channel.
    last: u64,
    /// Tags below `last` not seen (yet).
    suspects: BTreeSet<u64>,
}

/// A larger jump in delivery tags is not a few dropped deliveries (a subscription sees at
/// most its prefetch window in flight): it is left alone.
const GAP_LIMIT: u64 = 131_070;

impl Gaps {
    fn observe(&mut self, tag: u64) {
        if tag == self.last + 1 {
            self.last = tag;
        } else if tag > self.last {
            if tag - self.last <= GAP_LIMIT {
                self.suspects.extend(self.last + 1..tag);
            }
            self.last = tag;
        } else {
            self.suspects.remove(&tag);
        }
    }

    /// The suspects, now known to be dropped.
    fn take_lost(&mut self) -> Vec<u64> {
        if self.suspects.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut self.suspects).into_iter().collect()
    }
}

struct Subscribed {
    consumer: lapin::Consumer,
    prefetch: u16,
    /// Its deliveries not settled yet, buffered or handed out: the server sends no more
    /// while they fill `prefetch`.
    window: Arc<AtomicUsize>,
}

/// A delivery received and not handed out yet.
struct Buffered {
    delivery: AmqpDelivery,
    slot: Slot,
}

/// A delivery's place in its consumer's prefetch window, given up when dropped (settled,
/// handed back or lost with its channel). `basic.get` deliveries have none.
struct Slot(Option<Arc<AtomicUsize>>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(window) = &self.0 {
            window.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Why a consumer's stream ended.
enum Ended {
    /// The server cancelled the consumer (its queue was deleted), or we did.
    Cancelled,
    Failed(lapin::Error),
}

/// How a delivery on a consume channel is settled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ack,
    /// `basic.nack` with `requeue`: back to the queue, flagged redelivered.
    Requeue,
}

/// Acks and requeues of one consume channel, sent together: settlements asked for while
/// the task runs (for example the acks of one batch, issued together) become one
/// `basic.ack` with `multiple` for the run of delivery tags they complete, plus single
/// frames for the rest.
///
/// `multiple` acknowledges every unsettled tag up to the one it names, so a run is only
/// acked that way from `floor` (every tag up to it is settled) through tags that are
/// settled or queued now, without a gap: a tag not seen here yet (a delivery still on its
/// way to a concurrent fetch) breaks the run.
#[derive(Default)]
struct Settler {
    /// Every delivery tag up to this one is settled (tags start at 1).
    floor: u64,
    /// Tags above `floor` settled already.
    settled: BTreeSet<u64>,
    queued: Vec<(u64, Verdict, oneshot::Sender<bool>)>,
    /// A task is sending what is queued.
    running: bool,
}

struct Inner {
    url: String,
    /// For `amqps://` (feature `tls`): the files the URL names, read once.
    #[cfg(feature = "tls")]
    tls: Option<lapin::tcp::OwnedTLSConfig>,
    prefix: String,
    options: AmqpOptions,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    reconnects: AtomicU64,
    queues: Mutex<HashMap<String, QueueConfig>>,
    /// (topic, queue) pairs bound by this broker, declared again after a reconnect.
    bindings: Mutex<HashSet<(String, String)>>,
    /// Fanout exchanges this broker declared.
    fanouts: Mutex<HashSet<String>>,
    in_flight: Mutex<HashMap<u64, InFlight>>,
    next_token: AtomicU64,
    jitter: Mutex<JitterSource>,
    held: Held,
    reaper: Arc<Notify>,
    /// Messages the server took back from this process before they were handed out (a
    /// lost connection or channel): their next delivery here is not one more attempt.
    unseen: Mutex<HashMap<MessageId, Instant>>,
}

/// A [`Broker`] on RabbitMQ (AMQP 0-9-1).
pub struct AmqpBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("prefix", &self.inner.prefix)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "amqp",
        detail: e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn short(s: &str) -> Result<ShortString> {
    ShortString::try_new(s).map_err(backend)
}

/// A retry delay in whole milliseconds, rounded up to two significant digits so the number
/// of delay queues stays small whatever the jitter (at most 10% later, never earlier).
fn delay_bucket(delay: Duration) -> u64 {
    let ms = u64::try_from(delay.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    let ms = ms.min(u64::from(u32::MAX));
    let mut factor = 1;
    while ms / factor >= 100 {
        factor *= 10;
    }
    ms.div_ceil(factor) * factor
}

/// The AMQP properties of an envelope: everything in `headers`, the well-known ones as
/// properties too.
fn properties(envelope: &Envelope, extra: Option<(&str, String)>) -> BasicProperties {
    let mut table = BTreeMap::new();
    let mut id = None;
    for (name, value) in envelope.wire_pairs() {
        if let Ok(key) = ShortString::try_new(name) {
            // The text made for the table, not a copy of it, goes in the table.
            let value = value.into_owned();
            if id.is_none() && name == "bk-id" {
                id = Some(value.clone());
            }
            table.insert(key, AMQPValue::LongString(value.into()));
        }
    }
    if let Some((name, value)) = extra
        && let Ok(name) = ShortString::try_new(name)
    {
        table.insert(name, AMQPValue::LongString(value.into()));
    }
    let headers = envelope.headers();
    let id = id.unwrap_or_else(|| envelope.id().to_string());
    let mut props = BasicProperties::default()
        .with_headers(FieldTable::from(table))
        .with_delivery_mode(2)
        .with_message_id(id.into())
        .with_timestamp(unix_millis(envelope.published_at()) / 1000);
    if let Some(value) = headers
        .content_type()
        .and_then(|v| ShortString::try_new(v).ok())
    {
        props = props.with_content_type(value);
    }
    if let Some(value) = headers
        .correlation_id()
        .and_then(|v| ShortString::try_new(v).ok())
    {
        props = props.with_correlation_id(value);
    }
    props
}

/// One header value as text; tables and arrays have no text form.
fn header_text<'a>(name: &str, value: &'a AMQPValue) -> Result<Cow<'a, str>> {
    let text = match value {
        AMQPValue::LongString(s) => Cow::Borrowed(std::str::from_utf8(s.as_bytes()).map_err(
            |_| Error::WireHeader {
                line: 0,
                reason: "an AMQP header value is not UTF-8",
            },
        )?),
        AMQPValue::ShortString(s) => Cow::Borrowed(s.as_str()),
        AMQPValue::ByteArray(b) => Cow::Borrowed(std::str::from_utf8(b.as_slice()).map_err(
            |_| Error::WireHeader {
                line: 0,
                reason: "an AMQP header value is not UTF-8",
            },
        )?),
        AMQPValue::Boolean(b) => Cow::Owned(b.to_string()),
        AMQPValue::ShortShortInt(n) => Cow::Owned(n.to_string()),
        AMQPValue::ShortShortUInt(n) => Cow::Owned(n.to_string()),
        AMQPValue::ShortInt(n) => Cow::Owned(n.to_string()),
        AMQPValue::ShortUInt(n) => Cow::Owned(n.to_string()),
        AMQPValue::LongInt(n) => Cow::Owned(n.to_string()),
        AMQPValue::LongUInt(n) => Cow::Owned(n.to_string()),
        AMQPValue::LongLongInt(n) => Cow::Owned(n.to_string()),
        AMQPValue::Timestamp(n) => Cow::Owned(n.to_string()),
        AMQPValue::Float(n) => Cow::Owned(n.to_string()),
        AMQPValue::Double(n) => Cow::Owned(n.to_string()),
        AMQPValue::Void => Cow::Borrowed(""),
        AMQPValue::DecimalValue(_) | AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => {
            let _ = name;
            return Err(Error::WireHeader {
                line: 0,
                reason: "an AMQP header value is a table, array or decimal",
            });
        }
    };
    Ok(text)
}

fn is_server_header(name: &str) -> bool {
    SERVER_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

/// Rebuilds an envelope from a delivery's `headers` table, leaving out what the server
/// added. Returns the envelope and the server's delivery count (quorum queues).
fn from_properties(props: &BasicProperties, payload: Bytes) -> Result<(Envelope, Option<u32>)> {
    let mut pairs: Vec<(&str, Cow<'_, str>)> = Vec::new();
    let mut delivery_count = None;
    if let Some(table) = props.headers() {
        for (name, value) in table.inner() {
            let name = name.as_str();
            if name.eq_ignore_ascii_case("x-delivery-count") {
                delivery_count = header_text(name, value)
                    .ok()
                    .and_then(|n| n.parse::<u32>().ok());
                continue;
            }
            if is_server_header(name) || name == DEAD_AT {
                continue;
            }
            pairs.push((name, header_text(name, value)?));
        }
    }
    let envelope = Envelope::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_ref())), payload)?;
    Ok((envelope, delivery_count))
}

fn dead_at(props: &BasicProperties) -> SystemTime {
    props
        .headers()
        .as_ref()
        .and_then(|t| t.inner().get(DEAD_AT))
        .and_then(|v| header_text(DEAD_AT, v).ok())
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(UNIX_EPOCH, |ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// What a publisher confirm says about one publish.
fn confirmed(confirm: Confirmation, unroutable: &impl Fn() -> Error) -> Result<()> {
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => Err(unroutable()),
        Confirmation::Nack(None) => Err(backend("the server nacked the publish")),
        Confirmation::NotRequested => Err(backend("no publisher confirm")),
    }
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut map = BTreeMap::new();
    for (name, value) in pairs {
        map.insert(ShortString::from(*name), value.clone());
    }
    FieldTable::from(map)
}

impl AmqpBroker {
    /// Connects to `url` (`amqp://user:pass@host:port/vhost`, or `amqps://` over TLS with
    /// feature `tls`: port 5671 by default, the server verified against the system's roots
    /// and `?cacertfile=PATH`, a client certificate from `&certfile=PATH&keyfile=PATH`, as
    /// in RabbitMQ's URI query parameters); queue and exchange names
    /// start with `prefix`, which may use up to 32 of `A-Z a-z 0-9 - _ . :` (give each
    /// application, or each test, its own).
    ///
    /// Spawns one tokio task that enforces ack deadlines; it ends when the broker is
    /// dropped.
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`] for a bad prefix, [`Error::Tls`] for TLS files that
    /// cannot be used, [`Error::FeatureDisabled`] for `amqps://` without feature `tls`,
    /// [`Error::InvalidConfig`] for TLS files on an `amqp://` URL, [`Error::Backend`] when
    /// the server cannot be reached (or its certificate does not verify).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        Self::connect_with(url, prefix, AmqpOptions::default()).await
    }

    /// [`connect`](Self::connect) with [`AmqpOptions`].
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, prefix: &str, options: AmqpOptions) -> Result<Self> {
        if prefix.len() > MAX_PREFIX
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(Error::InvalidQueueName(prefix.chars().take(200).collect()));
        }
        #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
        let tls = crate::tls::TlsFiles::for_url(
            url,
            url.starts_with("amqps://").then_some("amqps"),
            "cacertfile, certfile and keyfile are for amqps:// URLs",
        )?;
        let inner = Arc::new(Inner {
            url: url.to_owned(),
            #[cfg(feature = "tls")]
            tls: tls.map(|files| files.lapin_config()).transpose()?,
            prefix: prefix.to_owned(),
            options,
            session: tokio::sync::Mutex::new(None),
            reconnects: AtomicU64::new(0),
            queues: Mutex::new(HashMap::new()),
            bindings: Mutex::new(HashSet::new()),
            fanouts: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            jitter: Mutex::new(JitterSource::from_entropy()),
            held: Held::default(),
            reaper: Arc::new(Notify::new()),
            unseen: Mutex::new(HashMap::new()),
        });
        inner.session().await?;
        tokio::spawn(reap(Arc::downgrade(&inner), Arc::clone(&inner.reaper)));
        Ok(Self { inner })
    }

    /// The name clients see for this broker's connections (`broker-core <prefix>`), e.g. in
    /// `rabbitmqctl list_connections client_properties`.
    #[must_use]
    pub fn connection_name(&self) -> String {
        self.inner.connection_name()
    }

    /// How many times the connection was opened again after it was lost.
    #[must_use]
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    /// The server-side name of `queue` (`<prefix><queue>`), for other clients.
    #[must_use]
    pub fn queue_name(&self, queue: &str) -> String {
        format!("{}{queue}", self.inner.prefix)
    }

    /// The direct exchange queues are bound to by their server-side names.
    #[must_use]
    pub fn direct_exchange(&self) -> String {
        self.inner.direct_exchange()
    }

    /// Deletes the queues (with their dead letters) and exchanges this broker declared;
    /// for tests and teardown. Delay queues delete themselves.
    ///
    /// # Errors
    /// [`Error::Backend`] when the server refuses.
    pub async fn delete_topology(&self) -> Result<()> {
        let inner = &self.inner;
        let session = inner.session().await?;
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let queues: Vec<String> = lock(&inner.queues).keys().cloned().collect();
        for queue in queues {
            for name in [inner.work_name(&queue), inner.dead_name(&queue)] {
                channel
                    .queue_delete(short(&name)?, QueueDeleteOptions::default())
                    .await
                    .map_err(backend)?;
            }
            lock(&inner.queues).remove(&queue);
        }
        let mut exchanges = vec![inner.direct_exchange(), inner.topic_exchange()];
        exchanges.extend(
            lock(&inner.fanouts)
                .drain()
                .map(|t| inner.fanout_exchange(&t)),
        );
        for exchange in exchanges {
            channel
                .exchange_delete(short(&exchange)?, Default::default())
                .await
                .map_err(backend)?;
        }
        lock(&inner.bindings).clear();
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    /// Closes the connection; deliveries still held go back to their queues (flagged
    /// redelivered: one more attempt), those received and not handed out yet are published
    /// to them again as they were (no attempt counted).
    ///
    /// # Errors
    /// [`Error::Backend`] when closing fails.
    pub async fn close(&self) -> Result<()> {
        let inner = &self.inner;
        // What the queues' consumers received and did not hand out goes back first,
        // without counting an attempt.
        let session = inner.session.lock().await.clone();
        if let Some(session) = session
            && session.connection.status().connected()
        {
            let channels: Vec<(String, Arc<ConsumeChannel>)> = lock(&session.consume)
                .iter()
                .map(|(q, c)| (q.clone(), Arc::clone(c)))
                .collect();
            for (queue, consume) in channels {
                let mut sub = consume.subscription.lock().await;
                inner.hand_back(&queue, &consume, &mut sub).await;
            }
        }
        let session = inner.session.lock().await.take();
        if let Some(session) = session {
            session
                .connection
                .close(200, "closed".into())
                .await
                .map_err(backend)?;
        }
        Ok(())
    }
}

impl Inner {
    fn connection_name(&self) -> String {
        format!("broker-core {}", self.prefix)
    }
    fn work_name(&self, queue: &str) -> String {
        format!("{}{queue}", self.prefix)
    }
    fn dead_name(&self, queue: &str) -> String {
        format!("{}{queue}.dead", self.prefix)
    }
    fn delay_name(&self, queue: &str, ms: u64) -> String {
        format!("{}{queue}.delay.{ms}", self.prefix)
    }
    fn direct_exchange(&self) -> String {
        format!("{}bk.direct", self.prefix)
    }
    fn topic_exchange(&self) -> String {
        format!("{}bk.topics", self.prefix)
    }
    fn fanout_exchange(&self, topic: &str) -> String {
        format!("{}bk.fanout.{topic}", self.prefix)
    }

    fn config(&self, queue: &str) -> Result<QueueConfig> {
        lock(&self.queues)
            .get(queue)
            .cloned()
            .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))
    }

    /// A new connection to the server, over TLS for `amqps://`.
    async fn connect(&self, properties: ConnectionProperties) -> Result<Connection> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let runtime = lapin::runtime::default_runtime().map_err(backend)?;
            return Connection::connect_with_config(&self.url, properties, tls.clone(), runtime)
                .await
                .map_err(backend);
        }
        Connection::connect(&self.url, properties)
            .await
            .map_err(backend)
    }

    /// The live session, connecting (and declaring the topology again) when there is none
    /// or it was lost.
    async fn session(&self) -> Result<Arc<Session>> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref()
            && session.connection.status().connected()
        {
            return Ok(Arc::clone(session));
        }
        let reconnecting = current.is_some();
        if let Some(old) = current.as_ref() {
            // The server took back what the old connection's consumers had received.
            let consume: Vec<Arc<ConsumeChannel>> =
                lock(&old.consume).drain().map(|(_, c)| c).collect();
            for c in consume {
                self.lost(&c).await;
            }
        }
        let properties =
            ConnectionProperties::default().with_connection_name(self.connection_name().into());
        let connection = self.connect(properties).await?;
        let publish = connection.create_channel().await.map_err(backend)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(backend)?;
        let session = Arc::new(Session {
            connection,
            publish: Mutex::new(publish),
            consume: Mutex::new(HashMap::new()),
            replies: tokio::sync::OnceCell::new(),
        });
        if reconnecting {
            // Whatever was held on the old connection went back to its queue.
            let lost: Vec<(u64, InFlight)> = lock(&self.in_flight).drain().collect();
            for (token, held) in lost {
                self.held
                    .release(&held.queue, &held.consumer, &token.to_string());
            }
            self.redeclare(&session).await?;
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    async fn redeclare(&self, session: &Session) -> Result<()> {
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let queues: Vec<String> = lock(&self.queues).keys().cloned().collect();
        for queue in queues {
            self.declare_queue(&channel, &queue).await?;
        }
        let fanouts: Vec<String> = lock(&self.fanouts).iter().cloned().collect();
        for topic in fanouts {
            self.declare_fanout(&channel, &topic).await?;
        }
        let bindings: Vec<(String, String)> = lock(&self.bindings).iter().cloned().collect();
        for (topic, queue) in bindings {
            self.bind_queue(&channel, &topic, &queue).await?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    fn queue_arguments(&self) -> FieldTable {
        match self.options.queue_type {
            AmqpQueueType::Classic => FieldTable::default(),
            AmqpQueueType::Quorum => table(&[(
                "x-queue-type",
                AMQPValue::LongString(LongString::from("quorum")),
            )]),
        }
    }

    /// The exchanges, the work queue bound to the direct exchange, the dead-letter queue.
    async fn declare_queue(&self, channel: &Channel, queue: &str) -> Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                short(&self.direct_exchange())?,
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(backend)?;
        channel
            .exchange_declare(
                short(&self.topic_exchange())?,
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(backend)?;
        let work = self.work_name(queue);
        for name in [&work, &self.dead_name(queue)] {
            channel
                .queue_declare(
                    short(name)?,
                    QueueDeclareOptions::durable(),
                    self.queue_arguments(),
                )
                .await
                .map_err(backend)?;
        }
        channel
            .queue_bind(
                short(&work)?,
                short(&self.direct_exchange())?,
                short(&work)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(backend)
    }

    async fn declare_fanout(&self, channel: &Channel, topic: &str) -> Result<()> {
        channel
            .exchange_declare(
                short(&self.fanout_exchange(topic))?,
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(backend)
    }

    async fn bind_queue(&self, channel: &Channel, topic: &str, queue: &str) -> Result<()> {
        let (exchange, key) = if self.options.fanout_topics {
            self.declare_fanout(channel, topic).await?;
            lock(&self.fanouts).insert(topic.to_owned());
            (self.fanout_exchange(topic), String::new())
        } else {
            (self.topic_exchange(), topic.to_owned())
        };
        channel
            .queue_bind(
                short(&self.work_name(queue))?,
                short(&exchange)?,
                short(&key)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(backend)
    }

    /// The session's confirm-mode channel, opened again if the server closed it.
    async fn publish_channel(&self, session: &Session) -> Result<Channel> {
        let channel = lock(&session.publish).clone();
        if channel.status().connected() {
            return Ok(channel);
        }
        let fresh = session.connection.create_channel().await.map_err(backend)?;
        fresh
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(backend)?;
        *lock(&session.publish) = fresh.clone();
        Ok(fresh)
    }

    /// Publishes and waits for the confirm. With `mandatory`, a message the server could
    /// not route fails with `unroutable`.
    async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        payload: &[u8],
        props: impl Fn() -> BasicProperties,
        unroutable: impl Fn() -> Error,
    ) -> Result<()> {
        // One retry: on a fresh connection if the first attempt lost it.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let session = self.session().await?;
            let outcome = async {
                let channel = self.publish_channel(&session).await?;
                let confirm = channel
                    .basic_publish(
                        short(exchange)?,
                        short(routing_key)?,
                        BasicPublishOptions {
                            mandatory,
                            ..BasicPublishOptions::default()
                        },
                        payload,
                        props(),
                    )
                    .await
                    .map_err(backend)?
                    .await
                    .map_err(backend)?;
                confirmed(confirm, &unroutable)
            }
            .await;
            match outcome {
                Err(Error::Backend { .. })
                    if attempt == 1 && !session.connection.status().connected() =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Publishes all of `envelopes` to `queue` before waiting for their confirms, which
    /// the server then sends together: one round trip for the batch instead of one per
    /// message. The first failure is returned; the others may have been stored.
    async fn publish_all_to_queue(&self, queue: &str, envelopes: &[Envelope]) -> Result<()> {
        let exchange = ShortString::default();
        let work = short(&self.work_name(queue))?;
        let unroutable = || Error::UnknownQueue(queue.to_owned());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let session = self.session().await?;
            let outcome = async {
                let channel = self.publish_channel(&session).await?;
                let options = BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                };
                // Each publish is framed and queued when first polled, in this order; the
                // futures then only wait for the socket write.
                let sent = futures_util::future::join_all(envelopes.iter().map(|envelope| {
                    channel.basic_publish(
                        exchange.clone(),
                        work.clone(),
                        options,
                        envelope.payload(),
                        properties(envelope, None),
                    )
                }))
                .await;
                let mut confirms = Vec::with_capacity(sent.len());
                let mut first_error = None;
                for outcome in sent {
                    match outcome {
                        Ok(confirm) => confirms.push(confirm),
                        Err(e) => {
                            first_error.get_or_insert(backend(e));
                        }
                    }
                }
                for confirm in futures_util::future::join_all(confirms).await {
                    if let Err(e) = confirm
                        .map_err(backend)
                        .and_then(|c| confirmed(c, &unroutable))
                    {
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
            .await;
            match outcome {
                Err(Error::Backend { .. })
                    if attempt == 1 && !session.connection.status().connected() =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Publishes to the default exchange with the queue's name as routing key: the same
    /// route as through the direct exchange, where the server needs no binding lookup.
    async fn publish_to_queue(&self, queue: &str, envelope: &Envelope) -> Result<()> {
        let work = self.work_name(queue);
        self.publish_raw(
            "",
            &work,
            true,
            envelope.payload(),
            || properties(envelope, None),
            || Error::UnknownQueue(queue.to_owned()),
        )
        .await
    }

    /// Puts `envelope` back on `queue` after `ms` (through a delay queue when `ms > 0`).
    async fn republish(&self, queue: &str, envelope: &Envelope, ms: u64) -> Result<()> {
        if ms == 0 {
            return self.publish_to_queue(queue, envelope).await;
        }
        let name = self.delay_name(queue, ms);
        let session = self.session().await?;
        let channel = self.publish_channel(&session).await?;
        let idle = u64::try_from(DELAY_QUEUE_IDLE.as_millis()).unwrap_or(u64::MAX);
        let ttl = u32::try_from(ms).unwrap_or(u32::MAX);
        let expires = u32::try_from(ms.saturating_add(idle)).unwrap_or(u32::MAX);
        // Declared on every use: `x-expires` counts from the last declaration.
        channel
            .queue_declare(
                short(&name)?,
                QueueDeclareOptions::durable(),
                table(&[
                    ("x-message-ttl", AMQPValue::LongUInt(ttl)),
                    ("x-expires", AMQPValue::LongUInt(expires)),
                    (
                        "x-dead-letter-exchange",
                        AMQPValue::LongString(LongString::from("")),
                    ),
                    (
                        "x-dead-letter-routing-key",
                        AMQPValue::LongString(self.work_name(queue).as_str().into()),
                    ),
                ]),
            )
            .await
            .map_err(backend)?;
        self.publish_raw(
            "",
            &name,
            true,
            envelope.payload(),
            || properties(envelope, None),
            || backend(format!("delay queue {name} vanished")),
        )
        .await
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        let dead = self.dead_name(&letter.queue);
        let at = unix_millis(letter.dead_at).to_string();
        self.publish_raw(
            "",
            &dead,
            true,
            letter.envelope.payload(),
            || properties(&letter.envelope, Some((DEAD_AT, at.clone()))),
            || Error::UnknownQueue(letter.queue.clone()),
        )
        .await
    }

    /// Settles a held delivery for good: the message goes where `disposition` says, then
    /// the original is acknowledged.
    async fn finish(&self, held: &InFlight, disposition: &Disposition) -> Result<()> {
        if !held.acker.usable() {
            return Err(Error::StaleDelivery);
        }
        let unsent = || {
            let mut envelope = held.envelope.clone();
            envelope.set_delivered_at(None);
            envelope
        };
        match disposition {
            Disposition::Removed | Disposition::Extended => {}
            Disposition::Retry { delay } => {
                self.republish(&held.queue, &unsent(), delay_bucket(*delay))
                    .await?;
            }
            Disposition::DeadLetter { reason } => {
                let envelope = unsent();
                let attempts = envelope.attempt();
                let letter = DeadLetter::new(
                    &held.queue,
                    envelope,
                    reason.clone(),
                    attempts,
                    SystemTime::now(),
                );
                self.dead_letter(&letter).await?;
            }
        }
        if held.channel.settle(held.tag, Verdict::Ack).await {
            Ok(())
        } else {
            Err(Error::StaleDelivery)
        }
    }

    fn take(&self, token: u64) -> Option<InFlight> {
        lock(&self.in_flight).remove(&token)
    }

    /// Deliveries past their deadline: retried or dead-lettered. Returns the next deadline.
    async fn expire_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let due: Vec<(u64, InFlight)> = {
            let mut map = lock(&self.in_flight);
            let tokens: Vec<u64> = map
                .iter()
                .filter(|(_, h)| h.deadline <= now)
                .map(|(t, _)| *t)
                .collect();
            tokens
                .into_iter()
                .filter_map(|t| map.remove(&t).map(|h| (t, h)))
                .collect()
        };
        for (token, held) in due {
            self.held
                .release(&held.queue, &held.consumer, &token.to_string());
            let Ok(config) = self.config(&held.queue) else {
                continue;
            };
            let disposition = decide_expired(held.envelope.attempt(), config.get_retry());
            if self.finish(&held, &disposition).await.is_err() && held.acker.usable() {
                // Could not move it: hand it back to the server, which redelivers it
                // flagged as redelivered (counted as one more attempt).
                held.channel.settle(held.tag, Verdict::Requeue).await;
            }
        }
        lock(&self.in_flight).values().map(|h| h.deadline).min()
    }

    /// The channel fetches of `queue` consume on.
    async fn consume_channel(&self, session: &Session, queue: &str) -> Result<Arc<ConsumeChannel>> {
        let existing = lock(&session.consume).get(queue).cloned();
        if let Some(c) = existing {
            if c.channel.status().connected() {
                return Ok(c);
            }
            // The server closed the channel and took back what it held.
            self.lost(&c).await;
        }
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let fresh = Arc::new(ConsumeChannel::new(channel));
        // Two fetches of one queue may both have found no channel: the first to get here
        // keeps its channel and the other closes its own, so that the deliveries of both
        // stay on a channel that lives on (a channel dropped with unacknowledged deliveries
        // hands them back to the queue, and they would be delivered again).
        let kept = {
            let mut consume = lock(&session.consume);
            match consume.get(queue) {
                Some(other) if other.channel.status().connected() => Some(Arc::clone(other)),
                _ => {
                    consume.insert(queue.to_owned(), Arc::clone(&fresh));
                    None
                }
            }
        };
        if let Some(other) = kept {
            let _ = fresh.channel.close(200, "not needed".into()).await;
            return Ok(other);
        }
        Ok(fresh)
    }

    /// Up to `n` deliveries of `queue` from its subscription, waiting up to `wait` for the
    /// first.
    async fn receive(
        &self,
        session: &Session,
        queue: &str,
        n: u16,
        wait: Duration,
    ) -> Result<(Arc<ConsumeChannel>, Vec<Buffered>)> {
        let consume = self.consume_channel(session, queue).await?;
        let got = self.receive_on(&consume, queue, n, wait).await?;
        Ok((consume, got))
    }

    async fn receive_on(
        &self,
        consume: &Arc<ConsumeChannel>,
        queue: &str,
        n: u16,
        wait: Duration,
    ) -> Result<Vec<Buffered>> {
        let until = Instant::now() + wait;
        // Another fetch of this queue is waiting for a delivery: none is here for this one.
        let Ok(mut sub) = tokio::time::timeout_at(until, consume.subscription.lock()).await else {
            return Ok(Vec::new());
        };
        *lock(&consume.used) = Instant::now();
        let got = self
            .receive_locked(consume, &mut sub, queue, n, (wait, until))
            .await;
        consume.requeue_lost(&mut sub);
        got
    }

    async fn receive_locked(
        &self,
        consume: &Arc<ConsumeChannel>,
        sub: &mut Subscription,
        queue: &str,
        n: u16,
        (wait, until): (Duration, Instant),
    ) -> Result<Vec<Buffered>> {
        let channel = &consume.channel;
        let wanted = usize::from(n);
        if let Err(Ended::Failed(e)) = sub.pull_ready()
            && sub.buffer.is_empty()
        {
            return Err(backend(e));
        }
        if sub.buffer.len() < wanted {
            // Subscribed with room for `n` more, unless the prefetch is too small or every
            // place in it is taken by deliveries handed out and not settled: then a new
            // consumer (the old one's unsettled deliveries stay valid on the channel).
            let stalled = sub
                .current
                .as_ref()
                .is_none_or(|c| c.prefetch < n || (sub.buffer.is_empty() && sub.room() == 0));
            if stalled {
                let unsubscribed = self.unsubscribe(consume, sub).await;
                consume.requeue_lost(sub);
                unsubscribed?;
                let work = short(&self.work_name(queue))?;
                // Twice the fetch: while one batch is handed out, the next is on its way.
                sub.subscribe(channel, work, n.saturating_mul(2)).await?;
            }
        }
        if !sub.buffer.is_empty() {
            return Ok(sub.take(wanted));
        }
        if wait < Duration::from_millis(5) {
            if sub.owed > 0 && sub.room() > 0 {
                // Ready when last asked, and the window has room: on their way.
                let until = Instant::now() + STRAGGLER_WAIT;
                if sub.next_until(until).await {
                    let _ = sub.pull_ready();
                    return Ok(sub.take(wanted));
                }
                // Another consumer took them.
                sub.owed = 0;
            }
            // Nothing to wait for and nothing received: ask whether anything is ready. A
            // `basic.get` takes the first and says how many more are ready; the consumer
            // is sent those (as many as its window has room for).
            let work = short(&self.work_name(queue))?;
            let Some(first) = channel
                .basic_get(work, BasicGetOptions::default())
                .await
                .map_err(backend)?
            else {
                return Ok(Vec::new());
            };
            let ready = usize::try_from(first.message_count).unwrap_or(usize::MAX);
            sub.gaps.observe(first.delivery.delivery_tag);
            // Deliveries that reached the client before the get-ok were sent before the
            // server took the first: they come before it.
            let _ = sub.pull_ready();
            sub.buffer.push_back(Buffered {
                delivery: first.delivery,
                slot: Slot(None),
            });
            sub.owed = ready;
            let expected = wanted.min(sub.buffer.len().saturating_add(ready.min(sub.room())));
            // They are ready: only another consumer taking them first makes this wait.
            let until = Instant::now() + STRAGGLER_WAIT;
            while sub.buffer.len() < expected && sub.next_until(until).await {}
            return Ok(sub.take(wanted));
        }
        let Some(current) = sub.current.as_mut() else {
            return Ok(Vec::new());
        };
        let Ok(item) = tokio::time::timeout_at(until, current.consumer.next()).await else {
            return Ok(Vec::new());
        };
        match sub.accept(item) {
            Ok(()) => {
                let _ = sub.pull_ready();
                Ok(sub.take(wanted))
            }
            Err(Ended::Cancelled) => Err(backend(format!(
                "the server cancelled the consumer of {} (queue deleted?)",
                self.work_name(queue)
            ))),
            Err(Ended::Failed(e)) => Err(backend(e)),
        }
    }

    /// Gives what `sub` received and did not hand out back to the queue without counting
    /// an attempt, and cancels its consumer: each message is published again with the
    /// attempts it had (as a retry is) and the original acknowledged. One that cannot be
    /// published is requeued (flagged redelivered) and remembered here.
    async fn hand_back(&self, queue: &str, consume: &Arc<ConsumeChannel>, sub: &mut Subscription) {
        let _ = self.unsubscribe(consume, sub).await;
        consume.requeue_lost(sub);
        let buffered: Vec<Buffered> = sub.buffer.drain(..).collect();
        for b in buffered {
            let d = &b.delivery;
            let copied = match self.as_received(d) {
                Some(envelope) => self.publish_to_queue(queue, &envelope).await.is_ok(),
                None => false,
            };
            let verdict = if copied {
                Verdict::Ack
            } else {
                self.remember_unseen(std::slice::from_ref(&b));
                Verdict::Requeue
            };
            consume.settle(d.delivery_tag, verdict).await;
        }
    }

    /// The envelope of a delivery not handed out, with the attempts it had so far
    /// (`bk-attempt` plus the server's count of returns, less one the server took back
    /// from this process before it was handed out).
    fn as_received(&self, d: &AmqpDelivery) -> Option<Envelope> {
        let (mut envelope, count) =
            from_properties(&d.properties, Bytes::copy_from_slice(&d.data)).ok()?;
        let returned = self.returned(envelope.id(), count.unwrap_or(u32::from(d.redelivered)));
        envelope.set_attempt(envelope.attempt().saturating_add(returned));
        Some(envelope)
    }

    /// The server's count of returns of a message, less the one it took back from this
    /// process before it was handed out, if it did.
    fn returned(&self, id: MessageId, returned: u32) -> u32 {
        if returned > 0 && lock(&self.unseen).remove(&id).is_some() {
            returned - 1
        } else {
            returned
        }
    }

    /// The server takes `buffered` back (a lost channel or connection, or a requeue):
    /// their next delivery here is not one more attempt.
    fn remember_unseen(&self, buffered: &[Buffered]) {
        if buffered.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut unseen = lock(&self.unseen);
        if unseen.len() >= UNSEEN_LIMIT {
            unseen.retain(|_, at| now.saturating_duration_since(*at) < UNSEEN_KEPT);
        }
        for b in buffered {
            if unseen.len() >= UNSEEN_LIMIT {
                break;
            }
            if let Ok((envelope, _)) = from_properties(&b.delivery.properties, Bytes::new()) {
                unseen.insert(envelope.id(), now);
            }
        }
    }

    /// Cancels `sub`'s consumer and requeues what lapin dropped of what the server sent it
    /// (see [`Gaps`]).
    ///
    /// A classic queue sends its `basic.cancel-ok` through the channel after the last
    /// delivery to the consumer. A quorum queue's channel answers the cancel itself, and a
    /// delivery already on its way to the channel then follows the `basic.cancel-ok`;
    /// lapin drops it, and no later delivery on the channel may come to reveal its tag.
    /// So on a quorum queue the channel is asked for its next delivery tag: an empty
    /// message is published to a probe queue of the channel's own and taken back with
    /// `basic.get`, which the channel answers after what it had to send before (RabbitMQ
    /// handles one channel's work in order). Its tag closes every gap below it.
    ///
    /// The dropped deliveries found are left in `sub.gaps` for the caller to requeue
    /// ([`ConsumeChannel::requeue_lost`]): `pending` counts them first.
    async fn unsubscribe(
        &self,
        consume: &Arc<ConsumeChannel>,
        sub: &mut Subscription,
    ) -> Result<()> {
        let had = sub.current.is_some();
        let outcome = sub.unsubscribe(&consume.channel).await;
        if had
            && outcome.is_ok()
            && self.options.queue_type == AmqpQueueType::Quorum
            && let Some(tag) = consume.probe_tag(sub).await
        {
            sub.gaps.observe(tag);
        }
        outcome
    }

    /// `consume` is gone with its channel or connection: what it had received and not
    /// handed out goes back to the queue on the server.
    async fn lost(&self, consume: &ConsumeChannel) {
        // A fetch still using it ends soon (its channel is closed).
        if let Ok(mut sub) =
            tokio::time::timeout(Duration::from_secs(1), consume.subscription.lock()).await
        {
            // What reached the client before the channel closed is in the consumer's stream.
            let _ = sub.pull_ready();
            sub.current = None;
            let buffered: Vec<Buffered> = sub.buffer.drain(..).collect();
            self.remember_unseen(&buffered);
        }
    }

    /// Subscriptions no fetch used for their queue's ack wait: their consumers are
    /// cancelled and what they received goes back to the queue, for other consumers.
    async fn return_idle(&self) {
        let Ok(session) = self.session.try_lock().map(|s| s.clone()) else {
            return;
        };
        let Some(session) = session else {
            return;
        };
        let channels: Vec<(String, Arc<ConsumeChannel>)> = lock(&session.consume)
            .iter()
            .map(|(q, c)| (q.clone(), Arc::clone(c)))
            .collect();
        for (queue, consume) in channels {
            let Ok(config) = self.config(&queue) else {
                continue;
            };
            if lock(&consume.used).elapsed() < config.get_ack_wait()
                || !consume.channel.status().connected()
            {
                continue;
            }
            let Ok(mut sub) = consume.subscription.try_lock() else {
                continue;
            };
            if sub.current.is_some() || !sub.buffer.is_empty() {
                self.hand_back(&queue, &consume, &mut sub).await;
            }
        }
    }
}

impl Subscription {
    /// Free places in the current consumer's prefetch window.
    fn room(&self) -> usize {
        self.current.as_ref().map_or(0, |c| {
            usize::from(c.prefetch).saturating_sub(c.window.load(Ordering::Relaxed))
        })
    }

    fn take(&mut self, n: usize) -> Vec<Buffered> {
        let n = n.min(self.buffer.len());
        self.buffer.drain(..n).collect()
    }

    /// One item of the current consumer's stream.
    fn accept(
        &mut self,
        item: Option<lapin::Result<AmqpDelivery>>,
    ) -> std::result::Result<(), Ended> {
        match item {
            Some(Ok(delivery)) => {
                self.owed = self.owed.saturating_sub(1);
                self.gaps.observe(delivery.delivery_tag);
                let slot = Slot(self.current.as_ref().map(|c| {
                    c.window.fetch_add(1, Ordering::Relaxed);
                    Arc::clone(&c.window)
                }));
                self.buffer.push_back(Buffered { delivery, slot });
                Ok(())
            }
            Some(Err(e)) => {
                self.current = None;
                Err(Ended::Failed(e))
            }
            None => {
                self.current = None;
                Err(Ended::Cancelled)
            }
        }
    }

    /// Waits until `until` for the consumer's next delivery; true when one joined the
    /// buffer.
    async fn next_until(&mut self, until: Instant) -> bool {
        let Some(current) = self.current.as_mut() else {
            return false;
        };
        match tokio::time::timeout_at(until, current.consumer.next()).await {
            Ok(item) => self.accept(item).is_ok(),
            Err(_) => false,
        }
    }

    /// Moves what the consumer has received into the buffer, without waiting.
    fn pull_ready(&mut self) -> std::result::Result<(), Ended> {
        loop {
            let Some(current) = self.current.as_mut() else {
                return Ok(());
            };
            let Some(item) = current.consumer.next().now_or_never() else {
                return Ok(());
            };
            self.accept(item)?;
        }
    }

    async fn subscribe(
        &mut self,
        channel: &Channel,
        queue: ShortString,
        prefetch: u16,
    ) -> Result<()> {
        if self.qos != prefetch {
            channel
                .basic_qos(prefetch, BasicQosOptions { global: false })
                .await
                .map_err(backend)?;
            self.qos = prefetch;
        }
        let consumer = channel
            .basic_consume(
                queue,
                ShortString::default(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(backend)?;
        self.current = Some(Subscribed {
            consumer,
            prefetch,
            window: Arc::new(AtomicUsize::new(0)),
        });
        Ok(())
    }

    /// Cancels the current consumer; what it was sent before the cancel-ok joins the
    /// buffer, so that afterwards every message of the queue is either ready on the server,
    /// here, or handed out.
    async fn unsubscribe(&mut self, channel: &Channel) -> Result<()> {
        let Some(current) = self.current.as_ref() else {
            return Ok(());
        };
        let cancelled = channel
            .basic_cancel(current.consumer.tag(), BasicCancelOptions::default())
            .await;
        if let Err(e) = cancelled {
            self.current = None;
            return Err(backend(e));
        }
        loop {
            let Some(current) = self.current.as_mut() else {
                return Ok(());
            };
            let item = current.consumer.next().await;
            match self.accept(item) {
                Ok(()) => {}
                Err(Ended::Cancelled) => return Ok(()),
                Err(Ended::Failed(e)) => return Err(backend(e)),
            }
        }
    }
}

impl ConsumeChannel {
    /// The channel's next delivery tag, taken by a `basic.get` of an empty message from
    /// the channel's probe queue (a server-named exclusive queue, declared on first use).
    /// The probe message is acknowledged through the settler like any delivery.
    async fn probe_tag(self: &Arc<Self>, sub: &mut Subscription) -> Option<u64> {
        let channel = &self.channel;
        let name = match &sub.probe {
            Some(name) => name.clone(),
            None => {
                let queue = channel
                    .queue_declare(
                        ShortString::default(),
                        QueueDeclareOptions::exclusive(),
                        FieldTable::default(),
                    )
                    .await
                    .ok()?;
                let name = queue.name().clone();
                sub.probe = Some(name.clone());
                name
            }
        };
        channel
            .basic_publish(
                ShortString::default(),
                name.clone(),
                BasicPublishOptions::default(),
                &[],
                BasicProperties::default(),
            )
            .await
            .ok()?;
        let got = channel
            .basic_get(name, BasicGetOptions::default())
            .await
            .ok()??;
        let tag = got.delivery.delivery_tag;
        self.settle_unwatched(std::iter::once((tag, Verdict::Ack)));
        Some(tag)
    }

    /// Requeues the deliveries `sub` found lapin dropped (see [`Gaps`]), through the
    /// settler so that its `multiple` acks never pass over them unsettled.
    fn requeue_lost(self: &Arc<Self>, sub: &mut Subscription) {
        let lost = sub.gaps.take_lost();
        if lost.is_empty() {
            return;
        }
        self.settle_unwatched(lost.into_iter().map(|tag| (tag, Verdict::Requeue)));
    }

    /// Queues settlements nobody waits for, as [`settle`](Self::settle) does.
    fn settle_unwatched(self: &Arc<Self>, settlements: impl Iterator<Item = (u64, Verdict)>) {
        let start = {
            let mut settler = lock(&self.settler);
            for (tag, verdict) in settlements {
                settler.queued.push((tag, verdict, oneshot::channel().0));
            }
            !std::mem::replace(&mut settler.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).send_settlements());
        }
    }

    fn new(channel: Channel) -> Self {
        Self {
            channel,
            subscription: tokio::sync::Mutex::new(Subscription::default()),
            settler: Mutex::new(Settler::default()),
            used: Mutex::new(Instant::now()),
        }
    }

    /// Acks or requeues delivery `tag` of this channel; true once the frame is sent.
    async fn settle(self: &Arc<Self>, tag: u64, verdict: Verdict) -> bool {
        let (sent, outcome) = oneshot::channel();
        let start = {
            let mut settler = lock(&self.settler);
            settler.queued.push((tag, verdict, sent));
            !std::mem::replace(&mut settler.running, true)
        };
        if start {
            // A task of its own, so that it runs after every settlement issued together
            // with this one was queued.
            tokio::spawn(Arc::clone(self).send_settlements());
        }
        outcome.await.unwrap_or(false)
    }

    async fn send_settlements(self: Arc<Self>) {
        loop {
            let (queued, multiple) = {
                let mut settler = lock(&self.settler);
                if settler.queued.is_empty() {
                    settler.running = false;
                    return;
                }
                let queued = std::mem::take(&mut settler.queued);
                let multiple = settler.plan(&queued);
                (queued, multiple)
            };
            let channel = &self.channel;
            let mut sent = vec![false; queued.len()];
            // Requeues before the `multiple` ack that may pass over them, in this order.
            for ((tag, verdict, _), slot) in queued.iter().zip(sent.iter_mut()) {
                if *verdict == Verdict::Requeue {
                    *slot = channel
                        .basic_nack(
                            *tag,
                            BasicNackOptions {
                                requeue: true,
                                ..BasicNackOptions::default()
                            },
                        )
                        .await
                        .is_ok();
                }
            }
            if let Some(upto) = multiple {
                let ok = channel
                    .basic_ack(upto, BasicAckOptions { multiple: true })
                    .await
                    .is_ok();
                for ((tag, verdict, _), slot) in queued.iter().zip(sent.iter_mut()) {
                    if *verdict == Verdict::Ack && *tag <= upto {
                        *slot = ok;
                    }
                }
            }
            let singles: Vec<usize> = queued
                .iter()
                .enumerate()
                .filter(|(_, (tag, verdict, _))| {
                    *verdict == Verdict::Ack && multiple.is_none_or(|upto| *tag > upto)
                })
                .map(|(i, _)| i)
                .collect();
            let acked = futures_util::future::join_all(singles.iter().map(|&i| {
                let tag = queued.get(i).map_or(0, |q| q.0);
                channel.basic_ack(tag, BasicAckOptions::default())
            }))
            .await;
            for (&i, outcome) in singles.iter().zip(acked) {
                if let Some(slot) = sent.get_mut(i) {
                    *slot = outcome.is_ok();
                }
            }
            for ((_, _, waiter), ok) in queued.into_iter().zip(sent) {
                let _ = waiter.send(ok);
            }
        }
    }
}

impl Settler {
    /// Records `queued` as settled and moves `floor` up; returns the tag for one
    /// `basic.ack` with `multiple` when the run it completes holds at least two of the
    /// queued acks (all the queued acks up to that tag, which need no frame of their own).
    fn plan(&mut self, queued: &[(u64, Verdict, oneshot::Sender<bool>)]) -> Option<u64> {
        for (tag, _, _) in queued {
            // Bounded: past the bound a settled tag is left out, as if still unsettled,
            // which only breaks runs (a delivery that is never settled keeps the floor).
            if *tag > self.floor && self.settled.len() < SETTLED_AHEAD {
                self.settled.insert(*tag);
            }
        }
        let mut acks: Vec<u64> = queued
            .iter()
            .filter(|(_, verdict, _)| *verdict == Verdict::Ack)
            .map(|(tag, _, _)| *tag)
            .collect();
        acks.sort_unstable();
        let (mut last, mut in_run) = (0, 0usize);
        while self.settled.remove(&(self.floor + 1)) {
            self.floor += 1;
            if acks.binary_search(&self.floor).is_ok() {
                last = self.floor;
                in_run += 1;
            }
        }
        (in_run >= 2).then_some(last)
    }
}

/// Enforces the ack deadlines of the deliveries a broker holds, until it is dropped.
async fn reap(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        let next = match inner.upgrade() {
            Some(inner) => {
                let next = inner.expire_due().await;
                inner.return_idle().await;
                next
            }
            None => return,
        };
        let idle = Instant::now() + REAPER_IDLE;
        let until = next.map_or(idle, |t| t.min(idle));
        let _ = tokio::time::timeout_at(until, notified).await;
    }
}

impl AmqpBroker {
    /// A request with a reply queue of its own, for a correlation id already in flight.
    async fn request_alone(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Envelope> {
        let session = self.inner.session().await?;
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let outcome = async {
            let (reply_queue, mut replies) = consume_replies(&channel).await?;
            let mut envelope = envelope;
            envelope
                .headers_mut()
                .insert("reply-to", reply_queue.as_str())?;
            self.publish(queue, envelope).await?;
            match tokio::time::timeout(timeout, replies.next()).await {
                Ok(Some(Ok(d))) => Ok(from_properties(&d.properties, Bytes::from(d.data))?.0),
                Ok(Some(Err(e))) => Err(backend(e)),
                Ok(None) | Err(_) => Err(Error::Timeout(timeout)),
            }
        }
        .await;
        let _ = channel.close(200, "replied".into()).await;
        outcome
    }
}

impl Broker for AmqpBroker {
    fn name(&self) -> &'static str {
        "amqp"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // A retried message goes to the back of the queue: first deliveries are in
            // publication order, as the capability asks.
            publish_dedup: false,
            ordered_keys: false,
            ..Capabilities::all()
        }
    }

    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        check_queue_name(queue)?;
        config.validate()?;
        let inner = &self.inner;
        let session = inner.session().await?;
        // A channel of its own: a declaration the server refuses closes it.
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let declared = inner.declare_queue(&channel, queue).await;
        let _ = channel.close(200, "declared".into()).await;
        declared?;
        lock(&inner.queues).insert(queue.to_owned(), config.clone());
        Ok(())
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        self.inner.config(queue)?;
        refuse_ordering_key("amqp", &envelope)?;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        self.inner.publish_to_queue(queue, &envelope).await
    }

    /// All publishes are sent before their confirms are awaited together.
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Result<()> {
        self.inner.config(queue)?;
        let mut envelopes = envelopes;
        for envelope in &mut envelopes {
            refuse_ordering_key("amqp", envelope)?;
            envelope.set_attempt(0);
        }
        if envelopes.is_empty() {
            return Ok(());
        }
        self.inner.publish_all_to_queue(queue, &envelopes).await
    }

    /// Acks are sent together (a `basic.ack` has no answer to wait for); other
    /// settlements one after the other.
    async fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> Vec<Result<Disposition>> {
        if settlement != Settlement::Ack {
            let mut out = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                out.push(self.settle(delivery, settlement.clone()).await);
            }
            return out;
        }
        let inner = &self.inner;
        let taken: Vec<Result<(InFlight, u64, &str)>> = deliveries
            .iter()
            .map(|delivery| {
                let DeliveryToken::Amqp { token, consumer } = &delivery.token else {
                    return Err(Error::StaleDelivery);
                };
                inner.config(&delivery.queue)?;
                let held = inner.take(*token).ok_or(Error::StaleDelivery)?;
                Ok((held, *token, consumer.as_str()))
            })
            .collect();
        let acks = taken.into_iter().map(|taken| async move {
            let (held, token, consumer) = taken?;
            let outcome = inner.finish(&held, &Disposition::Removed).await;
            inner
                .held
                .release(&held.queue, consumer, &token.to_string());
            outcome.map(|()| Disposition::Removed)
        });
        futures_util::future::join_all(acks).await
    }

    async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let inner = &self.inner;
        let config = inner.config(queue)?;
        let start = Instant::now();
        let end = start.checked_add(wait).unwrap_or(start);
        let max = match config.get_prefetch() {
            Some(limit) => max.min(inner.held.room(queue, consumer, limit, end).await),
            None => max,
        };
        let n = u16::try_from(max).unwrap_or(u16::MAX);
        if n == 0 {
            return Ok(Vec::new());
        }
        let wait = end.saturating_duration_since(Instant::now());
        let mut attempt = 0;
        let (channel, raw) = loop {
            attempt += 1;
            let session = inner.session().await?;
            match inner.receive(&session, queue, n, wait).await {
                Err(Error::Backend { .. })
                    if attempt == 1 && !session.connection.status().connected() => {}
                other => break other?,
            }
        };
        let mut out = Vec::with_capacity(raw.len());
        if raw.is_empty() {
            return Ok(out);
        }
        let shared_queue: Arc<str> = Arc::from(queue);
        let shared_consumer: Arc<str> = Arc::from(consumer);
        let ack_wait = config.get_ack_wait();
        let delivered_at = SystemTime::now();
        for Buffered { delivery: d, slot } in raw {
            let payload = Bytes::from(d.data);
            let (mut envelope, count) = match from_properties(&d.properties, payload.clone()) {
                Ok(parsed) => parsed,
                Err(e) => {
                    let letter = DeadLetter::new(
                        queue,
                        Envelope::new(payload),
                        format!("unreadable headers: {e}"),
                        1,
                        SystemTime::now(),
                    );
                    inner.dead_letter(&letter).await?;
                    channel.settle(d.delivery_tag, Verdict::Ack).await;
                    continue;
                }
            };
            // Deliveries the server took back (a lost connection) are not in `bk-attempt`:
            // quorum queues count them, classic ones only flag the message.
            // A return of a message this process received and never handed out is not
            // an attempt.
            let returned = inner.returned(envelope.id(), count.unwrap_or(u32::from(d.redelivered)));
            let previous = envelope.attempt().saturating_add(returned);
            if returned > 0
                && let Disposition::DeadLetter { reason } =
                    decide_expired(previous, config.get_retry())
            {
                envelope.set_attempt(previous);
                let letter = DeadLetter::new(queue, envelope, reason, previous, SystemTime::now());
                inner.dead_letter(&letter).await?;
                channel.settle(d.delivery_tag, Verdict::Ack).await;
                continue;
            }
            envelope.set_attempt(previous.saturating_add(1));
            envelope.set_delivered_at(Some(delivered_at));
            let token = inner.next_token.fetch_add(1, Ordering::Relaxed);
            lock(&inner.in_flight).insert(
                token,
                InFlight {
                    queue: Arc::clone(&shared_queue),
                    consumer: Arc::clone(&shared_consumer),
                    acker: d.acker,
                    channel: Arc::clone(&channel),
                    tag: d.delivery_tag,
                    envelope: envelope.clone(),
                    deadline: Instant::now() + ack_wait,
                    _slot: slot,
                },
            );
            if config.get_prefetch().is_some() {
                inner
                    .held
                    .hold(queue, consumer, &token.to_string(), ack_wait);
            }
            out.push(Delivery {
                queue: Arc::clone(&shared_queue),
                envelope,
                token: DeliveryToken::Amqp {
                    token,
                    consumer: consumer.to_owned(),
                },
            });
        }
        inner.reaper.notify_one();
        Ok(out)
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        let DeliveryToken::Amqp { token, consumer } = &delivery.token else {
            return Err(Error::StaleDelivery);
        };
        let inner = &self.inner;
        let config = inner.config(&delivery.queue)?;
        let unit = lock(&inner.jitter).next_unit();
        let attempt = delivery.envelope.attempt();
        let mut disposition = decide(&settlement, attempt, config.get_retry(), unit);
        let counted = config.get_prefetch().is_some();
        if disposition == Disposition::Extended {
            let ack_wait = config.get_ack_wait();
            let mut map = lock(&inner.in_flight);
            let Some(held) = map.get_mut(token) else {
                return Err(Error::StaleDelivery);
            };
            held.deadline = Instant::now() + ack_wait;
            drop(map);
            if counted {
                inner
                    .held
                    .hold(&delivery.queue, consumer, &token.to_string(), ack_wait);
            }
            return Ok(disposition);
        }
        let Some(held) = inner.take(*token) else {
            return Err(Error::StaleDelivery);
        };
        if let Disposition::Retry { delay } = &mut disposition {
            *delay = Duration::from_millis(delay_bucket(*delay));
        }
        let outcome = inner.finish(&held, &disposition).await;
        if counted {
            inner
                .held
                .release(&delivery.queue, consumer, &token.to_string());
        }
        outcome.map(|()| disposition)
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        check_queue_name(queue)?;
        let inner = &self.inner;
        let session = inner.session().await?;
        // Read without acknowledging, on a channel of its own; closing it puts every
        // message back where it was.
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let dead = short(&inner.dead_name(queue))?;
        let mut out = Vec::new();
        let mut failure = None;
        while out.len() < max {
            match channel
                .basic_get(dead.clone(), BasicGetOptions::default())
                .await
            {
                Ok(Some(message)) => {
                    let d = message.delivery;
                    let at = dead_at(&d.properties);
                    match from_properties(&d.properties, Bytes::from(d.data)) {
                        Ok((envelope, _)) => {
                            out.push(DeadLetter::from_stored(queue, envelope, at));
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(backend(e));
                    break;
                }
            }
        }
        let _ = channel.close(200, "listed".into()).await;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        check_queue_name(queue)?;
        let inner = &self.inner;
        inner.config(queue)?;
        let session = inner.session().await?;
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let dead = short(&inner.dead_name(queue))?;
        let mut moved = 0;
        let outcome = async {
            while moved < max {
                let Some(message) = channel
                    .basic_get(dead.clone(), BasicGetOptions::default())
                    .await
                    .map_err(backend)?
                else {
                    break;
                };
                let d = message.delivery;
                let (envelope, _) = from_properties(&d.properties, Bytes::from(d.data))?;
                let letter = DeadLetter::from_stored(queue, envelope, UNIX_EPOCH);
                inner
                    .publish_to_queue(queue, &letter.into_redriven())
                    .await?;
                d.acker.ack(Default::default()).await.map_err(backend)?;
                moved += 1;
            }
            Ok::<_, Error>(())
        }
        .await;
        let _ = channel.close(200, "redriven".into()).await;
        outcome.map(|()| moved)
    }

    async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        check_queue_name(topic)?;
        let inner = &self.inner;
        inner.config(queue)?;
        let session = inner.session().await?;
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let bound = inner.bind_queue(&channel, topic, queue).await;
        let _ = channel.close(200, "bound".into()).await;
        bound?;
        lock(&inner.bindings).insert((topic.to_owned(), queue.to_owned()));
        Ok(())
    }

    async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        check_queue_name(topic)?;
        refuse_ordering_key("amqp", &envelope)?;
        let inner = &self.inner;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        let (exchange, key) = if inner.options.fanout_topics {
            if !lock(&inner.fanouts).contains(topic) {
                let session = inner.session().await?;
                let channel = session.connection.create_channel().await.map_err(backend)?;
                let declared = inner.declare_fanout(&channel, topic).await;
                let _ = channel.close(200, "declared".into()).await;
                declared?;
                lock(&inner.fanouts).insert(topic.to_owned());
            }
            (inner.fanout_exchange(topic), String::new())
        } else {
            (inner.topic_exchange(), topic.to_owned())
        };
        // Not mandatory: a topic nobody is bound to takes the message and drops it.
        inner
            .publish_raw(
                &exchange,
                &key,
                false,
                envelope.payload(),
                || properties(&envelope, None),
                || backend("unroutable"),
            )
            .await
    }

    async fn request(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Envelope> {
        let inner = &self.inner;
        inner.config(queue)?;
        let session = inner.session().await?;
        let replies = session
            .replies
            .get_or_try_init(|| ReplyQueue::open(&session.connection))
            .await?;
        let envelope = prepare_request(envelope, &replies.name)?;
        let correlation = envelope
            .headers()
            .correlation_id()
            .unwrap_or_default()
            .to_owned();
        // Registered before the publish; the entry goes when this future returns or is
        // dropped.
        let Some(waiter) = replies.waiters.try_register(correlation) else {
            // A caller's own correlation id that a request in flight already uses: a
            // reply queue of its own keeps the two replies apart.
            return self.request_alone(queue, envelope, timeout).await;
        };
        self.publish(queue, envelope).await?;
        waiter.wait(timeout).await
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        let (reply_to, mut response) = prepare_reply(request, response)?;
        // Only a server-named reply queue: a reply-to from a message must not name any
        // other queue.
        let name = reply_to.strip_prefix(REPLY_PREFIX).unwrap_or_default();
        if name.is_empty()
            || reply_to.len() > 255
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return Err(Error::InvalidHeader {
                name: "reply-to".into(),
                reason: "not a server-named reply queue (amq.gen-...)",
            });
        }
        response.set_published_at(SystemTime::now());
        // Not mandatory: a reply to a requester that stopped waiting is dropped.
        self.inner
            .publish_raw(
                "",
                &reply_to,
                false,
                response.payload(),
                || properties(&response, None),
                || backend("unroutable"),
            )
            .await
    }

    /// Cancels the queue's consumer first (the next fetch subscribes again), so that no
    /// message is on its way to this process while the server counts.
    async fn pending(&self, queue: &str) -> Result<usize> {
        let inner = &self.inner;
        inner.config(queue)?;
        let session = inner.session().await?;
        let consume = lock(&session.consume).get(queue).cloned();
        let mut buffered = 0;
        // Held until the count is made: no fetch takes from the buffer meanwhile.
        let mut locked = None;
        if let Some(consume) = &consume
            && consume.channel.status().connected()
        {
            let mut sub = consume.subscription.lock().await;
            let unsubscribed = inner.unsubscribe(consume, &mut sub).await;
            if unsubscribed.is_err() {
                consume.requeue_lost(&mut sub);
            }
            unsubscribed?;
            // Deliveries lapin dropped are still out to this channel (not ready on the
            // server): counted here, requeued once the count is made.
            buffered = sub.buffer.len() + sub.gaps.suspects.len();
            locked = Some((consume, sub));
        }
        let channel = session.connection.create_channel().await.map_err(backend)?;
        let outcome = channel
            .queue_declare(
                short(&inner.work_name(queue))?,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(backend);
        let _ = channel.close(200, "counted".into()).await;
        if let Some((consume, mut sub)) = locked {
            consume.requeue_lost(&mut sub);
        }
        let ready = usize::try_from(outcome?.message_count()).unwrap_or(usize::MAX);
        let held = lock(&inner.in_flight)
            .values()
            .filter(|h| &*h.queue == queue)
            .count();
        Ok(ready + held + buffered)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn delay_buckets_round_up_to_two_digits() {
        assert_eq!(delay_bucket(Duration::ZERO), 0);
        assert_eq!(delay_bucket(Duration::from_micros(1)), 1);
        assert_eq!(delay_bucket(Duration::from_millis(99)), 99);
        assert_eq!(delay_bucket(Duration::from_millis(300)), 300);
        assert_eq!(delay_bucket(Duration::from_millis(301)), 310);
        assert_eq!(delay_bucket(Duration::from_millis(1234)), 1300);
        assert_eq!(delay_bucket(Duration::from_secs(3600)), 3_600_000);
        assert_eq!(
            delay_bucket(Duration::from_secs(u64::MAX)),
            u64::from(u32::MAX).div_ceil(100_000_000) * 100_000_000
        );
    }

    #[test]
    fn multiple_acks_cover_only_unbroken_runs_of_tags() {
        fn plan(settler: &mut Settler, tags: &[(u64, Verdict)]) -> Option<u64> {
            let queued: Vec<_> = tags
                .iter()
                .map(|(tag, verdict)| (*tag, *verdict, oneshot::channel().0))
                .collect();
            settler.plan(&queued)
        }
        let mut settler = Settler::default();
        let s = &mut settler;
        // 1..=3 acked together: one frame for all three.
        assert_eq!(
            plan(
                s,
                &[(2, Verdict::Ack), (1, Verdict::Ack), (3, Verdict::Ack)]
            ),
            Some(3)
        );
        // Tag 4 not seen yet (on its way to another fetch): 5 and 6 go alone.
        assert_eq!(plan(s, &[(5, Verdict::Ack), (6, Verdict::Ack)]), None);
        // 4 closes the gap, but it is the only ack of this batch in the run: a single frame.
        assert_eq!(plan(s, &[(4, Verdict::Ack)]), None);
        assert_eq!(s.floor, 6);
        assert!(s.settled.is_empty());
        // A requeue inside the run is sent before the `multiple` ack that passes over it.
        assert_eq!(
            plan(
                s,
                &[(7, Verdict::Requeue), (8, Verdict::Ack), (9, Verdict::Ack)]
            ),
            Some(9)
        );
        // A run never starts above the floor's next tag.
        assert_eq!(plan(s, &[(11, Verdict::Ack), (12, Verdict::Ack)]), None);
        assert_eq!(s.floor, 9);
        // Tags settled alone before (11, 12) are passed over by the run they are now in.
        assert_eq!(plan(s, &[(10, Verdict::Ack), (13, Verdict::Ack)]), Some(13));
        assert_eq!(s.floor, 13);
    }

    #[test]
    fn skipped_delivery_tags_are_dropped_deliveries() {
        let mut gaps = Gaps::default();
        for tag in 1..=3 {
            gaps.observe(tag);
        }
        assert!(gaps.take_lost().is_empty());
        // 4 and 5 skipped; 4 then arrives late (a `basic.get` delivery taken in first).
        gaps.observe(6);
        gaps.observe(4);
        assert_eq!(gaps.take_lost(), vec![5]);
        gaps.observe(7);
        assert!(gaps.take_lost().is_empty());
        // A jump past any prefetch window is not taken for dropped deliveries.
        gaps.observe(7 + GAP_LIMIT + 1);
        assert!(gaps.take_lost().is_empty());
    }

    #[test]
    fn envelope_round_trips_through_properties() {
        let envelope = Envelope::new("hi")
            .with_header("correlation-id", "c-1")
            .unwrap()
            .with_header("x-user", "v")
            .unwrap();
        let mut props = properties(&envelope, None);
        // The server's own headers are left out.
        let mut table = props.headers().clone().unwrap();
        table.insert("x-death".into(), AMQPValue::FieldArray(Default::default()));
        table.insert(
            "x-first-death-queue".into(),
            AMQPValue::LongString("q".into()),
        );
        props = props.with_headers(table);
        let (back, count) = from_properties(&props, Bytes::from_static(b"hi")).unwrap();
        assert_eq!(back.id(), envelope.id());
        assert_eq!(back.headers(), envelope.headers());
        assert_eq!(back.published_at(), envelope.published_at());
        assert_eq!(count, None);
        assert_eq!(
            props.message_id().as_ref().unwrap().as_str(),
            envelope.id().to_string()
        );
        assert_eq!(props.correlation_id().as_ref().unwrap().as_str(), "c-1");
    }

    #[test]
    fn foreign_header_values_become_text_or_are_refused() {
        let envelope = Envelope::new("x");
        let mut table = properties(&envelope, None).headers().clone().unwrap();
        table.insert("x-n".into(), AMQPValue::LongLongInt(-7));
        table.insert("x-b".into(), AMQPValue::Boolean(true));
        table.insert("x-delivery-count".into(), AMQPValue::LongLongInt(2));
        let props = BasicProperties::default().with_headers(table.clone());
        let (back, count) = from_properties(&props, Bytes::new()).unwrap();
        assert_eq!(back.headers().get("x-n"), Some("-7"));
        assert_eq!(back.headers().get("x-b"), Some("true"));
        assert_eq!(count, Some(2));
        table.insert(
            "x-table".into(),
            AMQPValue::FieldTable(FieldTable::default()),
        );
        let props = BasicProperties::default().with_headers(table);
        assert!(matches!(
            from_properties(&props, Bytes::new()),
            Err(Error::WireHeader { .. })
        ));
        // No bk- headers at all: unreadable, as on every backend.
        let props = BasicProperties::default();
        assert!(from_properties(&props, Bytes::new()).is_err());
    }
}
