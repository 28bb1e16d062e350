//! MQTT backend (feature `mqtt`, on `rumqttc`'s MQTT 5 client without TLS), for Mosquitto
//! and other MQTT 5 servers.
//!
//! Topics, under the broker's topic prefix `<p>` (empty, or levels of its own):
//! a queue is the topic `<p>/bk-q/<queue>`, read through a **persistent session** (client
//! id `<client-prefix>-q-<queue>-<instance>`, clean start off, a session expiry) with a
//! **shared subscription** `$share/<queue>/...`, so the server keeps QoS 1 messages while
//! the consumer is away and several processes compete for them. A subject (`a.b.c`) is
//! the topic `<p>/a/b/c`; [`Broker::bind`] subscribes a queue to a subject pattern
//! (`a.*.c`, `a.>` become `+` and `#`, see [`subject_to_mqtt_filter`]) and
//! [`Broker::publish_topic`] publishes to a subject. Dead letters are **retained**
//! messages `<p>/bk-dead/<queue>/<id>`; replies go to `<p>/bk-reply/<broker>/<request>`.
//!
//! The envelope travels as MQTT 5 properties: `content-type` as the content type,
//! `correlation-id` as correlation data, `reply-to` as the response topic (when it is a
//! topic name), every other header (and `bk-id`, `bk-attempt`, `bk-published-at`) as a
//! user property. A message from another client without `bk-id` (a device, `paho-mqtt`)
//! is taken as it is: a fresh id, attempt 0, the time it arrived, and its user properties
//! as headers; a message that arrived on a subject carries it in the [`SUBJECT_HEADER`].
//!
//! Every QoS 1 publish waits for the PUBACK and every QoS 2 publish for the PUBCOMP
//! before it returns; a connection lost before that is reopened and the publish sent
//! again, until [`MqttOptions::publish_timeout`] (so a publish may arrive twice, never
//! not at all while it returned `Ok`).
//!
//! # What MQTT does not have, and what the adapter does
//!
//! MQTT acknowledges a message once and never redelivers it while the connection lives;
//! it has no attempt counter, no negative acknowledgement, no delayed redelivery and no
//! dead letters. The adapter keeps a delivery's PUBACK back until it is settled, so the
//! server holds every unsettled message, and does the rest in the consuming process:
//!
//! | part-1 semantics | MQTT | this adapter |
//! |---|---|---|
//! | ack | PUBACK | PUBACK when settled |
//! | redelivery after the ack wait | none while connected | the held message is handed out again by this process |
//! | redelivery counts | none (only the DUP flag on a resend) | counted in process; a resend by the server after a reconnect counts one more |
//! | nack with requeue, delayed retry | none | the message stays held (no PUBACK) and is handed out again after the delay |
//! | dead letters, redrive | none | a retained message per dead letter; listed by subscribing, redriven by publishing and clearing it |
//! | pending count | none | refused: [`Error::Unsupported`], `pending_count: false` |
//! | per-key ordering | none | refused: [`Error::Unsupported`], `ordered_keys: false` |
//! | publish dedup | none (QoS 2 only within one connection) | `publish_dedup: false`; use an [`Inbox`](crate::Inbox) |
//!
//! Because the attempt count, the retry delay and the ack deadline live in the consuming
//! process, [`Capabilities::retry_state_in_broker`] is false: if that process dies, the
//! server resends what it held (unacknowledged) as soon as the session is resumed, without
//! waiting for the delay. The server bounds what it holds per session (Mosquitto's
//! `max_queued_messages`, 1000 by default, beyond which it drops QoS 1 messages): size it
//! for the backlog you expect. What this process holds is bounded by
//! [`MqttOptions::receive_maximum`] (the server sends no more unacknowledged messages).
//!
//! A lost connection is reopened on the next call; the session (subscriptions and
//! unacknowledged messages) is resumed, and deliveries held on the old connection settle
//! as [`Error::StaleDelivery`] while the server sends them again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    LastWill, Packet, PubAckReason, PubRecReason, Publish, PublishProperties, SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions as ClientOptions};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::broker::DeliveryToken;
use crate::envelope::unix_millis;
use crate::held::Held;
use crate::mqtt_topic::{mqtt_filter_to_subject, subject_to_mqtt_filter};
use crate::ordering::refuse_ordering_key;
use crate::request_reply::{ReplyWaiters, prepare_reply, prepare_request};
use crate::retry::JitterSource;
use crate::settlement::{decide, decide_expired};
use crate::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, Envelope, Error, MessageId,
    QueueConfig, Result, Settlement, check_queue_name,
};

/// The header a message that arrived on a subject (not on a queue's own topic) carries:
/// the subject it was published to, in dotted form (`sensors.kitchen.temp`).
pub const SUBJECT_HEADER: &str = "subject";
/// The user property that records when a dead letter was made (Unix milliseconds).
const DEAD_AT: &str = "bk-dead-at";
const QUEUES: &str = "bk-q";
const DEAD: &str = "bk-dead";
const REPLIES: &str = "bk-reply";
const MARKS: &str = "bk-mark";
/// The largest MQTT packet this adapter accepts (payload and properties).
const MAX_PACKET: u32 = 4 * 1024 * 1024;
/// How long to wait for a CONNACK, a SUBACK or a listing of dead letters.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "mqtt",
        detail: e.to_string(),
    }
}

/// The error of a request whose connection was lost before the server answered.
fn lost() -> Error {
    backend("connection lost before the server answered")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// MQTT's quality of service levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MqttQos {
    /// QoS 0: sent once, no acknowledgement (may be lost).
    AtMostOnce,
    /// QoS 1: acknowledged with PUBACK (may arrive twice).
    #[default]
    AtLeastOnce,
    /// QoS 2: the four-packet handshake, PUBCOMP (once per connection).
    ExactlyOnce,
}

impl MqttQos {
    fn wire(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce => QoS::AtLeastOnce,
            Self::ExactlyOnce => QoS::ExactlyOnce,
        }
    }
    fn of(qos: QoS) -> Self {
        match qos {
            QoS::AtMostOnce => Self::AtMostOnce,
            QoS::AtLeastOnce => Self::AtLeastOnce,
            QoS::ExactlyOnce => Self::ExactlyOnce,
        }
    }
}

/// How [`MqttBroker::publish_to`] publishes to a subject.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct MqttPublish {
    qos: MqttQos,
    retain: bool,
    expiry: Option<Duration>,
}

impl MqttPublish {
    /// QoS 1, not retained, no expiry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// The quality of service.
    #[must_use]
    pub fn qos(mut self, qos: MqttQos) -> Self {
        self.qos = qos;
        self
    }
    /// Retained: the server keeps the message as the subject's last one and hands it to
    /// every later (non-shared) subscriber.
    #[must_use]
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }
    /// The MQTT 5 message expiry: the server drops the message if it is not delivered
    /// within this time (whole seconds, rounded up).
    #[must_use]
    pub fn expiry(mut self, expiry: Duration) -> Self {
        self.expiry = Some(expiry);
        self
    }
}

/// Options of an [`MqttBroker`] beyond its URL and prefix.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MqttOptions {
    instance: String,
    session_expiry: Duration,
    receive_maximum: u16,
    publish_timeout: Duration,
    keep_alive: Duration,
    last_will: Option<(String, Bytes, MqttQos, bool)>,
}

impl Default for MqttOptions {
    /// Instance `0`, sessions kept a day, receive maximum 256, publish timeout 30 s,
    /// keep-alive 10 s, no last will.
    fn default() -> Self {
        Self {
            instance: "0".into(),
            session_expiry: Duration::from_secs(24 * 3600),
            receive_maximum: 256,
            publish_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            last_will: None,
        }
    }
}

impl MqttOptions {
    /// Names this process among the consumers of the same queues (part of each persistent
    /// session's client id). Give each process its own, and the same one again after a
    /// restart, so it resumes its sessions. 1 to 32 of `A-Z a-z 0-9 - _`.
    #[must_use]
    pub fn instance(mut self, instance: &str) -> Self {
        self.instance = instance.to_owned();
        self
    }
    /// How long the server keeps a queue's session (and its messages) after the
    /// connection is gone (MQTT 5 session expiry; at most `u32::MAX` seconds).
    #[must_use]
    pub fn session_expiry(mut self, expiry: Duration) -> Self {
        self.session_expiry = expiry;
        self
    }
    /// The most unacknowledged messages the server may send to one queue session (MQTT 5
    /// receive maximum): the bound on what this process holds per queue.
    #[must_use]
    pub fn receive_maximum(mut self, max: u16) -> Self {
        self.receive_maximum = max.max(1);
        self
    }
    /// How long a publish keeps trying (reconnecting) before it fails.
    #[must_use]
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }
    /// The MQTT keep-alive (at least 5 s): a dead connection is noticed within about 1.5
    /// times this.
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive.max(Duration::from_secs(5));
        self
    }
    /// A last will: the server publishes `payload` to `subject` if the publishing
    /// connection of this broker ends without a DISCONNECT (the process died, the network
    /// broke). [`MqttBroker::close`] disconnects cleanly and the will is not sent.
    #[must_use]
    pub fn last_will(
        mut self,
        subject: &str,
        payload: impl Into<Bytes>,
        qos: MqttQos,
        retain: bool,
    ) -> Self {
        self.last_will = Some((subject.to_owned(), payload.into(), qos, retain));
        self
    }
}

/// Where a connection's incoming messages go.
#[derive(Clone)]
enum Sink {
    /// A queue's session: into the queue's buffer.
    Queue { inner: Weak<Inner>, queue: String },
    /// The publishing connection: replies to requests.
    Replies(Weak<Inner>),
    /// A subscription or a listing: a bounded channel (the connection waits when it is
    /// full, so the server holds the rest).
    Channel(mpsc::Sender<Publish>),
}

/// Requests waiting for the server's answer, in the order they were sent.
#[derive(Default)]
struct Waiters {
    publishes: VecDeque<(QoS, oneshot::Sender<Result<()>>)>,
    subscribes: VecDeque<oneshot::Sender<Result<()>>>,
    published: HashMap<u16, oneshot::Sender<Result<()>>>,
    subscribed: HashMap<u16, oneshot::Sender<Result<()>>>,
}

impl Waiters {
    fn fail_all(&mut self) {
        for (_, tx) in self.publishes.drain(..) {
            let _ = tx.send(Err(lost()));
        }
        for tx in self.subscribes.drain(..) {
            let _ = tx.send(Err(lost()));
        }
        for (_, tx) in self.published.drain() {
            let _ = tx.send(Err(lost()));
        }
        for (_, tx) in self.subscribed.drain() {
            let _ = tx.send(Err(lost()));
        }
    }
}

struct LinkState {
    waiters: Mutex<Waiters>,
    alive: AtomicBool,
}

/// One MQTT connection: a client, the task that drives it, and the requests waiting for
/// an answer. A lost connection is never reused: the owner opens a new one.
struct Link {
    id: u64,
    client: AsyncClient,
    state: Arc<LinkState>,
    /// Registering a waiter and sending the request happen together, so the order of
    /// waiters is the order of requests.
    send: tokio::sync::Mutex<()>,
    driver: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Ends the connection without DISCONNECT (a last will fires).
        self.driver.abort();
    }
}

static LINK_IDS: AtomicU64 = AtomicU64::new(1);

impl Link {
    fn alive(&self) -> bool {
        self.state.alive.load(Ordering::Acquire)
    }

    /// Connects and waits for the CONNACK; returns the link and whether the server had a
    /// session for it.
    async fn open(options: ClientOptions, sink: Sink) -> Result<(Arc<Self>, bool)> {
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let connack = tokio::time::timeout(ANSWER_WAIT, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(c))) => return Ok(c),
                    Ok(_) => {}
                    Err(e) => return Err(backend(e)),
                }
            }
        })
        .await
        .map_err(|_| Error::Timeout(ANSWER_WAIT))??;
        let id = LINK_IDS.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(LinkState {
            waiters: Mutex::new(Waiters::default()),
            alive: AtomicBool::new(true),
        });
        let driver = tokio::spawn(drive(eventloop, Arc::clone(&state), sink, id));
        let link = Arc::new(Self {
            id,
            client,
            state,
            send: tokio::sync::Mutex::new(()),
            driver,
        });
        Ok((link, connack.session_present))
    }

    /// Publishes and, at QoS 1 and 2, waits for the server's PUBACK or PUBCOMP.
    async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
        properties: PublishProperties,
    ) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            let _order = self.send.lock().await;
            lock(&self.state.waiters).publishes.push_back((qos, tx));
            if let Err(e) = self
                .client
                .publish_with_properties(topic, qos, retain, payload, properties)
                .await
            {
                lock(&self.state.waiters).publishes.pop_back();
                return Err(if self.alive() { backend(e) } else { lost() });
            }
        }
        rx.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Subscribes and waits for the SUBACK.
    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            let _order = self.send.lock().await;
            lock(&self.state.waiters).subscribes.push_back(tx);
            if let Err(e) = self.client.subscribe(filter, qos).await {
                lock(&self.state.waiters).subscribes.pop_back();
                return Err(if self.alive() { backend(e) } else { lost() });
            }
        }
        match tokio::time::timeout(ANSWER_WAIT, rx).await {
            Ok(answer) => answer.unwrap_or_else(|_| Err(lost())),
            Err(_) => Err(Error::Timeout(ANSWER_WAIT)),
        }
    }

    /// Acknowledges an incoming message (PUBACK, or PUBREC at QoS 2).
    async fn ack(&self, publish: &Publish) -> Result<()> {
        if !self.alive() {
            return Err(Error::StaleDelivery);
        }
        self.client.ack(publish).await.map_err(backend)
    }

    async fn close(&self) {
        let _ = self.client.disconnect().await;
        // Give the driver a moment to write the DISCONNECT.
        for _ in 0..20 {
            if !self.alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Drives one connection until it fails: matches answers to waiters, hands incoming
/// messages to the sink.
async fn drive(mut eventloop: EventLoop, state: Arc<LinkState>, sink: Sink, link: u64) {
    loop {
        let event = match eventloop.poll().await {
            Ok(event) => event,
            Err(_) => break,
        };
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let mut w = lock(&state.waiters);
                if pkid != 0 && w.published.contains_key(&pkid) {
                    continue;
                }
                if let Some((qos, tx)) = w.publishes.pop_front() {
                    if qos == QoS::AtMostOnce {
                        let _ = tx.send(Ok(()));
                    } else {
                        w.published.insert(pkid, tx);
                    }
                }
            }
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                let mut w = lock(&state.waiters);
                if let Some(tx) = w.subscribes.pop_front() {
                    w.subscribed.insert(pkid, tx);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(tx) = lock(&state.waiters).published.remove(&ack.pkid) {
                    let _ = tx.send(match ack.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                        other => Err(backend(format!(
                            "the server refused the publish: {other:?}"
                        ))),
                    });
                }
            }
            Event::Incoming(Packet::PubRec(rec)) => {
                if !matches!(
                    rec.reason,
                    PubRecReason::Success | PubRecReason::NoMatchingSubscribers
                ) && let Some(tx) = lock(&state.waiters).published.remove(&rec.pkid)
                {
                    let _ = tx.send(Err(backend(format!(
                        "the server refused the publish: {:?}",
                        rec.reason
                    ))));
                }
            }
            Event::Incoming(Packet::PubComp(comp)) => {
                if let Some(tx) = lock(&state.waiters).published.remove(&comp.pkid) {
                    let _ = tx.send(Ok(()));
                }
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                if let Some(tx) = lock(&state.waiters).subscribed.remove(&ack.pkid) {
                    let refused = ack
                        .return_codes
                        .iter()
                        .find(|c| !matches!(c, SubscribeReasonCode::Success(_)));
                    let _ = tx.send(match refused {
                        None => Ok(()),
                        Some(code) => Err(backend(format!(
                            "the server refused the subscription: {code:?}"
                        ))),
                    });
                }
            }
            Event::Incoming(Packet::Publish(publish)) => match &sink {
                Sink::Queue { inner, queue } => match inner.upgrade() {
                    Some(inner) => inner.arrived(queue, link, publish),
                    None => break,
                },
                Sink::Replies(inner) => match inner.upgrade() {
                    Some(inner) => inner.reply_arrived(&publish),
                    None => break,
                },
                // Acknowledged on receipt (no manual acks on these connections); while the
                // channel is full the connection is not read and the server waits.
                Sink::Channel(tx) => {
                    if tx.send(publish).await.is_err() {
                        break;
                    }
                }
            },
            _ => {}
        }
    }
    // Closed first, so a request sent from now on fails at once instead of waiting for an
    // answer that cannot come.
    drop(eventloop);
    state.alive.store(false, Ordering::Release);
    lock(&state.waiters).fail_all();
}

/// Where the server is, from `mqtt://[user[:password]@]host[:port]`, or
/// `mqtts://...[?cacertfile=..&certfile=..&keyfile=..]` over TLS (feature `tls`).
#[derive(Clone)]
struct Server {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    /// For `mqtts://`: the TLS client, made once from the URL's files.
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn parse_url(url: &str) -> Result<Server> {
    let (tls, rest) = match ["mqtts://", "ssl://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
    {
        Some(rest) => (true, rest),
        None => (
            false,
            url.strip_prefix("mqtt://")
                .or_else(|| url.strip_prefix("tcp://"))
                .ok_or(Error::InvalidConfig(
                    "the MQTT URL must start with mqtt://, tcp://, mqtts:// or ssl://",
                ))?,
        ),
    };
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    let files = crate::tls::TlsFiles::for_url(
        url,
        tls.then_some("mqtts"),
        "cacertfile, certfile and keyfile are for mqtts:// URLs",
    )?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let rest = rest.trim_end_matches('/');
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((login, address)) => {
            let (user, password) = login.split_once(':').unwrap_or((login, ""));
            (Some((user.to_owned(), password.to_owned())), address)
        }
        None => (None, rest),
    };
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
            host,
            port.parse::<u16>()
                .map_err(|_| Error::InvalidConfig("the MQTT URL has an invalid port"))?,
        ),
        _ => (address, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(Error::InvalidConfig("the MQTT URL has no host"));
    }
    Ok(Server {
        host: host.to_owned(),
        port,
        credentials,
        #[cfg(feature = "tls")]
        tls: files
            .map(|files| files.rustls_config().map(Arc::new))
            .transpose()?,
    })
}

/// A message waiting in this process: not acknowledged to the server yet.
struct Waiting {
    /// As delivered so far: `attempt` counts the deliveries before this one.
    envelope: Envelope,
    publish: Publish,
    link: u64,
    due: Instant,
}

struct InFlight {
    consumer: String,
    waiting: Waiting,
    deadline: Instant,
}

struct QueueState {
    config: QueueConfig,
    link: Option<Arc<Link>>,
    ready: VecDeque<Waiting>,
    delayed: Vec<Waiting>,
    in_flight: HashMap<u64, InFlight>,
    /// Deliveries so far of messages not settled for good, across reconnects.
    attempts: HashMap<MessageId, u32>,
    /// Subject filters bound to this queue.
    bound: HashSet<String>,
    /// Messages of a session the server lost, to publish again once a new session is set
    /// up (an attempt that failed part way left them here).
    lost: Vec<Waiting>,
}

struct Inner {
    server: Server,
    root: String,
    client_prefix: String,
    options: MqttOptions,
    publisher: tokio::sync::Mutex<Option<Arc<Link>>>,
    /// Serializes opening queue sessions.
    connecting: tokio::sync::Mutex<()>,
    queues: Mutex<HashMap<String, QueueState>>,
    arrived: Notify,
    next_token: AtomicU64,
    jitter: Mutex<JitterSource>,
    held: Held,
    replies: ReplyWaiters<String, Envelope>,
    reply_base: String,
    reconnects: AtomicU64,
}

/// A [`Broker`] on an MQTT 5 server (Mosquitto). See the module docs for the topic layout
/// and for what the adapter keeps in process because MQTT lacks it.
pub struct MqttBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MqttBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttBroker")
            .field("root", &self.inner.root)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// One message of a [`MqttSubscription`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MqttMessage {
    /// The subject it was published to (dotted, without the broker's prefix).
    pub subject: String,
    /// The message.
    pub envelope: Envelope,
    /// It is the subject's retained message, sent because of the subscription.
    pub retained: bool,
    /// The QoS it was delivered with.
    pub qos: MqttQos,
}

/// A plain MQTT subscription to a subject pattern on a connection of its own,
/// acknowledged on receipt (for at-least-once processing use a queue).
///
/// Its session outlives a lost connection for up to [`Self::SESSION_EXPIRY`] (or
/// the broker's session expiry when shorter): [`next`](Self::next) reconnects with the
/// same client id, and the server sends what it kept meanwhile at QoS 1 and 2 (QoS 0
/// messages of the outage are gone, as MQTT specifies). A server that lost the session
/// (restarted without persistence) is subscribed to again.
pub struct MqttSubscription {
    rx: mpsc::Receiver<Publish>,
    root: String,
    /// `None` while the connection is lost.
    link: Option<Arc<Link>>,
    /// The client options to reconnect with: the same client id, resuming the session.
    resume: ClientOptions,
    filter: String,
    qos: QoS,
    capacity: usize,
    reconnects: u64,
    /// The server's session holds the subscription. False from a reconnect that found no
    /// session until the SUBSCRIBE is answered, so a reconnect cancelled in between
    /// (by `next`'s wait) subscribes on the next one, although that one resumes the
    /// session the cancelled one created.
    subscribed: bool,
}

impl std::fmt::Debug for MqttSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSubscription")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl MqttSubscription {
    /// How long the server keeps a plain subscription's session, and its QoS 1 and 2
    /// messages, after its connection is lost (at most; the broker's session expiry when
    /// shorter). [`close`](Self::close) unsubscribes, so a closed subscription's session
    /// keeps nothing.
    pub const SESSION_EXPIRY: Duration = Duration::from_secs(600);

    /// The next message, waiting up to `wait`; `Ok(None)` when none came. A lost
    /// connection is opened again within `wait` (retrying with backoff), and the session
    /// resumed.
    ///
    /// # Errors
    /// [`Error::Backend`] (or [`Error::Timeout`]) when the connection was lost and could
    /// not be opened again within `wait`; the next call tries again. A message that
    /// cannot be read as an envelope fails with the parse error (and is gone).
    pub async fn next(&mut self, wait: Duration) -> Result<Option<MqttMessage>> {
        let deadline = Instant::now() + wait;
        let mut backoff = Duration::from_millis(50);
        let publish = loop {
            if self.link.is_none() {
                match tokio::time::timeout_at(deadline, self.reconnect()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        if Instant::now() + backoff >= deadline {
                            return Err(error);
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                    Err(_) => return Err(lost()),
                }
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Ok(None),
                // The connection ended (and everything it had received was read).
                Ok(None) => self.link = None,
                Ok(Some(p)) => break p,
            }
        };
        let topic = std::str::from_utf8(&publish.topic).map_err(backend)?;
        let subject = subject_of(&self.root, topic)?;
        let mut envelope = from_publish(&publish)?;
        envelope
            .headers_mut()
            .insert_checked(SUBJECT_HEADER.into(), subject.clone())?;
        Ok(Some(MqttMessage {
            subject,
            envelope,
            retained: publish.retain,
            qos: MqttQos::of(publish.qos),
        }))
    }

    /// How many times the connection was opened again after it was lost.
    #[must_use]
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Opens the connection again with the same client id, resuming the session; a
    /// server without it gets the subscription again.
    async fn reconnect(&mut self) -> Result<()> {
        let (tx, rx) = mpsc::channel(self.capacity);
        let (link, session_present) = Link::open(self.resume.clone(), Sink::Channel(tx)).await?;
        if !session_present {
            self.subscribed = false;
        }
        if !self.subscribed {
            link.subscribe(&self.filter, self.qos).await?;
            self.subscribed = true;
        }
        self.rx = rx;
        self.link = Some(link);
        self.reconnects += 1;
        Ok(())
    }

    /// Unsubscribes and disconnects: the session the server keeps for a while holds
    /// nothing more.
    pub async fn close(self) {
        if let Some(link) = self.link {
            let _ = link.client.unsubscribe(&self.filter).await;
            link.close().await;
        }
    }
}

/// The subject of `topic` under `root`.
fn subject_of(root: &str, topic: &str) -> Result<String> {
    let relative = if root.is_empty() {
        topic
    } else {
        topic
            .strip_prefix(root)
            .and_then(|t| t.strip_prefix('/'))
            .ok_or_else(|| Error::InvalidSubject {
                subject: topic.chars().take(200).collect(),
                reason: "outside the broker's topic prefix",
            })?
    };
    mqtt_filter_to_subject(relative)
}

/// The MQTT 5 properties of an envelope.
fn properties(envelope: &Envelope, expiry: Option<Duration>) -> PublishProperties {
    let mut props = PublishProperties::default();
    for (name, value) in envelope.wire_pairs() {
        match name {
            "content-type" => props.content_type = Some(value.into_owned()),
            "correlation-id" => {
                props.correlation_data = Some(Bytes::from(value.into_owned()));
            }
            "reply-to" if is_topic_name(&value) => props.response_topic = Some(value.into_owned()),
            _ => props
                .user_properties
                .push((name.to_owned(), value.into_owned())),
        }
    }
    props.message_expiry_interval = expiry.map(|d| {
        u32::try_from(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)))
            .unwrap_or(u32::MAX)
    });
    props
}

fn is_topic_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(['+', '#', '\0']) && !s.starts_with('$')
}

/// Rebuilds an envelope from an incoming message. A message without `bk-id` (another
/// client's) gets a fresh id, attempt 0 and the current time.
fn from_publish(publish: &Publish) -> Result<Envelope> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut ours = false;
    if let Some(props) = &publish.properties {
        for (name, value) in &props.user_properties {
            if name.eq_ignore_ascii_case(DEAD_AT) {
                continue;
            }
            ours |= name.eq_ignore_ascii_case("bk-id");
            pairs.push((name.clone(), value.clone()));
        }
        if let Some(v) = &props.content_type {
            pairs.push(("content-type".into(), v.clone()));
        }
        if let Some(v) = &props.correlation_data {
            let text = std::str::from_utf8(v).map_err(|_| Error::WireHeader {
                line: 0,
                reason: "MQTT correlation data is not UTF-8",
            })?;
            pairs.push(("correlation-id".into(), text.to_owned()));
        }
        if let Some(v) = &props.response_topic {
            pairs.push(("reply-to".into(), v.clone()));
        }
    }
    if !ours {
        pairs.push(("bk-id".into(), MessageId::new().to_string()));
        pairs.push(("bk-attempt".into(), "0".into()));
        pairs.push((
            "bk-published-at".into(),
            unix_millis(SystemTime::now()).to_string(),
        ));
    }
    Envelope::from_pairs(
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        publish.payload.clone(),
    )
}

fn dead_at(publish: &Publish) -> SystemTime {
    publish
        .properties
        .as_ref()
        .and_then(|p| {
            p.user_properties
                .iter()
                .find(|(n, _)| n == DEAD_AT)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        })
        .map_or(UNIX_EPOCH, |ms| UNIX_EPOCH + Duration::from_millis(ms))
}

impl MqttBroker {
    /// Connects to `url` (`mqtt://[user[:password]@]host[:port]`, or `mqtts://` over TLS
    /// with feature `tls`: port 8883 by default, the server verified against the system's
    /// roots and `?cacertfile=PATH`, a client certificate from `&certfile=PATH&keyfile=PATH`).
    /// Topics start with
    /// `prefix` (empty, or MQTT topic levels such as `app1` or `site/app1`, without
    /// wildcards); client ids with `prefix` too, with `/` replaced by `-`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad URL, [`Error::InvalidSubject`] for a bad
    /// prefix, [`Error::Tls`] for TLS files that cannot be used,
    /// [`Error::FeatureDisabled`] for `mqtts://` without feature `tls`, [`Error::Backend`]
    /// when the server cannot be reached (or its certificate does not verify).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        Self::connect_with(url, prefix, MqttOptions::default()).await
    }

    /// [`connect`](Self::connect) with [`MqttOptions`].
    ///
    /// # Errors
    /// As [`connect`](Self::connect), and [`Error::InvalidConfig`] for a bad instance name.
    pub async fn connect_with(url: &str, prefix: &str, options: MqttOptions) -> Result<Self> {
        let server = parse_url(url)?;
        let root = prefix.trim_end_matches('/').to_owned();
        if !root.is_empty() {
            mqtt_filter_to_subject(&root)?;
            if root.contains(['+', '#']) {
                return Err(Error::InvalidSubject {
                    subject: root,
                    reason: "a topic prefix has no wildcards",
                });
            }
        }
        if options.instance.is_empty()
            || options.instance.len() > 32
            || !options
                .instance
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return Err(Error::InvalidConfig(
                "the instance name must be 1 to 32 of A-Z a-z 0-9 - _",
            ));
        }
        if let Some((subject, ..)) = &options.last_will {
            subject_to_mqtt_filter(subject)?;
        }
        let client_prefix = if root.is_empty() {
            "bk".to_owned()
        } else {
            root.replace('/', "-")
        };
        let inner = Arc::new(Inner {
            server,
            reply_base: join(&root, &format!("{REPLIES}/{}", MessageId::new())),
            root,
            client_prefix,
            options,
            publisher: tokio::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            queues: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
            next_token: AtomicU64::new(1),
            jitter: Mutex::new(JitterSource::from_entropy()),
            held: Held::default(),
            replies: ReplyWaiters::default(),
            reconnects: AtomicU64::new(0),
        });
        inner.publisher().await?;
        Ok(Self { inner })
    }

    /// The MQTT topic a queue's messages are published to (`<prefix>/bk-q/<queue>`), for
    /// other clients.
    #[must_use]
    pub fn queue_topic(&self, queue: &str) -> String {
        self.inner.queue_topic(queue)
    }

    /// The MQTT topic (or filter, with wildcards) of a subject under this broker's prefix.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`].
    pub fn subject_topic(&self, subject: &str) -> Result<String> {
        Ok(join(&self.inner.root, &subject_to_mqtt_filter(subject)?))
    }

    /// How many times a connection (publishing, or a queue's session) was opened again
    /// after it was lost.
    #[must_use]
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    /// Publishes to a subject with the given QoS, retain flag and expiry; QoS 1 and 2 wait
    /// for the server's PUBACK or PUBCOMP.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`] for a subject with wildcards, [`Error::Backend`] or
    /// [`Error::Timeout`] when the server cannot be reached within the publish timeout.
    pub async fn publish_to(
        &self,
        subject: &str,
        envelope: Envelope,
        options: &MqttPublish,
    ) -> Result<()> {
        let topic = self.inner.subject_name(subject)?;
        self.inner
            .publish_raw(
                &topic,
                options.qos.wire(),
                options.retain,
                envelope.payload().clone(),
                properties(&envelope, options.expiry),
            )
            .await
    }

    /// Removes a subject's retained message (an empty retained publish).
    ///
    /// # Errors
    /// As [`publish_to`](Self::publish_to).
    pub async fn clear_retained(&self, subject: &str) -> Result<()> {
        let topic = self.inner.subject_name(subject)?;
        self.inner
            .publish_raw(
                &topic,
                QoS::AtLeastOnce,
                true,
                Bytes::new(),
                PublishProperties::default(),
            )
            .await
    }

    /// Subscribes to a subject pattern (`a.*.c`, `a.>`) on a connection of its own; with
    /// `group`, as a shared subscription (`$share/<group>/...`) whose members receive
    /// disjoint messages (and no retained ones, as MQTT 5 specifies).
    ///
    /// # Errors
    /// [`Error::InvalidSubject`], [`Error::InvalidQueueName`] for a bad group, or
    /// [`Error::Backend`].
    pub async fn subscribe(
        &self,
        pattern: &str,
        group: Option<&str>,
        qos: MqttQos,
    ) -> Result<MqttSubscription> {
        let filter = join(&self.inner.root, &subject_to_mqtt_filter(pattern)?);
        let filter = match group {
            Some(group) => {
                check_queue_name(group)?;
                format!("$share/{group}/{filter}")
            }
            None => filter,
        };
        let capacity = usize::from(self.inner.options.receive_maximum);
        let (tx, rx) = mpsc::channel(capacity);
        let id = format!(
            "{}-s-{}",
            self.inner.client_prefix,
            MessageId::new().as_uuid().simple()
        );
        let expiry = self
            .inner
            .options
            .session_expiry
            .min(MqttSubscription::SESSION_EXPIRY);
        let mut options = self.inner.client_options(&id);
        options.set_receive_maximum(Some(self.inner.options.receive_maximum));
        options
            .set_session_expiry_interval(Some(u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX)));
        // Clean start off from the first connection, although the client id is new and the
        // server has no session for it: Mosquitto saves to its persistence file only the
        // sessions opened with clean start off, so a session begun with clean start on
        // (session expiry or not) is gone after a restart, with the messages it held.
        options.set_clean_start(false);
        let (link, _) = Link::open(options.clone(), Sink::Channel(tx)).await?;
        link.subscribe(&filter, qos.wire()).await?;
        Ok(MqttSubscription {
            rx,
            root: self.inner.root.clone(),
            link: Some(link),
            resume: options,
            filter,
            qos: qos.wire(),
            capacity,
            reconnects: 0,
            subscribed: true,
        })
    }

    /// Disconnects every connection cleanly (no last will); deliveries still held go back
    /// to the server with their sessions.
    pub async fn close(&self) {
        let publisher = self.inner.publisher.lock().await.take();
        if let Some(link) = publisher {
            link.close().await;
        }
        let links: Vec<Arc<Link>> = lock(&self.inner.queues)
            .values_mut()
            .filter_map(|q| q.link.take())
            .collect();
        for link in links {
            link.close().await;
        }
    }

    /// Ends every session this broker opened for its queues on the server (so their
    /// messages are dropped); for tests and teardown. Needs the queues declared here.
    ///
    /// # Errors
    /// [`Error::Backend`] when the server cannot be reached.
    pub async fn delete_sessions(&self) -> Result<()> {
        let queues: Vec<String> = lock(&self.inner.queues).keys().cloned().collect();
        self.close().await;
        for queue in queues {
            let mut options = self.inner.client_options(&self.inner.session_id(&queue));
            options.set_clean_start(true);
            options.set_session_expiry_interval(Some(0));
            let (link, _) = Link::open(options, Sink::Channel(mpsc::channel(1).0)).await?;
            link.close().await;
        }
        Ok(())
    }
}

fn join(root: &str, rest: &str) -> String {
    if root.is_empty() {
        rest.to_owned()
    } else {
        format!("{root}/{rest}")
    }
}

impl Inner {
    fn queue_topic(&self, queue: &str) -> String {
        join(&self.root, &format!("{QUEUES}/{queue}"))
    }
    /// Whether `topic` is `queue`'s own topic (without building it: once per message).
    fn is_queue_topic(&self, queue: &str, topic: &str) -> bool {
        let rest = if self.root.is_empty() {
            Some(topic)
        } else {
            topic
                .strip_prefix(self.root.as_str())
                .and_then(|t| t.strip_prefix('/'))
        };
        rest.and_then(|t| t.strip_prefix(QUEUES))
            .and_then(|t| t.strip_prefix('/'))
            == Some(queue)
    }
    fn dead_topic(&self, queue: &str, id: MessageId) -> String {
        join(&self.root, &format!("{DEAD}/{queue}/{id}"))
    }
    fn session_id(&self, queue: &str) -> String {
        format!("{}-q-{queue}-{}", self.client_prefix, self.options.instance)
    }

    /// A subject without wildcards, as a topic name.
    fn subject_name(&self, subject: &str) -> Result<String> {
        let topic = subject_to_mqtt_filter(subject)?;
        if topic.split('/').any(|l| l == "+" || l == "#") {
            return Err(Error::InvalidSubject {
                subject: subject.chars().take(200).collect(),
                reason: "a subject to publish to has no wildcards",
            });
        }
        if topic
            .split('/')
            .next()
            .is_some_and(|l| l.starts_with("bk-"))
        {
            return Err(Error::InvalidSubject {
                subject: subject.chars().take(200).collect(),
                reason: "subjects starting with bk- are reserved",
            });
        }
        Ok(join(&self.root, &topic))
    }

    fn client_options(&self, client_id: &str) -> ClientOptions {
        let mut options = ClientOptions::new(client_id, &self.server.host, self.server.port);
        options.set_keep_alive(self.options.keep_alive);
        options.set_connection_timeout(5);
        // rumqttc refuses incoming packets over 10 KiB unless told otherwise.
        options.set_max_packet_size(Some(MAX_PACKET));
        if let Some((user, password)) = &self.server.credentials {
            options.set_credentials(user, password);
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.server.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::clone(tls)),
            ));
        }
        options
    }

    fn config(&self, queue: &str) -> Result<QueueConfig> {
        lock(&self.queues)
            .get(queue)
            .map(|q| q.config.clone())
            .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))
    }

    /// A clean-session connection with a client id of its own.
    async fn temporary(&self, sink: Sink) -> Result<(Arc<Link>, bool)> {
        let id = format!(
            "{}-t-{}",
            self.client_prefix,
            MessageId::new().as_uuid().simple()
        );
        let mut options = self.client_options(&id);
        options.set_clean_start(true);
        options.set_receive_maximum(Some(self.options.receive_maximum));
        Link::open(options, sink).await
    }

    /// The publishing connection, opened again when it was lost.
    async fn publisher(self: &Arc<Self>) -> Result<Arc<Link>> {
        let mut current = self.publisher.lock().await;
        if let Some(link) = current.as_ref()
            && link.alive()
        {
            return Ok(Arc::clone(link));
        }
        let reconnecting = current.is_some();
        let id = format!(
            "{}-p-{}",
            self.client_prefix,
            MessageId::new().as_uuid().simple()
        );
        let mut options = self.client_options(&id);
        options.set_clean_start(true);
        if let Some((subject, payload, qos, retain)) = &self.options.last_will {
            let topic = join(&self.root, &subject_to_mqtt_filter(subject)?);
            options.set_last_will(LastWill::new(
                topic,
                payload.to_vec(),
                qos.wire(),
                *retain,
                None,
            ));
        }
        let (link, _) = Link::open(options, Sink::Replies(Arc::downgrade(self))).await?;
        if reconnecting {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        // Replies to this broker's requests arrive on the publishing connection.
        link.subscribe(&format!("{}/+", self.reply_base), QoS::AtLeastOnce)
            .await?;
        *current = Some(Arc::clone(&link));
        Ok(link)
    }

    /// Publishes on the publishing connection; a lost connection is opened again and the
    /// publish sent again, until the publish timeout.
    async fn publish_raw(
        self: &Arc<Self>,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
        props: PublishProperties,
    ) -> Result<()> {
        let end = Instant::now() + self.options.publish_timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let outcome = match self.publisher().await {
                Ok(link) => {
                    let sent = link
                        .publish(topic, qos, retain, payload.clone(), props.clone())
                        .await;
                    match sent {
                        Err(_) if !link.alive() => sent,
                        other => return other,
                    }
                }
                Err(e) => Err(e),
            };
            if Instant::now() + pause >= end {
                return outcome;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// The queue's session, opened (and its subscriptions made) when there is none or it
    /// was lost.
    async fn queue_link(self: &Arc<Self>, queue: &str) -> Result<Arc<Link>> {
        let current = lock(&self.queues)
            .get(queue)
            .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))?
            .link
            .clone();
        if let Some(link) = current.filter(|l| l.alive()) {
            return Ok(link);
        }
        let _serial = self.connecting.lock().await;
        let (current, bound) = {
            let queues = lock(&self.queues);
            let q = queues
                .get(queue)
                .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))?;
            (q.link.clone(), q.bound.clone())
        };
        if let Some(link) = current.as_ref().filter(|l| l.alive()) {
            return Ok(Arc::clone(link));
        }
        let mut options = self.client_options(&self.session_id(queue));
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(
            u32::try_from(self.options.session_expiry.as_secs()).unwrap_or(u32::MAX),
        ));
        options.set_receive_maximum(Some(self.options.receive_maximum));
        options.set_manual_acks(true);
        let sink = Sink::Queue {
            inner: Arc::downgrade(self),
            queue: queue.to_owned(),
        };
        let (link, session_present) = Link::open(options, sink).await?;
        // What the old connection held: the server sends it again when the session was
        // resumed; when the session is new (the server lost it), publish it again.
        let (orphans, lost): (Vec<Waiting>, Vec<Waiting>) = {
            let mut queues = lock(&self.queues);
            let Some(q) = queues.get_mut(queue) else {
                return Err(Error::UnknownQueue(queue.to_owned()));
            };
            let mut orphans: Vec<Waiting> = q.ready.drain(..).collect();
            orphans.append(&mut q.delayed);
            let lost: Vec<(u64, InFlight)> = q.in_flight.drain().collect();
            for (token, held) in lost {
                self.held.release(queue, &held.consumer, &token.to_string());
                orphans.push(held.waiting);
            }
            // Messages that arrived on the new connection already stay.
            let (keep, old): (Vec<Waiting>, Vec<Waiting>) =
                orphans.into_iter().partition(|w| w.link == link.id);
            q.ready.extend(keep);
            q.link = Some(Arc::clone(&link));
            (old, std::mem::take(&mut q.lost))
        };
        // What the server sends again (the old session's, when it kept it), and what must be
        // published again (the old session's when it did not, and what an earlier attempt
        // found lost).
        let mut republish = lost;
        let resent = if session_present {
            orphans
        } else {
            republish.extend(orphans);
            Vec::new()
        };
        if current.is_some() {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        // Subscribed again also when the session was resumed (a SUBSCRIBE of the same
        // filter replaces the subscription, MQTT 5 section 3.8.4, and a shared one gets no
        // retained messages): Mosquitto 2.0 restores a session from its persistence file
        // with its `$share/` subscriptions listed but routes nothing to them until the
        // client subscribes again.
        let subscribed = async {
            link.subscribe(
                &format!("$share/{queue}/{}", self.queue_topic(queue)),
                QoS::AtLeastOnce,
            )
            .await?;
            for filter in &bound {
                link.subscribe(&format!("$share/{queue}/{filter}"), QoS::AtLeastOnce)
                    .await?;
            }
            Ok(())
        }
        .await;
        if let Err(error) = subscribed {
            self.unlink(queue, &link, resent, republish).await;
            return Err(error);
        }
        let mut republish = republish.into_iter();
        while let Some(waiting) = republish.next() {
            let mut envelope = waiting.envelope.clone();
            envelope.set_delivered_at(None);
            let published = self
                .publish_raw(
                    &self.queue_topic(queue),
                    QoS::AtLeastOnce,
                    false,
                    envelope.payload().clone(),
                    properties(&envelope, None),
                )
                .await;
            if let Err(error) = published {
                let left = std::iter::once(waiting).chain(republish).collect();
                self.unlink(queue, &link, Vec::new(), left).await;
                return Err(error);
            }
        }
        Ok(link)
    }

    /// Undoes a queue's new session whose set-up failed, and closes it, so that the next
    /// use opens another. What the old connection held goes back: `resent` (which the
    /// server keeps in the old session) to the ready list, where the next session sorts it
    /// again, and `lost` (which the server no longer has) to be published again by the next
    /// session. Without this, a refused SUBSCRIBE or a failed publish lost them.
    async fn unlink(
        &self,
        queue: &str,
        link: &Arc<Link>,
        resent: Vec<Waiting>,
        lost: Vec<Waiting>,
    ) {
        if let Some(q) = lock(&self.queues).get_mut(queue) {
            q.ready.extend(resent);
            q.lost.extend(lost);
            if q.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                q.link = None;
            }
        }
        link.close().await;
    }

    /// A message arrived on a queue's session (called by its connection's driver).
    fn arrived(&self, queue: &str, link: u64, publish: Publish) {
        let parsed = std::str::from_utf8(&publish.topic)
            .map_err(backend)
            .and_then(|topic| {
                let mut envelope = from_publish(&publish)?;
                if !self.is_queue_topic(queue, topic) {
                    let subject = subject_of(&self.root, topic)?;
                    envelope
                        .headers_mut()
                        .insert_checked(SUBJECT_HEADER.into(), subject)?;
                }
                Ok(envelope)
            });
        let mut queues = lock(&self.queues);
        let Some(q) = queues.get_mut(queue) else {
            return;
        };
        let mut envelope = match parsed {
            Ok(envelope) => envelope,
            Err(e) => {
                // Dead-lettered on the next fetch, with the reason.
                let mut placeholder = Envelope::new(publish.payload.clone());
                let _ = placeholder.headers_mut().insert_checked(
                    crate::DEAD_LETTER_REASON.into(),
                    format!("unreadable message: {e}"),
                );
                placeholder.set_attempt(u32::MAX);
                placeholder
            }
        };
        if envelope.attempt() != u32::MAX {
            let seen = q.attempts.get(&envelope.id()).copied();
            let before = match seen {
                Some(n) => n,
                // Sent again by the server: delivered at least once before.
                None if publish.dup => envelope.attempt().saturating_add(1),
                None => envelope.attempt(),
            };
            envelope.set_attempt(before);
        }
        q.ready.push_back(Waiting {
            envelope,
            publish,
            link,
            due: Instant::now(),
        });
        drop(queues);
        self.arrived.notify_waiters();
    }

    fn reply_arrived(&self, publish: &Publish) {
        let Ok(topic) = std::str::from_utf8(&publish.topic) else {
            return;
        };
        if let Ok(envelope) = from_publish(publish) {
            self.replies.deliver(topic, envelope);
        }
    }

    async fn dead_letter(self: &Arc<Self>, letter: &DeadLetter) -> Result<()> {
        let mut props = properties(&letter.envelope, None);
        props
            .user_properties
            .push((DEAD_AT.into(), unix_millis(letter.dead_at).to_string()));
        self.publish_raw(
            &self.dead_topic(&letter.queue, letter.envelope.id()),
            QoS::AtLeastOnce,
            true,
            letter.envelope.payload().clone(),
            props,
        )
        .await
    }

    /// Settles a held message for good: acknowledged to the server.
    async fn ack(&self, queue: &str, waiting: &Waiting) -> Result<()> {
        let link = lock(&self.queues).get(queue).and_then(|q| q.link.clone());
        match link {
            Some(link) if link.id == waiting.link => link.ack(&waiting.publish).await,
            _ => Err(Error::StaleDelivery),
        }
    }

    /// Every retained dead letter of `queue`, oldest first.
    async fn list_dead(&self, queue: &str) -> Result<Vec<(SystemTime, Envelope)>> {
        let (tx, mut rx) = mpsc::channel(1024);
        let (link, _) = self.temporary(Sink::Channel(tx)).await?;
        let outcome = async {
            link.subscribe(
                &join(&self.root, &format!("{DEAD}/{queue}/+")),
                QoS::AtLeastOnce,
            )
            .await?;
            // The server sends the retained messages before it handles anything sent
            // after the SUBSCRIBE: a marker through the same connection comes after them.
            let mark = join(&self.root, &format!("{MARKS}/{}", MessageId::new()));
            link.subscribe(&mark, QoS::AtLeastOnce).await?;
            let marked = link.publish(
                &mark,
                QoS::AtLeastOnce,
                false,
                Bytes::new(),
                PublishProperties::default(),
            );
            let read = async {
                let mut out = Vec::new();
                loop {
                    let publish = match tokio::time::timeout(ANSWER_WAIT, rx.recv()).await {
                        Err(_) => return Err(Error::Timeout(ANSWER_WAIT)),
                        Ok(None) => return Err(lost()),
                        Ok(Some(p)) => p,
                    };
                    if publish.topic == mark.as_bytes() {
                        break;
                    }
                    if publish.payload.is_empty() && publish.properties.is_none() {
                        continue;
                    }
                    out.push((dead_at(&publish), from_publish(&publish)?));
                }
                Ok(out)
            };
            let (marked, read) = tokio::join!(marked, read);
            marked?;
            read
        }
        .await;
        link.close().await;
        let mut out = outcome?;
        out.sort_by_key(|(at, e)| (*at, e.id()));
        Ok(out)
    }

    /// Expires deliveries past their deadline and moves due retries to the ready list;
    /// then takes up to `n` for `consumer`. Returns the deliveries, the messages to
    /// dead-letter, and when to look again.
    #[allow(clippy::type_complexity)]
    fn take(
        &self,
        queue: &str,
        consumer: &str,
        n: usize,
    ) -> Result<(Vec<Delivery>, Vec<(Waiting, String)>, Option<Instant>)> {
        let now = Instant::now();
        let mut queues = lock(&self.queues);
        let q = queues
            .get_mut(queue)
            .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))?;
        let mut dead = Vec::new();
        let expired: Vec<u64> = q
            .in_flight
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            let Some(held) = q.in_flight.remove(&token) else {
                continue;
            };
            self.held.release(queue, &held.consumer, &token.to_string());
            let waiting = held.waiting;
            match decide_expired(waiting.envelope.attempt(), q.config.get_retry()) {
                Disposition::DeadLetter { reason } => dead.push((waiting, reason)),
                _ => q.ready.push_front(waiting),
            }
        }
        let (due, later): (Vec<Waiting>, Vec<Waiting>) =
            q.delayed.drain(..).partition(|w| w.due <= now);
        q.delayed = later;
        q.ready.extend(due);
        let ack_wait = q.config.get_ack_wait();
        let mut out = Vec::new();
        let shared_queue: Arc<str> = Arc::from(queue);
        while out.len() < n {
            let Some(mut waiting) = q.ready.pop_front() else {
                break;
            };
            if waiting.envelope.attempt() == u32::MAX {
                let reason = waiting
                    .envelope
                    .headers()
                    .get(crate::DEAD_LETTER_REASON)
                    .unwrap_or("unreadable message")
                    .to_owned();
                waiting.envelope.set_attempt(1);
                dead.push((waiting, reason));
                continue;
            }
            let attempt = waiting.envelope.attempt().saturating_add(1);
            waiting.envelope.set_attempt(attempt);
            q.attempts.insert(waiting.envelope.id(), attempt);
            let mut envelope = waiting.envelope.clone();
            envelope.set_delivered_at(Some(SystemTime::now()));
            let token = self.next_token.fetch_add(1, Ordering::Relaxed);
            if q.config.get_prefetch().is_some() {
                self.held
                    .hold(queue, consumer, &token.to_string(), ack_wait);
            }
            q.in_flight.insert(
                token,
                InFlight {
                    consumer: consumer.to_owned(),
                    waiting,
                    deadline: now + ack_wait,
                },
            );
            out.push(Delivery {
                queue: Arc::clone(&shared_queue),
                envelope,
                token: DeliveryToken::Mqtt {
                    token,
                    consumer: consumer.to_owned(),
                },
            });
        }
        for (waiting, _) in &dead {
            q.attempts.remove(&waiting.envelope.id());
        }
        let next = q
            .in_flight
            .values()
            .map(|h| h.deadline)
            .chain(q.delayed.iter().map(|w| w.due))
            .min();
        Ok((out, dead, next))
    }

    async fn bury(self: &Arc<Self>, queue: &str, dead: Vec<(Waiting, String)>) -> Result<()> {
        for (waiting, reason) in dead {
            let attempts = waiting.envelope.attempt();
            let mut envelope = waiting.envelope.clone();
            envelope.set_delivered_at(None);
            let letter = DeadLetter::new(queue, envelope, reason, attempts, SystemTime::now());
            self.dead_letter(&letter).await?;
            let _ = self.ack(queue, &waiting).await;
        }
        Ok(())
    }
}

impl Broker for MqttBroker {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            publish_dedup: false,
            ordered_keys: false,
            pending_count: false,
            retry_state_in_broker: false,
            ..Capabilities::all()
        }
    }

    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        check_queue_name(queue)?;
        config.validate()?;
        let inner = &self.inner;
        {
            let mut queues = lock(&inner.queues);
            match queues.get_mut(queue) {
                Some(q) => q.config = config.clone(),
                None => {
                    queues.insert(
                        queue.to_owned(),
                        QueueState {
                            config: config.clone(),
                            link: None,
                            ready: VecDeque::new(),
                            delayed: Vec::new(),
                            in_flight: HashMap::new(),
                            attempts: HashMap::new(),
                            bound: HashSet::new(),
                            lost: Vec::new(),
                        },
                    );
                }
            }
        }
        let link = inner.queue_link(queue).await?;
        // Subscribing again is harmless, and makes sure a resumed session has it.
        link.subscribe(
            &format!("$share/{queue}/{}", inner.queue_topic(queue)),
            QoS::AtLeastOnce,
        )
        .await
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        check_queue_name(queue)?;
        refuse_ordering_key("mqtt", &envelope)?;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        self.inner
            .publish_raw(
                &self.inner.queue_topic(queue),
                QoS::AtLeastOnce,
                false,
                envelope.payload().clone(),
                properties(&envelope, None),
            )
            .await
    }

    /// The publishes are sent together, then their PUBACKs awaited together: one round
    /// trip for the batch instead of one per message.
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Result<()> {
        let sent =
            futures_util::future::join_all(envelopes.into_iter().map(|e| self.publish(queue, e)))
                .await;
        sent.into_iter().collect()
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
        if max == 0 {
            return Ok(Vec::new());
        }
        inner.queue_link(queue).await?;
        loop {
            let mut notified = std::pin::pin!(inner.arrived.notified());
            notified.as_mut().enable();
            let (out, dead, next) = inner.take(queue, consumer, max)?;
            if !dead.is_empty() {
                inner.bury(queue, dead).await?;
            }
            let now = Instant::now();
            if !out.is_empty() || now >= end {
                return Ok(out);
            }
            let wake = next.map_or(end, |t| t.min(end));
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        let DeliveryToken::Mqtt { token, consumer } = &delivery.token else {
            return Err(Error::StaleDelivery);
        };
        let inner = &self.inner;
        let queue = &*delivery.queue;
        let config = inner.config(queue)?;
        let unit = lock(&inner.jitter).next_unit();
        let disposition = decide(
            &settlement,
            delivery.envelope.attempt(),
            config.get_retry(),
            unit,
        );
        let key = token.to_string();
        let held = {
            let mut queues = lock(&inner.queues);
            let q = queues
                .get_mut(queue)
                .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))?;
            let current = q.link.as_ref().map(|l| l.id);
            let Some(held) = q.in_flight.get_mut(token) else {
                return Err(Error::StaleDelivery);
            };
            if current != Some(held.waiting.link) {
                q.in_flight.remove(token);
                drop(queues);
                inner.held.release(queue, consumer, &key);
                return Err(Error::StaleDelivery);
            }
            match &disposition {
                Disposition::Extended => {
                    held.deadline = Instant::now() + config.get_ack_wait();
                    drop(queues);
                    if config.get_prefetch().is_some() {
                        inner
                            .held
                            .hold(queue, consumer, &key, config.get_ack_wait());
                    }
                    return Ok(disposition);
                }
                Disposition::Retry { delay } => {
                    // Kept unacknowledged here; handed out again after the delay.
                    let Some(mut held) = q.in_flight.remove(token) else {
                        return Err(Error::StaleDelivery);
                    };
                    held.waiting.due = Instant::now() + *delay;
                    q.delayed.push(held.waiting);
                    drop(queues);
                    inner.held.release(queue, consumer, &key);
                    inner.arrived.notify_waiters();
                    return Ok(disposition);
                }
                Disposition::Removed | Disposition::DeadLetter { .. } => {
                    let Some(held) = q.in_flight.remove(token) else {
                        return Err(Error::StaleDelivery);
                    };
                    q.attempts.remove(&held.waiting.envelope.id());
                    held
                }
            }
        };
        let outcome = match &disposition {
            Disposition::DeadLetter { reason } => {
                let mut envelope = held.waiting.envelope.clone();
                envelope.set_delivered_at(None);
                let attempts = envelope.attempt();
                let letter =
                    DeadLetter::new(queue, envelope, reason.clone(), attempts, SystemTime::now());
                match inner.dead_letter(&letter).await {
                    Ok(()) => inner.ack(queue, &held.waiting).await,
                    Err(e) => Err(e),
                }
            }
            _ => inner.ack(queue, &held.waiting).await,
        };
        inner.held.release(queue, consumer, &key);
        outcome.map(|()| disposition)
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        check_queue_name(queue)?;
        let listed = self.inner.list_dead(queue).await?;
        Ok(listed
            .into_iter()
            .take(max)
            .map(|(at, envelope)| DeadLetter::from_stored(queue, envelope, at))
            .collect())
    }

    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        check_queue_name(queue)?;
        let inner = &self.inner;
        inner.config(queue)?;
        let listed = inner.list_dead(queue).await?;
        let mut moved = 0;
        for (_, envelope) in listed.into_iter().take(max) {
            let id = envelope.id();
            let letter = DeadLetter::from_stored(queue, envelope, UNIX_EPOCH);
            self.publish(queue, letter.into_redriven()).await?;
            inner
                .publish_raw(
                    &inner.dead_topic(queue, id),
                    QoS::AtLeastOnce,
                    true,
                    Bytes::new(),
                    PublishProperties::default(),
                )
                .await?;
            moved += 1;
        }
        Ok(moved)
    }

    async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        let inner = &self.inner;
        let filter = join(&inner.root, &subject_to_mqtt_filter(topic)?);
        {
            let mut queues = lock(&inner.queues);
            let q = queues
                .get_mut(queue)
                .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))?;
            q.bound.insert(filter.clone());
        }
        let link = inner.queue_link(queue).await?;
        link.subscribe(&format!("$share/{queue}/{filter}"), QoS::AtLeastOnce)
            .await
    }

    async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        refuse_ordering_key("mqtt", &envelope)?;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        self.publish_to(topic, envelope, &MqttPublish::new()).await
    }

    async fn request(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Envelope> {
        let inner = &self.inner;
        inner.publisher().await?;
        let reply_to = format!("{}/{}", inner.reply_base, MessageId::new());
        let envelope = prepare_request(envelope, &reply_to)?;
        // The entry goes when this future returns or is dropped.
        let waiter = inner.replies.register(reply_to);
        self.publish(queue, envelope).await?;
        waiter.wait(timeout).await
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        let (reply_to, mut response) = prepare_reply(request, response)?;
        // Only this adapter's reply topics: a reply-to from a message must not name any
        // other topic.
        let base = join(&self.inner.root, REPLIES);
        let rest = reply_to
            .strip_prefix(base.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or_default();
        if rest.is_empty() || !is_topic_name(&reply_to) || rest.split('/').count() != 2 {
            return Err(Error::InvalidHeader {
                name: "reply-to".into(),
                reason: "not a reply topic of this adapter (<prefix>/bk-reply/...)",
            });
        }
        response.set_published_at(SystemTime::now());
        self.inner
            .publish_raw(
                &reply_to,
                QoS::AtLeastOnce,
                false,
                response.payload().clone(),
                properties(&response, None),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls() {
        let s = parse_url("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 1884));
        assert!(s.credentials.is_none());
        let s = parse_url("mqtt://u:p@broker/").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("broker", 1883));
        assert_eq!(s.credentials, Some(("u".into(), "p".into())));
        let s = parse_url("tcp://[::1]:1885").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 1885));
        assert!(parse_url("mqtt://x?cacertfile=ca.pem").is_err());
        assert!(parse_url("mqtts://x?certfile=c.pem").is_err());
        let s = parse_url("mqtt://u:p@broker:1886?heartbeat=5").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("broker", 1886));
        #[cfg(feature = "tls")]
        {
            let s = parse_url("mqtts://broker").unwrap();
            assert_eq!(s.port, 8883);
            assert!(s.tls.is_some());
            assert!(matches!(
                parse_url("mqtts://broker?cacertfile=/nonexistent/ca.pem"),
                Err(Error::Tls(_))
            ));
        }
        #[cfg(not(feature = "tls"))]
        assert!(matches!(
            parse_url("mqtts://x"),
            Err(Error::FeatureDisabled { .. })
        ));
        assert!(parse_url("mqtt://x:notaport").is_err());
        assert!(parse_url("mqtt://").is_err());
    }

    #[test]
    fn envelope_round_trips_through_properties() {
        let envelope = Envelope::new("hi")
            .with_header("content-type", "application/json")
            .unwrap()
            .with_header("correlation-id", "c-1")
            .unwrap()
            .with_header("reply-to", "app/bk-reply/a/b")
            .unwrap()
            .with_header("x-user", "v")
            .unwrap();
        let props = properties(&envelope, Some(Duration::from_millis(1500)));
        assert_eq!(props.content_type.as_deref(), Some("application/json"));
        assert_eq!(props.correlation_data.as_deref(), Some(&b"c-1"[..]));
        assert_eq!(props.response_topic.as_deref(), Some("app/bk-reply/a/b"));
        assert_eq!(props.message_expiry_interval, Some(2));
        assert!(
            props
                .user_properties
                .iter()
                .any(|(n, v)| n == "x-user" && v == "v")
        );
        let mut publish = Publish::new("t", QoS::AtLeastOnce, "hi", Some(props));
        publish.pkid = 1;
        let back = from_publish(&publish).unwrap();
        assert_eq!(back.id(), envelope.id());
        assert_eq!(back.headers(), envelope.headers());
        assert_eq!(back.published_at(), envelope.published_at());
    }

    #[test]
    fn foreign_messages_get_an_envelope() {
        let props = PublishProperties {
            user_properties: vec![("X-Device".into(), "d1".into())],
            content_type: Some("text/plain".into()),
            ..PublishProperties::default()
        };
        let publish = Publish::new("t", QoS::AtLeastOnce, "21.5", Some(props));
        let envelope = from_publish(&publish).unwrap();
        assert_eq!(envelope.attempt(), 0);
        assert_eq!(envelope.headers().get("x-device"), Some("d1"));
        assert_eq!(envelope.headers().content_type(), Some("text/plain"));
        // No properties at all (MQTT 3.1.1 peers).
        let publish = Publish::new("t", QoS::AtMostOnce, "x", None);
        assert!(from_publish(&publish).unwrap().headers().is_empty());
        // Binary correlation data has no header form: refused, not dropped.
        let props = PublishProperties {
            correlation_data: Some(Bytes::from_static(&[0xff, 0xfe])),
            ..PublishProperties::default()
        };
        let publish = Publish::new("t", QoS::AtLeastOnce, "x", Some(props));
        assert!(from_publish(&publish).is_err());
    }

    #[test]
    fn subjects_under_the_prefix() {
        assert_eq!(subject_of("app/1", "app/1/a/b").unwrap(), "a.b");
        assert_eq!(subject_of("", "a/b").unwrap(), "a.b");
        assert!(subject_of("app", "other/a").is_err());
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a/b", "x"), "a/b/x");
    }
}
